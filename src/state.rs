//! What every request handler can reach. Nothing here is state of the instance's
//! own: the pool leads to PostgreSQL, where everything shared lives, and the key
//! ring is a short-lived cache of what PostgreSQL holds.

use std::sync::Arc;

use crate::auth::password::PasswordQueue;
use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::db::{self, Pool};
use crate::keys::KeyRing;
use crate::mail::Mailer;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub keys: Arc<KeyRing>,
    pub mailer: Mailer,
    /// The instance's password checks and hashes (its CPU, not shared state).
    pub passwords: Arc<PasswordQueue>,
    /// The instance's share of login throttling (database slots, waits known).
    pub throttle: Arc<Throttle>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
}

impl AppState {
    /// Everything a server needs before it listens: the schema migrated (under
    /// the advisory lock), the pool, and a usable key ring (in development, a
    /// missing key is generated).
    pub async fn prepare(config: Config, database_url: &str) -> Result<Self, StartupError> {
        db::migrate(database_url).await?;
        let pool = db::pool(database_url, config.db_pool_size, config.db_timeout)?;
        let keys = Arc::new(KeyRing::new(pool.clone(), &config.keys_dir));
        keys.prepare(!config.is_production()).await?;
        let mailer = Mailer::new(config.smtp_url.as_deref(), &config.mail_from)?;
        Ok(AppState {
            pool,
            keys,
            mailer,
            passwords: Arc::new(PasswordQueue::for_this_machine()),
            throttle: Arc::new(Throttle::for_pool(config.db_pool_size, config.db_timeout)),
            config: Arc::new(config),
        })
    }
}
