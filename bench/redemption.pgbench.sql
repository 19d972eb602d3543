-- One online redemption, as `passnum serve` runs it (src/domain/redemptions.rs,
-- `redeem`: `find_voucher`/`facts`, `live_redemption`, `insert` with
-- src/domain/sync.rs `record`, then `audit`), statement for statement, for
-- pgbench (`-M prepared`: the server's statements are prepared too). Run by
-- scripts/bench-redemptions; see docs/benchmarks.md.
--
-- Each transaction takes the next voucher of `bench_vouchers` (never-redeemed
-- vouchers set aside for pgbench, numbered 1..N, and the sequence
-- `bench_seq`), inside the first statement so that the round trips are the
-- server's: BEGIN, 5 statements, COMMIT. Variables given with -D: venue (the
-- venue organisation's id), user (the venue user's id), held_on (today,
-- Europe/Paris). Every \gset must find exactly one row, so a voucher that was
-- already redeemed, or running out of vouchers, aborts the client: pgbench
-- reports it and the script fails.
--
-- Not here, because they are outside the transaction: the server's pool
-- checks a connection before handing it out (`SELECT $1`, twice per request)
-- and the login token's account is read (users ⋈ organisations) on another
-- pooled connection before the transaction.
BEGIN;
SELECT "vouchers"."id" AS voucher_id, "vouchers"."program_id" AS program_id, "vouchers"."position" AS position, "vouchers"."expires_on" AS expires_on, "vouchers"."face_value_cents" AS face_value_cents, "books"."size" AS book_size, "books"."revoked_at" AS book_revoked, "programs"."closed_at" AS program_closed, "programs"."territory" AS territory, "programs"."time_zone" AS time_zone, "signing_keys"."status" AS key_status FROM (("vouchers" INNER JOIN ("books" INNER JOIN "programs" ON ("books"."program_id" = "programs"."id")) ON ("vouchers"."book_id" = "books"."id")) INNER JOIN "signing_keys" ON ("vouchers"."kid" = "signing_keys"."kid")) WHERE ("vouchers"."id" = (SELECT id FROM bench_vouchers WHERE n = (SELECT nextval('bench_seq')))) LIMIT 1 \gset
SELECT "redemptions"."id", "redemptions"."redeemed_at", "redemptions"."venue_organisation_id" FROM "redemptions" WHERE ((("redemptions"."voucher_id" = :voucher_id) AND ("redemptions"."cancelled_at" IS NULL)) AND ("redemptions"."conflict_id" IS NULL)) LIMIT 1;
INSERT INTO "redemptions" ("voucher_id", "program_id", "venue_organisation_id", "redeemed_by_user_id", "redeemed_by_device_id", "redeemed_at", "theme", "held_on", "duration_minutes", "face_value_cents") VALUES (:voucher_id, :program_id, :venue, :user, NULL, now(), 'online_procedures', :held_on, 60, :face_value_cents) ON CONFLICT ("voucher_id") WHERE (("redemptions"."cancelled_at" IS NULL) AND ("redemptions"."conflict_id" IS NULL)) DO NOTHING RETURNING "redemptions"."id" AS redemption_id, "redemptions"."redeemed_at" AS redeemed_at \gset
INSERT INTO sync_changes (kind, program_id, voucher_id, kid) VALUES ('redeemed', :program_id, :voucher_id, NULL);
INSERT INTO "audit_events" ("kind", "redemption_id", "voucher_id", "actor_user_id", "actor_device_id", "actor_organisation_id", "reason") VALUES ('redeemed', :redemption_id, :voucher_id, :user, NULL, :venue, NULL);
COMMIT;
