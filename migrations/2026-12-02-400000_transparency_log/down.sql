DROP TABLE log_alarms;
DROP TABLE log_checkpoints;
DROP TABLE log_tiles;
DROP TABLE log_entries;
DROP FUNCTION log_is_append_only();
DROP TRIGGER log_statement_closed ON statements;
DROP TRIGGER log_undone ON redemptions;
DROP TRIGGER log_redeemed ON redemptions;
DROP FUNCTION log_statement_event();
DROP FUNCTION log_redemption_event();
DROP TABLE log_pending;
DELETE FROM signing_keys WHERE purpose = 'log';
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_purpose_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_purpose_check
    CHECK (purpose IN ('voucher', 'statement', 'login'));
