//! `passnum log verify --database`: the log against the rows it was written
//! from. Each entry is rebuilt from today's rows (`entry::EventRow`) and
//! compared with the bytes logged when the event committed; every event of
//! the database must have its entry. A row changed after the fact (by
//! someone who got past the triggers) shows as a named difference.

use diesel::sql_types::{BigInt, Binary, Nullable};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::entry::{Entry, EventRow, EVENT_COLUMNS, EVENT_JOINS};

#[derive(QueryableByName)]
struct Logged {
    #[diesel(sql_type = Nullable<BigInt>)]
    log_index: Option<i64>,
    #[diesel(sql_type = Binary)]
    entry: Vec<u8>,
    #[diesel(embed)]
    event: EventRow,
}

#[derive(QueryableByName)]
struct Missing {
    #[diesel(sql_type = diesel::sql_types::Text)]
    what: String,
}

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Audit {
    pub entries: u64,
    pub waiting: u64,
    /// Each difference in plain words; empty when the log matches.
    pub differences: Vec<String>,
}

pub async fn audit(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Audit> {
    let rows: Vec<Logged> = diesel::sql_query(format!(
        "SELECT e.log_index, e.entry, {EVENT_COLUMNS} FROM log_entries e {EVENT_JOINS}
          ORDER BY e.log_index NULLS LAST, e.id"
    ))
    .load(conn)
    .await?;
    let mut audit = Audit::default();
    for row in rows {
        let name = match row.log_index {
            Some(i) => {
                audit.entries += 1;
                format!("entry {i}")
            }
            None => {
                audit.waiting += 1;
                "an entry waiting for its index".to_owned()
            }
        };
        let of = match (row.event.redemption_id, row.event.statement_id) {
            (Some(r), _) => format!("redemption {r}, {}", row.event.kind),
            (_, Some(s)) => format!("statement {s}"),
            _ => row.event.kind.clone(),
        };
        let rebuilt = row.event.entry();
        match Entry::parse(&row.entry) {
            None => audit.differences.push(format!(
                "{name} ({of}) is not canonical JSON: {}",
                String::from_utf8_lossy(&row.entry)
            )),
            Some(logged) => {
                if let Some(d) = logged.difference(&rebuilt) {
                    audit.differences.push(format!("{name} ({of}): {d}"));
                }
            }
        }
    }
    // Every event has its entry.
    let missing: Vec<Missing> = diesel::sql_query(
        "SELECT 'redemption ' || r.id || ' (' || k.kind || ') has no entry in the log' AS what
           FROM redemptions r
          CROSS JOIN LATERAL (VALUES
                (CASE WHEN r.conflict_id IS NULL THEN 'redeemed' ELSE 'conflict_paid' END, true),
                ('cancelled', r.cancelled_at IS NOT NULL),
                ('reversed', r.reversed_at IS NOT NULL)) AS k (kind, happened)
          WHERE k.happened
            AND NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.redemption_id = r.id AND e.kind = k.kind)
         UNION ALL
         SELECT 'statement ' || s.id || ' has no entry in the log'
           FROM statements s
          WHERE NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.statement_id = s.id)
         ORDER BY 1",
    )
    .load(conn)
    .await?;
    audit
        .differences
        .extend(missing.into_iter().map(|m| m.what));
    Ok(audit)
}
