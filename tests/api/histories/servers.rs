//! `passnum serve` as real processes on one database, to be killed with
//! SIGKILL and started again on the same port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    database_url: String,
    keys_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    pub starts: usize,
    /// `PASSNUM_GROUP_COMMIT`: 0 writes each redemption alone.
    group_commit: usize,
}

impl Server {
    /// Starts an instance and waits until it is ready. The first one seeds
    /// the demo (and generates the development keys the others read).
    pub async fn start(
        database_url: &str,
        keys_dir: &std::path::Path,
        log: PathBuf,
        demo: bool,
        group_commit: usize,
    ) -> Server {
        let port = free_port();
        let mut server = Server {
            port,
            database_url: database_url.to_owned(),
            keys_dir: keys_dir.to_owned(),
            log,
            child: None,
            starts: 0,
            group_commit,
        };
        server.spawn(demo).await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn spawn(&mut self, demo: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_passnum"));
        command.arg("serve");
        if demo {
            command.arg("--demo");
        }
        let child = command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PASSNUM_ENV", "development")
            .env("DATABASE_URL", &self.database_url)
            .env("PASSNUM_BIND", format!("127.0.0.1:{}", self.port))
            .env("PASSNUM_KEYS_DIR", &self.keys_dir)
            .env("PASSNUM_DB_POOL_SIZE", "8")
            .env("PASSNUM_GROUP_COMMIT", self.group_commit.to_string())
            .env("PASSNUM_TOKEN_TTL_SECS", "14400")
            // Long enough that any redemption of the run may be cancelled,
            // so cancels meet closing statements.
            .env("PASSNUM_CANCEL_WINDOW_HOURS", "240")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start passnum serve");
        self.child = Some(child);
        self.starts += 1;
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = client.get(self.url("/readyz")).send().await {
                if res.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "passnum serve exited with {status}; its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "passnum serve never got ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no goodbye; what was in flight gets no answer.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.spawn(false).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on now (the kernel's choice, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
