//! Operations run against each other over two instances on one database:
//! the reproductions of "paid twice" and "cancelled yet paid", five rounds
//! each, and the database refusing both by itself.

use chrono::{Duration, Utc};
use passnum::auth::Role;
use passnum::domain::paris;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{fixture, new_database, spawn_app_on, test_config, Fixture, TestApp};

const ROUNDS: usize = 5;

/// Two servers on one database, sharing their key files.
pub async fn two_instances() -> (TestApp, TestApp) {
    let database_url = new_database().await;
    let mut first = test_config(&database_url);
    first.db_pool_size = 12;
    let a = spawn_app_on(first).await;
    let mut second = test_config(&database_url);
    second.keys_dir = a.state.config.keys_dir.clone();
    second.db_pool_size = 12;
    let b = spawn_app_on(second).await;
    (a, b)
}

pub async fn post(app: &TestApp, token: &str, path: impl AsRef<str>, body: Value) -> (u16, Value) {
    let res = app
        .with_token(Method::POST, path.as_ref(), token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A new programme of the demo funder with an allocation of `vouchers` for
/// the demo issuer: each round closes its own statements.
pub async fn new_program(app: &TestApp, f: &Fixture, vouchers: i64) -> i32 {
    let (status, program) = post(
        app,
        &f.tokens[&Role::Funder],
        "/api/v1/programs",
        json!({"name": "Programme de course", "face_value_cents": 2000, "budget_cents": 2000 * vouchers,
               "issue_until": "2099-12-31", "voucher_validity_days": 90,
               "territory": {"departements": ["67", "68"]}}),
    )
    .await;
    assert_eq!(status, 201, "{program}");
    let id = program["id"].as_i64().unwrap() as i32;
    let issuer = f.org_ids["prescripteur@demo.passnum.test"];
    let (status, body) = post(
        app,
        &f.tokens[&Role::Funder],
        &format!("/api/v1/programs/{id}/allocations"),
        json!({"issuer_organisation_id": issuer, "vouchers": vouchers}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    id
}

pub async fn issue(app: &TestApp, f: &Fixture, program_id: i32, size: i64) -> Value {
    let (status, book) = post(
        app,
        &f.tokens[&Role::Issuer],
        "/api/v1/books",
        json!({"program_id": program_id, "size": size, "beneficiary": {"reference": "R-9", "postcode": "67000"}}),
    )
    .await;
    assert_eq!(status, 201, "{book}");
    book
}

fn workshop() -> Value {
    json!({"theme": "email", "held_on": paris::today().to_string(), "duration_minutes": 60})
}

async fn redeem(app: &TestApp, token: &str, code: &str) -> (u16, Value) {
    post(
        app,
        token,
        "/api/v1/redemptions",
        json!({"code": code, "workshop": workshop()}),
    )
    .await
}

fn codes(book: &Value) -> Vec<String> {
    book["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_owned())
        .collect()
}

/// One number from SQL.
pub async fn scalar(app: &TestApp, query: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.pool.get().await.unwrap();
    diesel::sql_query(query)
        .get_result::<N>(&mut conn)
        .await
        .unwrap()
        .n
}

/// Every position with two live redemptions, and every redemption both
/// cancelled and paid on a closed statement: both must be zero.
pub async fn violations(app: &TestApp) -> (i64, i64) {
    let doubles = scalar(
        app,
        "SELECT count(*) AS n FROM (SELECT lineage_id, position FROM redemptions
           WHERE cancelled_at IS NULL AND NOT second_payment
           GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .await;
    let cancelled_yet_paid = scalar(
        app,
        "SELECT count(*) AS n FROM statement_lines l JOIN redemptions r ON r.id = l.redemption_id
          WHERE l.kind = 'redemption' AND r.cancelled_at IS NOT NULL",
    )
    .await;
    (doubles, cancelled_yet_paid)
}

#[tokio::test]
async fn cancellations_racing_a_close_are_either_refused_or_off_the_statement() {
    let (a, b) = two_instances().await;
    let f = fixture(&a).await;
    let venue = &f.tokens[&Role::Venue];
    for round in 0..ROUNDS {
        let program = new_program(&a, &f, 80).await;
        let mut redemptions = Vec::new();
        for _ in 0..8 {
            let book = issue(&a, &f, program, 10).await;
            for code in codes(&book) {
                let (status, receipt) = redeem(&a, venue, &code).await;
                assert_eq!(status, 201, "{receipt}");
                redemptions.push(receipt["id"].as_i64().unwrap());
            }
        }
        let close = async {
            post(
                &b,
                &f.tokens[&Role::Funder],
                &format!("/api/v1/programs/{program}/statements"),
                json!({"period_end": paris::today().to_string()}),
            )
            .await
        };
        let cancels =
            futures_util::future::join_all(redemptions.iter().enumerate().map(|(i, id)| {
                post(
                    if i % 2 == 0 { &a } else { &b },
                    venue,
                    format!("/api/v1/redemptions/{id}/cancel"),
                    json!({"reason": format!("erreur de saisie {i}")}),
                )
            }));
        let ((closed, statement), answers) = tokio::join!(close, cancels);
        assert_eq!(closed, 201, "{statement}");
        let on_statement = statement["total_count"].as_i64().unwrap();
        let cancelled = answers.iter().filter(|(s, _)| *s == 200).count() as i64;
        for (status, body) in &answers {
            assert!(
                *status == 200 || (*status == 409 && body["type"] == "/problems/not-cancellable"),
                "round {round}: {status} {body}"
            );
        }
        assert_eq!(cancelled + on_statement, 80, "round {round}");
        assert_eq!(violations(&a).await, (0, 0), "round {round}");
        // The statement holds exactly the redemptions not cancelled.
        let lines = scalar(
            &a,
            &format!(
                "SELECT count(*) AS n FROM statement_lines WHERE statement_id = {}",
                statement["id"]
            ),
        )
        .await;
        assert_eq!(lines, on_statement, "round {round}");
    }
}

#[tokio::test]
async fn a_book_replaced_while_its_vouchers_are_redeemed_pays_each_position_once() {
    let (a, b) = two_instances().await;
    let f = fixture(&a).await;
    let venue = &f.tokens[&Role::Venue];
    let issuer = &f.tokens[&Role::Issuer];
    for round in 0..ROUNDS {
        let program = new_program(&a, &f, 120).await;
        let mut books = Vec::new();
        for _ in 0..12 {
            books.push(issue(&a, &f, program, 10).await);
        }
        let replaces = futures_util::future::join_all(books.iter().enumerate().map(|(i, book)| {
            post(
                if i % 2 == 0 { &b } else { &a },
                issuer,
                format!("/api/v1/books/{}/replace", book["id"]),
                json!({"reason": "carnet perdu"}),
            )
        }));
        let (first, second) = (&a, &b);
        let redeems = futures_util::future::join_all(books.iter().flat_map(codes).enumerate().map(
            |(i, code)| async move {
                redeem(if i % 2 == 0 { first } else { second }, venue, &code).await
            },
        ));
        let (replaced, _) = tokio::join!(replaces, redeems);
        // Every replacement voucher is then scanned: only positions still
        // unpaid may be paid.
        let mut new_codes = Vec::new();
        for (status, book) in &replaced {
            if *status == 201 {
                new_codes.extend(codes(book));
            } else {
                // Every voucher was redeemed before the replace could run.
                assert_eq!(*status, 409, "round {round}: {book}");
            }
        }
        let second = futures_util::future::join_all(
            new_codes
                .iter()
                .enumerate()
                .map(|(i, code)| redeem(if i % 2 == 0 { &a } else { &b }, venue, code)),
        )
        .await;
        for (status, body) in &second {
            assert_eq!(
                *status, 201,
                "round {round}: a replacement voucher for a free position: {body}"
            );
        }
        assert_eq!(violations(&a).await, (0, 0), "round {round}");
        // No replacement voucher stands for a position that was paid.
        let stale = scalar(
            &a,
            &format!(
                "SELECT count(*) AS n FROM vouchers n JOIN vouchers o ON o.id = n.replaces_voucher_id
                  WHERE n.program_id = {program} AND EXISTS (SELECT 1 FROM redemptions r
                        WHERE r.voucher_id = o.id AND r.cancelled_at IS NULL)"
            ),
        )
        .await;
        assert_eq!(stale, 0, "round {round}");
        let paid = scalar(
            &a,
            &format!("SELECT count(*) AS n FROM redemptions WHERE program_id = {program}"),
        )
        .await;
        assert_eq!(
            paid, 120,
            "round {round}: each of the 120 positions paid once"
        );
    }
}

async fn register_device(app: &TestApp, token: &str) -> String {
    let (status, device) = post(app, token, "/api/v1/devices", json!({"name": "Téléphone"})).await;
    assert_eq!(status, 201, "{device}");
    device["token"].as_str().unwrap().to_owned()
}

fn scan(nonce: &str, code: &str, scanned_at: chrono::DateTime<Utc>) -> Value {
    let day = scanned_at
        .with_timezone(&paris::DEFAULT_TIME_ZONE)
        .date_naive();
    json!({"nonce": nonce, "code": code, "scanned_at": scanned_at.to_rfc3339(),
           "workshop": {"theme": "email", "held_on": day.to_string(), "duration_minutes": 60}})
}

async fn batch(app: &TestApp, device: &str, items: Vec<Value>) -> Vec<Value> {
    let (status, answer) = post(
        app,
        device,
        "/api/v1/redemptions/batch",
        json!({"items": items}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn offline_scans_of_a_replaced_book_are_never_paid_beside_the_replacement() {
    let (a, b) = two_instances().await;
    let f = fixture(&a).await;
    let device = register_device(&a, &f.tokens[&Role::Venue]).await;
    let issuer = &f.tokens[&Role::Issuer];
    for round in 0..ROUNDS {
        let program = new_program(&a, &f, 10).await;
        let old = issue(&a, &f, program, 5).await;
        // The book's creation, as stored: scans are measured against it.
        let created = scalar(
            &a,
            &format!("SELECT (extract(epoch FROM created_at) * 1000)::bigint AS n FROM books WHERE id = {}", old["id"]),
        )
        .await;
        let created = chrono::DateTime::from_timestamp_millis(created).unwrap();
        let (status, new) = post(
            &b,
            issuer,
            &format!("/api/v1/books/{}/replace", old["id"]),
            json!({"reason": "carnet perdu"}),
        )
        .await;
        assert_eq!(status, 201, "{new}");
        let old_codes = codes(&old);
        let new_codes = codes(&new);
        // Offline, the old coupons were scanned: the first one 4.5 minutes
        // before its book existed, the others before the replacement. At the
        // same time the replacement coupons are redeemed online on the other
        // instance.
        let items: Vec<Value> = old_codes
            .iter()
            .enumerate()
            .map(|(i, code)| {
                let at = if i == 0 {
                    created - Duration::seconds(270)
                } else {
                    created + Duration::milliseconds(1)
                };
                scan(&format!("r{round}-{i}"), code, at)
            })
            .collect();
        let online = futures_util::future::join_all(
            new_codes
                .iter()
                .map(|code| redeem(&a, &f.tokens[&Role::Venue], code)),
        );
        let (results, online) = tokio::join!(batch(&b, &device, items), online);
        for (status, body) in &online {
            assert_eq!(*status, 201, "round {round}: {body}");
        }
        let first = results
            .iter()
            .find(|r| r["nonce"] == format!("r{round}-0"))
            .unwrap();
        assert_eq!(first["outcome"], "rejected", "{first}");
        assert_eq!(first["problem"], "validation-error", "{first}");
        for r in results
            .iter()
            .filter(|r| r["nonce"] != format!("r{round}-0"))
        {
            assert_eq!(r["outcome"], "conflict", "round {round}: {r}");
        }
        // The funder cannot pay a replaced coupon whose replacement was used.
        let conflicts = a
            .with_token(
                Method::GET,
                "/api/v1/conflicts?limit=200",
                &f.tokens[&Role::Funder],
            )
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let mine: Vec<&Value> = conflicts["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["program_id"] == program && c["decision"].is_null())
            .collect();
        assert_eq!(mine.len(), 4, "round {round}");
        for c in mine {
            assert_eq!(c["kind"], "replaced");
            let (status, body) = post(
                &b,
                &f.tokens[&Role::Funder],
                &format!("/api/v1/conflicts/{}/resolve", c["id"]),
                json!({"decision": "pay", "reason": "atelier bien tenu"}),
            )
            .await;
            expect_status_problem(status, &body, 409, "conflict");
        }
        assert_eq!(violations(&a).await, (0, 0), "round {round}");
        let paid = scalar(
            &a,
            &format!("SELECT count(*) AS n FROM redemptions WHERE program_id = {program} AND cancelled_at IS NULL"),
        )
        .await;
        assert_eq!(
            paid, 5,
            "round {round}: five positions, five workshops paid"
        );
    }
}

fn expect_status_problem(status: u16, body: &Value, want: u16, slug: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
}

#[tokio::test]
async fn a_replaced_coupon_scanned_offline_before_the_replacement_can_be_paid_once_instead_of_it() {
    let (a, b) = two_instances().await;
    let f = fixture(&a).await;
    let device = register_device(&a, &f.tokens[&Role::Venue]).await;
    let program = new_program(&a, &f, 10).await;
    let old = issue(&a, &f, program, 5).await;
    let scanned_at = Utc::now();
    let (status, new) = post(
        &b,
        &f.tokens[&Role::Issuer],
        &format!("/api/v1/books/{}/replace", old["id"]),
        json!({"reason": "carnet perdu"}),
    )
    .await;
    assert_eq!(status, 201, "{new}");
    let results = batch(&a, &device, vec![scan("x-1", &codes(&old)[0], scanned_at)]).await;
    assert_eq!(results[0]["outcome"], "conflict", "{}", results[0]);
    let conflicts = a
        .with_token(Method::GET, "/api/v1/conflicts", &f.tokens[&Role::Funder])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let id = conflicts["items"][0]["id"].clone();
    let (status, body) = post(
        &b,
        &f.tokens[&Role::Funder],
        &format!("/api/v1/conflicts/{id}/resolve"),
        json!({"decision": "pay", "reason": "atelier tenu avant le remplacement"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The position is paid: its replacement coupon is now used.
    let (status, body) = redeem(&a, &f.tokens[&Role::Venue], &codes(&new)[0]).await;
    expect_status_problem(status, &body, 409, "already-redeemed");
    assert_eq!(violations(&a).await, (0, 0));
}

#[tokio::test]
async fn a_typed_code_in_a_batch_is_rejected_as_unsigned() {
    let (a, b) = two_instances().await;
    let f = fixture(&a).await;
    let device = register_device(&a, &f.tokens[&Role::Venue]).await;
    for round in 0..ROUNDS {
        let program = new_program(&a, &f, 5).await;
        let book = issue(&a, &f, program, 5).await;
        let items: Vec<Value> = book["vouchers"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, v)| {
                scan(
                    &format!("t{round}-{i}"),
                    v["typed_code"].as_str().unwrap(),
                    Utc::now(),
                )
            })
            .collect();
        let results = batch(if round % 2 == 0 { &a } else { &b }, &device, items).await;
        for r in &results {
            assert_eq!(r["outcome"], "rejected", "{r}");
            assert_eq!(r["problem"], "malformed-code", "{r}");
        }
        let stored = scalar(
            &a,
            &format!("SELECT count(*) AS n FROM redemptions WHERE program_id = {program}"),
        )
        .await;
        assert_eq!(stored, 0);
    }
}

/// Runs SQL and returns the error PostgreSQL gave, if any.
async fn sql_error(app: &TestApp, statement: &str) -> Option<String> {
    use diesel_async::RunQueryDsl;
    let mut conn = app.state.pool.get().await.unwrap();
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .err()
        .map(|e| e.to_string())
}

#[tokio::test]
async fn the_database_itself_refuses_a_second_payment_of_a_position_and_a_cancel_once_paid() {
    let (a, _b) = two_instances().await;
    let f = fixture(&a).await;
    let venue = f.org_ids["lieu@demo.passnum.test"];
    let program = new_program(&a, &f, 10).await;
    let old = issue(&a, &f, program, 5).await;
    let (status, receipt) = redeem(&a, &f.tokens[&Role::Venue], &codes(&old)[0]).await;
    assert_eq!(status, 201, "{receipt}");
    let (status, new) = post(
        &a,
        &f.tokens[&Role::Issuer],
        &format!("/api/v1/books/{}/replace", old["id"]),
        json!({"reason": "carnet perdu"}),
    )
    .await;
    assert_eq!(status, 201, "{new}");
    // A second live redemption of the voucher, and of its position through
    // another voucher (the replacement of position 2 after paying the old
    // position 2 by hand): both refused by the unique index.
    let insert = |voucher: &str| {
        format!(
            "INSERT INTO redemptions (voucher_id, program_id, lineage_id, position, venue_organisation_id,
                                      theme, held_on, duration_minutes, face_value_cents)
             SELECT id, program_id, lineage_id, position, {venue}, 'email', current_date, 60, face_value_cents
               FROM vouchers WHERE id = {voucher}"
        )
    };
    let first = old["vouchers"][0]["voucher_id"].as_str().unwrap();
    let e = sql_error(&a, &insert(first)).await.expect("refused");
    assert!(e.contains("redemptions_one_per_position"), "{e}");
    let old_second = old["vouchers"][1]["voucher_id"].as_str().unwrap();
    let new_second = new["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["position"] == 2)
        .unwrap()["voucher_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sql_error(&a, &insert(old_second)).await, None);
    let e = sql_error(&a, &insert(&new_second)).await.expect("refused");
    assert!(e.contains("redemptions_one_per_position"), "{e}");
    // A redemption whose position key is not its voucher's.
    let e = sql_error(
        &a,
        &format!(
            "INSERT INTO redemptions (voucher_id, program_id, lineage_id, position, venue_organisation_id,
                                      theme, held_on, duration_minutes, face_value_cents)
             SELECT id, program_id, lineage_id, 5, {venue}, 'email', current_date, 60, face_value_cents
               FROM vouchers WHERE id = {new_second}"
        ),
    )
    .await
    .expect("refused");
    assert!(e.contains("redemptions_position_of_voucher"), "{e}");

    // Once on a closed statement, a redemption cannot be cancelled, nor
    // changed, nor deleted; its reversal is still allowed.
    let (status, statement) = post(
        &a,
        &f.tokens[&Role::Funder],
        &format!("/api/v1/programs/{program}/statements"),
        json!({"period_end": paris::today().to_string()}),
    )
    .await;
    assert_eq!(status, 201, "{statement}");
    let id = receipt["id"].as_i64().unwrap();
    for statement in [
        format!("UPDATE redemptions SET cancelled_at = now(), cancel_reason = 'x' WHERE id = {id}"),
        format!("UPDATE redemptions SET face_value_cents = 1 WHERE id = {id}"),
    ] {
        let e = sql_error(&a, &statement).await.expect("refused");
        assert!(e.contains("closed statement"), "{e}");
    }
    let e = sql_error(&a, &format!("DELETE FROM redemptions WHERE id = {id}"))
        .await
        .expect("refused");
    assert!(e.contains("never deleted"), "{e}");
    // Lines are written only by the transaction that closes their
    // statement, and a statement pays only live redemptions.
    let other = old["vouchers"][2]["voucher_id"].as_str().unwrap();
    assert_eq!(sql_error(&a, &insert(other)).await, None);
    let cancelled = scalar(
        &a,
        &format!("UPDATE redemptions SET cancelled_at = now(), cancel_reason = 'x' WHERE voucher_id = {other} RETURNING id AS n"),
    )
    .await;
    let e = sql_error(
        &a,
        &format!(
            "INSERT INTO statement_lines (statement_id, redemption_id, kind, amount_cents)
             VALUES ({}, {cancelled}, 'redemption', 2000)",
            statement["id"]
        ),
    )
    .await
    .expect("refused");
    assert!(e.contains("never changes"), "{e}");
    let e = sql_error(
        &a,
        &format!(
            "DO $$ DECLARE s bigint; BEGIN
               INSERT INTO statements (program_id, number, period_start, period_end, closed_by_user_id,
                                       total_count, total_cents, csv, sha256, kid, signature)
               SELECT {program}, 99, current_date, current_date, (SELECT min(id) FROM users), 1, 2000,
                      '\\x00', 'x', (SELECT min(kid) FROM signing_keys), 'x'
               RETURNING id INTO s;
               INSERT INTO statement_lines (statement_id, redemption_id, kind, amount_cents)
               VALUES (s, {cancelled}, 'redemption', 2000);
             END $$"
        ),
    )
    .await
    .expect("refused");
    assert!(e.contains("cannot be on a statement"), "{e}");
    assert_eq!(
        sql_error(
            &a,
            &format!(
                "UPDATE redemptions SET reversed_at = now(), reversed_by_user_id = NULL, reverse_reason = 'litige' WHERE id = {id}"
            )
        )
        .await,
        None
    );
    assert_eq!(violations(&a).await, (0, 0));
}
