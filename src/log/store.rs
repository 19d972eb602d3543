//! Reads of the stored log: what `/log/…` serves, and the log indexes the
//! API shows beside redemptions.

use diesel::sql_types::{BigInt, Binary, Nullable, SmallInt, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::tree::{TilePath, FULL};
use tlog_tiles::HASH_SIZE;

#[derive(QueryableByName)]
struct Note {
    #[diesel(sql_type = Text)]
    note: String,
}

#[derive(QueryableByName)]
struct Bytes {
    #[diesel(sql_type = Binary)]
    bytes: Vec<u8>,
}

/// The latest signed checkpoint, if the log holds anything.
pub async fn checkpoint(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Option<String>> {
    diesel::sql_query("SELECT note FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1")
        .get_result::<Note>(conn)
        .await
        .optional()
        .map(|n| n.map(|n| n.note))
}

/// The bytes of a tile or entry bundle, if the log has it at that width
/// (a partial tile of a width the log passed is the first hashes of the
/// wider one: tiles only grow).
pub async fn tile(
    conn: &mut AsyncPgConnection,
    path: TilePath,
) -> diesel::QueryResult<Option<Vec<u8>>> {
    let (Ok(n), Ok(width)) = (i64::try_from(path.n), i64::try_from(path.width)) else {
        return Ok(None);
    };
    match path.level {
        Some(level) if level <= 7 => {
            let stored = diesel::sql_query(
                "SELECT hashes AS bytes FROM log_tiles WHERE level = $1 AND n = $2",
            )
            .bind::<SmallInt, _>(i16::from(level))
            .bind::<BigInt, _>(n)
            .get_result::<Bytes>(conn)
            .await
            .optional()?;
            let want = path.width * HASH_SIZE;
            Ok(stored.and_then(|t| (t.bytes.len() >= want).then(|| t.bytes[..want].to_vec())))
        }
        Some(_) => Ok(None),
        None => {
            let Some(first) = n.checked_mul(FULL as i64) else {
                return Ok(None);
            };
            let entries: Vec<Bytes> = diesel::sql_query(
                "SELECT entry AS bytes FROM log_entries
                  WHERE log_index >= $1 AND log_index < $1 + $2 ORDER BY log_index",
            )
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(width)
            .load(conn)
            .await?;
            if entries.len() != path.width {
                return Ok(None);
            }
            let entries: Vec<Vec<u8>> = entries.into_iter().map(|e| e.bytes).collect();
            Ok(Some(super::tree::bundle(&entries)))
        }
    }
}

/// One entry of a redemption in the log: its kind and, once sequenced, its index.
#[derive(Debug, Clone, QueryableByName, serde::Serialize, utoipa::ToSchema)]
pub struct LoggedEvent {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub log_index: Option<i64>,
}

/// The log entries of a redemption, in the order they were written.
pub async fn redemption_entries(
    conn: &mut AsyncPgConnection,
    redemption_id: i64,
) -> diesel::QueryResult<Vec<LoggedEvent>> {
    diesel::sql_query(
        "SELECT kind, log_index FROM log_entries WHERE redemption_id = $1 ORDER BY id",
    )
    .bind::<BigInt, _>(redemption_id)
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct Indexed {
    #[diesel(sql_type = BigInt)]
    redemption_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    log_index: Option<i64>,
}

/// The log index of each redemption's own entry (`redeemed` or
/// `conflict_paid`), once sequenced.
pub async fn redemption_indexes(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> diesel::QueryResult<std::collections::HashMap<i64, i64>> {
    let rows: Vec<Indexed> = diesel::sql_query(
        "SELECT redemption_id, log_index FROM log_entries
          WHERE redemption_id = ANY($1) AND kind IN ('redeemed', 'conflict_paid')",
    )
    .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.log_index.map(|i| (r.redemption_id, i)))
        .collect())
}
