-- One online redemption, as `passnum serve` runs it (src/domain/redemptions.rs,
-- `redeem_in`: `lock_book`, `FACTS`, then `insert`, which writes the
-- redemption, its audit event and the sync changes of its position in one
-- statement), statement for statement, for pgbench (`-M prepared`: the
-- server's statements are prepared too). Run by scripts/bench-redemptions;
-- see docs/benchmarks.md.
--
-- Each transaction takes the next voucher of `bench_vouchers` (never-redeemed
-- vouchers set aside for pgbench, numbered 1..N, and the sequence
-- `bench_seq`), inside the first statement (the book's lock) so that the round
-- trips are the server's: BEGIN, 3 statements, COMMIT. Variables given with -D: venue (the
-- venue organisation's id), user (the venue user's id), held_on (today,
-- Europe/Paris). The first statement also hands pgbench the voucher's fields
-- the insert needs (the server has them from the third). Every \gset must
-- find exactly one row, so a voucher that was
-- already redeemed, or running out of vouchers, aborts the client: pgbench
-- reports it and the script fails.
--
-- Not here, because they are outside the transaction: the server's pool
-- checks a connection before handing it out and the login token's account is
-- read before the transaction.
BEGIN;
SELECT v.id AS voucher_id, v.program_id, v.lineage_id, v.position, v.face_value_cents FROM books b JOIN vouchers v ON v.book_id = b.id WHERE v.id = (SELECT id FROM bench_vouchers WHERE n = (SELECT nextval('bench_seq'))) FOR SHARE OF b \gset
SELECT v.id AS voucher_id, v.program_id, v.lineage_id, v.position, v.expires_on, v.face_value_cents, b.size AS book_size, b.created_at AS book_created_at, b.revoked_at AS book_revoked_at, EXISTS (SELECT 1 FROM vouchers w WHERE w.replaces_voucher_id = v.id) AS replaced, p.closed_at AS program_closed_at, p.territory, p.time_zone, k.status AS key_status, l.id AS live_id, l.voucher_id AS live_voucher_id, l.redeemed_at AS live_redeemed_at, l.venue_organisation_id AS live_venue FROM vouchers v JOIN books b ON b.id = v.book_id JOIN programs p ON p.id = v.program_id JOIN signing_keys k ON k.kid = v.kid LEFT JOIN redemptions l ON l.lineage_id = v.lineage_id AND l.position = v.position AND l.cancelled_at IS NULL AND NOT l.second_payment WHERE v.id = :voucher_id;
WITH r AS (INSERT INTO redemptions (voucher_id, program_id, lineage_id, position, venue_organisation_id, redeemed_by_user_id, redeemed_by_device_id, redeemed_at, theme, held_on, duration_minutes, face_value_cents) VALUES (:voucher_id, :program_id, :lineage_id, :position, :venue, :user, NULL, now(), 'online_procedures', :held_on, 60, :face_value_cents) ON CONFLICT (lineage_id, position) WHERE cancelled_at IS NULL AND NOT second_payment DO NOTHING RETURNING id, redeemed_at), a AS (INSERT INTO audit_events (kind, redemption_id, voucher_id, actor_user_id, actor_device_id, actor_organisation_id) SELECT 'redeemed', r.id, :voucher_id, :user, NULL, :venue FROM r), s AS (INSERT INTO sync_changes (kind, program_id, voucher_id) SELECT 'redeemed', v.program_id, v.id FROM vouchers v, r WHERE v.lineage_id = :lineage_id AND v.position = :position) SELECT id AS redemption_id, redeemed_at FROM r \gset
COMMIT;
