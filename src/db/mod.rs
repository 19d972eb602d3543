//! PostgreSQL: the connection pool, migrations and readiness.
//!
//! The server is async (diesel-async over tokio-postgres, pooled by deadpool), so
//! no request ever blocks a worker thread on the database; see
//! docs/architecture.md for why.

pub mod embedded;
mod migrate;
pub mod prepared;
pub mod schema;

pub use migrate::{migrate, MIGRATIONS};

use std::time::Duration;

use diesel::{ConnectionError, ConnectionResult, QueryableByName};
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

pub type Pool = DeadPool<AsyncPgConnection>;
pub type Connection = Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot build the database pool: {0}")]
    Pool(String),
    #[error("migrations failed: {0}")]
    Migration(String),
}

/// Builds the pool. Connections are made lazily, so a database that is down at
/// start-up or later only makes requests fail with `unavailable` until it is back.
pub fn pool(database_url: &str, size: usize, timeout: Duration) -> Result<Pool, DbError> {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |url| Box::pin(connect(url.to_owned(), timeout)));
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

/// Opens one connection with a bounded connect time, so a vanished server
/// answers quickly instead of hanging a request.
async fn connect(url: String, timeout: Duration) -> ConnectionResult<AsyncPgConnection> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| ConnectionError::InvalidConnectionUrl(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    config.application_name("passnum");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
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
    use diesel_async::AsyncConnection;
    let fail =
        |e: &dyn std::fmt::Display| DbError::Pool(format!("cannot create database {name}: {e}"));
    let mut conn = AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| fail(&e))?;
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
