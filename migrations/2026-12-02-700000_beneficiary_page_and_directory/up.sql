-- The beneficiary's own page: secret links to a book. Only the SHA-256 of
-- each 128-bit secret is kept; the secret itself exists only where it was
-- printed or sent. A book may have several live links (each printing or
-- e-mail makes one); renewing kills them all; revoking or replacing the
-- book kills them by the book's state.
CREATE TABLE book_links (
    id                  bigserial   PRIMARY KEY,
    book_id             bigint      NOT NULL REFERENCES books (id),
    secret_sha256       bytea       NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    made_for            text        NOT NULL CHECK (made_for IN ('issue', 'print', 'email', 'renew')),
    created_by_user_id  bigint      REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    killed_at           timestamptz
);
CREATE INDEX book_links_book ON book_links (book_id, id);

-- Requests to the page by client address, for rate limiting: every
-- instance counts the same requests. Rows older than the window are deleted.
CREATE TABLE book_link_requests (
    client_ip  text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    hit        boolean     NOT NULL
);
CREATE INDEX book_link_requests_client ON book_link_requests (client_ip, at);

-- Venues from the national directory ("standard des lieux de médiation
-- numérique"): listed, not accredited. `national_id` is the row's `id` in
-- the national file; several listed venues may share a SIRET (a town's
-- libraries), so the SIRET is unique among registered organisations only,
-- and a venue known by an RNA number only has none.
ALTER TABLE organisations ADD COLUMN national_id text UNIQUE
    CHECK (national_id IS NULL OR (kind = 'venue' AND length(national_id) BETWEEN 1 AND 200));
ALTER TABLE organisations DROP CONSTRAINT organisations_siret_key;
CREATE UNIQUE INDEX organisations_siret ON organisations (siret) WHERE national_id IS NULL;
-- The first migration left this check unnamed: found by what it says.
DO $$
DECLARE c text;
BEGIN
    SELECT conname INTO STRICT c FROM pg_constraint
     WHERE conrelid = 'organisations'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%siret IS NOT NULL%';
    EXECUTE format('ALTER TABLE organisations DROP CONSTRAINT %I', c);
END $$;
ALTER TABLE organisations ADD CONSTRAINT organisations_registered_or_listed
    CHECK (kind = 'operator' OR ((siret IS NOT NULL OR national_id IS NOT NULL)
                                 AND address IS NOT NULL AND postcode IS NOT NULL
                                 AND commune_code IS NOT NULL AND departement IS NOT NULL));

-- What a venue says about itself, from the national file or its own page.
CREATE TABLE venue_details (
    organisation_id      bigint      PRIMARY KEY REFERENCES organisations (id),
    -- OpenStreetMap opening_hours syntax, as the standard asks.
    opening_hours        text        CHECK (length(opening_hours) <= 500),
    services             text[]      NOT NULL DEFAULT '{}',
    -- An acceslibre URL, or the venue's own words.
    accessibility        text        CHECK (length(accessibility) <= 500),
    -- "Accepte le Pass numérique" in the national file's conditions_acces.
    takes_pass           boolean     NOT NULL DEFAULT false,
    website              text        CHECK (length(website) <= 500),
    national_updated_on  date,
    imported_at          timestamptz,
    -- Once the venue completed its details itself, imports leave its
    -- hours, accessibility and phone alone.
    self_edited_at       timestamptz
);

-- Each run of `passnum venues import`, for the operator.
CREATE TABLE venue_imports (
    id           bigserial   PRIMARY KEY,
    file_name    text        NOT NULL,
    file_sha256  text        NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    rows_read    integer     NOT NULL,
    created      integer     NOT NULL,
    updated      integer     NOT NULL,
    unchanged    integer     NOT NULL,
    rejected     integer     NOT NULL,
    -- [{line, id, reason}], the first 1000.
    rejections   jsonb       NOT NULL DEFAULT '[]'
);
