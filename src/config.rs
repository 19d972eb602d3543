//! Configuration, read once from the environment into a typed struct.
//!
//! The names and the development/production rules are part of the API contract;
//! every default is documented in README.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the service runs: development is forgiving, production refuses guesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    /// `None` in development means the embedded cluster under `data_dir`.
    pub database_url: Option<String>,
    /// A hot standby for reads that decide no money (lists, stats, statement
    /// downloads); `None`: everything reads from `database_url`.
    pub database_read_url: Option<String>,
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    pub keys_dir: PathBuf,
    pub smtp_url: Option<String>,
    /// The address users reach the service at, used in links (`pdf_url`, emails).
    pub public_url: String,
    /// The transparency log's origin line and key name (`PASSNUM_LOG_ORIGIN`).
    pub log_origin: String,
    /// How often each instance runs the log's sequencer (`PASSNUM_LOG_INTERVAL_MS`).
    pub log_interval: Duration,
    /// A separate listener for `/metrics`; without it, `/metrics` answers loopback clients only.
    pub metrics_bind: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// Connections kept by each instance's database pool.
    pub db_pool_size: usize,
    /// How long a request waits for the database before answering `unavailable`.
    pub db_timeout: Duration,
    /// On SIGTERM, how long requests in flight may take to finish before the server exits.
    pub shutdown_timeout: Duration,
    /// Group commit of online redemptions: how many groups may be written at
    /// once; 0 writes each redemption on its own.
    pub group_commit: usize,
    /// Lifetime of login tokens.
    pub token_ttl_secs: i64,
    /// How long a venue may cancel a redemption it made.
    pub cancel_window_hours: i64,
    /// The sender of emailed books.
    pub mail_from: String,
    /// Who answers for the personal data, printed on every book.
    pub privacy_contact: String,
    /// Reverse proxies whose `X-Forwarded-For` names the client (login throttling).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "PASSNUM_ENV=production needs DATABASE_URL (for example \
         postgres://passnum@db.example.org/passnum); the embedded cluster is for development only"
    )]
    ProductionWithoutDatabase,
    #[error("PASSNUM_DATABASE_READ_URL names a standby of DATABASE_URL, which is not set")]
    ReadUrlWithoutDatabase,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let environment = match get("PASSNUM_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(invalid(
                    "PASSNUM_ENV",
                    other,
                    "expected development or production",
                ))
            }
        };
        let database_url = get("DATABASE_URL");
        if environment == Environment::Production && database_url.is_none() {
            return Err(ConfigError::ProductionWithoutDatabase);
        }
        let bind: SocketAddr = parse(&get, "PASSNUM_BIND", "127.0.0.1:8080")?;
        let metrics_bind = match get("PASSNUM_METRICS_BIND") {
            Some(v) => Some(
                v.parse()
                    .map_err(|e| invalid("PASSNUM_METRICS_BIND", &v, e))?,
            ),
            None => None,
        };
        let log_format = match get("PASSNUM_LOG_FORMAT").as_deref() {
            None | Some("human") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "PASSNUM_LOG_FORMAT",
                    other,
                    "expected human or json",
                ))
            }
        };
        let public_url = get("PASSNUM_PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        let db_timeout_ms: u64 = parse(&get, "PASSNUM_DB_TIMEOUT_MS", "3000")?;
        let trusted_proxies = match get("PASSNUM_TRUSTED_PROXIES") {
            Some(v) => crate::http::client::parse_trusted(&v)
                .map_err(|e| invalid("PASSNUM_TRUSTED_PROXIES", &v, e))?,
            None => Vec::new(),
        };
        let shutdown_timeout_secs: u64 = parse(&get, "PASSNUM_SHUTDOWN_TIMEOUT_SECS", "30")?;
        let database_read_url = get("PASSNUM_DATABASE_READ_URL");
        if database_read_url.is_some() && database_url.is_none() {
            return Err(ConfigError::ReadUrlWithoutDatabase);
        }

        let log_origin =
            get("PASSNUM_LOG_ORIGIN").unwrap_or_else(|| crate::log::default_origin(&public_url));
        if !signed_note::is_key_name_valid(&log_origin) {
            return Err(invalid(
                "PASSNUM_LOG_ORIGIN",
                &log_origin,
                "the origin is a key name: not empty, no spaces, no '+'",
            ));
        }
        let log_interval_ms: u64 = parse(&get, "PASSNUM_LOG_INTERVAL_MS", "1000")?;
        if !(10..=4000).contains(&log_interval_ms) {
            return Err(invalid(
                "PASSNUM_LOG_INTERVAL_MS",
                &log_interval_ms.to_string(),
                "from 10 to 4000 (every event is in the log within 5 seconds)",
            ));
        }
        Ok(Config {
            log_origin,
            log_interval: Duration::from_millis(log_interval_ms),
            environment,
            database_url,
            database_read_url,
            data_dir: PathBuf::from(get("PASSNUM_DATA_DIR").unwrap_or_else(|| ".data".into())),
            bind,
            keys_dir: PathBuf::from(get("PASSNUM_KEYS_DIR").unwrap_or_else(|| "keys".into())),
            smtp_url: get("PASSNUM_SMTP_URL"),
            public_url,
            metrics_bind,
            log_format,
            db_pool_size: parse(&get, "PASSNUM_DB_POOL_SIZE", "16")?,
            db_timeout: Duration::from_millis(db_timeout_ms),
            shutdown_timeout: Duration::from_secs(shutdown_timeout_secs),
            group_commit: parse(&get, "PASSNUM_GROUP_COMMIT", "0")?,
            token_ttl_secs: parse(&get, "PASSNUM_TOKEN_TTL_SECS", "900")?,
            cancel_window_hours: parse(&get, "PASSNUM_CANCEL_WINDOW_HOURS", "24")?,
            mail_from: get("PASSNUM_MAIL_FROM").unwrap_or_else(|| {
                "Pass numérique <ne-pas-repondre@pass-numerique.invalid>".into()
            }),
            privacy_contact: get("PASSNUM_PRIVACY_CONTACT")
                .unwrap_or_else(|| "l'organisme qui vous a remis ce carnet".into()),
            trusted_proxies,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

fn parse<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = get(name).unwrap_or_else(|| default.to_owned());
    value.parse().map_err(|e| invalid(name, &value, e))
}

fn invalid(name: &'static str, value: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_are_development_on_loopback() {
        let c = config(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from(".data"));
        assert_eq!(c.keys_dir, PathBuf::from("keys"));
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert!(c.database_url.is_none());
    }

    #[test]
    fn production_needs_a_database_url() {
        let err = config(&[("PASSNUM_ENV", "production")]).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(config(&[
            ("PASSNUM_ENV", "production"),
            ("DATABASE_URL", "postgres://x/y")
        ])
        .is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let err = config(&[("PASSNUM_BIND", "nowhere")]).unwrap_err();
        assert!(
            err.to_string().starts_with("PASSNUM_BIND=\"nowhere\""),
            "{err}"
        );
        assert!(config(&[("PASSNUM_ENV", "staging")]).is_err());
        assert!(config(&[("PASSNUM_LOG_FORMAT", "xml")]).is_err());
        let err = config(&[("PASSNUM_TRUSTED_PROXIES", "10.0.0.1, proxy")]).unwrap_err();
        assert!(
            err.to_string().starts_with("PASSNUM_TRUSTED_PROXIES="),
            "{err}"
        );
        assert!(config(&[("PASSNUM_SHUTDOWN_TIMEOUT_SECS", "-1")]).is_err());
    }

    #[test]
    fn shutdown_waits_30_seconds_and_reads_need_a_primary() {
        assert_eq!(
            config(&[]).unwrap().shutdown_timeout,
            Duration::from_secs(30)
        );
        let err = config(&[("PASSNUM_DATABASE_READ_URL", "postgres://standby/db")]).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        let c = config(&[
            ("DATABASE_URL", "postgres://primary/db"),
            ("PASSNUM_DATABASE_READ_URL", "postgres://standby/db"),
        ])
        .unwrap();
        assert_eq!(
            c.database_read_url.as_deref(),
            Some("postgres://standby/db")
        );
    }

    #[test]
    fn trusted_proxies_are_a_list_of_networks() {
        assert!(config(&[]).unwrap().trusted_proxies.is_empty());
        let c = config(&[("PASSNUM_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
    }
}
