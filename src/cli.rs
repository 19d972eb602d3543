//! The command line: `passnum serve`, `passnum migrate`, …

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::Config;
use crate::db;
use crate::db::embedded::{ClusterError, Durability, EmbeddedCluster};
use crate::domain::accounts;
use crate::keys::{KeyRing, Purpose};
use crate::state::AppState;
use crate::voucher::SignedVoucher;

/// passnum: signed workshop vouchers for the pass numérique.
///
/// Configuration comes from the environment (DATABASE_URL, PASSNUM_ENV,
/// PASSNUM_DATA_DIR, PASSNUM_BIND, PASSNUM_KEYS_DIR, PASSNUM_SMTP_URL,
/// PASSNUM_PUBLIC_URL, PASSNUM_METRICS_BIND, PASSNUM_LOG_FORMAT,
/// PASSNUM_DATABASE_READ_URL, PASSNUM_SHUTDOWN_TIMEOUT_SECS); see README.md.
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
    /// Manage the signing keys (kids in PostgreSQL, private keys in PASSNUM_KEYS_DIR).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Administration of a deployment.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Delete beneficiaries' references and postcodes of books expired for
    /// more than --months months (statements stay whole), and stale records.
    Purge {
        /// Months after a book's expiry before its beneficiary data goes.
        #[arg(long, default_value_t = 12)]
        months: u32,
    },
    /// Check signed statements offline.
    Statement {
        #[command(subcommand)]
        command: StatementCommand,
    },
    /// Inspect vouchers.
    Voucher {
        #[command(subcommand)]
        command: VoucherCommand,
    },
    /// Check the public transparency log (docs/transparency-log.md).
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// The national directory of digital-mediation venues.
    Venues {
        #[command(subcommand)]
        command: VenuesCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Fetch the checkpoint, check its signature, rebuild the tree from every
    /// entry and tile, and check it extends the checkpoint kept in FILE (then
    /// keep the new one there). Exit 1 on any mismatch.
    Verify {
        /// The service's address (or the log's, ending in /log).
        #[arg(long)]
        url: Option<String>,
        /// A file keeping the last checkpoint seen (created if missing).
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
        /// The log's verifier key (name+id+key); default: the log's /log/key.
        #[arg(long)]
        key: Option<String>,
        /// Also compare every entry with the database rows it was written
        /// from (the operator's or an auditor's check; uses DATABASE_URL).
        #[arg(long)]
        database: bool,
    },
    /// Check that entry N is in the signed tree (an inclusion proof from the
    /// tiles) and print it.
    Prove {
        #[arg(long)]
        url: String,
        #[arg(long)]
        index: u64,
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VenuesCommand {
    /// Create or update *listed* venues from the national standard's file
    /// ("standard des lieux de médiation numérique", CSV or JSON). Bad rows
    /// are reported with their line and reason and change nothing; importing
    /// the same file again changes nothing.
    Import {
        /// The national file (CSV or JSON).
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make an active key for every purpose that has none (a new deployment).
    Generate,
    /// Retire the active key of a purpose (it still verifies) and make a new one active.
    Rotate {
        /// voucher, statement, login or log
        #[arg(long)]
        purpose: Purpose,
    },
    /// List every key: kid, purpose, status, dates, whether its private file is here.
    List,
    /// Withdraw a compromised voucher key: everything it signed stops verifying.
    Withdraw {
        #[arg(long)]
        kid: u8,
        /// Why, kept in the key ring.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an operator account (and the operator organisation if there is
    /// none yet); the password is read from standard input.
    CreateOperator {
        #[arg(long)]
        email: String,
        /// Name of the operator organisation, if it must be created.
        #[arg(long, default_value = "Opérateur passnum")]
        organisation: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StatementCommand {
    /// Check that a downloaded statement (or a venue's extract) is exactly
    /// what was signed, against a JWK Set file or URL, or the key ring.
    Verify {
        /// The CSV file, as downloaded.
        csv: std::path::PathBuf,
        /// The kid of the statement key, as given with the statement.
        #[arg(long)]
        kid: u8,
        /// The signature given with the statement (base64url; it may begin
        /// with "-").
        #[arg(long, allow_hyphen_values = true)]
        signature: String,
        /// A JWK Set file (a saved `/.well-known/jwks.json`); without it,
        /// the key ring of the configured database is used.
        #[arg(long)]
        jwks: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VoucherCommand {
    /// Print every field of a voucher text (PN1:…) and whether its signature
    /// verifies against the key ring.
    Decode {
        /// The text the QR code holds (quote it: it may contain spaces).
        text: String,
    },
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { demo } => serve(config, demo).await,
        Command::Migrate => {
            let database = Database::open(&config, Role::Migrator).await?;
            let applied = db::migrate(&database.url).await?;
            println!("{applied} migration(s) applied; the schema is up to date.");
            database.close()
        }
        Command::Keys { command } => {
            let database = Database::open(&config, Role::Guest).await?;
            let outcome = keys_command(command, &config, &database.url).await;
            database.close()?;
            outcome
        }
        Command::Admin {
            command:
                AdminCommand::CreateOperator {
                    email,
                    organisation,
                },
        } => {
            let password = read_password()?;
            let database = Database::open(&config, Role::Guest).await?;
            let outcome =
                create_operator(&database.url, &config, &email, &organisation, password).await;
            database.close()?;
            outcome
        }
        Command::Purge { months } => {
            let database = Database::open(&config, Role::Guest).await?;
            let outcome = purge(&database.url, &config, months).await;
            database.close()?;
            outcome
        }
        Command::Statement {
            command:
                StatementCommand::Verify {
                    csv,
                    kid,
                    signature,
                    jwks,
                },
        } => {
            let bytes =
                std::fs::read(&csv).with_context(|| format!("cannot read {}", csv.display()))?;
            let key = match jwks {
                Some(source) => key_from_jwks(&source, kid).await?,
                None => {
                    let database = Database::open(&config, Role::Guest).await?;
                    let ring = key_ring(&config, &database.url).await;
                    let key = match ring {
                        Ok(ring) => ring
                            .verifying_key(Purpose::Statement, kid)
                            .await
                            .map_err(anyhow::Error::from),
                        Err(e) => Err(e),
                    };
                    database.close()?;
                    key?.with_context(|| format!("no statement key has kid {kid}"))?
                }
            };
            let digest = crate::voucher::statement::digest(&bytes);
            match crate::voucher::statement::verify(&digest, &signature, &key) {
                Ok(()) => {
                    println!("sha256 {}", crate::voucher::statement::digest_hex(&digest));
                    println!(
                        "signature OK: these are exactly the bytes statement key {kid} signed"
                    );
                    Ok(())
                }
                Err(e) => bail!(
                    "{e}: the file is not the signed statement (sha256 {})",
                    crate::voucher::statement::digest_hex(&digest)
                ),
            }
        }
        Command::Log { command } => log_command(command, &config).await,
        Command::Venues {
            command: VenuesCommand::Import { file },
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let database = Database::open(&config, Role::Guest).await?;
            let outcome = import_venues(&database.url, &config, &file, &bytes).await;
            database.close()?;
            outcome
        }
        Command::Voucher {
            command: VoucherCommand::Decode { text },
        } => {
            let database = Database::open(&config, Role::Guest).await?;
            let outcome = decode_voucher(&text, &config, &database.url).await;
            database.close()?;
            outcome
        }
    }
}

async fn log_command(command: LogCommand, config: &Config) -> anyhow::Result<()> {
    use crate::log::verify::{self, Remote};
    match command {
        LogCommand::Verify {
            url,
            checkpoint,
            key,
            database,
        } => {
            if url.is_none() && !database {
                bail!("say what to check: --url URL (the public files) and/or --database");
            }
            if let Some(url) = url {
                let remote = Remote::new(&url).map_err(anyhow::Error::msg)?;
                match verify::verify(&remote, key.as_deref(), checkpoint.as_deref()).await {
                    Ok(report) => {
                        for line in report {
                            println!("{line}");
                        }
                    }
                    Err(e) => bail!("the log does not verify: {e}"),
                }
            }
            if database {
                let db = Database::open(config, Role::Guest).await?;
                let outcome = audit_database(&db.url, config).await;
                db.close()?;
                outcome?;
            }
            println!("OK: the log verifies.");
            Ok(())
        }
        LogCommand::Prove { url, index, key } => {
            let remote = Remote::new(&url).map_err(anyhow::Error::msg)?;
            match verify::prove(&remote, key.as_deref(), index).await {
                Ok((checkpoint, entry)) => {
                    println!("{}", String::from_utf8_lossy(&entry.to_bytes()));
                    println!(
                        "OK: entry {index} is in the signed tree of {} entries (root {})",
                        checkpoint.size, checkpoint.root
                    );
                    Ok(())
                }
                Err(e) => bail!("entry {index} is not proven: {e}"),
            }
        }
    }
}

async fn audit_database(database_url: &str, config: &Config) -> anyhow::Result<()> {
    db::migrate(database_url).await?;
    let pool = db::pool(database_url, 1, config.db_timeout)?;
    let mut conn = pool.get().await?;
    let audit = crate::log::audit::audit(&mut conn).await?;
    if !audit.differences.is_empty() {
        for d in &audit.differences {
            eprintln!("{d}");
        }
        bail!(
            "the log and the database differ in {} place(s), the first: {}",
            audit.differences.len(),
            audit.differences[0]
        );
    }
    println!(
        "the database's {} entries (and {} waiting for their index) are exactly its events, unchanged",
        audit.entries, audit.waiting
    );
    Ok(())
}

async fn import_venues(
    database_url: &str,
    config: &Config,
    file: &std::path::Path,
    bytes: &[u8],
) -> anyhow::Result<()> {
    db::migrate(database_url).await?;
    let pool = db::pool(database_url, 1, config.db_timeout)?;
    let mut conn = pool.get().await?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let report = crate::domain::directory::import(&mut conn, &name, bytes)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for rejection in &report.rejections {
        println!(
            "ligne {} ({}) refusée : {}",
            rejection.line,
            rejection.id.as_deref().unwrap_or("sans id"),
            rejection.reason
        );
    }
    println!(
        "{} ligne(s) lue(s) : {} lieu(x) créé(s), {} mis à jour, {} inchangé(s), {} ligne(s) refusée(s), en {:.1} s",
        report.rows_read,
        report.created,
        report.updated,
        report.unchanged,
        report.rejections.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn purge(database_url: &str, config: &Config, months: u32) -> anyhow::Result<()> {
    db::migrate(database_url).await?;
    let pool = db::pool(database_url, 1, config.db_timeout)?;
    let mut conn = pool.get().await?;
    let purged = crate::domain::purge::purge(&mut conn, months)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    println!(
        "beneficiary data deleted from {} book(s) expired for over {months} months; \
         {} idempotency record(s), {} forgotten login failure count(s), {} scan nonce(s) and {} expired web session(s) removed",
        purged.books,
        purged.idempotency_records,
        purged.login_throttle,
        purged.scan_nonces,
        purged.web_sessions
    );
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < crate::auth::password::MIN_LENGTH {
        bail!(
            "the password (read from standard input) needs at least {} characters",
            crate::auth::password::MIN_LENGTH
        );
    }
    Ok(password)
}

async fn create_operator(
    database_url: &str,
    config: &Config,
    email: &str,
    name: &str,
    password: String,
) -> anyhow::Result<()> {
    use crate::db::schema::organisations;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    db::migrate(database_url).await?;
    let pool = db::pool(database_url, 1, config.db_timeout)?;
    let mut conn = pool.get().await?;
    let email = accounts::normalise_email(email).map_err(|e| anyhow::anyhow!(e.detail))?;
    let existing: Option<i64> = organisations::table
        .filter(organisations::kind.eq("operator"))
        .select(organisations::id)
        .order(organisations::id)
        .first(&mut conn)
        .await
        .optional()?;
    let org_id = match existing {
        Some(id) => id,
        None => {
            diesel::insert_into(organisations::table)
                .values((
                    organisations::kind.eq("operator"),
                    organisations::name.eq(name),
                ))
                .returning(organisations::id)
                .get_result(&mut conn)
                .await?
        }
    };
    let hash = accounts::hash_off_thread(password)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    let user = accounts::insert(&mut conn, org_id, &email, &hash)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    println!(
        "operator {} created (user {}, organisation {org_id})",
        user.email, user.id
    );
    Ok(())
}

/// The statement key `kid` of a JWK Set, read from a file or fetched over http.
async fn key_from_jwks(source: &str, kid: u8) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    use base64::Engine;
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        bail!("fetch the JWK Set first (curl -o jwks.json {source}) and pass the file: passnum reads files only")
    } else {
        std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))?
    };
    let set: crate::keys::jwks::Jwks =
        serde_json::from_str(&text).context("this is not a JWK Set")?;
    let jwk = set
        .keys
        .iter()
        .find(|k| k.kid == kid.to_string() && k.purpose == "statement")
        .with_context(|| format!("the JWK Set has no statement key {kid}"))?;
    let x: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&jwk.x)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("the key's x is not 32 bytes of base64url")?;
    Ok(ed25519_dalek::VerifyingKey::from_bytes(&x)?)
}

async fn key_ring(config: &Config, database_url: &str) -> anyhow::Result<KeyRing> {
    db::migrate(database_url).await?;
    let pool = db::pool(database_url, 2, config.db_timeout)?;
    Ok(KeyRing::new(pool, &config.keys_dir))
}

async fn keys_command(
    command: KeysCommand,
    config: &Config,
    database_url: &str,
) -> anyhow::Result<()> {
    let ring = key_ring(config, database_url).await?;
    match command {
        KeysCommand::Generate => {
            let made = ring.generate_missing().await?;
            if made.is_empty() {
                println!("Every purpose already has an active key; nothing to do.");
            }
            for (purpose, kid) in made {
                println!(
                    "generated {purpose} key {kid}: {}",
                    ring.dir().join(format!("{kid}.pem")).display()
                );
            }
        }
        KeysCommand::Rotate { purpose } => {
            let kid = ring.rotate(purpose).await?;
            println!("{purpose} key {kid} is now active; the previous one is retired and still verifies.");
            println!(
                "Deploy {} to every instance.",
                ring.dir().join(format!("{kid}.pem")).display()
            );
        }
        KeysCommand::List => {
            println!(
                "{:>3}  {:<9}  {:<9}  {:<20}  {:<20}  private file",
                "kid", "purpose", "status", "created", "retired/withdrawn"
            );
            for key in ring.all_keys().await?.iter() {
                let ended = key
                    .withdrawn_at
                    .or(key.retired_at)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string());
                let file = ring.dir().join(format!("{}.pem", key.kid));
                println!(
                    "{:>3}  {:<9}  {:<9}  {:<20}  {:<20}  {}",
                    key.kid,
                    key.purpose,
                    key.status.as_str(),
                    key.created_at.format("%Y-%m-%d %H:%M").to_string(),
                    ended.unwrap_or_else(|| "-".into()),
                    if file.exists() { "present" } else { "absent" },
                );
            }
        }
        KeysCommand::Withdraw { kid, reason } => {
            ring.withdraw(kid, &reason).await?;
            println!("voucher key {kid} is withdrawn: nothing it signed verifies any more.");
            println!("Rotate if it was the active one: passnum keys rotate --purpose voucher");
        }
    }
    Ok(())
}

async fn decode_voucher(text: &str, config: &Config, database_url: &str) -> anyhow::Result<()> {
    let voucher = SignedVoucher::parse(text).context("this is not a readable v1 voucher")?;
    let body = voucher.body();
    println!("format       v1");
    println!("kid          {}", body.kid);
    println!("voucher_id   {}", body.voucher_id);
    println!("typed code   {}", voucher.typed_code());
    println!("program_id   {}", body.program_id);
    println!("expires_on   {} (last valid day)", body.expires_on);
    println!("position     {} / {}", body.position, body.book_size);
    let ring = key_ring(config, database_url).await?;
    let key = ring
        .all_keys()
        .await?
        .iter()
        .find(|k| k.kid == body.kid)
        .cloned();
    let verdict = match key {
        None => "NO: no key has this kid (unknown-key)".to_owned(),
        Some(k) if k.purpose != Purpose::Voucher => {
            format!("NO: kid {} is a {} key (unknown-key)", k.kid, k.purpose)
        }
        Some(k) if !k.status.verifies() => format!("NO: key {} is withdrawn (unknown-key)", k.kid),
        Some(k) => match voucher.verify(&k.public_key) {
            Ok(()) => format!("yes, by {} key {}", k.status.as_str(), k.kid),
            Err(e) => format!("NO: {e} (invalid-signature)"),
        },
    };
    println!("signature    {verdict}");
    if verdict.starts_with("NO") {
        bail!("the voucher does not verify");
    }
    Ok(())
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    if demo && config.is_production() {
        bail!("--demo seeds well-known passwords: it is refused with PASSNUM_ENV=production");
    }
    let database = Database::open(&config, Role::Owner).await?;
    let state = AppState::prepare(config, &database.url).await?;
    if demo {
        let mut conn = state.pool.get().await?;
        crate::demo::seed(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("demo seed failed: {}", e.detail))?;
    }
    let bind = state.config.bind;
    let app = Application::build(state).with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!("passnum serves on http://{}:{}", bind.ip(), app.port());
    let signals = tokio::spawn(app.shutdown().stop_on_signals());
    app.run_until_stopped().await?;
    signals.abort();
    tracing::info!("server stopped");
    database.close()
}

/// Whether this process may start (and later stop) the embedded cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `serve`: owns the data directory; a second server on it is refused.
    Owner,
    /// `migrate`: uses the cluster a running server owns, or starts it
    /// (initialising it the first time).
    Migrator,
    /// Other one-shot commands: use the cluster a running server owns, or
    /// start an existing one; never make an empty one to look into.
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
        if role == Role::Guest && !config.data_dir.join("pg").join("PG_VERSION").exists() {
            bail!(
                "there is no database in {}: start passnum once (./scripts/run) or set DATABASE_URL",
                config.data_dir.display()
            );
        }
        let dir = config.data_dir.clone();
        let started =
            tokio::task::spawn_blocking(move || EmbeddedCluster::start(&dir, Durability::Durable))
                .await
                .context("the cluster start-up task died")?;
        let cluster = match started {
            Ok(cluster) => cluster,
            Err(ClusterError::InUse { .. }) if role != Role::Owner => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_beginning_with_a_hyphen_is_a_value_not_an_option() {
        let cli = Cli::try_parse_from([
            "passnum",
            "statement",
            "verify",
            "releve.csv",
            "--kid",
            "2",
            "--signature",
            "-AbC_x",
        ])
        .expect("parsed");
        assert!(
            matches!(cli.command, Command::Statement { command: StatementCommand::Verify { ref signature, .. } } if signature == "-AbC_x"),
            "{cli:?}"
        );
    }
}
