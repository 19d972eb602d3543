DROP TABLE statement_extracts;
DROP TABLE statement_lines;
DROP TABLE statements;
DROP FUNCTION closed_statements_never_change();
