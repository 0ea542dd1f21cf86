//! The real `serve` binary as a process of its own, for tests that need several replicas on
//! one database, a pooler in front, or what `serve` logs. It binds port 0 and the test reads
//! the port `serve` logs, so no port is ever released and raced for between choosing it and
//! binding it; the process is killed when dropped, so a test that fails half-way leaves
//! nothing behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::{TEST_SECRET, now, stripe_signature};

const BINARY: &str = env!("CARGO_BIN_EXE_stripe-customer-sync");

/// A running `serve`; killed when dropped.
pub struct ServeProcess {
    child: Option<Child>,
    pub base_url: String,
    client: reqwest::Client,
    /// Everything it has logged so far (JSON lines on stderr).
    log: Arc<Mutex<String>>,
}

/// How a [`ServeProcess`] is started: the tests' defaults, then what a test changes.
pub struct ServeCommand {
    command: Command,
    skip_migrations: bool,
}

impl ServeCommand {
    /// One environment variable more (or another value for a default).
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Environment variables more.
    pub fn envs(mut self, env: &[(&str, &str)]) -> Self {
        self.command.envs(env.iter().copied());
        self
    }

    /// Without this variable, even when the test process has it (or a default set it).
    pub fn env_remove(mut self, name: &str) -> Self {
        self.command.env_remove(name);
        self
    }

    /// Runs in `dir` (by default the system's temporary directory, away from any `.env`).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Limits the process to `limit` open descriptors (`RLIMIT_NOFILE`, soft and hard), as
    /// `prlimit --nofile=N` or a container's ulimit would.
    pub fn open_files_limit(mut self, limit: u64) -> Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
        unsafe {
            self.command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        self
    }

    /// Applies pending migrations at start, as `serve` does unless told to skip them.
    pub fn migrating(mut self) -> Self {
        self.skip_migrations = false;
        self
    }

    /// Starts it and waits until it says which port it listens on.
    pub async fn start(mut self) -> ServeProcess {
        stripe_customer_sync::tls::install_crypto_provider();
        // Before the process exists: nothing after the spawn may panic and leave it orphaned.
        let client = reqwest::Client::new();
        let log = Arc::new(Mutex::new(String::new()));
        self.command.arg("serve");
        if self.skip_migrations {
            self.command.arg("--skip-migrations");
        }
        let mut process = ServeProcess {
            child: Some(self.command.spawn().expect("start serve")),
            base_url: String::new(),
            client,
            log: log.clone(),
        };
        let port = read_log(process.child.as_mut().expect("just spawned"), log).await;
        process.base_url = format!("http://127.0.0.1:{port}");
        process
    }
}

impl ServeProcess {
    /// Starts `serve --skip-migrations` on `database_url` (test-mode events, no background
    /// work) with `env` on top, and waits until it listens.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::command(database_url).envs(env).start().await
    }

    /// What [`ServeProcess::start`] runs, to adjust before [`ServeCommand::start`].
    pub fn command(database_url: &str) -> ServeCommand {
        let mut command = Command::new(BINARY);
        command
            .current_dir(std::env::temp_dir()) // away from any developer .env
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
            .env("STRIPE_MODE", "test")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("STRIPE_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        ServeCommand {
            command,
            skip_migrations: true,
        }
    }

    /// Waits until `GET /readyz` answers 200 (60 s at most); fails if `serve` exits meanwhile.
    pub async fn ready(mut self) -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self
                .client
                .get(format!("{}/readyz", self.base_url))
                .send()
                .await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return self;
            }
            let child = self.child.as_mut().expect("running");
            assert!(
                child.try_wait().unwrap().is_none(),
                "serve exited:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "serve was not ready within 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until its log contains `text` (60 s at most); the log then.
    pub async fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} logged within 60 s: {log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The value of one sample of `GET /metrics` (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base_url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }

    /// SIGTERM, as a container runtime sends it; whether it exited 0.
    pub async fn terminate(mut self) -> bool {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        tokio::task::spawn_blocking(move || child.wait().unwrap().success())
            .await
            .unwrap()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// POSTs `payload` signed now, as Stripe delivers it: (HTTP status, JSON body).
    pub async fn deliver(&self, payload: &str) -> (u16, serde_json::Value) {
        let header = stripe_signature(payload, TEST_SECRET, now());
        let response = self
            .client
            .post(format!("{}/webhooks/stripe", self.base_url))
            .header("Content-Type", "application/json")
            .header("Stripe-Signature", header)
            .body(payload.to_owned())
            .send()
            .await
            .expect("send webhook");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `serve`'s log (its piped stderr) until it says which port it listens on; keeps
/// draining the log after, so that the process never blocks on a full pipe.
pub async fn listening_port(child: &mut Child) -> u16 {
    read_log(child, Arc::default()).await
}

/// [`listening_port`], keeping every line in `log`. Fails at once, with the log, if `serve`
/// exits without listening.
async fn read_log(child: &mut Child, log: Arc<Mutex<String>>) -> u16 {
    let stderr = child.stderr.take().expect("piped stderr");
    let (found, port) = mpsc::channel();
    let kept = log.clone();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
            if let Some(sender) = found.as_ref()
                && let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(port) = entry["port"].as_u64()
            {
                let _ = sender.send(Some(port as u16));
                found = None;
            }
        }
        if let Some(sender) = found {
            let _ = sender.send(None); // exited without listening
        }
    });
    let port = tokio::task::spawn_blocking(move || port.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap();
    match port {
        Ok(Some(port)) => port,
        Ok(None) => panic!("serve exited before listening:\n{}", log.lock().unwrap()),
        Err(_) => panic!("serve logged no port within 60 s:\n{}", log.lock().unwrap()),
    }
}
