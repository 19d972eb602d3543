-- The transparency log (C2SP tlog-tiles): every event that moves money, in
-- commit order, in a Merkle tree anyone can check (docs/transparency-log.md).

-- The log's checkpoints are signed with a key of the ring, purpose `log`.
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_purpose_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_purpose_check
    CHECK (purpose IN ('voucher', 'statement', 'login', 'log'));

-- Events committed and not yet in the log. Written by triggers in the
-- transaction that makes the event, so nothing committed is missed and
-- nothing rolled back is logged; the sequencer takes them out as it logs them.
CREATE TABLE log_pending (
    id             bigserial PRIMARY KEY,
    kind           text      NOT NULL
                   CHECK (kind IN ('redeemed', 'cancelled', 'reversed', 'conflict_paid', 'statement_closed')),
    redemption_id  bigint,
    statement_id   bigint,
    CHECK ((redemption_id IS NULL) = (kind = 'statement_closed')),
    CHECK ((statement_id IS NULL) = (kind <> 'statement_closed'))
);

CREATE FUNCTION log_redemption_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO log_pending (kind, redemption_id)
        VALUES (CASE WHEN NEW.conflict_id IS NULL THEN 'redeemed' ELSE 'conflict_paid' END, NEW.id);
    ELSE
        IF OLD.cancelled_at IS NULL AND NEW.cancelled_at IS NOT NULL THEN
            INSERT INTO log_pending (kind, redemption_id) VALUES ('cancelled', NEW.id);
        END IF;
        IF OLD.reversed_at IS NULL AND NEW.reversed_at IS NOT NULL THEN
            INSERT INTO log_pending (kind, redemption_id) VALUES ('reversed', NEW.id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER log_redeemed AFTER INSERT ON redemptions
    FOR EACH ROW EXECUTE FUNCTION log_redemption_event();
CREATE TRIGGER log_undone AFTER UPDATE OF cancelled_at, reversed_at ON redemptions
    FOR EACH ROW EXECUTE FUNCTION log_redemption_event();

CREATE FUNCTION log_statement_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_pending (kind, statement_id) VALUES ('statement_closed', NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER log_statement_closed AFTER INSERT ON statements
    FOR EACH ROW EXECUTE FUNCTION log_statement_event();

-- The log itself: entry N is leaf N of the tree, its bytes exactly as served.
CREATE TABLE log_entries (
    log_index      bigint      PRIMARY KEY CHECK (log_index >= 0),
    kind           text        NOT NULL,
    redemption_id  bigint      REFERENCES redemptions (id),
    statement_id   bigint      REFERENCES statements (id),
    entry          bytea       NOT NULL CHECK (octet_length(entry) BETWEEN 1 AND 65535),
    sequenced_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX log_entries_redemption ON log_entries (redemption_id) WHERE redemption_id IS NOT NULL;
CREATE INDEX log_entries_statement ON log_entries (statement_id) WHERE statement_id IS NOT NULL;

-- Hash tiles of height 8: tile (level, n) holds the hashes of tree level
-- 8 * level, nodes 256 n and up; it only ever grows, to 256 hashes.
CREATE TABLE log_tiles (
    level   smallint NOT NULL CHECK (level BETWEEN 0 AND 7),
    n       bigint   NOT NULL CHECK (n >= 0),
    hashes  bytea    NOT NULL CHECK (octet_length(hashes) BETWEEN 32 AND 8192 AND octet_length(hashes) % 32 = 0),
    PRIMARY KEY (level, n)
);

-- Every checkpoint signed, one per tree size.
CREATE TABLE log_checkpoints (
    tree_size  bigint      PRIMARY KEY CHECK (tree_size > 0),
    root_hash  bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
    note       text        NOT NULL,
    signed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'log_tiles' AND TG_OP = 'UPDATE'
       AND NEW.level = OLD.level AND NEW.n = OLD.n
       AND octet_length(NEW.hashes) > octet_length(OLD.hashes)
       AND substring(NEW.hashes FROM 1 FOR octet_length(OLD.hashes)) = OLD.hashes THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the transparency log is append-only (%)', TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION log_is_append_only();
CREATE TRIGGER log_tiles_append_only BEFORE UPDATE OR DELETE ON log_tiles
    FOR EACH ROW EXECUTE FUNCTION log_is_append_only();
CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION log_is_append_only();

-- What venues' phones report when a new checkpoint does not extend the one
-- they kept (a forked or rewritten log), for the operator to see.
CREATE TABLE log_alarms (
    id                     bigserial   PRIMARY KEY,
    reported_at            timestamptz NOT NULL DEFAULT now(),
    venue_organisation_id  bigint      NOT NULL REFERENCES organisations (id),
    user_id                bigint      REFERENCES users (id),
    device_id              bigint      REFERENCES devices (id),
    problem                text        NOT NULL CHECK (length(problem) BETWEEN 1 AND 100),
    detail                 text        NOT NULL CHECK (length(detail) <= 2000),
    kept_checkpoint        text        NOT NULL CHECK (length(kept_checkpoint) <= 4000),
    new_checkpoint         text        CHECK (length(new_checkpoint) <= 4000)
);
