//! Starting a cluster (initialising it the first time), waiting until it is ready, stopping it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use super::LocalDbError;
use super::binaries::PgBinaries;
use super::dirs::{absolute, create_owned_dir, socket_dir_for};
use super::process::{OsUser, initdb, spawn_tied_to_process};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Our clusters listen on a socket only, under PostgreSQL's default port number.
const DEFAULT_PORT: u16 = 5432;

/// The URL of a database on a cluster that listens on a Unix socket in `socket_dir`, in the
/// form sqlx and psql alike understand. The port is left out when it is the default.
pub(super) fn local_url(socket_dir: &Path, port: u16, database: &str) -> String {
    let port = if port == DEFAULT_PORT {
        String::new()
    } else {
        format!("&port={port}")
    };
    format!(
        "postgres://postgres@localhost/{database}?host={}{port}",
        socket_dir.display()
    )
}

/// How a cluster is laid out and how much it cares about surviving a power cut.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub data_dir: PathBuf,
    /// Throwaway clusters skip fsync: tests need speed, not durability.
    pub durable: bool,
}

/// A running cluster. Dropping it does not stop it: call [`LocalCluster::stop`].
#[derive(Debug)]
pub struct LocalCluster {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    pid: i32,
    /// Signalled by the keeper thread when postgres has exited.
    exited: Mutex<mpsc::Receiver<()>>,
}

impl LocalCluster {
    /// Initialises the data directory when it holds no cluster yet, then starts PostgreSQL and
    /// waits until it accepts connections.
    pub fn start(binaries: &PgBinaries, options: &ClusterOptions) -> Result<Self, LocalDbError> {
        let owner = OsUser::for_postgres()?;
        let data_dir = absolute(&options.data_dir)?;
        create_owned_dir(&data_dir, owner.as_ref(), 0o700)?;
        if !data_dir.join("PG_VERSION").exists() {
            initdb(binaries, &data_dir, owner.as_ref(), options.durable)?;
        }
        let socket_dir = socket_dir_for(&data_dir)?;
        create_owned_dir(&socket_dir, owner.as_ref(), 0o700)?;
        // A previous run killed hard leaves its pid file behind; postgres refuses to start on
        // it only while that process lives, so a stale one is harmless.
        let log_path = data_dir.join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LocalDbError::Io(format!("open {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| LocalDbError::Io("clone log handle".into(), e))?;

        let mut command = Command::new(binaries.dir().join("postgres"));
        command
            .arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=", "-c", "max_connections=200"])
            .args(["-c", "shared_buffers=128MB"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if !options.durable {
            command.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            command.args(["-c", "full_page_writes=off"]);
        }
        let (pid, exited) = spawn_tied_to_process(command, owner.as_ref())?;
        let cluster = Self {
            data_dir,
            socket_dir,
            pid,
            exited: Mutex::new(exited),
        };
        cluster.wait_until_ready(&log_path)?;
        Ok(cluster)
    }

    fn wait_until_ready(&self, log_path: &Path) -> Result<(), LocalDbError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = self.data_dir.join("postmaster.pid");
        while Instant::now() < deadline {
            // Line 8 of postmaster.pid turns to `ready` once connections are accepted.
            let ready = std::fs::read_to_string(&pid_file)
                .map(|content| {
                    let lines: Vec<&str> = content.lines().collect();
                    lines.first().map(|l| l.trim()) == Some(self.pid.to_string().as_str())
                        && lines.get(7).map(|l| l.trim()) == Some("ready")
                })
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if self
                .exited
                .lock()
                .expect("keeper channel")
                .try_recv()
                .is_ok()
            {
                return Err(LocalDbError::Command {
                    what: "postgres".into(),
                    detail: format!("exited during start-up; see {}", log_path.display()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(LocalDbError::NotReady(START_TIMEOUT, log_path.to_owned()))
    }

    /// `postgres://postgres@localhost/DB?host=SOCKET_DIR`, understood by sqlx and psql alike.
    pub fn url(&self, database: &str) -> String {
        local_url(&self.socket_dir, DEFAULT_PORT, database)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Fast shutdown (SIGINT): open sessions are ended, the data is checkpointed. Falls back to
    /// an immediate shutdown if PostgreSQL has not gone after [`STOP_TIMEOUT`].
    pub fn stop(&self) -> Result<(), LocalDbError> {
        for (signal, patience) in [
            (libc::SIGINT, STOP_TIMEOUT),
            (libc::SIGQUIT, Duration::from_secs(5)),
            (libc::SIGKILL, Duration::from_secs(5)),
        ] {
            // SAFETY: kill(2) with a pid we spawned; at worst it reports ESRCH.
            if unsafe { libc::kill(self.pid, signal) } != 0 {
                return Ok(()); // already gone
            }
            match self
                .exited
                .lock()
                .expect("keeper channel")
                .recv_timeout(patience)
            {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
            }
        }
        Err(LocalDbError::Command {
            what: "stopping postgres".into(),
            detail: format!("pid {} did not exit", self.pid),
        })
    }
}
