//! The connection side against clusters of this run's own: TLS only
//! (`hostssl` alone in `pg_hba.conf`, a CA made here), several hosts, and a
//! streaming standby for reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use passnum::auth::Role;
use passnum::db::embedded::{Durability, EmbeddedCluster, Tweaks};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{fixture, spawn_app_on, test_config};
use crate::redemptions::{issue_book, redeem};

/// A cluster that speaks TLS only, its CA, and a standby made on demand.
struct TlsCluster {
    primary: Mutex<Option<EmbeddedCluster>>,
    standby: OnceLock<Mutex<Option<EmbeddedCluster>>>,
    dir: PathBuf,
    port: u16,
    standby_port: u16,
    /// The CA that signed the server's certificate (for `localhost` only).
    ca: PathBuf,
    /// A CA that signed nothing here.
    stranger_ca: PathBuf,
    settings: String,
    hba: String,
}

static TLS: OnceLock<TlsCluster> = OnceLock::new();

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Writes a file the cluster's user can read (a key must be its own, mode 0600).
fn write_for_postgres(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if nix::unistd::Uid::effective().is_root() {
        let user = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        nix::unistd::chown(path, Some(user.uid), Some(user.gid)).unwrap();
    }
}

fn ca(name: &str) -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let issuer =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let pem = issuer.pem();
    (issuer, pem)
}

fn tls_cluster() -> &'static TlsCluster {
    TLS.get_or_init(|| {
        let base = std::env::var_os("PASSNUM_TEST_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("passnum-tls-{}", std::process::id()));
        let tls = base.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        // Every directory on the way must let postgres through.
        for dir in [&base, &tls] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (issuer, ca_pem) = ca("passnum test CA");
        let (_, stranger_pem) = ca("another CA");
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let ca = tls.join("ca.pem");
        let stranger_ca = tls.join("stranger-ca.pem");
        std::fs::write(&ca, &ca_pem).unwrap();
        std::fs::write(&stranger_ca, &stranger_pem).unwrap();
        write_for_postgres(&tls.join("server.crt"), &server.pem());
        write_for_postgres(&tls.join("server.key"), &server_key.serialize_pem());
        let settings = format!(
            "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n\
             wal_level = replica\nhot_standby = on\n",
            tls.display()
        );
        // Local sockets for the harness and replication; TCP only over TLS.
        let hba = "local all all trust\nlocal replication all trust\n\
                   hostssl all all 127.0.0.1/32 trust\n"
            .to_owned();
        let port = free_port();
        let primary = EmbeddedCluster::start_with(
            &base.join("primary"),
            Durability::Throwaway,
            &Tweaks {
                tcp_port: Some(port),
                settings: settings.clone(),
                hba: Some(hba.clone()),
            },
        )
        .expect("start the TLS cluster");
        unsafe { libc::atexit(stop_tls_clusters) };
        TlsCluster {
            primary: Mutex::new(Some(primary)),
            standby: OnceLock::new(),
            dir: base,
            port,
            standby_port: free_port(),
            ca,
            stranger_ca,
            settings,
            hba,
        }
    })
}

extern "C" fn stop_tls_clusters() {
    if let Some(tls) = TLS.get() {
        if let Some(standby) = tls.standby.get() {
            if let Some(cluster) = standby.lock().ok().and_then(|mut c| c.take()) {
                let _ = cluster.stop();
            }
        }
        if let Some(cluster) = tls.primary.lock().ok().and_then(|mut c| c.take()) {
            let _ = cluster.stop();
        }
        let _ = std::fs::remove_dir_all(&tls.dir);
    }
}

impl TlsCluster {
    fn socket_url(&self, dbname: &str) -> String {
        let guard = self.primary.lock().unwrap();
        guard.as_ref().unwrap().database_url(dbname)
    }

    /// A new empty database on the primary; returns its name.
    async fn new_database(&self) -> String {
        let name = format!("tls_{}", uuid::Uuid::new_v4().simple());
        passnum::db::create_database_if_missing(&self.socket_url("postgres"), &name)
            .await
            .unwrap();
        name
    }

    /// The primary over TCP, by host `host`, with extra URL parameters.
    fn url(&self, host: &str, dbname: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/{dbname}?{params}", self.port)
    }

    fn verify_full(&self) -> String {
        format!("sslmode=verify-full&sslrootcert={}", self.ca.display())
    }

    /// The streaming standby of the primary, started the first time.
    fn standby(&self) -> u16 {
        self.standby.get_or_init(|| {
            let dir = self.dir.join("standby");
            let guard = self.primary.lock().unwrap();
            guard
                .as_ref()
                .unwrap()
                .base_backup_into(&dir)
                .expect("base backup");
            let standby = EmbeddedCluster::start_with(
                &dir,
                Durability::Throwaway,
                &Tweaks {
                    tcp_port: Some(self.standby_port),
                    settings: self.settings.clone(),
                    hba: Some(self.hba.clone()),
                },
            )
            .expect("start the standby");
            Mutex::new(Some(standby))
        });
        self.standby_port
    }
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    flag: bool,
}

async fn flag(pool: &passnum::db::Pool, query: &str) -> bool {
    let mut conn = pool.get().await.unwrap();
    let row: Flag = diesel::sql_query(query)
        .get_result(&mut conn)
        .await
        .unwrap();
    row.flag
}

/// `passnum serve` with this DATABASE_URL, expected to fail at start-up: its stderr.
fn serve_refused(database_url: &str) -> String {
    let keys = tempfile::tempdir().unwrap();
    let out: Output = Command::new(env!("CARGO_BIN_EXE_passnum"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("PASSNUM_BIND", "127.0.0.1:0")
        .env("PASSNUM_KEYS_DIR", keys.path())
        .output()
        .expect("run passnum serve");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "passnum serve started with {database_url}: {stderr}"
    );
    // Shown with --nocapture: the words an operator reads.
    println!("{}", stderr.lines().last().unwrap_or_default());
    stderr
}

#[tokio::test]
async fn tls_verify_full_with_the_ca_file_serves_over_tls() {
    let tls = tls_cluster();
    let db = tls.new_database().await;
    let app = spawn_app_on(test_config(&tls.url("localhost", &db, &tls.verify_full()))).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    // The pool's sessions are encrypted, as the server sees them.
    assert!(
        flag(
            &app.state.pool,
            "SELECT ssl AS flag FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        .await
    );
    // A whole redemption goes through.
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let code = book["vouchers"][0]["code"].as_str().unwrap();
    assert_eq!(
        redeem(&app, &f.tokens[&Role::Venue], code).await.status(),
        201
    );
}

#[tokio::test]
async fn tls_disable_is_refused_by_the_server_and_start_up_says_why() {
    let tls = tls_cluster();
    let db = tls.new_database().await;
    let stderr = serve_refused(&tls.url("localhost", &db, "sslmode=disable"));
    assert!(stderr.contains("no pg_hba.conf entry"), "{stderr}");
    assert!(stderr.contains("sslmode=disable"), "{stderr}");
    assert!(
        stderr.contains("the server accepts only TLS connections"),
        "{stderr}"
    );
}

#[tokio::test]
async fn tls_a_certificate_for_another_name_or_from_another_ca_is_refused() {
    let tls = tls_cluster();
    let db = tls.new_database().await;
    // The certificate names localhost; 127.0.0.1 is the same server by another name.
    let stderr = serve_refused(&tls.url("127.0.0.1", &db, &tls.verify_full()));
    assert!(stderr.contains("not valid for name"), "{stderr}");
    assert!(
        stderr.contains("does not name the host connected to"),
        "{stderr}"
    );
    let stranger = format!(
        "sslmode=verify-full&sslrootcert={}",
        tls.stranger_ca.display()
    );
    let stderr = serve_refused(&tls.url("localhost", &db, &stranger));
    assert!(stderr.contains("not signed by sslrootcert="), "{stderr}");
    // verify-ca checks the chain only: the other name passes, the other CA does not.
    let verify_ca = format!("sslmode=verify-ca&sslrootcert={}", tls.ca.display());
    let app = spawn_app_on(test_config(&tls.url("127.0.0.1", &db, &verify_ca))).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let stderr = serve_refused(&tls.url(
        "127.0.0.1",
        &db,
        &format!(
            "sslmode=verify-ca&sslrootcert={}",
            tls.stranger_ca.display()
        ),
    ));
    assert!(stderr.contains("not signed by"), "{stderr}");
}

#[tokio::test]
async fn with_the_first_host_down_start_up_and_requests_use_the_second() {
    let tls = tls_cluster();
    let db = tls.new_database().await;
    let down = free_port();
    let url = format!(
        "postgres://postgres@localhost:{down},localhost:{}/{db}?{}",
        tls.port,
        tls.verify_full()
    );
    let app = spawn_app_on(test_config(&url)).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let code = book["vouchers"][0]["code"].as_str().unwrap();
    assert_eq!(
        redeem(&app, &f.tokens[&Role::Venue], code).await.status(),
        201
    );
}

#[derive(QueryableByName)]
struct Lsn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    lsn: String,
}

/// Waits until the standby at `standby` has replayed everything the primary
/// (`primary`, the same database) has written so far.
async fn replayed(primary: &str, standby: &str) {
    let timeout = std::time::Duration::from_secs(2);
    let mut conn = passnum::db::connect(primary, timeout).await.unwrap();
    let written: Lsn = diesel::sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
        .get_result(&mut conn)
        .await
        .unwrap();
    let mut last = String::new();
    for _ in 0..100 {
        match passnum::db::connect(standby, timeout).await {
            Ok(mut conn) => {
                let done: Result<Flag, _> = diesel::sql_query(
                    "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= $1::pg_lsn AS flag",
                )
                .bind::<diesel::sql_types::Text, _>(&written.lsn)
                .get_result(&mut conn)
                .await;
                match done {
                    Ok(row) if row.flag => return,
                    Ok(_) => last = "behind".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the standby did not replay up to {} in 10 s: {last}",
        written.lsn
    );
}

#[tokio::test]
async fn target_session_attrs_read_write_finds_the_primary_behind_a_standby() {
    let tls = tls_cluster();
    let standby = tls.standby();
    let db = tls.new_database().await;
    let standby_first = format!(
        "postgres://postgres@localhost:{standby},localhost:{}/{db}?{}",
        tls.port,
        tls.verify_full()
    );
    let standby_only = format!(
        "postgres://postgres@localhost:{standby}/{db}?{}",
        tls.verify_full()
    );
    replayed(
        &tls.url("localhost", &db, &tls.verify_full()),
        &standby_only,
    )
    .await;
    // Without the attribute the first host answering is taken: the standby.
    let any = passnum::db::pool(&standby_first, 1, std::time::Duration::from_secs(3)).unwrap();
    assert!(flag(&any, "SELECT pg_is_in_recovery() AS flag").await);
    let url = format!("{standby_first}&target_session_attrs=read-write");
    let app = spawn_app_on(test_config(&url)).await;
    assert!(!flag(&app.state.pool, "SELECT pg_is_in_recovery() AS flag").await);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

async fn list_ids(app: &crate::helpers::TestApp, token: &str) -> Vec<i64> {
    let res = app
        .with_token(Method::GET, "/api/v1/redemptions", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn lists_and_stats_read_the_standby_and_money_decisions_the_primary() {
    let tls = tls_cluster();
    let standby_port = tls.standby();
    let db = tls.new_database().await;
    let primary = tls.url("localhost", &db, &tls.verify_full());
    let standby = format!(
        "postgres://postgres@localhost:{standby_port}/{db}?{}",
        tls.verify_full()
    );
    let mut config = test_config(&primary);
    config.database_read_url = Some(standby.clone());
    let app = spawn_app_on(config).await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let code = book["vouchers"][0]["code"].as_str().unwrap();
    let venue = &f.tokens[&Role::Venue];
    replayed(&primary, &standby).await;

    // Freeze the standby: from now on it lags.
    let mut standby_conn = passnum::db::connect(&standby, std::time::Duration::from_secs(3))
        .await
        .unwrap();
    diesel::sql_query("SELECT pg_wal_replay_pause()")
        .execute(&mut standby_conn)
        .await
        .unwrap();
    let res = redeem(&app, venue, code).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    // The list and the stats come from the standby, which has not seen it...
    assert!(!list_ids(&app, venue).await.contains(&id));
    let stats: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/programs/{}/stats", f.program_id),
            &f.tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["vouchers"]["redeemed"]["count"], 0, "{stats}");
    // ...while a second redemption is decided on the primary.
    let again = redeem(&app, venue, code).await;
    assert_eq!(again.status(), 409);

    diesel::sql_query("SELECT pg_wal_replay_resume()")
        .execute(&mut standby_conn)
        .await
        .unwrap();
    for _ in 0..100 {
        if list_ids(&app, venue).await.contains(&id) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the standby never showed redemption {id}");
}
