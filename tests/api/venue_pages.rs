//! The venue's pages: the scan page and its service worker, a phone's
//! activation, devices, redemptions with their cancel form, statements.
//! (Every form's refusal without its token is in `web.rs`, with all forms.)

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{fixture, spawn_app, Fixture, TestApp};
use crate::redemptions::{issue_book, redeem};
use crate::web::Visitor;
use passnum::auth::Role;

const VENUE: &str = "lieu@demo.passnum.test";
const OTHER_VENUE: &str = "lieu2@demo.passnum.test";

async fn activate<'a>(visitor: &mut Visitor<'a>, name: &str) -> crate::web::Answer {
    visitor
        .submit("/lieu/", "/lieu/appareils/activer", &[("name", name)])
        .await
}

async fn sync_status(app: &TestApp, token: &str) -> StatusCode {
    app.with_token(Method::GET, "/api/v1/sync", token)
        .send()
        .await
        .unwrap()
        .status()
}

/// A redemption by the demo venue; its id.
async fn redeemed(app: &TestApp, f: &Fixture) -> i64 {
    let book = issue_book(app, f, 5).await;
    let code = book["vouchers"][0]["code"].as_str().unwrap();
    let res = redeem(app, &f.tokens[&Role::Venue], code).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

#[tokio::test]
async fn the_scan_page_activates_the_phone_whose_token_then_scans_for_the_venue() {
    let app = spawn_app().await;
    fixture(&app).await;
    let mut visitor = Visitor::login(&app, VENUE).await;
    let page = visitor.get("/lieu/").await;
    assert_eq!(page.status, 200);
    let token = page.csrf_token();
    assert!(page
        .body
        .contains(&format!("name=\"csrf_token\" value=\"{token}\"")));
    assert!(page.body.contains("rel=\"manifest\""));
    // ZXing runs as WebAssembly; other pages keep the strict policy.
    let policy = page.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("'wasm-unsafe-eval'") && policy.contains("manifest-src 'self'"));
    let other = visitor.get("/lieu/ateliers").await;
    assert!(!other.headers[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("wasm"));

    let answer = activate(&mut visitor, "Téléphone de l'accueil").await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let device: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(device["name"], "Téléphone de l'accueil");
    let device_token = device["token"].as_str().unwrap();
    assert!(device_token.starts_with("pnd_"));
    assert_eq!(sync_status(&app, device_token).await, StatusCode::OK);

    let nameless = activate(&mut visitor, "  ").await;
    assert_eq!(nameless.status, StatusCode::UNPROCESSABLE_ENTITY);
    let long = "x".repeat(101);
    assert_eq!(
        activate(&mut visitor, &long).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let token = visitor.get("/lieu/").await.csrf_token();
    let no_name = visitor
        .post("/lieu/appareils/activer", &[("csrf_token", &token)])
        .await;
    assert_eq!(no_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("devices").await, 1);
}

#[tokio::test]
async fn bad_addresses_of_the_venue_pages_are_refused_plainly() {
    let app = spawn_app().await;
    fixture(&app).await;
    let mut venue = Visitor::login(&app, VENUE).await;
    for (path, status) in [
        ("/lieu/ateliers?avant=abc", StatusCode::BAD_REQUEST),
        ("/lieu/ateliers?avant=-5", StatusCode::OK),
        ("/lieu/releves/abc/csv", StatusCode::NOT_FOUND),
        ("/lieu/releves/999999/pdf", StatusCode::NOT_FOUND),
        ("/lieu/nulle-part", StatusCode::NOT_FOUND),
    ] {
        let answer = venue.get(path).await;
        assert_eq!(answer.status, status, "{path}");
        assert!(
            answer.headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
    }
    let token = venue.get("/lieu/appareils").await.csrf_token();
    let answer = venue
        .post("/lieu/appareils/abc/retirer", &[("csrf_token", &token)])
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_scan_pages_are_the_venues_only() {
    let app = spawn_app().await;
    fixture(&app).await;
    let mut issuer = Visitor::login(&app, "prescripteur@demo.passnum.test").await;
    for path in [
        "/lieu/",
        "/lieu/ateliers",
        "/lieu/appareils",
        "/lieu/releves",
    ] {
        assert_eq!(issuer.get(path).await.status, 403, "{path}");
    }
    let mut nobody = Visitor::new(&app);
    let page = nobody.get("/lieu/ateliers").await;
    assert_eq!(page.status, 303);
    assert!(page.location().starts_with("/connexion"));
}

#[tokio::test]
async fn every_post_form_of_the_venue_pages_carries_the_session_token() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    redeemed(&app, &f).await;
    let mut visitor = Visitor::login(&app, VENUE).await;
    activate(&mut visitor, "Tablette").await;
    for path in [
        "/lieu/",
        "/lieu/ateliers",
        "/lieu/appareils",
        "/lieu/facturation",
    ] {
        let page = visitor.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        let token = page.csrf_token();
        let forms: Vec<&str> = page
            .body
            .split("<form")
            .skip(1)
            .filter(|form| form.contains("method=\"post\""))
            .collect();
        // The logout form, and the page's own.
        assert!(forms.len() >= 2, "{path} shows its form");
        for form in forms {
            let form = form.split("</form>").next().unwrap();
            assert!(
                form.contains(&format!("name=\"csrf_token\" value=\"{token}\"")),
                "a form of {path} lacks the token: {form}"
            );
        }
    }
}

#[tokio::test]
async fn a_venue_revokes_its_own_device_and_not_another_venues() {
    let app = spawn_app().await;
    fixture(&app).await;
    let mut venue = Visitor::login(&app, VENUE).await;
    let device: Value =
        serde_json::from_str(&activate(&mut venue, "Téléphone perdu").await.body).unwrap();
    let (id, token) = (
        device["id"].as_i64().unwrap(),
        device["token"].as_str().unwrap(),
    );
    let list = venue.get("/lieu/appareils").await;
    assert!(list.body.contains("Téléphone perdu") && list.body.contains("Actif"));

    let mut other = Visitor::login(&app, OTHER_VENUE).await;
    assert!(!other
        .get("/lieu/appareils")
        .await
        .body
        .contains("Téléphone perdu"));
    let refused = other
        .submit(
            "/lieu/appareils",
            &format!("/lieu/appareils/{id}/retirer"),
            &[],
        )
        .await;
    assert_eq!(refused.status, 404);
    assert_eq!(sync_status(&app, token).await, StatusCode::OK);

    let done = venue
        .submit(
            "/lieu/appareils",
            &format!("/lieu/appareils/{id}/retirer"),
            &[],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), "/lieu/appareils");
    assert_eq!(sync_status(&app, token).await, StatusCode::UNAUTHORIZED);
    assert!(venue
        .get("/lieu/appareils")
        .await
        .body
        .contains("Retiré le"));
}

#[tokio::test]
async fn a_venue_cancels_its_own_redemption_with_a_reason_and_not_another_venues() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let id = redeemed(&app, &f).await;
    let action = format!("/lieu/ateliers/{id}/annuler");
    let cancelled = || async {
        app.count(&format!(
            "redemptions WHERE id = {id} AND cancelled_at IS NOT NULL"
        ))
        .await
    };

    let mut other = Visitor::login(&app, OTHER_VENUE).await;
    assert!(!other.get("/lieu/ateliers").await.body.contains(&action));
    let refused = other
        .submit("/lieu/ateliers", &action, &[("reason", "pas à nous")])
        .await;
    assert_eq!(refused.status, 404);
    assert_eq!(cancelled().await, 0);

    let mut venue = Visitor::login(&app, VENUE).await;
    let list = venue.get("/lieu/ateliers").await;
    assert!(list.body.contains(&action), "the cancel form is offered");
    assert!(list
        .body
        .contains("Faire ses démarches administratives en ligne"));
    let blank = venue
        .submit("/lieu/ateliers", &action, &[("reason", " ")])
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        blank.body.contains("n&#39;a pas été annulé") || blank.body.contains("n'a pas été annulé")
    );
    assert_eq!(cancelled().await, 0);

    let done = venue
        .submit("/lieu/ateliers", &action, &[("reason", "Erreur de coupon")])
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), format!("/lieu/ateliers?annule={id}"));
    assert_eq!(cancelled().await, 1);
    let after = venue.get(done.location()).await;
    assert!(after.body.contains("Annulé le"));
    assert!(!after.body.contains(&action), "no second cancel form");
    let again = venue
        .submit("/lieu/ateliers", &action, &[("reason", "encore")])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_venue_downloads_exactly_its_signed_extract_and_no_other() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    redeemed(&app, &f).await;
    let statement: Value = crate::statements::close(&app, &f, passnum::domain::paris::today())
        .await
        .json()
        .await
        .unwrap();
    let id = statement["id"].as_i64().unwrap();
    let signed = app
        .with_token(
            Method::GET,
            &format!("/api/v1/statements/{id}/csv"),
            &f.tokens[&Role::Venue],
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let mut venue = Visitor::login(&app, VENUE).await;
    let list = venue.get("/lieu/releves").await;
    let extract = &statement["venues"][0];
    assert!(list.body.contains(extract["sha256"].as_str().unwrap()));
    assert!(list.body.contains(&format!("/lieu/releves/{id}/csv")));
    let download = app
        .client
        .get(app.url(&format!("/lieu/releves/{id}/csv")))
        .header(
            "cookie",
            format!("passnum_session={}", venue.cookies["passnum_session"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(download.bytes().await.unwrap(), signed);

    let pdf = app
        .client
        .get(app.url(&format!("/lieu/releves/{id}/pdf")))
        .header(
            "cookie",
            format!("passnum_session={}", venue.cookies["passnum_session"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()[CONTENT_TYPE], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));

    let mut other = Visitor::login(&app, OTHER_VENUE).await;
    assert!(!other
        .get("/lieu/releves")
        .await
        .body
        .contains(&format!("/lieu/releves/{id}/csv")));
    for format in ["csv", "pdf"] {
        assert_eq!(
            other
                .get(&format!("/lieu/releves/{id}/{format}"))
                .await
                .status,
            404
        );
    }
}

#[tokio::test]
async fn the_service_worker_caches_files_that_exist() {
    let app = spawn_app().await;
    fixture(&app).await;
    let mut venue = Visitor::login(&app, VENUE).await;
    let worker = venue.get("/lieu/sw.js").await;
    assert_eq!(worker.status, 200);
    assert!(worker.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let assets: Vec<String> = {
        let line = worker
            .body
            .lines()
            .find(|l| l.starts_with("const ASSETS = "))
            .expect("the list of cached files");
        serde_json::from_str(
            line.trim_start_matches("const ASSETS = ")
                .trim_end_matches(';'),
        )
        .unwrap()
    };
    assert!(assets.contains(&"/static/vendor/zxing-wasm/zxing_reader.wasm".to_owned()));
    assert!(assets.contains(&"/static/scan/page.js".to_owned()));
    for asset in &assets {
        assert_eq!(venue.get(asset).await.status, 200, "{asset}");
    }
    // Every file of the scan page is cached, or it would not open offline.
    for entry in std::fs::read_dir("static/scan").unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "sw.js" {
            let url = format!("/static/scan/{name}");
            assert!(assets.contains(&url), "{url} is not cached");
        }
    }
    let page = venue.get("/lieu/").await;
    for script in ["scan/page.js", "scan/scan.css", "scan/manifest.webmanifest"] {
        assert!(
            page.body.contains(&format!("/static/{script}?v=")),
            "{script}"
        );
        assert!(
            assets.contains(&format!("/static/{script}")),
            "{script} is cached"
        );
    }
}

#[tokio::test]
async fn the_venues_workshops_are_listed_newest_first_fifty_a_page() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let book = issue_book(&app, &f, 10).await;
        for voucher in book["vouchers"].as_array().unwrap() {
            let res = redeem(
                &app,
                &f.tokens[&Role::Venue],
                voucher["code"].as_str().unwrap(),
            )
            .await;
            assert_eq!(res.status(), 201);
            ids.push(res.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
        }
    }
    // Each workshop, cancellable yet, carries its cancel form (the page shows no internal id).
    let shown = |body: &str| -> Vec<i64> {
        body.split("action=\"/lieu/ateliers/")
            .skip(1)
            .map(|rest| rest.split('/').next().unwrap().parse().unwrap())
            .collect()
    };
    let mut venue = Visitor::login(&app, VENUE).await;
    let first = venue.get("/lieu/ateliers").await;
    let newest: Vec<i64> = ids.iter().rev().take(50).copied().collect();
    assert_eq!(shown(&first.body), newest);
    let oldest = newest.last().unwrap();
    assert!(first
        .body
        .contains(&format!("/lieu/ateliers?avant={oldest}")));
    let second = venue.get(&format!("/lieu/ateliers?avant={oldest}")).await;
    let rest: Vec<i64> = ids.iter().rev().skip(50).copied().collect();
    assert_eq!(shown(&second.body), rest);
    assert!(
        !second.body.contains("?avant="),
        "the last page links no further"
    );
    // Another venue sees none of them.
    let mut other = Visitor::login(&app, OTHER_VENUE).await;
    assert!(shown(&other.get("/lieu/ateliers").await.body).is_empty());
}

#[tokio::test]
async fn a_venue_fills_in_its_invoicing_details_then_downloads_its_invoice_and_sees_it_paid() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    redeemed(&app, &f).await;
    let statement: Value = crate::statements::close(&app, &f, passnum::domain::paris::today())
        .await
        .json()
        .await
        .unwrap();
    let id = statement["id"].as_i64().unwrap();
    let mut venue = Visitor::login(&app, VENUE).await;

    // Without details the page says what to fill in, and offers no invoice yet.
    let list = venue.get("/lieu/releves").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("Vos factures attendent vos coordonnées de facturation"),
        "{}",
        list.body
    );
    for item in [
        "la raison sociale",
        "l&#39;IBAN du compte à payer",
        "le régime de TVA",
    ] {
        assert!(
            list.body.contains(item) || list.body.contains(&item.replace("&#39;", "'")),
            "{item}"
        );
    }
    assert!(
        list.body.contains("Pass numérique Alsace (démo)"),
        "the programme is named"
    );
    assert!(
        list.body.contains("Collectivité"),
        "the funder is named: {}",
        list.body
    );
    assert!(list.body.contains("En attente de paiement"));
    assert!(!list.body.contains(&format!("/lieu/releves/{id}/facture")));
    let download = venue.get(&format!("/lieu/releves/{id}/facture")).await;
    assert_eq!(download.status, 303);
    assert_eq!(download.location(), "/lieu/facturation");

    // A wrong IBAN comes back in French, tied to its field; nothing is stored.
    let form = venue.get("/lieu/facturation").await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("value=\"67100\""),
        "pre-filled from the venue: {}",
        form.body
    );
    let fields = [
        ("legal_name", "Association Les Clés du numérique"),
        ("address", "3 rue des Tanneurs"),
        ("postcode", "67000"),
        ("city", "Strasbourg"),
        ("vat_regime", "exempt"),
        (
            "vat_exemption_reason",
            "TVA non applicable, art. 261-7-1° b du CGI",
        ),
        ("vat_number", ""),
        ("vat_rate", ""),
        ("iban", "FR76 3000 6000 0112 3456 7890 188"),
        ("bic", ""),
    ];
    let refused = venue
        .submit("/lieu/facturation", "/lieu/facturation", &fields)
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("Cet IBAN n&#39;est pas valide")
            || refused.body.contains("Cet IBAN n'est pas valide"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("id=\"iban-erreur\""));
    assert_eq!(app.count("venue_invoicing").await, 0);
    let mut fields = fields.to_vec();
    fields[8] = ("iban", "FR76 3000 6000 0112 3456 7890 189");
    let saved = venue
        .submit("/lieu/facturation", "/lieu/facturation", &fields)
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert!(venue
        .get("/lieu/facturation?enregistre=1")
        .await
        .body
        .contains("sont enregistrées"));

    let list = venue.get("/lieu/releves").await;
    assert!(!list.body.contains("Vos factures attendent"));
    assert!(list.body.contains(&format!("/lieu/releves/{id}/facture")));
    let pdf = app
        .client
        .get(app.url(&format!("/lieu/releves/{id}/facture")))
        .header(
            "cookie",
            format!("passnum_session={}", venue.cookies["passnum_session"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()[CONTENT_TYPE], "application/pdf");
    assert!(pdf.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("facture-PN-000001.pdf"));
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-1.7"));

    // Paid: the page says when, and by which transfer.
    let venue_id = statement["venues"][0]["venue_organisation_id"].clone();
    let res = app
        .with_token(Method::POST, &format!("/api/v1/statements/{id}/payments"), &f.tokens[&Role::Funder])
        .json(&serde_json::json!({"venue_organisation_id": venue_id, "amount_cents": statement["venues"][0]["total_cents"], "paid_on": passnum::domain::paris::today().to_string(), "reference": "VIR-2026-0099"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let list = venue.get("/lieu/releves").await;
    assert!(list.body.contains("VIR-2026-0099"));
    assert!(list.body.contains("Payé"));
    assert!(list.body.contains("facture (Factur-X) n° PN-000001"));
    // Another venue gets neither the invoice nor the form's contents.
    let mut other = Visitor::login(&app, OTHER_VENUE).await;
    assert_eq!(
        other
            .get(&format!("/lieu/releves/{id}/facture"))
            .await
            .status,
        404
    );
    assert!(!other
        .get("/lieu/facturation")
        .await
        .body
        .contains("Les Clés du numérique"));
}
