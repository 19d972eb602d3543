//! PostgreSQL: the connection pool, migrations and readiness.
//!
//! The server is async (diesel-async over tokio-postgres, pooled by deadpool), so
//! no request ever blocks a worker thread on the database; see
//! docs/architecture.md for why.

mod connect;
pub mod embedded;
mod migrate;
pub mod prepared;
pub mod schema;
mod tls;

pub use connect::{connect, ConnectOptions};
pub use migrate::{migrate, MIGRATIONS};

use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

pub type Pool = DeadPool<AsyncPgConnection>;
pub type Connection = Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Connect(String),
    #[error("cannot build the database pool: {0}")]
    Pool(String),
    #[error("migrations failed: {0}")]
    Migration(String),
}

/// Builds the pool: the one place connections are made and checked out.
/// Connections are made lazily, so a database that is down at start-up or
/// later only makes requests fail with `unavailable` until it is back; after a
/// failover, broken connections are dropped at checkout and new ones find the
/// new primary among the string's hosts (`target_session_attrs=read-write`).
pub fn pool(database_url: &str, size: usize, timeout: Duration) -> Result<Pool, DbError> {
    let options = ConnectOptions::parse(database_url)?;
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |_url| {
        let options = options.clone();
        Box::pin(async move { options.connect(timeout).await })
    });
    // No test query at each checkout: a connection the server closed is
    // dropped then (it knows it is closed), and one that fails in use
    // answers `unavailable` and is dropped, the pool opening a new one.
    config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    DeadPool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Why the service is not ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    #[error("the database schema is not up to date (run `passnum migrate`)")]
    Outdated,
}

/// Ready when the database answers and every embedded migration is applied.
pub async fn check_ready(pool: &Pool) -> Result<(), NotReady> {
    use diesel::migration::MigrationSource;
    let latest = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|e| NotReady::Unreachable(e.to_string()))?
        .iter()
        .map(|m| m.name().version().to_string())
        .max()
        .unwrap_or_default();
    let mut conn = pool
        .get()
        .await
        .map_err(|e| NotReady::Unreachable(e.to_string()))?;
    #[derive(QueryableByName)]
    struct Applied {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        applied: bool,
    }
    let row: Applied = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM __diesel_schema_migrations WHERE version = $1) AS applied",
    )
    .bind::<diesel::sql_types::Text, _>(&latest)
    .get_result(&mut conn)
    .await
    .map_err(|e| match e {
        // No migrations table: the database answers but was never migrated.
        diesel::result::Error::DatabaseError(_, info)
            if info.message().contains("does not exist") =>
        {
            NotReady::Outdated
        }
        other => NotReady::Unreachable(other.to_string()),
    })?;
    if row.applied {
        Ok(())
    } else {
        Err(NotReady::Outdated)
    }
}

/// Creates database `name` on the server `admin_url` points at, unless it exists.
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> Result<(), DbError> {
    let fail =
        |e: &dyn std::fmt::Display| DbError::Pool(format!("cannot create database {name}: {e}"));
    let mut conn = connect(admin_url, Duration::from_secs(10)).await?;
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut conn)
            .await
            .map_err(|e| fail(&e))?;
    if !found.exists {
        // Identifiers cannot be bound; the name is ours, quoted all the same.
        diesel::sql_query(format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")))
            .execute(&mut conn)
            .await
            .map_err(|e| fail(&e))?;
        tracing::info!(database = name, "database created");
    }
    Ok(())
}
