//! Bad input and abuse, tried from outside as an attacker or a strict client
//! would: every case answers a 4xx problem and stores nothing.

use chrono::Utc;
use passnum::auth::Role;
use passnum::domain::paris;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    expect_problem, fixture, login_token, new_database, spawn_app, spawn_app_on, test_config,
    Fixture, TestApp,
};
use crate::redemptions::{issue_book, redeem, workshop};
use crate::web::Visitor;

/// The tables a refused request must leave as they were.
const TABLES: [&str; 18] = [
    "organisations",
    "users",
    "programs",
    "allocations",
    "books",
    "vouchers",
    "redemptions",
    "devices",
    "conflicts",
    "scan_nonces",
    "statements",
    "statement_payments",
    "book_sends",
    "signing_keys",
    "venue_invoicing",
    "program_invoicing",
    "invoices",
    "invoice_corrections",
];

async fn snapshot(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push((table, app.count(table).await));
    }
    counts
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn post_ok(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let res = send(app, Method::POST, path, Some(token), Some(&body)).await;
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// What the table of text cases needs: objects of every kind, made through the API.
struct Objects {
    book: i64,
    redemption: i64,
    reversible: i64,
    conflict: i64,
    statement: i64,
    venue: i64,
    venue_total: i64,
}

async fn objects(app: &TestApp, f: &Fixture) -> Objects {
    let venue = &f.tokens[&Role::Venue];
    let book = issue_book(app, f, 10).await;
    let code = |i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    let redeemed: Value = redeem(app, venue, &code(0)).await.json().await.unwrap();
    let reversible: Value = redeem(app, venue, &code(1)).await.json().await.unwrap();
    // Another venue scans offline what the first redeemed: a conflict.
    let venue2 = login_token(app, "lieu2@demo.passnum.test").await;
    let scan = json!({"nonce": "n-1", "code": code(0), "scanned_at": Utc::now().to_rfc3339(), "workshop": workshop()});
    post_ok(
        app,
        &venue2,
        "/api/v1/redemptions/batch",
        json!({"items": [scan]}),
    )
    .await;
    let conflicts: Value = send(
        app,
        Method::GET,
        "/api/v1/conflicts",
        Some(&f.tokens[&Role::Funder]),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let statement = crate::statements::close(app, f, paris::today()).await;
    assert_eq!(statement.status(), 201);
    let statement: Value = statement.json().await.unwrap();
    let venue_id = f.org_ids["lieu@demo.passnum.test"];
    let part = statement["venues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["venue_organisation_id"] == venue_id)
        .unwrap()
        .clone();
    Objects {
        book: book["id"].as_i64().unwrap(),
        redemption: redeemed["id"].as_i64().unwrap(),
        reversible: reversible["id"].as_i64().unwrap(),
        conflict: conflicts["items"][0]["id"].as_i64().unwrap(),
        statement: statement["id"].as_i64().unwrap(),
        venue: venue_id,
        venue_total: part["total_cents"].as_i64().unwrap(),
    }
}

/// A NUL (PostgreSQL refuses it: it was a 500), another control character
/// or a line break in a one-line field: a 422 naming the field, nothing stored.
#[tokio::test]
async fn control_characters_in_any_text_field_are_a_validation_error_naming_it() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let o = objects(&app, &f).await;
    let operator = f.tokens[&Role::Operator].as_str();
    let funder = f.tokens[&Role::Funder].as_str();
    let issuer = f.tokens[&Role::Issuer].as_str();
    let venue = f.tokens[&Role::Venue].as_str();
    let today = paris::today().to_string();
    let venue_org = json!({"kind": "venue", "name": "Lieu\u{0}", "siret": passnum::demo::siret_from("90000009", "0001"),
        "address": "1 rue X", "postcode": "67000", "commune_code": "67482", "latitude": 48.5, "longitude": 7.7});
    let cases: Vec<(Method, String, Option<&str>, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/auth/token".into(),
            None,
            json!({"email": "lieu@demo.passnum.test\u{0}", "password": "x"}),
            "email",
        ),
        (
            Method::POST,
            "/api/v1/auth/token".into(),
            None,
            json!({"email": "lieu@demo.passnum.test", "password": "demo-\u{0}passnum"}),
            "password",
        ),
        (
            Method::POST,
            "/api/v1/organisations".into(),
            Some(operator),
            venue_org,
            "name",
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(operator),
            json!({"organisation_id": o.venue, "email": "a\u{0}@example.org", "password": "long enough password"}),
            "email",
        ),
        (
            Method::POST,
            "/api/v1/programs".into(),
            Some(funder),
            json!({"name": "P\u{1b}[31m", "face_value_cents": 1000, "budget_cents": 10000, "issue_until": "2099-12-31",
                   "voucher_validity_days": 30, "territory": {"departements": ["67"]}}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/programs".into(),
            Some(funder),
            json!({"name": "P", "face_value_cents": 1000, "budget_cents": 10000, "issue_until": "2099-12-31",
                   "voucher_validity_days": 30, "territory": {"departements": ["67", "6\u{0}8"]}}),
            "territory.departements[1]",
        ),
        (
            Method::POST,
            "/api/v1/books".into(),
            Some(issuer),
            json!({"program_id": f.program_id, "size": 5, "beneficiary": {"reference": "R\u{0}-1", "postcode": "67000"}}),
            "beneficiary.reference",
        ),
        (
            Method::POST,
            "/api/v1/books".into(),
            Some(issuer),
            json!({"program_id": f.program_id, "size": 5, "beneficiary": {"reference": "R-1\n", "postcode": "67000"}}),
            "beneficiary.reference",
        ),
        (
            Method::POST,
            format!("/api/v1/books/{}/send", o.book),
            Some(issuer),
            json!({"email": "x\u{0}@example.org"}),
            "email",
        ),
        (
            Method::POST,
            format!("/api/v1/books/{}/revoke", o.book),
            Some(issuer),
            json!({"reason": "perdu\u{0}"}),
            "reason",
        ),
        (
            Method::POST,
            format!("/api/v1/books/{}/replace", o.book),
            Some(issuer),
            json!({"reason": "perdu\u{7}"}),
            "reason",
        ),
        (
            Method::POST,
            format!("/api/v1/redemptions/{}/cancel", o.redemption),
            Some(venue),
            json!({"reason": "erreur\u{0}"}),
            "reason",
        ),
        (
            Method::POST,
            format!("/api/v1/redemptions/{}/reverse", o.reversible),
            Some(funder),
            json!({"reason": "litige\u{0}"}),
            "reason",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            Some(venue),
            json!({"name": "Téléphone\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            format!("/api/v1/conflicts/{}/resolve", o.conflict),
            Some(funder),
            json!({"decision": "pay", "reason": "vu\u{0}"}),
            "reason",
        ),
        (
            Method::POST,
            format!("/api/v1/statements/{}/payments", o.statement),
            Some(funder),
            json!({"venue_organisation_id": o.venue, "amount_cents": o.venue_total, "paid_on": today, "reference": "VIR\u{0}-1"}),
            "reference",
        ),
        (
            Method::POST,
            "/api/v1/vouchers/check".into(),
            Some(venue),
            json!({"code": "PN1:\u{0}"}),
            "code",
        ),
        (
            Method::POST,
            "/api/v1/keys/rotate".into(),
            Some(operator),
            json!({"purpose": "voucher\u{0}"}),
            "purpose",
        ),
        (
            Method::PUT,
            format!("/api/v1/organisations/{}/invoicing", o.venue),
            Some(venue),
            json!({"legal_name": "Lieu\u{0}", "address": "1 rue X", "postcode": "67000", "city": "Strasbourg",
                   "vat_regime": "exempt", "vat_exemption_reason": "TVA non applicable, art. 293 B du CGI",
                   "iban": "FR76 3000 6000 0112 3456 7890 189"}),
            "legal_name",
        ),
        (
            Method::PUT,
            format!("/api/v1/programs/{}/invoicing", f.program_id),
            Some(funder),
            json!({"buyer_siret": passnum::demo::siret_from("90000009", "0001"), "service_code": "SERVICE\u{0}"}),
            "service_code",
        ),
    ];
    let before = snapshot(&app).await;
    for (method, path, token, body, field) in cases {
        let res = send(&app, method, &path, token, Some(&body)).await;
        let problem = expect_problem(res, 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    // The query string of a list is checked as a body is.
    let res = send(
        &app,
        Method::GET,
        "/api/v1/books?reference=R%00-1",
        Some(issuer),
        None,
    )
    .await;
    let problem = expect_problem(res, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "reference", "{problem}");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn tabs_and_line_breaks_are_kept_where_free_text_allows_them() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    // A scanner appends a line end to the code it read.
    let code = format!("{}\r\n", book["vouchers"][0]["code"].as_str().unwrap());
    let res = send(
        &app,
        Method::POST,
        "/api/v1/vouchers/check",
        Some(&f.tokens[&Role::Venue]),
        Some(&json!({"code": code})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = send(
        &app,
        Method::POST,
        &format!("/api/v1/books/{}/revoke", book["id"]),
        Some(&f.tokens[&Role::Issuer]),
        Some(&json!({"reason": "Perdu.\nSignalé par\tle bénéficiaire."})),
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// The second scan of a batch had a NUL nonce: the first was committed, then
/// a 500. Now the whole batch is refused before anything is stored.
#[tokio::test]
async fn a_batch_with_a_nul_nonce_is_refused_whole() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let scan = |nonce: &str, i: usize| {
        json!({"nonce": nonce, "code": book["vouchers"][i]["code"],
        "scanned_at": Utc::now().to_rfc3339(), "workshop": workshop()})
    };
    let res = send(
        &app,
        Method::POST,
        "/api/v1/redemptions/batch",
        Some(&f.tokens[&Role::Venue]),
        Some(&json!({"items": [scan("a", 0), scan("b\u{0}", 1)]})),
    )
    .await;
    let problem = expect_problem(res, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "items[1].nonce");
    assert_eq!(app.count("redemptions").await, 0);
    assert_eq!(app.count("scan_nonces").await, 0);
}

#[tokio::test]
async fn pages_refuse_control_characters_in_the_login_the_search_and_the_issue_form() {
    let app = spawn_app().await;
    fixture(&app).await;
    let failures = app.count("login_throttle").await;
    let mut visitor = Visitor::new(&app);
    let answer = visitor
        .submit(
            "/connexion",
            "/connexion",
            &[("email", "lieu@demo.passnum.test\0"), ("password", "x")],
        )
        .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains("caractère"), "{}", answer.body);
    assert_eq!(app.count("login_throttle").await, failures);

    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let answer = visitor.get("/prescripteur/?reference=R%00").await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    let page = "/prescripteur/carnets/nouveau";
    let form = visitor.get(page).await;
    let program = form
        .body
        .split("<option value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let answer = visitor
        .submit(
            page,
            page,
            &[
                ("program_id", &program),
                ("size", "5"),
                ("reference", "D\0-1"),
                ("postcode", "67100"),
            ],
        )
        .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(app.count("books").await, 0);
}

/// Money is at most 10^11 cents, dates are within 2000–2100: anything else
/// (10^18 cents, the year -200000) is a 422 naming the field, never a 500.
#[tokio::test]
async fn amounts_and_dates_out_of_bounds_are_refused() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let funder = f.tokens[&Role::Funder].as_str();
    let program = |face: i64, budget: i64, until: &str| {
        json!({"name": "P", "face_value_cents": face, "budget_cents": budget,
        "issue_until": until, "voucher_validity_days": 30, "territory": {"departements": ["67"]}})
    };
    let statement = crate::statements::close(&app, &f, paris::today()).await;
    assert_eq!(statement.status(), 201);
    let statement: Value = statement.json().await.unwrap();
    let id = f.program_id;
    let before = snapshot(&app).await;
    let cases: Vec<(Method, String, &str, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/api/v1/programs".into(),
            funder,
            Some(program(
                1_000_000_000_000_000_000,
                1_000_000_000_000_000_000,
                "2099-12-31",
            )),
            "face_value_cents",
        ),
        (
            Method::POST,
            "/api/v1/programs".into(),
            funder,
            Some(program(1000, 100_000_000_001, "2099-12-31")),
            "budget_cents",
        ),
        (
            Method::POST,
            "/api/v1/programs".into(),
            funder,
            Some(program(1000, 10_000, "2101-01-01")),
            "issue_until",
        ),
        (
            Method::POST,
            "/api/v1/programs".into(),
            funder,
            Some(program(1000, 10_000, "-200000-01-01")),
            "issue_until",
        ),
        (
            Method::GET,
            format!("/api/v1/programs/{id}/statement?from=-200000-01-01"),
            funder,
            None,
            "from",
        ),
        (
            Method::GET,
            format!("/api/v1/programs/{id}/statement?to=%2B20000-01-01"),
            funder,
            None,
            "to",
        ),
        (
            Method::POST,
            format!("/api/v1/programs/{id}/statements"),
            funder,
            Some(json!({"period_end": "-200000-01-01"})),
            "period_end",
        ),
        (
            Method::POST,
            format!("/api/v1/statements/{}/payments", statement["id"]),
            funder,
            Some(
                json!({"venue_organisation_id": f.org_ids["lieu@demo.passnum.test"], "amount_cents": 1_000_000_000_000_000_000i64,
                        "paid_on": paris::today().to_string(), "reference": "VIR-1"}),
            ),
            "amount_cents",
        ),
        (
            Method::POST,
            format!(
                "/api/v1/organisations/{}/accreditation",
                f.org_ids["lieu@demo.passnum.test"]
            ),
            &f.tokens[&Role::Operator],
            Some(json!({"valid_until": "1999-12-31"})),
            "valid_until",
        ),
        (
            Method::POST,
            "/api/v1/redemptions".into(),
            &f.tokens[&Role::Venue],
            Some(
                json!({"code": "PN1:X", "workshop": {"theme": "email", "held_on": "-200000-01-01", "duration_minutes": 60}}),
            ),
            "workshop.held_on",
        ),
    ];
    for (method, path, token, body, field) in cases {
        let res = send(&app, method, &path, Some(token), body.as_ref()).await;
        let problem = expect_problem(res, 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    // Many vouchers of a large face value: over the budget, not a bigint overflow.
    let big = post_ok(
        &app,
        funder,
        "/api/v1/programs",
        program(100_000_000_000, 100_000_000_000, "2099-12-31"),
    )
    .await;
    let before_allocation = snapshot(&app).await;
    let res = send(&app, Method::POST, &format!("/api/v1/programs/{}/allocations", big["id"]), Some(funder),
        Some(&json!({"issuer_organisation_id": f.org_ids["prescripteur@demo.passnum.test"], "vouchers": i32::MAX}))).await;
    expect_problem(res, 409, "budget-exceeded").await;
    assert_eq!(snapshot(&app).await, before_allocation);
    let mut after = snapshot(&app).await;
    after
        .iter_mut()
        .filter(|(t, _)| *t == "programs")
        .for_each(|(_, n)| *n -= 1);
    assert_eq!(after, before);
}

/// The bounds hold in the schema too, whatever writes.
#[tokio::test]
async fn the_database_refuses_amounts_and_dates_out_of_bounds() {
    use diesel_async::RunQueryDsl;
    let app = spawn_app().await;
    let f = fixture(&app).await;
    // A programme with no allocation, so the budget constraint stays out of it.
    let program = post_ok(&app, &f.tokens[&Role::Funder], "/api/v1/programs", json!({"name": "P", "face_value_cents": 1000,
        "budget_cents": 100_000_000_000i64, "issue_until": "2099-12-31", "voucher_validity_days": 30,
        "territory": {"departements": ["67"]}})).await;
    let id = &program["id"];
    let mut conn = app.state.pool.get().await.unwrap();
    for statement in [
        format!("UPDATE programs SET face_value_cents = 100000000001 WHERE id = {id}"),
        format!("UPDATE programs SET budget_cents = 100000000001 WHERE id = {id}"),
        format!("UPDATE programs SET issue_until = '2101-01-01' WHERE id = {id}"),
        format!("UPDATE programs SET issue_until = '1999-12-31' WHERE id = {id}"),
        "UPDATE organisations SET accredited_until = '1999-12-31' WHERE kind = 'venue'".to_owned(),
        // An invoice's CHECKs come before its foreign keys: no statement needed.
        "INSERT INTO invoices (statement_id, venue_organisation_id, type_code, sequence, number, \
         issued_on, total_cents, document, xml) \
         VALUES (1, 1, 380, 1, 'F-1', '2026-12-01', 100000000001, '{}', '')"
            .to_owned(),
        "INSERT INTO invoices (statement_id, venue_organisation_id, type_code, sequence, number, \
         issued_on, total_cents, document, xml) \
         VALUES (1, 1, 380, 1, 'F-1', '2101-01-01', 100, '{}', '')"
            .to_owned(),
    ] {
        let refused = diesel::sql_query(&statement).execute(&mut conn).await;
        assert!(
            matches!(
                refused,
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::CheckViolation,
                    _
                ))
            ),
            "{statement}: {refused:?}"
        );
    }
}

/// A programme at the cap: its statement and its figures add up, no overflow.
#[tokio::test]
async fn figures_add_up_at_the_money_cap() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let funder = f.tokens[&Role::Funder].as_str();
    let program = post_ok(&app, funder, "/api/v1/programs", json!({"name": "Au plafond", "face_value_cents": 20_000_000_000i64,
        "budget_cents": 100_000_000_000i64, "issue_until": "2099-12-31", "voucher_validity_days": 30,
        "territory": {"departements": ["67"]}})).await;
    let id = program["id"].as_i64().unwrap();
    post_ok(&app, funder, &format!("/api/v1/programs/{id}/allocations"),
        json!({"issuer_organisation_id": f.org_ids["prescripteur@demo.passnum.test"], "vouchers": 5})).await;
    let book = post_ok(&app, &f.tokens[&Role::Issuer], "/api/v1/books",
        json!({"program_id": id, "size": 5, "beneficiary": {"reference": "R-1", "postcode": "67000"}})).await;
    for v in book["vouchers"].as_array().unwrap() {
        assert_eq!(
            redeem(&app, &f.tokens[&Role::Venue], v["code"].as_str().unwrap())
                .await
                .status(),
            201
        );
    }
    let stats: Value = send(
        &app,
        Method::GET,
        &format!("/api/v1/programs/{id}/stats"),
        Some(funder),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        stats["vouchers"]["redeemed"]["cents"], 100_000_000_000i64,
        "{stats}"
    );
    let live = send(
        &app,
        Method::GET,
        &format!("/api/v1/programs/{id}/statement"),
        Some(funder),
        None,
    )
    .await;
    assert_eq!(live.status(), 200);
    let closed = post_ok(
        &app,
        funder,
        &format!("/api/v1/programs/{id}/statements"),
        json!({"period_end": paris::today().to_string()}),
    )
    .await;
    assert_eq!(closed["total_cents"], 100_000_000_000i64);
}

/// 252 rotations used to exhaust the one-byte kid space, and every rotation
/// after was a 500. Kids no voucher or statement refers to are reused; a kid
/// that signed something never is; real exhaustion is a 409.
#[tokio::test]
async fn kids_no_voucher_or_statement_refers_to_are_reused_and_exhaustion_is_a_conflict() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let operator = f.tokens[&Role::Operator].as_str();
    let book = issue_book(&app, &f, 5).await;
    let signed_by = book["vouchers"][0]["code"].as_str().unwrap().to_owned();
    let kid_of_book = passnum::voucher::SignedVoucher::parse(&signed_by)
        .unwrap()
        .body()
        .kid;
    let rotate = |purpose| rotate(&app, operator, purpose);
    let backdate =
        "UPDATE signing_keys SET retired_at = now() - interval '25 hours' WHERE status = 'retired'";
    // One active key per purpose holds a kid from the start.
    let free = 255 - passnum::keys::Purpose::ALL.len();
    for purpose in ["voucher", "statement"].into_iter().cycle().take(free) {
        let res = rotate(purpose).await;
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
    }
    // Kids 1 to 255 taken: a key retired a moment ago keeps its kid for a day.
    expect_problem(rotate("voucher").await, 409, "conflict").await;
    app.sql(backdate).await;
    for purpose in ["voucher", "statement"].into_iter().cycle().take(300) {
        let res = rotate(purpose).await;
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        let kid: Value = res.json().await.unwrap();
        assert_ne!(
            kid["kid"],
            kid_of_book.to_string(),
            "a kid that signed a voucher is never reused"
        );
        app.sql(backdate).await;
    }
    // The book's vouchers still verify, with the key that signed them.
    let res = send(
        &app,
        Method::POST,
        "/api/v1/vouchers/check",
        Some(&f.tokens[&Role::Venue]),
        Some(&json!({"code": signed_by})),
    )
    .await;
    assert_eq!(res.status(), 200);

    // Every kid taken for good: the unused retired ones go, withdrawn keys
    // (never reused) fill every free kid.
    app.sql(
        "DELETE FROM signing_keys k WHERE status = 'retired'
               AND NOT EXISTS (SELECT 1 FROM vouchers v WHERE v.kid = k.kid)
               AND NOT EXISTS (SELECT 1 FROM statements s WHERE s.kid = k.kid)",
    )
    .await;
    app.sql(
        "INSERT INTO signing_keys (kid, purpose, public_key, status, withdrawn_at)
             SELECT n, 'voucher', decode(repeat('00', 32), 'hex'), 'withdrawn', now()
             FROM generate_series(0, 255) n WHERE n NOT IN (SELECT kid FROM signing_keys)",
    )
    .await;
    let keys = app.count("signing_keys").await;
    let res = send(
        &app,
        Method::POST,
        "/api/v1/keys/rotate",
        Some(operator),
        Some(&json!({"purpose": "voucher"})),
    )
    .await;
    let problem = expect_problem(res, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("256"),
        "{problem}"
    );
    assert_eq!(app.count("signing_keys").await, keys);
}

async fn rotate(app: &TestApp, token: &str, purpose: &str) -> reqwest::Response {
    send(
        app,
        Method::POST,
        "/api/v1/keys/rotate",
        Some(token),
        Some(&json!({"purpose": purpose})),
    )
    .await
}

/// The contract's order: the token (401), then the role (403), the body last.
#[tokio::test]
async fn issuing_a_book_checks_the_token_and_the_role_before_the_body() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let bad_body = |token: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/api/v1/books"))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.body("{not json").send()
    };
    expect_problem(bad_body(None).await.unwrap(), 401, "unauthorized").await;
    expect_problem(
        bad_body(Some("not-a-token")).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_problem(
        bad_body(Some(&f.tokens[&Role::Venue])).await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        bad_body(Some(&f.tokens[&Role::Issuer])).await.unwrap(),
        422,
        "validation-error",
    )
    .await;
}

/// An address no mail server would take is the client's mistake (422), not a
/// reason to retry later (503).
#[tokio::test]
async fn an_undeliverable_address_is_a_validation_error_and_stores_nothing() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let before = snapshot(&app).await;
    // Each of them the mail server's parser refuses.
    for bad in ["a<b@example.org", "a,b@example.org", "a\"b@example.org"] {
        let res = send(
            &app,
            Method::POST,
            &format!("/api/v1/books/{}/send", book["id"]),
            Some(&f.tokens[&Role::Issuer]),
            Some(&json!({"email": bad})),
        )
        .await;
        let problem = expect_problem(res, 422, "validation-error").await;
        assert_eq!(problem["errors"][0]["field"], "email", "{bad}: {problem}");
        let res = send(&app, Method::POST, "/api/v1/books", Some(&f.tokens[&Role::Issuer]),
            Some(&json!({"program_id": f.program_id, "size": 5, "beneficiary": {"reference": "R", "postcode": "67000", "email": bad}}))).await;
        let problem = expect_problem(res, 422, "validation-error").await;
        assert_eq!(
            problem["errors"][0]["field"], "beneficiary.email",
            "{bad}: {problem}"
        );
    }
    assert_eq!(snapshot(&app).await, before);
}

/// A connection the database dropped is `unavailable`, not a refusal of the input.
#[tokio::test]
async fn a_lost_database_connection_is_unavailable_not_a_validation_error() {
    use diesel_async::RunQueryDsl;
    use passnum::http::problem::ProblemType;

    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let app = spawn_app().await;
    let f = fixture(&app).await;
    // A connection whose backend was terminated; `discard` keeps it from
    // going back to the pool (checkouts run no test query).
    let dropped = || async {
        let mut conn = app.state.pool.get().await.unwrap();
        let Pid { pid } = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result(&mut conn)
            .await
            .unwrap();
        app.sql(&format!("SELECT pg_terminate_backend({pid})"))
            .await;
        conn
    };
    let discard = |conn| drop(deadpool::managed::Object::take(conn));
    let new_user = passnum::domain::accounts::NewUser {
        organisation_id: f.org_ids["lieu@demo.passnum.test"],
        email: "agent@example.org".into(),
        password: "long enough password".into(),
    };
    let mut conn = dropped().await;
    let e = passnum::domain::accounts::create(&mut conn, &app.state.passwords, new_user)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProblemType::Unavailable, "{e}");
    discard(conn);

    let issuer = issuer_account(&app).await;
    let signer = app
        .state
        .keys
        .signer(passnum::keys::Purpose::Voucher)
        .await
        .unwrap();
    let new_book: passnum::domain::books::NewBook =
        serde_json::from_value(json!({"program_id": f.program_id, "size": 5,
        "beneficiary": {"reference": "R", "postcode": "67000"}}))
        .unwrap();
    let mut conn = dropped().await;
    let e = passnum::domain::books::issue(&mut conn, &issuer, signer, new_book, "http://x")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProblemType::Unavailable, "{e}");
    discard(conn);

    let program = passnum::domain::programs::find_own(
        &mut app.state.pool.get().await.unwrap(),
        f.program_id,
        f.org_ids["financeur@demo.passnum.test"],
    )
    .await
    .unwrap();
    let mut conn = dropped().await;
    let e = passnum::domain::programs::allocate(
        &mut conn,
        &program,
        passnum::domain::programs::NewAllocation {
            issuer_organisation_id: f.org_ids["prescripteur@demo.passnum.test"],
            vouchers: 1,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ProblemType::Unavailable, "{e}");
    discard(conn);
}

async fn issuer_account(app: &TestApp) -> passnum::domain::accounts::Account {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use passnum::db::schema::users;
    let mut conn = app.state.pool.get().await.unwrap();
    let id: i64 = users::table
        .filter(users::email.eq("prescripteur@demo.passnum.test"))
        .select(users::id)
        .first(&mut conn)
        .await
        .unwrap();
    passnum::domain::accounts::account(&mut conn, id)
        .await
        .unwrap()
        .unwrap()
}

/// Unknown methods were labels of their own: 43,000 of them took the server
/// from 30 to 133 MB. They share one `other` label now, and paths no route
/// matched share `unmatched`.
#[tokio::test]
async fn unknown_methods_and_paths_share_one_metrics_label() {
    let app = spawn_app().await;
    for i in 0..200 {
        let method = Method::from_bytes(format!("M{i}{}", "X".repeat(1000)).as_bytes()).unwrap();
        app.client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        app.client
            .get(app.url(&format!("/nowhere/{i}")))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(!metrics.contains("M1X"), "a raw method became a label");
    assert!(!metrics.contains("/nowhere/"), "a raw path became a label");
    assert!(metrics.len() < 64 * 1024, "{} bytes", metrics.len());
}

async fn login(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({"email": email, "password": password}));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

/// Checking and recording a failure were two statements: 20 concurrent
/// guesses got through for one e-mail (limit 5).
#[tokio::test]
async fn twenty_concurrent_wrong_passwords_give_at_most_five_unauthorized() {
    let app = spawn_app().await;
    fixture(&app).await;
    let attempts = (0..20).map(|_| login(&app, "lieu@demo.passnum.test", "wrong-password", None));
    let answers = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    // Shown with --nocapture: the figure docs/benchmarks.md quotes.
    println!(
        "20 concurrent wrong passwords: {unauthorized} × 401, {} × 429",
        statuses.iter().filter(|s| **s == 429).count()
    );
    assert!(unauthorized <= 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    for answer in answers.into_iter().filter(|r| r.status() == 429) {
        let wait: u64 = answer.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait >= 1, "{wait}");
    }
}

/// The same for one address (limit 30): 45 concurrent guesses for as many
/// accounts got through.
#[tokio::test]
async fn forty_five_concurrent_guesses_from_one_address_give_at_most_thirty_unauthorized() {
    let app = spawn_app().await;
    fixture(&app).await;
    let emails: Vec<String> = (0..45).map(|i| format!("nobody{i}@example.org")).collect();
    let attempts = emails.iter().map(|email| login(&app, email, "guess", None));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    println!(
        "45 concurrent guesses from one address: {unauthorized} × 401, {} × 429",
        statuses.iter().filter(|s| **s == 429).count()
    );
    assert!(unauthorized <= 30, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
}

/// Failures for other e-mails locked a different user out of the same
/// address; behind a proxy everyone shares one. With the proxy trusted, each
/// client has its own address, and another address is never refused for them.
#[tokio::test]
async fn other_accounts_failures_never_refuse_a_correct_password_from_another_address() {
    let database_url = new_database().await;
    let mut config = test_config(&database_url);
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = spawn_app_on(config).await;
    fixture(&app).await;
    for i in 0..40 {
        let res = login(
            &app,
            &format!("nobody{i}@example.org"),
            "guess",
            Some("198.51.100.7"),
        )
        .await;
        assert!(
            matches!(res.status().as_u16(), 401 | 429),
            "{}",
            res.status()
        );
    }
    let res = login(&app, "nobody0@example.org", "guess", Some("198.51.100.7")).await;
    expect_problem(res, 429, "rate-limited").await;
    let res = login(
        &app,
        "lieu@demo.passnum.test",
        "demo-passnum",
        Some("198.51.100.7, 203.0.113.5"),
    )
    .await;
    assert_eq!(
        res.status(),
        200,
        "the client is the address the trusted proxy saw"
    );
}

/// Without a trusted proxy, `X-Forwarded-For` is anyone's to write: it
/// changes nothing.
#[tokio::test]
async fn a_forwarded_address_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app().await;
    fixture(&app).await;
    let mut refused = 0;
    for i in 0..40 {
        let res = login(
            &app,
            &format!("nobody{i}@example.org"),
            "guess",
            Some(&format!("198.51.100.{i}")),
        )
        .await;
        if res.status() == 429 {
            refused += 1;
        }
    }
    assert!(
        refused >= 10,
        "{refused} refused: the forged addresses were believed"
    );
}

/// A login waiting for its turn at the password check holds no database
/// connection: with a pool of one, `GET /me` still answers.
#[tokio::test]
async fn a_login_waiting_for_the_password_check_holds_no_database_connection() {
    let database_url = new_database().await;
    let mut config = test_config(&database_url);
    config.db_pool_size = 1;
    config.db_timeout = std::time::Duration::from_millis(1500);
    let app = spawn_app_on(config).await;
    let f = fixture(&app).await;
    let (release, blocked) = park_password_workers(&app);
    let waiting = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/token");
        async move {
            client
                .post(url)
                .json(&json!({"email": "lieu@demo.passnum.test", "password": "wrong-password"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..3 {
        let res = send(
            &app,
            Method::GET,
            "/api/v1/me",
            Some(&f.tokens[&Role::Venue]),
            None,
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    assert!(!waiting.is_finished());
    drop(release);
    for job in blocked {
        job.await.unwrap();
    }
    assert_eq!(waiting.await.unwrap(), 401);
}

/// When the password queue is full, a login is told at once to come back.
#[tokio::test]
async fn a_full_password_queue_answers_unavailable_with_retry_after_at_once() {
    let app = spawn_app().await;
    fixture(&app).await;
    let queue = app.state.passwords.clone();
    let (release, mut blocked) = park_password_workers(&app);
    // Fill the waiting places too.
    let (_keep, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let mut fillers = Vec::new();
    while let Some(place) = queue.enter() {
        let rx = rx.clone();
        let queue = queue.clone();
        fillers.push(tokio::spawn(async move {
            let _ = queue
                .run(place, move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
                .await;
        }));
    }
    let res = login(&app, "lieu@demo.passnum.test", "demo-passnum", None).await;
    assert!(res.headers().contains_key("retry-after"));
    expect_problem(res, 503, "unavailable").await;
    drop(release);
    drop(_keep);
    blocked.append(&mut fillers);
    for job in blocked {
        job.await.unwrap();
    }
    assert_eq!(
        login(&app, "lieu@demo.passnum.test", "demo-passnum", None)
            .await
            .status(),
        200
    );
}

/// Takes every password worker with a job that waits until the returned
/// sender is dropped.
fn park_password_workers(
    app: &TestApp,
) -> (
    std::sync::mpsc::Sender<()>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let queue = app.state.passwords.clone();
    let jobs = (0..queue.workers())
        .map(|_| {
            let place = queue.enter().expect("a place");
            let (queue, rx) = (queue.clone(), rx.clone());
            tokio::spawn(async move {
                let _ = queue
                    .run(place, move || {
                        let _ = rx.lock().map(|r| r.recv());
                    })
                    .await;
            })
        })
        .collect();
    (tx, jobs)
}

/// RFC 9110: a 405 says which methods the resource takes.
#[tokio::test]
async fn a_wrong_method_names_the_allowed_ones() {
    let app = spawn_app().await;
    let res = app
        .client
        .delete(app.url("/api/v1/books"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET, POST")
    );
    expect_problem(res, 405, "method-not-allowed").await;
    let res = app
        .client
        .put(app.url("/api/v1/books/7/pdf"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    expect_problem(res, 405, "method-not-allowed").await;
}
