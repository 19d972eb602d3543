//! A Jepsen-style history: clients over two `passnum serve` processes on one
//! database run random mixes of every operation that moves money, one
//! instance is killed with SIGKILL and started again mid-run, every request
//! and answer is recorded, and then the final database and every answer are
//! checked against the rules (`checks`).
//!
//! Size and seed come from the environment, so CI runs a short history and
//! `./scripts/histories` a long one with the same code:
//! `PASSNUM_HISTORY_OPERATIONS` (default 1500), `PASSNUM_HISTORY_CLIENTS` (8),
//! `PASSNUM_HISTORY_KILLS` (1), `PASSNUM_HISTORY_SEED` (16).

mod checks;
mod log_check;
mod servers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use passnum::domain::paris;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{new_database, new_keys_dir};
use servers::Server;

/// One request and what became of it. `status` is `None` when no answer
/// came (the instance was killed, or the connection broke).
#[derive(Debug, Clone)]
pub struct Event {
    pub op: Op,
    pub path: String,
    pub request: Value,
    pub status: Option<u16>,
    pub answer: Value,
    /// For a batch: the voucher and scan time of each item, by nonce.
    pub items: Vec<(String, i64, DateTime<Utc>)>,
    /// The venue (its index in `VENUES`) that made a venue's request.
    pub venue: Option<usize>,
    /// The `Idempotency-Key` of a redemption.
    pub key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Program,
    Issue,
    Redeem,
    Batch,
    Cancel,
    Reverse,
    Replace,
    Revoke,
    Close,
    Pay,
    Resolve,
    Read,
}

pub const VENUES: [&str; 2] = ["lieu@demo.passnum.test", "lieu2@demo.passnum.test"];

#[derive(Clone)]
struct Voucher {
    id: i64,
    code: String,
    typed: String,
}

#[derive(Clone)]
struct Book {
    id: i64,
    program: i32,
    created_at: DateTime<Utc>,
    vouchers: Vec<Voucher>,
}

/// What the clients know, shared: the objects created so far.
#[derive(Default)]
struct World {
    programs: Vec<i32>,
    books: Vec<Book>,
    /// Redemption ids with the venue that made them and their programme.
    redemptions: Vec<(i64, usize, i32)>,
    statements: Vec<i64>,
    nonces: Vec<(usize, String)>,
}

struct Tokens {
    funder: String,
    issuer: String,
    venues: [String; 2],
}

struct Run {
    servers: Vec<Arc<tokio::sync::Mutex<Server>>>,
    issuer: i64,
    ports: Vec<u16>,
    client: reqwest::Client,
    tokens: Tokens,
    world: Mutex<World>,
    events: Mutex<Vec<Event>>,
    done: AtomicUsize,
}

impl Run {
    fn url(&self, instance: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[instance])
    }

    /// Sends one request and records it with its answer, if one came.
    async fn send(
        &self,
        op: Op,
        instance: usize,
        token: &str,
        path: &str,
        body: Option<Value>,
        extra: impl FnOnce(&mut Event),
    ) -> (Option<u16>, Value) {
        let mut event = Event {
            op,
            path: path.to_owned(),
            request: Value::Null,
            status: None,
            answer: Value::Null,
            items: Vec::new(),
            venue: None,
            key: None,
        };
        extra(&mut event);
        let mut request = match &body {
            Some(body) => self.client.post(self.url(instance, path)).json(body),
            None => self.client.get(self.url(instance, path)),
        }
        .bearer_auth(token);
        if let Some(key) = &event.key {
            request = request.header("Idempotency-Key", key);
        }
        let (status, answer) = match request.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                match res.bytes().await {
                    Ok(bytes) => (
                        Some(status),
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    ),
                    Err(_) => (None, Value::Null),
                }
            }
            Err(_) => (None, Value::Null),
        };
        if op != Op::Read {
            event.request = body.unwrap_or(Value::Null);
            event.status = status;
            event.answer = answer.clone();
            self.events.lock().unwrap().push(event);
        }
        (status, answer)
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_over_two_instances_with_a_kill_breaks_no_money_rule() {
    let operations = env_number("PASSNUM_HISTORY_OPERATIONS", 1500);
    let clients = env_number("PASSNUM_HISTORY_CLIENTS", 8);
    let kills = env_number("PASSNUM_HISTORY_KILLS", 1);
    let seed = env_number("PASSNUM_HISTORY_SEED", 16) as u64;

    let database_url = new_database().await;
    let keys = new_keys_dir();
    std::fs::create_dir_all(&keys).unwrap();
    let logs = keys.with_extension("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // The second instance writes online redemptions in groups.
    let first = Server::start(&database_url, &keys, logs.join("a.log"), true, 0).await;
    let second = Server::start(&database_url, &keys, logs.join("b.log"), false, 4).await;
    let issuer = checks::prepare(&database_url).await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let login = |port: u16, email: &'static str| {
        let client = client.clone();
        async move {
            let res = client
                .post(format!("http://127.0.0.1:{port}/api/v1/auth/token"))
                .json(&json!({"email": email, "password": passnum::demo::PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "login of {email}");
            res.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let tokens = Tokens {
        funder: login(first.port, "financeur@demo.passnum.test").await,
        issuer: login(first.port, "prescripteur@demo.passnum.test").await,
        venues: [
            login(second.port, VENUES[0]).await,
            login(second.port, VENUES[1]).await,
        ],
    };
    let run = Arc::new(Run {
        ports: vec![first.port, second.port],
        servers: vec![
            Arc::new(tokio::sync::Mutex::new(first)),
            Arc::new(tokio::sync::Mutex::new(second)),
        ],
        issuer,
        client,
        tokens,
        world: Mutex::default(),
        events: Mutex::default(),
        done: AtomicUsize::new(0),
    });
    for _ in 0..3 {
        new_program(&run, 0).await;
    }

    let started = std::time::Instant::now();
    let kept = logs.join("kept-checkpoint");
    let killer = tokio::spawn(kill_mid_run(run.clone(), operations, kills, kept.clone()));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let run = run.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed * 1000 + c as u64);
                while run.done.fetch_add(1, Ordering::SeqCst) < operations {
                    step(&run, &mut rng, c).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let killed = killer.await.unwrap();
    let elapsed = started.elapsed();

    let events = run.events.lock().unwrap().clone();
    let programs = run.world.lock().unwrap().programs.clone();
    let report = checks::check(&database_url, &events, &programs, |path| {
        let run = run.clone();
        async move {
            run.client
                .get(run.url(1, &path))
                .bearer_auth(&run.tokens.funder)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    })
    .await;
    let (log_summary, log_violations) = log_check::check(&database_url, run.ports[0], &kept).await;
    let mut by_op: HashMap<Op, usize> = HashMap::new();
    for e in &events {
        *by_op.entry(e.op).or_default() += 1;
    }
    let unanswered = events.iter().filter(|e| e.status.is_none()).count();
    eprintln!(
        "history: seed {seed}, {clients} clients, {} requests ({unanswered} unanswered) in {:.1} s, {killed} kill(s) with restart",
        events.len(),
        elapsed.as_secs_f64()
    );
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by_key(|(op, _)| format!("{op:?}"));
    eprintln!("history: requests by operation {ops:?}");
    eprintln!("{}", report.summary());
    eprintln!("{log_summary}");
    assert!(
        log_violations.is_empty(),
        "{} log violation(s):\n{}",
        log_violations.len(),
        log_violations.join("\n")
    );
    assert!(
        report.violations.is_empty(),
        "{} violation(s):\n{}",
        report.violations.len(),
        report.violations.join("\n")
    );
}

/// Kills instance 0 (then 1, alternating) with SIGKILL when a share of the
/// operations is done, and starts it again at once, as a supervisor would.
async fn kill_mid_run(
    run: Arc<Run>,
    operations: usize,
    kills: usize,
    kept: std::path::PathBuf,
) -> usize {
    let mut killed = 0;
    for k in 0..kills {
        let at = operations * (k + 1) / (kills + 1);
        while run.done.load(Ordering::SeqCst) < at {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if k == 0 {
            // The log's checkpoint just before the first kill, as a phone
            // would keep it: the final log must extend it.
            let note = run
                .client
                .get(run.url(1, "/log/checkpoint"))
                .send()
                .await
                .unwrap();
            assert_eq!(note.status(), 200, "a checkpoint before the kill");
            std::fs::write(&kept, note.bytes().await.unwrap()).unwrap();
        }
        let mut server = run.servers[k % 2].lock().await;
        server.kill();
        killed += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart().await;
    }
    killed
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.gen_range(0..items.len())])
}

/// One random operation (some of them several requests at once).
async fn step(run: &Run, rng: &mut StdRng, client: usize) {
    let seq = rng.gen::<u32>();
    let tag = format!("{client}-{seq}");
    let instance = rng.gen_range(0..2);
    match rng.gen_range(0..100) {
        0..=2 => new_program(run, instance).await,
        3..=14 => issue(run, rng, instance, &tag).await,
        15..=44 => redeem(run, rng, instance, &tag).await,
        45..=59 => batch(run, rng, instance, &tag).await,
        60..=67 => cancel(run, rng, instance, &tag).await,
        68..=71 => reverse(run, rng, instance, &tag).await,
        72..=79 => replace_while_redeeming(run, rng, &tag).await,
        80..=83 => revoke(run, rng, instance, &tag).await,
        84..=89 => close_while_cancelling(run, rng, &tag).await,
        90..=94 => pay(run, rng, instance, &tag).await,
        _ => resolve(run, rng, instance, &tag).await,
    }
}

async fn new_program(run: &Run, instance: usize) {
    let (status, program) = run
        .send(
            Op::Program,
            instance,
            &run.tokens.funder,
            "/api/v1/programs",
            Some(
                json!({"name": "Programme de l'historique", "face_value_cents": 2500,
                        "budget_cents": 2500 * 5000, "issue_until": "2099-12-31",
                        "voucher_validity_days": 120, "territory": {"departements": ["67", "68"]}}),
            ),
            |_| {},
        )
        .await;
    if status != Some(201) {
        return;
    }
    let id = program["id"].as_i64().unwrap() as i32;
    let (status, _) = run
        .send(
            Op::Program,
            instance,
            &run.tokens.funder,
            &format!("/api/v1/programs/{id}/allocations"),
            Some(json!({"issuer_organisation_id": run.issuer, "vouchers": 5000})),
            |_| {},
        )
        .await;
    if status == Some(201) {
        run.world.lock().unwrap().programs.push(id);
    }
}

async fn issue(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let Some(program) = pick(rng, &run.world.lock().unwrap().programs).copied() else {
        return;
    };
    let size = if rng.gen_bool(0.5) { 5 } else { 10 };
    let (status, book) = run
        .send(
            Op::Issue,
            instance,
            &run.tokens.issuer,
            "/api/v1/books",
            Some(json!({"program_id": program, "size": size,
                        "beneficiary": {"reference": format!("H-{tag}"), "postcode": "67000"}})),
            |_| {},
        )
        .await;
    if status == Some(201) {
        remember_book(run, program, &book);
    }
}

fn remember_book(run: &Run, program: i32, book: &Value) {
    let vouchers = book["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Voucher {
            id: v["voucher_id"].as_str().unwrap().parse().unwrap(),
            code: v["code"].as_str().unwrap().to_owned(),
            typed: v["typed_code"].as_str().unwrap().to_owned(),
        })
        .collect();
    run.world.lock().unwrap().books.push(Book {
        id: book["id"].as_i64().unwrap(),
        program,
        // The answer came after the book was stored: a little earlier
        // than this is still "before it existed" only by a whisker, so
        // scans meant to predate it are minutes earlier.
        created_at: Utc::now(),
        vouchers,
    });
}

fn workshop_on(at: DateTime<Utc>) -> Value {
    let day = at.with_timezone(&paris::DEFAULT_TIME_ZONE).date_naive();
    json!({"theme": "email", "held_on": day.to_string(), "duration_minutes": 60})
}

fn random_voucher(run: &Run, rng: &mut StdRng) -> Option<(Book, Voucher)> {
    let world = run.world.lock().unwrap();
    let book = pick(rng, &world.books)?.clone();
    let voucher = pick(rng, &book.vouchers)?.clone();
    Some((book, voucher))
}

async fn redeem_one(
    run: &Run,
    instance: usize,
    venue: usize,
    book: &Book,
    code: &str,
    key: String,
) {
    let (status, receipt) = run
        .send(
            Op::Redeem,
            instance,
            &run.tokens.venues[venue],
            "/api/v1/redemptions",
            Some(json!({"code": code, "workshop": workshop_on(Utc::now())})),
            |e| {
                e.venue = Some(venue);
                e.key = Some(key);
            },
        )
        .await;
    if status == Some(201) {
        run.world.lock().unwrap().redemptions.push((
            receipt["id"].as_i64().unwrap(),
            venue,
            book.program,
        ));
    }
}

async fn redeem(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let Some((book, voucher)) = random_voucher(run, rng) else {
        return;
    };
    let code = if rng.gen_bool(0.2) {
        voucher.typed.clone()
    } else {
        voucher.code.clone()
    };
    let venue = rng.gen_range(0..2);
    redeem_one(run, instance, venue, &book, &code, format!("k-{tag}")).await;
}

async fn batch(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let venue = rng.gen_range(0..2);
    // A nonce this venue sent in an earlier batch, to send again.
    let earlier = run
        .world
        .lock()
        .unwrap()
        .nonces
        .iter()
        .rev()
        .find(|(v, _)| *v == venue)
        .map(|(_, n)| n.clone());
    let mut items = Vec::new();
    let mut known = Vec::new();
    for i in 0..rng.gen_range(1..=5) {
        let Some((book, voucher)) = random_voucher(run, rng) else {
            return;
        };
        let since = (Utc::now() - book.created_at).num_milliseconds().max(1);
        // PostgreSQL keeps microseconds.
        let scanned_at = match rng.gen_range(0..10) {
            // Dated before its book existed: must be rejected.
            0 => book.created_at - chrono::Duration::minutes(5),
            _ => book.created_at + chrono::Duration::milliseconds(rng.gen_range(0..since)),
        }
        .duration_trunc(chrono::Duration::microseconds(1))
        .unwrap();
        let nonce = match &earlier {
            Some(n) if i == 0 && rng.gen_bool(0.1) => n.clone(),
            _ => format!("n-{tag}-{i}"),
        };
        let code = if rng.gen_bool(0.1) {
            voucher.typed.clone()
        } else {
            voucher.code.clone()
        };
        items.push(
            json!({"nonce": nonce, "code": code, "scanned_at": scanned_at.to_rfc3339(),
                          "workshop": workshop_on(scanned_at)}),
        );
        known.push((nonce.clone(), voucher.id, scanned_at));
        run.world.lock().unwrap().nonces.push((venue, nonce));
    }
    let (status, answer) = run
        .send(
            Op::Batch,
            instance,
            &run.tokens.venues[venue],
            "/api/v1/redemptions/batch",
            Some(json!({"items": items})),
            |e| {
                e.items = known.clone();
                e.venue = Some(venue);
            },
        )
        .await;
    if status == Some(200) {
        let mut world = run.world.lock().unwrap();
        for r in answer["results"].as_array().unwrap() {
            if r["outcome"] == "redeemed" {
                let voucher = known.iter().find(|k| k.0 == r["nonce"]).unwrap().1;
                let program = world
                    .books
                    .iter()
                    .find(|b| b.vouchers.iter().any(|v| v.id == voucher))
                    .map_or(0, |b| b.program);
                world
                    .redemptions
                    .push((r["redemption_id"].as_i64().unwrap(), venue, program));
            }
        }
    }
}

async fn cancel_one(run: &Run, instance: usize, id: i64, venue: usize, tag: String) {
    run.send(
        Op::Cancel,
        instance,
        &run.tokens.venues[venue],
        &format!("/api/v1/redemptions/{id}/cancel"),
        Some(json!({"reason": format!("annulation {tag}")})),
        |e| e.venue = Some(venue),
    )
    .await;
}

async fn cancel(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let Some((id, venue, _)) = pick(rng, &run.world.lock().unwrap().redemptions).copied() else {
        return;
    };
    cancel_one(run, instance, id, venue, tag.to_owned()).await;
}

async fn reverse(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let Some((id, _, _)) = pick(rng, &run.world.lock().unwrap().redemptions).copied() else {
        return;
    };
    run.send(
        Op::Reverse,
        instance,
        &run.tokens.funder,
        &format!("/api/v1/redemptions/{id}/reverse"),
        Some(json!({"reason": format!("litige {tag}")})),
        |_| {},
    )
    .await;
}

/// A book replaced while its vouchers are redeemed on both instances.
async fn replace_while_redeeming(run: &Run, rng: &mut StdRng, tag: &str) {
    let Some(book) = pick(rng, &run.world.lock().unwrap().books).cloned() else {
        return;
    };
    let venue = rng.gen_range(0..2);
    let instance = rng.gen_range(0..2);
    let replace = async {
        let (status, new) = run
            .send(
                Op::Replace,
                instance,
                &run.tokens.issuer,
                &format!("/api/v1/books/{}/replace", book.id),
                Some(json!({"reason": format!("remplacement {tag}")})),
                |_| {},
            )
            .await;
        if status == Some(201) {
            remember_book(run, book.program, &new);
        }
    };
    let redeems = futures_util::future::join_all(
        book.vouchers
            .iter()
            .enumerate()
            .map(|(i, v)| redeem_one(run, i % 2, venue, &book, &v.code, format!("k-{tag}-{i}"))),
    );
    tokio::join!(replace, redeems);
}

async fn revoke(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let Some(book) = pick(rng, &run.world.lock().unwrap().books).cloned() else {
        return;
    };
    run.send(
        Op::Revoke,
        instance,
        &run.tokens.issuer,
        &format!("/api/v1/books/{}/revoke", book.id),
        Some(json!({"reason": format!("révocation {tag}")})),
        |_| {},
    )
    .await;
}

/// A statement closed while some of its programme's redemptions are being
/// cancelled, on the other instance.
async fn close_while_cancelling(run: &Run, rng: &mut StdRng, tag: &str) {
    let Some(program) = pick(rng, &run.world.lock().unwrap().programs).copied() else {
        return;
    };
    let targets: Vec<(i64, usize)> = {
        let world = run.world.lock().unwrap();
        let mine: Vec<_> = world
            .redemptions
            .iter()
            .filter(|r| r.2 == program)
            .collect();
        mine.iter().rev().take(10).map(|r| (r.0, r.1)).collect()
    };
    // Most closings end today; some end earlier (then only carries and
    // reversals can fall in them, and later closings meet a shorter range).
    let back = if rng.gen_bool(0.8) {
        0
    } else {
        rng.gen_range(1..5)
    };
    let period_end = paris::today() - chrono::Days::new(back);
    let instance = rng.gen_range(0..2);
    let close = async {
        let (status, statement) = run
            .send(
                Op::Close,
                instance,
                &run.tokens.funder,
                &format!("/api/v1/programs/{program}/statements"),
                Some(json!({"period_end": period_end.to_string()})),
                |_| {},
            )
            .await;
        if status == Some(201) {
            run.world
                .lock()
                .unwrap()
                .statements
                .push(statement["id"].as_i64().unwrap());
        }
    };
    let cancels =
        futures_util::future::join_all(targets.iter().enumerate().map(|(i, (id, venue))| {
            cancel_one(run, 1 - instance, *id, *venue, format!("{tag}-{i}"))
        }));
    tokio::join!(close, cancels);
}

async fn pay(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let Some(id) = pick(rng, &run.world.lock().unwrap().statements).copied() else {
        return;
    };
    let (status, statement) = run
        .send(
            Op::Read,
            instance,
            &run.tokens.funder,
            &format!("/api/v1/statements/{id}"),
            None,
            |_| {},
        )
        .await;
    if status != Some(200) {
        return;
    }
    let due: Vec<&Value> = statement["venues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["status"] == "due")
        .collect();
    let Some(venue) = pick(rng, &due) else {
        return;
    };
    run.send(
        Op::Pay,
        instance,
        &run.tokens.funder,
        &format!("/api/v1/statements/{id}/payments"),
        Some(
            json!({"venue_organisation_id": venue["venue_organisation_id"],
                    "amount_cents": venue["total_cents"], "paid_on": paris::today().to_string(),
                    "reference": format!("VIR-{tag}")}),
        ),
        |_| {},
    )
    .await;
}

async fn resolve(run: &Run, rng: &mut StdRng, instance: usize, tag: &str) {
    let (status, conflicts) = run
        .send(
            Op::Read,
            instance,
            &run.tokens.funder,
            "/api/v1/conflicts?limit=200",
            None,
            |_| {},
        )
        .await;
    if status != Some(200) {
        return;
    }
    let open: Vec<&Value> = conflicts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["decision"].is_null())
        .collect();
    let Some(conflict) = pick(rng, &open) else {
        return;
    };
    let decision = if rng.gen_bool(0.6) { "pay" } else { "reject" };
    run.send(
        Op::Resolve,
        instance,
        &run.tokens.funder,
        &format!("/api/v1/conflicts/{}/resolve", conflict["id"]),
        Some(json!({"decision": decision, "reason": format!("décision {tag}")})),
        |_| {},
    )
    .await;
}
