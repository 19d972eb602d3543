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
