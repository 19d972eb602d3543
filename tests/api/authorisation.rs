//! Who may call what: every authenticated endpoint, with every role and with
//! every kind of bad token. Each new endpoint adds its row to `ENDPOINTS`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use passnum::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{expect_problem, fixture, spawn_app, Fixture, TestApp};
use crate::redemptions::workshop;

const ALL: &[Role] = &[Role::Operator, Role::Funder, Role::Issuer, Role::Venue];
const OPERATOR: &[Role] = &[Role::Operator];
const FUNDER: &[Role] = &[Role::Funder];
const ISSUER: &[Role] = &[Role::Issuer];
const FUNDER_OR_ISSUER: &[Role] = &[Role::Funder, Role::Issuer];
const VENUE: &[Role] = &[Role::Venue];
const VENUE_OR_FUNDER: &[Role] = &[Role::Venue, Role::Funder];
const VENUE_OR_OPERATOR: &[Role] = &[Role::Venue, Role::Operator];

/// The objects the table's paths and bodies name.
struct Ids {
    venue: i64,
    issuer: i64,
    user: i64,
    program: i32,
    spare_program: i32,
    other_program: i32,
    book: i64,
    book2: i64,
    other_book: i64,
    /// An unredeemed voucher of the demo programme.
    code: String,
    redemption: i64,
    redemption2: i64,
    /// Made by the other venue, on the other funder's programme.
    other_redemption: i64,
    device: i64,
    /// The other venue's device.
    other_device: i64,
    /// In the demo programme, and in the other funder's.
    conflict: i64,
    other_conflict: i64,
    /// Closed by the table's own call (the demo programme's first statement).
    statement: i64,
    /// The demo venue: paid on the demo statement for its one redemption there.
    payee: i64,
    /// The other funder's, with the other venue's extract only.
    other_statement: i64,
}

impl Ids {
    fn fill(&self, path: &str) -> String {
        path.replace("{venue}", &self.venue.to_string())
            .replace("{user}", &self.user.to_string())
            .replace("{program}", &self.program.to_string())
            .replace("{spare_program}", &self.spare_program.to_string())
            .replace("{other_program}", &self.other_program.to_string())
            .replace("{book}", &self.book.to_string())
            .replace("{book2}", &self.book2.to_string())
            .replace("{other_book}", &self.other_book.to_string())
            .replace("{redemption}", &self.redemption.to_string())
            .replace("{redemption2}", &self.redemption2.to_string())
            .replace("{other_redemption}", &self.other_redemption.to_string())
            .replace("{other_device}", &self.other_device.to_string())
            .replace("{device}", &self.device.to_string())
            .replace("{other_conflict}", &self.other_conflict.to_string())
            .replace("{conflict}", &self.conflict.to_string())
            .replace("{other_statement}", &self.other_statement.to_string())
            .replace("{statement}", &self.statement.to_string())
    }
}

struct Endpoint {
    method: Method,
    path: &'static str,
    allowed: &'static [Role],
    body: Option<fn(&Ids) -> Value>,
    /// The same endpoint on an object of another organisation, which an
    /// allowed non-operator role must not see (404).
    foreign: Option<&'static str>,
}

fn endpoint(method: Method, path: &'static str, allowed: &'static [Role]) -> Endpoint {
    Endpoint {
        method,
        path,
        allowed,
        body: None,
        foreign: None,
    }
}

impl Endpoint {
    fn body(mut self, body: fn(&Ids) -> Value) -> Self {
        self.body = Some(body);
        self
    }

    fn foreign(mut self, path: &'static str) -> Self {
        self.foreign = Some(path);
        self
    }
}

fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/api/v1/me", ALL),
        endpoint(M::GET, "/api/v1/organisations", OPERATOR),
        endpoint(M::GET, "/api/v1/organisations?kind=venue", ALL),
        endpoint(M::GET, "/api/v1/organisations?kind=issuer", OPERATOR),
        endpoint(M::POST, "/api/v1/organisations", OPERATOR).body(|_| {
            json!({"kind": "issuer", "name": "CCAS de Mulhouse", "siret": "73282932000074",
                   "address": "2 rue Pierre et Marie Curie", "postcode": "68100", "commune_code": "68224"})
        }),
        endpoint(M::POST, "/api/v1/organisations/{venue}/accreditation", OPERATOR).body(|_| json!({"valid_until": "2099-01-01"})),
        endpoint(M::DELETE, "/api/v1/organisations/{venue}/accreditation", OPERATOR),
        endpoint(M::POST, "/api/v1/users", OPERATOR)
            .body(|ids| json!({"organisation_id": ids.venue, "email": "table@example.org", "password": "long enough password"})),
        endpoint(M::POST, "/api/v1/users/{user}/deactivate", OPERATOR),
        endpoint(M::POST, "/api/v1/keys/rotate", OPERATOR).body(|_| json!({"purpose": "statement"})),
        endpoint(M::GET, "/api/v1/programs", FUNDER_OR_ISSUER),
        endpoint(M::POST, "/api/v1/programs", FUNDER).body(|_| {
            json!({"name": "Table", "face_value_cents": 1000, "budget_cents": 100000, "issue_until": "2099-12-31",
                   "voucher_validity_days": 30, "territory": {"departements": ["67"]}})
        }),
        endpoint(M::GET, "/api/v1/programs/{program}", FUNDER_OR_ISSUER).foreign("/api/v1/programs/{other_program}"),
        endpoint(M::POST, "/api/v1/programs/{program}/allocations", FUNDER)
            .body(|ids| json!({"issuer_organisation_id": ids.issuer, "vouchers": 5}))
            .foreign("/api/v1/programs/{other_program}/allocations"),
        endpoint(M::POST, "/api/v1/programs/{spare_program}/close", FUNDER).foreign("/api/v1/programs/{other_program}/close"),
        endpoint(M::GET, "/api/v1/books", ISSUER),
        endpoint(M::POST, "/api/v1/books", ISSUER).body(|ids| {
            json!({"program_id": ids.program, "size": 5, "beneficiary": {"reference": "T-1", "postcode": "67000"}})
        }),
        endpoint(M::GET, "/api/v1/books/{book}", ISSUER).foreign("/api/v1/books/{other_book}"),
        endpoint(M::POST, "/api/v1/books/{book}/revoke", ISSUER)
            .body(|_| json!({"reason": "test"}))
            .foreign("/api/v1/books/{other_book}/revoke"),
        endpoint(M::POST, "/api/v1/books/{book2}/replace", ISSUER)
            .body(|_| json!({"reason": "test"}))
            .foreign("/api/v1/books/{other_book}/replace"),
        endpoint(M::GET, "/api/v1/themes", ALL),
        endpoint(M::POST, "/api/v1/vouchers/check", VENUE).body(|ids| json!({"code": ids.code})),
        endpoint(M::POST, "/api/v1/redemptions", VENUE).body(|ids| json!({"code": ids.code, "workshop": workshop()})),
        endpoint(M::GET, "/api/v1/redemptions", VENUE_OR_FUNDER),
        endpoint(M::POST, "/api/v1/redemptions/{redemption}/cancel", VENUE)
            .body(|_| json!({"reason": "test"}))
            .foreign("/api/v1/redemptions/{other_redemption}/cancel"),
        endpoint(M::POST, "/api/v1/redemptions/{redemption2}/reverse", FUNDER)
            .body(|_| json!({"reason": "test"}))
            .foreign("/api/v1/redemptions/{other_redemption}/reverse"),
        endpoint(M::GET, "/api/v1/audit-events", OPERATOR),
        endpoint(M::GET, "/api/v1/redemptions/{redemption}", VENUE_OR_FUNDER)
            .foreign("/api/v1/redemptions/{other_redemption}"),
        endpoint(M::POST, "/api/v1/log/alarms", VENUE).body(|_| {
            json!({"problem": "inconsistent", "detail": "test", "kept_checkpoint": "x/log\n1\nAAAA\n", "new_checkpoint": null})
        }),
        endpoint(M::GET, "/api/v1/log/alarms", OPERATOR),
        endpoint(M::POST, "/api/v1/devices", VENUE).body(|_| json!({"name": "Téléphone"})),
        endpoint(M::GET, "/api/v1/devices", VENUE_OR_OPERATOR),
        endpoint(M::POST, "/api/v1/devices/{device}/revoke", VENUE_OR_OPERATOR).foreign("/api/v1/devices/{other_device}/revoke"),
        endpoint(M::GET, "/api/v1/sync", VENUE),
        endpoint(M::POST, "/api/v1/redemptions/batch", VENUE).body(|_| json!({"items": []})),
        endpoint(M::GET, "/api/v1/conflicts", FUNDER),
        endpoint(M::POST, "/api/v1/conflicts/{conflict}/resolve", FUNDER)
            .body(|_| json!({"decision": "reject", "reason": "test"}))
            .foreign("/api/v1/conflicts/{other_conflict}/resolve"),
        endpoint(M::POST, "/api/v1/programs/{program}/statements", FUNDER)
            .body(|_| json!({"period_end": passnum::domain::paris::today().to_string()}))
            .foreign("/api/v1/programs/{other_program}/statements"),
        endpoint(M::GET, "/api/v1/statements", VENUE_OR_FUNDER),
        endpoint(M::GET, "/api/v1/statements/{statement}", VENUE_OR_FUNDER).foreign("/api/v1/statements/{other_statement}"),
        endpoint(M::GET, "/api/v1/statements/{statement}/csv", VENUE_OR_FUNDER)
            .foreign("/api/v1/statements/{other_statement}/csv"),
        endpoint(M::GET, "/api/v1/statements/{statement}/pdf", VENUE_OR_FUNDER)
            .foreign("/api/v1/statements/{other_statement}/pdf"),
        endpoint(M::POST, "/api/v1/statements/{statement}/payments", FUNDER)
            .body(|ids| {
                json!({"venue_organisation_id": ids.payee, "amount_cents": 2000,
                       "paid_on": passnum::domain::paris::today().to_string(), "reference": "VIR-1"})
            })
            .foreign("/api/v1/statements/{other_statement}/payments"),
        endpoint(M::GET, "/api/v1/programs/{program}/statement", FUNDER).foreign("/api/v1/programs/{other_program}/statement"),
        endpoint(M::GET, "/api/v1/programs/{program}/stats", FUNDER).foreign("/api/v1/programs/{other_program}/stats"),
    ]
}

async fn call(
    app: &TestApp,
    endpoint: &Endpoint,
    ids: &Ids,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(endpoint.method.clone(), app.url(&ids.fill(path)));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = endpoint.body {
        request = request.json(&body(ids));
    }
    request.send().await.unwrap()
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let res = app
        .with_token(Method::POST, path, token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// The objects the table needs, each made through the API.
async fn objects(app: &TestApp, f: &Fixture) -> Ids {
    let book = |program: i32| json!({"program_id": program, "size": 5, "beneficiary": {"reference": "T", "postcode": "68100"}});
    let issuer = &f.tokens[&Role::Issuer];
    let user = post(app, &f.tokens[&Role::Operator], "/api/v1/users",
        json!({"organisation_id": f.org_ids["lieu2@demo.passnum.test"], "email": "victim@example.org", "password": "long enough password"})).await;
    let spare = post(app, &f.tokens[&Role::Funder], "/api/v1/programs",
        json!({"name": "Spare", "face_value_cents": 1000, "budget_cents": 1000, "issue_until": "2099-12-31",
               "voucher_validity_days": 30, "territory": {"departements": ["67"]}})).await;
    let demo_book = post(app, issuer, "/api/v1/books", book(f.program_id)).await;
    let other_book = post(
        app,
        &f.other_tokens[&Role::Issuer],
        "/api/v1/books",
        book(f.other_program_id),
    )
    .await;
    let code_of = |book: &Value, i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    let redeem = |token: String, code: String| async move {
        post(
            app,
            &token,
            "/api/v1/redemptions",
            json!({"code": code, "workshop": workshop()}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    };
    let venue = f.tokens[&Role::Venue].clone();
    let venue2 = crate::helpers::login_token(app, "lieu2@demo.passnum.test").await;
    let redemption = redeem(venue.clone(), code_of(&demo_book, 1)).await;
    let redemption2 = redeem(venue.clone(), code_of(&demo_book, 2)).await;
    let other_redemption = redeem(venue2.clone(), code_of(&other_book, 0)).await;
    // Two conflicts: a voucher redeemed by one venue, scanned offline by the other.
    let conflict_of = |token: String, code: String| async move {
        let scan = json!({"nonce": uuid::Uuid::new_v4().to_string(), "code": code, "scanned_at": chrono::Utc::now().to_rfc3339(), "workshop": workshop()});
        post(
            app,
            &token,
            "/api/v1/redemptions/batch",
            json!({"items": [scan]}),
        )
        .await;
    };
    conflict_of(venue2.clone(), code_of(&demo_book, 1)).await;
    conflict_of(f.tokens[&Role::Venue].clone(), code_of(&other_book, 0)).await;
    let conflicts: Vec<i64> = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        let mut conn = app.state.pool.get().await.unwrap();
        passnum::db::schema::conflicts::table
            .select(passnum::db::schema::conflicts::id)
            .order(passnum::db::schema::conflicts::program_id.ne(f.program_id))
            .load(&mut conn)
            .await
            .unwrap()
    };
    let device_of = |token: String| async move {
        post(app, &token, "/api/v1/devices", json!({"name": "Scanner"})).await["id"]
            .as_i64()
            .unwrap()
    };
    let other_statement = post(
        app,
        &f.other_tokens[&Role::Funder],
        &format!("/api/v1/programs/{}/statements", f.other_program_id),
        json!({"period_end": passnum::domain::paris::today().to_string()}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    Ids {
        other_statement,
        statement: other_statement + 1,
        device: device_of(f.tokens[&Role::Venue].clone()).await,
        other_device: device_of(venue2.clone()).await,
        conflict: conflicts[0],
        other_conflict: conflicts[1],
        code: code_of(&demo_book, 0),
        redemption,
        redemption2,
        other_redemption,
        venue: f.org_ids["lieu2@demo.passnum.test"],
        payee: f.org_ids["lieu@demo.passnum.test"],
        issuer: f.org_ids["prescripteur@demo.passnum.test"],
        user: user["id"].as_i64().unwrap(),
        program: f.program_id,
        spare_program: spare["id"].as_i64().unwrap() as i32,
        other_program: f.other_program_id,
        book: post(app, issuer, "/api/v1/books", book(f.program_id)).await["id"]
            .as_i64()
            .unwrap(),
        book2: post(app, issuer, "/api/v1/books", book(f.program_id)).await["id"]
            .as_i64()
            .unwrap(),
        other_book: post(
            app,
            &f.other_tokens[&Role::Issuer],
            "/api/v1/books",
            book(f.other_program_id),
        )
        .await["id"]
            .as_i64()
            .unwrap(),
    }
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
    let ids = objects(&app, &f).await;

    let mut checked = 0;
    for endpoint in endpoints() {
        let what = format!("{} {}", endpoint.method, endpoint.path);
        expect_problem(
            call(&app, &endpoint, &ids, endpoint.path, None).await,
            401,
            "unauthorized",
        )
        .await;
        for (name, token) in &bad {
            let res = call(&app, &endpoint, &ids, endpoint.path, Some(token)).await;
            assert_eq!(res.status(), 401, "{what} with an {name} token");
        }
        // Refused roles first, so that allowed calls cannot change their answer.
        for role in Role::ALL
            .into_iter()
            .filter(|r| !endpoint.allowed.contains(r))
        {
            let res = call(&app, &endpoint, &ids, endpoint.path, Some(&f.tokens[&role])).await;
            assert_eq!(res.status(), 403, "{what} as {role}");
            expect_problem(res, 403, "forbidden").await;
        }
        // Another organisation's object, before the allowed calls change anything.
        if let Some(foreign) = endpoint.foreign {
            for role in endpoint.allowed.iter().filter(|r| **r != Role::Operator) {
                let res = call(&app, &endpoint, &ids, foreign, Some(&f.tokens[role])).await;
                assert_eq!(
                    res.status(),
                    404,
                    "{what} on another organisation's object as {role}"
                );
                expect_problem(res, 404, "not-found").await;
            }
        }
        for role in endpoint.allowed {
            let res = call(&app, &endpoint, &ids, endpoint.path, Some(&f.tokens[role])).await;
            let status = res.status().as_u16();
            assert!(
                status < 400,
                "{what} as {role}: {status} {}",
                res.text().await.unwrap()
            );
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
        "/log/key",
        "/api/openapi.json",
        "/api/docs/",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}
