//! The beneficiary's own page behind a secret link: what it shows, what it
//! never shows, what kills it, its rate limit, and the link on the cover.

use passnum::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{expect_problem, fixture, spawn_app, Fixture, TestApp};
use crate::printing::qr_codes_in;
use crate::redemptions::{issue_book, redeem};

/// The path of a page address (`http://host/c/SECRET` → `/c/SECRET`): the
/// test server listens on its own port, not on the configured public URL.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    format!("/{}", rest.split_once('/').map_or("", |(_, path)| path))
}

async fn page(app: &TestApp, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let res = app.get(&path_of(url)).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

async fn post(app: &TestApp, f: &Fixture, path: &str, body: Value) -> reqwest::Response {
    app.with_token(Method::POST, path, &f.tokens[&Role::Issuer])
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_page_shows_the_coupons_and_nothing_personal() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let url = book["page_url"].as_str().unwrap();
    let secret = url.rsplit('/').next().unwrap();
    assert_eq!(secret.len(), 26, "{url}");

    let (status, headers, html) = page(&app, url).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"fr\"><head>"),
        "{html}"
    );
    assert!(html.contains("<title>Vos coupons — Pass numérique</title>"));
    assert!(html.contains("Votre pass numérique"));
    assert!(html.contains("Il vous reste"));
    for voucher in book["vouchers"].as_array().unwrap() {
        assert!(html.contains(voucher["typed_code"].as_str().unwrap()));
    }
    assert_eq!(html.matches("<svg").count(), 5, "one QR code a coupon");
    // Nothing personal: not the reference, not the postcode, not the office.
    for personal in ["R-7", "67000", "Centre médico-social"] {
        assert!(!html.contains(personal), "{personal} is on the page");
    }
    // Self-contained, no script, never indexed, no referrer.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"));
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "private, no-cache");
    assert!(headers["x-robots-tag"]
        .to_str()
        .unwrap()
        .contains("noindex"));
    // The long path serves the same page; the download is the same page as a file.
    let long = format!("/carnet/{secret}");
    assert_eq!(app.get(&long).await.status(), 200);
    let saved = app.get(&format!("{long}?enregistrer=1")).await;
    assert!(saved.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));

    // Only the secret's hash is stored.
    let bytes: Vec<u8> = {
        let mut value: u128 = 0;
        for c in secret.chars() {
            let d = "0123456789ABCDEFGHJKMNPQRSTVWXYZ".find(c).unwrap() as u128;
            value = (value << 5) | d;
        }
        value.to_be_bytes().to_vec()
    };
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        app.count(&format!(
            "book_links WHERE book_id = {} AND secret_sha256 = '\\x{digest}'::bytea AND made_for = 'issue'",
            book["id"]
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn a_used_coupon_shows_its_date_and_leaves_the_others() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let used = book["vouchers"][1]["code"].as_str().unwrap();
    let res = redeem(&app, &f.tokens[&Role::Venue], used).await;
    assert_eq!(res.status(), 201);
    let (status, _, html) = page(&app, book["page_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(html.contains("Ateliers déjà faits"), "{html}");
    assert!(html.contains("Atelier 2 / 5 : utilisé le "), "{html}");
    assert!(html.contains("Il vous reste"));
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(!html.contains(book["vouchers"][1]["typed_code"].as_str().unwrap()));
}

#[tokio::test]
async fn revoking_or_replacing_the_book_closes_its_page() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let revoked = issue_book(&app, &f, 5).await;
    let res = post(
        &app,
        &f,
        &format!("/api/v1/books/{}/revoke", revoked["id"]),
        json!({"reason": "remis par erreur"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let (status, _, html) = page(&app, revoked["page_url"].as_str().unwrap()).await;
    assert_eq!(status, 410);
    assert!(html.contains("Ce carnet n'est plus valable"), "{html}");
    assert!(!html.contains(revoked["vouchers"][0]["typed_code"].as_str().unwrap()));
    // A revoked book gets no new link.
    let res = post(
        &app,
        &f,
        &format!("/api/v1/books/{}/page-link", revoked["id"]),
        json!({}),
    )
    .await;
    expect_problem(res, 409, "conflict").await;

    let lost = issue_book(&app, &f, 5).await;
    let res = post(
        &app,
        &f,
        &format!("/api/v1/books/{}/replace", lost["id"]),
        json!({"reason": "perdu"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let new: Value = res.json().await.unwrap();
    assert_eq!(page(&app, lost["page_url"].as_str().unwrap()).await.0, 410);
    let (status, _, html) = page(&app, new["page_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(html.contains(new["vouchers"][0]["typed_code"].as_str().unwrap()));
}

#[tokio::test]
async fn renewing_the_link_kills_every_earlier_one() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let first = book["page_url"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/books/{}/page-link", book["id"]);
    let res = post(&app, &f, &path, json!({})).await;
    assert_eq!(res.status(), 201);
    let renewed: Value = res.json().await.unwrap();
    assert_eq!(renewed["killed_links"], 1);
    let second = renewed["page_url"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(page(&app, &first).await.0, 410);
    assert_eq!(page(&app, second).await.0, 200);
    // Another issuer's book is not found; a venue may not.
    let res = app
        .with_token(Method::POST, &path, &f.other_tokens[&Role::Issuer])
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not-found").await;
    let res = app
        .with_token(Method::POST, &path, &f.tokens[&Role::Venue])
        .send()
        .await
        .unwrap();
    expect_problem(res, 403, "forbidden").await;
}

#[tokio::test]
async fn the_printed_cover_holds_a_fresh_link_that_scans_to_the_page() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let mut links = Vec::new();
    for _ in 0..2 {
        let res = app
            .with_token(
                Method::GET,
                &format!("/api/v1/books/{}/pdf", book["id"]),
                &f.tokens[&Role::Issuer],
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let pdf = res.bytes().await.unwrap();
        let link = qr_codes_in(&pdf)
            .into_iter()
            .find(|code| code.contains("/c/"))
            .expect("the cover's QR code");
        links.push(link);
    }
    // Each printing has its own link; all of them lead to the page.
    assert_ne!(links[0], links[1]);
    for link in &links {
        let (status, _, html) = page(&app, link).await;
        assert_eq!(status, 200, "{link}");
        assert!(html.contains(book["vouchers"][4]["typed_code"].as_str().unwrap()));
    }
    assert_eq!(
        app.count(&format!(
            "book_links WHERE book_id = {} AND made_for = 'print'",
            book["id"]
        ))
        .await,
        2
    );
    // A revoked book's PDF carries no link (its page is closed).
    post(
        &app,
        &f,
        &format!("/api/v1/books/{}/revoke", book["id"]),
        json!({"reason": "perdu"}),
    )
    .await;
    let pdf = app
        .with_token(
            Method::GET,
            &format!("/api/v1/books/{}/pdf", book["id"]),
            &f.tokens[&Role::Issuer],
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!qr_codes_in(&pdf).iter().any(|c| c.contains("/c/")));
}

#[tokio::test]
async fn guessing_is_rate_limited_and_unknown_secrets_are_a_plain_page() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    for bad in [
        "/c/00000000000000000000000000",
        "/carnet/pas-un-secret",
        "/c/%00",
    ] {
        let res = app.get(bad).await;
        assert_eq!(res.status(), 404, "{bad}");
        assert!(res.text().await.unwrap().contains("Adresse inconnue"));
    }
    for _ in 3..passnum::domain::carnet::MAX_MISSES {
        assert_eq!(app.get("/c/00000000000000000000000001").await.status(), 404);
    }
    // Past the limit even the right secret waits.
    let res = app.get(&path_of(book["page_url"].as_str().unwrap())).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.text().await.unwrap().contains("Trop de tentatives"));
}
