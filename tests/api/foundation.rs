//! The ground everything stands on: problems, readiness, migrations, start-up rules.

use std::process::Command;
use std::time::{Duration, Instant};

use passnum::db;
use passnum::db::embedded::{Durability, EmbeddedCluster};

use crate::helpers::{
    expect_problem, new_bare_database, new_database, spawn_app, spawn_app_on, test_config,
};

#[tokio::test]
async fn unknown_route_is_a_not_found_problem() {
    let app = spawn_app().await;
    let res = app.get("/api/v1/no-such-thing").await;
    assert!(res.headers().contains_key("x-request-id"));
    let body = expect_problem(res, 404, "not-found").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("/api/v1/no-such-thing"));
}

#[tokio::test]
async fn wrong_method_is_a_problem() {
    let app = spawn_app().await;
    let res = app.client.delete(app.url("/healthz")).send().await.unwrap();
    expect_problem(res, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused() {
    let app = spawn_app().await;
    let body = vec![b' '; 65 * 1024];
    let res = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    expect_problem(res, 413, "payload-too-large").await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app().await;
    let first = app.get("/healthz").await;
    let second = app.get("/healthz").await;
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(first.status(), 200);
    assert_ne!(id(&first), id(&second));
}

#[tokio::test]
async fn readyz_is_ready_on_a_migrated_database() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
}

#[tokio::test]
async fn readyz_is_unavailable_when_the_database_is_missing() {
    let url = new_database()
        .await
        .replace("dbname=test_", "dbname=missing_");
    let pool = db::pool(&url, 2, Duration::from_secs(2)).unwrap();
    let err = db::check_ready(&pool).await.unwrap_err();
    assert!(matches!(err, db::NotReady::Unreachable(_)), "{err}");
}

#[tokio::test]
async fn readyz_is_unavailable_on_an_unmigrated_database() {
    // A database made without the template has no schema at all.
    let bare = new_bare_database().await;
    let pool = db::pool(&bare, 2, Duration::from_secs(2)).unwrap();
    let err = db::check_ready(&pool).await.unwrap_err();
    assert!(matches!(err, db::NotReady::Outdated), "{err}");

    // …and the server says so over HTTP.
    let config = test_config(&bare);
    let keys = passnum::keys::KeyRing::new(pool.clone(), &config.keys_dir);
    let state = passnum::state::AppState {
        config: std::sync::Arc::new(config),
        pool,
        read_pool: None,
        keys: std::sync::Arc::new(keys),
        mailer: passnum::mail::Mailer::new(None, "test@example.org").unwrap(),
        passwords: std::sync::Arc::new(passnum::auth::password::PasswordQueue::for_this_machine()),
        throttle: std::sync::Arc::new(passnum::auth::throttle::Throttle::new(
            1,
            Duration::from_secs(2),
        )),
        draining: Default::default(),
        callers: std::sync::Arc::default(),
        group_commit: None,
    };
    let server = passnum::app::Application::build(state).unwrap();
    let address = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped());
    let res = reqwest::get(format!("{address}/readyz")).await.unwrap();
    expect_problem(res, 503, "unavailable").await;
}

#[tokio::test]
async fn migrations_run_twice_and_by_two_instances_at_once() {
    let bare = new_bare_database().await;

    // Two instances start together on an empty database.
    let (a, b) = tokio::join!(db::migrate(&bare), db::migrate(&bare));
    let applied = a.unwrap() + b.unwrap();
    let total = {
        use diesel::migration::MigrationSource;
        MigrationSource::<diesel::pg::Pg>::migrations(&db::MIGRATIONS)
            .unwrap()
            .len()
    };
    assert_eq!(applied, total, "each migration applied exactly once");
    // A third run has nothing to do.
    assert_eq!(db::migrate(&bare).await.unwrap(), 0);
    let pool = db::pool(&bare, 2, Duration::from_secs(2)).unwrap();
    db::check_ready(&pool).await.unwrap();
}

#[tokio::test]
async fn metrics_are_served_to_loopback_clients() {
    let app = spawn_app().await;
    app.get("/healthz").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"passnum_http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    assert!(text.contains("passnum_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn openapi_and_swagger_ui_are_served() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/readyz"]["get"].is_object());
    let ui = app.get("/api/docs/").await;
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn production_without_database_url_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_passnum"))
        .arg("serve")
        .env("PASSNUM_ENV", "production")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PASSNUM_ENV=production needs DATABASE_URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn demo_is_refused_in_production() {
    let out = Command::new(env!("CARGO_BIN_EXE_passnum"))
        .args(["serve", "--demo"])
        .env("PASSNUM_ENV", "production")
        .env("DATABASE_URL", "host=/nonexistent dbname=x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--demo"), "{stderr}");
}

/// A server whose database stops answers `unavailable` within seconds, and
/// recovers by itself when the database is back.
#[tokio::test]
async fn a_stopped_database_makes_the_server_unavailable_then_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || EmbeddedCluster::start(&dir, Durability::Throwaway).unwrap()
    })
    .await
    .unwrap();
    db::create_database_if_missing(&cluster.database_url("postgres"), "passnum")
        .await
        .unwrap();
    let app = spawn_app_on(test_config(&cluster.database_url("passnum"))).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    let data_dir = cluster.dir().to_owned();
    tokio::task::spawn_blocking(move || cluster.stop().unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let res = app.get("/readyz").await;
    expect_problem(res, 503, "unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered in {:?}",
        started.elapsed()
    );

    let cluster = tokio::task::spawn_blocking(move || {
        EmbeddedCluster::start(&data_dir, Durability::Throwaway).unwrap()
    })
    .await
    .unwrap();
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "the server did not recover");
    tokio::task::spawn_blocking(move || cluster.stop().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_passnum_on_the_same_data_directory_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let cluster = tokio::task::spawn_blocking(move || {
        EmbeddedCluster::start(&path, Durability::Throwaway).unwrap()
    })
    .await
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_passnum"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("PASSNUM_DATA_DIR", dir.path())
        .env("PASSNUM_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already using the data directory"),
        "{stderr}"
    );
    tokio::task::spawn_blocking(move || cluster.stop().unwrap())
        .await
        .unwrap();
}
