//! Programmes, allocations and books: every limit held by the database.

use passnum::auth::Role;
use passnum::keys::Purpose;
use passnum::voucher;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{expect_problem, fixture, spawn_app, Fixture, TestApp};

fn book_request(program_id: i32, size: i64) -> Value {
    json!({"program_id": program_id, "size": size,
           "beneficiary": {"reference": "DOSSIER-2026-0042", "postcode": "67100"}})
}

async fn issue(app: &TestApp, f: &Fixture, body: &Value) -> reqwest::Response {
    app.with_token(Method::POST, "/api/v1/books", &f.tokens[&Role::Issuer])
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get_program(app: &TestApp, f: &Fixture, id: i32) -> Value {
    app.with_token(
        Method::GET,
        &format!("/api/v1/programs/{id}"),
        &f.tokens[&Role::Funder],
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

/// A fresh programme of the demo funder with `vouchers` allocated to the demo issuer.
async fn new_program(app: &TestApp, f: &Fixture, budget_cents: i64, vouchers: Option<i64>) -> i32 {
    let funder = &f.tokens[&Role::Funder];
    let created: Value = app
        .with_token(Method::POST, "/api/v1/programs", funder)
        .json(&json!({"name": "Programme de test", "face_value_cents": 1000, "budget_cents": budget_cents,
                      "issue_until": "2099-12-31", "voucher_validity_days": 90,
                      "territory": {"departements": ["67", "2a"]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap() as i32;
    if let Some(vouchers) = vouchers {
        let res = app
            .with_token(Method::POST, &format!("/api/v1/programs/{id}/allocations"), funder)
            .json(&json!({"issuer_organisation_id": f.org_ids["prescripteur@demo.passnum.test"], "vouchers": vouchers}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    id
}

#[tokio::test]
async fn an_issuer_issues_a_book_of_signed_vouchers() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let res = issue(&app, &f, &book_request(f.program_id, 10)).await;
    assert_eq!(res.status(), 201);
    let book: Value = res.json().await.unwrap();
    assert_eq!(book["size"], 10);
    assert!(book["pdf_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/v1/books/{}/pdf", book["id"])));
    let today = passnum::domain::paris::today();
    let expires_on = today + chrono::Days::new(365);
    assert_eq!(book["expires_on"], expires_on.to_string());

    let vouchers = book["vouchers"].as_array().unwrap();
    assert_eq!(vouchers.len(), 10);
    let (kid, key) = app.state.keys.signer(Purpose::Voucher).await.unwrap();
    for (i, v) in vouchers.iter().enumerate() {
        let code = v["code"].as_str().unwrap();
        let parsed =
            voucher::decode_and_verify(code, |k| (k == kid).then(|| key.verifying_key())).unwrap();
        let body = parsed.body();
        assert_eq!(body.position as usize, i + 1);
        assert_eq!(body.book_size, 10);
        assert_eq!(body.program_id as i32, f.program_id);
        assert_eq!(body.expires_on, expires_on);
        assert_eq!(
            body.voucher_id.to_string(),
            v["voucher_id"].as_str().unwrap()
        );
        assert!(body.voucher_id >= 1 && body.voucher_id < 1 << 63);
        assert_eq!(
            voucher::typed_code::decode(v["typed_code"].as_str().unwrap()).unwrap(),
            body.voucher_id
        );
    }
    let p = get_program(&app, &f, f.program_id).await;
    assert_eq!(p["committed_cents"], 10 * 2000);

    // The issuer sees it, with every voucher valid and nothing used yet.
    let got: Value = app
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
    assert_eq!(got["used"], 0);
    assert_eq!(got["reference"], "DOSSIER-2026-0042");
    assert!(got["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "valid"));
    let list: Value = app
        .with_token(
            Method::GET,
            "/api/v1/books?reference=DOSSIER-2026-0042",
            &f.tokens[&Role::Issuer],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("vouchers").is_none());
}

/// 50 parallel requests, room for 6 books: exactly 6, every time.
#[tokio::test]
async fn the_allocation_race_issues_exactly_what_was_allocated() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    for round in 0..20 {
        let program = new_program(&app, &f, 1_000_000, Some(30)).await;
        let body = book_request(program, 5);
        let answers = futures_util::future::join_all((0..50).map(|_| issue(&app, &f, &body))).await;
        let mut created = 0;
        for res in answers {
            match res.status().as_u16() {
                201 => created += 1,
                _ => {
                    expect_problem(res, 409, "quota-exceeded").await;
                }
            }
        }
        assert_eq!(created, 6, "round {round}");
        assert_eq!(program_committed(&app, &f, program).await, 30 * 1000);
    }
}

async fn program_committed(app: &TestApp, f: &Fixture, id: i32) -> i64 {
    get_program(app, f, id).await["committed_cents"]
        .as_i64()
        .unwrap()
}

/// 50 parallel allocations, budget for 6: exactly 6, every time.
#[tokio::test]
async fn the_budget_race_allocates_exactly_the_budget() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let issuer = f.org_ids["prescripteur@demo.passnum.test"];
    for round in 0..20 {
        let program = new_program(&app, &f, 6 * 5 * 1000, None).await;
        let path = format!("/api/v1/programs/{program}/allocations");
        let answers = futures_util::future::join_all((0..50).map(|_| {
            app.with_token(Method::POST, &path, &f.tokens[&Role::Funder])
                .json(&json!({"issuer_organisation_id": issuer, "vouchers": 5}))
                .send()
        }))
        .await;
        let mut created = 0;
        for res in answers {
            let res = res.unwrap();
            match res.status().as_u16() {
                201 => created += 1,
                _ => {
                    expect_problem(res, 409, "budget-exceeded").await;
                }
            }
        }
        assert_eq!(created, 6, "round {round}");
        assert_eq!(
            get_program(&app, &f, program).await["allocated_cents"],
            30 * 1000
        );
    }
}

#[tokio::test]
async fn bad_books_get_their_problem_and_commit_nothing() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let closed = new_program(&app, &f, 1_000_000, Some(10)).await;
    app.with_token(
        Method::POST,
        &format!("/api/v1/programs/{closed}/close"),
        &f.tokens[&Role::Funder],
    )
    .send()
    .await
    .unwrap();
    // Sets (or adds) the member a JSON pointer names.
    let with = |pointer: &str, value: Value| {
        let mut body = book_request(f.program_id, 5);
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        body.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), value);
        body
    };
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "size 7",
            with("/size", json!(7)),
            422,
            "validation-error",
            "size",
        ),
        (
            "size 261",
            with("/size", json!(261)),
            422,
            "validation-error",
            "size",
        ),
        (
            "unknown programme",
            with("/program_id", json!(999_999)),
            422,
            "validation-error",
            "program_id",
        ),
        (
            "another funder's programme",
            with("/program_id", json!(f.other_program_id)),
            422,
            "validation-error",
            "program_id",
        ),
        (
            "closed programme",
            with("/program_id", json!(closed)),
            410,
            "program-closed",
            "",
        ),
        (
            "outside the territory",
            with("/beneficiary/postcode", json!("75011")),
            422,
            "validation-error",
            "beneficiary.postcode",
        ),
        (
            "unknown postcode",
            with("/beneficiary/postcode", json!("67999")),
            422,
            "validation-error",
            "beneficiary.postcode",
        ),
        (
            "postcode across two départements",
            with("/beneficiary/postcode", json!("13780")),
            422,
            "validation-error",
            "beneficiary.commune_code",
        ),
        (
            "empty reference",
            with("/beneficiary/reference", json!(" ")),
            422,
            "validation-error",
            "beneficiary.reference",
        ),
        (
            "a name sneaked in",
            with("/beneficiary/name", json!("Jean Dupont")),
            422,
            "validation-error",
            "beneficiary.name",
        ),
        (
            "bad email",
            with("/beneficiary/email", json!("jean at example")),
            422,
            "validation-error",
            "beneficiary.email",
        ),
        (
            "wrong type",
            with("/size", json!("ten")),
            422,
            "validation-error",
            "size",
        ),
        (
            "missing beneficiary",
            json!({"program_id": f.program_id, "size": 5}),
            422,
            "validation-error",
            "beneficiary",
        ),
    ];
    let before = program_committed(&app, &f, f.program_id).await;
    let books_before = app.count("books").await;
    for (case, body, status, slug, field) in cases {
        let problem = expect_problem(issue(&app, &f, &body).await, status, slug).await;
        if !field.is_empty() {
            assert_eq!(problem["errors"][0]["field"], field, "{case}: {problem}");
        }
    }
    // Several mistakes: every one is named at once, each for what it is.
    let mut body = book_request(f.program_id, 7);
    body["beneficiary"] = json!({"reference": "", "postcode": "", "email": "jean at example"});
    let problem = expect_problem(issue(&app, &f, &body).await, 422, "validation-error").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "size",
            "beneficiary.reference",
            "beneficiary.postcode",
            "beneficiary.email"
        ],
        "{problem}"
    );
    assert_eq!(
        problem["errors"][2]["message"], "the postcode is required",
        "an empty postcode is required, not unknown"
    );
    assert_eq!(program_committed(&app, &f, f.program_id).await, before);
    assert_eq!(app.count("books").await, books_before);
}

#[tokio::test]
async fn a_commune_code_settles_a_postcode_across_two_departements() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let funder = &f.tokens[&Role::Funder];
    let created: Value = app
        .with_token(Method::POST, "/api/v1/programs", funder)
        .json(&json!({"name": "Provence", "face_value_cents": 1000, "budget_cents": 100000, "issue_until": "2099-12-31",
                      "voucher_validity_days": 30, "territory": {"departements": ["83"]}, "time_zone": "Europe/Paris"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    app.with_token(Method::POST, &format!("/api/v1/programs/{id}/allocations"), funder)
        .json(&json!({"issuer_organisation_id": f.org_ids["prescripteur@demo.passnum.test"], "vouchers": 10}))
        .send()
        .await
        .unwrap();
    // 13780 is Cuges-les-Pins (13) and Riboux (83): only Riboux is in the territory.
    let mut body = json!({"program_id": id, "size": 5, "beneficiary": {"reference": "R-1", "postcode": "13780", "commune_code": "83105"}});
    assert_eq!(issue(&app, &f, &body).await.status(), 201);
    body["beneficiary"]["commune_code"] = json!("13030");
    expect_problem(issue(&app, &f, &body).await, 422, "validation-error").await;
}

#[tokio::test]
async fn bad_programmes_and_allocations_are_refused() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let funder = &f.tokens[&Role::Funder];
    let good = json!({"name": "P", "face_value_cents": 1000, "budget_cents": 10000, "issue_until": "2099-12-31",
                      "voucher_validity_days": 30, "territory": {"departements": ["67"]}});
    let cases = [
        ("/face_value_cents", json!(-100), "face_value_cents"),
        ("/budget_cents", json!(-1), "budget_cents"),
        ("/voucher_validity_days", json!(0), "voucher_validity_days"),
        (
            "/territory/departements",
            json!(["20"]),
            "territory.departements",
        ),
        (
            "/territory/departements",
            json!([]),
            "territory.departements",
        ),
        ("/time_zone", json!("Mars/Olympus"), "time_zone"),
        ("/issue_until", json!("2001-01-01"), "issue_until"),
        ("/issue_until", json!("tomorrow"), "issue_until"),
    ];
    let before = app.count("programs").await;
    for (pointer, value, field) in cases {
        let mut body = good.clone();
        if pointer == "/time_zone" {
            body["time_zone"] = value;
        } else {
            *body.pointer_mut(pointer).unwrap() = value;
        }
        let res = app
            .with_token(Method::POST, "/api/v1/programs", funder)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(res, 422, "validation-error").await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{pointer}: {problem}");
    }
    assert_eq!(app.count("programs").await, before);

    // A budget smaller than its allocations.
    let program = new_program(&app, &f, 10 * 1000, Some(10)).await;
    let path = format!("/api/v1/programs/{program}/allocations");
    let issuer = f.org_ids["prescripteur@demo.passnum.test"];
    let res = app
        .with_token(Method::POST, &path, funder)
        .json(&json!({"issuer_organisation_id": issuer, "vouchers": 1}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 409, "budget-exceeded").await;
    let res = app
        .with_token(Method::POST, &path, funder)
        .json(&json!({"issuer_organisation_id": issuer, "vouchers": 0}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;
    let venue = f.org_ids["lieu@demo.passnum.test"];
    let res = app
        .with_token(Method::POST, &path, funder)
        .json(&json!({"issuer_organisation_id": venue, "vouchers": 1}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;
    assert_eq!(
        get_program(&app, &f, program).await["allocated_cents"],
        10 * 1000
    );
}

#[tokio::test]
async fn a_replaced_books_old_vouchers_are_refused_and_the_new_ones_verify() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let issuer = &f.tokens[&Role::Issuer];
    let old: Value = issue(&app, &f, &book_request(f.program_id, 5))
        .await
        .json()
        .await
        .unwrap();
    let committed = program_committed(&app, &f, f.program_id).await;

    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/books/{}/replace", old["id"]),
            issuer,
        )
        .json(&json!({"reason": "carnet perdu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let new: Value = res.json().await.unwrap();
    assert_eq!(new["size"], 5);
    assert_eq!(new["expires_on"], old["expires_on"]);
    let positions: Vec<i64> = new["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert_eq!(
        program_committed(&app, &f, f.program_id).await,
        committed,
        "replacements are not counted twice"
    );

    // The old book's vouchers are revoked; the new ones are valid and verify.
    let old_now: Value = app
        .with_token(Method::GET, &format!("/api/v1/books/{}", old["id"]), issuer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(old_now["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "revoked"));
    assert_eq!(old_now["replaced_by_book_id"], new["id"]);
    for v in new["vouchers"].as_array().unwrap() {
        let parsed = voucher::SignedVoucher::parse(v["code"].as_str().unwrap()).unwrap();
        let key = app
            .state
            .keys
            .verifying_key(Purpose::Voucher, parsed.body().kid)
            .await
            .unwrap()
            .unwrap();
        parsed.verify(&key).unwrap();
    }

    // A book is replaced once; revoking a revoked book is a conflict too.
    let again = app
        .with_token(
            Method::POST,
            &format!("/api/v1/books/{}/replace", old["id"]),
            issuer,
        )
        .json(&json!({"reason": "encore"}))
        .send()
        .await
        .unwrap();
    expect_problem(again, 409, "conflict").await;
    let revoke = app
        .with_token(
            Method::POST,
            &format!("/api/v1/books/{}/revoke", old["id"]),
            issuer,
        )
        .json(&json!({"reason": "encore"}))
        .send()
        .await
        .unwrap();
    expect_problem(revoke, 409, "conflict").await;
}

#[tokio::test]
async fn a_revoked_books_vouchers_are_marked_revoked() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let issuer = &f.tokens[&Role::Issuer];
    let book: Value = issue(&app, &f, &book_request(f.program_id, 5))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/books/{}/revoke", book["id"]);
    let res = app
        .with_token(Method::POST, &path, issuer)
        .json(&json!({"reason": ""}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;
    let res = app
        .with_token(Method::POST, &path, issuer)
        .json(&json!({"reason": "remis par erreur"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let revoked: Value = res.json().await.unwrap();
    assert_eq!(revoked["revoked_reason"], "remis par erreur");
    assert!(revoked["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "revoked"));
}

#[tokio::test]
async fn programmes_are_seen_by_their_funder_and_their_issuers_only() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let list = |token: &str| {
        let req = app.with_token(Method::GET, "/api/v1/programs", token);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let ids = |page: Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(list(&f.tokens[&Role::Funder]).await),
        [f.program_id as i64]
    );
    assert_eq!(
        ids(list(&f.tokens[&Role::Issuer]).await),
        [f.program_id as i64]
    );
    assert_eq!(
        ids(list(&f.other_tokens[&Role::Issuer]).await),
        [f.other_program_id as i64]
    );
    let res = app
        .with_token(
            Method::GET,
            &format!("/api/v1/programs/{}", f.other_program_id),
            &f.tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not-found").await;
}
