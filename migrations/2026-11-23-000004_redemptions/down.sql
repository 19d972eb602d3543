DROP TABLE idempotency_records;
DROP TABLE audit_events;
DROP FUNCTION audit_events_are_append_only();
DROP TABLE redemptions;
