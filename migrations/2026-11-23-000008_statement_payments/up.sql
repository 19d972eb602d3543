-- A venue's payment for its extract of a closed statement: recorded once, never changed.
CREATE TABLE statement_payments (
    statement_id           bigint      NOT NULL,
    venue_organisation_id  bigint      NOT NULL,
    amount_cents           bigint      NOT NULL CHECK (amount_cents > 0),
    paid_on                date        NOT NULL,
    reference              text        NOT NULL CHECK (length(reference) BETWEEN 1 AND 140),
    recorded_at            timestamptz NOT NULL DEFAULT now(),
    recorded_by_user_id    bigint      NOT NULL REFERENCES users (id),
    PRIMARY KEY (statement_id, venue_organisation_id),
    FOREIGN KEY (statement_id, venue_organisation_id)
        REFERENCES statement_extracts (statement_id, venue_organisation_id)
);

-- A venue whose extract totals less than zero owes the funder: the balance is
-- carried to its next extract as one negative line, once.
CREATE TABLE statement_carries (
    from_statement_id      bigint NOT NULL,
    venue_organisation_id  bigint NOT NULL,
    statement_id           bigint NOT NULL REFERENCES statements (id),
    amount_cents           bigint NOT NULL CHECK (amount_cents < 0),
    PRIMARY KEY (from_statement_id, venue_organisation_id),
    FOREIGN KEY (from_statement_id, venue_organisation_id)
        REFERENCES statement_extracts (statement_id, venue_organisation_id)
);
CREATE INDEX statement_carries_statement ON statement_carries (statement_id);

CREATE TRIGGER statement_payments_frozen BEFORE UPDATE OR DELETE ON statement_payments
    FOR EACH ROW EXECUTE FUNCTION closed_statements_never_change();
CREATE TRIGGER statement_carries_frozen BEFORE UPDATE OR DELETE ON statement_carries
    FOR EACH ROW EXECUTE FUNCTION closed_statements_never_change();
