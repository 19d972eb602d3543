//! The command line: `passnum serve`, `passnum migrate`, …

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::Config;
use crate::db;
use crate::db::embedded::{ClusterError, Durability, EmbeddedCluster};
use crate::state::AppState;

/// passnum: signed workshop vouchers for the pass numérique.
///
/// Configuration comes from the environment (DATABASE_URL, PASSNUM_ENV,
/// PASSNUM_DATA_DIR, PASSNUM_BIND, PASSNUM_KEYS_DIR, PASSNUM_SMTP_URL,
/// PASSNUM_PUBLIC_URL, PASSNUM_METRICS_BIND, PASSNUM_LOG_FORMAT); see README.md.
#[derive(Debug, Parser)]
#[command(name = "passnum", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API: migrate the database, then listen on PASSNUM_BIND.
    ///
    /// In development without DATABASE_URL, a private PostgreSQL cluster is
    /// started under PASSNUM_DATA_DIR (initialised the first time) and stopped on
    /// Ctrl-C or SIGTERM.
    Serve {
        /// Seed the demo programme and accounts first (development only).
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { demo } => serve(config, demo).await,
        Command::Migrate => {
            let database = Database::open(&config, Role::Guest).await?;
            let applied = db::migrate(&database.url).await?;
            println!("{applied} migration(s) applied; the schema is up to date.");
            database.close()
        }
    }
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    if demo && config.is_production() {
        bail!("--demo seeds well-known passwords: it is refused with PASSNUM_ENV=production");
    }
    let database = Database::open(&config, Role::Owner).await?;
    let state = AppState::prepare(config, &database.url).await?;
    let bind = state.config.bind;
    let app = Application::build(state).with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!("passnum serves on http://{bind}");
    app.run_until_stopped().await?;
    tracing::info!("server stopped");
    database.close()
}

/// Whether this process may start (and later stop) the embedded cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `serve`: owns the data directory; a second server on it is refused.
    Owner,
    /// One-shot commands: use the cluster a running server owns, or start it.
    Guest,
}

/// The database this process talks to, and the embedded cluster it started, if any.
struct Database {
    url: String,
    cluster: Option<EmbeddedCluster>,
}

impl Database {
    async fn open(config: &Config, role: Role) -> anyhow::Result<Self> {
        if let Some(url) = &config.database_url {
            return Ok(Database {
                url: url.clone(),
                cluster: None,
            });
        }
        let dir = config.data_dir.clone();
        let started =
            tokio::task::spawn_blocking(move || EmbeddedCluster::start(&dir, Durability::Durable))
                .await
                .context("the cluster start-up task died")?;
        let cluster = match started {
            Ok(cluster) => cluster,
            Err(ClusterError::InUse { .. }) if role == Role::Guest => {
                return Ok(Database {
                    url: EmbeddedCluster::url_in(&config.data_dir, DATABASE_NAME)?,
                    cluster: None,
                });
            }
            Err(e) => return Err(e.into()),
        };
        db::create_database_if_missing(&cluster.database_url("postgres"), DATABASE_NAME).await?;
        Ok(Database {
            url: cluster.database_url(DATABASE_NAME),
            cluster: Some(cluster),
        })
    }

    fn close(self) -> anyhow::Result<()> {
        match self.cluster {
            Some(cluster) => Ok(cluster.stop()?),
            None => Ok(()),
        }
    }
}

/// The database the embedded cluster holds.
const DATABASE_NAME: &str = "passnum";
