DROP TABLE login_throttle;
CREATE TABLE login_failures (
    id          bigserial   PRIMARY KEY,
    email       text        NOT NULL,
    client_ip   text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email ON login_failures (email, failed_at);
CREATE INDEX login_failures_client ON login_failures (client_ip, failed_at);

ALTER TABLE invoices
    DROP CONSTRAINT invoices_total_capped,
    DROP CONSTRAINT invoices_issued_on_bounded;
ALTER TABLE statement_payments
    DROP CONSTRAINT statement_payments_amount_capped,
    DROP CONSTRAINT statement_payments_paid_on_bounded;
ALTER TABLE statements DROP CONSTRAINT statements_period_bounded;
ALTER TABLE organisations DROP CONSTRAINT organisations_accredited_until_bounded;
ALTER TABLE conflicts
    DROP CONSTRAINT conflicts_face_value_capped,
    DROP CONSTRAINT conflicts_held_on_bounded;
ALTER TABLE redemptions
    DROP CONSTRAINT redemptions_face_value_capped,
    DROP CONSTRAINT redemptions_held_on_bounded;
ALTER TABLE vouchers DROP CONSTRAINT vouchers_face_value_capped;
ALTER TABLE programs
    DROP CONSTRAINT programs_face_value_capped,
    DROP CONSTRAINT programs_budget_capped,
    DROP CONSTRAINT programs_issue_until_bounded,
    DROP CONSTRAINT programs_within_budget,
    ADD CONSTRAINT programs_within_budget CHECK (allocated_vouchers * face_value_cents <= budget_cents);
