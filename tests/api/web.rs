//! The web pages over HTTP: sessions and their cookie, the anti-forgery token
//! of every form, another organisation's objects, headers, static files.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::helpers::{new_database, spawn_app, spawn_app_on, test_config, TestApp};

/// A browser, as far as these tests need one: a cookie jar, no redirects followed.
pub struct Visitor<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The raw `Set-Cookie` header naming `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of the first hidden anti-forgery field of the page.
    pub fn csrf_token(&self) -> String {
        hidden_value(&self.body, "csrf_token").expect("a form with a csrf_token")
    }
}

/// The value of the first input named `name` in a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind("<input")?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value_at = tag.find("value=\"")? + "value=\"".len();
    let value_end = value_at + tag[value_at..].find('"')?;
    Some(tag[value_at..value_end].replace("&amp;", "&"))
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Visitor {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().expect("an ASCII cookie");
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = response.text().await.expect("a body");
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let response = self
            .client
            .get(self.app.url(path))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("request sent");
        self.keep(response).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(fields).expect("a form");
        let response = self
            .client
            .post(self.app.url(path))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request sent");
        self.keep(response).await
    }

    /// Gets the page holding a form, then posts the form with its token.
    pub async fn submit(
        &mut self,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Answer {
        let page = self.get(form_page).await;
        assert_eq!(page.status, 200, "{form_page}: {}", page.body);
        let token = page.csrf_token();
        let mut with_token = vec![("csrf_token", token.as_str())];
        with_token.extend_from_slice(fields);
        self.post(action, &with_token).await
    }

    /// Logs in through the login page with the demo password.
    pub async fn login(app: &'a TestApp, email: &str) -> Visitor<'a> {
        let mut visitor = Visitor::new(app);
        let answer = visitor
            .submit(
                "/connexion",
                "/connexion",
                &[("email", email), ("password", passnum::demo::PASSWORD)],
            )
            .await;
        assert_eq!(answer.status, 303, "login of {email}: {}", answer.body);
        visitor
    }
}

async fn seeded_app() -> TestApp {
    let app = spawn_app().await;
    crate::helpers::fixture(&app).await;
    app
}

#[tokio::test]
async fn logging_in_opens_a_session_in_an_httponly_strict_cookie() {
    let app = seeded_app().await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.get("/connexion").await;
    assert_eq!(page.status, 200);
    let token = page.csrf_token();
    let answer = visitor
        .post(
            "/connexion",
            &[
                ("csrf_token", &token),
                ("email", "prescripteur@demo.passnum.test"),
                ("password", passnum::demo::PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.status, 303);
    assert_eq!(answer.location(), "/prescripteur/");
    let cookie = answer
        .set_cookie("passnum_session")
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_eq!(app.count("web_sessions").await, 1);
    // Only the token's digest is stored.
    let value = visitor.cookies["passnum_session"].clone();
    let digest = format!("web_sessions WHERE token_hash = sha256(convert_to('{value}', 'UTF8'))");
    assert_eq!(app.count(&digest).await, 1);
    let home = visitor.get("/prescripteur/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("prescripteur@demo.passnum.test"));
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure_and_host_only() {
    let mut config = test_config(&new_database().await);
    config.public_url = "https://pass.example.org".into();
    let app = spawn_app_on(config).await;
    crate::helpers::fixture(&app).await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.get("/connexion").await;
    let login_cookie = page
        .set_cookie("__Host-passnum_login")
        .expect("a login cookie");
    assert!(login_cookie.contains("Secure"), "{login_cookie}");
    let token = page.csrf_token();
    let answer = visitor
        .post(
            "/connexion",
            &[
                ("csrf_token", &token),
                ("email", "financeur@demo.passnum.test"),
                ("password", passnum::demo::PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let cookie = answer
        .set_cookie("__Host-passnum_session")
        .expect("a secure session cookie");
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    assert_eq!(visitor.get("/financeur/").await.status, 200);
}

#[tokio::test]
async fn the_login_form_refuses_a_post_without_its_token() {
    let app = seeded_app().await;
    let mut visitor = Visitor::new(&app);
    visitor.get("/connexion").await;
    let fields = [
        ("email", "prescripteur@demo.passnum.test"),
        ("password", passnum::demo::PASSWORD),
    ];
    let answer = visitor.post("/connexion", &fields).await;
    assert_eq!(answer.status, 403);
    assert!(answer.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let wrong = [("csrf_token", "not-the-token"), fields[0], fields[1]];
    assert_eq!(visitor.post("/connexion", &wrong).await.status, 403);
    assert_eq!(app.count("web_sessions").await, 0);
}

#[tokio::test]
async fn a_wrong_password_is_refused_in_french_and_counts_as_a_failure() {
    let app = seeded_app().await;
    let mut visitor = Visitor::new(&app);
    let answer = visitor
        .submit(
            "/connexion",
            "/connexion",
            &[
                ("email", "prescripteur@demo.passnum.test"),
                ("password", "faux mot de passe"),
            ],
        )
        .await;
    assert_eq!(answer.status, 401);
    assert!(answer
        .body
        .contains("Adresse e-mail ou mot de passe incorrect."));
    assert_eq!(app.count("web_sessions").await, 0);
    assert_eq!(
        scalar(
            &app,
            "SELECT failures FROM login_throttle WHERE scope = 'email' AND key = 'prescripteur@demo.passnum.test'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn logging_out_needs_the_token_and_ends_the_session() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let refused = visitor.post("/deconnexion", &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        visitor.get("/prescripteur/").await.status,
        200,
        "still logged in"
    );
    let answer = visitor.submit("/prescripteur/", "/deconnexion", &[]).await;
    assert_eq!(answer.status, 303);
    assert!(answer
        .set_cookie("passnum_session")
        .is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(app.count("web_sessions").await, 0);
    let after = visitor.get("/prescripteur/").await;
    assert_eq!(after.status, 303);
    assert_eq!(after.location(), "/connexion?suite=%2Fprescripteur%2F");
}

#[tokio::test]
async fn a_deactivated_user_s_session_stops_working() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    app.sql(
        "UPDATE users SET deactivated_at = now() WHERE email = 'prescripteur@demo.passnum.test'",
    )
    .await;
    assert_eq!(visitor.get("/prescripteur/").await.status, 303);
}

#[tokio::test]
async fn an_expired_session_sends_back_to_the_login_page() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "financeur@demo.passnum.test").await;
    app.sql("UPDATE web_sessions SET expires_at = now() - interval '1 second'")
        .await;
    let answer = visitor.get("/financeur/").await;
    assert_eq!(answer.status, 303);
    assert!(answer.location().starts_with("/connexion"));
}

#[tokio::test]
async fn after_login_the_user_returns_to_the_page_asked_for_and_never_to_another_site() {
    let app = seeded_app().await;
    let mut visitor = Visitor::new(&app);
    let fields = [
        ("email", "operateur@demo.passnum.test"),
        ("password", passnum::demo::PASSWORD),
    ];
    let mut with = fields.to_vec();
    with.push(("suite", "/operateur/cles"));
    let answer = visitor
        .submit("/connexion?suite=%2Foperateur%2Fcles", "/connexion", &with)
        .await;
    assert_eq!(answer.location(), "/operateur/cles");
    let mut other = Visitor::new(&app);
    let mut with = fields.to_vec();
    with.push(("suite", "//evil.example/"));
    let answer = other.submit("/connexion", "/connexion", &with).await;
    assert_eq!(answer.location(), "/operateur/");
}

#[tokio::test]
async fn pages_of_another_role_are_forbidden() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    for path in ["/financeur/", "/operateur/", "/lieu/"] {
        let answer = visitor.get(path).await;
        assert_eq!(answer.status, 403, "{path}");
        assert!(answer.body.contains("Accès refusé"), "{path}");
    }
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_are_never_cached() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let page = visitor.get("/prescripteur/").await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert!(page.body.starts_with("<!DOCTYPE html><html lang=\"fr\">"));
}

#[tokio::test]
async fn static_files_are_embedded_versioned_and_cached() {
    let app = spawn_app().await;
    let mut visitor = Visitor::new(&app);
    let login = visitor.get("/connexion").await;
    let at = login
        .body
        .find("/static/app.css?v=")
        .expect("a versioned stylesheet");
    let href: String = login.body[at..].chars().take_while(|c| *c != '"').collect();
    let css = visitor.get(&href).await;
    assert_eq!(css.status, 200);
    assert!(css.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(
        css.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(css.body.contains("--primary"));
    let unversioned = visitor.get("/static/app.css").await;
    assert_eq!(unversioned.headers["cache-control"], "no-cache");
    let etag = unversioned.headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url("/static/app.css"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(visitor.get("/static/../Cargo.toml").await.status, 404);
    assert_eq!(visitor.get("/static/nothing.css").await.status, 404);
}

#[tokio::test]
async fn an_unknown_page_is_an_html_page_for_browsers_and_a_problem_for_the_api() {
    let app = spawn_app().await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.get("/nulle-part").await;
    assert_eq!(page.status, 404);
    assert!(page.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.body.contains("Page introuvable"));
    let api = app.get("/nulle-part").await;
    crate::helpers::expect_problem(api, 404, "not-found").await;
}

impl<'a> Visitor<'a> {
    /// A session opened directly for `user_id`, as the login form would.
    pub async fn with_session(app: &'a TestApp, user_id: i64) -> Visitor<'a> {
        let mut conn = app.state.pool.get().await.unwrap();
        let token = passnum::web::session::open(&mut conn, user_id)
            .await
            .unwrap();
        let mut visitor = Visitor::new(app);
        visitor.cookies.insert("passnum_session".into(), token);
        visitor
    }
}

async fn user_id(app: &TestApp, email: &str) -> i64 {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use passnum::db::schema::users;
    let mut conn = app.state.pool.get().await.unwrap();
    users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(&mut conn)
        .await
        .unwrap()
}

/// Every page route that takes a POST, as its module registers it: the
/// scope of the module, then each `web::resource` chunk holding `.post(`.
fn posted_routes() -> Vec<String> {
    let mut routes = vec!["/connexion".to_owned(), "/deconnexion".to_owned()];
    for (file, scope) in [
        ("src/web/issuer.rs", "/prescripteur"),
        ("src/web/funder.rs", "/financeur"),
        ("src/web/operator.rs", "/operateur"),
        ("src/web/venue.rs", "/lieu"),
    ] {
        let source = std::fs::read_to_string(file).unwrap();
        let routes_fn = source
            .split("pub fn routes")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .unwrap_or_default();
        for chunk in routes_fn.split("web::resource(\"").skip(1) {
            if chunk.contains(".post(") {
                let path = chunk.split('"').next().unwrap();
                routes.push(format!("{scope}{path}"));
            }
        }
    }
    routes
}

/// What a forged form is sent to, with ids that exist, for each POST route.
struct Forms {
    /// (route pattern, concrete path, account that may use it)
    cases: Vec<(&'static str, String, &'static str)>,
}

/// Closes a statement of the demo programme up to today; returns its id.
async fn close_statement(app: &TestApp, f: &crate::helpers::Fixture) -> i64 {
    let res = app
        .with_token(
            reqwest::Method::POST,
            &format!("/api/v1/programs/{}/statements", f.program_id),
            &f.tokens[&passnum::auth::Role::Funder],
        )
        .json(&serde_json::json!({"period_end": passnum::domain::paris::today()}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let statement: serde_json::Value = res.json().await.unwrap();
    statement["id"].as_i64().unwrap()
}

async fn forms_of_every_page(app: &TestApp) -> Forms {
    let f = crate::helpers::fixture(app).await;
    let book = crate::redemptions::issue_book(app, &f, 5).await;
    let venue_token = &f.tokens[&passnum::auth::Role::Venue];
    let code = book["vouchers"][0]["code"].as_str().unwrap();
    let redemption = crate::redemptions::redeem(app, venue_token, code)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let device: serde_json::Value = app
        .with_token(reqwest::Method::POST, "/api/v1/devices", venue_token)
        .json(&serde_json::json!({"name": "Téléphone"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device = device["id"].as_i64().unwrap();
    let book = book["id"].as_i64().unwrap();
    let statement = close_statement(app, &f).await;
    let venue = f.org_ids["lieu@demo.passnum.test"];
    let user = user_id(app, "lieu2@demo.passnum.test").await;
    let program = f.program_id;
    let i = "prescripteur@demo.passnum.test";
    let fu = "financeur@demo.passnum.test";
    let o = "operateur@demo.passnum.test";
    let l = "lieu@demo.passnum.test";
    Forms {
        cases: vec![
            ("/connexion", "/connexion".into(), i),
            ("/deconnexion", "/deconnexion".into(), i),
            (
                "/prescripteur/carnets/nouveau",
                "/prescripteur/carnets/nouveau".into(),
                i,
            ),
            (
                "/prescripteur/carnets/{id}/envoyer",
                format!("/prescripteur/carnets/{book}/envoyer"),
                i,
            ),
            (
                "/prescripteur/carnets/{id}/revoquer",
                format!("/prescripteur/carnets/{book}/revoquer"),
                i,
            ),
            (
                "/prescripteur/carnets/{id}/remplacer",
                format!("/prescripteur/carnets/{book}/remplacer"),
                i,
            ),
            (
                "/prescripteur/carnets/{id}/lien",
                format!("/prescripteur/carnets/{book}/lien"),
                i,
            ),
            (
                "/financeur/programmes/nouveau",
                "/financeur/programmes/nouveau".into(),
                fu,
            ),
            (
                "/financeur/programmes/{id}/dotations",
                format!("/financeur/programmes/{program}/dotations"),
                fu,
            ),
            (
                "/financeur/programmes/{id}/cloture",
                format!("/financeur/programmes/{program}/cloture"),
                fu,
            ),
            (
                "/financeur/programmes/{id}/releves",
                format!("/financeur/programmes/{program}/releves"),
                fu,
            ),
            (
                "/financeur/conflits/{id}",
                "/financeur/conflits/1".into(),
                fu,
            ),
            (
                "/financeur/releves/{id}/paiements",
                format!("/financeur/releves/{statement}/paiements"),
                fu,
            ),
            (
                "/operateur/organisations/nouvelle",
                "/operateur/organisations/nouvelle".into(),
                o,
            ),
            (
                "/operateur/organisations/{id}/habilitation",
                format!("/operateur/organisations/{venue}/habilitation"),
                o,
            ),
            (
                "/operateur/organisations/{id}/habilitation/retrait",
                format!("/operateur/organisations/{venue}/habilitation/retrait"),
                o,
            ),
            (
                "/operateur/organisations/{id}/utilisateurs",
                format!("/operateur/organisations/{venue}/utilisateurs"),
                o,
            ),
            (
                "/operateur/utilisateurs/{id}/desactiver",
                format!("/operateur/utilisateurs/{user}/desactiver"),
                o,
            ),
            (
                "/operateur/cles/rotation",
                "/operateur/cles/rotation".into(),
                o,
            ),
            (
                "/lieu/appareils/activer",
                "/lieu/appareils/activer".into(),
                l,
            ),
            (
                "/lieu/appareils/{id}/retirer",
                format!("/lieu/appareils/{device}/retirer"),
                l,
            ),
            (
                "/lieu/ateliers/{id}/annuler",
                format!("/lieu/ateliers/{redemption}/annuler"),
                l,
            ),
        ],
    }
}

/// One number from the database.
async fn scalar(app: &TestApp, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Scalar {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.pool.get().await.unwrap();
    let row: Scalar = diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
        .get_result(&mut conn)
        .await
        .unwrap();
    row.n
}

/// What every form may change, to prove a refusal changed nothing.
async fn snapshot(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT count(*) FROM books",
        "SELECT count(*) FROM books WHERE revoked_at IS NOT NULL",
        "SELECT count(*) FROM book_sends",
        "SELECT count(*) FROM book_links",
        "SELECT count(*) FROM book_links WHERE killed_at IS NOT NULL",
        "SELECT count(*) FROM programs",
        "SELECT coalesce(sum(allocated_vouchers), 0) FROM programs",
        "SELECT coalesce(sum(vouchers), 0) FROM allocations",
        "SELECT count(*) FROM programs WHERE closed_at IS NOT NULL",
        "SELECT count(*) FROM statements",
        "SELECT count(*) FROM conflicts WHERE decision IS NOT NULL",
        "SELECT count(*) FROM organisations",
        "SELECT count(*) FROM organisations WHERE accredited_until IS NOT NULL",
        "SELECT count(*) FROM organisations WHERE accreditation_withdrawn_at IS NOT NULL",
        "SELECT count(*) FROM users",
        "SELECT count(*) FROM users WHERE deactivated_at IS NOT NULL",
        "SELECT count(*) FROM signing_keys",
        "SELECT count(*) FROM devices",
        "SELECT count(*) FROM devices WHERE revoked_at IS NOT NULL",
        "SELECT count(*) FROM redemptions WHERE cancelled_at IS NOT NULL",
        "SELECT count(*) FROM statement_payments",
    ] {
        rows.push((sql, scalar(app, sql).await));
    }
    rows
}

#[tokio::test]
async fn every_form_refuses_a_request_without_its_token_and_changes_nothing() {
    let app = spawn_app().await;
    let forms = forms_of_every_page(&app).await;
    // The list covers every POST route the page modules register.
    let mut covered: Vec<&str> = forms.cases.iter().map(|(pattern, _, _)| *pattern).collect();
    covered.sort_unstable();
    let mut registered = posted_routes();
    registered.sort_unstable();
    assert_eq!(covered, registered, "a form route lacks its CSRF test");

    let before = snapshot(&app).await;
    for (pattern, path, email) in &forms.cases {
        let mut visitor = Visitor::login(&app, email).await;
        let fields = [
            ("reason", "forged"),
            ("revoke_reason", "forged"),
            ("replace_reason", "forged"),
            ("email", "forged@example.org"),
            ("password", passnum::demo::PASSWORD),
            ("period_end", "2020-01-01"),
            ("valid_until", "2099-01-01"),
            ("purpose", "voucher"),
            ("venue", "1"),
            ("amount_cents", "0"),
            ("vouchers", "10"),
        ];
        let without = visitor.post(path, &fields).await;
        assert_eq!(
            without.status, 403,
            "{pattern} without a token: {}",
            without.body
        );
        assert!(without.body.contains("Formulaire expiré"), "{pattern}");
        let mut wrong = fields.to_vec();
        wrong.push(("csrf_token", "forged-token"));
        let with_wrong = visitor.post(path, &wrong).await;
        assert_eq!(with_wrong.status, 403, "{pattern} with a wrong token");
        // Another session's token is no better.
        let mut other = Visitor::login(&app, email).await;
        let their_csrf = other
            .get(passnum::web::layout::home_of(role_of(email)))
            .await
            .csrf_token();
        let mut stolen = fields.to_vec();
        stolen.push(("csrf_token", &their_csrf));
        let with_theirs = visitor.post(path, &stolen).await;
        assert_eq!(
            with_theirs.status, 403,
            "{pattern} with another session's token"
        );
    }
    assert_eq!(before, snapshot(&app).await);
}

fn role_of(email: &str) -> passnum::auth::Role {
    use passnum::auth::Role;
    match email.split('@').next().unwrap() {
        "prescripteur" => Role::Issuer,
        "financeur" => Role::Funder,
        "operateur" => Role::Operator,
        _ => Role::Venue,
    }
}

#[tokio::test]
async fn every_post_form_of_every_page_carries_the_session_token() {
    let app = spawn_app().await;
    let forms = forms_of_every_page(&app).await;
    let mut pages: Vec<(String, &str)> = Vec::new();
    for (_, path, email) in &forms.cases {
        // The page that shows each form: the path without its action.
        let page = path
            .trim_end_matches("/envoyer")
            .trim_end_matches("/revoquer")
            .trim_end_matches("/remplacer")
            .trim_end_matches("/lien")
            .trim_end_matches("/dotations")
            .trim_end_matches("/cloture")
            .trim_end_matches("/releves")
            .trim_end_matches("/habilitation/retrait")
            .trim_end_matches("/habilitation")
            .trim_end_matches("/utilisateurs")
            .trim_end_matches("/rotation")
            .trim_end_matches("/paiements")
            .to_owned();
        let shown_elsewhere = page.contains("desactiver")
            || page.starts_with("/financeur/conflits/")
            || page.starts_with("/lieu/")
            || page == "/deconnexion"
            || page == "/connexion";
        if !shown_elsewhere {
            pages.push((page, email));
        }
    }
    for (page, email) in pages {
        let mut visitor = Visitor::login(&app, email).await;
        let answer = visitor.get(&page).await;
        assert_eq!(answer.status, 200, "{page}");
        let token = visitor_token(&answer.body);
        for form in answer.body.split("<form").skip(1) {
            let form = form.split("</form>").next().unwrap();
            if form.contains("method=\"post\"") {
                assert!(
                    form.contains(&format!("name=\"csrf_token\" value=\"{token}\"")),
                    "a form of {page} lacks the session's token: {form}"
                );
            }
        }
    }
}

fn visitor_token(body: &str) -> String {
    hidden_value(body, "csrf_token").expect("a token on the page")
}

#[tokio::test]
async fn another_organisation_s_objects_answer_404_and_stay_as_they_were() {
    let app = spawn_app().await;
    let f = crate::helpers::fixture(&app).await;
    // The demo issuer's book, and a statement of the demo programme.
    let book = crate::redemptions::issue_book(&app, &f, 5).await;
    let book = book["id"].as_i64().unwrap();
    let statement = close_statement(&app, &f).await;
    let program = f.program_id;

    let before = snapshot(&app).await;
    let other_issuer = user_id(&app, "autre-prescripteur@example.org").await;
    let mut visitor = Visitor::with_session(&app, other_issuer).await;
    let token = visitor.get("/prescripteur/").await.csrf_token();
    for path in [
        format!("/prescripteur/carnets/{book}"),
        format!("/prescripteur/carnets/{book}/pdf"),
        "/prescripteur/carnets/999999".into(),
        "/prescripteur/carnets/pas-un-nombre".into(),
    ] {
        let answer = visitor.get(&path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert!(answer.body.contains("Page introuvable"), "{path}");
        assert!(!answer.body.contains("R-7"), "{path} shows the book");
    }
    for action in ["envoyer", "revoquer", "remplacer"] {
        let path = format!("/prescripteur/carnets/{book}/{action}");
        let answer = visitor
            .post(
                &path,
                &[
                    ("csrf_token", &token),
                    ("revoke_reason", "x"),
                    ("replace_reason", "x"),
                    ("email", "a@b.fr"),
                ],
            )
            .await;
        assert_eq!(answer.status, 404, "{path}");
    }
    // The issuer's list shows only its own books.
    assert!(!visitor
        .get("/prescripteur/")
        .await
        .body
        .contains(&format!("N° {book}<")));

    let other_funder = user_id(&app, "autre-financeur@example.org").await;
    let mut visitor = Visitor::with_session(&app, other_funder).await;
    let token = visitor.get("/financeur/").await.csrf_token();
    for path in [
        format!("/financeur/programmes/{program}"),
        format!("/financeur/programmes/{program}/utilisation"),
        format!("/financeur/releves/{statement}"),
        format!("/financeur/releves/{statement}/csv"),
        format!("/financeur/releves/{statement}/pdf"),
    ] {
        let answer = visitor.get(&path).await;
        assert_eq!(answer.status, 404, "{path}");
    }
    for path in [
        format!("/financeur/programmes/{program}/dotations"),
        format!("/financeur/programmes/{program}/cloture"),
        format!("/financeur/programmes/{program}/releves"),
        format!("/financeur/releves/{statement}/paiements"),
        "/financeur/conflits/999999".into(),
    ] {
        let answer = visitor
            .post(
                &path,
                &[
                    ("csrf_token", &token),
                    ("issuer", "1"),
                    ("vouchers", "5"),
                    ("period_end", "2020-01-01"),
                ],
            )
            .await;
        assert_eq!(answer.status, 404, "{path}");
    }
    assert!(!visitor
        .get("/financeur/")
        .await
        .body
        .contains(passnum::demo::PROGRAM_NAME));
    assert_eq!(before, snapshot(&app).await);
}

#[tokio::test]
async fn purge_removes_expired_sessions_and_keeps_live_ones() {
    let app = seeded_app().await;
    let mut live = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    Visitor::login(&app, "financeur@demo.passnum.test").await;
    app.sql("UPDATE web_sessions SET expires_at = now() - interval '1 minute' WHERE user_id = (SELECT id FROM users WHERE email = 'financeur@demo.passnum.test')")
        .await;
    let mut conn = app.state.pool.get().await.unwrap();
    let purged = passnum::domain::purge::purge(&mut conn, 12).await.unwrap();
    assert_eq!(purged.web_sessions, 1);
    assert_eq!(app.count("web_sessions").await, 1);
    assert_eq!(live.get("/prescripteur/").await.status, 200);
}

#[tokio::test]
async fn the_menu_marks_the_page_the_user_is_on() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let new = visitor.get("/prescripteur/carnets/nouveau").await;
    assert!(new
        .body
        .contains("href=\"/prescripteur/carnets/nouveau\" aria-current=\"page\""));
    assert!(!new.body.contains("href=\"/prescripteur/\" aria-current"));
    let list = visitor.get("/prescripteur/").await;
    assert!(list
        .body
        .contains("href=\"/prescripteur/\" aria-current=\"page\""));
}

#[tokio::test]
async fn closing_a_programme_asks_for_a_confirmation() {
    let app = spawn_app().await;
    let f = crate::helpers::fixture(&app).await;
    let mut visitor = Visitor::login(&app, "financeur@demo.passnum.test").await;
    let page = format!("/financeur/programmes/{}", f.program_id);
    let action = format!("{page}/cloture");
    let unconfirmed = visitor.submit(&page, &action, &[]).await;
    assert_eq!(unconfirmed.status, 422);
    assert!(unconfirmed.body.contains("Cochez la case pour confirmer"));
    assert_eq!(app.count("programs WHERE closed_at IS NOT NULL").await, 0);
    let confirmed = visitor.submit(&page, &action, &[("confirm", "oui")]).await;
    assert_eq!(confirmed.status, 303);
    assert_eq!(app.count("programs WHERE closed_at IS NOT NULL").await, 1);
    // Closed twice: the domain's refusal, shown in French on the page.
    let again = visitor
        .post(
            &action,
            &[
                ("csrf_token", &unconfirmed.csrf_token()),
                ("confirm", "oui"),
            ],
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(again
        .body
        .contains("L'état actuel ne permet pas cette action"));
}

#[tokio::test]
async fn a_refused_book_form_comes_back_with_french_errors_and_stores_nothing() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let page = "/prescripteur/carnets/nouveau";
    let form = visitor.get(page).await;
    let program = hidden_option(&form.body);
    let answer = visitor
        .submit(
            page,
            page,
            &[
                ("program_id", &program),
                ("size", "10"),
                ("reference", "D-1"),
                ("postcode", "75001"),
            ],
        )
        .await;
    assert_eq!(answer.status, 422);
    assert!(answer.body.contains("hors du territoire du programme"));
    assert!(answer.body.contains("aria-invalid=\"true\""));
    assert!(
        answer.body.contains("value=\"D-1\""),
        "what was typed is kept"
    );
    for bad_size in ["7", "dix"] {
        let answer = visitor
            .submit(
                page,
                page,
                &[
                    ("program_id", &program),
                    ("size", bad_size),
                    ("reference", "D-1"),
                    ("postcode", "67100"),
                ],
            )
            .await;
        assert_eq!(answer.status, 422, "size {bad_size}");
    }
    assert_eq!(app.count("books").await, 0);
}

/// The value of the first `<option>` of a page.
fn hidden_option(html: &str) -> String {
    let at = html.find("<option value=\"").expect("an option") + "<option value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_book_issued_with_an_email_is_sent_from_its_page_and_the_address_forgotten() {
    let smtp = crate::printing::SmtpServer::start();
    let (app, _) = crate::printing::app_with_smtp(&format!("smtp://127.0.0.1:{}", smtp.port)).await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let page = "/prescripteur/carnets/nouveau";
    let program = hidden_option(&visitor.get(page).await.body);
    let issued = visitor
        .submit(
            page,
            page,
            &[
                ("program_id", &program),
                ("size", "5"),
                ("reference", "M-7"),
                ("postcode", "67000"),
                ("email", "beneficiaire@example.org"),
            ],
        )
        .await;
    assert_eq!(issued.status, 303, "{}", issued.body);
    let book_page = issued.location().trim_end_matches("?fait=emis").to_owned();
    let book = visitor.get(&book_page).await;
    assert!(book
        .body
        .contains("Laissez vide pour utiliser l'adresse saisie"));
    assert!(book.body.contains("Pas encore envoyé"));
    let sent = visitor
        .submit(
            &book_page,
            &format!("{book_page}/envoyer"),
            &[("email", "")],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(sent.location().ends_with("?fait=envoye"));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["to"], "beneficiaire@example.org");
    // The book's page says when it was sent, after the notice has gone.
    let book = visitor.get(&book_page).await;
    assert!(!book.body.contains("Pas encore envoyé"), "{}", book.body);
    assert_eq!(book.body.matches("Envoyé le ").count(), 1, "{}", book.body);
    assert_eq!(
        app.count("books WHERE beneficiary_email IS NOT NULL").await,
        0
    );
}

#[tokio::test]
async fn a_mail_server_missing_is_said_plainly_and_the_book_stays_issued() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let page = "/prescripteur/carnets/nouveau";
    let program = hidden_option(&visitor.get(page).await.body);
    let issued = visitor
        .submit(
            page,
            page,
            &[
                ("program_id", &program),
                ("size", "5"),
                ("reference", "M-8"),
                ("postcode", "67000"),
            ],
        )
        .await;
    let book_page = issued.location().trim_end_matches("?fait=emis").to_owned();
    let no_address = visitor
        .submit(
            &book_page,
            &format!("{book_page}/envoyer"),
            &[("email", "")],
        )
        .await;
    assert_eq!(no_address.status, 422);
    assert!(no_address
        .body
        .contains("Saisissez l'adresse e-mail du bénéficiaire : ce champ est obligatoire."));
    let failed = visitor
        .submit(
            &book_page,
            &format!("{book_page}/envoyer"),
            &[("email", "quelqu.un@example.org")],
        )
        .await;
    assert_eq!(failed.status, 503);
    assert!(failed.body.contains("Le carnet reste émis"));
    assert_eq!(app.count("books WHERE revoked_at IS NULL").await, 1);
    assert_eq!(app.count("book_sends WHERE outcome = 'failed'").await, 1);
}

#[tokio::test]
async fn a_conflict_is_resolved_from_its_page_once() {
    use chrono::{Duration, Utc};
    use passnum::auth::Role;
    let app = spawn_app().await;
    let f = crate::helpers::fixture(&app).await;
    let lieu2 = crate::helpers::login_token(&app, "lieu2@demo.passnum.test").await;
    let book = crate::redemptions::issue_book(&app, &f, 5).await;
    let code = book["vouchers"][0]["code"].as_str().unwrap().to_owned();
    let at = (Utc::now() - Duration::minutes(5)).to_rfc3339();
    for (token, nonce) in [(f.tokens[&Role::Venue].clone(), "a"), (lieu2, "b")] {
        let res = app
            .with_token(reqwest::Method::POST, "/api/v1/redemptions/batch", &token)
            .json(&serde_json::json!({"items": [{"nonce": nonce, "code": code, "scanned_at": at, "workshop": crate::redemptions::workshop()}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(app.count("conflicts").await, 1);
    let id = scalar(&app, "SELECT id FROM conflicts").await;
    let mut visitor = Visitor::login(&app, "financeur@demo.passnum.test").await;
    let page = visitor.get("/financeur/conflits").await;
    assert!(page.body.contains("Espace numérique de Colmar"));
    let action = format!("/financeur/conflits/{id}");
    let decision = format!("c{id}-decision");
    let reason = format!("c{id}-reason");
    let no_reason = visitor
        .submit(
            "/financeur/conflits",
            &action,
            &[(&decision, "pay"), (&reason, " ")],
        )
        .await;
    assert_eq!(no_reason.status, 422);
    assert!(no_reason.body.contains("Indiquez le motif"));
    assert!(no_reason.body.contains(&format!("id=\"{reason}\"")));
    assert_eq!(app.count("conflicts WHERE decision IS NOT NULL").await, 0);
    let paid = visitor
        .submit(
            "/financeur/conflits",
            &action,
            &[(&decision, "pay"), (&reason, "atelier bien donné")],
        )
        .await;
    assert_eq!(paid.status, 303);
    assert_eq!(
        app.count("redemptions WHERE conflict_id IS NOT NULL").await,
        1
    );
    let again = visitor
        .post(
            &action,
            &[
                ("csrf_token", &no_reason.csrf_token()),
                (&decision, "reject"),
                (&reason, "non"),
            ],
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        app.count("redemptions WHERE conflict_id IS NOT NULL").await,
        1
    );
}

#[tokio::test]
async fn a_wrong_method_on_a_page_is_an_html_page_and_a_late_form_leads_home_after_login() {
    let app = seeded_app().await;
    let mut visitor = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    let wrong = visitor.get("/prescripteur/carnets/1/revoquer").await;
    assert_eq!(wrong.status, 405);
    assert!(wrong.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let api = app.get("/api/v1/books/1/revoke").await;
    crate::helpers::expect_problem(api, 405, "method-not-allowed").await;
    // A form sent after the session ended: to the login page, then home.
    let mut stranger = Visitor::new(&app);
    let late = stranger.post("/prescripteur/carnets/1/revoquer", &[]).await;
    assert_eq!(late.status, 303);
    assert_eq!(late.location(), "/connexion");
}
