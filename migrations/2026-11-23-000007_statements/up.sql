-- Closed statements: what a funder owes each venue for a period, signed.
-- A closed statement never changes: later reversals land on the next one.
CREATE TABLE statements (
    id                 bigserial   PRIMARY KEY,
    program_id         integer     NOT NULL REFERENCES programs (id),
    number             integer     NOT NULL CHECK (number > 0),
    period_start       date        NOT NULL,
    period_end         date        NOT NULL CHECK (period_end >= period_start),
    closed_at          timestamptz NOT NULL DEFAULT now(),
    closed_by_user_id  bigint      NOT NULL REFERENCES users (id),
    total_count        integer     NOT NULL,
    total_cents        bigint      NOT NULL,
    csv                bytea       NOT NULL,
    sha256             text        NOT NULL,
    kid                smallint    NOT NULL REFERENCES signing_keys (kid),
    signature          text        NOT NULL,
    UNIQUE (program_id, number)
);

-- One line per redemption paid, or per reversal of one already paid.
CREATE TABLE statement_lines (
    statement_id   bigint NOT NULL REFERENCES statements (id),
    redemption_id  bigint NOT NULL REFERENCES redemptions (id),
    kind           text   NOT NULL CHECK (kind IN ('redemption', 'reversal')),
    amount_cents   bigint NOT NULL,
    -- Each redemption is paid once, and taken back at most once.
    PRIMARY KEY (redemption_id, kind)
);
CREATE INDEX statement_lines_statement ON statement_lines (statement_id);

-- Each venue's part of a statement, signed on its own.
CREATE TABLE statement_extracts (
    statement_id           bigint  NOT NULL REFERENCES statements (id),
    venue_organisation_id  bigint  NOT NULL REFERENCES organisations (id),
    line_count             integer NOT NULL,
    total_cents            bigint  NOT NULL,
    csv                    bytea   NOT NULL,
    sha256                 text    NOT NULL,
    signature              text    NOT NULL,
    PRIMARY KEY (statement_id, venue_organisation_id)
);

CREATE FUNCTION closed_statements_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a closed statement never changes';
END;
$$;
CREATE TRIGGER statements_frozen BEFORE UPDATE OR DELETE ON statements
    FOR EACH ROW EXECUTE FUNCTION closed_statements_never_change();
CREATE TRIGGER statement_lines_frozen BEFORE UPDATE OR DELETE ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION closed_statements_never_change();
CREATE TRIGGER statement_extracts_frozen BEFORE UPDATE OR DELETE ON statement_extracts
    FOR EACH ROW EXECUTE FUNCTION closed_statements_never_change();
