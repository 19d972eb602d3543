DROP TABLE statement_carries;
DROP TABLE statement_payments;
