-- What a venue prints on its invoices: the seller's legal details, its VAT
-- regime and the account it is paid on. One row per venue, replaced whole.
CREATE TABLE venue_invoicing (
    organisation_id        bigint      PRIMARY KEY REFERENCES organisations (id),
    legal_name             text        NOT NULL CHECK (length(legal_name) BETWEEN 1 AND 200),
    address                text        NOT NULL CHECK (length(address) BETWEEN 1 AND 300),
    postcode               text        NOT NULL CHECK (postcode ~ '^[0-9]{5}$'),
    city                   text        NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    vat_regime             text        NOT NULL CHECK (vat_regime IN ('exempt', 'vat')),
    vat_exemption_reason   text        CHECK (length(vat_exemption_reason) BETWEEN 1 AND 200),
    vat_number             text        CHECK (vat_number ~ '^FR[0-9A-Z]{2}[0-9]{9}$'),
    vat_rate_basis_points  integer     CHECK (vat_rate_basis_points IN (210, 550, 1000, 2000)),
    iban                   text        NOT NULL CHECK (iban ~ '^[A-Z]{2}[0-9]{2}[0-9A-Z]{1,30}$'),
    bic                    text        CHECK (bic ~ '^[A-Z]{6}[0-9A-Z]{2}([0-9A-Z]{3})?$'),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    updated_by_user_id     bigint      NOT NULL REFERENCES users (id),
    -- Exempt: the legal mention that says why, no rate. Liable: a VAT number and a rate.
    CHECK (CASE vat_regime
        WHEN 'exempt' THEN vat_exemption_reason IS NOT NULL AND vat_rate_basis_points IS NULL
        ELSE vat_number IS NOT NULL AND vat_rate_basis_points IS NOT NULL AND vat_exemption_reason IS NULL
    END)
);

-- What the public buyer of a programme requires on the invoices it receives
-- (Chorus Pro): its SIRET, the "code service" and the "numéro d'engagement".
CREATE TABLE program_invoicing (
    program_id          integer     PRIMARY KEY REFERENCES programs (id),
    buyer_siret         text        NOT NULL CHECK (buyer_siret ~ '^[0-9]{14}$'),
    service_code        text        CHECK (length(service_code) BETWEEN 1 AND 100),
    engagement_number   text        CHECK (length(engagement_number) BETWEEN 1 AND 50),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by_user_id  bigint      NOT NULL REFERENCES users (id)
);

-- The invoices and credit notes drawn from venues' extracts of closed
-- statements. At most one of each per extract; numbered per venue in one
-- sequence without gaps; once issued, never changed.
CREATE TABLE invoices (
    id                     bigserial   PRIMARY KEY,
    statement_id           bigint      NOT NULL,
    venue_organisation_id  bigint      NOT NULL,
    -- 380: commercial invoice; 381: credit note (UNTDID 1001).
    type_code              smallint    NOT NULL CHECK (type_code IN (380, 381)),
    sequence               integer     NOT NULL CHECK (sequence > 0),
    number                 text        NOT NULL CHECK (length(number) BETWEEN 1 AND 20),
    issued_on              date        NOT NULL,
    issued_at              timestamptz NOT NULL DEFAULT now(),
    -- The amount the document is for, VAT included.
    total_cents            bigint      NOT NULL CHECK (total_cents > 0),
    -- What the document says, as issued (seller, buyer, lines, totals).
    document               jsonb       NOT NULL,
    -- The Factur-X (CII) XML, byte for byte as given out.
    xml                    bytea       NOT NULL,
    FOREIGN KEY (statement_id, venue_organisation_id)
        REFERENCES statement_extracts (statement_id, venue_organisation_id),
    UNIQUE (statement_id, venue_organisation_id, type_code),
    UNIQUE (venue_organisation_id, sequence),
    UNIQUE (venue_organisation_id, number)
);

-- Which invoices a credit note corrects (BT-25).
CREATE TABLE invoice_corrections (
    credit_note_id  bigint NOT NULL REFERENCES invoices (id),
    invoice_id      bigint NOT NULL REFERENCES invoices (id),
    PRIMARY KEY (credit_note_id, invoice_id)
);

CREATE FUNCTION issued_invoices_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'an issued invoice never changes';
END;
$$;
CREATE TRIGGER invoices_frozen BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION issued_invoices_never_change();
CREATE TRIGGER invoice_corrections_frozen BEFORE UPDATE OR DELETE ON invoice_corrections
    FOR EACH ROW EXECUTE FUNCTION issued_invoices_never_change();

-- A venue's numbers follow each other: the next one is the last plus one.
CREATE FUNCTION invoice_numbers_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sequence <> 1 + coalesce(
        (SELECT max(sequence) FROM invoices WHERE venue_organisation_id = NEW.venue_organisation_id), 0) THEN
        RAISE EXCEPTION 'invoice % of venue % does not follow the last one', NEW.sequence, NEW.venue_organisation_id;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER invoices_in_sequence BEFORE INSERT ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoice_numbers_follow();
