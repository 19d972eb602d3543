//! Organisations, accounts, login and authorisation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use passnum::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    expect_problem, fixture, new_database, spawn_app, spawn_app_on, test_config, TestApp,
    DEMO_ACCOUNTS,
};

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

fn venue(siret: &str) -> Value {
    json!({
        "kind": "venue", "name": "Bibliothèque de Sélestat", "siret": siret,
        "address": "1 rue de la Bibliothèque", "postcode": "67600", "commune_code": "67462",
        "latitude": 48.2594, "longitude": 7.4542, "phone": "03 88 58 07 20"
    })
}

#[tokio::test]
async fn every_demo_account_logs_in_and_sees_itself() {
    let app = spawn_app().await;
    fixture(&app).await;
    for email in DEMO_ACCOUNTS {
        let res = login(&app, email, "demo-passnum").await;
        assert_eq!(res.status(), 200, "{email}");
        let token: Value = res.json().await.unwrap();
        assert_eq!(token["token_type"], "Bearer");
        assert_eq!(token["expires_in"], 900);
        let me: Value = app
            .with_token(
                Method::GET,
                "/api/v1/me",
                token["access_token"].as_str().unwrap(),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["user"]["email"], email);
        assert!(me["organisation"]["id"].is_i64());
        assert!(["operator", "funder", "issuer", "venue"]
            .contains(&me["organisation"]["kind"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    fixture(&app).await;
    let wrong = expect_problem(
        login(&app, "lieu@demo.passnum.test", "not-the-password").await,
        401,
        "unauthorized",
    )
    .await;
    let unknown = expect_problem(
        login(&app, "nobody@demo.passnum.test", "demo-passnum").await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn bad_login_bodies_name_the_field() {
    let app = spawn_app().await;
    let post = |body: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/token"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let body = expect_problem(
        post(r#"{"email": 5, "password": "x"}"#).await.unwrap(),
        422,
        "validation-error",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "email");
    let body = expect_problem(
        post(r#"{"email": "a@b.fr"}"#).await.unwrap(),
        422,
        "validation-error",
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
    let body = expect_problem(
        post(r#"{"email": "a@b.fr", "#).await.unwrap(),
        422,
        "validation-error",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "body");
    expect_problem(post("").await.unwrap(), 422, "validation-error").await;
}

/// Failures are counted in PostgreSQL: a second instance sees them too.
#[tokio::test]
async fn login_throttling_holds_across_two_instances() {
    let database_url = new_database().await;
    let a = spawn_app_on(test_config(&database_url)).await;
    let mut second = test_config(&database_url);
    second.keys_dir = a.state.config.keys_dir.clone();
    let b = spawn_app_on(second).await;
    fixture(&a).await;

    for i in 0..5 {
        let instance = if i % 2 == 0 { &a } else { &b };
        expect_problem(
            login(instance, "lieu@demo.passnum.test", "wrong-password").await,
            401,
            "unauthorized",
        )
        .await;
    }
    // Now even the right password is refused, on either instance.
    for instance in [&a, &b] {
        let res = login(instance, "lieu@demo.passnum.test", "demo-passnum").await;
        assert!(res.headers().contains_key("retry-after"));
        expect_problem(res, 429, "rate-limited").await;
    }
    // Another account is not affected.
    assert_eq!(
        login(&b, "lieu2@demo.passnum.test", "demo-passnum")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_deactivated_user_is_refused_at_once() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let operator = &f.tokens[&Role::Operator];
    let created: Value = app
        .with_token(Method::POST, "/api/v1/users", operator)
        .json(&json!({"organisation_id": f.org_ids["lieu@demo.passnum.test"], "email": "Agent@Example.org", "password": "a long enough password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["email"], "agent@example.org");
    let token: Value = login(&app, "agent@example.org", "a long enough password")
        .await
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.with_token(Method::GET, "/api/v1/me", &token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let path = format!("/api/v1/users/{}/deactivate", created["id"]);
    assert_eq!(
        app.with_token(Method::POST, &path, operator)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = app
        .with_token(Method::GET, "/api/v1/me", &token)
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, "unauthorized").await;
    expect_problem(
        login(&app, "agent@example.org", "a long enough password").await,
        401,
        "unauthorized",
    )
    .await;

    // The same email cannot be taken twice.
    let res = app
        .with_token(Method::POST, "/api/v1/users", operator)
        .json(&json!({"organisation_id": f.org_ids["lieu@demo.passnum.test"], "email": "agent@example.org", "password": "another long password"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 409, "conflict").await;
}

#[tokio::test]
async fn the_operator_registers_an_organisation() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let res = app
        .with_token(
            Method::POST,
            "/api/v1/organisations",
            &f.tokens[&Role::Operator],
        )
        .json(&venue("73282932000074"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let org: Value = res.json().await.unwrap();
    assert_eq!(org["kind"], "venue");
    assert_eq!(org["departement"], "67");
    assert!(org["id"].is_i64());
    // Twice the same SIRET: a conflict.
    let res = app
        .with_token(
            Method::POST,
            "/api/v1/organisations",
            &f.tokens[&Role::Operator],
        )
        .json(&venue("73282932000074"))
        .send()
        .await
        .unwrap();
    expect_problem(res, 409, "conflict").await;
}

#[tokio::test]
async fn bad_organisations_get_their_problem_and_store_nothing() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let before = app.count("organisations").await;
    let with = |field: &str, value: Value| {
        let mut body = venue("73282932000074");
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = venue("73282932000074");
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong SIRET check digit",
            with("siret", json!("73282932000075")),
            "siret",
        ),
        (
            "SIRET of 13 digits",
            with("siret", json!("7328293200007")),
            "siret",
        ),
        (
            "unknown commune",
            with("commune_code", json!("67999")),
            "commune_code",
        ),
        (
            "postcode not of the commune",
            with("postcode", json!("68000")),
            "postcode",
        ),
        ("missing name", without("name"), "name"),
        ("venue without coordinates", without("latitude"), "latitude"),
        ("wrong type", with("latitude", json!("north")), "latitude"),
        ("unknown kind", with("kind", json!("school")), "kind"),
        (
            "unknown field",
            with("beneficiary_name", json!("Jean")),
            "beneficiary_name",
        ),
    ];
    for (case, body, field) in cases {
        let res = app
            .with_token(
                Method::POST,
                "/api/v1/organisations",
                &f.tokens[&Role::Operator],
            )
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
        assert!(fields.contains(&field), "{case}: {problem}");
    }
    assert_eq!(app.count("organisations").await, before);
}

#[tokio::test]
async fn venues_are_accredited_and_withdrawn_by_the_operator() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let operator = &f.tokens[&Role::Operator];
    let venue_id = f.org_ids["lieu2@demo.passnum.test"];
    let path = format!("/api/v1/organisations/{venue_id}/accreditation");

    let res = app
        .with_token(Method::POST, &path, operator)
        .json(&json!({"valid_until": "2099-12-31"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["accredited_until"],
        "2099-12-31"
    );

    let res = app
        .with_token(Method::POST, &path, operator)
        .json(&json!({"valid_until": "2001-01-01"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;
    let res = app
        .with_token(Method::POST, &path, operator)
        .json(&json!({"valid_until": "soon"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;

    let res = app
        .with_token(Method::DELETE, &path, operator)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let venues: Value = app
        .with_token(Method::GET, "/api/v1/organisations?kind=venue", operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = venues["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == venue_id)
        .unwrap()
        .clone();
    assert!(listed["accreditation_withdrawn_at"].is_string());

    // Only venues are accredited; a missing organisation is not found.
    let funder = f.org_ids["financeur@demo.passnum.test"];
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/organisations/{funder}/accreditation"),
            operator,
        )
        .json(&json!({"valid_until": "2099-12-31"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 409, "conflict").await;
    let res = app
        .with_token(
            Method::POST,
            "/api/v1/organisations/999999/accreditation",
            operator,
        )
        .json(&json!({"valid_until": "2099-12-31"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not-found").await;
    let res = app
        .with_token(
            Method::POST,
            "/api/v1/organisations/abc/accreditation",
            operator,
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not-found").await;
}

#[tokio::test]
async fn lists_are_paged_with_a_cursor() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let operator = &f.tokens[&Role::Operator];
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/organisations?limit=2&cursor={c}"),
            None => "/api/v1/organisations?limit=2".to_owned(),
        };
        let page: Value = app
            .with_token(Method::GET, &path, operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|o| o["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen.len() as i64,
        app.count("organisations").await,
        "{seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    for bad in [
        "limit=0",
        "limit=201",
        "cursor=%%%",
        "cursor=bm90LWEtbnVtYmVy",
        "kind=school",
    ] {
        let res = app
            .with_token(
                Method::GET,
                &format!("/api/v1/organisations?{bad}"),
                operator,
            )
            .send()
            .await
            .unwrap();
        expect_problem(res, 422, "validation-error").await;
    }
}

#[tokio::test]
async fn the_operator_rotates_a_key() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let before = app
        .state
        .keys
        .signer(passnum::keys::Purpose::Voucher)
        .await
        .unwrap()
        .0;
    let res = app
        .with_token(
            Method::POST,
            "/api/v1/keys/rotate",
            &f.tokens[&Role::Operator],
        )
        .json(&json!({"purpose": "voucher"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let kid: Value = res.json().await.unwrap();
    assert_ne!(kid["kid"], before.to_string());
    let res = app
        .with_token(
            Method::POST,
            "/api/v1/keys/rotate",
            &f.tokens[&Role::Operator],
        )
        .json(&json!({"purpose": "login"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;
}

/// Tokens that must never pass: none, expired, signed by another key, `alg: none`.
#[tokio::test]
async fn bad_tokens_are_unauthorized() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let app = spawn_app().await;
    let f = fixture(&app).await;
    let good = &f.tokens[&Role::Operator];
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();

    let (login_kid, _) = app
        .state
        .keys
        .signer(passnum::keys::Purpose::Login)
        .await
        .unwrap();
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(login_kid.to_string());
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_der(other.to_pkcs8_der().unwrap().as_bytes()),
    )
    .unwrap();

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let alg_none = format!("{none_header}.{none_claims}.");

    let user_id: i64 = claims["sub"].as_str().unwrap().parse().unwrap();
    let org_id = claims["org"].as_i64().unwrap();
    let (expired, _) =
        passnum::auth::token::issue(&app.state.keys, user_id, org_id, Role::Operator, -120)
            .await
            .unwrap();

    // A statement key cannot sign logins, even with a valid signature.
    let (statement_kid, statement_key) = app
        .state
        .keys
        .signer(passnum::keys::Purpose::Statement)
        .await
        .unwrap();
    header.kid = Some(statement_kid.to_string());
    let wrong_purpose = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_der(statement_key.to_pkcs8_der().unwrap().as_bytes()),
    )
    .unwrap();

    for token in [
        forged,
        alg_none,
        expired,
        wrong_purpose,
        "garbage".to_owned(),
        String::new(),
    ] {
        let res = app
            .with_token(Method::GET, "/api/v1/me", &token)
            .send()
            .await
            .unwrap();
        assert!(res.headers().contains_key("www-authenticate"));
        expect_problem(res, 401, "unauthorized").await;
    }
    let res = app.get("/api/v1/me").await;
    expect_problem(res, 401, "unauthorized").await;
    assert_eq!(
        app.with_token(Method::GET, "/api/v1/me", good)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
