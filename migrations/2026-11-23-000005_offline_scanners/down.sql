DROP TABLE sync_changes;
DROP TABLE idempotency_records;
CREATE TABLE idempotency_records (
    user_id        bigint      NOT NULL REFERENCES users (id),
    key            text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash   bytea       NOT NULL,
    status         smallint    NOT NULL,
    response_body  bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
DROP TABLE scan_nonces;
DROP INDEX redemptions_one_per_voucher;
ALTER TABLE redemptions DROP COLUMN conflict_id;
CREATE UNIQUE INDEX redemptions_one_per_voucher ON redemptions (voucher_id) WHERE cancelled_at IS NULL;
DROP TABLE conflicts;
ALTER TABLE audit_events DROP COLUMN actor_device_id;
ALTER TABLE redemptions DROP COLUMN redeemed_by_device_id;
DROP TABLE devices;
