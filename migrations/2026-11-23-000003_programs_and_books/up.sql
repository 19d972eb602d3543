-- Programmes: a funder's budget for workshops on a territory.
CREATE TABLE programs (
    -- The 32-bit program_id signed into every voucher.
    id                     integer     PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
    funder_organisation_id bigint      NOT NULL REFERENCES organisations (id),
    name                   text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    face_value_cents       bigint      NOT NULL CHECK (face_value_cents > 0),
    budget_cents           bigint      NOT NULL CHECK (budget_cents >= 0),
    issue_until            date        NOT NULL,
    voucher_validity_days  integer     NOT NULL CHECK (voucher_validity_days BETWEEN 1 AND 3650),
    territory              text[]      NOT NULL CHECK (cardinality(territory) >= 1),
    time_zone              text        NOT NULL DEFAULT 'Europe/Paris',
    -- Sum of the allocations, so the budget is checked on one row, under its lock.
    allocated_vouchers     bigint      NOT NULL DEFAULT 0,
    closed_at              timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT programs_within_budget CHECK (allocated_vouchers * face_value_cents <= budget_cents)
);
CREATE INDEX programs_funder ON programs (funder_organisation_id, id);

-- What an issuer may hand out of a programme, and what it has used.
CREATE TABLE allocations (
    id                     bigserial   PRIMARY KEY,
    program_id             integer     NOT NULL REFERENCES programs (id),
    issuer_organisation_id bigint      NOT NULL REFERENCES organisations (id),
    vouchers               integer     NOT NULL CHECK (vouchers > 0),
    used_vouchers          integer     NOT NULL DEFAULT 0 CHECK (used_vouchers >= 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, issuer_organisation_id),
    CONSTRAINT allocations_within_quota CHECK (used_vouchers <= vouchers)
);
CREATE INDEX allocations_issuer ON allocations (issuer_organisation_id, program_id);

-- A book of 5 or 10 vouchers for one beneficiary, known only by the issuer's
-- own reference and a postcode: never a name.
CREATE TABLE books (
    id                        bigserial   PRIMARY KEY,
    program_id                integer     NOT NULL REFERENCES programs (id),
    issuer_organisation_id    bigint      NOT NULL REFERENCES organisations (id),
    issued_by_user_id         bigint      NOT NULL REFERENCES users (id),
    size                      smallint    NOT NULL CHECK (size IN (5, 10)),
    issued_on                 date        NOT NULL,
    expires_on                date        NOT NULL CHECK (expires_on >= issued_on),
    beneficiary_reference     text        CHECK (length(beneficiary_reference) BETWEEN 1 AND 64),
    beneficiary_postcode      char(5),
    beneficiary_commune_code  char(5),
    beneficiary_departement   text        NOT NULL,
    -- Kept only until the book is sent.
    beneficiary_email         text,
    revoked_at                timestamptz,
    revoked_reason            text,
    -- A replacement book names the book it replaces; a book is replaced once.
    replaces_book_id          bigint      UNIQUE REFERENCES books (id),
    created_at                timestamptz NOT NULL DEFAULT now(),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX books_issuer ON books (issuer_organisation_id, id);
CREATE INDEX books_program ON books (program_id);

CREATE TABLE vouchers (
    -- Random in 1..2^63-1: the identity signed into the voucher.
    id                   bigint      PRIMARY KEY CHECK (id > 0),
    book_id              bigint      NOT NULL REFERENCES books (id),
    program_id           integer     NOT NULL REFERENCES programs (id),
    kid                  smallint    NOT NULL REFERENCES signing_keys (kid),
    position             smallint    NOT NULL,
    expires_on           date        NOT NULL,
    -- Fixed when issued: what a redemption of it is worth.
    face_value_cents     bigint      NOT NULL CHECK (face_value_cents > 0),
    -- The text form (PN1:…) the QR code holds.
    code                 text        NOT NULL,
    -- In a replacement book, the voucher of the same position it stands for.
    replaces_voucher_id  bigint      UNIQUE REFERENCES vouchers (id),
    UNIQUE (book_id, position)
);
CREATE INDEX vouchers_program ON vouchers (program_id);
-- Which retired keys still have vouchers that can be redeemed.
CREATE INDEX vouchers_kid_expiry ON vouchers (kid, expires_on);
