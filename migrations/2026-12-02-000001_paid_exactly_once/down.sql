DROP TRIGGER statement_lines_match_redemptions ON statement_lines;
DROP FUNCTION statement_lines_match_redemptions();
DROP TRIGGER redemptions_kept ON redemptions;
DROP FUNCTION redemptions_are_kept();
DROP TRIGGER redemptions_final_once_paid ON redemptions;
DROP FUNCTION redemptions_final_once_paid();
ALTER TABLE conflicts DROP CONSTRAINT conflicts_elsewhere_names_it, DROP COLUMN kind;
DROP INDEX redemptions_voucher;
DROP INDEX redemptions_one_per_position;
CREATE UNIQUE INDEX redemptions_one_per_voucher ON redemptions (voucher_id)
    WHERE cancelled_at IS NULL AND conflict_id IS NULL;
ALTER TABLE redemptions DROP COLUMN second_payment, DROP COLUMN position, DROP COLUMN lineage_id;
DROP INDEX vouchers_position;
ALTER TABLE vouchers DROP CONSTRAINT vouchers_replace_same_position, DROP CONSTRAINT vouchers_position_key,
    DROP CONSTRAINT vouchers_lineage_of_book, DROP CONSTRAINT vouchers_position_range, DROP COLUMN lineage_id;
DROP TRIGGER books_lineage ON books;
DROP FUNCTION books_continue_lineage();
ALTER TABLE books DROP CONSTRAINT books_first_of_lineage,
    DROP CONSTRAINT books_replacement_lineage, DROP CONSTRAINT books_lineage, DROP COLUMN lineage_id;
