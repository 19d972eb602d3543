//! Signed statements: what each venue is owed, provable offline.

use chrono::{Duration, Utc};
use passnum::auth::Role;
use passnum::domain::paris;
use passnum::voucher::statement;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    expect_problem, fixture, login_token, new_database, spawn_app, spawn_app_on, test_config,
    Fixture, TestApp,
};
use crate::redemptions::{issue_book, redeem};

pub async fn close(app: &TestApp, f: &Fixture, period_end: chrono::NaiveDate) -> reqwest::Response {
    app.with_token(
        Method::POST,
        &format!("/api/v1/programs/{}/statements", f.program_id),
        &f.tokens[&Role::Funder],
    )
    .json(&json!({"period_end": period_end.to_string()}))
    .send()
    .await
    .unwrap()
}

async fn csv(app: &TestApp, token: &str, id: &Value) -> Vec<u8> {
    let res = app
        .with_token(Method::GET, &format!("/api/v1/statements/{id}/csv"), token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap().to_vec()
}

/// Checks bytes against a published sha256 and signature, with the JWK Set's key.
async fn verifies(app: &TestApp, bytes: &[u8], sha256: &str, kid: &str, signature: &str) -> bool {
    use base64::Engine;
    let set: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid && k["purpose"] == "statement")
        .unwrap();
    let x: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
    let digest = statement::digest(bytes);
    statement::digest_hex(&digest) == sha256 && statement::verify(&digest, signature, &key).is_ok()
}

#[tokio::test]
async fn a_closed_period_is_signed_whole_and_per_venue() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let lieu2 = login_token(&app, "lieu2@demo.passnum.test").await;
    let book = issue_book(&app, &f, 10).await;
    let code = |i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    for i in 0..3 {
        assert_eq!(
            redeem(&app, &f.tokens[&Role::Venue], &code(i))
                .await
                .status(),
            201
        );
    }
    for i in 3..5 {
        assert_eq!(redeem(&app, &lieu2, &code(i)).await.status(), 201);
    }
    let today = paris::today();
    expect_problem(
        close(&app, &f, today + chrono::Days::new(1)).await,
        422,
        "validation-error",
    )
    .await;
    let res = close(&app, &f, today).await;
    assert_eq!(res.status(), 201);
    let s: Value = res.json().await.unwrap();
    assert_eq!(s["number"], 1);
    assert_eq!(s["total_count"], 5);
    assert_eq!(s["total_cents"], 5 * 2000);
    assert_eq!(s["venues"].as_array().unwrap().len(), 2);

    let funder = &f.tokens[&Role::Funder];
    let whole = csv(&app, funder, &s["id"]).await;
    assert!(whole.starts_with("\u{feff}statement_number;redemption_id;".as_bytes()));
    assert_eq!(
        String::from_utf8(whole.clone())
            .unwrap()
            .matches("\r\n")
            .count(),
        6
    );
    let kid = s["kid"].as_str().unwrap();
    assert!(
        verifies(
            &app,
            &whole,
            s["sha256"].as_str().unwrap(),
            kid,
            s["signature"].as_str().unwrap()
        )
        .await
    );
    let mut tampered = whole.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    assert!(
        !verifies(
            &app,
            &tampered,
            s["sha256"].as_str().unwrap(),
            kid,
            s["signature"].as_str().unwrap()
        )
        .await
    );

    // A venue sees its own extract only, signed on its own.
    let mine: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/statements/{}", s["id"]),
            &lieu2,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["total_count"], 2);
    assert_eq!(mine["total_cents"], 4000);
    let extract = csv(&app, &lieu2, &s["id"]).await;
    assert!(
        verifies(
            &app,
            &extract,
            mine["sha256"].as_str().unwrap(),
            kid,
            mine["signature"].as_str().unwrap()
        )
        .await
    );
    assert!(!String::from_utf8_lossy(&extract).contains("Malraux"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releve.csv");
    std::fs::write(&path, &extract).unwrap();
    let tampered_path = dir.path().join("tampered.csv");
    let mut changed = extract.clone();
    changed[10] ^= 1;
    std::fs::write(&tampered_path, &changed).unwrap();

    // The independent verifier, from the JWK Set alone; one changed byte fails it.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent/verify.py");
    for (file, ok) in [(&path, true), (&tampered_path, false)] {
        let out = std::process::Command::new("python3")
            .args([
                script,
                "statement",
                "--jwks",
                &app.url("/.well-known/jwks.json"),
                "--kid",
                kid,
                "--signature",
                mine["signature"].as_str().unwrap(),
            ])
            .arg(file)
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // `passnum statement verify`, with the JWK Set file and with the key ring;
    // one changed byte fails both.
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        app.get("/.well-known/jwks.json")
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    for (file, ok) in [(&path, true), (&tampered_path, false)] {
        for with_jwks in [true, false] {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_passnum"));
            cmd.args(["statement", "verify"])
                .arg(file)
                .args([
                    "--kid",
                    kid,
                    "--signature",
                    mine["signature"].as_str().unwrap(),
                ])
                .env(
                    "DATABASE_URL",
                    app.state.config.database_url.as_deref().unwrap(),
                )
                .env("PASSNUM_KEYS_DIR", &app.state.config.keys_dir);
            if with_jwks {
                cmd.arg("--jwks").arg(&jwks);
            }
            let out = cmd.output().unwrap();
            assert_eq!(
                out.status.success(),
                ok,
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // Nothing left to put on a second statement for the same day, and the
    // period cannot be closed twice.
    expect_problem(close(&app, &f, today).await, 409, "conflict").await;
    // Other organisations see nothing.
    let res = app
        .with_token(
            Method::GET,
            &format!("/api/v1/statements/{}", s["id"]),
            &f.other_tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not-found").await;
}

#[tokio::test]
async fn a_reversal_after_closing_lands_on_the_next_statement_and_the_first_never_changes() {
    // A long cancel window: the refusal below is the statement's doing.
    let mut config = test_config(&new_database().await);
    config.cancel_window_hours = 72;
    let app = spawn_app_on(config).await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let receipt: Value = redeem(
        &app,
        &f.tokens[&Role::Venue],
        book["vouchers"][0]["code"].as_str().unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    let yesterday = paris::today() - chrono::Days::new(1);
    app.sql(&format!(
        "UPDATE redemptions SET redeemed_at = now() - interval '1 day' WHERE id = {}",
        receipt["id"]
    ))
    .await;
    let first: Value = close(&app, &f, yesterday).await.json().await.unwrap();
    assert_eq!(first["total_cents"], 2000);
    let first_bytes = csv(&app, &f.tokens[&Role::Funder], &first["id"]).await;

    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/redemptions/{}/reverse", receipt["id"]),
            &f.tokens[&Role::Funder],
        )
        .json(&json!({"reason": "atelier non tenu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A closed statement cannot be cancelled from, nor changed by SQL.
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/redemptions/{}/cancel", receipt["id"]),
            &f.tokens[&Role::Venue],
        )
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 409, "not-cancellable").await;
    let mut conn = app.state.pool.get().await.unwrap();
    let tamper = diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE statements SET total_cents = 0"),
        &mut conn,
    )
    .await;
    assert!(tamper.is_err());
    drop(conn);

    let second: Value = close(&app, &f, paris::today()).await.json().await.unwrap();
    assert_eq!(second["number"], 2);
    assert_eq!(second["total_count"], 1);
    assert_eq!(second["total_cents"], -2000);
    let second_csv =
        String::from_utf8(csv(&app, &f.tokens[&Role::Funder], &second["id"]).await).unwrap();
    assert!(second_csv.trim_end().ends_with(";-2000"), "{second_csv}");
    // The first statement is byte for byte what it was, and still verifies.
    let again: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/statements/{}", first["id"]),
            &f.tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["signature"], first["signature"]);
    assert_eq!(
        csv(&app, &f.tokens[&Role::Funder], &first["id"]).await,
        first_bytes
    );
}

/// Issue 8: a conflict resolved `pay` is paid on the next statement, once;
/// one resolved `reject` never.
#[tokio::test]
async fn a_paid_conflict_lands_on_the_next_statement_once_and_a_rejected_one_never() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let lieu2 = login_token(&app, "lieu2@demo.passnum.test").await;
    let book = issue_book(&app, &f, 5).await;
    let code = |i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    let at = (Utc::now() - Duration::minutes(5)).to_rfc3339();
    let scan = |nonce: &str, code: String| json!({"nonce": nonce, "code": code, "scanned_at": at, "workshop": crate::redemptions::workshop()});
    let batch = |token: String, items: Vec<Value>| {
        let app = &app;
        async move {
            app.with_token(Method::POST, "/api/v1/redemptions/batch", &token)
                .json(&json!({"items": items}))
                .send()
                .await
                .unwrap()
        }
    };
    batch(
        f.tokens[&Role::Venue].clone(),
        vec![scan("a", code(0)), scan("b", code(1))],
    )
    .await;
    batch(lieu2.clone(), vec![scan("c", code(0)), scan("d", code(1))]).await;
    let conflicts: Value = app
        .with_token(Method::GET, "/api/v1/conflicts", &f.tokens[&Role::Funder])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<Value> = conflicts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    for (id, decision) in ids.iter().zip(["pay", "reject"]) {
        app.with_token(
            Method::POST,
            &format!("/api/v1/conflicts/{id}/resolve"),
            &f.tokens[&Role::Funder],
        )
        .json(&json!({"decision": decision, "reason": "vu"}))
        .send()
        .await
        .unwrap();
    }
    let s: Value = close(&app, &f, paris::today()).await.json().await.unwrap();
    // Two first scans plus the paid conflict.
    assert_eq!(s["total_count"], 3);
    assert_eq!(s["total_cents"], 3 * 2000);
    let lieu2_part = s["venues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["venue_organisation_id"] == f.org_ids["lieu2@demo.passnum.test"])
        .unwrap()
        .clone();
    assert_eq!(lieu2_part["count"], 1);
    // Resolving again changes nothing.
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/conflicts/{}/resolve", ids[0]),
            &f.tokens[&Role::Funder],
        )
        .json(&json!({"decision": "pay", "reason": "encore"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 409, "conflict").await;
    assert_eq!(app.count("statement_lines").await, 3);
}

async fn pay(app: &TestApp, token: &str, statement: &Value, body: Value) -> reqwest::Response {
    app.with_token(
        Method::POST,
        &format!("/api/v1/statements/{}/payments", statement["id"]),
        token,
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

fn venue_part(statement: &Value, venue: i64) -> Value {
    statement["venues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["venue_organisation_id"] == venue)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Backdates one redemption by `days`.
async fn backdate(app: &TestApp, receipt: &Value, days: i64) {
    app.sql(&format!(
        "UPDATE redemptions SET redeemed_at = now() - interval '{days} days' WHERE id = {}",
        receipt["id"]
    ))
    .await;
}

#[tokio::test]
async fn a_venue_is_paid_once_its_exact_total_and_a_negative_balance_is_carried() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (funder, venue_token) = (&f.tokens[&Role::Funder], &f.tokens[&Role::Venue]);
    let venue = f.org_ids["lieu@demo.passnum.test"];
    let today = paris::today();
    let book = issue_book(&app, &f, 5).await;
    let code = |i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    let first: Value = redeem(&app, venue_token, &code(0))
        .await
        .json()
        .await
        .unwrap();
    backdate(&app, &first, 4).await;
    let s1: Value = close(&app, &f, today - chrono::Days::new(3))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(venue_part(&s1, venue)["status"], "due");
    let good = json!({"venue_organisation_id": venue, "amount_cents": 2000, "paid_on": today.to_string(), "reference": "VIR-2026-0042"});
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };

    // Every wrong payment is refused and records nothing.
    expect_problem(
        pay(&app, venue_token, &s1, good.clone()).await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        pay(&app, &f.other_tokens[&Role::Funder], &s1, good.clone()).await,
        404,
        "not-found",
    )
    .await;
    for (body, field) in [
        (with("amount_cents", json!(1999)), "amount_cents"),
        (
            with(
                "venue_organisation_id",
                json!(f.org_ids["lieu2@demo.passnum.test"]),
            ),
            "venue_organisation_id",
        ),
        (
            with("paid_on", json!((today + chrono::Days::new(1)).to_string())),
            "paid_on",
        ),
        (
            with("paid_on", json!((today - chrono::Days::new(1)).to_string())),
            "paid_on",
        ),
        (with("reference", json!("  ")), "reference"),
        (with("reference", json!("a\nb")), "reference"),
        (with("reference", json!("x".repeat(141))), "reference"),
    ] {
        let problem =
            expect_problem(pay(&app, funder, &s1, body).await, 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    expect_problem(
        pay(&app, funder, &s1, json!({"venue_organisation_id": venue})).await,
        422,
        "validation-error",
    )
    .await;
    assert_eq!(app.count("statement_payments").await, 0);

    let res = pay(&app, funder, &s1, good.clone()).await;
    assert_eq!(res.status(), 201);
    let payment: Value = res.json().await.unwrap();
    assert_eq!(payment["amount_cents"], 2000);
    assert_eq!(payment["reference"], "VIR-2026-0042");
    expect_problem(pay(&app, funder, &s1, good.clone()).await, 409, "conflict").await;
    let seen: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/statements/{}", s1["id"]),
            venue_token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["venues"][0]["status"], "paid");
    assert_eq!(seen["venues"][0]["payment"]["paid_on"], today.to_string());

    // Reversed after being paid: the next extract is negative, so nothing is
    // paid on it and the balance is carried to the one after.
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/redemptions/{}/reverse", first["id"]),
            funder,
        )
        .json(&json!({"reason": "atelier non tenu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.sql(&format!(
        "UPDATE redemptions SET reversed_at = now() - interval '3 days' WHERE id = {}",
        first["id"]
    ))
    .await;
    let s2: Value = close(&app, &f, today - chrono::Days::new(2))
        .await
        .json()
        .await
        .unwrap();
    let part = venue_part(&s2, venue);
    assert_eq!(
        (part["total_cents"].clone(), part["status"].clone()),
        (json!(-2000), json!("carried"))
    );
    expect_problem(
        pay(&app, funder, &s2, json!({"venue_organisation_id": venue, "amount_cents": 2000, "paid_on": today.to_string(), "reference": "VIR-1"})).await,
        409,
        "conflict",
    )
    .await;

    for i in 1..3 {
        assert_eq!(redeem(&app, venue_token, &code(i)).await.status(), 201);
    }
    let s3: Value = close(&app, &f, today).await.json().await.unwrap();
    let part = venue_part(&s3, venue);
    assert_eq!(part["count"], 3, "two redemptions and the carried balance");
    assert_eq!(part["total_cents"], 2000);
    let extract = String::from_utf8(csv(&app, venue_token, &s3["id"]).await).unwrap();
    assert!(
        extract.contains(&format!(
            ";;;report du relevé 2;{};-2000\r\n",
            today - chrono::Days::new(2)
        )),
        "{extract}"
    );
    assert!(
        verifies(
            &app,
            extract.as_bytes(),
            part["sha256"].as_str().unwrap(),
            s3["kid"].as_str().unwrap(),
            part["signature"].as_str().unwrap()
        )
        .await
    );
    let res = pay(&app, funder, &s3, with("amount_cents", json!(2000))).await;
    assert_eq!(res.status(), 201);
    // The balance was carried once, onto the third statement.
    assert_eq!(app.count("statement_carries").await, 1);

    // The PDF reads the signed CSV: the whole for the funder, the extract for the venue.
    for (token, sha256) in [(funder, &s3["sha256"]), (venue_token, &part["sha256"])] {
        let text = pdf_text(&app, token, &s3["id"]).await;
        for expected in [
            "Relevé n° 3",
            "SIRET 90000004300019",
            "Report du relevé 2",
            "Payé le",
            sha256.as_str().unwrap(),
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }
    let foreign = app
        .with_token(
            Method::GET,
            &format!("/api/v1/statements/{}/pdf", s3["id"]),
            &f.other_tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap();
    expect_problem(foreign, 404, "not-found").await;
}

/// The text of a statement's PDF, by poppler's `pdftotext`.
pub(crate) async fn pdf_text(app: &TestApp, token: &str, id: &Value) -> String {
    let res = app
        .with_token(Method::GET, &format!("/api/v1/statements/{id}/pdf"), token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releve.pdf");
    std::fs::write(&path, res.bytes().await.unwrap()).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", path.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (poppler-utils, installed by scripts/test)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

async fn live(
    app: &TestApp,
    token: &str,
    program: i32,
    query: &str,
    accept: &str,
) -> reqwest::Response {
    app.with_token(
        Method::GET,
        &format!("/api/v1/programs/{program}/statement{query}"),
        token,
    )
    .header("Accept", accept)
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn the_live_statement_lists_the_payable_redemptions_of_a_range_as_csv_or_json() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (funder, venue_token) = (&f.tokens[&Role::Funder], &f.tokens[&Role::Venue]);
    let book = issue_book(&app, &f, 5).await;
    let code = |i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    let mut receipts = Vec::new();
    for i in 0..4 {
        receipts.push(
            redeem(&app, venue_token, &code(i))
                .await
                .json::<Value>()
                .await
                .unwrap(),
        );
    }
    backdate(&app, &receipts[0], 10).await;
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/redemptions/{}/cancel", receipts[1]["id"]),
            venue_token,
        )
        .json(&json!({"reason": "erreur de saisie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let today = paris::today();
    let week = format!("?from={}&to={today}", today - chrono::Days::new(7));

    let res = live(&app, funder, f.program_id, &week, "application/json").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let ids: Vec<&Value> = body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["redemption_id"])
        .collect();
    assert_eq!(ids, vec![&receipts[2]["id"], &receipts[3]["id"]], "{body}");
    assert_eq!(body["total_count"], 2);
    assert_eq!(body["total_cents"], 4000);
    assert_eq!(body["lines"][0]["voucher_id"], receipts[2]["voucher_id"]);

    let month = format!("?from={}", today - chrono::Days::new(30));
    let res = live(&app, funder, f.program_id, &month, "text/csv").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = res.text().await.unwrap();
    let rows: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert_eq!(
        rows.len(),
        1 + 3 + 1,
        "header, three lines, and the final empty cell: {text}"
    );
    assert!(
        rows[1].starts_with(&format!(";{};", receipts[0]["id"])),
        "no number on a live statement: {text}"
    );

    expect_problem(
        live(
            &app,
            funder,
            f.program_id,
            &format!("?from={today}&to={}", today - chrono::Days::new(1)),
            "text/csv",
        )
        .await,
        422,
        "validation-error",
    )
    .await;
    expect_problem(
        live(&app, funder, f.program_id, "?from=hier", "text/csv").await,
        422,
        "validation-error",
    )
    .await;
    expect_problem(
        live(&app, venue_token, f.program_id, "", "text/csv").await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        live(&app, funder, f.other_program_id, "", "text/csv").await,
        404,
        "not-found",
    )
    .await;
}

/// The figures of one state, as `(count, cents)`.
fn figure(stats: &Value, state: &str) -> (i64, i64) {
    let f = &stats["vouchers"][state];
    (f["count"].as_i64().unwrap(), f["cents"].as_i64().unwrap())
}

#[tokio::test]
async fn stats_count_each_position_once_and_conserve_every_voucher() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (funder, issuer, venue_token) = (
        &f.tokens[&Role::Funder],
        &f.tokens[&Role::Issuer],
        &f.tokens[&Role::Venue],
    );
    let kept = issue_book(&app, &f, 10).await;
    let replaced = issue_book(&app, &f, 5).await;
    let revoked = issue_book(&app, &f, 5).await;
    let code = |book: &Value, i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    for i in 0..3 {
        assert_eq!(
            redeem(&app, venue_token, &code(&kept, i)).await.status(),
            201
        );
    }
    assert_eq!(
        redeem(&app, venue_token, &code(&replaced, 0))
            .await
            .status(),
        201
    );
    assert_eq!(
        redeem(&app, venue_token, &code(&revoked, 0)).await.status(),
        201
    );
    let cancelled: Value = redeem(&app, venue_token, &code(&revoked, 1))
        .await
        .json()
        .await
        .unwrap();
    app.with_token(
        Method::POST,
        &format!("/api/v1/redemptions/{}/cancel", cancelled["id"]),
        venue_token,
    )
    .json(&json!({"reason": "erreur"}))
    .send()
    .await
    .unwrap();
    for (book, action) in [(&replaced, "replace"), (&revoked, "revoke")] {
        let res = app
            .with_token(
                Method::POST,
                &format!("/api/v1/books/{}/{action}", book["id"]),
                issuer,
            )
            .json(&json!({"reason": "perdu"}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    // Two vouchers of the kept book expired yesterday.
    app.sql(&format!(
        "UPDATE vouchers SET expires_on = current_date - 1 WHERE book_id = {} AND position IN (9, 10)",
        kept["id"]
    ))
    .await;

    let res = app
        .with_token(
            Method::GET,
            &format!("/api/v1/programs/{}/stats", f.program_id),
            funder,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stats: Value = res.json().await.unwrap();
    let euros = |n: i64| (n, n * 2000);
    assert_eq!(
        stats["books_issued"], 3,
        "the replacement stands for the book it replaces"
    );
    assert_eq!(figure(&stats, "issued"), euros(20));
    assert_eq!(figure(&stats, "redeemed"), euros(5));
    assert_eq!(figure(&stats, "revoked"), euros(4));
    assert_eq!(figure(&stats, "expired"), euros(2));
    assert_eq!(figure(&stats, "outstanding"), euros(9));
    assert_eq!(figure(&stats, "cancelled"), euros(1));
    assert_eq!(stats["usage_rate"], 0.25);
    let program: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/programs/{}", f.program_id),
            funder,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        program["committed_cents"],
        stats["vouchers"]["issued"]["cents"]
    );
    assert_eq!(stats["by_venue"][0]["redeemed"]["count"], 5);
    assert_eq!(
        stats["by_theme"][0]["label"]
            .as_str()
            .map(|l| !l.is_empty()),
        Some(true)
    );
    assert_eq!(stats["by_departement"][0]["departement"], "67");
    assert_eq!(stats["by_departement"][0]["issued"]["count"], 20);
    let month = stats["by_month"].as_array().unwrap();
    assert_eq!(month.len(), 1);
    assert_eq!(month[0]["issued"]["count"], 20);
    assert_eq!(month[0]["redeemed"]["count"], 5);
    expect_problem(
        app.with_token(
            Method::GET,
            &format!("/api/v1/programs/{}/stats", f.other_program_id),
            funder,
        )
        .send()
        .await
        .unwrap(),
        404,
        "not-found",
    )
    .await;
}
