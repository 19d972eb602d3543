//! The embedded development database: a private PostgreSQL cluster under a data
//! directory, started from the system's PostgreSQL binaries.
//!
//! The server (`passnum serve` without `DATABASE_URL`) and the test harness share
//! this one implementation. The cluster listens on a Unix socket inside the data
//! directory and on no TCP port. When we run as root, the cluster runs as the
//! `postgres` system user, because PostgreSQL refuses to run as root.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User};

/// The longest Unix socket path the kernel accepts, less the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
const DEFAULT_PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "another passnum (pid {pid}) is already using the data directory {dir}: stop it first, \
         or point this one at another PASSNUM_DATA_DIR"
    )]
    InUse { dir: PathBuf, pid: String },
    #[error(
        "no PostgreSQL server binaries found (looked at `pg_config --bindir` and \
         /usr/lib/postgresql/*/bin); install them with: apt-get install postgresql libpq-dev"
    )]
    NoBinaries,
    #[error(
        "running as root, the embedded cluster runs as the `postgres` system user, which does not \
         exist here; install PostgreSQL (apt-get install postgresql) or run as another user"
    )]
    NoPostgresUser,
    #[error("the socket path {0} is longer than Unix allows ({MAX_SOCKET_PATH} bytes): choose a shorter PASSNUM_DATA_DIR")]
    SocketPathTooLong(PathBuf),
    #[error("{action} failed: {detail}")]
    Command { action: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Tuning of a cluster. Test clusters trade durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on: what a developer's data deserves.
    Durable,
    /// fsync off: a throwaway cluster for tests.
    Throwaway,
}

/// What a test cluster changes from the embedded one: a loopback TCP port
/// (TLS, several hosts, standbys need one), more settings, its own `pg_hba.conf`.
#[derive(Debug, Clone, Default)]
pub struct Tweaks {
    /// Listen on 127.0.0.1 at this port (its Unix socket takes the same number).
    pub tcp_port: Option<u16>,
    /// Lines appended to the settings written at every start.
    pub settings: String,
    /// The whole `pg_hba.conf`, written before the cluster starts.
    pub hba: Option<String>,
}

/// A running cluster. Dropping the owner stops it.
#[derive(Debug)]
pub struct EmbeddedCluster {
    dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    run_as: Option<User>,
    /// Held for as long as this process owns the data directory.
    lock: Option<Flock<File>>,
}

impl EmbeddedCluster {
    /// Starts the cluster under `dir`, initialising it the first time, and takes
    /// the directory's lock so that a second passnum gets a clear error.
    pub fn start(dir: &Path, durability: Durability) -> Result<Self, ClusterError> {
        Self::start_with(dir, durability, &Tweaks::default())
    }

    /// `start`, with the changes a test cluster needs.
    pub fn start_with(
        dir: &Path,
        durability: Durability,
        tweaks: &Tweaks,
    ) -> Result<Self, ClusterError> {
        fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io(format!("cannot resolve {}", dir.display())))?;
        let port = tweaks.tcp_port.unwrap_or(DEFAULT_PORT);
        let socket = dir.join(format!(".s.PGSQL.{port}"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(ClusterError::SocketPathTooLong(socket));
        }
        let lock = lock_dir(&dir)?;
        let run_as = postgres_user_if_root()?;
        let cluster = EmbeddedCluster {
            bindir: find_bindir()?,
            dir,
            port,
            run_as,
            lock: Some(lock),
        };
        cluster.prepare_directories()?;
        if !cluster.pgdata().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.write_settings(durability, tweaks)?;
        match cluster.postmaster() {
            // Left running by a passnum that was killed: adopt it.
            Postmaster::Alive => {
                tracing::info!(dir = %cluster.dir.display(), "adopting the embedded PostgreSQL cluster already running");
            }
            // Killed, but not yet reaped: PostgreSQL refuses to start while
            // its pid is in the process table, so wait for it to go.
            Postmaster::Dead(pid) => {
                cluster.wait_until_gone(pid)?;
                cluster.pg_ctl_start()?;
            }
            Postmaster::None => cluster.pg_ctl_start()?,
        }
        Ok(cluster)
    }

    /// The connection string of database `name` on this cluster's socket.
    pub fn database_url(&self, name: &str) -> String {
        connection_string(&self.dir, self.port, name)
    }

    /// The connection string of database `name` on the cluster under `dir`,
    /// for a process that uses a cluster another one owns.
    pub fn url_in(dir: &Path, name: &str) -> Result<String, ClusterError> {
        let dir = dir
            .canonicalize()
            .map_err(io(format!("cannot resolve {}", dir.display())))?;
        Ok(connection_string(&dir, DEFAULT_PORT, name))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copies this running cluster into `dir` with `pg_basebackup`, set up
    /// as its streaming standby; `start_with` on `dir` then starts it.
    pub fn base_backup_into(&self, dir: &Path) -> Result<(), ClusterError> {
        fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        if let Some(user) = &self.run_as {
            nix::unistd::chown(dir, Some(user.uid), Some(user.gid))
                .map_err(|e| io(format!("cannot give {} to postgres", dir.display()))(e.into()))?;
        }
        let target = dir.join("pg");
        let source = format!(
            "host={} port={} user=postgres",
            self.dir.display(),
            self.port
        );
        let out = self.run(
            "pg_basebackup",
            &[
                "-D".as_ref(),
                target.as_os_str(),
                "-d".as_ref(),
                source.as_ref(),
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-c".as_ref(),
                "fast".as_ref(),
            ],
        )?;
        check("pg_basebackup", out)
    }

    /// The operating-system user the cluster runs as (`postgres` when we are root).
    pub fn run_as(&self) -> Option<&User> {
        self.run_as.as_ref()
    }

    /// Stops the cluster (fast shutdown: sessions are disconnected, nothing is lost).
    pub fn stop(mut self) -> Result<(), ClusterError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), ClusterError> {
        if self.lock.take().is_none() {
            return Ok(());
        }
        if !self.is_running() {
            return Ok(());
        }
        let out = self.run(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                self.pgdata().as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
            ],
        )?;
        check("stopping PostgreSQL", out)?;
        tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL cluster stopped");
        Ok(())
    }

    fn pgdata(&self) -> PathBuf {
        self.dir.join("pg")
    }

    fn prepare_directories(&self) -> Result<(), ClusterError> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        // The postgres user writes its socket and log in the data directory, and
        // must be able to reach it through every parent directory.
        nix::unistd::chown(&self.dir, Some(user.uid), Some(user.gid))
            .map_err(|e| io(format!("cannot give {} to postgres", self.dir.display()))(e.into()))?;
        for parent in self.dir.ancestors().skip(1) {
            let meta =
                fs::metadata(parent).map_err(io(format!("cannot read {}", parent.display())))?;
            if meta.mode() & 0o001 == 0 {
                let mut perms = meta.permissions();
                perms.set_mode(meta.mode() | 0o001);
                fs::set_permissions(parent, perms).map_err(io(format!(
                    "cannot let postgres traverse {}",
                    parent.display()
                )))?;
                tracing::info!(dir = %parent.display(), "let the postgres user traverse this directory (o+x)");
            }
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        // Initialise beside the final place and rename, so an interrupted initdb
        // never leaves a half-made cluster behind.
        let staging = self.dir.join("pg.initdb");
        if staging.exists() {
            fs::remove_dir_all(&staging)
                .map_err(io(format!("cannot remove {}", staging.display())))?;
        }
        tracing::info!(dir = %self.pgdata().display(), "initialising the embedded PostgreSQL cluster");
        let out = self.run(
            "initdb",
            &[
                "-D".as_ref(),
                staging.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-instructions".as_ref(),
            ],
        )?;
        check("initdb", out)?;
        let conf = staging.join("postgresql.conf");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io(format!("cannot open {}", conf.display())))?;
        writeln!(file, "\ninclude_if_exists = 'passnum.conf'")
            .map_err(io(format!("cannot write {}", conf.display())))?;
        fs::rename(&staging, self.pgdata())
            .map_err(io("cannot move the new cluster into place".into()))
    }

    /// Settings rewritten at every start, so a moved data directory still works.
    fn write_settings(&self, durability: Durability, tweaks: &Tweaks) -> Result<(), ClusterError> {
        let listen = match tweaks.tcp_port {
            Some(_) => "127.0.0.1",
            None => "",
        };
        let mut settings = format!(
            "# Written by passnum at every start.\nlisten_addresses = '{listen}'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 200\n",
            self.port,
            self.dir.to_string_lossy().replace('\'', "''")
        );
        if durability == Durability::Throwaway {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        settings.push_str(&tweaks.settings);
        self.write_owned(&self.pgdata().join("passnum.conf"), &settings)?;
        if let Some(hba) = &tweaks.hba {
            self.write_owned(&self.pgdata().join("pg_hba.conf"), hba)?;
        }
        Ok(())
    }

    /// Writes a file the cluster's user owns.
    fn write_owned(&self, path: &Path, text: &str) -> Result<(), ClusterError> {
        fs::write(path, text).map_err(io(format!("cannot write {}", path.display())))?;
        if let Some(user) = &self.run_as {
            nix::unistd::chown(path, Some(user.uid), Some(user.gid))
                .map_err(|e| io(format!("cannot give {} to postgres", path.display()))(e.into()))?;
        }
        Ok(())
    }

    /// The state of the postmaster recorded in `postmaster.pid`. `pg_ctl
    /// status` alone calls a killed but unreaped (zombie) postmaster running.
    fn postmaster(&self) -> Postmaster {
        if !self.is_running() {
            return Postmaster::None;
        }
        let pid = fs::read_to_string(self.pgdata().join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
        match pid {
            Some(pid) if process_state(pid).is_some_and(|state| state != 'Z') => Postmaster::Alive,
            Some(pid) => Postmaster::Dead(pid),
            None => Postmaster::None,
        }
    }

    fn wait_until_gone(&self, pid: u32) -> Result<(), ClusterError> {
        for _ in 0..300 {
            if process_state(pid).is_none() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(ClusterError::Command {
            action: "restarting PostgreSQL".into(),
            detail: format!("its previous postmaster (pid {pid}) died but is still in the process table after 30 s"),
        })
    }

    fn is_running(&self) -> bool {
        let pgdata = self.pgdata();
        let args = ["status".as_ref(), "-D".as_ref(), pgdata.as_os_str()];
        matches!(self.run("pg_ctl", &args), Ok(out) if out.status.success())
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let log = self.dir.join("postgresql.log");
        let out = self.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-D".as_ref(),
                self.pgdata().as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
            ],
        )?;
        check(&format!("starting PostgreSQL (see {})", log.display()), out)?;
        tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL cluster started");
        Ok(())
    }

    /// Runs one of the cluster's programs, as `postgres` when we are root, in its
    /// own process group so that a terminal's Ctrl-C reaches passnum only, and
    /// passnum decides when the cluster stops.
    fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &str,
        args: &[S],
    ) -> Result<Output, ClusterError> {
        let mut cmd = Command::new(self.bindir.join(program));
        cmd.args(args).current_dir(&self.dir).process_group(0);
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        cmd.output().map_err(io(format!("cannot run {program}")))
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::error!(error = %e, "could not stop the embedded PostgreSQL cluster");
        }
    }
}

/// What became of the postmaster a cluster's `postmaster.pid` names.
enum Postmaster {
    Alive,
    /// Dead but still in the process table (a zombie).
    Dead(u32),
    None,
}

/// A process's state letter from `/proc/<pid>/stat` (`Z` for a zombie), or
/// `None` when there is no such process.
fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the state follows the last one.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn lock_dir(dir: &Path) -> Result<Flock<File>, ClusterError> {
    let path = dir.join("passnum.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(ClusterError::InUse {
                dir: dir.to_owned(),
                pid: pid.trim().to_owned(),
            });
        }
    };
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        write!(f, "{}", std::process::id())
    };
    write_pid(&mut lock).map_err(io(format!("cannot write {}", path.display())))?;
    Ok(lock)
}

fn postgres_user_if_root() -> Result<Option<User>, ClusterError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) if user.uid != Uid::from_raw(0) && user.gid != Gid::from_raw(0) => {
            Ok(Some(user))
        }
        _ => Err(ClusterError::NoPostgresUser),
    }
}

/// The server binaries: `PASSNUM_PG_BINDIR`, then `pg_config --bindir`, then the
/// newest `/usr/lib/postgresql/*/bin`.
fn find_bindir() -> Result<PathBuf, ClusterError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PASSNUM_PG_BINDIR").map(PathBuf::from) {
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(ClusterError::NoBinaries)
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(ClusterError::NoBinaries)
}

fn check(action: &str, out: Output) -> Result<(), ClusterError> {
    if out.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    Err(ClusterError::Command {
        action: action.to_owned(),
        detail,
    })
}

fn connection_string(socket_dir: &Path, port: u16, name: &str) -> String {
    // Quoted as libpq key=value strings want, so any path works.
    let quoted = socket_dir
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('\'', "\\'");
    format!("host='{quoted}' port={port} user=postgres dbname={name} connect_timeout=5")
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> ClusterError {
    move |source| ClusterError::Io { context, source }
}
