//! Opening a connection as libpq would from the same connection string:
//! `sslmode` and `sslrootcert` (TLS by rustls, see `tls`), several hosts
//! (`postgres://h1:5432,h2:5433/passnum`) tried in order, and
//! `target_session_attrs=read-write` to land on the primary. tokio-postgres
//! does the hosts and the session attributes; the TLS parameters it does not
//! know are taken out of the string first.

use std::time::Duration;

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::AsyncPgConnection;
use percent_encoding::percent_decode_str;
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{self, Roots, SslMode};
use super::DbError;

/// A parsed connection string, ready to open connections.
#[derive(Clone)]
pub struct ConnectOptions {
    postgres: tokio_postgres::Config,
    mode: SslMode,
    roots: Roots,
    /// `None` for `sslmode=disable`.
    tls: Option<MakeRustlsConnect>,
}

impl ConnectOptions {
    /// Reads a connection string (URL or `key=value` form), and loads the
    /// trusted roots, so a bad string or CA file is refused at start-up.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let invalid = |reason: String| DbError::Config(format!("DATABASE_URL: {reason}"));
        let split = split_tls_parameters(url).map_err(invalid)?;
        let roots = split.sslrootcert.as_deref().map(Roots::parse);
        let mode = split.sslmode.unwrap_or(SslMode::Prefer);
        // libpq: with a root certificate, `require` checks the chain as `verify-ca` does.
        let mode = match (mode, &roots) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        };
        let roots = roots.unwrap_or(Roots::System);
        let postgres: tokio_postgres::Config = split
            .rest
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(e.to_string()))?;
        let tls = tls::client_config(mode, &roots)
            .map_err(invalid)?
            .map(MakeRustlsConnect::new);
        Ok(ConnectOptions {
            postgres,
            mode,
            roots,
            tls,
        })
    }

    /// Opens one connection, giving each host `timeout` at most unless the
    /// string sets `connect_timeout`, so a vanished server answers quickly.
    pub async fn connect(&self, timeout: Duration) -> ConnectionResult<AsyncPgConnection> {
        let mut config = self.postgres.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("passnum");
        }
        // A redemption is one statement, committed as it ends: should this
        // process vanish while the statement waits (on a lock, say),
        // PostgreSQL notices within a second and cancels it, rather than
        // commit something nobody will be told about.
        let options = config.get_options().unwrap_or_default().to_owned();
        if !options.contains("client_connection_check_interval") {
            config.options(format!("{options} -c client_connection_check_interval=1000").trim());
        }
        let fail = |e: tokio_postgres::Error| ConnectionError::BadConnection(self.explain(&e));
        match &self.tls {
            None => {
                let (client, connection) =
                    config.connect(tokio_postgres::NoTls).await.map_err(fail)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(fail)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
        }
    }

    /// The hosts, in the order they are tried.
    pub fn hosts(&self) -> String {
        let ports = self.postgres.get_ports();
        self.postgres
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A connection error in words an operator can act on.
    fn explain(&self, e: &tokio_postgres::Error) -> String {
        // tokio-postgres says what failed; its sources say why.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        let lower = text.to_ascii_lowercase();
        let hint = if lower.contains("not valid for name") {
            " (the server's certificate does not name the host connected to, and \
             sslmode=verify-full checks it: connect with a name the certificate holds)"
                .to_owned()
        } else if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
            format!(
                " (the server's certificate is not signed by {})",
                self.roots.describe()
            )
        } else if lower.contains("no pg_hba.conf entry")
            && (lower.contains("no encryption") || lower.contains("ssl off"))
        {
            " (the server accepts only TLS connections from here: set sslmode=verify-full)"
                .to_owned()
        } else if lower.contains("server does not support tls") {
            format!(
                " (the server offers no TLS, which sslmode={} needs)",
                self.mode.as_str()
            )
        } else {
            String::new()
        };
        format!(
            "cannot connect to PostgreSQL at {} with sslmode={}: {text}{hint}",
            self.hosts(),
            self.mode.as_str()
        )
    }
}

/// Opens one connection from a connection string.
pub async fn connect(url: &str, timeout: Duration) -> Result<AsyncPgConnection, DbError> {
    ConnectOptions::parse(url)?
        .connect(timeout)
        .await
        .map_err(|e| DbError::Connect(e.to_string()))
}

/// A connection string without the TLS parameters tokio-postgres does not
/// know, its `sslmode` reduced to one it does (`require` for `verify-*`).
#[derive(Debug)]
struct Split {
    rest: String,
    sslmode: Option<SslMode>,
    sslrootcert: Option<String>,
}

/// Client certificates and revocation lists are not supported; refusing them
/// beats connecting without what the operator asked for.
const UNSUPPORTED: &[&str] = &["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

fn split_tls_parameters(url: &str) -> Result<Split, String> {
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        match key {
            "sslmode" => sslmode = Some(SslMode::parse(&value)?),
            "sslrootcert" => sslrootcert = Some(value),
            key if UNSUPPORTED.contains(&key) => {
                return Err(format!(
                    "{key} is not supported (no client certificates or revocation lists)"
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let url_form = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (base, mut kept) = if url_form {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(&decode(key)?, decode(value)?)? {
                kept.push(pair.to_owned());
            }
        }
        (base, kept)
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_value_pairs(url)? {
            if !take(&key, value.clone())? {
                let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
                kept.push(format!("{key}='{quoted}'"));
            }
        }
        ("", kept)
    };
    if let Some(mode) = sslmode {
        let reduced = match mode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            _ => "require",
        };
        kept.push(format!("sslmode={reduced}"));
    }
    let rest = match (url_form, kept.is_empty()) {
        (false, _) => kept.join(" "),
        (true, true) => base.to_owned(),
        (true, false) => format!("{base}?{}", kept.join("&")),
    };
    Ok(Split {
        rest,
        sslmode,
        sslrootcert,
    })
}

fn decode(text: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{text:?} is not UTF-8 once percent-decoded"))
}

/// libpq's `key=value` form: values bare or in single quotes, `\` escaping.
fn key_value_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("{key:?} has no value (expected {key}=…)"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of {key} has no closing quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> Split {
        split_tls_parameters(url).unwrap()
    }

    #[test]
    fn urls_lose_the_tls_parameters_tokio_postgres_does_not_know() {
        let s = split(
            "postgres://u:p%40ss@h1:5432,h2:5433/passnum?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&target_session_attrs=read-write",
        );
        assert_eq!(
            s.rest,
            "postgres://u:p%40ss@h1:5432,h2:5433/passnum?target_session_attrs=read-write&sslmode=require"
        );
        assert_eq!(s.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(split("postgres://h/db").rest, "postgres://h/db");
        assert_eq!(
            split("postgres://h/db?sslmode=disable").rest,
            "postgres://h/db?sslmode=disable"
        );
    }

    #[test]
    fn key_value_strings_keep_their_quoting() {
        let s = split(
            r"host='/tmp/a b' user=postgres  dbname = passnum sslmode=verify-ca sslrootcert='/x/it\'s.pem'",
        );
        assert_eq!(
            s.rest,
            "host='/tmp/a b' user='postgres' dbname='passnum' sslmode=require"
        );
        assert_eq!(s.sslrootcert.as_deref(), Some("/x/it's.pem"));
        assert!(s.rest.parse::<tokio_postgres::Config>().is_ok());
    }

    #[test]
    fn unsupported_or_unknown_modes_are_refused_by_name() {
        let err = split_tls_parameters("postgres://h/db?sslmode=allow").unwrap_err();
        assert!(err.contains("allow"), "{err}");
        let err = split_tls_parameters("host=h sslmode=verify").unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let err = split_tls_parameters("postgres://h/db?sslcert=/c.pem").unwrap_err();
        assert!(err.contains("sslcert"), "{err}");
        assert!(split_tls_parameters("host='unterminated").is_err());
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let options = ConnectOptions::parse(&format!(
            "postgres://localhost/db?sslmode=require&sslrootcert={}",
            path.display()
        ))
        .unwrap();
        assert_eq!(options.mode, SslMode::VerifyCa);
        assert_eq!(
            ConnectOptions::parse("postgres://localhost/db")
                .unwrap()
                .mode,
            SslMode::Prefer
        );
        let missing = ConnectOptions::parse(
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem",
        )
        .err()
        .unwrap();
        assert!(
            missing.to_string().contains("/nonexistent.pem"),
            "{missing}"
        );
    }

    #[test]
    fn hosts_are_listed_in_order_with_their_ports() {
        let options = ConnectOptions::parse("postgres://a:5432,b:5433/db?sslmode=disable").unwrap();
        assert_eq!(options.hosts(), "a:5432, b:5433");
    }
}
