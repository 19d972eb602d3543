//! Migrations, embedded in the binary and applied under an advisory lock.

use std::time::Duration;

use diesel::{sql_types::BigInt, RunQueryDsl};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises migrations across every instance that starts at once.
const MIGRATION_LOCK_KEY: i64 = 0x7061_7373_6e75_6d00; // "passnum\0"

/// Applies pending migrations under a PostgreSQL advisory lock, so two instances
/// starting together never race. Returns how many were applied.
pub async fn migrate(database_url: &str) -> Result<usize, DbError> {
    let url = database_url.to_owned();
    // diesel_migrations is synchronous: run it on a thread of its own.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        // The connection wrapper blocks on the runtime it finds; give it one whose
        // worker drives I/O and timers (connect timeouts) by itself.
        let outcome = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| DbError::Migration(format!("cannot start a runtime: {e}")))
            .and_then(|runtime| {
                let _context = runtime.enter();
                migrate_blocking(&runtime, &url)
            });
        let _ = tx.send(outcome);
    });
    rx.await
        .map_err(|_| DbError::Migration("the migration thread died".into()))?
}

/// How long migrations wait for each host when the string sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn migrate_blocking(runtime: &tokio::runtime::Runtime, url: &str) -> Result<usize, DbError> {
    let fail = |e: &dyn std::fmt::Display| DbError::Migration(e.to_string());
    // The same connection as the pool's: TLS settings, hosts, session attributes.
    let conn = runtime.block_on(super::connect(url, CONNECT_TIMEOUT))?;
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(&mut conn)
        .map_err(|e| fail(&e))?;
    let applied = conn.run_pending_migrations(MIGRATIONS).map(|v| v.len());
    // The lock also goes with the session; unlocking explicitly lets the next
    // instance go on at once.
    let _ = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(&mut conn);
    let applied = applied.map_err(|e| fail(&*e))?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(applied)
}
