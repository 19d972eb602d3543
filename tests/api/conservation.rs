//! Property test (issue 9): random sequences of issue, redeem, cancel,
//! reverse, revoke, replace, close-statement, pay and day-passes, played
//! against the real server and compared with a model after every step.
//!
//! After each step: the stats' voucher figures are the model's and conserve
//! every voucher (`issued = redeemed + expired + revoked + outstanding`, in
//! count and cents, `issued` cents equal to `committed_cents`); no redemption
//! is on two closed statements; statement totals are their lines plus their
//! carried balances; every payment is its extract's total. Right after a
//! close, no payable redemption is left off every statement.
//!
//! A day passes by moving every recorded date and time of the database one
//! day back (with triggers off for that one transaction, as closed
//! statements refuse changes): the server's clock stays real. A voucher
//! issued before that no longer agrees with its moved expiry date, so the
//! server answers `not-found` for it; the model expects exactly that.

use std::collections::HashSet;

use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use passnum::auth::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{fixture, login_token, spawn_app, TestApp};
use crate::redemptions::workshop;

const FACE: i64 = 1500;
/// Vouchers are valid on the day of issue and the two days after.
const VALIDITY_DAYS: i64 = 2;

#[derive(Debug, Clone)]
enum Op {
    Issue { ten: bool },
    Redeem { voucher: usize, venue: usize },
    Cancel { redemption: usize },
    Reverse { redemption: usize },
    Revoke { book: usize },
    Replace { book: usize },
    Close,
    Pay { extract: usize },
    DayPasses,
}

fn op() -> impl Strategy<Value = Op> {
    let pick = 0..1000usize;
    prop_oneof![
        2 => any::<bool>().prop_map(|ten| Op::Issue { ten }),
        6 => (pick.clone(), 0..2usize).prop_map(|(voucher, venue)| Op::Redeem { voucher, venue }),
        1 => pick.clone().prop_map(|redemption| Op::Cancel { redemption }),
        1 => pick.clone().prop_map(|redemption| Op::Reverse { redemption }),
        1 => pick.clone().prop_map(|book| Op::Revoke { book }),
        1 => pick.clone().prop_map(|book| Op::Replace { book }),
        2 => Just(Op::Close),
        2 => pick.prop_map(|extract| Op::Pay { extract }),
        1 => Just(Op::DayPasses),
    ]
}

#[test]
fn random_operations_conserve_vouchers_and_put_each_redemption_on_one_statement() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 10..45), |ops| {
        runtime.block_on(play(ops));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[derive(Debug)]
struct Voucher {
    code: String,
    book: usize,
    position: i64,
    /// The last valid day, counted in day-passes from the start.
    last_day: i64,
    /// A live (uncancelled) redemption, by index.
    redeemed_by: Option<usize>,
    /// Issued on an earlier day: its signed expiry no longer agrees with the moved one.
    moved: bool,
    /// Replaced by a voucher of a replacement book: no longer counted.
    replaced: bool,
}

#[derive(Debug)]
struct Book {
    id: i64,
    vouchers: Vec<usize>,
    revoked: bool,
    replaced: bool,
}

#[derive(Debug)]
struct Redemption {
    id: i64,
    venue: usize,
    day: i64,
    cancelled: bool,
    reversed: bool,
    on_statement: bool,
}

/// One venue's extract of a closed statement.
#[derive(Debug)]
struct Extract {
    statement: i64,
    venue_id: i64,
    total: i64,
    paid: bool,
}

struct World {
    app: TestApp,
    program: i64,
    funder: String,
    issuer: String,
    venues: [(String, i64); 2],
    day: i64,
    closed_today: bool,
    vouchers: Vec<Voucher>,
    books: Vec<Book>,
    redemptions: Vec<Redemption>,
    extracts: Vec<Extract>,
}

async fn play(ops: Vec<Op>) {
    let mut w = World::new().await;
    for (step, op) in ops.iter().enumerate() {
        w.apply(op).await;
        w.check(&format!("after step {step}, {op:?}")).await;
    }
}

impl World {
    async fn new() -> World {
        let app = spawn_app().await;
        let f = fixture(&app).await;
        let funder = f.tokens[&Role::Funder].clone();
        let program: Value = post(
            &app,
            &funder,
            "/api/v1/programs",
            json!({
            "name": "Propriétés", "face_value_cents": FACE, "budget_cents": FACE * 2000,
            "issue_until": "2099-12-31", "voucher_validity_days": VALIDITY_DAYS,
            "territory": {"departements": ["67", "68"]}}),
        )
        .await
        .1;
        let program = program["id"].as_i64().unwrap();
        let (status, _) = post(&app, &funder, &format!("/api/v1/programs/{program}/allocations"),
            json!({"issuer_organisation_id": f.org_ids["prescripteur@demo.passnum.test"], "vouchers": 2000})).await;
        assert_eq!(status, 201);
        let lieu2 = login_token(&app, "lieu2@demo.passnum.test").await;
        World {
            program,
            issuer: f.tokens[&Role::Issuer].clone(),
            venues: [
                (
                    f.tokens[&Role::Venue].clone(),
                    f.org_ids["lieu@demo.passnum.test"],
                ),
                (lieu2, f.org_ids["lieu2@demo.passnum.test"]),
            ],
            funder,
            app,
            day: 0,
            closed_today: false,
            vouchers: Vec::new(),
            books: Vec::new(),
            redemptions: Vec::new(),
            extracts: Vec::new(),
        }
    }

    async fn apply(&mut self, op: &Op) {
        match *op {
            Op::Issue { ten } => {
                let size = if ten { 10 } else { 5 };
                let (status, book) = post(
                    &self.app,
                    &self.issuer,
                    "/api/v1/books",
                    json!({
                    "program_id": self.program, "size": size,
                    "beneficiary": {"reference": "P-1", "postcode": "67000"}}),
                )
                .await;
                assert_eq!(status, 201, "{book}");
                self.add_book(&book, None);
            }
            Op::Redeem { voucher, venue } => {
                let Some(v) = pick(&self.vouchers, voucher) else {
                    return;
                };
                let expected: Vec<&str> = self.refusals(v);
                let (token, _) = &self.venues[venue];
                let (status, body) = post(
                    &self.app,
                    token,
                    "/api/v1/redemptions",
                    json!({"code": self.vouchers[v].code, "workshop": workshop()}),
                )
                .await;
                if expected.is_empty() {
                    assert_eq!(status, 201, "redeem {v}: {body}");
                    self.redemptions.push(Redemption {
                        id: body["id"].as_i64().unwrap(),
                        venue,
                        day: self.day,
                        cancelled: false,
                        reversed: false,
                        on_statement: false,
                    });
                    self.vouchers[v].redeemed_by = Some(self.redemptions.len() - 1);
                } else {
                    let slug = body["type"]
                        .as_str()
                        .unwrap_or("")
                        .trim_start_matches("/problems/");
                    assert!(
                        expected.contains(&slug),
                        "redeem {v}: {status} {body}, expected one of {expected:?}"
                    );
                }
            }
            Op::Cancel { redemption } => {
                let Some(r) = pick(&self.redemptions, redemption) else {
                    return;
                };
                let red = &self.redemptions[r];
                let allowed =
                    !red.cancelled && !red.reversed && !red.on_statement && red.day == self.day;
                let token = self.venues[red.venue].0.clone();
                let (status, body) = post(
                    &self.app,
                    &token,
                    &format!("/api/v1/redemptions/{}/cancel", red.id),
                    json!({"reason": "erreur de saisie"}),
                )
                .await;
                assert_eq!(
                    status == 200,
                    allowed,
                    "cancel {red:?} on day {}: {status} {body}",
                    self.day
                );
                if allowed {
                    self.redemptions[r].cancelled = true;
                    if let Some(v) = self.vouchers.iter_mut().find(|v| v.redeemed_by == Some(r)) {
                        v.redeemed_by = None;
                    }
                }
            }
            Op::Reverse { redemption } => {
                let Some(r) = pick(&self.redemptions, redemption) else {
                    return;
                };
                let red = &self.redemptions[r];
                let allowed = !red.cancelled && !red.reversed;
                let (status, body) = post(
                    &self.app,
                    &self.funder,
                    &format!("/api/v1/redemptions/{}/reverse", red.id),
                    json!({"reason": "atelier non tenu"}),
                )
                .await;
                assert_eq!(status == 200, allowed, "reverse {red:?}: {status} {body}");
                if allowed {
                    self.redemptions[r].reversed = true;
                }
            }
            Op::Revoke { book } => {
                let Some(b) = pick(&self.books, book) else {
                    return;
                };
                let allowed = !self.books[b].revoked;
                let (status, body) = post(
                    &self.app,
                    &self.issuer,
                    &format!("/api/v1/books/{}/revoke", self.books[b].id),
                    json!({"reason": "perdu"}),
                )
                .await;
                assert_eq!(
                    status == 200,
                    allowed,
                    "revoke {:?}: {status} {body}",
                    self.books[b]
                );
                self.books[b].revoked = true;
            }
            Op::Replace { book } => {
                let Some(b) = pick(&self.books, book) else {
                    return;
                };
                let (status, body) = post(
                    &self.app,
                    &self.issuer,
                    &format!("/api/v1/books/{}/replace", self.books[b].id),
                    json!({"reason": "perdu"}),
                )
                .await;
                let vouchers = &self.books[b].vouchers;
                let open = vouchers
                    .iter()
                    .any(|&v| self.vouchers[v].redeemed_by.is_none());
                let expired = vouchers
                    .iter()
                    .any(|&v| self.day > self.vouchers[v].last_day);
                let refused = match (expired, self.books[b].replaced, open) {
                    (true, _, _) => Some(410),
                    (false, true, _) | (false, false, false) => Some(409),
                    _ => None,
                };
                if let Some(refused) = refused {
                    assert_eq!(status, refused, "replace {:?}: {body}", self.books[b]);
                    return;
                }
                assert_eq!(status, 201, "replace {:?}: {body}", self.books[b]);
                self.books[b].revoked = true;
                self.books[b].replaced = true;
                self.add_book(&body, Some(b));
            }
            Op::Close => {
                let today = passnum::domain::paris::today();
                let (status, body) = post(
                    &self.app,
                    &self.funder,
                    &format!("/api/v1/programs/{}/statements", self.program),
                    json!({"period_end": today.to_string()}),
                )
                .await;
                assert_eq!(status == 201, !self.closed_today, "close: {status} {body}");
                if status != 201 {
                    return;
                }
                self.closed_today = true;
                for r in &mut self.redemptions {
                    if !r.cancelled && !r.reversed {
                        r.on_statement = true;
                    }
                }
                for venue in body["venues"].as_array().expect("venues, even when empty") {
                    self.extracts.push(Extract {
                        statement: body["id"].as_i64().unwrap(),
                        venue_id: venue["venue_organisation_id"].as_i64().unwrap(),
                        total: venue["total_cents"].as_i64().unwrap(),
                        paid: false,
                    });
                }
                assert_eq!(self.count(&format!(
                    "SELECT count(*) AS n FROM redemptions r WHERE program_id = {} AND cancelled_at IS NULL AND reversed_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM statement_lines l WHERE l.redemption_id = r.id AND l.kind = 'redemption')",
                    self.program)).await, 0, "a payable redemption was left off the statement");
            }
            Op::Pay { extract } => {
                let Some(e) = pick(&self.extracts, extract) else {
                    return;
                };
                let x = &self.extracts[e];
                let allowed = x.total > 0 && !x.paid;
                let (status, body) = post(&self.app, &self.funder, &format!("/api/v1/statements/{}/payments", x.statement),
                    json!({"venue_organisation_id": x.venue_id, "amount_cents": x.total.max(1),
                           "paid_on": passnum::domain::paris::today().to_string(), "reference": "VIR-P"})).await;
                assert_eq!(status == 201, allowed, "pay {x:?}: {status} {body}");
                self.extracts[e].paid |= allowed;
            }
            Op::DayPasses => {
                let mut conn = self.app.state.pool.get().await.unwrap();
                conn.batch_execute(DAY_PASSES).await.unwrap();
                self.day += 1;
                self.closed_today = false;
                for v in &mut self.vouchers {
                    v.moved = true;
                }
            }
        }
    }

    /// Records a book's vouchers; a replacement's stand for the old book's.
    fn add_book(&mut self, book: &Value, replaces: Option<usize>) {
        let index = self.books.len();
        let mut vouchers = Vec::new();
        for v in book["vouchers"].as_array().unwrap() {
            let position = v["position"].as_i64().unwrap();
            let last_day = match replaces {
                Some(old) => {
                    let old = self.books[old]
                        .vouchers
                        .iter()
                        .copied()
                        .find(|&o| {
                            self.vouchers[o].position == position && !self.vouchers[o].replaced
                        })
                        .expect("a replacement voucher stands for an old one");
                    self.vouchers[old].replaced = true;
                    self.vouchers[old].last_day
                }
                None => self.day + VALIDITY_DAYS,
            };
            self.vouchers.push(Voucher {
                code: v["code"].as_str().unwrap().to_owned(),
                book: index,
                position,
                last_day,
                redeemed_by: None,
                replaced: false,
                moved: false,
            });
            vouchers.push(self.vouchers.len() - 1);
        }
        self.books.push(Book {
            id: book["id"].as_i64().unwrap(),
            vouchers,
            revoked: false,
            replaced: false,
        });
    }

    /// Why voucher `v` cannot be redeemed now (empty: it can).
    fn refusals(&self, v: usize) -> Vec<&'static str> {
        let voucher = &self.vouchers[v];
        if voucher.moved {
            return vec!["not-found"];
        }
        let mut why = Vec::new();
        if voucher.redeemed_by.is_some() {
            why.push("already-redeemed");
        }
        if self.books[voucher.book].revoked {
            why.push("voucher-revoked");
        }
        if self.day > voucher.last_day {
            why.push("voucher-expired");
        }
        why
    }

    async fn check(&self, when: &str) {
        let stats = get(
            &self.app,
            &self.funder,
            &format!("/api/v1/programs/{}/stats", self.program),
        )
        .await;
        let figure = |state: &str| {
            let f = &stats["vouchers"][state];
            (f["count"].as_i64().unwrap(), f["cents"].as_i64().unwrap())
        };
        let (mut redeemed, mut revoked, mut expired, mut outstanding) = (0, 0, 0, 0);
        for v in self.vouchers.iter().filter(|v| !v.replaced) {
            if v.redeemed_by.is_some() {
                redeemed += 1;
            } else if self.books[v.book].revoked {
                revoked += 1;
            } else if self.day > v.last_day {
                expired += 1;
            } else {
                outstanding += 1;
            }
        }
        let money = |n: i64| (n, n * FACE);
        let issued = redeemed + revoked + expired + outstanding;
        assert_eq!(figure("issued"), money(issued), "{when}: issued in {stats}");
        assert_eq!(
            figure("redeemed"),
            money(redeemed),
            "{when}: redeemed in {stats}"
        );
        assert_eq!(
            figure("revoked"),
            money(revoked),
            "{when}: revoked in {stats}"
        );
        assert_eq!(
            figure("expired"),
            money(expired),
            "{when}: expired in {stats}"
        );
        assert_eq!(
            figure("outstanding"),
            money(outstanding),
            "{when}: outstanding in {stats}"
        );
        let program = get(
            &self.app,
            &self.funder,
            &format!("/api/v1/programs/{}", self.program),
        )
        .await;
        assert_eq!(
            program["committed_cents"].as_i64(),
            Some(issued * FACE),
            "{when}"
        );

        let p = self.program;
        let twice = self.count(&format!(
            "SELECT count(*) AS n FROM (SELECT l.redemption_id FROM statement_lines l JOIN statements s ON s.id = l.statement_id
              WHERE s.program_id = {p} GROUP BY l.redemption_id, l.kind HAVING count(*) > 1) t")).await;
        assert_eq!(twice, 0, "{when}: a redemption on two statements");
        let unbalanced = self.count(&format!(
            "SELECT count(*) AS n FROM statements s WHERE s.program_id = {p} AND s.total_cents <>
               (SELECT coalesce(sum(amount_cents), 0) FROM statement_lines l WHERE l.statement_id = s.id)
             + (SELECT coalesce(sum(amount_cents), 0) FROM statement_carries c WHERE c.statement_id = s.id)")).await;
        assert_eq!(
            unbalanced, 0,
            "{when}: a statement total is not its lines plus its carried balances"
        );
        let wrong_payments = self.count(
            "SELECT count(*) AS n FROM statement_payments p JOIN statement_extracts e USING (statement_id, venue_organisation_id)
              WHERE p.amount_cents <> e.total_cents OR e.total_cents <= 0").await;
        assert_eq!(
            wrong_payments, 0,
            "{when}: a payment is not its extract's total"
        );
        let paid: HashSet<(i64, i64)> = self
            .extracts
            .iter()
            .filter(|e| e.paid)
            .map(|e| (e.statement, e.venue_id))
            .collect();
        assert_eq!(
            self.count("SELECT count(*) AS n FROM statement_payments")
                .await,
            paid.len() as i64,
            "{when}"
        );
    }

    async fn count(&self, query: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.app.state.pool.get().await.unwrap();
        diesel::sql_query(query)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n
    }
}

/// Every recorded date and time one day earlier, closed statements included.
const DAY_PASSES: &str = "
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE redemptions SET redeemed_at = redeemed_at - interval '1 day', held_on = held_on - 1,
    cancelled_at = cancelled_at - interval '1 day', reversed_at = reversed_at - interval '1 day';
UPDATE books SET issued_on = issued_on - 1, expires_on = expires_on - 1,
    created_at = created_at - interval '1 day', revoked_at = revoked_at - interval '1 day';
UPDATE vouchers SET expires_on = expires_on - 1;
UPDATE programs SET created_at = created_at - interval '1 day';
UPDATE statements SET period_start = period_start - 1, period_end = period_end - 1,
    closed_at = closed_at - interval '1 day';
UPDATE statement_payments SET paid_on = paid_on - 1, recorded_at = recorded_at - interval '1 day';
COMMIT;";

fn pick<T>(items: &[T], n: usize) -> Option<usize> {
    (!items.is_empty()).then(|| n % items.len())
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .with_token(Method::POST, path, token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app
        .with_token(Method::GET, path, token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}
