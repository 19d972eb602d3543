//! Offline scanners: devices, sync, batches and conflicts.

use chrono::{Duration, Utc};
use passnum::auth::Role;
use passnum::domain::paris;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{expect_problem, fixture, login_token, spawn_app, TestApp};
use crate::redemptions::{issue_book, redeem};

async fn register_device(app: &TestApp, token: &str) -> (i64, String) {
    let res = app
        .with_token(Method::POST, "/api/v1/devices", token)
        .json(&json!({"name": "Tablette de l'accueil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let device: Value = res.json().await.unwrap();
    assert!(device["token"].as_str().unwrap().starts_with("pnd_"));
    (
        device["id"].as_i64().unwrap(),
        device["token"].as_str().unwrap().to_owned(),
    )
}

fn scan(nonce: &str, code: &str, scanned_at: chrono::DateTime<Utc>) -> Value {
    json!({"nonce": nonce, "code": code, "scanned_at": scanned_at.to_rfc3339(),
           "workshop": {"theme": "email", "held_on": scanned_at.with_timezone(&paris::DEFAULT_TIME_ZONE).date_naive().to_string(), "duration_minutes": 60}})
}

async fn upload(app: &TestApp, token: &str, items: Vec<Value>) -> Vec<Value> {
    let res = app
        .with_token(Method::POST, "/api/v1/redemptions/batch", token)
        .json(&json!({"items": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["results"]
        .as_array()
        .unwrap()
        .clone()
}

fn outcome_of<'a>(results: &'a [Value], nonce: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["nonce"] == nonce)
        .unwrap_or_else(|| panic!("no result for {nonce}"))
}

async fn sync(app: &TestApp, token: &str, since: Option<&str>) -> Value {
    let path = match since {
        Some(c) => format!("/api/v1/sync?since={c}"),
        None => "/api/v1/sync".to_owned(),
    };
    let res = app
        .with_token(Method::GET, &path, token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Syncs from `since` until `done` holds on the changes gathered (bounded):
/// a change shows once every transaction older than it has finished, so a
/// busy cluster may hand it over one sync later.
async fn sync_until(
    app: &TestApp,
    token: &str,
    since: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    const KEYS: [&str; 5] = [
        "revoked_voucher_ids",
        "redeemed_voucher_ids",
        "reopened_voucher_ids",
        "withdrawn_kids",
        "closed_program_ids",
    ];
    let mut merged = json!({"cursor": since});
    for key in KEYS {
        merged[key] = json!([]);
    }
    for _ in 0..50 {
        let next = sync(app, token, merged["cursor"].as_str()).await;
        for key in KEYS {
            let more = next[key].as_array().unwrap().clone();
            merged[key].as_array_mut().unwrap().extend(more);
        }
        merged["cursor"] = next["cursor"].clone();
        if done(&merged) {
            return merged;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the expected changes never came: {merged}");
}

fn ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_device_token_works_only_for_its_venue_and_its_four_endpoints() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (device_id, device) = register_device(&app, &f.tokens[&Role::Venue]).await;
    let book = issue_book(&app, &f, 5).await;
    let code = book["vouchers"][0]["code"].as_str().unwrap();

    let checked = app
        .with_token(Method::POST, "/api/v1/vouchers/check", &device)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 200);
    assert_eq!(redeem(&app, &device, code).await.status(), 201);
    assert_eq!(
        app.with_token(Method::GET, "/api/v1/sync", &device)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let results = upload(
        &app,
        &device,
        vec![scan(
            "n1",
            book["vouchers"][1]["code"].as_str().unwrap(),
            Utc::now(),
        )],
    )
    .await;
    assert_eq!(results[0]["outcome"], "redeemed");
    // Both redemptions are the device's venue's.
    let lieu = f.org_ids["lieu@demo.passnum.test"];
    assert_eq!(app.count(&format!("redemptions WHERE venue_organisation_id = {lieu} AND redeemed_by_device_id = {device_id}")).await, 2);

    for (method, path) in [
        (Method::GET, "/api/v1/me"),
        (Method::GET, "/api/v1/redemptions"),
        (Method::GET, "/api/v1/themes"),
        (Method::GET, "/api/v1/devices"),
        (Method::GET, "/api/v1/organisations?kind=venue"),
    ] {
        let res = app.with_token(method, path, &device).send().await.unwrap();
        expect_problem(res, 403, "forbidden").await;
    }

    // Revoked: refused at once, everywhere.
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/devices/{device_id}/revoke"),
            &f.tokens[&Role::Venue],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expect_problem(
        app.with_token(Method::GET, "/api/v1/sync", &device)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_problem(
        redeem(&app, &device, book["vouchers"][2]["code"].as_str().unwrap()).await,
        401,
        "unauthorized",
    )
    .await;

    // Another venue cannot revoke it; the operator sees and revokes any.
    let (other_id, _) = register_device(&app, &f.tokens[&Role::Venue]).await;
    let lieu2 = login_token(&app, "lieu2@demo.passnum.test").await;
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/devices/{other_id}/revoke"),
            &lieu2,
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not-found").await;
    let all: Value = app
        .with_token(Method::GET, "/api/v1/devices", &f.tokens[&Role::Operator])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let res = app
        .with_token(
            Method::POST,
            &format!("/api/v1/devices/{other_id}/revoke"),
            &f.tokens[&Role::Operator],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_same_batch_sent_twice_stores_once() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (_, device) = register_device(&app, &f.tokens[&Role::Venue]).await;
    let book = issue_book(&app, &f, 10).await;
    let at = Utc::now() - Duration::hours(3);
    let items: Vec<Value> = (0..10)
        .map(|i| {
            scan(
                &format!("scan-{i}"),
                book["vouchers"][i]["code"].as_str().unwrap(),
                at,
            )
        })
        .collect();
    let first = upload(&app, &device, items.clone()).await;
    assert!(
        first.iter().all(|r| r["outcome"] == "redeemed"),
        "{first:?}"
    );
    let stored = app.count("redemptions").await;
    let second = upload(&app, &device, items).await;
    assert!(
        second.iter().all(|r| r["outcome"] == "duplicate"),
        "{second:?}"
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["redemption_id"], b["redemption_id"]);
    }
    assert_eq!(app.count("redemptions").await, stored);
    // The scan time is the redemption's time.
    let first_id = first[0]["redemption_id"].as_i64().unwrap();
    assert_eq!(app.count(&format!("redemptions WHERE id = {first_id} AND abs(extract(epoch from redeemed_at - now())) > 3 * 3600 - 60")).await, 1);
}

#[tokio::test]
async fn two_venues_scanning_one_voucher_give_one_redemption_and_one_conflict() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let lieu2 = login_token(&app, "lieu2@demo.passnum.test").await;
    let book = issue_book(&app, &f, 5).await;
    let code = |i: usize| book["vouchers"][i]["code"].as_str().unwrap().to_owned();
    let at = Utc::now() - Duration::hours(1);
    let a = upload(
        &app,
        &f.tokens[&Role::Venue],
        vec![scan("a1", &code(0), at), scan("a2", &code(1), at)],
    )
    .await;
    let b = upload(
        &app,
        &lieu2,
        vec![scan("b1", &code(0), at), scan("b2", &code(1), at)],
    )
    .await;
    assert!(a.iter().all(|r| r["outcome"] == "redeemed"));
    assert!(b.iter().all(|r| r["outcome"] == "conflict"), "{b:?}");

    let funder = &f.tokens[&Role::Funder];
    let conflicts: Value = app
        .with_token(Method::GET, "/api/v1/conflicts", funder)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conflicts = conflicts["items"].as_array().unwrap().clone();
    assert_eq!(conflicts.len(), 2);
    let other = app
        .with_token(
            Method::GET,
            "/api/v1/conflicts",
            &f.other_tokens[&Role::Funder],
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(other["items"].as_array().unwrap().is_empty());

    let resolve = |id: &Value, decision: &str| {
        app.with_token(
            Method::POST,
            &format!("/api/v1/conflicts/{id}/resolve"),
            funder,
        )
        .json(&json!({"decision": decision, "reason": "les deux ateliers ont eu lieu"}))
        .send()
    };
    let before = app.count("redemptions").await;
    assert_eq!(
        resolve(&conflicts[0]["id"], "pay").await.unwrap().status(),
        200
    );
    assert_eq!(
        resolve(&conflicts[1]["id"], "reject")
            .await
            .unwrap()
            .status(),
        200
    );
    // Paid at most once, whatever happens.
    expect_problem(
        resolve(&conflicts[0]["id"], "pay").await.unwrap(),
        409,
        "conflict",
    )
    .await;
    expect_problem(
        resolve(&conflicts[1]["id"], "pay").await.unwrap(),
        409,
        "conflict",
    )
    .await;
    assert_eq!(app.count("redemptions").await, before + 1);
    assert_eq!(
        app.count(&format!(
            "redemptions WHERE conflict_id = {}",
            conflicts[0]["id"]
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "redemptions WHERE conflict_id = {}",
            conflicts[1]["id"]
        ))
        .await,
        0
    );
    // On the statement, the paid conflict's line is marked: its coupon is paid twice on purpose.
    let statement: Value = crate::statements::close(&app, &f, passnum::domain::paris::today())
        .await
        .json()
        .await
        .unwrap();
    let text = crate::statements::pdf_text(&app, funder, &statement["id"]).await;
    assert_eq!(
        text.matches("2e paiement (conflit payé)").count(),
        1,
        "{text}"
    );
    let res = resolve(&conflicts[0]["id"], "maybe").await.unwrap();
    expect_problem(res, 422, "validation-error").await;
}

#[tokio::test]
async fn bad_batches_are_refused_item_by_item_or_whole() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let book = issue_book(&app, &f, 5).await;
    let code = book["vouchers"][0]["code"].as_str().unwrap();
    let results = upload(
        &app,
        venue,
        vec![
            scan("future", code, Utc::now() + Duration::hours(1)),
            scan("old", code, Utc::now() - Duration::days(8)),
            scan("garbled", "PN1:GGW", Utc::now()),
            scan(
                "typed-unknown",
                &passnum::voucher::typed_code::encode(42).unwrap(),
                Utc::now(),
            ),
        ],
    )
    .await;
    for (nonce, problem) in [
        ("future", "validation-error"),
        ("old", "validation-error"),
        ("garbled", "malformed-code"),
        // A typed code carries no signature: online only, whatever it names.
        ("typed-unknown", "malformed-code"),
    ] {
        let r = outcome_of(&results, nonce);
        assert_eq!(r["outcome"], "rejected", "{nonce}");
        assert_eq!(r["problem"], problem, "{nonce}");
    }
    assert_eq!(app.count("redemptions").await, 0);

    let too_many: Vec<Value> = (0..501)
        .map(|i| scan(&format!("n{i}"), code, Utc::now()))
        .collect();
    let res = app
        .with_token(Method::POST, "/api/v1/redemptions/batch", venue)
        .json(&json!({"items": too_many}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;
    let huge = vec![b' '; 1024 * 1024 + 1];
    let res = app
        .with_token(Method::POST, "/api/v1/redemptions/batch", venue)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_problem(res, 413, "payload-too-large").await;
    // Between 64 KiB and 1 MiB is fine for a batch.
    let many: Vec<Value> = (0..400)
        .map(|i| scan(&format!("m{i}"), "PN1:GGW", Utc::now()))
        .collect();
    let results = upload(&app, venue, many).await;
    assert_eq!(results.len(), 400);
}

/// A device syncs, scans 200 vouchers offline while some are revoked and
/// some redeemed elsewhere, and uploads: every outcome is what the rules say.
#[tokio::test]
async fn an_offline_day_ends_with_exactly_the_outcomes_the_rules_give() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (_, device) = register_device(&app, &f.tokens[&Role::Venue]).await;
    let lieu2 = login_token(&app, "lieu2@demo.passnum.test").await;
    let mut books = Vec::new();
    for _ in 0..20 {
        books.push(issue_book(&app, &f, 10).await);
    }
    let start = sync(&app, &device, None).await;
    assert!(start["revoked_voucher_ids"].as_array().unwrap().is_empty());

    // The device goes offline and scans everything over the morning.
    let scanned_at = |i: usize| Utc::now() - Duration::minutes(200 - i as i64);
    let code = |b: usize, v: usize| books[b]["vouchers"][v]["code"].as_str().unwrap().to_owned();
    let voucher_id = |b: usize, v: usize| {
        books[b]["vouchers"][v]["voucher_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Meanwhile, online: books 0 and 1 are revoked now (after every scan but
    // those we date later), and venue 2 redeems the vouchers of book 2.
    for b in [0, 1] {
        app.with_token(
            Method::POST,
            &format!("/api/v1/books/{}/revoke", books[b]["id"]),
            &f.tokens[&Role::Issuer],
        )
        .json(&json!({"reason": "perdu"}))
        .send()
        .await
        .unwrap();
    }
    for v in 0..10 {
        assert_eq!(redeem(&app, &lieu2, &code(2, v)).await.status(), 201);
    }
    let mut items = Vec::new();
    for b in 0..20 {
        for v in 0..10 {
            let i = b * 10 + v;
            // Book 1's scans happen after its revocation: refused. Book 0's
            // were made before it: honoured.
            let at = if b == 1 {
                Utc::now() + Duration::seconds(1)
            } else {
                scanned_at(i)
            };
            items.push(scan(&format!("s{i}"), &code(b, v), at));
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let results = upload(&app, &device, items).await;
    assert_eq!(results.len(), 200);
    for b in 0..20 {
        for v in 0..10 {
            let r = outcome_of(&results, &format!("s{}", b * 10 + v));
            let expected = match b {
                1 => "rejected",
                2 => "conflict",
                _ => "redeemed",
            };
            assert_eq!(r["outcome"], expected, "book {b} voucher {v}: {r}");
            if b == 1 {
                assert_eq!(r["problem"], "voucher-revoked");
            }
        }
    }
    assert_eq!(app.count("redemptions").await, 10 + 180);
    assert_eq!(app.count("conflicts").await, 10);

    // The next sync tells the device what happened since.
    let after = sync_until(&app, &device, start["cursor"].as_str().unwrap(), |m| {
        m["revoked_voucher_ids"].as_array().unwrap().len() >= 20
            && m["redeemed_voucher_ids"].as_array().unwrap().len() >= 190
    })
    .await;
    let revoked = ids(&after["revoked_voucher_ids"]);
    let expected_revoked: Vec<String> = {
        let mut v: Vec<String> = (0..2)
            .flat_map(|b| (0..10).map(move |v| (b, v)))
            .map(|(b, v)| voucher_id(b, v))
            .collect();
        v.sort();
        v
    };
    assert_eq!(revoked, expected_revoked);
    assert_eq!(after["redeemed_voucher_ids"].as_array().unwrap().len(), 190);
    // …each once, and nothing new after that.
    let quiet = sync(&app, &device, after["cursor"].as_str()).await;
    assert!(quiet["redeemed_voucher_ids"].as_array().unwrap().is_empty());
    assert!(quiet["revoked_voucher_ids"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn sync_reports_reopened_vouchers_withdrawn_keys_and_closed_programmes() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let venue = &f.tokens[&Role::Venue];
    let book = issue_book(&app, &f, 5).await;
    let receipt: Value = redeem(&app, venue, book["vouchers"][0]["code"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let start = sync(&app, venue, None).await;
    assert_eq!(
        ids(&start["redeemed_voucher_ids"]),
        [book["vouchers"][0]["voucher_id"].as_str().unwrap()]
    );

    app.with_token(
        Method::POST,
        &format!("/api/v1/redemptions/{}/cancel", receipt["id"]),
        venue,
    )
    .json(&json!({"reason": "erreur"}))
    .send()
    .await
    .unwrap();
    let kid = passnum::voucher::SignedVoucher::parse(book["vouchers"][0]["code"].as_str().unwrap())
        .unwrap()
        .body()
        .kid;
    app.state
        .keys
        .rotate(passnum::keys::Purpose::Voucher)
        .await
        .unwrap();
    app.state.keys.withdraw(kid, "compromise").await.unwrap();
    app.with_token(
        Method::POST,
        &format!("/api/v1/programs/{}/close", f.program_id),
        &f.tokens[&Role::Funder],
    )
    .send()
    .await
    .unwrap();

    let after = sync_until(&app, venue, start["cursor"].as_str().unwrap(), |m| {
        !m["reopened_voucher_ids"].as_array().unwrap().is_empty()
            && !m["withdrawn_kids"].as_array().unwrap().is_empty()
            && !m["closed_program_ids"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        ids(&after["reopened_voucher_ids"]),
        [book["vouchers"][0]["voucher_id"].as_str().unwrap()]
    );
    assert_eq!(after["withdrawn_kids"], json!([kid.to_string()]));
    assert_eq!(after["closed_program_ids"], json!([f.program_id]));
    // Another département's venue does not hear of this programme's vouchers.
    let res = app
        .with_token(Method::GET, "/api/v1/sync?since=abc", venue)
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation-error").await;
}
