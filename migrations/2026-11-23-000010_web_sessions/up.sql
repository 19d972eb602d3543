-- Sessions of the web pages. In PostgreSQL so that every instance knows them.
-- Only the SHA-256 of the cookie's value is stored: a copy of this table opens
-- no session.
CREATE TABLE web_sessions (
    token_hash    bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id       bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The synchroniser token every form of this session must send back.
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
