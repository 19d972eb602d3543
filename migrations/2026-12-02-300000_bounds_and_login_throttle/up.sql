-- Bounds on money and calendar dates: far beyond any real programme, well
-- inside what bigint sums, PostgreSQL's dates and the voucher's 16-bit day
-- count hold. At most 10^11 cents (a billion euros) for any amount or
-- budget; dates from 2000-01-01 to 2100-12-31. The code checks the same
-- bounds first (domain::bounds), naming the field.
ALTER TABLE programs
    ADD CONSTRAINT programs_face_value_capped CHECK (face_value_cents <= 100000000000),
    ADD CONSTRAINT programs_budget_capped CHECK (budget_cents <= 100000000000),
    ADD CONSTRAINT programs_issue_until_bounded
        CHECK (issue_until BETWEEN DATE '2000-01-01' AND DATE '2100-12-31'),
    -- Divided rather than multiplied: a huge allocation is over the budget,
    -- not a bigint overflow (NULLIF: a zero face value fails its own CHECK).
    DROP CONSTRAINT programs_within_budget,
    ADD CONSTRAINT programs_within_budget
        CHECK (allocated_vouchers <= budget_cents / NULLIF(face_value_cents, 0));

ALTER TABLE vouchers
    ADD CONSTRAINT vouchers_face_value_capped CHECK (face_value_cents <= 100000000000);

ALTER TABLE redemptions
    ADD CONSTRAINT redemptions_face_value_capped CHECK (face_value_cents <= 100000000000),
    ADD CONSTRAINT redemptions_held_on_bounded
        CHECK (held_on BETWEEN DATE '2000-01-01' AND DATE '2100-12-31');

ALTER TABLE conflicts
    ADD CONSTRAINT conflicts_face_value_capped CHECK (face_value_cents BETWEEN 1 AND 100000000000),
    ADD CONSTRAINT conflicts_held_on_bounded
        CHECK (held_on BETWEEN DATE '2000-01-01' AND DATE '2100-12-31');

ALTER TABLE organisations
    ADD CONSTRAINT organisations_accredited_until_bounded
        CHECK (accredited_until BETWEEN DATE '2000-01-01' AND DATE '2100-12-31');

ALTER TABLE statements
    ADD CONSTRAINT statements_period_bounded
        CHECK (period_start >= DATE '2000-01-01' AND period_end <= DATE '2100-12-31');

ALTER TABLE statement_payments
    ADD CONSTRAINT statement_payments_amount_capped CHECK (amount_cents <= 100000000000),
    ADD CONSTRAINT statement_payments_paid_on_bounded
        CHECK (paid_on BETWEEN DATE '2000-01-01' AND DATE '2100-12-31');

-- An invoice or credit note is for one venue's extract of one programme's
-- statement, so within the programme's budget.
ALTER TABLE invoices
    ADD CONSTRAINT invoices_total_capped CHECK (total_cents <= 100000000000),
    ADD CONSTRAINT invoices_issued_on_bounded
        CHECK (issued_on BETWEEN DATE '2000-01-01' AND DATE '2100-12-31');

-- Login throttling (auth::throttle): one row per account and per client
-- address, counting recent failures, so the statement that admits an
-- attempt can lock, decide and count at once. Replaces one row per failure.
DROP TABLE login_failures;
CREATE TABLE login_throttle (
    scope            text        NOT NULL CHECK (scope IN ('email', 'client')),
    key              text        NOT NULL CHECK (length(key) BETWEEN 1 AND 254),
    failures         integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failure_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX login_throttle_last_failure ON login_throttle (last_failure_at);
