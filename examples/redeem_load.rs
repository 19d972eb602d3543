//! The HTTP load client of `scripts/bench-redemptions` (issue 7, acceptance 4).
//! It talks to a `passnum serve --demo` on 127.0.0.1 only, and prints one JSON
//! object on standard output.
//!
//!     cargo run --release --example redeem_load -- issue --port P --vouchers 60000 --out codes.txt
//!     cargo run --release --example redeem_load -- redeem --port P --codes codes.txt -c 32 --seconds 15
//!
//! `issue`: as the demo funder, creates a programme on the Bas-Rhin and the
//! Haut-Rhin with the budget for `--vouchers` vouchers and allocates them all
//! to the demo issuer, then, as the demo issuer, issues books of 10 over
//! `--connections` concurrent connections and writes `voucher_id code`, one
//! voucher a line.
//!
//! `redeem`: as the demo venue of Strasbourg, `POST /api/v1/redemptions` over
//! `--connections` keep-alive connections, each request with the next code of
//! the file (a code is never sent twice), for `--warmup` seconds unmeasured
//! then `--seconds` measured, or until the codes run out. Every answer other
//! than 201 is an error and is counted. Latency is from sending the request
//! to having read the whole answer; p50 and p99 come from the sorted list of
//! every measured latency.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{Days, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

const PASSWORD: &str = "demo-passnum";
const FUNDER: &str = "financeur@demo.passnum.test";
const ISSUER: &str = "prescripteur@demo.passnum.test";
const VENUE: &str = "lieu@demo.passnum.test";
/// Face value of the benchmark programme's vouchers, in cents.
const FACE_VALUE_CENTS: i64 = 1_000;
/// How many distinct error answers are quoted in the report.
const QUOTED_ERRORS: usize = 3;

#[derive(Parser)]
#[command(about = "HTTP load client of scripts/bench-redemptions (loopback only)")]
struct Args {
    /// The port of `passnum serve` on 127.0.0.1.
    #[arg(long, global = true, default_value_t = 8080)]
    port: u16,
    /// Tokio worker threads of this client.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Create a programme, allocate it to the demo issuer, issue books of 10.
    Issue {
        /// How many vouchers (a multiple of 10).
        #[arg(long)]
        vouchers: usize,
        #[arg(short = 'c', long, default_value_t = 8)]
        connections: usize,
        /// Where to write `voucher_id code` lines.
        #[arg(long)]
        out: PathBuf,
        /// Give up after this long.
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
    /// Redeem distinct vouchers concurrently and measure.
    Redeem {
        #[command(flatten)]
        run: Run,
        /// Where to write the ids of the vouchers sent, one a line (optional).
        #[arg(long)]
        sent: Option<PathBuf>,
    },
    /// Check vouchers concurrently (`POST /api/v1/vouchers/check`, which
    /// writes nothing, so the codes are sent again in turn) and measure.
    Check {
        #[command(flatten)]
        run: Run,
    },
}

/// A measured run: which codes, how many connections, for how long.
#[derive(clap::Args)]
struct Run {
    /// `voucher_id code` lines (as `issue` writes them); a redemption uses
    /// each at most once.
    #[arg(long)]
    codes: PathBuf,
    #[arg(short = 'c', long)]
    connections: usize,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
}

/// What a measured run sends: redemptions use each code once and expect 201;
/// checks send the codes round and round and expect 200.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    Redeem,
    Check,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let base = format!("http://127.0.0.1:{}", args.port);
    let report = runtime.block_on(async {
        match args.mode {
            Mode::Issue {
                vouchers,
                connections,
                out,
                max_seconds,
            } => issue(&base, vouchers, connections, &out, max_seconds).await,
            Mode::Redeem { run, sent } => measure(Load::Redeem, &base, &run, sent).await,
            Mode::Check { run } => measure(Load::Check, &base, &run, None).await,
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// One client, one keep-alive connection: a worker's own.
fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Sends a JSON body (or none) and returns the status and the parsed answer.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let mut request = client.request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.with_context(|| url.clone())?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

/// Expects `want`, else fails with the answer.
async fn expect(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&Value>,
    want: u16,
) -> Result<Value> {
    let (status, value) = call(client, method.clone(), url.clone(), token, body).await?;
    if status != want {
        bail!("{method} {url}: {status} (expected {want}): {value}");
    }
    Ok(value)
}

async fn login(client: &reqwest::Client, base: &str, email: &str) -> Result<String> {
    let answer = expect(
        client,
        reqwest::Method::POST,
        format!("{base}/api/v1/auth/token"),
        None,
        Some(&json!({"email": email, "password": PASSWORD})),
        200,
    )
    .await?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no access_token in {answer}"))
}

fn today_in_paris() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive()
}

async fn issue(
    base: &str,
    vouchers: usize,
    connections: usize,
    out: &PathBuf,
    max_seconds: u64,
) -> Result<Value> {
    if vouchers == 0 || !vouchers.is_multiple_of(10) {
        bail!("--vouchers must be a positive multiple of 10 (books of 10)");
    }
    let setup = client()?;
    let funder = login(&setup, base, FUNDER).await?;
    let issuer = login(&setup, base, ISSUER).await?;
    let today = today_in_paris();
    let program = expect(
        &setup,
        reqwest::Method::POST,
        format!("{base}/api/v1/programs"),
        Some(&funder),
        Some(&json!({
            "name": format!("Banc d'essai des validations {}", Utc::now().format("%Y-%m-%d %H:%M:%S")),
            "face_value_cents": FACE_VALUE_CENTS,
            "budget_cents": FACE_VALUE_CENTS * vouchers as i64,
            "issue_until": today + Days::new(30),
            "voucher_validity_days": 365,
            "territory": {"departements": ["67", "68"]},
        })),
        201,
    )
    .await?;
    let program_id = program["id"]
        .as_i64()
        .with_context(|| format!("no programme id in {program}"))?;
    let me = expect(
        &setup,
        reqwest::Method::GET,
        format!("{base}/api/v1/me"),
        Some(&issuer),
        None,
        200,
    )
    .await?;
    let issuer_org = me["organisation"]["id"]
        .as_i64()
        .with_context(|| format!("no organisation id in {me}"))?;
    expect(
        &setup,
        reqwest::Method::POST,
        format!("{base}/api/v1/programs/{program_id}/allocations"),
        Some(&funder),
        Some(&json!({"issuer_organisation_id": issuer_org, "vouchers": vouchers})),
        201,
    )
    .await?;

    let books = vouchers / 10;
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lines = Arc::new(Mutex::new(Vec::<String>::with_capacity(vouchers)));
    let failure = Arc::new(Mutex::new(None::<String>));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(max_seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (next, stop, lines, failure) =
            (next.clone(), stop.clone(), lines.clone(), failure.clone());
        let (base, issuer) = (base.to_owned(), issuer.clone());
        let client = client()?;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= books {
                    break;
                }
                let book = json!({
                    "program_id": program_id,
                    "size": 10,
                    "beneficiary": {"reference": format!("BENCH-{program_id}-{n}"), "postcode": "67000"},
                });
                let answer = call(
                    &client,
                    reqwest::Method::POST,
                    format!("{base}/api/v1/books"),
                    Some(&issuer),
                    Some(&book),
                )
                .await;
                let text = match answer {
                    Ok((201, body)) => body["vouchers"].as_array().map(|vs| {
                        vs.iter()
                            .filter_map(|v| Some(format!("{} {}", v["voucher_id"].as_str()?, v["code"].as_str()?)))
                            .collect::<Vec<_>>()
                    }),
                    Ok((status, body)) => {
                        *failure.lock().unwrap() = Some(format!("book {n}: {status} {body}"));
                        None
                    }
                    Err(e) => {
                        *failure.lock().unwrap() = Some(format!("book {n}: {e:#}"));
                        None
                    }
                };
                match text {
                    Some(issued) if issued.len() == 10 => lines.lock().unwrap().extend(issued),
                    _ => {
                        let mut failure = failure.lock().unwrap();
                        failure.get_or_insert_with(|| format!("book {n}: not 10 vouchers"));
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(failure) = failure.lock().unwrap().take() {
        bail!("issuing failed: {failure}");
    }
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    if lines.len() != vouchers {
        bail!(
            "issued {} vouchers of {vouchers} within {max_seconds} s",
            lines.len()
        );
    }
    let mut file = BufWriter::new(File::create(out)?);
    for line in &lines {
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(json!({
        "mode": "issue",
        "program_id": program_id,
        "issuer_organisation_id": issuer_org,
        "connections": connections,
        "books": books,
        "vouchers": lines.len(),
        "elapsed_s": round3(elapsed),
        "books_per_s": round3(books as f64 / elapsed),
    }))
}

/// What one worker saw in the measured window.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// Answers with the expected status (201 for a redemption, 200 for a check).
    answered: usize,
    errors: BTreeMap<String, usize>,
    quoted: Vec<String>,
    last_done: Option<Instant>,
}

async fn measure(load: Load, base: &str, run: &Run, sent: Option<PathBuf>) -> Result<Value> {
    let Run {
        ref codes,
        connections,
        warmup,
        seconds,
    } = *run;
    let codes: Vec<String> = BufReader::new(
        File::open(codes).with_context(|| format!("cannot read {}", codes.display()))?,
    )
    .lines()
    .filter(|line| line.as_ref().map_or(true, |l| !l.is_empty()))
    .collect::<std::io::Result<_>>()?;
    let codes = Arc::new(codes);
    let token = login(&client()?, base, VENUE).await?;
    let workshop = json!({
        "theme": "online_procedures",
        "held_on": today_in_paris(),
        "duration_minutes": 60,
    });

    let next = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(warmup);
    let measure_until = measure_from + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (codes, next, exhausted) = (codes.clone(), next.clone(), exhausted.clone());
        let url = match load {
            Load::Redeem => format!("{base}/api/v1/redemptions"),
            Load::Check => format!("{base}/api/v1/vouchers/check"),
        };
        let (token, workshop) = (token.clone(), workshop.clone());
        let client = client()?;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let start = Instant::now();
                if start >= measure_until {
                    break;
                }
                let mut n = next.fetch_add(1, Ordering::Relaxed);
                if load == Load::Check {
                    n %= codes.len().max(1);
                }
                let Some(line) = codes.get(n) else {
                    exhausted.store(true, Ordering::Relaxed);
                    break;
                };
                // `voucher_id code`: the code itself may hold spaces (Base45).
                let code = line.split_once(' ').map_or(line.as_str(), |(_, code)| code);
                let body = match load {
                    Load::Redeem => json!({"code": code, "workshop": &workshop}),
                    Load::Check => json!({"code": code}),
                };
                let outcome = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let outcome = match outcome {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.bytes().await {
                            Ok(bytes) => Ok((status, bytes)),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                let done = Instant::now();
                if start < measure_from {
                    continue;
                }
                tally.latencies.push(done - start);
                tally.last_done = Some(done);
                match outcome {
                    Ok((201, _)) if load == Load::Redeem => tally.answered += 1,
                    Ok((200, _)) if load == Load::Check => tally.answered += 1,
                    Ok((status, bytes)) => {
                        *tally.errors.entry(status.to_string()).or_default() += 1;
                        if tally.quoted.len() < QUOTED_ERRORS {
                            tally.quoted.push(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                            ));
                        }
                    }
                    Err(e) => {
                        let kind = if e.is_timeout() {
                            "timeout"
                        } else if e.is_connect() {
                            "connect"
                        } else {
                            "transport"
                        };
                        *tally.errors.entry(kind.to_owned()).or_default() += 1;
                        if tally.quoted.len() < QUOTED_ERRORS {
                            tally.quoted.push(format!("{kind}: {e}"));
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await?;
        all.latencies.extend(tally.latencies);
        all.answered += tally.answered;
        for (kind, n) in tally.errors {
            *all.errors.entry(kind).or_default() += n;
        }
        for quote in tally.quoted {
            if all.quoted.len() < QUOTED_ERRORS && !all.quoted.contains(&quote) {
                all.quoted.push(quote);
            }
        }
        all.last_done = all.last_done.max(tally.last_done);
    }
    let cpu = cpu_seconds() - cpu_start;
    let used = next.load(Ordering::Relaxed).min(codes.len());
    if let Some(path) = sent {
        let mut file = BufWriter::new(File::create(path)?);
        for line in &codes[..used] {
            writeln!(
                file,
                "{}",
                line.split_once(' ').map_or(line.as_str(), |(id, _)| id)
            )?;
        }
        file.flush()?;
    }
    // The window: from the end of the warm-up to the last measured answer.
    let elapsed = all.last_done.map_or(0.0, |t| {
        t.saturating_duration_since(measure_from).as_secs_f64()
    });
    all.latencies.sort_unstable();
    let requests = all.latencies.len();
    let errors: usize = all.errors.values().sum();
    let per_second = |n: usize| {
        if elapsed > 0.0 {
            n as f64 / elapsed
        } else {
            0.0
        }
    };
    Ok(json!({
        "mode": match load {
            Load::Redeem => "redeem",
            Load::Check => "check",
        },
        "connections": connections,
        "client_threads": tokio::runtime::Handle::current().metrics().num_workers(),
        "warmup_s": warmup,
        "seconds": seconds,
        "requests": requests,
        "created": if load == Load::Redeem { all.answered } else { 0 },
        "answered": all.answered,
        "errors": errors,
        "error_kinds": all.errors,
        "error_examples": all.quoted,
        "codes_used": used,
        "codes_exhausted": exhausted.load(Ordering::Relaxed),
        "elapsed_s": round3(elapsed),
        "rate": round3(per_second(all.answered)),
        "requests_per_s": round3(per_second(requests)),
        "p50_ms": quantile_ms(&all.latencies, 0.50),
        "p90_ms": quantile_ms(&all.latencies, 0.90),
        "p99_ms": quantile_ms(&all.latencies, 0.99),
        "max_ms": quantile_ms(&all.latencies, 1.0),
        "client_cpu_s": round3(cpu),
    }))
}

/// The latency at quantile `q` (nearest rank) of sorted latencies, in ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(round3(sorted[rank - 1].as_secs_f64() * 1e3))
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// CPU time (user and system) this process has used so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
