-- Organisations: the operator, funders, issuers (social services) and venues.
CREATE TABLE organisations (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('operator', 'funder', 'issuer', 'venue')),
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Only the bootstrap operator (`passnum admin create-operator`) may lack these.
    siret         char(14)    UNIQUE,
    address       text,
    postcode      char(5),
    commune_code  char(5),
    departement   text,
    latitude      double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude     double precision CHECK (longitude BETWEEN -180 AND 180),
    phone         text,
    -- Venues: accredited from `accredited_since` to `accredited_until` (inclusive,
    -- a calendar date), unless withdrawn earlier.
    accredited_since            timestamptz,
    accredited_until            date,
    accreditation_withdrawn_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'operator' OR (siret IS NOT NULL AND address IS NOT NULL
                                 AND postcode IS NOT NULL AND commune_code IS NOT NULL
                                 AND departement IS NOT NULL)),
    CHECK (kind <> 'venue' OR (latitude IS NOT NULL AND longitude IS NOT NULL)),
    CHECK (kind = 'venue' OR accredited_until IS NULL)
);
CREATE INDEX organisations_kind ON organisations (kind, id);

CREATE TABLE users (
    id               bigserial   PRIMARY KEY,
    organisation_id  bigint      NOT NULL REFERENCES organisations (id),
    email            text        NOT NULL CHECK (email = lower(email)),
    password_hash    text        NOT NULL,
    deactivated_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE INDEX users_organisation ON users (organisation_id);

-- Failed logins, counted per email and per client address to throttle guessing.
-- In PostgreSQL so that every instance counts the same attempts.
CREATE TABLE login_failures (
    id          bigserial   PRIMARY KEY,
    email       text        NOT NULL,
    client_ip   text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email ON login_failures (email, failed_at);
CREATE INDEX login_failures_client ON login_failures (client_ip, failed_at);
