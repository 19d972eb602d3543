//! Redemption at venues: exactly once, and every refusal its own problem.

use chrono::{Days, NaiveDate};
use passnum::auth::Role;
use passnum::domain::paris;
use passnum::keys::Purpose;
use passnum::voucher::VoucherBody;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    expect_problem, fixture, new_database, spawn_app, spawn_app_on, test_config, Fixture, TestApp,
};

pub async fn issue_book(app: &TestApp, f: &Fixture, size: i64) -> Value {
    let res = app
        .with_token(Method::POST, "/api/v1/books", &f.tokens[&Role::Issuer])
        .json(&json!({"program_id": f.program_id, "size": size, "beneficiary": {"reference": "R-7", "postcode": "67000"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let book: Value = res.json().await.unwrap();
    // As if handed out a week ago: offline scans here are dated up to a few
    // days back, and a scan is never dated before its book existed.
    app.sql(&format!(
        "UPDATE books SET created_at = now() - interval '8 days' WHERE id = {}",
        book["id"]
    ))
    .await;
    book
}

pub fn workshop() -> Value {
    json!({"theme": "online_procedures", "held_on": paris::today().to_string(), "duration_minutes": 90})
}

pub async fn redeem(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.with_token(Method::POST, "/api/v1/redemptions", token)
        .json(&json!({"code": code, "workshop": workshop()}))
        .send()
        .await
        .unwrap()
}

async fn check(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.with_token(Method::POST, "/api/v1/vouchers/check", token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
}

fn code(book: &Value, i: usize) -> String {
    book["vouchers"][i]["code"].as_str().unwrap().to_owned()
}

/// Re-issues voucher `i` of a book with another last valid day, as if it had
/// been issued then: same id and position, signed by the ring's voucher key.
async fn with_expiry(
    app: &TestApp,
    f: &Fixture,
    book: &Value,
    i: usize,
    expires_on: NaiveDate,
) -> String {
    let (kid, key) = app.state.keys.signer(Purpose::Voucher).await.unwrap();
    let v = &book["vouchers"][i];
    let id: u64 = v["voucher_id"].as_str().unwrap().parse().unwrap();
    let body = VoucherBody {
        kid,
        voucher_id: id,
        program_id: f.program_id as u32,
        expires_on,
        position: v["position"].as_u64().unwrap() as u8,
        book_size: book["size"].as_u64().unwrap() as u8,
    };
    let text = body.sign(&key).unwrap().to_text();
    app.sql(&format!(
        "UPDATE vouchers SET expires_on = '{expires_on}', code = '{text}' WHERE id = {id}"
    ))
    .await;
    text
}

#[tokio::test]
async fn a_venue_redeems_a_voucher_once() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let book = issue_book(&app, &f, 10).await;
    let code = code(&book, 2);

    let checked: Value = check(&app, venue, &code).await.json().await.unwrap();
    assert_eq!(checked["redeemable"], true);
    assert_eq!(checked["status"], "valid");
    assert_eq!(checked["position"], 3);
    assert_eq!(checked["book_size"], 10);
    assert!(checked.get("problem").is_none());
    assert_eq!(app.count("redemptions").await, 0, "check stores nothing");

    let res = redeem(&app, venue, &code).await;
    assert_eq!(res.status(), 201);
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["voucher_id"], book["vouchers"][2]["voucher_id"]);
    assert_eq!(receipt["position"], 3);
    assert_eq!(receipt["book_size"], 10);
    assert_eq!(receipt["face_value_cents"], 2000);
    assert!(receipt["redeemed_at"].is_string());

    // Again, at this venue: it says when, and which redemption.
    let again = expect_problem(redeem(&app, venue, &code).await, 409, "already-redeemed").await;
    assert_eq!(again["redeemed_at"], receipt["redeemed_at"]);
    assert_eq!(again["redemption_id"], receipt["id"]);
    // At another venue: when, never who.
    let lieu2 = crate::helpers::login_token(&app, "lieu2@demo.passnum.test").await;
    let elsewhere =
        expect_problem(redeem(&app, &lieu2, &code).await, 409, "already-redeemed").await;
    assert!(elsewhere.get("redemption_id").is_none(), "{elsewhere}");
    assert!(!elsewhere.to_string().contains("Malraux"));

    let checked: Value = check(&app, venue, &code).await.json().await.unwrap();
    assert_eq!(checked["status"], "redeemed");
    assert_eq!(checked["redeemable"], false);
    assert_eq!(checked["problem"], "already-redeemed");
    // The check says when (so the scan page can), and that this venue did it.
    let instant = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{v}: {e}"))
    };
    assert_eq!(
        instant(&checked["redeemed_at"]),
        instant(&receipt["redeemed_at"])
    );
    assert_eq!(checked["redeemed_here"], true);
    let checked_elsewhere: Value = check(&app, &lieu2, &code).await.json().await.unwrap();
    assert_eq!(checked_elsewhere["redeemed_here"], false);
    assert!(checked_elsewhere["redeemed_at"].is_string());
    let book_now: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/books/{}", book["id"]),
            &f.tokens[&Role::Issuer],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(book_now["used"], 1);
    assert_eq!(book_now["vouchers"][2]["status"], "redeemed");
    let program: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/programs/{}", f.program_id),
            &f.tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(program["redeemed_cents"], 2000);
    assert_eq!(app.count("redemptions").await, 1);
}

#[tokio::test]
async fn the_typed_code_works_wherever_the_qr_text_does() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let book = issue_book(&app, &f, 5).await;
    let typed = book["vouchers"][0]["typed_code"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .replace('-', " ");
    let checked: Value = check(&app, venue, &typed).await.json().await.unwrap();
    assert_eq!(checked["voucher_id"], book["vouchers"][0]["voucher_id"]);
    assert_eq!(redeem(&app, venue, &typed).await.status(), 201);
    expect_problem(
        redeem(&app, venue, &code(&book, 0)).await,
        409,
        "already-redeemed",
    )
    .await;
    // A well-formed typed code that names no voucher.
    let unknown = passnum::voucher::typed_code::encode(12345).unwrap();
    expect_problem(redeem(&app, venue, &unknown).await, 404, "not-found").await;
    expect_problem(check(&app, venue, &unknown).await, 404, "not-found").await;
}

/// 64 concurrent requests for one voucher, over two instances on one
/// database: one 201, 63 already-redeemed, one row. Twenty times.
#[tokio::test]
async fn one_voucher_redeemed_by_64_requests_over_two_instances_is_redeemed_once() {
    let database_url = new_database().await;
    let mut first = test_config(&database_url);
    first.db_pool_size = 16;
    let a = spawn_app_on(first).await;
    let mut second = test_config(&database_url);
    second.keys_dir = a.state.config.keys_dir.clone();
    second.db_pool_size = 16;
    // One instance writes each redemption alone, the other in groups.
    second.group_commit = 4;
    let b = spawn_app_on(second).await;
    let f = fixture(&a).await;
    let venue = &f.tokens[&Role::Venue];
    for round in 0..20 {
        let book = issue_book(&a, &f, 5).await;
        let code = code(&book, 0);
        let answers = futures_util::future::join_all(
            (0..64).map(|i| redeem(if i % 2 == 0 { &a } else { &b }, venue, &code)),
        )
        .await;
        let created = answers.iter().filter(|r| r.status() == 201).count();
        let refused = answers.iter().filter(|r| r.status() == 409).count();
        assert_eq!((created, refused), (1, 63), "round {round}");
        let id = book["vouchers"][0]["voucher_id"].as_str().unwrap();
        assert_eq!(
            a.count(&format!("redemptions WHERE voucher_id = {id}"))
                .await,
            1,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn every_refusal_is_its_own_problem_and_stores_nothing() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = f.tokens[&Role::Venue].clone();
    let book = issue_book(&app, &f, 10).await;
    let today = paris::today();

    // Unreadable, forged, or signed by a key nobody published.
    let mut forged: Vec<char> = code(&book, 0).chars().collect();
    forged[40] = if forged[40] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let unknown_key = VoucherBody {
        kid: 200,
        voucher_id: 77,
        program_id: f.program_id as u32,
        expires_on: today,
        position: 1,
        book_size: 5,
    }
    .sign(&stranger)
    .unwrap()
    .to_text();

    let last_day = with_expiry(&app, &f, &book, 1, today).await;
    let yesterday = with_expiry(&app, &f, &book, 2, today - Days::new(1)).await;

    let revoked_book = issue_book(&app, &f, 5).await;
    app.with_token(
        Method::POST,
        &format!("/api/v1/books/{}/revoke", revoked_book["id"]),
        &f.tokens[&Role::Issuer],
    )
    .json(&json!({"reason": "perdu"}))
    .send()
    .await
    .unwrap();

    let before = app.count("redemptions").await;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("empty", String::new(), 422, "malformed-code"),
        ("not a voucher", "hello".into(), 422, "malformed-code"),
        ("broken Base45", "PN1:GGW".into(), 422, "malformed-code"),
        ("one symbol changed", forged, 422, "invalid-signature"),
        ("unknown key", unknown_key, 422, "unknown-key"),
        (
            "the day after its last day",
            yesterday,
            410,
            "voucher-expired",
        ),
        (
            "revoked book",
            code(&revoked_book, 0),
            410,
            "voucher-revoked",
        ),
    ];
    for (case, text, status, slug) in &cases {
        let res = redeem(&app, &venue, text).await;
        assert_eq!(res.status().as_u16(), *status, "{case}");
        expect_problem(res, *status, slug).await;
    }
    // On its last day, it is still valid.
    assert_eq!(redeem(&app, &venue, &last_day).await.status(), 201);
    assert_eq!(app.count("redemptions").await, before + 1);

    // The workshop itself.
    let post = |workshop: Value| {
        app.with_token(Method::POST, "/api/v1/redemptions", &venue)
            .json(&json!({"code": code(&book, 3), "workshop": workshop}))
            .send()
    };
    let ws = |theme: &str, held_on: NaiveDate| json!({"theme": theme, "held_on": held_on.to_string(), "duration_minutes": 60});
    for (case, workshop, field) in [
        ("unknown theme", ws("astrology", today), "workshop.theme"),
        (
            "held 8 days ago",
            ws("email", today - Days::new(8)),
            "workshop.held_on",
        ),
        (
            "held tomorrow",
            ws("email", today + Days::new(1)),
            "workshop.held_on",
        ),
        (
            "too short",
            json!({"theme": "email", "held_on": today.to_string(), "duration_minutes": 5}),
            "workshop.duration_minutes",
        ),
    ] {
        let problem = expect_problem(post(workshop).await.unwrap(), 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], field, "{case}");
    }
    // Held 7 days ago is fine.
    assert_eq!(
        post(ws("email", today - Days::new(7)))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(app.count("redemptions").await, before + 2);
}

#[tokio::test]
async fn venues_must_be_accredited_and_inside_the_territory() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 10).await;
    let operator = &f.tokens[&Role::Operator];

    // A venue never accredited, and one in Paris (outside 67 and 68).
    let new_venue = |siren: &'static str, postcode: &'static str, commune: &'static str| {
        let operator = operator.clone();
        let app = &app;
        async move {
            let org: Value = app
                .with_token(Method::POST, "/api/v1/organisations", &operator)
                .json(&json!({"kind": "venue", "name": "Lieu", "siret": passnum::demo::siret_from(siren, "0001"),
                              "address": "1 rue", "postcode": postcode, "commune_code": commune,
                              "latitude": 48.0, "longitude": 2.0}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let email = format!("{siren}@example.org");
            app.with_token(Method::POST, "/api/v1/users", &operator)
                .json(&json!({"organisation_id": org["id"], "email": email, "password": "long enough password"}))
                .send()
                .await
                .unwrap();
            (
                org["id"].as_i64().unwrap(),
                crate::helpers::login_token_with(app, &email, "long enough password").await,
            )
        }
    };
    let (_, never) = new_venue("91000001", "67000", "67482").await;
    let (paris_id, paris) = new_venue("91000002", "75011", "75111").await;
    app.with_token(
        Method::POST,
        &format!("/api/v1/organisations/{paris_id}/accreditation"),
        operator,
    )
    .json(&json!({"valid_until": "2099-01-01"}))
    .send()
    .await
    .unwrap();

    let before = app.count("redemptions").await;
    expect_problem(
        redeem(&app, &never, &code(&book, 0)).await,
        403,
        "venue-not-accredited",
    )
    .await;
    expect_problem(
        redeem(&app, &paris, &code(&book, 0)).await,
        403,
        "venue-out-of-territory",
    )
    .await;

    // Accreditation that ran out yesterday, and one withdrawn today.
    let lieu = f.org_ids["lieu@demo.passnum.test"];
    let yesterday = paris::today() - Days::new(1);
    app.sql(&format!(
        "UPDATE organisations SET accredited_until = '{yesterday}' WHERE id = {lieu}"
    ))
    .await;
    expect_problem(
        redeem(&app, &f.tokens[&Role::Venue], &code(&book, 0)).await,
        403,
        "venue-not-accredited",
    )
    .await;
    let lieu2 = f.org_ids["lieu2@demo.passnum.test"];
    app.with_token(
        Method::DELETE,
        &format!("/api/v1/organisations/{lieu2}/accreditation"),
        operator,
    )
    .send()
    .await
    .unwrap();
    let lieu2_token = crate::helpers::login_token(&app, "lieu2@demo.passnum.test").await;
    expect_problem(
        redeem(&app, &lieu2_token, &code(&book, 0)).await,
        403,
        "venue-not-accredited",
    )
    .await;

    // The check endpoint says the same, without storing anything.
    let checked: Value = check(&app, &paris, &code(&book, 0))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(checked["redeemable"], false);
    assert_eq!(checked["problem"], "venue-out-of-territory");
    assert_eq!(app.count("redemptions").await, before);
}

#[tokio::test]
async fn a_closed_programmes_vouchers_are_refused() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    app.with_token(
        Method::POST,
        &format!("/api/v1/programs/{}/close", f.program_id),
        &f.tokens[&Role::Funder],
    )
    .send()
    .await
    .unwrap();
    expect_problem(
        redeem(&app, &f.tokens[&Role::Venue], &code(&book, 0)).await,
        410,
        "program-closed",
    )
    .await;
    assert_eq!(app.count("redemptions").await, 0);
}

#[tokio::test]
async fn a_withdrawn_key_makes_its_vouchers_unknown() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let kid = passnum::voucher::SignedVoucher::parse(&code(&book, 0))
        .unwrap()
        .body()
        .kid;
    app.state.keys.rotate(Purpose::Voucher).await.unwrap();
    app.state.keys.withdraw(kid, "compromised").await.unwrap();
    expect_problem(
        redeem(&app, &f.tokens[&Role::Venue], &code(&book, 0)).await,
        422,
        "unknown-key",
    )
    .await;
    // Typed, it names the voucher, but the key is still withdrawn.
    let typed = book["vouchers"][1]["typed_code"].as_str().unwrap();
    expect_problem(
        redeem(&app, &f.tokens[&Role::Venue], typed).await,
        422,
        "unknown-key",
    )
    .await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let book = issue_book(&app, &f, 5).await;
    let send = |code: String, key: &'static str| {
        app.with_token(Method::POST, "/api/v1/redemptions", venue)
            .header("Idempotency-Key", key)
            .json(&json!({"code": code, "workshop": workshop()}))
            .send()
    };
    let first = send(code(&book, 0), "k-1").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send(code(&book, 0), "k-1").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    // Concurrent replays all get the same answer.
    let answers = futures_util::future::join_all((0..8).map(|_| send(code(&book, 1), "k-2"))).await;
    let bodies: Vec<Value> = futures_util::future::join_all(answers.into_iter().map(|r| {
        let r = r.unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>()
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(app.count("redemptions").await, 2);

    // The same key with another request is refused, and stores nothing.
    expect_problem(
        send(code(&book, 2), "k-1").await.unwrap(),
        422,
        "idempotency-conflict",
    )
    .await;
    assert_eq!(app.count("redemptions").await, 2);
}

#[tokio::test]
async fn a_venue_cancels_within_the_window_and_the_voucher_is_usable_again() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let book = issue_book(&app, &f, 5).await;
    let receipt: Value = redeem(&app, venue, &code(&book, 0))
        .await
        .json()
        .await
        .unwrap();
    let cancel = |id: &Value, token: &str| {
        app.with_token(
            Method::POST,
            &format!("/api/v1/redemptions/{id}/cancel"),
            token,
        )
        .json(&json!({"reason": "scanné par erreur"}))
        .send()
    };
    // Another venue cannot see it.
    let lieu2 = crate::helpers::login_token(&app, "lieu2@demo.passnum.test").await;
    expect_problem(
        cancel(&receipt["id"], &lieu2).await.unwrap(),
        404,
        "not-found",
    )
    .await;

    let cancelled: Value = cancel(&receipt["id"], venue)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(cancelled["cancelled_at"].is_string());
    assert_eq!(cancelled["cancel_reason"], "scanné par erreur");
    expect_problem(
        cancel(&receipt["id"], venue).await.unwrap(),
        409,
        "not-cancellable",
    )
    .await;
    let again: Value = redeem(&app, venue, &code(&book, 0))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(again["id"], receipt["id"]);

    // Past the window, no more.
    app.sql(&format!(
        "UPDATE redemptions SET redeemed_at = now() - interval '25 hours' WHERE id = {}",
        again["id"]
    ))
    .await;
    expect_problem(
        cancel(&again["id"], venue).await.unwrap(),
        409,
        "not-cancellable",
    )
    .await;

    // Both are kept, and the audit trail tells the story.
    assert_eq!(app.count("redemptions").await, 2);
    let trail: Value = app
        .with_token(
            Method::GET,
            "/api/v1/audit-events",
            &f.tokens[&Role::Operator],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["redeemed", "cancelled", "redeemed"]);
    assert_eq!(trail["items"][1]["reason"], "scanné par erreur");
}

#[tokio::test]
async fn the_funder_reverses_a_redemption_at_any_time() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let receipt: Value = redeem(&app, &f.tokens[&Role::Venue], &code(&book, 0))
        .await
        .json()
        .await
        .unwrap();
    app.sql(&format!(
        "UPDATE redemptions SET redeemed_at = now() - interval '30 days' WHERE id = {}",
        receipt["id"]
    ))
    .await;
    let path = format!("/api/v1/redemptions/{}/reverse", receipt["id"]);
    let res = app
        .with_token(Method::POST, &path, &f.other_tokens[&Role::Funder])
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not-found").await;
    let res = app
        .with_token(Method::POST, &path, &f.tokens[&Role::Funder])
        .json(&json!({"reason": "atelier non tenu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .with_token(Method::POST, &path, &f.tokens[&Role::Funder])
        .json(&json!({"reason": "encore"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 409, "conflict").await;
    // The voucher stays used, and the programme's redeemed amount drops.
    expect_problem(
        redeem(&app, &f.tokens[&Role::Venue], &code(&book, 0)).await,
        409,
        "already-redeemed",
    )
    .await;
    let program: Value = app
        .with_token(
            Method::GET,
            &format!("/api/v1/programs/{}", f.program_id),
            &f.tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(program["redeemed_cents"], 0);
    // The audit trail cannot be rewritten, even by SQL.
    let mut conn = app.state.pool.get().await.unwrap();
    let err = diesel_async::RunQueryDsl::execute(
        diesel::sql_query("DELETE FROM audit_events"),
        &mut conn,
    )
    .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn themes_are_listed_in_french() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let themes: Value = app
        .with_token(Method::GET, "/api/v1/themes", &f.tokens[&Role::Venue])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let themes = themes.as_array().unwrap();
    assert!(themes.len() >= 8);
    assert!(themes.iter().any(|t| t["code"] == "online_procedures"
        && t["label"] == "Faire ses démarches administratives en ligne"));
}

#[tokio::test]
async fn grouped_redemptions_each_get_their_own_answer_and_replay_it() {
    let database_url = new_database().await;
    let mut config = test_config(&database_url);
    config.db_pool_size = 8;
    config.group_commit = 2;
    let app = spawn_app_on(config).await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let mut codes = Vec::new();
    for _ in 0..4 {
        let book = issue_book(&app, &f, 10).await;
        codes.extend((0..10).map(|i| code(&book, i)));
    }
    // 40 vouchers, each sent twice at once with one key, and one voucher
    // also sent without a key: grouped together, judged apart.
    let send = |code: String, key: Option<String>| {
        let app = &app;
        async move {
            let mut req = app
                .with_token(Method::POST, "/api/v1/redemptions", venue)
                .json(&json!({"code": code, "workshop": workshop()}));
            if let Some(key) = key {
                req = req.header("Idempotency-Key", key);
            }
            let res = req.send().await.unwrap();
            let replayed = res.headers().contains_key("idempotent-replayed");
            (res.status().as_u16(), replayed, res.text().await.unwrap())
        }
    };
    let requests = codes.iter().enumerate().flat_map(|(i, c)| {
        [
            send(c.clone(), Some(format!("g-{i}"))),
            send(c.clone(), Some(format!("g-{i}"))),
        ]
    });
    let answers = futures_util::future::join_all(requests).await;
    for pair in answers.chunks(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
        assert_eq!(a.2, b.2, "the same answer for the same key");
        assert!(a.1 != b.1, "one of the two is the replay: {a:?} {b:?}");
    }
    let (status, _, body) = send(codes[0].clone(), None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(app.count("redemptions").await, 40);
}

#[tokio::test]
async fn a_redemption_is_one_statement_prepared_once_per_connection() {
    let database_url = new_database().await;
    let mut config = test_config(&database_url);
    // One connection: every request below runs on it.
    config.db_pool_size = 1;
    let app = spawn_app_on(config).await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    for i in 0..5 {
        let res = redeem(&app, &f.tokens[&Role::Venue], &code(&book, i)).await;
        assert_eq!(res.status(), 201);
    }
    #[derive(diesel::QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.pool.get().await.unwrap();
    let prepared: Prepared = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE 'SELECT * FROM redeem(%'",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(prepared.n, 1, "prepared once, used five times");
}
