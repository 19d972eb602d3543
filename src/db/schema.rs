//! The database schema, as diesel sees it. Kept by hand beside `migrations/`.

diesel::table! {
    signing_keys (kid) {
        kid -> SmallInt,
        purpose -> Text,
        public_key -> Binary,
        status -> Text,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
        withdrawn_at -> Nullable<Timestamptz>,
        withdrawn_reason -> Nullable<Text>,
    }
}

diesel::table! {
    organisations (id) {
        id -> BigInt,
        kind -> Text,
        name -> Text,
        siret -> Nullable<Bpchar>,
        address -> Nullable<Text>,
        postcode -> Nullable<Bpchar>,
        commune_code -> Nullable<Bpchar>,
        departement -> Nullable<Text>,
        latitude -> Nullable<Double>,
        longitude -> Nullable<Double>,
        phone -> Nullable<Text>,
        accredited_since -> Nullable<Timestamptz>,
        accredited_until -> Nullable<Date>,
        accreditation_withdrawn_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        national_id -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        organisation_id -> BigInt,
        email -> Text,
        password_hash -> Text,
        deactivated_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    login_throttle (scope, key) {
        scope -> Text,
        key -> Text,
        failures -> Integer,
        last_failure_at -> Timestamptz,
    }
}

diesel::joinable!(users -> organisations (organisation_id));

diesel::table! {
    programs (id) {
        id -> Integer,
        funder_organisation_id -> BigInt,
        name -> Text,
        face_value_cents -> BigInt,
        budget_cents -> BigInt,
        issue_until -> Date,
        voucher_validity_days -> Integer,
        territory -> Array<Text>,
        time_zone -> Text,
        allocated_vouchers -> BigInt,
        closed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    allocations (id) {
        id -> BigInt,
        program_id -> Integer,
        issuer_organisation_id -> BigInt,
        vouchers -> Integer,
        used_vouchers -> Integer,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    books (id) {
        id -> BigInt,
        program_id -> Integer,
        issuer_organisation_id -> BigInt,
        issued_by_user_id -> BigInt,
        size -> SmallInt,
        issued_on -> Date,
        expires_on -> Date,
        beneficiary_reference -> Nullable<Text>,
        beneficiary_postcode -> Nullable<Bpchar>,
        beneficiary_commune_code -> Nullable<Bpchar>,
        beneficiary_departement -> Text,
        beneficiary_email -> Nullable<Text>,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        replaces_book_id -> Nullable<BigInt>,
        created_at -> Timestamptz,
        lineage_id -> BigInt,
    }
}

diesel::table! {
    vouchers (id) {
        id -> BigInt,
        book_id -> BigInt,
        program_id -> Integer,
        kid -> SmallInt,
        position -> SmallInt,
        expires_on -> Date,
        face_value_cents -> BigInt,
        code -> Text,
        replaces_voucher_id -> Nullable<BigInt>,
        lineage_id -> BigInt,
    }
}

diesel::table! {
    devices (id) {
        id -> BigInt,
        venue_organisation_id -> BigInt,
        name -> Text,
        token_hash -> Binary,
        created_by_user_id -> BigInt,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    conflicts (id) {
        id -> BigInt,
        voucher_id -> BigInt,
        program_id -> Integer,
        venue_organisation_id -> BigInt,
        device_id -> Nullable<BigInt>,
        user_id -> Nullable<BigInt>,
        scanned_at -> Timestamptz,
        theme -> Text,
        held_on -> Date,
        duration_minutes -> Integer,
        face_value_cents -> BigInt,
        existing_redemption_id -> Nullable<BigInt>,
        created_at -> Timestamptz,
        decision -> Nullable<Text>,
        decided_at -> Nullable<Timestamptz>,
        decided_by_user_id -> Nullable<BigInt>,
        decision_reason -> Nullable<Text>,
        kind -> Text,
    }
}

diesel::table! {
    scan_nonces (venue_organisation_id, nonce) {
        venue_organisation_id -> BigInt,
        nonce -> Text,
        outcome -> Text,
        redemption_id -> Nullable<BigInt>,
        problem -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    book_sends (id) {
        id -> BigInt,
        book_id -> BigInt,
        user_id -> BigInt,
        at -> Timestamptz,
        outcome -> Text,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    statements (id) {
        id -> BigInt,
        program_id -> Integer,
        number -> Integer,
        period_start -> Date,
        period_end -> Date,
        closed_at -> Timestamptz,
        closed_by_user_id -> BigInt,
        total_count -> Integer,
        total_cents -> BigInt,
        csv -> Binary,
        sha256 -> Text,
        kid -> SmallInt,
        signature -> Text,
    }
}

diesel::table! {
    statement_lines (redemption_id, kind) {
        statement_id -> BigInt,
        redemption_id -> BigInt,
        kind -> Text,
        amount_cents -> BigInt,
    }
}

diesel::table! {
    statement_extracts (statement_id, venue_organisation_id) {
        statement_id -> BigInt,
        venue_organisation_id -> BigInt,
        line_count -> Integer,
        total_cents -> BigInt,
        csv -> Binary,
        sha256 -> Text,
        signature -> Text,
    }
}

diesel::table! {
    statement_payments (statement_id, venue_organisation_id) {
        statement_id -> BigInt,
        venue_organisation_id -> BigInt,
        amount_cents -> BigInt,
        paid_on -> Date,
        reference -> Text,
        recorded_at -> Timestamptz,
        recorded_by_user_id -> BigInt,
    }
}

diesel::table! {
    statement_carries (from_statement_id, venue_organisation_id) {
        from_statement_id -> BigInt,
        venue_organisation_id -> BigInt,
        statement_id -> BigInt,
        amount_cents -> BigInt,
    }
}

diesel::joinable!(allocations -> programs (program_id));
diesel::joinable!(books -> programs (program_id));
diesel::joinable!(vouchers -> books (book_id));
diesel::joinable!(statement_extracts -> organisations (venue_organisation_id));
diesel::joinable!(statements -> programs (program_id));

diesel::table! {
    redemptions (id) {
        id -> BigInt,
        voucher_id -> BigInt,
        program_id -> Integer,
        venue_organisation_id -> BigInt,
        redeemed_by_user_id -> Nullable<BigInt>,
        redeemed_at -> Timestamptz,
        theme -> Text,
        held_on -> Date,
        duration_minutes -> Integer,
        face_value_cents -> BigInt,
        cancelled_at -> Nullable<Timestamptz>,
        cancelled_by_user_id -> Nullable<BigInt>,
        cancel_reason -> Nullable<Text>,
        reversed_at -> Nullable<Timestamptz>,
        reversed_by_user_id -> Nullable<BigInt>,
        reverse_reason -> Nullable<Text>,
        redeemed_by_device_id -> Nullable<BigInt>,
        conflict_id -> Nullable<BigInt>,
        lineage_id -> BigInt,
        position -> SmallInt,
        second_payment -> Bool,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> Timestamptz,
        kind -> Text,
        redemption_id -> BigInt,
        voucher_id -> BigInt,
        actor_user_id -> Nullable<BigInt>,
        actor_organisation_id -> BigInt,
        reason -> Nullable<Text>,
        actor_device_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    idempotency_records (principal, key) {
        principal -> Text,
        key -> Text,
        request_hash -> Binary,
        status -> SmallInt,
        response_body -> Binary,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(redemptions -> vouchers (voucher_id));
diesel::joinable!(vouchers -> signing_keys (kid));

diesel::allow_tables_to_appear_in_same_query!(
    signing_keys,
    organisations,
    users,
    login_throttle,
    programs,
    allocations,
    books,
    vouchers,
    redemptions,
    audit_events,
    idempotency_records,
    devices,
    conflicts,
    scan_nonces,
    book_sends,
    statements,
    statement_lines,
    statement_extracts,
    statement_payments,
    statement_carries,
    web_sessions,
    venue_invoicing,
    program_invoicing,
    invoices,
    invoice_corrections,
);

diesel::table! {
    web_sessions (token_hash) {
        token_hash -> Binary,
        user_id -> BigInt,
        csrf_token -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(web_sessions -> users (user_id));

diesel::table! {
    venue_invoicing (organisation_id) {
        organisation_id -> BigInt,
        legal_name -> Text,
        address -> Text,
        postcode -> Text,
        city -> Text,
        vat_regime -> Text,
        vat_exemption_reason -> Nullable<Text>,
        vat_number -> Nullable<Text>,
        vat_rate_basis_points -> Nullable<Integer>,
        iban -> Text,
        bic -> Nullable<Text>,
        updated_at -> Timestamptz,
        updated_by_user_id -> BigInt,
    }
}

diesel::table! {
    program_invoicing (program_id) {
        program_id -> Integer,
        buyer_siret -> Text,
        service_code -> Nullable<Text>,
        engagement_number -> Nullable<Text>,
        updated_at -> Timestamptz,
        updated_by_user_id -> BigInt,
    }
}

diesel::table! {
    invoices (id) {
        id -> BigInt,
        statement_id -> BigInt,
        venue_organisation_id -> BigInt,
        type_code -> SmallInt,
        sequence -> Integer,
        number -> Text,
        issued_on -> Date,
        issued_at -> Timestamptz,
        total_cents -> BigInt,
        document -> Jsonb,
        xml -> Binary,
    }
}

diesel::table! {
    invoice_corrections (credit_note_id, invoice_id) {
        credit_note_id -> BigInt,
        invoice_id -> BigInt,
    }
}

diesel::joinable!(venue_invoicing -> organisations (organisation_id));
diesel::joinable!(program_invoicing -> programs (program_id));

diesel::table! {
    book_links (id) {
        id -> BigInt,
        book_id -> BigInt,
        secret_sha256 -> Binary,
        made_for -> Text,
        created_by_user_id -> Nullable<BigInt>,
        created_at -> Timestamptz,
        killed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    book_link_requests (client_ip, at) {
        client_ip -> Text,
        at -> Timestamptz,
        hit -> Bool,
    }
}

diesel::table! {
    venue_details (organisation_id) {
        organisation_id -> BigInt,
        opening_hours -> Nullable<Text>,
        services -> Array<Text>,
        accessibility -> Nullable<Text>,
        takes_pass -> Bool,
        website -> Nullable<Text>,
        national_updated_on -> Nullable<Date>,
        imported_at -> Nullable<Timestamptz>,
        self_edited_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    venue_imports (id) {
        id -> BigInt,
        file_name -> Text,
        file_sha256 -> Text,
        started_at -> Timestamptz,
        finished_at -> Timestamptz,
        rows_read -> Integer,
        created -> Integer,
        updated -> Integer,
        unchanged -> Integer,
        rejected -> Integer,
        rejections -> Jsonb,
    }
}
