//! The transparency log: every money event in the log, the database keeping
//! it append-only, the public files as C2SP says (checked by Go's reference
//! code), `passnum log verify|prove`, and tampering found.

use std::path::{Path, PathBuf};
// Run without blocking the runtime the server under test answers on.
use tokio::process::Command;

use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use passnum::auth::Role;
use passnum::log::sequencer::{self, Round};
use passnum::log::tree::unbundle;
use passnum::log::verify::{self, Remote};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    expect_problem, fixture, login_token, spawn_app, spawn_app_on, Fixture, TestApp,
};
use crate::redemptions::{issue_book, redeem};
use crate::statements::close;

/// Runs the sequencer until nothing waits (the app's own runs too: a round
/// that finds it busy waits for it).
pub async fn sequence_all(app: &TestApp) -> u64 {
    loop {
        match sequencer::run_round(
            &app.state.pool,
            &app.state.keys,
            &app.state.config.log_origin,
        )
        .await
        .expect("a sequencer round")
        {
            Round::Busy => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Round::Grew { .. } => {}
            Round::Idle { size } => return size,
        }
    }
}

async fn text(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "{path}");
    let headers = res.headers().clone();
    (headers, res.bytes().await.unwrap().to_vec())
}

/// The entries of the log, by index, as served.
async fn served_entries(app: &TestApp, size: u64) -> Vec<Value> {
    let mut out = Vec::new();
    for n in 0..size.div_ceil(256) {
        let width = (size - n * 256).min(256);
        let path = passnum::log::tree::TilePath {
            level: None,
            n,
            width: width as usize,
        }
        .path();
        let (_, bytes) = text(app, &format!("/log/{path}")).await;
        for e in unbundle(&bytes).unwrap() {
            out.push(serde_json::from_slice(&e).unwrap());
        }
    }
    out
}

async fn passnum_log(args: &[&str], database_url: Option<&str>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_passnum"));
    command.arg("log").args(args);
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let out = command.output().await.expect("run passnum log");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), all)
}

/// Go's reference code (golang.org/x/mod/sumdb/note and tlog, Debian's
/// golang-golang-x-mod-dev, built offline in GOPATH mode) checks the log.
async fn go_check(app: &TestApp, kept: Option<&Path>) -> (bool, String) {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/go/logcheck.go");
    let mut command = Command::new("go");
    command
        .args(["run", source, "-url", &app.url("/log")])
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", &cache)
        .env("GOFLAGS", "");
    if let Some(kept) = kept {
        command.arg("-kept").arg(kept);
    }
    let out = command
        .output()
        .await
        .expect("go (Debian's golang-go, installed by scripts/test) runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("log-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let res = app
        .with_token(Method::POST, path, token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// Redeems voucher `i` of `book` at the demo venue; the receipt.
async fn redeem_ok(app: &TestApp, f: &Fixture, book: &Value, i: usize) -> Value {
    let res = redeem(
        app,
        &f.tokens[&Role::Venue],
        book["vouchers"][i]["code"].as_str().unwrap(),
    )
    .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

#[tokio::test]
async fn every_money_event_is_logged_in_order_and_go_s_reference_code_accepts_the_files() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    expect_problem(app.get("/log/checkpoint").await, 404, "not-found").await;

    let book = issue_book(&app, &f, 10).await;
    let mut receipts = Vec::new();
    for i in 0..4 {
        receipts.push(redeem_ok(&app, &f, &book, i).await);
    }
    let lieu2 = login_token(&app, "lieu2@demo.passnum.test").await;
    assert_eq!(
        redeem(&app, &lieu2, book["vouchers"][4]["code"].as_str().unwrap())
            .await
            .status(),
        201
    );
    // A refusal writes nothing, in the log or elsewhere.
    assert_eq!(
        redeem(&app, &lieu2, book["vouchers"][0]["code"].as_str().unwrap())
            .await
            .status(),
        409
    );
    let venue = &f.tokens[&Role::Venue];
    let funder = &f.tokens[&Role::Funder];
    post(
        &app,
        &format!("/api/v1/redemptions/{}/cancel", receipts[1]["id"]),
        venue,
        json!({"reason": "erreur de saisie"}),
    )
    .await;
    post(
        &app,
        &format!("/api/v1/redemptions/{}/reverse", receipts[2]["id"]),
        funder,
        json!({"reason": "atelier contesté"}),
    )
    .await;
    let statement: Value = close(&app, &f, passnum::domain::paris::today())
        .await
        .json()
        .await
        .unwrap();

    let size = sequence_all(&app).await;
    assert_eq!(size, 8);
    let entries = served_entries(&app, size).await;
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "redeemed",
            "redeemed",
            "redeemed",
            "redeemed",
            "redeemed",
            "cancelled",
            "reversed",
            "statement_closed"
        ]
    );
    // The fields the issue names, and nothing about the beneficiary.
    let first = &entries[0];
    assert_eq!(first["redemption_id"], receipts[0]["id"]);
    assert_eq!(first["voucher_id"], receipts[0]["voucher_id"]);
    assert!(first["voucher_id"].is_string());
    assert_eq!(first["amount_cents"], 2000);
    assert_eq!(first["program_id"], f.program_id);
    assert_eq!(first["position"], 1);
    assert_eq!(first["venue_siret"].as_str().unwrap().len(), 14);
    assert!(first["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entries[5]["amount_cents"], -2000);
    assert_eq!(entries[7]["number"], statement["number"]);
    assert_eq!(entries[7]["sha256"], statement["sha256"]);
    assert_eq!(entries[7]["total_cents"], statement["total_cents"]);
    let all = serde_json::to_string(&entries).unwrap();
    assert!(
        !all.contains("R-7") && !all.contains("67000"),
        "no beneficiary data: {all}"
    );

    // The receipt's redemption shows its place in the log.
    let res = app
        .with_token(
            Method::GET,
            &format!("/api/v1/redemptions/{}", receipts[1]["id"]),
            venue,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let logged: Value = res.json().await.unwrap();
    assert_eq!(logged["log_index"], 1);
    assert_eq!(
        logged["log"],
        json!([{"kind": "redeemed", "log_index": 1}, {"kind": "cancelled", "log_index": 5}])
    );
    let other = &f.other_tokens[&Role::Funder];
    expect_problem(
        app.with_token(
            Method::GET,
            &format!("/api/v1/redemptions/{}", receipts[1]["id"]),
            other,
        )
        .send()
        .await
        .unwrap(),
        404,
        "not-found",
    )
    .await;

    // The files, as C2SP says.
    let (headers, note) = text(&app, "/log/checkpoint").await;
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["cache-control"], "public, max-age=2");
    let note = String::from_utf8(note).unwrap();
    let origin = &app.state.config.log_origin;
    assert!(note.starts_with(&format!("{origin}\n8\n")), "{note}");
    assert!(note.contains(&format!("\n\n\u{2014} {origin} ")), "{note}");
    let (_, key) = text(&app, "/log/key").await;
    let key = String::from_utf8(key).unwrap();
    assert!(key.starts_with(&format!("{origin}+")), "{key}");
    let (headers, tile) = text(&app, "/log/tile/0/000.p/8").await;
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert_eq!(tile.len(), 8 * 32);
    // A narrower partial tile is the first hashes; a wider one, or a full one, is not there yet.
    assert_eq!(text(&app, "/log/tile/0/000.p/3").await.1, tile[..96]);
    for missing in [
        "/log/tile/0/000.p/9",
        "/log/tile/0/000",
        "/log/tile/entries/000",
        "/log/tile/1/000.p/1",
        "/log/tile/0/0",
        "/log/tile/0/000.p/0",
    ] {
        expect_problem(app.get(missing).await, 404, "not-found").await;
    }

    // Our verifier, then Go's, and a kept checkpoint across growth.
    let kept = scratch("checkpoint");
    let remote = Remote::new(&app.address).unwrap();
    let report = verify::verify(&remote, None, Some(&kept)).await.unwrap();
    assert!(
        report.iter().any(|l| l.contains("no checkpoint kept")),
        "{report:?}"
    );
    let (ok, out) = go_check(&app, None).await;
    assert!(ok, "{out}");
    assert!(out.contains("8 entries proven included"), "{out}");

    let more = issue_book(&app, &f, 10).await;
    for i in 0..10 {
        redeem_ok(&app, &f, &more, i).await;
    }
    assert_eq!(sequence_all(&app).await, 18);
    let (ok, out) = go_check(&app, Some(&kept)).await;
    assert!(
        ok && out.contains("consistent with the kept checkpoint of 8 entries"),
        "{out}"
    );
    let report = verify::verify(&remote, None, Some(&kept)).await.unwrap();
    assert!(
        report
            .iter()
            .any(|l| l.contains("consistent with the checkpoint of 8 entries")),
        "{report:?}"
    );
    let (ok, out) = passnum_log(
        &[
            "verify",
            "--url",
            &app.address,
            "--checkpoint",
            kept.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(
        ok && out.contains("consistent with the checkpoint of 18 entries"),
        "{out}"
    );
    let (ok, out) = passnum_log(&["prove", "--url", &app.address, "--index", "7"], None).await;
    assert!(
        ok && out.contains("\"kind\":\"statement_closed\"") && out.contains("tree of 18 entries"),
        "{out}"
    );
    let (ok, out) = passnum_log(&["prove", "--url", &app.address, "--index", "18"], None).await;
    assert!(!ok && out.contains("there is no entry 18"), "{out}");
    // With a key that is not the log's, nothing verifies.
    let stranger = passnum::log::note::verifier_key(
        origin,
        &ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key(),
    );
    let (ok, out) = passnum_log(&["verify", "--url", &app.address, "--key", &stranger], None).await;
    assert!(!ok && out.contains("no signature by the key"), "{out}");
}

#[tokio::test]
async fn the_database_keeps_the_log_append_only_and_gapless() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    for i in 0..3 {
        redeem_ok(&app, &f, &book, i).await;
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(
        app.state.config.database_url.as_deref().unwrap(),
    )
    .await
    .unwrap();
    // An entry written by hand waits for the sequencer like the others.
    let refused = [
        "UPDATE log_entries SET entry = '\\x7b7d'::bytea",
        "DELETE FROM log_entries",
        "TRUNCATE log_entries",
        "INSERT INTO log_entries (kind, redemption_id, entry, log_index, sequenced_at) SELECT 'redeemed', id, '\\x7b7d', 99, now() FROM redemptions LIMIT 1",
        // Indexes only follow the size, without a gap or a jump.
        "UPDATE log_entries SET log_index = id + 5, sequenced_at = now()",
        "UPDATE log_state SET size = 0; UPDATE log_entries SET log_index = 1, sequenced_at = now() WHERE id = (SELECT min(id) FROM log_entries)",
    ];
    for statement in refused {
        let err = conn
            .transaction::<(), diesel::result::Error, _>(async |c| c.batch_execute(statement).await)
            .await;
        assert!(err.is_err(), "{statement} was accepted");
    }
    assert_eq!(sequence_all(&app).await, 3);
    for statement in [
        "UPDATE log_entries SET log_index = log_index + 1",
        "UPDATE log_entries SET sequenced_at = now()",
        "DELETE FROM log_entries WHERE log_index = 2",
        "UPDATE log_tiles SET hashes = substring(hashes FROM 1 FOR 32)",
        "DELETE FROM log_tiles",
        "UPDATE log_checkpoints SET note = 'x'",
        "DELETE FROM log_checkpoints",
        "INSERT INTO log_checkpoints (tree_size, root_hash, note) VALUES (2, '\\x00', 'x')",
        "INSERT INTO log_checkpoints (tree_size, root_hash, note) VALUES (4, decode(repeat('00', 32), 'hex'), 'x')",
    ] {
        let err = conn
            .transaction::<(), diesel::result::Error, _>(async |c| c.batch_execute(statement).await)
            .await;
        assert!(err.is_err(), "{statement} was accepted");
    }
    assert_eq!(
        app.count("log_entries WHERE log_index IS NOT NULL").await,
        3
    );
    // A money event rolled back leaves no entry; a committed one has it at once.
    conn.transaction::<(), diesel::result::Error, _>(async |c| {
        c.batch_execute("UPDATE redemptions SET cancelled_at = now(), cancel_reason = 'x' WHERE id = (SELECT min(id) FROM redemptions)")
            .await?;
        Err(diesel::result::Error::RollbackTransaction)
    })
    .await
    .unwrap_err();
    assert_eq!(app.count("log_entries").await, 3);
    redeem_ok(&app, &f, &book, 3).await;
    assert_eq!(
        app.count("log_entries WHERE log_index IS NULL").await
            + app.count("log_entries WHERE log_index IS NOT NULL").await,
        4
    );
}

/// Runs one SQL batch with the triggers off, as someone with the
/// database's superuser password could.
async fn behind_the_triggers(app: &TestApp, sql: &str) {
    let mut conn = diesel_async::AsyncPgConnection::establish(
        app.state.config.database_url.as_deref().unwrap(),
    )
    .await
    .unwrap();
    conn.batch_execute(&format!("SET session_replication_role = replica; {sql}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_changed_redemption_makes_passnum_log_verify_database_fail_naming_it() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 10).await;
    let mut receipts = Vec::new();
    for i in 0..6 {
        receipts.push(redeem_ok(&app, &f, &book, i).await);
    }
    assert_eq!(sequence_all(&app).await, 6);
    let database_url = app.state.config.database_url.clone().unwrap();
    let kept = scratch("kept");
    let (ok, out) = passnum_log(
        &[
            "verify",
            "--url",
            &app.address,
            "--checkpoint",
            kept.to_str().unwrap(),
            "--database",
        ],
        Some(&database_url),
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("6 entries") && out.contains("exactly its events, unchanged"),
        "{out}"
    );

    // A redemption changed after the fact: the log still holds what was committed.
    behind_the_triggers(
        &app,
        &format!(
            "UPDATE redemptions SET face_value_cents = 2500 WHERE id = {}",
            receipts[3]["id"]
        ),
    )
    .await;
    let (ok, out) = passnum_log(&["verify", "--database"], Some(&database_url)).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("entry 3 (redemption {}, redeemed): amount_cents is 2000 in the log, 2500 in the database", receipts[3]["id"])),
        "{out}"
    );
    // A redemption whose entry was removed.
    behind_the_triggers(&app, &format!("UPDATE redemptions SET face_value_cents = 2000 WHERE id = {id}; DELETE FROM log_entries WHERE log_index = 5", id = receipts[3]["id"])).await;
    let (ok, out) = passnum_log(&["verify", "--database"], Some(&database_url)).await;
    assert!(
        !ok && out.contains(&format!(
            "redemption {} (redeemed) has no entry in the log",
            receipts[5]["id"]
        )),
        "{out}"
    );
}

#[tokio::test]
async fn a_changed_tile_or_a_rewritten_log_makes_passnum_log_verify_fail_naming_it() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 10).await;
    for i in 0..6 {
        redeem_ok(&app, &f, &book, i).await;
    }
    assert_eq!(sequence_all(&app).await, 6);
    let kept = scratch("kept");
    let kept_arg = kept.to_str().unwrap();
    let (ok, out) = passnum_log(
        &["verify", "--url", &app.address, "--checkpoint", kept_arg],
        None,
    )
    .await;
    assert!(ok, "{out}");
    let original = std::fs::read(&kept).unwrap();

    // One tile changed: it no longer matches the entries.
    behind_the_triggers(&app, "UPDATE log_tiles SET hashes = overlay(hashes PLACING '\\xff'::bytea FROM 65 FOR 1) WHERE level = 0 AND n = 0").await;
    let (ok, out) = passnum_log(
        &["verify", "--url", &app.address, "--checkpoint", kept_arg],
        None,
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("tile tile/0/000.p/6 differs from the entries: its hash 2 is"),
        "{out}"
    );
    assert!(out.contains("the hash of entry 2 is"), "{out}");
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        original,
        "a failed check keeps the old checkpoint"
    );
    let (ok, out) = go_check(&app, None).await;
    assert!(!ok, "Go accepted a changed tile: {out}");

    // A rewritten log: one entry changed, the tree rebuilt and signed anew
    // with the log's own key, then grown. Alone it verifies; against the
    // checkpoint kept before, it does not.
    behind_the_triggers(
        &app,
        "UPDATE log_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '\"amount_cents\":2000', '\"amount_cents\":1000'), 'UTF8') WHERE log_index = 2;
         DELETE FROM log_tiles; DELETE FROM log_checkpoints; UPDATE log_state SET size = 0;
         UPDATE log_entries SET log_index = NULL, sequenced_at = NULL;",
    )
    .await;
    redeem_ok(&app, &f, &book, 6).await;
    assert_eq!(sequence_all(&app).await, 7);
    let (ok, out) = passnum_log(&["verify", "--url", &app.address], None).await;
    assert!(ok, "{out}");
    let (ok, out) = passnum_log(
        &["verify", "--url", &app.address, "--checkpoint", kept_arg],
        None,
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("the log of 7 entries does not extend the checkpoint of 6 entries"),
        "{out}"
    );
    let (ok, out) = go_check(&app, Some(&kept)).await;
    assert!(!ok && out.contains("tlog.CheckTree"), "{out}");
}

/// Random money events, sequencer rounds and restarts of the instance: the
/// log is always exactly the committed events, in order, and every pair of
/// checkpoints is consistent.
#[tokio::test]
async fn random_events_and_restarts_keep_the_log_equal_to_what_was_committed() {
    let first = spawn_app().await;
    let f = fixture(&first).await;
    let config = first.state.config.as_ref().clone();
    let mut app = first;
    let mut rng = StdRng::seed_from_u64(22);
    let mut books = vec![issue_book(&app, &f, 10).await];
    let mut used = 0usize;
    let mut live: Vec<Value> = Vec::new();
    let mut expected: Vec<(String, i64)> = Vec::new();
    let venue = f.tokens[&Role::Venue].clone();
    let funder = f.tokens[&Role::Funder].clone();
    for _ in 0..40 {
        match rng.gen_range(0..10) {
            0..=4 => {
                if used == 10 {
                    books.push(issue_book(&app, &f, 10).await);
                    used = 0;
                }
                let r = redeem_ok(&app, &f, books.last().unwrap(), used).await;
                used += 1;
                expected.push(("redeemed".into(), r["id"].as_i64().unwrap()));
                live.push(r);
            }
            5 if !live.is_empty() => {
                let r = live.remove(rng.gen_range(0..live.len()));
                post(
                    &app,
                    &format!("/api/v1/redemptions/{}/cancel", r["id"]),
                    &venue,
                    json!({"reason": "erreur"}),
                )
                .await;
                expected.push(("cancelled".into(), r["id"].as_i64().unwrap()));
            }
            6 if !live.is_empty() => {
                let r = live.remove(rng.gen_range(0..live.len()));
                post(
                    &app,
                    &format!("/api/v1/redemptions/{}/reverse", r["id"]),
                    &funder,
                    json!({"reason": "contesté"}),
                )
                .await;
                expected.push(("reversed".into(), r["id"].as_i64().unwrap()));
            }
            7 => {
                sequence_all(&app).await;
            }
            8 => {
                // A restart: another instance on the same database takes over.
                let mut config = config.clone();
                config.keys_dir = app.state.config.keys_dir.clone();
                app = spawn_app_on(config).await;
            }
            _ => {}
        }
    }
    let size = sequence_all(&app).await;
    let entries = served_entries(&app, size).await;
    let got: Vec<(String, i64)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["redemption_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got, expected,
        "the log is the events, in the order they committed"
    );

    let mut conn = app.state.pool.get().await.unwrap();
    let audit = passnum::log::audit::audit(&mut conn).await.unwrap();
    assert!(audit.differences.is_empty(), "{:?}", audit.differences);
    assert_eq!(audit.entries, size);

    #[derive(diesel::QueryableByName)]
    struct Cp {
        #[diesel(sql_type = diesel::sql_types::Text)]
        note: String,
    }
    let notes: Vec<Cp> = diesel::sql_query("SELECT note FROM log_checkpoints ORDER BY tree_size")
        .load(&mut conn)
        .await
        .unwrap();
    assert!(notes.len() >= 2, "{} checkpoints", notes.len());
    let key = String::from_utf8(text(&app, "/log/key").await.1).unwrap();
    let opened: Vec<_> = notes
        .iter()
        .map(|n| passnum::log::note::open(n.note.as_bytes(), key.trim()).unwrap())
        .collect();
    let remote = Remote::new(&app.address).unwrap();
    let mut tiles = passnum::log::tree::Tiles::of_size(size);
    for (level, n, _) in passnum::log::tree::all_tiles(size) {
        tiles.insert(level, n, remote.tile(size, level, n).await.unwrap());
    }
    for (i, new) in opened.iter().enumerate() {
        assert_eq!(tiles.root(new.size).unwrap(), new.root);
        for old in &opened[..i] {
            verify::consistent(&tiles, new, old).unwrap();
        }
    }
}

#[tokio::test]
async fn phones_raise_alarms_the_operator_sees_and_the_journal_page_explains_the_log() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let page = app.get("/journal").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Le journal est encore vide"), "{html}");

    let book = issue_book(&app, &f, 5).await;
    redeem_ok(&app, &f, &book, 0).await;
    sequence_all(&app).await;
    let html = app.get("/journal").await.text().await.unwrap();
    assert!(html.contains("passnum log verify --url"), "{html}");
    assert!(
        html.contains(&format!("{}\n1\n", app.state.config.log_origin)),
        "{html}"
    );

    for (body, field) in [
        (
            json!({"problem": "", "detail": "x", "kept_checkpoint": "a\n1\nb\n"}),
            "problem",
        ),
        (
            json!({"problem": "inconsistent", "detail": "x", "kept_checkpoint": ""}),
            "kept_checkpoint",
        ),
        (
            json!({"problem": "inconsistent", "detail": "x".repeat(2001), "kept_checkpoint": "a"}),
            "detail",
        ),
        (
            json!({"problem": "inconsistent", "detail": "x", "kept_checkpoint": "a", "extra": 1}),
            "",
        ),
    ] {
        let res = app
            .with_token(Method::POST, "/api/v1/log/alarms", venue)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(res, 422, "validation-error").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{problem}"
        );
    }
    assert_eq!(app.count("log_alarms").await, 0);
    let alarm = post(
        &app,
        "/api/v1/log/alarms",
        venue,
        json!({"problem": "inconsistent", "detail": "Le journal ne prolonge pas celui vu hier.", "kept_checkpoint": "a\n1\nb\n", "new_checkpoint": "a\n2\nc\n"}),
    )
    .await;
    assert_eq!(
        alarm["venue_organisation_id"],
        f.org_ids["lieu@demo.passnum.test"]
    );
    let res = app
        .with_token(
            Method::GET,
            "/api/v1/log/alarms",
            &f.tokens[&Role::Operator],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["items"][0]["problem"], "inconsistent");
    assert_eq!(list["items"][0]["new_checkpoint"], "a\n2\nc\n");
}
