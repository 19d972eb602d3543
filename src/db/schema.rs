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
    login_failures (id) {
        id -> BigInt,
        email -> Text,
        client_ip -> Text,
        failed_at -> Timestamptz,
    }
}

diesel::joinable!(users -> organisations (organisation_id));
diesel::allow_tables_to_appear_in_same_query!(organisations, users);
