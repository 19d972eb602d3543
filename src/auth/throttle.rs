//! Login throttling: too many failures for one email, or from one client
//! address, within a window, and further attempts are refused for a while.
//! Counted in PostgreSQL, so every instance sees the same attempts.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::login_failures;

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const MAX_FAILURES_PER_EMAIL: i64 = 5;
pub const MAX_FAILURES_PER_CLIENT: i64 = 30;

/// Whether `email` or `client_ip` has failed too often lately.
pub async fn is_throttled(
    conn: &mut AsyncPgConnection,
    email: &str,
    client_ip: &str,
) -> QueryResult<bool> {
    let since = chrono::Utc::now() - WINDOW;
    let by_email: i64 = login_failures::table
        .filter(login_failures::email.eq(email))
        .filter(login_failures::failed_at.gt(since))
        .count()
        .get_result(conn)
        .await?;
    if by_email >= MAX_FAILURES_PER_EMAIL {
        return Ok(true);
    }
    let by_client: i64 = login_failures::table
        .filter(login_failures::client_ip.eq(client_ip))
        .filter(login_failures::failed_at.gt(since))
        .count()
        .get_result(conn)
        .await?;
    Ok(by_client >= MAX_FAILURES_PER_CLIENT)
}

pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    email: &str,
    client_ip: &str,
) -> QueryResult<()> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::email.eq(email),
            login_failures::client_ip.eq(client_ip),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// After a success, the email's slate is clean again; rows past the window
/// serve nobody and go too.
pub async fn forget(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<()> {
    let expired = chrono::Utc::now() - WINDOW;
    diesel::delete(
        login_failures::table.filter(
            login_failures::email
                .eq(email)
                .or(login_failures::failed_at.lt(expired)),
        ),
    )
    .execute(conn)
    .await?;
    Ok(())
}
