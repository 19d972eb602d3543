DROP TABLE invoice_corrections;
DROP TABLE invoices;
DROP FUNCTION invoice_numbers_follow();
DROP FUNCTION issued_invoices_never_change();
DROP TABLE program_invoicing;
DROP TABLE venue_invoicing;
