//! Forgetting on schedule: beneficiaries' data of long-expired books, and
//! records that served their purpose. Statements and redemptions stay whole.

use chrono::Months;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{books, idempotency_records, scan_nonces, web_sessions};
use crate::http::problem::ApiError;

/// What a purge removed.
#[derive(Debug, Default)]
pub struct Purged {
    pub books: usize,
    pub idempotency_records: usize,
    pub login_throttle: usize,
    pub scan_nonces: usize,
    pub web_sessions: usize,
}

/// Deletes the beneficiary reference, postcode, commune and email of books
/// that expired more than `months` ago, and stale technical records.
pub async fn purge(conn: &mut AsyncPgConnection, months: u32) -> Result<Purged, ApiError> {
    let today = super::paris::today();
    let cutoff = today
        .checked_sub_months(Months::new(months))
        .ok_or_else(|| ApiError::invalid_field("months", "too far back"))?;
    let books = diesel::update(
        books::table.filter(books::expires_on.lt(cutoff)).filter(
            books::beneficiary_reference
                .is_not_null()
                .or(books::beneficiary_postcode.is_not_null()),
        ),
    )
    .set((
        books::beneficiary_reference.eq(None::<String>),
        books::beneficiary_postcode.eq(None::<String>),
        books::beneficiary_commune_code.eq(None::<String>),
        books::beneficiary_email.eq(None::<String>),
    ))
    .execute(conn)
    .await?;
    let day_ago = chrono::Utc::now() - chrono::Duration::hours(super::idempotency::RETENTION_HOURS);
    let idempotency_records = diesel::delete(
        idempotency_records::table.filter(idempotency_records::created_at.lt(day_ago)),
    )
    .execute(conn)
    .await?;
    let login_throttle = crate::auth::throttle::forget_old(conn).await?;
    // A nonce matters while its scan could be uploaded again: a week, and some.
    let month_ago = chrono::Utc::now() - chrono::Duration::days(30);
    let scan_nonces =
        diesel::delete(scan_nonces::table.filter(scan_nonces::created_at.lt(month_ago)))
            .execute(conn)
            .await?;
    let web_sessions =
        diesel::delete(web_sessions::table.filter(web_sessions::expires_at.lt(diesel::dsl::now)))
            .execute(conn)
            .await?;
    Ok(Purged {
        books,
        idempotency_records,
        login_throttle,
        scan_nonces,
        web_sessions,
    })
}
