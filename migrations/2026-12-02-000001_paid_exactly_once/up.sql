-- Paid exactly once, whatever runs at the same time.
--
-- 1. A position key. A book and every replacement of it form one lineage (the
--    id of the first book); a voucher's position key is (lineage, position).
--    A position is paid at most once, whichever of its vouchers is scanned.
ALTER TABLE books ADD COLUMN lineage_id bigint;
WITH RECURSIVE chain (id, lineage_id) AS (
    SELECT id, id FROM books WHERE replaces_book_id IS NULL
    UNION ALL
    SELECT b.id, c.lineage_id FROM books b JOIN chain c ON b.replaces_book_id = c.id
)
UPDATE books SET lineage_id = chain.lineage_id FROM chain WHERE books.id = chain.id;
ALTER TABLE books
    ALTER COLUMN lineage_id SET NOT NULL,
    ADD CONSTRAINT books_lineage UNIQUE (id, lineage_id),
    -- A replacement continues the lineage of the book it replaces.
    ADD CONSTRAINT books_replacement_lineage FOREIGN KEY (replaces_book_id, lineage_id)
        REFERENCES books (id, lineage_id),
    ADD CONSTRAINT books_first_of_lineage CHECK (replaces_book_id IS NOT NULL OR lineage_id = id);

CREATE FUNCTION books_continue_lineage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.lineage_id := COALESCE(
        (SELECT lineage_id FROM books WHERE id = NEW.replaces_book_id), NEW.id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER books_lineage BEFORE INSERT ON books
    FOR EACH ROW EXECUTE FUNCTION books_continue_lineage();

ALTER TABLE vouchers ADD COLUMN lineage_id bigint;
UPDATE vouchers v SET lineage_id = b.lineage_id FROM books b WHERE b.id = v.book_id;
ALTER TABLE vouchers
    ALTER COLUMN lineage_id SET NOT NULL,
    ADD CONSTRAINT vouchers_position_range CHECK (position BETWEEN 1 AND 10),
    ADD CONSTRAINT vouchers_lineage_of_book FOREIGN KEY (book_id, lineage_id)
        REFERENCES books (id, lineage_id),
    ADD CONSTRAINT vouchers_position_key UNIQUE (id, lineage_id, position),
    -- A replacement voucher stands for the voucher of the same position key.
    ADD CONSTRAINT vouchers_replace_same_position FOREIGN KEY (replaces_voucher_id, lineage_id, position)
        REFERENCES vouchers (id, lineage_id, position);
CREATE INDEX vouchers_position ON vouchers (lineage_id, position);

-- A redemption carries its voucher's position key (checked against the
-- voucher by a foreign key). A paid conflict whose position was already paid
-- is a second payment: the funder's explicit decision, outside the rule.
ALTER TABLE redemptions
    ADD COLUMN lineage_id bigint,
    ADD COLUMN position smallint,
    ADD COLUMN second_payment boolean NOT NULL DEFAULT false;
UPDATE redemptions r
   SET lineage_id = v.lineage_id, position = v.position, second_payment = r.conflict_id IS NOT NULL
  FROM vouchers v WHERE v.id = r.voucher_id;
ALTER TABLE redemptions
    ALTER COLUMN lineage_id SET NOT NULL,
    ALTER COLUMN position SET NOT NULL,
    ADD CONSTRAINT redemptions_position_of_voucher FOREIGN KEY (voucher_id, lineage_id, position)
        REFERENCES vouchers (id, lineage_id, position),
    ADD CONSTRAINT redemptions_second_payment_by_funder CHECK (NOT second_payment OR conflict_id IS NOT NULL);
DROP INDEX redemptions_one_per_voucher;
-- The heart of "exactly once". If two live redemptions of one position are
-- already stored, this fails and the migration stops: a person must look.
CREATE UNIQUE INDEX redemptions_one_per_position ON redemptions (lineage_id, position)
    WHERE cancelled_at IS NULL AND NOT second_payment;
CREATE INDEX redemptions_voucher ON redemptions (voucher_id);

-- 2. Conflicts: a voucher redeemed elsewhere first, or a voucher that was
--    replaced (scanned offline before its book was replaced). A replaced one is
--    never paid beside its replacement: paying it takes the position.
ALTER TABLE conflicts
    ADD COLUMN kind text NOT NULL DEFAULT 'redeemed_elsewhere'
        CHECK (kind IN ('redeemed_elsewhere', 'replaced')),
    ALTER COLUMN existing_redemption_id DROP NOT NULL,
    ADD CONSTRAINT conflicts_elsewhere_names_it CHECK (kind = 'replaced' OR existing_redemption_id IS NOT NULL);

-- 3. A redemption on a closed statement is final: nothing about it changes
--    but a reversal by the funder, which lands on the next statement. The
--    check runs after the row lock is taken and, in a trigger, on a fresh
--    snapshot: a cancel that waited for a closing statement sees its lines.
CREATE FUNCTION redemptions_final_once_paid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM statement_lines WHERE redemption_id = OLD.id AND kind = 'redemption')
       AND to_jsonb(NEW) - 'reversed_at' - 'reversed_by_user_id' - 'reverse_reason'
           IS DISTINCT FROM to_jsonb(OLD) - 'reversed_at' - 'reversed_by_user_id' - 'reverse_reason'
    THEN
        RAISE EXCEPTION 'redemption % is on a closed statement: only a reversal may follow', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'redemptions_final_once_paid';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER redemptions_final_once_paid BEFORE UPDATE ON redemptions
    FOR EACH ROW EXECUTE FUNCTION redemptions_final_once_paid();

-- Redemptions are events: never deleted.
CREATE FUNCTION redemptions_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'redemptions are never deleted' USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER redemptions_kept BEFORE DELETE ON redemptions
    FOR EACH ROW EXECUTE FUNCTION redemptions_are_kept();

-- A statement's lines are written by the transaction that closes it (now()
-- is the transaction's start, its closed_at), never added later. It pays
-- only live redemptions and takes back only reversed ones: FOR SHARE waits
-- for a cancel or reversal in flight, then reads its outcome.
CREATE FUNCTION statement_lines_match_redemptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT closed_at FROM statements WHERE id = NEW.statement_id) IS DISTINCT FROM now() THEN
        RAISE EXCEPTION 'a closed statement never changes'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'statement_lines_match_redemptions';
    END IF;
    PERFORM 1 FROM redemptions r
      WHERE r.id = NEW.redemption_id AND r.cancelled_at IS NULL
        AND CASE NEW.kind WHEN 'redemption' THEN r.reversed_at IS NULL ELSE r.reversed_at IS NOT NULL END
        FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'redemption % cannot be on a statement as a % line', NEW.redemption_id, NEW.kind
            USING ERRCODE = 'check_violation', CONSTRAINT = 'statement_lines_match_redemptions';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER statement_lines_match_redemptions BEFORE INSERT ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION statement_lines_match_redemptions();
