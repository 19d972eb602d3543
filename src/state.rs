//! What every request handler can reach. Nothing here is state of the instance's
//! own: the pools lead to PostgreSQL, where everything shared lives, and the key
//! ring is a short-lived cache of what PostgreSQL holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel_async::pooled_connection::deadpool::PoolError;

use crate::auth::callers::Callers;
use crate::auth::password::PasswordQueue;
use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::db::{self, Pool};
use crate::domain::group_commit::GroupCommit;
use crate::keys::KeyRing;
use crate::mail::Mailer;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The primary: every write, and every read that decides money.
    pub pool: Pool,
    /// A hot standby (`PASSNUM_DATABASE_READ_URL`) for lists, stats and
    /// statement downloads; see `reader`.
    pub read_pool: Option<Pool>,
    pub keys: Arc<KeyRing>,
    pub mailer: Mailer,
    /// The instance's password checks and hashes (its CPU, not shared state).
    pub passwords: Arc<PasswordQueue>,
    /// The instance's share of login throttling (database slots, waits known).
    pub throttle: Arc<Throttle>,
    pub draining: Draining,
    /// Who tokens stand for, kept a few seconds (`auth::callers`).
    pub callers: Arc<Callers>,
    /// Online redemptions written in groups, when configured.
    pub group_commit: Option<GroupCommit>,
}

/// Set once the server was asked to stop: answers then close their
/// connection, and readiness fails, so clients and balancers go elsewhere.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
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
    /// the advisory lock), the pools, and a usable key ring (in development, a
    /// missing key is generated).
    pub async fn prepare(config: Config, database_url: &str) -> Result<Self, StartupError> {
        db::migrate(database_url).await?;
        let pool = db::pool(database_url, config.db_pool_size, config.db_timeout)?;
        let read_pool = match &config.database_read_url {
            Some(url) => Some(db::pool(url, config.db_pool_size, config.db_timeout)?),
            None => None,
        };
        let keys = Arc::new(KeyRing::new(pool.clone(), &config.keys_dir));
        keys.prepare(!config.is_production()).await?;
        let mailer = Mailer::new(config.smtp_url.as_deref(), &config.mail_from)?;
        crate::log::sequencer::start(
            pool.clone(),
            keys.clone(),
            config.log_origin.clone(),
            config.log_interval,
        );
        let group_commit = (config.group_commit > 0)
            .then(|| GroupCommit::start(pool.clone(), config.group_commit));
        Ok(AppState {
            pool,
            read_pool,
            keys,
            mailer,
            draining: Draining::default(),
            callers: Arc::default(),
            group_commit,
            passwords: Arc::new(PasswordQueue::for_this_machine()),
            throttle: Arc::new(Throttle::for_pool(config.db_pool_size, config.db_timeout)),
            config: Arc::new(config),
        })
    }

    /// A connection for reads that decide no money: on the standby when there
    /// is one and it answers, else on the primary. What it reads may lag the
    /// primary by the replication delay.
    pub async fn reader(&self) -> Result<db::Connection, PoolError> {
        if let Some(standby) = &self.read_pool {
            match standby.get().await {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "the read standby is unreachable; reading from the primary")
                }
            }
        }
        self.pool.get().await
    }

    pub fn has_standby(&self) -> bool {
        self.read_pool.is_some()
    }
}
