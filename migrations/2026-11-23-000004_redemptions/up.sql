-- A workshop given at a venue against one voucher.
CREATE TABLE redemptions (
    id                     bigserial   PRIMARY KEY,
    voucher_id             bigint      NOT NULL REFERENCES vouchers (id),
    program_id             integer     NOT NULL REFERENCES programs (id),
    venue_organisation_id  bigint      NOT NULL REFERENCES organisations (id),
    redeemed_by_user_id    bigint      REFERENCES users (id),
    redeemed_at            timestamptz NOT NULL DEFAULT now(),
    theme                  text        NOT NULL,
    held_on                date        NOT NULL,
    duration_minutes       integer     NOT NULL CHECK (duration_minutes BETWEEN 15 AND 480),
    -- Fixed on the voucher when it was issued.
    face_value_cents       bigint      NOT NULL CHECK (face_value_cents > 0),
    -- Cancelled by the venue (the voucher is usable again) or reversed by the
    -- funder (a dispute: not paid, the voucher stays used). Set once, never cleared.
    cancelled_at           timestamptz,
    cancelled_by_user_id   bigint      REFERENCES users (id),
    cancel_reason          text,
    reversed_at            timestamptz,
    reversed_by_user_id    bigint      REFERENCES users (id),
    reverse_reason         text,
    CHECK (cancelled_at IS NULL OR reversed_at IS NULL),
    CHECK ((cancelled_at IS NULL) = (cancel_reason IS NULL)),
    CHECK ((reversed_at IS NULL) = (reverse_reason IS NULL))
);
-- The heart of "exactly once": one redemption per voucher unless cancelled.
CREATE UNIQUE INDEX redemptions_one_per_voucher ON redemptions (voucher_id) WHERE cancelled_at IS NULL;
CREATE INDEX redemptions_venue ON redemptions (venue_organisation_id, id);
CREATE INDEX redemptions_program ON redemptions (program_id, id);

-- What happened to redemptions, who did it, when and why. Append-only.
CREATE TABLE audit_events (
    id                     bigserial   PRIMARY KEY,
    at                     timestamptz NOT NULL DEFAULT now(),
    kind                   text        NOT NULL CHECK (kind IN ('redeemed', 'cancelled', 'reversed')),
    redemption_id          bigint      NOT NULL REFERENCES redemptions (id),
    voucher_id             bigint      NOT NULL,
    actor_user_id          bigint      REFERENCES users (id),
    actor_organisation_id  bigint      NOT NULL REFERENCES organisations (id),
    reason                 text
);
CREATE FUNCTION audit_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_are_append_only();

-- Idempotency-Key records, per user: a replay within 24 h gets the first answer.
CREATE TABLE idempotency_records (
    user_id        bigint      NOT NULL REFERENCES users (id),
    key            text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash   bytea       NOT NULL,
    status         smallint    NOT NULL,
    response_body  bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
