//! The printed book, its QR codes, its delivery by email, and the purge.

use std::process::Command;

use passnum::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    expect_problem, fixture, new_database, spawn_app, spawn_app_on, test_config, Fixture, TestApp,
};
use crate::redemptions::issue_book;

/// Decodes every QR code of a PDF with real tools: pdftoppm, then zbarimg.
pub fn qr_codes_in(pdf: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("book.pdf");
    std::fs::write(&file, pdf).unwrap();
    let pages = dir.path().join("page");
    let status = Command::new("pdftoppm")
        .args(["-r", "150", "-png"])
        .arg(&file)
        .arg(&pages)
        .status()
        .expect("pdftoppm runs (poppler-utils; ./scripts/test installs it)");
    assert!(status.success());
    let mut codes = Vec::new();
    let mut images: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    images.sort();
    for image in images {
        let out = Command::new("zbarimg")
            .args(["--raw", "-q", "-Sdisable", "-Sqrcode.enable"])
            .arg(&image)
            .output()
            .expect("zbarimg runs (zbar-tools; ./scripts/test installs it)");
        codes.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    codes
}

async fn get_bytes(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.with_token(Method::GET, path, token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_book_pdf_holds_every_voucher_as_a_scannable_qr_code() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 10).await;
    let res = get_bytes(
        &app,
        &format!("/api/v1/books/{}/pdf", book["id"]),
        &f.tokens[&Role::Issuer],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let pdf = res.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // The vouchers, and on the cover the link to the beneficiary's page.
    let (links, mut found): (Vec<String>, Vec<String>) = qr_codes_in(&pdf)
        .into_iter()
        .partition(|code| code.starts_with("http"));
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(links[0].contains("/c/"), "{links:?}");
    let mut expected: Vec<String> = book["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    expected.sort();
    assert_eq!(found, expected);

    // Another issuer's book is not found.
    let res = get_bytes(
        &app,
        &format!("/api/v1/books/{}/pdf", book["id"]),
        &f.other_tokens[&Role::Issuer],
    )
    .await;
    expect_problem(res, 404, "not-found").await;
}

#[tokio::test]
async fn each_voucher_has_its_qr_code_as_svg_and_png() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let voucher = &book["vouchers"][2];
    let id = voucher["voucher_id"].as_str().unwrap();
    let svg = get_bytes(
        &app,
        &format!("/api/v1/vouchers/{id}/qr.svg"),
        &f.tokens[&Role::Issuer],
    )
    .await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("viewBox=\"0 0 57 57\""));
    let png = get_bytes(
        &app,
        &format!("/api/v1/vouchers/{id}/qr.png"),
        &f.tokens[&Role::Issuer],
    )
    .await;
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.png");
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new("zbarimg")
        .args(["--raw", "-q", "-Sdisable", "-Sqrcode.enable"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'),
        voucher["code"].as_str().unwrap()
    );
    // At least 8 pixels per module: 57 modules with the quiet zone.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    assert!(width >= 57 * 8, "{width}");

    for path in [
        format!("/api/v1/vouchers/{id}/qr.png"),
        "/api/v1/vouchers/123/qr.svg".to_owned(),
        "/api/v1/vouchers/abc/qr.svg".to_owned(),
    ] {
        let res = get_bytes(&app, &path, &f.other_tokens[&Role::Issuer]).await;
        expect_problem(res, 404, "not-found").await;
    }
}

/// A real SMTP server (aiosmtpd) that stores what it receives in a maildir.
pub struct SmtpServer {
    child: std::process::Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("mail"))
            .spawn()
            .expect("python3 -m aiosmtpd (./scripts/test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return SmtpServer {
                    child,
                    port,
                    maildir,
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the SMTP server did not start");
    }

    pub fn messages(&self) -> Vec<Value> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/read_maildir.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(self.maildir.path().join("mail"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn app_with_smtp(url: &str) -> (TestApp, Fixture) {
    let mut config = test_config(&new_database().await);
    config.smtp_url = Some(url.to_owned());
    let app = spawn_app_on(config).await;
    let f = fixture(&app).await;
    (app, f)
}

#[tokio::test]
async fn a_book_is_emailed_as_a_pdf_and_the_address_forgotten() {
    let smtp = SmtpServer::start();
    let (app, f) = app_with_smtp(&format!("smtp://127.0.0.1:{}", smtp.port)).await;
    let res = app
        .with_token(Method::POST, "/api/v1/books", &f.tokens[&Role::Issuer])
        .json(&json!({"program_id": f.program_id, "size": 5,
                      "beneficiary": {"reference": "M-1", "postcode": "67000", "email": "Beneficiaire@Example.org"}}))
        .send()
        .await
        .unwrap();
    let book: Value = res.json().await.unwrap();
    let send = app
        .with_token(
            Method::POST,
            &format!("/api/v1/books/{}/send", book["id"]),
            &f.tokens[&Role::Issuer],
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 202);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["to"], "beneficiaire@example.org");
    assert_eq!(message["subject"], "Votre pass numérique");
    assert!(message["text"].as_str().unwrap().contains("pass numérique"));
    let attachment = &message["attachments"][0];
    assert_eq!(attachment["content_type"], "application/pdf");
    use base64::Engine;
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(attachment["base64"].as_str().unwrap())
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // Five coupons, and the link to the beneficiary's page, also in the text.
    let codes = qr_codes_in(&pdf);
    assert_eq!(codes.len(), 6, "{codes:?}");
    let link = codes
        .iter()
        .find(|c| c.starts_with("http"))
        .expect("the page link");
    assert!(
        message["text"].as_str().unwrap().contains(link.as_str()),
        "{message}"
    );

    // The address is gone; sending again needs one.
    assert_eq!(
        app.count(&format!(
            "books WHERE id = {} AND beneficiary_email IS NULL",
            book["id"]
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "book_sends WHERE book_id = {} AND outcome = 'sent'",
            book["id"]
        ))
        .await,
        1
    );
    let again = app
        .with_token(
            Method::POST,
            &format!("/api/v1/books/{}/send", book["id"]),
            &f.tokens[&Role::Issuer],
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(again, 422, "validation-error").await;
}

#[tokio::test]
async fn a_failing_mail_server_leaves_the_book_issued_and_the_send_retryable() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (app, f) = app_with_smtp(&format!("smtp://127.0.0.1:{port}")).await;
    let book = issue_book(&app, &f, 5).await;
    let path = format!("/api/v1/books/{}/send", book["id"]);
    let res = app
        .with_token(Method::POST, &path, &f.tokens[&Role::Issuer])
        .json(&json!({"email": "quelqu.un@example.org"}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 503, "unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("still issued"),
        "{problem}"
    );
    assert_eq!(
        app.count(&format!(
            "book_sends WHERE book_id = {} AND outcome = 'failed'",
            book["id"]
        ))
        .await,
        1
    );
    let got = app
        .with_token(
            Method::GET,
            &format!("/api/v1/books/{}", book["id"]),
            &f.tokens[&Role::Issuer],
        )
        .send()
        .await
        .unwrap();
    let got: Value = got.json().await.unwrap();
    assert!(got["revoked_at"].is_null());
    assert!(got["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "valid"));
}

#[tokio::test]
async fn sending_without_a_mail_server_says_so() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book = issue_book(&app, &f, 5).await;
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/books/{}/send", book["id"]),
            &f.tokens[&Role::Issuer],
        )
        .json(&json!({"email": "x@example.org"}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(res, 503, "unavailable").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("PASSNUM_SMTP_URL"),
        "{problem}"
    );
}

#[tokio::test]
async fn purge_forgets_beneficiaries_of_long_expired_books_only() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let old = issue_book(&app, &f, 5).await;
    let recent = issue_book(&app, &f, 5).await;
    app.sql(&format!("UPDATE books SET issued_on = current_date - 800, expires_on = current_date - 400 WHERE id = {}", old["id"])).await;
    let out = Command::new(env!("CARGO_BIN_EXE_passnum"))
        .arg("purge")
        .env(
            "DATABASE_URL",
            app.state.config.database_url.as_deref().unwrap(),
        )
        .env("PASSNUM_KEYS_DIR", &app.state.config.keys_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 book(s)"));
    assert_eq!(app.count(&format!("books WHERE id = {} AND beneficiary_reference IS NULL AND beneficiary_postcode IS NULL", old["id"])).await, 1);
    assert_eq!(
        app.count(&format!(
            "books WHERE id = {} AND beneficiary_reference = 'R-7'",
            recent["id"]
        ))
        .await,
        1
    );
    // The vouchers stay.
    assert_eq!(
        app.count(&format!("vouchers WHERE book_id = {}", old["id"]))
            .await,
        5
    );
}
