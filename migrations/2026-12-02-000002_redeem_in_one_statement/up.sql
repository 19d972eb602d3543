-- The rules of a redemption in one function, so that a redemption, a check
-- or an offline scan is one statement and one round trip, and every path
-- (online, batch, check) judges with the same code. Each statement inside a
-- plpgsql function reads on a fresh snapshot, so a read after a lock sees what
-- the lock waited for (docs/architecture.md, "Money under concurrency").

CREATE TYPE redemption_judgement AS (
    -- redeemed | refused | redeemable | duplicate | conflict | replay
    outcome           text,
    -- The problem slug of a refusal; `field` names the request field it is about.
    problem           text,
    field             text,
    voucher_id        bigint,
    program_id        integer,
    "position"        smallint,
    book_size         smallint,
    face_value_cents  bigint,
    expires_on        date,
    territory         text[],
    book_revoked      boolean,
    -- The calendar day of the judged instant in the programme's time zone.
    today             date,
    -- The redemption made, or the position's redemption that refused it.
    redemption_id     bigint,
    redeemed_at       timestamptz,
    -- Whether that redemption is the calling venue's.
    mine              boolean,
    -- The answer body of a redemption (also the one recorded for its
    -- Idempotency-Key) and its status, for `redeemed` and `replay`.
    status            smallint,
    body              bytea
);

-- p_mode: 'check' (reads only), 'online' (now) or 'offline' (at p_scanned_at).
-- p_signed_*: the fields signed into a QR code, which must agree with what
-- was issued; NULL for a typed code.
CREATE FUNCTION redeem(
    p_mode text,
    p_voucher_id bigint,
    p_signed_program integer, p_signed_position smallint, p_signed_size smallint, p_signed_expires date,
    p_venue bigint, p_user bigint, p_device bigint,
    p_scanned_at timestamptz,
    p_theme text, p_held_on date, p_duration integer,
    p_principal text, p_key text, p_request_hash bytea
) RETURNS redemption_judgement LANGUAGE plpgsql AS $$
DECLARE
    j redemption_judgement;
    f record;
    l record;
    o record;
    rec record;
    v_at timestamptz := COALESCE(p_scanned_at, now());
    v_kind text;
BEGIN
    j.outcome := 'refused';
    IF p_key IS NOT NULL THEN
        SELECT request_hash, status, response_body INTO rec FROM idempotency_records
         WHERE principal = p_principal AND key = p_key AND created_at > now() - interval '24 hours';
        IF FOUND THEN
            IF rec.request_hash <> p_request_hash THEN
                j.problem := 'idempotency-conflict';
            ELSE
                j.outcome := 'replay'; j.status := rec.status; j.body := rec.response_body;
            END IF;
            RETURN j;
        END IF;
    END IF;
    IF p_mode <> 'check' THEN
        -- Redemptions of one book run side by side; a replace or a revoke
        -- (which lock it for update) waits for them, and they for it.
        PERFORM 1 FROM books WHERE id = (SELECT book_id FROM vouchers WHERE id = p_voucher_id) FOR SHARE;
    END IF;
    SELECT v.id, v.program_id, v.lineage_id, v.position, v.expires_on, v.face_value_cents,
           b.size, b.created_at AS book_created_at, b.revoked_at,
           EXISTS (SELECT 1 FROM vouchers w WHERE w.replaces_voucher_id = v.id) AS replaced,
           p.closed_at, p.territory, p.time_zone, k.status AS key_status
      INTO f
      FROM vouchers v JOIN books b ON b.id = v.book_id JOIN programs p ON p.id = v.program_id
      JOIN signing_keys k ON k.kid = v.kid
     WHERE v.id = p_voucher_id;
    IF NOT FOUND OR (p_signed_program IS NOT NULL AND (p_signed_program, p_signed_position, p_signed_size, p_signed_expires)
                     IS DISTINCT FROM (f.program_id, f.position, f.size, f.expires_on)) THEN
        j.problem := 'not-found';
        j.field := CASE WHEN FOUND THEN 'details' END;
        RETURN j;
    END IF;
    j.voucher_id := f.id; j.program_id := f.program_id; j."position" := f.position; j.book_size := f.size;
    j.face_value_cents := f.face_value_cents; j.expires_on := f.expires_on; j.territory := f.territory;
    j.book_revoked := f.revoked_at IS NOT NULL;
    j.today := (v_at AT TIME ZONE f.time_zone)::date;
    IF p_mode = 'offline' AND p_scanned_at < f.book_created_at THEN
        j.problem := 'validation-error'; j.field := 'scanned_at';
        RETURN j;
    END IF;
    SELECT * INTO o FROM organisations WHERE id = p_venue;
    -- Twice at most: a rival that committed after our read is met by the
    -- insert, and judged like any other redemption of the position.
    FOR attempt IN 1..2 LOOP
        SELECT id, voucher_id, redeemed_at, venue_organisation_id INTO l FROM redemptions
         WHERE lineage_id = f.lineage_id AND position = f.position
           AND cancelled_at IS NULL AND NOT second_payment;
        IF FOUND THEN
            j.redemption_id := l.id; j.redeemed_at := l.redeemed_at; j.mine := l.venue_organisation_id = p_venue;
        END IF;
        -- The position decides first. Online, a used voucher is refused (a
        -- replaced one is not used by its replacement's redemption).
        -- Offline, this venue's own scan is a duplicate; a replaced voucher,
        -- or a position redeemed elsewhere, goes to the funder.
        IF p_mode = 'offline' THEN
            IF FOUND AND l.venue_organisation_id = p_venue AND l.voucher_id = f.id THEN
                j.outcome := 'duplicate'; j.problem := NULL;
                RETURN j;
            END IF;
            v_kind := CASE WHEN f.replaced THEN 'replaced' WHEN FOUND THEN 'redeemed_elsewhere' END;
            IF v_kind IS NOT NULL THEN
                INSERT INTO conflicts (voucher_id, program_id, venue_organisation_id, device_id, user_id, scanned_at,
                                       theme, held_on, duration_minutes, face_value_cents, kind, existing_redemption_id)
                VALUES (f.id, f.program_id, p_venue, p_device, p_user, p_scanned_at,
                        p_theme, p_held_on, p_duration, f.face_value_cents, v_kind, l.id);
                j.outcome := 'conflict'; j.problem := NULL; j.redemption_id := NULL;
                RETURN j;
            END IF;
        ELSIF FOUND AND (l.voucher_id = f.id OR NOT f.replaced) THEN
            j.problem := 'already-redeemed';
            RETURN j;
        END IF;
        j.redemption_id := NULL; j.redeemed_at := NULL; j.mine := NULL;
        -- The rules at the judged instant: a revocation or a closure after a
        -- scan does not count against it.
        j.problem := CASE
            WHEN f.key_status = 'withdrawn' THEN 'unknown-key'
            WHEN j.today > f.expires_on THEN 'voucher-expired'
            WHEN f.revoked_at <= v_at THEN 'voucher-revoked'
            WHEN f.closed_at <= v_at THEN 'program-closed'
            WHEN NOT (o.accredited_since <= v_at AND (o.accreditation_withdrawn_at IS NULL OR o.accreditation_withdrawn_at > v_at)
                      AND j.today <= o.accredited_until) IS TRUE THEN 'venue-not-accredited'
            WHEN NOT (o.departement = ANY (f.territory)) IS TRUE THEN 'venue-out-of-territory'
        END;
        IF j.problem IS NOT NULL THEN
            RETURN j;
        END IF;
        IF p_mode = 'check' THEN
            j.outcome := 'redeemable';
            RETURN j;
        END IF;
        IF p_held_on > j.today OR p_held_on < j.today - 7 THEN
            j.problem := 'validation-error'; j.field := 'workshop.held_on';
            RETURN j;
        END IF;
        INSERT INTO redemptions (voucher_id, program_id, lineage_id, position, venue_organisation_id,
                                 redeemed_by_user_id, redeemed_by_device_id, redeemed_at, theme,
                                 held_on, duration_minutes, face_value_cents)
        VALUES (f.id, f.program_id, f.lineage_id, f.position, p_venue, p_user, p_device, v_at, p_theme,
                p_held_on, p_duration, f.face_value_cents)
        ON CONFLICT (lineage_id, position) WHERE cancelled_at IS NULL AND NOT second_payment DO NOTHING
        RETURNING id, redeemed_at INTO j.redemption_id, j.redeemed_at;
        IF FOUND THEN
            INSERT INTO audit_events (kind, redemption_id, voucher_id, actor_user_id, actor_device_id, actor_organisation_id)
            VALUES ('redeemed', j.redemption_id, f.id, p_user, p_device, p_venue);
            INSERT INTO sync_changes (kind, program_id, voucher_id)
            SELECT 'redeemed', v.program_id, v.id FROM vouchers v
             WHERE v.lineage_id = f.lineage_id AND v.position = f.position;
            j.outcome := 'redeemed'; j.mine := true; j.status := 201;
            j.body := convert_to(json_build_object(
                'id', j.redemption_id, 'voucher_id', f.id::text, 'position', f.position,
                'book_size', f.size, 'face_value_cents', f.face_value_cents,
                'redeemed_at', to_char(j.redeemed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text, 'UTF8');
            IF p_key IS NOT NULL THEN
                -- A rival request with the same key that committed first makes
                -- this fail (unique violation): the caller replays its answer.
                INSERT INTO idempotency_records (principal, key, request_hash, status, response_body)
                VALUES (p_principal, p_key, p_request_hash, j.status, j.body);
            END IF;
            RETURN j;
        END IF;
    END LOOP;
    j.problem := 'conflict';
    RETURN j;
END;
$$;

-- One offline scan: its nonce first (a resent one, even by a batch running
-- now, waits on the primary key, then finds it taken), then the judgement at
-- the scan time, kept with the nonce.
CREATE FUNCTION scan(
    p_nonce text,
    p_voucher_id bigint,
    p_signed_program integer, p_signed_position smallint, p_signed_size smallint, p_signed_expires date,
    p_venue bigint, p_user bigint, p_device bigint,
    p_scanned_at timestamptz,
    p_theme text, p_held_on date, p_duration integer,
    -- A refusal found before the database (a bad code, a bad time): stored as is.
    p_problem text
) RETURNS redemption_judgement LANGUAGE plpgsql AS $$
DECLARE
    j redemption_judgement;
BEGIN
    INSERT INTO scan_nonces (venue_organisation_id, nonce, outcome)
    VALUES (p_venue, p_nonce, 'pending') ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        j.outcome := 'duplicate';
        SELECT redemption_id INTO j.redemption_id FROM scan_nonces
         WHERE venue_organisation_id = p_venue AND nonce = p_nonce;
        RETURN j;
    END IF;
    IF p_problem IS NOT NULL THEN
        j.outcome := 'refused'; j.problem := p_problem;
    ELSE
        j := redeem('offline', p_voucher_id, p_signed_program, p_signed_position, p_signed_size, p_signed_expires,
                    p_venue, p_user, p_device, p_scanned_at, p_theme, p_held_on, p_duration, NULL, NULL, NULL);
    END IF;
    UPDATE scan_nonces
       SET outcome = CASE j.outcome WHEN 'refused' THEN 'rejected' ELSE j.outcome END,
           redemption_id = CASE WHEN j.outcome IN ('redeemed', 'duplicate') THEN j.redemption_id END,
           problem = j.problem
     WHERE venue_organisation_id = p_venue AND nonce = p_nonce;
    RETURN j;
END;
$$;
