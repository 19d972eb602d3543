-- Every attempt to email a book: when, and how it went. The address itself
-- is not kept here: it is deleted from the book once the book is sent.
CREATE TABLE book_sends (
    id          bigserial   PRIMARY KEY,
    book_id     bigint      NOT NULL REFERENCES books (id),
    user_id     bigint      NOT NULL REFERENCES users (id),
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL CHECK (outcome IN ('sent', 'failed')),
    error       text
);
CREATE INDEX book_sends_book ON book_sends (book_id, id);
