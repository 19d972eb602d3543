//! The sequencer: gives the committed entries their index, stores the tiles
//! and signs a checkpoint, in one transaction, one instance at a time.
//!
//! Every instance runs it every `PASSNUM_LOG_INTERVAL_MS` (1 s by default);
//! the one that takes the row lock of `log_state` first does the work, the
//! others skip (`SKIP LOCKED`), so several instances never race, and one that
//! dies mid-way leaves nothing behind (its transaction rolls back).
//! An entry is sequenced in the order the sequencer finds it committed; in
//! one batch, in the order the entries were written.

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{Array, BigInt, Binary, SmallInt};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tlog_tiles::{record_hash, Hash};

use super::note::{self, NoteSigner};
use super::tree::{edge_tiles, tile_bytes, Tiles};
use crate::db::Pool;
use crate::keys::{KeyError, KeyRing, Purpose};

/// The most entries one transaction sequences; more wait for the next round,
/// which follows at once.
pub const BATCH: i64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database unreachable: {0}")]
    Pool(#[from] diesel_async::pooled_connection::deadpool::PoolError),
    #[error("log key: {0}")]
    Keys(#[from] KeyError),
    #[error("the stored tiles do not match the log's size: {0}")]
    Tiles(String),
    #[error("the tree: {0}")]
    Tree(String),
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Another instance holds the sequencer's lock.
    Busy,
    /// The log grew from `from` to `to` entries, with a checkpoint at `to`.
    Grew { from: u64, to: u64 },
    /// Nothing was waiting.
    Idle { size: u64 },
}

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = BigInt)]
    size: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    origin: Option<String>,
}

#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Binary)]
    entry: Vec<u8>,
}

#[derive(QueryableByName)]
struct StoredTile {
    #[diesel(sql_type = SmallInt)]
    level: i16,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Binary)]
    hashes: Vec<u8>,
}

/// Runs rounds every `interval` until the runtime stops; a failed round is
/// logged and tried again at the next tick.
pub fn start(pool: Pool, keys: Arc<KeyRing>, origin: String, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            loop {
                match run_round(&pool, &keys, &origin).await {
                    Ok(Round::Grew { from, to }) => {
                        tracing::debug!(from, to, "transparency log grew");
                        if to - from < BATCH as u64 {
                            break;
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "the transparency log's sequencer failed; trying again");
                        break;
                    }
                }
            }
        }
    });
}

/// The log's origin: the one it was given first, else `configured`.
pub async fn origin(conn: &mut AsyncPgConnection, configured: &str) -> diesel::QueryResult<String> {
    #[derive(QueryableByName)]
    struct Origin {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        origin: Option<String>,
    }
    let stored: Origin = diesel::sql_query("SELECT origin FROM log_state")
        .get_result(conn)
        .await?;
    Ok(stored.origin.unwrap_or_else(|| configured.to_owned()))
}

/// One round on a pooled connection.
pub async fn run_round(pool: &Pool, keys: &KeyRing, origin: &str) -> Result<Round, SequencerError> {
    let mut conn = pool.get().await?;
    sequence(&mut conn, keys, origin, BATCH).await
}

/// Sequences up to `max` waiting entries, in one transaction. `configured`
/// is this instance's `PASSNUM_LOG_ORIGIN`: it names the log the first time;
/// afterwards the log keeps the origin it has (`origin`).
pub async fn sequence(
    conn: &mut AsyncPgConnection,
    keys: &KeyRing,
    configured: &str,
    max: i64,
) -> Result<Round, SequencerError> {
    // Loaded before the transaction: reading key files holds no lock.
    let keys = keys.signers(Purpose::Log).await?;
    conn.transaction::<_, SequencerError, _>(async |conn| {
        let Some(Size { size, origin }) =
            diesel::sql_query("SELECT size, origin FROM log_state FOR UPDATE SKIP LOCKED")
                .get_result::<Size>(conn)
                .await
                .optional()?
        else {
            return Ok(Round::Busy);
        };
        let origin = match origin {
            Some(origin) => {
                if origin != configured {
                    tracing::debug!(%origin, configured, "the log keeps the origin it was given first");
                }
                origin
            }
            None => {
                diesel::sql_query("UPDATE log_state SET origin = $1")
                    .bind::<diesel::sql_types::Text, _>(configured)
                    .execute(conn)
                    .await?;
                configured.to_owned()
            }
        };
        let signers: Vec<NoteSigner> = keys
            .iter()
            .map(|(_, key)| NoteSigner::new(&origin, key.clone()))
            .collect();
        let size = size as u64;
        let waiting: Vec<Waiting> = diesel::sql_query(
            "SELECT id, entry FROM log_entries WHERE log_index IS NULL ORDER BY id LIMIT $1",
        )
        .bind::<BigInt, _>(max)
        .load(conn)
        .await?;
        if waiting.is_empty() {
            return Ok(Round::Idle { size });
        }

        let edge = edge_tiles(size);
        let stored: Vec<StoredTile> = diesel::sql_query(
            "SELECT t.level, t.n, t.hashes FROM log_tiles t
               JOIN unnest($1::smallint[], $2::bigint[]) AS e (level, n) USING (level, n)",
        )
        .bind::<Array<SmallInt>, _>(edge.iter().map(|e| i16::from(e.0)).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(edge.iter().map(|e| e.1 as i64).collect::<Vec<_>>())
        .load(conn)
        .await?;
        let stored = stored
            .into_iter()
            .map(|t| {
                let hashes = super::tree::hashes_of(&t.hashes).ok_or_else(|| {
                    SequencerError::Tiles(format!("tile {}/{} is not whole hashes", t.level, t.n))
                })?;
                Ok((t.level as u8, t.n as u64, hashes))
            })
            .collect::<Result<Vec<_>, SequencerError>>()?;
        let mut tiles = Tiles::edge(size, stored).map_err(SequencerError::Tiles)?;

        let ids: Vec<i64> = waiting.iter().map(|w| w.id).collect();
        let indexes: Vec<i64> = (0..waiting.len() as i64).map(|i| size as i64 + i).collect();
        for w in &waiting {
            tiles.append(record_hash(&w.entry));
        }
        let new_size = tiles.size();

        diesel::sql_query(
            "UPDATE log_entries e SET log_index = v.log_index, sequenced_at = now()
               FROM unnest($1::bigint[], $2::bigint[]) AS v (id, log_index)
              WHERE e.id = v.id",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<BigInt>, _>(&indexes)
        .execute(conn)
        .await?;

        let (mut levels, mut ns, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        for (level, n, hashes) in tiles.touched() {
            levels.push(i16::from(level));
            ns.push(n as i64);
            bytes.push(tile_bytes(hashes));
        }
        diesel::sql_query(
            "INSERT INTO log_tiles (level, n, hashes)
             SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])
             ON CONFLICT (level, n) DO UPDATE SET hashes = EXCLUDED.hashes",
        )
        .bind::<Array<SmallInt>, _>(&levels)
        .bind::<Array<BigInt>, _>(&ns)
        .bind::<Array<Binary>, _>(&bytes)
        .execute(conn)
        .await?;

        let root: Hash = tiles
            .root(new_size)
            .map_err(|e| SequencerError::Tree(e.to_string()))?;
        let note = note::sign(&origin, new_size, root, &signers).map_err(SequencerError::Tree)?;
        diesel::sql_query(
            "INSERT INTO log_checkpoints (tree_size, root_hash, note) VALUES ($1, $2, $3)",
        )
        .bind::<BigInt, _>(new_size as i64)
        .bind::<Binary, _>(root.0.to_vec())
        .bind::<diesel::sql_types::Text, _>(&note)
        .execute(conn)
        .await?;
        Ok(Round::Grew {
            from: size,
            to: new_size,
        })
    })
    .await
}

use diesel::OptionalExtension as _;
