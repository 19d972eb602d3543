//! What every request handler can reach. Nothing here is state of the instance's
//! own: the pool leads to PostgreSQL, where everything shared lives.

use std::sync::Arc;

use crate::config::Config;
use crate::db::{self, DbError, Pool};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Pool,
}

impl AppState {
    /// Everything a server needs before it listens: the schema migrated (under
    /// the advisory lock) and the pool.
    pub async fn prepare(config: Config, database_url: &str) -> Result<Self, DbError> {
        db::migrate(database_url).await?;
        let pool = db::pool(database_url, config.db_pool_size, config.db_timeout)?;
        Ok(AppState {
            config: Arc::new(config),
            pool,
        })
    }
}
