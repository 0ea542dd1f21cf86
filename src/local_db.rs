//! A PostgreSQL cluster of our own, started from the server binaries on the machine.
//!
//! `serve` uses it when no `DATABASE_URL` is given (a durable cluster under the working
//! directory) and the test harness uses it for one throwaway cluster per test run. Both run
//! `initdb` and `postgres` as the `postgres` OS user when we are root, because `initdb` refuses
//! root, and listen on a Unix socket only, so two clusters never race for a TCP port.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions};

/// `serve`'s local database lives under the working directory, so each project has its own.
pub(crate) const LOCAL_DATA_DIR: &str = ".stripe-customer-sync/pgdata";
/// The database `serve` and the commands use on the local cluster.
pub(crate) const LOCAL_DATABASE: &str = "stripe_customer_sync";

/// Sockets live at `<dir>/.s.PGSQL.5432`; Unix socket paths are limited to 107 bytes.
const MAX_SOCKET_DIR_LEN: usize = 90;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LocalDbError {
    #[error(
        "no PostgreSQL server binaries found (looked in PG_BIN, PATH and /usr/lib/postgresql/*/bin); \
         install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL"
    )]
    BinariesNotFound,
    #[error(
        "running as root, but there is no `postgres` OS user to run PostgreSQL as (initdb refuses root); \
         create one or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("PostgreSQL did not become ready within {0:?}; its log is at {1}")]
    NotReady(Duration, PathBuf),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(
        "refusing to use {path}: {why}; another local user may have planted it. Remove it, or \
         set DATABASE_URL"
    )]
    UnsafeDir { path: PathBuf, why: String },
}

/// Where `initdb` and `postgres` are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// The directory holding `initdb` and `postgres`, found as [`pg_bin_dir`] finds one.
    pub fn locate() -> Result<Self, LocalDbError> {
        pg_bin_dir(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
            .map(|dir| Self { dir })
            .ok_or(LocalDbError::BinariesNotFound)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A PostgreSQL program (`pg_dump`, `psql`, …), found as [`pg_bin_dir`] finds one.
pub fn pg_program(program: &str) -> Option<PathBuf> {
    pg_bin_dir(|dir| dir.join(program).is_file()).map(|dir| dir.join(program))
}

/// The first directory that `has` what is wanted: `PG_BIN` (and only it, when set), then
/// `PATH`, then the newest `/usr/lib/postgresql/<major>/bin` (Debian keeps the server there,
/// off `PATH`). The newest is the right default for clients too: `pg_dump` refuses servers of
/// a newer major version than its own.
fn pg_bin_dir(has: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return has(&dir).then_some(dir);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has(dir)) {
        return Some(dir);
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has(dir))
        .collect();
    versioned.sort();
    versioned.pop().map(|(_, dir)| dir)
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

        let mut command = Command::new(binaries.dir.join("postgres"));
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
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.socket_dir.display()
        )
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

/// The OS user that runs PostgreSQL: `postgres` when we are root, else ourselves (`None`).
#[derive(Debug, Clone, Copy)]
struct OsUser {
    uid: u32,
    gid: u32,
}

impl OsUser {
    fn for_postgres() -> Result<Option<Self>, LocalDbError> {
        // SAFETY: geteuid never fails.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let name = CString::new("postgres").expect("static name");
        // SAFETY: getpwnam returns null or a pointer to static storage we read at once.
        let entry = unsafe { libc::getpwnam(name.as_ptr()) };
        if entry.is_null() {
            return Err(LocalDbError::NoPostgresUser);
        }
        // SAFETY: entry checked non-null above.
        let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
        Ok(Some(Self { uid, gid }))
    }

    fn apply(self, command: &mut Command) {
        command.uid(self.uid).gid(self.gid);
        // std's uid switch also drops supplementary groups, so nothing of root's is kept.
        command.env("HOME", "/tmp");
    }
}

fn absolute(path: &Path) -> Result<PathBuf, LocalDbError> {
    std::path::absolute(path)
        .map_err(|e| LocalDbError::Io(format!("resolve {}", path.display()), e))
}

/// Creates `dir` (and its parents) for `owner` (default: us) with `mode`. An existing `dir` is
/// used only if it is a real directory (not a symlink) owned by that user: the socket directory
/// may live in a shared temp dir under a predictable name, where another user could plant a
/// link to a directory of ours, which a chmod and chown would then hand to `postgres`.
fn create_owned_dir(dir: &Path, owner: Option<&OsUser>, mode: u32) -> Result<(), LocalDbError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let io = |what: &str, e| LocalDbError::Io(format!("{what} {}", dir.display()), e);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("create the parent of", e))?;
    }
    let expected_uid = owner.map_or_else(current_uid, |o| o.uid);
    let created = match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io("create", e)),
    };
    if !created {
        let unsafe_dir = |why: &str| LocalDbError::UnsafeDir {
            path: dir.to_owned(),
            why: why.to_owned(),
        };
        let metadata = std::fs::symlink_metadata(dir).map_err(|e| io("inspect", e))?;
        if metadata.file_type().is_symlink() {
            return Err(unsafe_dir("it is a symbolic link"));
        }
        if !metadata.is_dir() {
            return Err(unsafe_dir("it is not a directory"));
        }
        // Ours, or already handed to `postgres` by an earlier run.
        if metadata.uid() != expected_uid && metadata.uid() != current_uid() {
            return Err(unsafe_dir(&format!(
                "it belongs to uid {}, not to uid {expected_uid}",
                metadata.uid()
            )));
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("chmod", e))?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid))
            .map_err(|e| io("chown", e))?;
    }
    Ok(())
}

fn current_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Next to the data directory when the path is short enough, else under the temp dir.
pub fn socket_dir_for(data_dir: &Path) -> Result<PathBuf, LocalDbError> {
    let beside = data_dir.with_extension("sock");
    if beside.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return Ok(beside);
    }
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(data_dir, &mut hasher);
    Ok(std::env::temp_dir().join(format!(
        "stripe-customer-sync-{:x}.sock",
        std::hash::Hasher::finish(&hasher)
    )))
}

fn initdb(
    binaries: &PgBinaries,
    data_dir: &Path,
    owner: Option<&OsUser>,
    durable: bool,
) -> Result<(), LocalDbError> {
    let mut command = Command::new(binaries.dir.join("initdb"));
    command
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ])
        .stdin(Stdio::null());
    if !durable {
        command.arg("--no-sync");
    }
    if let Some(owner) = owner {
        owner.apply(&mut command);
    }
    let output = command.output().map_err(|e| {
        LocalDbError::Io(format!("run {}", binaries.dir.join("initdb").display()), e)
    })?;
    if !output.status.success() {
        return Err(LocalDbError::Command {
            what: "initdb".into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Spawns `command` so that it cannot outlive this process: the kernel sends it SIGQUIT
/// (PostgreSQL's immediate shutdown) if we die. PR_SET_PDEATHSIG fires when the spawning
/// *thread* exits, so a dedicated thread spawns the child and stays until the child is gone.
fn spawn_tied_to_process(
    mut command: Command,
    owner: Option<&OsUser>,
) -> Result<(i32, mpsc::Receiver<()>), LocalDbError> {
    if let Some(owner) = owner {
        owner.apply(&mut command);
    }
    // SAFETY: prctl is async-signal-safe; pre_exec runs after the uid switch, which would
    // otherwise clear the death signal.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (started_tx, started_rx) = mpsc::channel();
    let (exited_tx, exited_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = started_tx.send(Ok(child.id() as i32));
                let _ = child.wait();
                let _ = exited_tx.send(());
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })
        .map_err(|e| LocalDbError::Io("spawn keeper thread".into(), e))?;
    let pid = started_rx
        .recv()
        .map_err(|_| LocalDbError::Command {
            what: "postgres".into(),
            detail: "keeper thread died".into(),
        })?
        .map_err(|e| LocalDbError::Io("spawn postgres".into(), e))?;
    Ok((pid, exited_rx))
}

/// Creates [`LOCAL_DATABASE`] on the cluster `options` reaches (through its `postgres`
/// database), unless it exists.
pub(crate) async fn create_local_database(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(LOCAL_DATABASE)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::raw_sql(AssertSqlSafe(format!("create database {LOCAL_DATABASE}")))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}
