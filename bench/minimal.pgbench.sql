-- The least a redemption can be, the yardstick of issue 19: mark the voucher
-- used and insert its redemption, unique per voucher, in one transaction,
-- durable. On two tables of its own (bench_min_vouchers, bench_min_redemptions,
-- made by scripts/bench-redemptions), with none of passnum's rules, audit or
-- sync feed: what PostgreSQL itself can commit on this machine. A voucher
-- already used or none left returns no row and aborts the client.
BEGIN;
UPDATE bench_min_vouchers SET redeemed_at = now() WHERE id = (SELECT nextval('bench_min_seq')) AND redeemed_at IS NULL RETURNING id AS voucher_id \gset
INSERT INTO bench_min_redemptions (voucher_id, venue, redeemed_at) VALUES (:voucher_id, :venue, now()) ON CONFLICT (voucher_id) DO NOTHING;
COMMIT;
