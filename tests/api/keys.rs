//! The key ring, the JWK Set, and the voucher CLI.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use chrono::NaiveDate;
use passnum::auth::Role;
use passnum::keys::{KeyError, KeyRing, Purpose};
use passnum::state::{AppState, StartupError};
use passnum::voucher::{self, VoucherBody};

use crate::helpers::{fixture, new_database, spawn_app, test_config};

fn body(kid: u8, voucher_id: u64) -> VoucherBody {
    VoucherBody {
        kid,
        voucher_id,
        program_id: 42,
        expires_on: NaiveDate::from_ymd_opt(2027, 6, 30).unwrap(),
        position: 3,
        book_size: 10,
    }
}

async fn sign_with(ring: &KeyRing, voucher_id: u64) -> String {
    let (kid, key) = ring.signer(Purpose::Voucher).await.unwrap();
    body(kid, voucher_id).sign(&key).unwrap().to_text()
}

async fn verifies(ring: &KeyRing, text: &str) -> Result<(), voucher::VoucherError> {
    let parsed = voucher::SignedVoucher::parse(text)?;
    let key = ring
        .verifying_key(Purpose::Voucher, parsed.body().kid)
        .await
        .unwrap();
    voucher::decode_and_verify(text, |_| key).map(|_| ())
}

async fn jwks(app: &crate::helpers::TestApp) -> Vec<serde_json::Value> {
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status(), 200);
    let set: serde_json::Value = res.json().await.unwrap();
    set["keys"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_jwk_set_publishes_voucher_and_statement_keys_never_login_keys() {
    let app = spawn_app().await;
    let keys = jwks(&app).await;
    let mut purposes: Vec<&str> = keys
        .iter()
        .map(|k| k["purpose"].as_str().unwrap())
        .collect();
    purposes.sort();
    assert_eq!(purposes, ["statement", "voucher"]);
    for key in &keys {
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["status"], "active");
        assert_eq!(
            key["x"].as_str().unwrap().len(),
            43,
            "32 bytes, base64url without padding"
        );
        key["kid"].as_str().unwrap().parse::<u8>().unwrap();
    }
    // The login key exists, but only the service knows it.
    assert!(app.state.keys.signer(Purpose::Login).await.is_ok());
}

#[tokio::test]
async fn rotation_retires_the_old_key_which_still_verifies_until_withdrawn() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let ring = &app.state.keys;
    // A real book, so the old key has vouchers that can still be redeemed.
    let book: serde_json::Value = app
        .with_token(reqwest::Method::POST, "/api/v1/books", &f.tokens[&Role::Issuer])
        .json(&serde_json::json!({"program_id": f.program_id, "size": 5, "beneficiary": {"reference": "K-1", "postcode": "67000"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old = book["vouchers"][0]["code"].as_str().unwrap().to_owned();
    let old_kid = voucher::SignedVoucher::parse(&old).unwrap().body().kid;

    let middle_kid = ring.rotate(Purpose::Voucher).await.unwrap();
    let new_kid = ring.rotate(Purpose::Voucher).await.unwrap();
    assert!(old_kid < middle_kid && middle_kid < new_kid);
    let new = sign_with(ring, 1002).await;
    assert_eq!(
        voucher::SignedVoucher::parse(&new).unwrap().body().kid,
        new_kid
    );
    verifies(ring, &old)
        .await
        .expect("a retired key still verifies");
    verifies(ring, &new).await.unwrap();

    let keys = jwks(&app).await;
    let status = |kid: u8| {
        keys.iter()
            .find(|k| k["kid"].as_str() == Some(kid.to_string().as_str()))
            .map(|k| k["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        status(old_kid).as_deref(),
        Some("retired"),
        "its vouchers can still be redeemed"
    );
    assert_eq!(
        status(middle_kid),
        None,
        "it signed nothing that is still valid"
    );
    assert_eq!(status(new_kid).as_deref(), Some("active"));

    ring.withdraw(old_kid, "laptop stolen").await.unwrap();
    assert_eq!(
        verifies(ring, &old).await,
        Err(voucher::VoucherError::UnknownKey(old_kid))
    );
    verifies(ring, &new).await.unwrap();
    assert!(jwks(&app)
        .await
        .iter()
        .all(|k| k["kid"].as_str() != Some(old_kid.to_string().as_str())));

    // Statement keys are never withdrawn: old statements must stay provable.
    let (statement_kid, _) = ring.signer(Purpose::Statement).await.unwrap();
    assert!(matches!(
        ring.withdraw(statement_kid, "no").await,
        Err(KeyError::NotWithdrawable(_))
    ));
    assert!(matches!(
        ring.withdraw(250, "no").await,
        Err(KeyError::UnknownKid(250))
    ));
}

#[tokio::test]
async fn two_instances_starting_together_agree_on_one_key_each_verifying_the_other() {
    let database_url = new_database().await;
    let first = test_config(&database_url);
    let mut second = test_config(&database_url);
    second.keys_dir = first.keys_dir.clone(); // the same files, deployed to both
    let (a, b) = tokio::join!(
        AppState::prepare(first, &database_url),
        AppState::prepare(second, &database_url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());

    let (kid_a, _) = a.keys.signer(Purpose::Voucher).await.unwrap();
    let (kid_b, _) = b.keys.signer(Purpose::Voucher).await.unwrap();
    assert_eq!(kid_a, kid_b, "one active voucher key");
    let all = a.keys.all_keys().await.unwrap();
    assert_eq!(
        all.len(),
        Purpose::ALL.len(),
        "one key per purpose: {all:?}"
    );

    let from_a = sign_with(&a.keys, 7).await;
    let from_b = sign_with(&b.keys, 8).await;
    verifies(&b.keys, &from_a).await.unwrap();
    verifies(&a.keys, &from_b).await.unwrap();
}

#[tokio::test]
async fn an_instance_without_the_active_private_key_refuses_to_start() {
    let database_url = new_database().await;
    let first = test_config(&database_url);
    AppState::prepare(first, &database_url).await.unwrap();

    // Another instance, given an empty keys directory.
    let err = AppState::prepare(test_config(&database_url), &database_url)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StartupError::Keys(KeyError::MissingPrivateKey { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("copy the keys directory"), "{err}");
}

#[tokio::test]
async fn a_private_key_readable_by_others_refuses_to_start() {
    let database_url = new_database().await;
    let config = test_config(&database_url);
    let dir = config.keys_dir.clone();
    AppState::prepare(config, &database_url).await.unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::set_permissions(
            entry.unwrap().path(),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let mut again = test_config(&database_url);
    again.keys_dir = dir;
    let err = AppState::prepare(again, &database_url).await.err().unwrap();
    assert!(
        matches!(err, StartupError::Keys(KeyError::PrivateKeyExposed { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn production_never_generates_keys() {
    let database_url = new_database().await;
    let mut config = test_config(&database_url);
    config.environment = passnum::config::Environment::Production;
    let err = AppState::prepare(config, &database_url)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StartupError::Keys(KeyError::NoActiveKey(_))),
        "{err}"
    );
    assert!(err.to_string().contains("passnum keys generate"), "{err}");
}

#[tokio::test]
async fn the_cli_decodes_a_voucher_and_checks_it_against_the_ring() {
    let app = spawn_app().await;
    let text = sign_with(&app.state.keys, 123_456_789).await;
    let run = |text: &str| {
        Command::new(env!("CARGO_BIN_EXE_passnum"))
            .args(["voucher", "decode", text])
            .env(
                "DATABASE_URL",
                app.state.config.database_url.as_deref().unwrap(),
            )
            .env("PASSNUM_KEYS_DIR", &app.state.config.keys_dir)
            .output()
            .unwrap()
    };
    let out = run(&format!("  {}\r\n", text.to_lowercase()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("voucher_id   123456789"), "{stdout}");
    assert!(stdout.contains("position     3 / 10"), "{stdout}");
    assert!(stdout.contains("expires_on   2027-06-30"), "{stdout}");
    assert!(
        stdout.contains("signature    yes, by active key"),
        "{stdout}"
    );

    // One flipped symbol: the signature no longer holds.
    let mut forged: Vec<char> = text.chars().collect();
    forged[20] = if forged[20] == 'A' { 'B' } else { 'A' };
    let out = run(&forged.into_iter().collect::<String>());
    assert!(!out.status.success());
}

/// The independent verifier (tests/independent, written from the format page
/// alone) accepts the vouchers the service issues, given only the JWK Set.
#[tokio::test]
async fn an_independent_verifier_accepts_issued_vouchers_from_the_jwk_set_alone() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let book: serde_json::Value = app
        .with_token(reqwest::Method::POST, "/api/v1/books", &f.tokens[&Role::Issuer])
        .json(&serde_json::json!({"program_id": f.program_id, "size": 10, "beneficiary": {"reference": "IV-1", "postcode": "68000"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes: Vec<String> = book["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent/verify.py");
    let jwks = app.url("/.well-known/jwks.json");
    let mut args = vec![script.to_owned(), "voucher".into(), "--jwks".into(), jwks];
    args.extend(codes.iter().cloned());
    let out = tokio::process::Command::new("python3")
        .args(&args)
        .output()
        .await
        .expect("python3 runs (./scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for v in book["vouchers"].as_array().unwrap() {
        assert!(
            stdout.contains(v["voucher_id"].as_str().unwrap()),
            "{stdout}"
        );
    }

    // A forged one (a flipped symbol) is refused by the same verifier.
    let mut forged: Vec<char> = codes[0].chars().collect();
    forged[30] = if forged[30] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let out = tokio::process::Command::new("python3")
        .args([
            script,
            "voucher",
            "--jwks",
            &app.url("/.well-known/jwks.json"),
            &forged,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
