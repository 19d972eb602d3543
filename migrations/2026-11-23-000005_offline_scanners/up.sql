-- Scanner devices: long-lived tokens (stored as SHA-256) that can only check,
-- redeem, batch and sync for their venue.
CREATE TABLE devices (
    id                     bigserial   PRIMARY KEY,
    venue_organisation_id  bigint      NOT NULL REFERENCES organisations (id),
    name                   text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash             bytea       NOT NULL UNIQUE,
    created_by_user_id     bigint      NOT NULL REFERENCES users (id),
    created_at             timestamptz NOT NULL DEFAULT now(),
    revoked_at             timestamptz
);
CREATE INDEX devices_venue ON devices (venue_organisation_id, id);

ALTER TABLE redemptions ADD COLUMN redeemed_by_device_id bigint REFERENCES devices (id);
ALTER TABLE audit_events ADD COLUMN actor_device_id bigint REFERENCES devices (id);

-- Offline scans of a voucher another venue redeemed first: both are kept;
-- the funder decides. Paying one creates its redemption, at most once.
CREATE TABLE conflicts (
    id                      bigserial   PRIMARY KEY,
    voucher_id              bigint      NOT NULL REFERENCES vouchers (id),
    program_id              integer     NOT NULL REFERENCES programs (id),
    venue_organisation_id   bigint      NOT NULL REFERENCES organisations (id),
    device_id               bigint      REFERENCES devices (id),
    user_id                 bigint      REFERENCES users (id),
    scanned_at              timestamptz NOT NULL,
    theme                   text        NOT NULL,
    held_on                 date        NOT NULL,
    duration_minutes        integer     NOT NULL,
    face_value_cents        bigint      NOT NULL,
    existing_redemption_id  bigint      NOT NULL REFERENCES redemptions (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    decision                text        CHECK (decision IN ('pay', 'reject')),
    decided_at              timestamptz,
    decided_by_user_id      bigint      REFERENCES users (id),
    decision_reason         text,
    CHECK ((decision IS NULL) = (decided_at IS NULL))
);
CREATE INDEX conflicts_program ON conflicts (program_id, id);

-- A paid conflict becomes a redemption of its own, beside the first one.
ALTER TABLE redemptions ADD COLUMN conflict_id bigint UNIQUE REFERENCES conflicts (id);
DROP INDEX redemptions_one_per_voucher;
CREATE UNIQUE INDEX redemptions_one_per_voucher ON redemptions (voucher_id)
    WHERE cancelled_at IS NULL AND conflict_id IS NULL;

-- Nonces of offline scans, per venue: a batch sent twice stores nothing new.
CREATE TABLE scan_nonces (
    venue_organisation_id  bigint      NOT NULL REFERENCES organisations (id),
    nonce                  text        NOT NULL CHECK (length(nonce) BETWEEN 1 AND 100),
    outcome                text        NOT NULL,
    redemption_id          bigint      REFERENCES redemptions (id),
    problem                text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue_organisation_id, nonce)
);

-- Idempotency keys are scoped to the caller: a user or a device.
DROP TABLE idempotency_records;
CREATE TABLE idempotency_records (
    principal      text        NOT NULL,
    key            text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash   bytea       NOT NULL,
    status         smallint    NOT NULL,
    response_body  bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);

-- The change feed offline scanners sync from. Read by transaction id: every
-- change of a transaction older than the reader's snapshot xmin is final, so
-- a cursor made of that xmin never skips a change that commits late.
CREATE TABLE sync_changes (
    tx          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    kind        text        NOT NULL CHECK (kind IN ('revoked', 'redeemed', 'reopened', 'withdrawn_kid', 'closed_program')),
    program_id  integer,
    voucher_id  bigint,
    kid         smallint,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_changes_tx ON sync_changes (tx);
