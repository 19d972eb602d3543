//! The change feed that offline scanners sync from, so a device can refuse
//! locally what the server would refuse.
//!
//! Changes are read by transaction id, not by insertion order: a change
//! becomes visible only once its transaction commits, and every transaction
//! older than the reader's snapshot `xmin` has finished. The cursor handed to
//! the device is that `xmin`, so the next sync starts exactly where this one
//! could see everything, and a late commit is never skipped.

use diesel::sql_types::{BigInt, Integer, Nullable, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;

use super::books::USED;
use super::organisations::Organisation;
use crate::http::problem::ApiError;

/// Records one change, in the transaction that makes it.
pub async fn record(
    conn: &mut AsyncPgConnection,
    kind: &str,
    program_id: Option<i32>,
    voucher_id: Option<i64>,
    kid: Option<i16>,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO sync_changes (kind, program_id, voucher_id, kid) VALUES ($1, $2, $3, $4)",
    )
    .bind::<Text, _>(kind)
    .bind::<Nullable<Integer>, _>(program_id)
    .bind::<Nullable<BigInt>, _>(voucher_id)
    .bind::<Nullable<SmallInt>, _>(kid)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the revocation of a book's vouchers that were not redeemed.
pub async fn record_revoked_book(
    conn: &mut AsyncPgConnection,
    book_id: i64,
) -> diesel::QueryResult<()> {
    diesel::sql_query(format!(
        "INSERT INTO sync_changes (kind, program_id, voucher_id)
         SELECT 'revoked', v.program_id, v.id FROM vouchers v
         WHERE v.book_id = $1 AND NOT {USED}"
    ))
    .bind::<BigInt, _>(book_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SyncAnswer {
    /// Pass it as `since` next time.
    pub cursor: String,
    #[schema(value_type = Vec<String>)]
    pub revoked_voucher_ids: Vec<String>,
    #[schema(value_type = Vec<String>)]
    pub redeemed_voucher_ids: Vec<String>,
    #[schema(value_type = Vec<String>)]
    pub reopened_voucher_ids: Vec<String>,
    /// Kids in decimal, as in the JWK Set.
    pub withdrawn_kids: Vec<String>,
    pub closed_program_ids: Vec<i32>,
}

#[derive(QueryableByName)]
struct Horizon {
    #[diesel(sql_type = BigInt)]
    xmin: i64,
}

#[derive(QueryableByName)]
struct Change {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<Integer>)]
    program_id: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    voucher_id: Option<i64>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    kid: Option<i16>,
}

/// What changed for `venue`'s programmes (those whose territory holds its
/// département) since `since`; from the start, the current state.
pub async fn changes(
    conn: &mut AsyncPgConnection,
    venue: &Organisation,
    since: Option<i64>,
) -> Result<SyncAnswer, ApiError> {
    // One snapshot for the horizon and the reads.
    let departement = venue.departement.clone().unwrap_or_default();
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run::<_, ApiError, _>(async |conn| {
            let horizon: Horizon = diesel::sql_query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin")
                .get_result(conn)
                .await?;
            let rows: Vec<Change> = match since {
                Some(since) => {
                    diesel::sql_query(
                        "SELECT c.kind, c.program_id, c.voucher_id, c.kid FROM sync_changes c
                         WHERE c.tx >= $1::text::xid8 AND c.tx < $2::text::xid8
                           AND (c.program_id IS NULL
                                OR c.program_id IN (SELECT id FROM programs WHERE $3 = ANY (territory)))
                         ORDER BY c.tx",
                    )
                    .bind::<Text, _>(since.to_string())
                    .bind::<Text, _>(horizon.xmin.to_string())
                    .bind::<Text, _>(&departement)
                    .load(conn)
                    .await?
                }
                None => current_state(conn, &departement).await?,
            };
            let mut answer = SyncAnswer {
                cursor: horizon.xmin.to_string(),
                ..SyncAnswer::default()
            };
            for change in rows {
                let voucher = change.voucher_id.map(|v| v.to_string());
                match (change.kind.as_str(), voucher) {
                    ("revoked", Some(v)) => answer.revoked_voucher_ids.push(v),
                    ("redeemed", Some(v)) => answer.redeemed_voucher_ids.push(v),
                    ("reopened", Some(v)) => answer.reopened_voucher_ids.push(v),
                    ("withdrawn_kid", _) => answer.withdrawn_kids.extend(change.kid.map(|k| k.to_string())),
                    ("closed_program", _) => answer.closed_program_ids.extend(change.program_id),
                    _ => {}
                }
            }
            Ok(answer)
        })
        .await
}

/// The state a new device starts from, as changes: revoked and redeemed
/// vouchers that could still be scanned, withdrawn keys, closed programmes.
async fn current_state(
    conn: &mut AsyncPgConnection,
    departement: &str,
) -> diesel::QueryResult<Vec<Change>> {
    diesel::sql_query(format!(
        "WITH mine AS (SELECT id FROM programs WHERE $1 = ANY (territory)),
              recent AS (SELECT v.*, {USED} AS used FROM vouchers v
                          WHERE v.program_id IN (SELECT id FROM mine) AND v.expires_on >= current_date - 1)
         SELECT 'revoked' AS kind, v.program_id, v.id AS voucher_id, NULL::smallint AS kid
           FROM recent v JOIN books b ON b.id = v.book_id
          WHERE b.revoked_at IS NOT NULL AND NOT v.used
         UNION ALL
         SELECT 'redeemed', v.program_id, v.id, NULL FROM recent v WHERE v.used
         UNION ALL
         SELECT 'withdrawn_kid', NULL, NULL, kid FROM signing_keys WHERE status = 'withdrawn'
         UNION ALL
         SELECT 'closed_program', id, NULL, NULL FROM programs
          WHERE id IN (SELECT id FROM mine) AND closed_at IS NOT NULL"
    ))
    .bind::<Text, _>(departement)
    .load(conn)
    .await
}
