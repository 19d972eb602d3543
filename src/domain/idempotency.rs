//! `Idempotency-Key`: a replay by the same caller (a user, or a scanner
//! device) within 24 h gets the first answer; the same key with another body
//! is refused. Records live in PostgreSQL, so a retry that reaches another
//! instance is recognised too.
//!
//! A record is written in the same transaction as the effect it describes, so
//! an answer is recorded exactly when its effect is committed. Refusals store
//! nothing (and change nothing): a replay of one is judged afresh.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

use crate::db::schema::idempotency_records;
use crate::http::problem::{ApiError, ProblemType};

/// How long an answer is remembered.
pub const RETENTION_HOURS: i64 = 24;

/// A recorded answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub status: u16,
    pub body: Vec<u8>,
}

pub fn request_hash(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update([0]);
    hash.update(path.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize().to_vec()
}

pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "1 to 255 printable ASCII characters (a UUID is a good choice)",
        ));
    }
    Ok(())
}

/// The answer recorded for this key, if any, within the retention window.
/// The same key with another request is `idempotency-conflict`.
pub async fn lookup(
    conn: &mut AsyncPgConnection,
    principal: &str,
    key: &str,
    hash: &[u8],
) -> Result<Option<Recorded>, ApiError> {
    let since = chrono::Utc::now() - chrono::Duration::hours(RETENTION_HOURS);
    let row: Option<(Vec<u8>, i16, Vec<u8>)> = idempotency_records::table
        .find((principal, key))
        .filter(idempotency_records::created_at.gt(since))
        .select((
            idempotency_records::request_hash,
            idempotency_records::status,
            idempotency_records::response_body,
        ))
        .first(conn)
        .await
        .optional()?;
    match row {
        None => Ok(None),
        Some((stored, _, _)) if stored != hash => Err(ApiError::new(
            ProblemType::IdempotencyConflict,
            "This Idempotency-Key was already used with another request.",
        )),
        Some((_, status, body)) => Ok(Some(Recorded {
            status: status as u16,
            body,
        })),
    }
}

/// Records an answer, inside the transaction of its effect. A concurrent
/// request with the same key waits on the primary key, then fails here.
pub async fn record(
    conn: &mut AsyncPgConnection,
    principal: &str,
    key: &str,
    hash: &[u8],
    answer: &Recorded,
) -> QueryResult<()> {
    let expired = chrono::Utc::now() - chrono::Duration::hours(RETENTION_HOURS);
    // A record past its retention gives way to the new one.
    diesel::delete(
        idempotency_records::table
            .find((principal, key))
            .filter(idempotency_records::created_at.le(expired)),
    )
    .execute(conn)
    .await?;
    diesel::insert_into(idempotency_records::table)
        .values((
            idempotency_records::principal.eq(principal),
            idempotency_records::key.eq(key),
            idempotency_records::request_hash.eq(hash),
            idempotency_records::status.eq(answer.status as i16),
            idempotency_records::response_body.eq(&answer.body),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
