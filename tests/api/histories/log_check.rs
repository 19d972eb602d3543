//! After a history: the transparency log holds exactly the committed money
//! events, each after what it depends on, and `passnum log verify` passes,
//! against the checkpoint kept just before the first kill too.

use std::path::Path;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Double};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName)]
struct Figures {
    #[diesel(sql_type = BigInt)]
    waiting: i64,
    #[diesel(sql_type = BigInt)]
    entries: i64,
    #[diesel(sql_type = BigInt)]
    checkpoints: i64,
    #[diesel(sql_type = BigInt)]
    out_of_order: i64,
    #[diesel(sql_type = Double)]
    max_delay_ms: f64,
}

const FIGURES: &str = "SELECT
    (SELECT count(*) FROM log_entries WHERE log_index IS NULL) AS waiting,
    (SELECT count(*) FROM log_entries WHERE log_index IS NOT NULL) AS entries,
    (SELECT count(*) FROM log_checkpoints) AS checkpoints,
    (SELECT count(*) FROM log_entries a JOIN log_entries b USING (redemption_id)
      WHERE a.kind IN ('redeemed', 'conflict_paid') AND b.kind IN ('cancelled', 'reversed')
        AND a.log_index > b.log_index)
  + (SELECT count(*) FROM statement_lines l
       JOIN log_entries s ON s.statement_id = l.statement_id
       JOIN log_entries e ON e.redemption_id = l.redemption_id
        AND (e.kind = 'reversed') = (l.kind = 'reversal') AND e.kind <> 'cancelled'
      WHERE e.log_index > s.log_index) AS out_of_order,
    COALESCE((SELECT 1000 * extract(epoch FROM max(sequenced_at - written_at))::float8 FROM log_entries), 0) AS max_delay_ms";

/// The log's figures for the summary, and what is wrong with it.
pub async fn check(database_url: &str, port: u16, kept: &Path) -> (String, Vec<String>) {
    let mut violations = Vec::new();
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let figures = loop {
        let figures: Figures = diesel::sql_query(FIGURES)
            .get_result(&mut conn)
            .await
            .unwrap();
        if figures.waiting == 0 || Instant::now() > deadline {
            break figures;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if figures.waiting > 0 {
        violations.push(format!(
            "log: {} entries still wait for an index",
            figures.waiting
        ));
    }
    if figures.out_of_order > 0 {
        violations.push(format!(
            "log: {} entries come before what they depend on",
            figures.out_of_order
        ));
    }
    let audit = passnum::log::audit::audit(&mut conn).await.unwrap();
    violations.extend(audit.differences.iter().map(|d| format!("log: {d}")));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passnum"))
        .args(["log", "verify", "--database", "--url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--checkpoint")
        .arg(kept)
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !said.contains("consistent with the checkpoint of") {
        violations.push(format!("log: passnum log verify failed: {said}"));
    }
    let summary = format!(
        "history: log of {} entries ({}), {} checkpoints, longest wait for an index {:.0} ms; passnum log verify: {}",
        figures.entries,
        said.lines().find(|l| l.ends_with(')') || l.contains(" entries read: ")).unwrap_or("?"),
        figures.checkpoints,
        figures.max_delay_ms,
        said.lines().find(|l| l.starts_with("consistent with")).unwrap_or("failed"),
    );
    (summary, violations)
}
