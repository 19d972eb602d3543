//! Login throttling, counted in PostgreSQL so every instance sees the same
//! attempts, per account (its e-mail) and per client address.
//!
//! The first failures are free. After them each attempt waits longer since
//! the last failure (5 s, 10 s, 20 s …, at most 15 minutes for an account and
//! one minute for an address): nobody is locked out, however many guesses
//! others made, and a guesser gets a handful of tries an hour. Failures are
//! forgotten after an hour without one.
//!
//! An attempt is counted as a failure when it is admitted, in the one
//! statement that decides, before its password is checked: concurrent
//! guesses cannot slip past the limit. A success takes it back.

use std::net::IpAddr;

use diesel::sql_types::{Double, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Failures an account may have before attempts wait.
pub const FREE_PER_EMAIL: i32 = 5;
/// Failures a client address may have before its attempts wait: an office
/// behind one address makes typos too.
pub const FREE_PER_CLIENT: i32 = 30;
/// The wait after the first failure past the free ones; it doubles after each.
pub const FIRST_WAIT_SECS: i32 = 5;
pub const MAX_WAIT_PER_EMAIL_SECS: i32 = 15 * 60;
pub const MAX_WAIT_PER_CLIENT_SECS: i32 = 60;
/// Failures older than this (since the last one) are forgotten.
pub const FORGET_AFTER_SECS: i32 = 60 * 60;

/// Whether an attempt may check its password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead: the attempt is counted as a failure until it succeeds.
    Admitted,
    /// Wait this long first.
    Wait { secs: u64 },
}

#[derive(QueryableByName)]
struct Verdict {
    #[diesel(sql_type = Double)]
    wait: f64,
}

/// Admits an attempt for `email` from `client`, counting it, or says how
/// long to wait; nothing is counted then.
pub async fn admit(
    conn: &mut AsyncPgConnection,
    email: &str,
    client: IpAddr,
) -> diesel::QueryResult<Admission> {
    let client = client.to_string();
    // The rows exist first, so the deciding statement can lock both.
    diesel::sql_query(
        "INSERT INTO login_throttle (scope, key) VALUES ('client', $1), ('email', $2)
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(&client)
    .bind::<Text, _>(email)
    .execute(conn)
    .await?;
    // Locked in one order (client, then email) by every attempt: a rival
    // waits here and then sees the count this one left.
    let verdict: Verdict = diesel::sql_query(
        "WITH current AS (
             SELECT scope, key, last_failure_at,
                    CASE WHEN last_failure_at < now() - make_interval(secs => $3) THEN 0
                         ELSE failures END AS failures,
                    CASE scope WHEN 'email' THEN $4 ELSE $5 END AS free,
                    CASE scope WHEN 'email' THEN $6 ELSE $7 END AS max_wait
               FROM login_throttle
              WHERE (scope = 'client' AND key = $1) OR (scope = 'email' AND key = $2)
              ORDER BY scope, key
                FOR UPDATE
         ), waits AS (
             SELECT scope, key, failures,
                    GREATEST(0, EXTRACT(EPOCH FROM last_failure_at - now())::float8
                        + CASE WHEN failures < free THEN 0
                               ELSE LEAST(max_wait, $8 * 2 ^ LEAST(failures - free, 30)) END) AS wait
               FROM current
         ), verdict AS (
             SELECT COALESCE(max(wait), 0) AS wait FROM waits
         ), counted AS (
             UPDATE login_throttle t SET failures = w.failures + 1, last_failure_at = now()
               FROM waits w
              WHERE (SELECT wait FROM verdict) = 0 AND t.scope = w.scope AND t.key = w.key
             RETURNING 1
         )
         SELECT wait FROM verdict",
    )
    .bind::<Text, _>(&client)
    .bind::<Text, _>(email)
    .bind::<diesel::sql_types::Integer, _>(FORGET_AFTER_SECS)
    .bind::<diesel::sql_types::Integer, _>(FREE_PER_EMAIL)
    .bind::<diesel::sql_types::Integer, _>(FREE_PER_CLIENT)
    .bind::<diesel::sql_types::Integer, _>(MAX_WAIT_PER_EMAIL_SECS)
    .bind::<diesel::sql_types::Integer, _>(MAX_WAIT_PER_CLIENT_SECS)
    .bind::<diesel::sql_types::Integer, _>(FIRST_WAIT_SECS)
    .get_result(conn)
    .await?;
    Ok(if verdict.wait > 0.0 {
        Admission::Wait {
            secs: verdict.wait.ceil() as u64,
        }
    } else {
        Admission::Admitted
    })
}

/// After a success: the account's slate is clean again, and the address
/// gets back the failure its attempt was counted as.
pub async fn succeeded(
    conn: &mut AsyncPgConnection,
    email: &str,
    client: IpAddr,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "WITH account AS (DELETE FROM login_throttle WHERE scope = 'email' AND key = $2)
         UPDATE login_throttle SET failures = GREATEST(failures - 1, 0)
          WHERE scope = 'client' AND key = $1",
    )
    .bind::<Text, _>(client.to_string())
    .bind::<Text, _>(email)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes back the failure an admitted attempt was counted as, when the
/// attempt could not be made after all (the password queue was full).
pub async fn not_made(
    conn: &mut AsyncPgConnection,
    email: &str,
    client: IpAddr,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "UPDATE login_throttle SET failures = GREATEST(failures - 1, 0)
          WHERE (scope = 'client' AND key = $1) OR (scope = 'email' AND key = $2)",
    )
    .bind::<Text, _>(client.to_string())
    .bind::<Text, _>(email)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows whose failures are forgotten serve nobody (`passnum purge`).
pub async fn forget_old(conn: &mut AsyncPgConnection) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM login_throttle WHERE last_failure_at < now() - make_interval(secs => $1)",
    )
    .bind::<diesel::sql_types::Integer, _>(FORGET_AFTER_SECS)
    .execute(conn)
    .await
}
