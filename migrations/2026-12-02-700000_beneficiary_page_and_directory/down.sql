DROP TABLE venue_imports;
DROP TABLE venue_details;
DELETE FROM organisations WHERE national_id IS NOT NULL AND siret IS NULL;
ALTER TABLE organisations DROP CONSTRAINT organisations_registered_or_listed;
ALTER TABLE organisations ADD CONSTRAINT organisations_check
    CHECK (kind = 'operator' OR (siret IS NOT NULL AND address IS NOT NULL
                                 AND postcode IS NOT NULL AND commune_code IS NOT NULL
                                 AND departement IS NOT NULL));
DROP INDEX organisations_siret;
ALTER TABLE organisations DROP COLUMN national_id;
ALTER TABLE organisations ADD CONSTRAINT organisations_siret_key UNIQUE (siret);
DROP TABLE book_link_requests;
DROP TABLE book_links;
