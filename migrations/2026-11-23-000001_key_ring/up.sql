-- The key ring: every instance reads the same kids, purposes and public keys.
-- Private keys never enter the database; they are PKCS#8 files named by kid.
CREATE TABLE signing_keys (
    kid            smallint    PRIMARY KEY CHECK (kid BETWEEN 0 AND 255),
    purpose        text        NOT NULL CHECK (purpose IN ('voucher', 'statement', 'login')),
    public_key     bytea       NOT NULL CHECK (octet_length(public_key) = 32),
    status         text        NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'retired', 'withdrawn')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    retired_at     timestamptz,
    withdrawn_at   timestamptz,
    withdrawn_reason text,
    CHECK (status <> 'retired' OR retired_at IS NOT NULL),
    -- Only voucher keys are withdrawn: statement keys must prove old statements for ever.
    CHECK (status <> 'withdrawn' OR (purpose = 'voucher' AND withdrawn_at IS NOT NULL))
);

-- Exactly one key signs new objects of each purpose.
CREATE UNIQUE INDEX signing_keys_one_active_per_purpose
    ON signing_keys (purpose) WHERE status = 'active';
