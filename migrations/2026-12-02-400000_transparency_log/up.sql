-- The transparency log (C2SP tlog-tiles): every event that moves money, in a
-- Merkle tree anyone can check from public files (docs/transparency-log.md).
--
-- 1. The entry of an event is written by a trigger, in the transaction that
--    makes the event: an event cannot commit without its entry, and a rolled
--    back one leaves none. Its bytes (canonical JSON) are fixed then.
-- 2. The sequencer (one at a time across instances: the row lock on
--    log_state) gives the committed entries their index, 0, 1, 2, … without a
--    gap, in the order it finds them committed, stores the tree's tiles and a
--    signed checkpoint, in one transaction.
-- 3. Nothing of the log is ever deleted or changed: entries get their index
--    once, tiles only grow, checkpoints only add up.

ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_purpose_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_purpose_check
    CHECK (purpose IN ('voucher', 'statement', 'login', 'log'));

CREATE TABLE log_entries (
    -- The order entries were written in; the log's order is log_index.
    id             bigserial   PRIMARY KEY,
    log_index      bigint      UNIQUE CHECK (log_index >= 0),
    kind           text        NOT NULL
                   CHECK (kind IN ('redeemed', 'cancelled', 'reversed', 'conflict_paid', 'statement_closed')),
    redemption_id  bigint      REFERENCES redemptions (id),
    statement_id   bigint      REFERENCES statements (id),
    -- Exactly the bytes served in the entry bundles and hashed into the tree.
    entry          bytea       NOT NULL CHECK (octet_length(entry) BETWEEN 2 AND 65535),
    written_at     timestamptz NOT NULL DEFAULT now(),
    sequenced_at   timestamptz,
    CHECK ((redemption_id IS NULL) = (kind = 'statement_closed')),
    CHECK ((statement_id IS NULL) = (kind <> 'statement_closed')),
    CHECK ((log_index IS NULL) = (sequenced_at IS NULL))
);
-- What the sequencer reads: the entries waiting for their index.
CREATE INDEX log_entries_waiting ON log_entries (id) WHERE log_index IS NULL;
CREATE INDEX log_entries_redemption ON log_entries (redemption_id) WHERE redemption_id IS NOT NULL;
CREATE INDEX log_entries_statement ON log_entries (statement_id) WHERE statement_id IS NOT NULL;

-- The size of the log: how many entries have an index. One row; its row
-- lock is the sequencer's, so one instance sequences at a time. The origin
-- (the checkpoints' first line and the key's name) is the log's identity:
-- set by the first round from PASSNUM_LOG_ORIGIN, then the same for every
-- instance whatever its own address.
CREATE TABLE log_state (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    size    bigint  NOT NULL DEFAULT 0 CHECK (size >= 0),
    origin  text    CHECK (origin <> '')
);
INSERT INTO log_state DEFAULT VALUES;

-- The entries' bytes, canonical JSON (keys sorted, no spaces, UTF-8): only
-- digits and fixed words go between the quotes, and the statement's digest
-- (hex) through to_json, so nothing else needs escaping. src/log/entry.rs
-- builds the same bytes from the rows.
CREATE FUNCTION log_instant(at timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION log_redemption_entry(r redemptions, kind text, at timestamptz) RETURNS bytea
    LANGUAGE sql STABLE AS $$
    SELECT convert_to(
        '{"amount_cents":' || CASE WHEN kind IN ('cancelled', 'reversed') THEN -r.face_value_cents
                                   ELSE r.face_value_cents END
        || ',"at":"' || log_instant(at)
        || '","kind":"' || kind
        || '","position":' || r.position
        || ',"program_id":' || r.program_id
        || ',"redemption_id":' || r.id
        || ',"venue_siret":"' || (SELECT btrim(o.siret) FROM organisations o WHERE o.id = r.venue_organisation_id)
        || '","voucher_id":"' || r.voucher_id || '"}',
        'UTF8')
$$;

CREATE FUNCTION log_redemption_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    at   timestamptz;
BEGIN
    IF TG_OP = 'INSERT' THEN
        kind := CASE WHEN NEW.conflict_id IS NULL THEN 'redeemed' ELSE 'conflict_paid' END;
        at := NEW.redeemed_at;
    ELSIF OLD.cancelled_at IS NULL AND NEW.cancelled_at IS NOT NULL THEN
        kind := 'cancelled';
        at := NEW.cancelled_at;
    ELSIF OLD.reversed_at IS NULL AND NEW.reversed_at IS NOT NULL THEN
        kind := 'reversed';
        at := NEW.reversed_at;
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO log_entries (kind, redemption_id, entry)
    VALUES (kind, NEW.id, log_redemption_entry(NEW, kind, at));
    RETURN NULL;
END;
$$;
CREATE TRIGGER log_redeemed AFTER INSERT ON redemptions
    FOR EACH ROW EXECUTE FUNCTION log_redemption_event();
CREATE TRIGGER log_undone AFTER UPDATE OF cancelled_at, reversed_at ON redemptions
    FOR EACH ROW
    WHEN ((OLD.cancelled_at IS NULL AND NEW.cancelled_at IS NOT NULL)
       OR (OLD.reversed_at IS NULL AND NEW.reversed_at IS NOT NULL))
    EXECUTE FUNCTION log_redemption_event();

CREATE FUNCTION log_statement_entry(s statements) RETURNS bytea
    LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_to(
        '{"at":"' || log_instant(s.closed_at)
        || '","kind":"statement_closed","number":' || s.number
        || ',"program_id":' || s.program_id
        || ',"sha256":' || to_json(s.sha256)::text
        || ',"total_cents":' || s.total_cents || '}',
        'UTF8')
$$;

CREATE FUNCTION log_statement_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_entries (kind, statement_id, entry)
    VALUES ('statement_closed', NEW.id, log_statement_entry(NEW));
    RETURN NULL;
END;
$$;
CREATE TRIGGER log_statement_closed AFTER INSERT ON statements
    FOR EACH ROW EXECUTE FUNCTION log_statement_event();

-- Append-only. An entry is written without an index; the one change it ever
-- sees is getting one (with sequenced_at), and then never again.
CREATE FUNCTION log_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.log_index IS NOT NULL OR NEW.sequenced_at IS NOT NULL THEN
            RAISE EXCEPTION 'a log entry is written without an index: the sequencer gives it one'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'log_entries_append_only';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.log_index IS NULL AND NEW.log_index IS NOT NULL
       AND (NEW.id, NEW.kind, NEW.redemption_id, NEW.statement_id, NEW.entry, NEW.written_at)
           IS NOT DISTINCT FROM (OLD.id, OLD.kind, OLD.redemption_id, OLD.statement_id, OLD.entry, OLD.written_at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the transparency log is append-only: entry % cannot be changed or deleted', OLD.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'log_entries_append_only';
END;
$$;
CREATE TRIGGER log_entries_append_only BEFORE INSERT OR UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION log_entries_append_only();

-- Without a gap: each statement that gives indexes gives exactly the next
-- ones (the unique index forbids twice the same), and the size follows.
CREATE FUNCTION log_entries_gapless() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lo bigint;
    hi bigint;
    n  bigint;
    s  bigint;
BEGIN
    SELECT min(log_index), max(log_index), count(*) INTO lo, hi, n FROM sequenced;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    SELECT size INTO s FROM log_state FOR UPDATE;
    IF lo <> s OR hi <> s + n - 1 THEN
        RAISE EXCEPTION 'log indexes % to % do not follow the log''s size %', lo, hi, s
            USING ERRCODE = 'check_violation', CONSTRAINT = 'log_entries_gapless';
    END IF;
    UPDATE log_state SET size = s + n;
    RETURN NULL;
END;
$$;
CREATE TRIGGER log_entries_gapless AFTER UPDATE ON log_entries
    REFERENCING NEW TABLE AS sequenced
    FOR EACH STATEMENT EXECUTE FUNCTION log_entries_gapless();

-- Hash tiles of height 8 (C2SP tlog-tiles): tile (level, n) holds hashes of
-- tree level 8·level, from node 256·n on; it only grows, up to 256 hashes.
CREATE TABLE log_tiles (
    level   smallint NOT NULL CHECK (level BETWEEN 0 AND 7),
    n       bigint   NOT NULL CHECK (n >= 0),
    hashes  bytea    NOT NULL
            CHECK (octet_length(hashes) BETWEEN 32 AND 8192 AND octet_length(hashes) % 32 = 0),
    PRIMARY KEY (level, n)
);

-- Every checkpoint signed, one per tree size, each larger than the last and
-- no larger than the log.
CREATE TABLE log_checkpoints (
    tree_size  bigint      PRIMARY KEY CHECK (tree_size > 0),
    root_hash  bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
    note       text        NOT NULL,
    signed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION log_tiles_and_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'log_checkpoints' AND TG_OP = 'INSERT' THEN
        IF NEW.tree_size > (SELECT size FROM log_state)
           OR NEW.tree_size <= COALESCE((SELECT max(tree_size) FROM log_checkpoints), 0) THEN
            RAISE EXCEPTION 'a checkpoint of % entries neither extends the last nor fits the log', NEW.tree_size
                USING ERRCODE = 'check_violation', CONSTRAINT = 'log_checkpoints_append_only';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'log_tiles' AND TG_OP = 'UPDATE'
       AND NEW.level = OLD.level AND NEW.n = OLD.n
       AND octet_length(NEW.hashes) > octet_length(OLD.hashes)
       AND substring(NEW.hashes FROM 1 FOR octet_length(OLD.hashes)) = OLD.hashes THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the transparency log is append-only (%)', TG_TABLE_NAME
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only';
END;
$$;
CREATE TRIGGER log_tiles_append_only BEFORE UPDATE OR DELETE ON log_tiles
    FOR EACH ROW EXECUTE FUNCTION log_tiles_and_checkpoints_append_only();
CREATE TRIGGER log_checkpoints_append_only BEFORE INSERT OR UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION log_tiles_and_checkpoints_append_only();

CREATE FUNCTION log_never_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the transparency log is append-only (%)', TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER log_entries_not_truncated BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION log_never_truncated();
CREATE TRIGGER log_tiles_not_truncated BEFORE TRUNCATE ON log_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION log_never_truncated();
CREATE TRIGGER log_checkpoints_not_truncated BEFORE TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION log_never_truncated();
CREATE TRIGGER log_state_not_truncated BEFORE TRUNCATE ON log_state
    FOR EACH STATEMENT EXECUTE FUNCTION log_never_truncated();

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
    kept_checkpoint        text        NOT NULL CHECK (length(kept_checkpoint) BETWEEN 1 AND 4000),
    new_checkpoint         text        CHECK (length(new_checkpoint) <= 4000)
);
