//! PgBouncer (Debian's package) in front of a test cluster, as a Supabase user has a pooler in
//! front of their database: its stock configuration apart from the upstream address, the
//! listening address and the auth (trust). In particular `ignore_startup_parameters` stays
//! empty, so a startup parameter it does not know fails the connection as it does for users.
//!
//! One PgBouncer per test, on 127.0.0.1 and a port of its own, with its configuration, log and
//! pid file in a temporary directory. PgBouncer refuses to run as root: when we are root it runs
//! as the `postgres` OS user, as the cluster does.

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use stripe_customer_sync::store::pool::PoolMode;

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Fresh ports to try when another process takes the one picked between our check and
/// PgBouncer's bind.
const PORT_ATTEMPTS: usize = 5;

/// The `pgbouncer` binary, or `None` after printing why the pooler tests are skipped. Under CI
/// (`CI` set) a missing PgBouncer fails the test instead: CI must run this suite.
pub fn pgbouncer_binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .map(PathBuf::from)
        .chain(
            std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|dir| dir.join("pgbouncer")),
        )
        .find(|path| path.is_file());
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "pgbouncer is not installed, and CI must run the connection pooler suite: \
             install the Debian package `pgbouncer` (.ci/run does)"
        );
        eprintln!(
            "NOTICE: pgbouncer is not installed: skipping the PgBouncer half of the pooler \
             suite (apt-get install pgbouncer; under CI=true this fails instead)"
        );
    }
    found
}

/// A running PgBouncer; stopped (and its directory removed) when dropped.
pub struct PgBouncer {
    child: Child,
    port: u16,
    /// The upstream URL's user: PgBouncer knows only this one (trust, but listed).
    user: String,
    dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` in front of the server `upstream_url` points at (any database
    /// on it: the `*` entry forwards every database name as is). `None`: not installed, and
    /// not under CI (see [`pgbouncer_binary`]).
    pub fn start(upstream_url: &str, mode: PoolMode) -> Option<Self> {
        let binary = pgbouncer_binary()?;
        let upstream = PgConnectOptions::from_str(upstream_url).expect("upstream URL");
        let dir = tempfile::Builder::new()
            .prefix("scs-pgbouncer-")
            .tempdir()
            .expect("pgbouncer dir");
        let owner = postgres_os_user();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown dir");
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod pgbouncer dir");
        // Trust still wants the user listed.
        let userlist = dir.path().join("userlist.txt");
        std::fs::write(&userlist, format!("\"{}\" \"\"\n", upstream.get_username()))
            .expect("write userlist");

        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = unused_port();
            let config = dir.path().join("pgbouncer.ini");
            std::fs::write(&config, config_text(&upstream, mode, port, dir.path()))
                .expect("write pgbouncer.ini");
            let mut command = Command::new(&binary);
            command
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some((uid, gid)) = owner {
                command.uid(uid).gid(gid).env("HOME", "/tmp");
            }
            // SAFETY: prctl is async-signal-safe; in pre_exec it runs after the uid switch,
            // which would otherwise clear the death signal. PgBouncer dies with the thread that
            // spawned it (the test's), so it never outlives a killed test run.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = command.spawn().expect("start pgbouncer");
            match wait_until_listening(&mut child, port, dir.path()) {
                Ok(()) => {
                    return Some(Self {
                        child,
                        port,
                        user: upstream.get_username().to_owned(),
                        dir,
                    });
                }
                Err(log) => {
                    stop(&mut child);
                    last_log = log;
                }
            }
        }
        panic!("pgbouncer did not start; its log:\n{last_log}");
    }

    /// The URL of `database` through this PgBouncer, as the upstream URL's user.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.user, self.port
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

/// Waits until `port` accepts connections; `Err(log)` if PgBouncer exited (e.g. the port was
/// taken after all) or never listened.
fn wait_until_listening(child: &mut Child, port: u16, dir: &Path) -> Result<(), String> {
    let log = || std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(log());
        }
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(format!("{e}\n{}", log())),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(log())
}

/// SIGTERM: PgBouncer's immediate shutdown (SIGINT would wait for its clients to finish).
fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The configuration: only the upstream, where to listen, where to log, auth and the pool mode.
fn config_text(upstream: &PgConnectOptions, mode: PoolMode, port: u16, dir: &Path) -> String {
    let host = match upstream.get_socket() {
        Some(socket_dir) => socket_dir.display().to_string(),
        None => upstream.get_host().to_owned(),
    };
    format!(
        "[databases]\n\
         * = host={host} port={upstream_port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {dir}/userlist.txt\n\
         pool_mode = {mode}\n\
         logfile = {dir}/pgbouncer.log\n\
         pidfile = {dir}/pgbouncer.pid\n",
        upstream_port = upstream.get_port(),
        dir = dir.display(),
    )
}

/// A port nobody listens on right now. PgBouncer cannot report a port it chose itself, so the
/// caller retries with another if it was taken in between.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("probe a free port")
        .port()
}

/// (uid, gid) of the `postgres` OS user when we are root (PgBouncer refuses root), else `None`.
fn postgres_os_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = CString::new("postgres").expect("static name");
    // SAFETY: getpwnam returns null or a pointer to static storage we read at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "running as root without a `postgres` OS user to run pgbouncer as"
    );
    // SAFETY: checked non-null above.
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

/// How the service under test reaches its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The database's own address.
    Direct,
    /// A PgBouncer in this pool mode in between.
    PgBouncer(PoolMode),
}

impl Upstream {
    /// `TEST_UPSTREAM` (`direct`, `pgbouncer-session`, `pgbouncer-transaction`): how every
    /// app the harness spawns reaches its database, so that the whole suite can run through a
    /// pooler (`TEST_UPSTREAM=pgbouncer-transaction cargo test --test api`). Default: direct.
    pub fn from_env() -> Self {
        match std::env::var("TEST_UPSTREAM").as_deref() {
            Err(_) | Ok("") | Ok("direct") => Self::Direct,
            Ok("pgbouncer-session") => Self::PgBouncer(PoolMode::Session),
            Ok("pgbouncer-transaction") => Self::PgBouncer(PoolMode::Transaction),
            Ok(other) => panic!(
                "TEST_UPSTREAM={other}: expected direct, pgbouncer-session or pgbouncer-transaction"
            ),
        }
    }

    /// The `DATABASE_POOL_MODE` the service is configured with for this upstream.
    pub fn pool_mode(self) -> PoolMode {
        match self {
            Self::Direct => PoolMode::Session,
            Self::PgBouncer(mode) => mode,
        }
    }
}

/// The way from the service to one test database, kept up for as long as this lives.
pub struct Route {
    pub upstream: Upstream,
    url: String,
    bouncer: Option<PgBouncer>,
}

impl Route {
    /// `None`: the route needs PgBouncer, which is not installed (and we are not under CI).
    pub fn open(upstream: Upstream, database_url: &str, database: &str) -> Option<Self> {
        let (url, bouncer) = match upstream {
            Upstream::Direct => (database_url.to_owned(), None),
            Upstream::PgBouncer(mode) => {
                let bouncer = PgBouncer::start(database_url, mode)?;
                (bouncer.url(database), Some(bouncer))
            }
        };
        Some(Self {
            upstream,
            url,
            bouncer,
        })
    }

    /// The `DATABASE_URL` to give the service.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool_mode(&self) -> PoolMode {
        self.upstream.pool_mode()
    }

    /// PgBouncer's log, for a failure message ("" when direct).
    pub fn log(&self) -> String {
        self.bouncer
            .as_ref()
            .map(PgBouncer::log)
            .unwrap_or_default()
    }
}
