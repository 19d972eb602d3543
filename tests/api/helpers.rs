//! The harness: one throwaway cluster per test run, one database per test.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use passnum::app::Application;
use passnum::config::Config;
use passnum::db;
use passnum::db::embedded::{Durability, EmbeddedCluster};
use passnum::state::AppState;

const TEMPLATE: &str = "passnum_template";

struct TestCluster {
    cluster: Mutex<Option<EmbeddedCluster>>,
    dir: PathBuf,
    admin_url: String,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// Starts the run's cluster once (the same code `passnum serve` uses) and
/// migrates the template every test database is cloned from.
fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| {
        let dir = std::env::var_os("PASSNUM_TEST_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("passnum-test-{}", std::process::id()));
        let cluster = EmbeddedCluster::start(&dir, Durability::Throwaway)
            .unwrap_or_else(|e| panic!("cannot start the test cluster in {}: {e}", dir.display()));
        let admin_url = cluster.database_url("postgres");
        let template_url = cluster.database_url(TEMPLATE);
        // The template is made on a runtime of its own: tests each have theirs.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                db::create_database_if_missing(&admin_url, TEMPLATE).await?;
                db::migrate(&template_url).await
            })
        })
        .join()
        .expect("the template thread")
        .expect("cannot migrate the template database");
        // Stop the cluster when the test process exits, whatever the outcome.
        unsafe { libc::atexit(stop_cluster) };
        TestCluster {
            admin_url: cluster.database_url("postgres"),
            dir: cluster.dir().to_owned(),
            cluster: Mutex::new(Some(cluster)),
        }
    })
}

extern "C" fn stop_cluster() {
    if let Some(test) = CLUSTER.get() {
        if let Some(cluster) = test.cluster.lock().ok().and_then(|mut c| c.take()) {
            let _ = cluster.stop();
        }
        let _ = std::fs::remove_dir_all(&test.dir);
    }
}

/// A fresh, migrated database for one test; returns its connection string.
pub async fn new_database() -> String {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let cluster = cluster();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&cluster.admin_url)
        .await
        .expect("admin connection");
    diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        .execute(&mut admin)
        .await
        .expect("clone the template");
    cluster
        .admin_url
        .replace("dbname=postgres", &format!("dbname={name}"))
}

/// An empty database, not cloned from the template: no schema at all.
pub async fn new_bare_database() -> String {
    let cluster = cluster();
    let name = format!("bare_{}", uuid::Uuid::new_v4().simple());
    db::create_database_if_missing(&cluster.admin_url, &name)
        .await
        .expect("create a bare database");
    cluster
        .admin_url
        .replace("dbname=postgres", &format!("dbname={name}"))
}

/// A configuration for a test server: development, port 0, the given
/// database, and a keys directory of its own (removed with the cluster).
pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default configuration");
    config.bind = "127.0.0.1:0".parse().expect("address");
    config.database_url = Some(database_url.to_owned());
    config.db_pool_size = 4;
    config.keys_dir = new_keys_dir();
    config
}

/// An empty directory for private keys.
pub fn new_keys_dir() -> PathBuf {
    cluster()
        .dir
        .join(format!("keys-{}", uuid::Uuid::new_v4().simple()))
}

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub client: reqwest::Client,
    /// The server task, stopped with the app so its pool closes too.
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The real server on port 0 with a fresh database.
pub async fn spawn_app() -> TestApp {
    let database_url = new_database().await;
    spawn_app_on(test_config(&database_url)).await
}

/// The real server with the given configuration (a second instance on the
/// same database, say).
pub async fn spawn_app_on(config: Config) -> TestApp {
    let database_url = config.database_url.clone().expect("a database");
    let state = AppState::prepare(config, &database_url)
        .await
        .expect("prepare the state");
    let app = Application::build(state.clone()).expect("bind");
    let address = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        state,
        client: test_client(),
        server,
    }
}

/// A client that drops a kept-alive connection long before the server does
/// (actix closes it after 5 s idle): reusing one just as the server closes it
/// fails the request, which a busy machine made happen between slow steps.
pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(1))
        .build()
        .expect("an HTTP client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }
}

/// Reads a problem+json answer, checking its media type and its slug.
pub async fn expect_problem(
    response: reqwest::Response,
    status: u16,
    slug: &str,
) -> serde_json::Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// The demo organisations and a token for one user of each, plus a second
/// funder and a second issuer whose objects others must not see.
pub struct Fixture {
    pub tokens: std::collections::HashMap<passnum::auth::Role, String>,
    pub org_ids: std::collections::HashMap<&'static str, i64>,
    /// The demo programme (départements 67 and 68), with an allocation for the demo issuer.
    pub program_id: i32,
    /// Tokens of the other funder and the other issuer.
    pub other_tokens: std::collections::HashMap<passnum::auth::Role, String>,
    /// The other funder's programme, with an allocation for the other issuer.
    pub other_program_id: i32,
}

/// Seeds the demo data and mints a token for each demo account.
pub async fn fixture(app: &TestApp) -> Fixture {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use passnum::auth::Role;
    use passnum::db::schema::{programs, users};

    let mut conn = app.state.pool.get().await.unwrap();
    passnum::demo::seed(&mut conn).await.unwrap();
    let mut tokens = std::collections::HashMap::new();
    let mut org_ids = std::collections::HashMap::new();
    for email in DEMO_ACCOUNTS {
        let (user_id, org_id): (i64, i64) = users::table
            .filter(users::email.eq(email))
            .select((users::id, users::organisation_id))
            .first(&mut conn)
            .await
            .unwrap();
        let account = passnum::domain::accounts::account(&mut conn, user_id)
            .await
            .unwrap()
            .unwrap();
        let token = app.token_for(user_id, org_id, account.role()).await;
        org_ids.insert(email, org_id);
        // The second venue is another organisation of the same kind: its
        // id serves tenancy checks, the first venue's token the role checks.
        if email != "lieu2@demo.passnum.test" {
            tokens.insert(account.role(), token);
        }
    }
    // The demo venues were accredited a moment ago; offline scans from the
    // past weeks must find them accredited then.
    diesel::sql_query("UPDATE organisations SET accredited_since = now() - interval '30 days' WHERE kind = 'venue'")
        .execute(&mut conn)
        .await
        .unwrap();
    let program_id: i32 = programs::table
        .filter(programs::name.eq(passnum::demo::PROGRAM_NAME))
        .select(programs::id)
        .first(&mut conn)
        .await
        .unwrap();

    // Another funder and another issuer, sharing nothing with the demo ones.
    let mut other_tokens = std::collections::HashMap::new();
    let mut other_orgs = std::collections::HashMap::new();
    for (role, stem, email) in [
        (Role::Funder, "90000006", "autre-financeur@example.org"),
        (Role::Issuer, "90000007", "autre-prescripteur@example.org"),
    ] {
        let org = passnum::domain::organisations::create(
            &mut conn,
            passnum::domain::organisations::NewOrganisation {
                kind: role,
                name: format!("Autre {role}"),
                siret: passnum::demo::siret_from(stem, "0001"),
                address: "1 rue du Sauvage".into(),
                postcode: "68100".into(),
                commune_code: "68224".into(),
                latitude: None,
                longitude: None,
                phone: None,
            },
        )
        .await
        .unwrap();
        let user = passnum::domain::accounts::insert(&mut conn, org.id, email, "$argon2id$unused")
            .await
            .unwrap();
        other_tokens.insert(role, app.token_for(user.id, org.id, role).await);
        other_orgs.insert(role, org.id);
    }
    let other_program = passnum::domain::programs::create(
        &mut conn,
        other_orgs[&Role::Funder],
        passnum::domain::programs::NewProgram {
            name: "Autre programme".into(),
            face_value_cents: 1_500,
            budget_cents: 1_500_000,
            issue_until: chrono::NaiveDate::from_ymd_opt(2099, 12, 31).unwrap(),
            voucher_validity_days: 180,
            territory: passnum::domain::programs::Territory {
                departements: vec!["68".into()],
            },
            time_zone: None,
        },
    )
    .await
    .unwrap();
    let row =
        passnum::domain::programs::find_own(&mut conn, other_program.id, other_orgs[&Role::Funder])
            .await
            .unwrap();
    passnum::domain::programs::allocate(
        &mut conn,
        &row,
        passnum::domain::programs::NewAllocation {
            issuer_organisation_id: other_orgs[&Role::Issuer],
            vouchers: 100,
        },
    )
    .await
    .unwrap();
    Fixture {
        tokens,
        org_ids,
        program_id,
        other_tokens,
        other_program_id: other_program.id,
    }
}

pub const DEMO_ACCOUNTS: [&str; 5] = [
    "operateur@demo.passnum.test",
    "financeur@demo.passnum.test",
    "prescripteur@demo.passnum.test",
    "lieu@demo.passnum.test",
    "lieu2@demo.passnum.test",
];

impl TestApp {
    /// A login token, minted as `POST /api/v1/auth/token` would.
    pub async fn token_for(&self, user_id: i64, org_id: i64, role: passnum::auth::Role) -> String {
        passnum::auth::token::issue(&self.state.keys, user_id, org_id, role, 900)
            .await
            .unwrap()
            .0
    }

    /// A request with a bearer token.
    pub fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Runs a statement directly: for the tests that must bend time or state.
    pub async fn sql(&self, statement: &str) {
        use diesel_async::RunQueryDsl;
        let mut conn = self.state.pool.get().await.unwrap();
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    /// Counts the rows of a table, to prove a refusal stored nothing.
    pub async fn count(&self, table: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.state.pool.get().await.unwrap();
        let row: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result(&mut conn)
            .await
            .unwrap();
        row.n
    }
}

/// Logs in through the API with the demo password.
pub async fn login_token(app: &TestApp, email: &str) -> String {
    login_token_with(app, email, passnum::demo::PASSWORD).await
}

pub async fn login_token_with(app: &TestApp, email: &str, password: &str) -> String {
    let res = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login of {email}");
    let body: serde_json::Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}
