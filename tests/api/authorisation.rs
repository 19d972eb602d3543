//! Who may call what: every authenticated endpoint, with every role and with
//! every kind of bad token. Each new endpoint adds its row to `ENDPOINTS`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use passnum::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{expect_problem, fixture, spawn_app, Fixture, TestApp};

const ALL: &[Role] = &[Role::Operator, Role::Funder, Role::Issuer, Role::Venue];
const OPERATOR: &[Role] = &[Role::Operator];

struct Endpoint {
    method: Method,
    /// `{venue}` is the second demo venue, `{user}` a user made for the test.
    path: &'static str,
    allowed: &'static [Role],
    body: Option<fn() -> Value>,
    /// The same endpoint on an object of another organisation, which an
    /// allowed non-operator role must not see (404).
    foreign: Option<&'static str>,
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method: Method, path, allowed, body: Option<fn() -> Value>| Endpoint {
        method,
        path,
        allowed,
        body,
        foreign: None,
    };
    vec![
        e(Method::GET, "/api/v1/me", ALL, None),
        e(Method::GET, "/api/v1/organisations", OPERATOR, None),
        e(Method::GET, "/api/v1/organisations?kind=venue", ALL, None),
        e(
            Method::GET,
            "/api/v1/organisations?kind=issuer",
            OPERATOR,
            None,
        ),
        e(
            Method::POST,
            "/api/v1/organisations",
            OPERATOR,
            Some(|| {
                json!({"kind": "issuer", "name": "CCAS de Mulhouse", "siret": "73282932000074",
                       "address": "2 rue Pierre et Marie Curie", "postcode": "68100", "commune_code": "68224"})
            }),
        ),
        e(
            Method::POST,
            "/api/v1/organisations/{venue}/accreditation",
            OPERATOR,
            Some(|| json!({"valid_until": "2099-01-01"})),
        ),
        e(
            Method::DELETE,
            "/api/v1/organisations/{venue}/accreditation",
            OPERATOR,
            None,
        ),
        e(
            Method::POST,
            "/api/v1/users",
            OPERATOR,
            Some(
                || json!({"organisation_id": 1, "email": "table@example.org", "password": "long enough password"}),
            ),
        ),
        e(
            Method::POST,
            "/api/v1/users/{user}/deactivate",
            OPERATOR,
            None,
        ),
        e(
            Method::POST,
            "/api/v1/keys/rotate",
            OPERATOR,
            Some(|| json!({"purpose": "statement"})),
        ),
    ]
}

async fn call(
    app: &TestApp,
    endpoint: &Endpoint,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.request(endpoint.method.clone(), app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = endpoint.body {
        request = request.json(&body());
    }
    request.send().await.unwrap()
}

/// Tokens that must all be refused: expired, signed by a key of no ring, `alg: none`.
async fn bad_tokens(app: &TestApp, f: &Fixture) -> Vec<(&'static str, String)> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let good = &f.tokens[&Role::Operator];
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let user: i64 = claims["sub"].as_str().unwrap().parse().unwrap();
    let org = claims["org"].as_i64().unwrap();
    let (expired, _) =
        passnum::auth::token::issue(&app.state.keys, user, org, Role::Operator, -120)
            .await
            .unwrap();
    let (kid, _) = app
        .state
        .keys
        .signer(passnum::keys::Purpose::Login)
        .await
        .unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let other_key = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_der(stranger.to_pkcs8_der().unwrap().as_bytes()),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    vec![
        ("expired", expired),
        ("another key", other_key),
        ("alg none", alg_none),
    ]
}

#[tokio::test]
async fn every_endpoint_admits_exactly_its_roles() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let bad = bad_tokens(&app, &f).await;
    let venue = f.org_ids["lieu2@demo.passnum.test"];
    // A user whose deactivation the table may try.
    let user: Value = app
        .with_token(Method::POST, "/api/v1/users", &f.tokens[&Role::Operator])
        .json(&json!({"organisation_id": venue, "email": "victim@example.org", "password": "long enough password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fill = |path: &str| {
        path.replace("{venue}", &venue.to_string())
            .replace("{user}", &user["id"].to_string())
    };

    let mut checked = 0;
    for endpoint in endpoints() {
        let path = fill(endpoint.path);
        let what = format!("{} {}", endpoint.method, endpoint.path);

        expect_problem(
            call(&app, &endpoint, &path, None).await,
            401,
            "unauthorized",
        )
        .await;
        for (name, token) in &bad {
            let res = call(&app, &endpoint, &path, Some(token)).await;
            assert_eq!(res.status(), 401, "{what} with an {name} token");
        }
        // Refused roles first, so that allowed calls cannot change their answer.
        for role in Role::ALL
            .into_iter()
            .filter(|r| !endpoint.allowed.contains(r))
        {
            let res = call(&app, &endpoint, &path, Some(&f.tokens[&role])).await;
            assert_eq!(res.status(), 403, "{what} as {role}");
            expect_problem(res, 403, "forbidden").await;
        }
        for role in endpoint.allowed {
            let res = call(&app, &endpoint, &path, Some(&f.tokens[role])).await;
            let status = res.status().as_u16();
            assert!(
                status < 400,
                "{what} as {role}: {status} {}",
                res.text().await.unwrap()
            );
        }
        if let Some(foreign) = endpoint.foreign {
            for role in endpoint.allowed.iter().filter(|r| **r != Role::Operator) {
                let res = call(&app, &endpoint, &fill(foreign), Some(&f.tokens[role])).await;
                expect_problem(res, 404, "not-found").await;
            }
        }
        checked += 1;
    }
    assert_eq!(checked, endpoints().len());
}

/// Endpoints anyone may call, token or not.
#[tokio::test]
async fn public_endpoints_need_no_token() {
    let app = spawn_app().await;
    for path in [
        "/healthz",
        "/readyz",
        "/.well-known/jwks.json",
        "/api/openapi.json",
        "/api/docs/",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}
