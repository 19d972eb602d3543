//! SIGTERM: the real binary stops accepting, finishes what is in flight
//! within PASSNUM_SHUTDOWN_TIMEOUT_SECS, and exits 0.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::SimpleAsyncConnection;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::helpers::new_database;
use crate::redemptions::workshop;

/// `passnum serve --demo` on a free port, its log collected.
struct Served {
    child: Child,
    address: String,
    _keys: tempfile::TempDir,
}

fn serve(database_url: &str, shutdown_secs: &str) -> Served {
    let keys = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_passnum"))
        .args(["serve", "--demo"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("PASSNUM_BIND", "127.0.0.1:0")
        .env("PASSNUM_KEYS_DIR", keys.path())
        .env("PASSNUM_SHUTDOWN_TIMEOUT_SECS", shutdown_secs)
        .env("RUST_LOG", "warn,passnum=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start passnum serve");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("passnum serves on ") {
                let _ = tx.send(line[at + "passnum serves on ".len()..].trim().to_owned());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("passnum serve did not start");
    Served {
        child,
        address,
        _keys: keys,
    }
}

impl Served {
    fn terminate(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
    }

    /// Waits for the exit; kills the process after a minute.
    fn exit_code(mut self) -> Option<i32> {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("passnum serve did not exit within a minute of SIGTERM");
    }
}

impl Drop for Served {
    /// A failed test leaves no server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn login(client: &reqwest::Client, address: &str, email: &str) -> String {
    let res = client
        .post(format!("{address}/api/v1/auth/token"))
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

/// `books` books of 10 from the demo issuer; their codes.
async fn issue(client: &reqwest::Client, address: &str, books: usize) -> Vec<String> {
    let token = login(client, address, "prescripteur@demo.passnum.test").await;
    let programs: Value = client
        .get(format!("{address}/api/v1/programs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let program_id = programs["items"][0]["id"].as_i64().unwrap();
    let mut codes = Vec::new();
    for _ in 0..books {
        let book: Value = client
            .post(format!("{address}/api/v1/books"))
            .bearer_auth(&token)
            .json(&json!({"program_id": program_id, "size": 10, "beneficiary": {"reference": "R-TERM", "postcode": "67000"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for voucher in book["vouchers"].as_array().unwrap() {
            codes.push(voucher["code"].as_str().unwrap().to_owned());
        }
    }
    codes
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

async fn stored_ids(database_url: &str) -> BTreeSet<i64> {
    use diesel_async::RunQueryDsl;
    let mut conn = passnum::db::connect(database_url, Duration::from_secs(5))
        .await
        .unwrap();
    let rows: Vec<Stored> = diesel::sql_query("SELECT id FROM redemptions")
        .load(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_finishes_what_is_in_flight_and_exits_0() {
    let database_url = new_database().await;
    let server = serve(&database_url, "30");
    let address = server.address.clone();
    let client = reqwest::Client::new();
    let codes = issue(&client, &address, 20).await;
    let venue = login(&client, &address, "lieu@demo.passnum.test").await;

    let queue = Arc::new(Mutex::new(codes));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<BTreeMap<u16, usize>>> = Default::default();
    let stored_by_answer: Arc<Mutex<BTreeSet<i64>>> = Default::default();
    let after_signal = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (queue, acknowledged, signalled, answers, stored_by_answer, after_signal, refused) = (
            queue.clone(),
            acknowledged.clone(),
            signalled.clone(),
            answers.clone(),
            stored_by_answer.clone(),
            after_signal.clone(),
            refused.clone(),
        );
        let (client, address, venue) = (client.clone(), address.clone(), venue.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let Some(code) = queue.lock().unwrap().pop() else {
                    return;
                };
                let sent_after_signal = signalled.load(Ordering::SeqCst);
                let res = client
                    .post(format!("{address}/api/v1/redemptions"))
                    .bearer_auth(&venue)
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .json(&json!({"code": code, "workshop": workshop()}))
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await;
                let Ok(res) = res else {
                    // Refused or closed before an answer: the server stopped accepting.
                    refused.fetch_add(1, Ordering::SeqCst);
                    continue;
                };
                let status = res.status().as_u16();
                *answers.lock().unwrap().entry(status).or_default() += 1;
                if status == 201 {
                    let body: Value = res.json().await.unwrap();
                    stored_by_answer
                        .lock()
                        .unwrap()
                        .insert(body["id"].as_i64().unwrap());
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                    if !sent_after_signal && signalled.load(Ordering::SeqCst) {
                        after_signal.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    while acknowledged.load(Ordering::SeqCst) < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signalled.store(true, Ordering::SeqCst);
    server.terminate();
    for c in clients {
        c.await.unwrap();
    }
    let code = tokio::task::spawn_blocking(move || server.exit_code())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "exit status after SIGTERM");

    let answers = answers.lock().unwrap().clone();
    let server_errors: Vec<_> = answers
        .iter()
        .filter(|(status, _)| **status >= 500 && **status != 503)
        .collect();
    assert!(server_errors.is_empty(), "answers: {answers:?}");
    // Every redemption answered 201 is stored, and nothing stored went unanswered:
    // what was in flight at the signal finished and was answered.
    let acknowledged = stored_by_answer.lock().unwrap().clone();
    assert_eq!(stored_ids(&database_url).await, acknowledged);
    println!(
        "answers {answers:?}; 201 answered to requests in flight at SIGTERM: {}; not connected after it: {}",
        after_signal.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_at_the_shutdown_timeout_is_dropped_and_not_stored() {
    use diesel_async::RunQueryDsl;
    let database_url = new_database().await;
    let server = serve(&database_url, "1");
    let address = server.address.clone();
    let client = reqwest::Client::new();
    let codes = issue(&client, &address, 1).await;
    let venue = login(&client, &address, "lieu@demo.passnum.test").await;

    // The test's own sessions, told apart from the server's.
    let ours = format!("{database_url} application_name=passnum-test");
    // Hold every redemption insert behind a lock the test owns.
    let mut holder = passnum::db::connect(&ours, Duration::from_secs(5))
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE redemptions IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let request = {
        let (client, address, code) = (client.clone(), address.clone(), codes[0].clone());
        tokio::spawn(async move {
            client
                .post(format!("{address}/api/v1/redemptions"))
                .bearer_auth(&venue)
                .json(&json!({"code": code, "workshop": workshop()}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut watcher = passnum::db::connect(&ours, Duration::from_secs(5))
        .await
        .unwrap();
    let backends = |query: &'static str| diesel::sql_query(query);
    loop {
        let waiting: Waiting = backends(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'passnum' AND wait_event_type = 'Lock'",
        )
        .get_result(&mut watcher)
        .await
        .unwrap();
        if waiting.n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.terminate();
    let code = tokio::task::spawn_blocking(move || server.exit_code())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "exit status after the shutdown timeout");
    let answer = request.await.unwrap();
    assert!(
        answer.is_err(),
        "the dropped request got no answer: {answer:?}"
    );
    // The orphaned statement is cancelled by PostgreSQL itself, lock still
    // held: the server asks for `client_connection_check_interval`, so a
    // backend whose client vanished stops within a second instead of
    // committing, unanswered, whenever the lock frees.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left: Waiting = backends(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'passnum'",
        )
        .get_result(&mut watcher)
        .await
        .unwrap();
        if left.n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server's backends outlived it by 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert!(stored_ids(&database_url).await.is_empty());
}
