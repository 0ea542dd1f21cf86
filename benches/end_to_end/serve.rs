//! The service under test: the release `serve` as a child process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::SECRET;

pub struct Serve {
    child: Child,
    pub pid: i32,
    /// `127.0.0.1:<port>`
    pub address: String,
    pub log: PathBuf,
}

pub struct Memory {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl Serve {
    pub fn start(binary: &Path, database_url: &str, dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = dir.join("serve.log");
        let child = Command::new(binary)
            .args(["serve", "--skip-migrations"])
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or("info".into()),
            )
            // The default pool size, unless BENCH_DATABASE_MAX_CONNECTIONS says otherwise.
            .env_remove("DATABASE_MAX_CONNECTIONS")
            .envs(
                std::env::var("BENCH_DATABASE_MAX_CONNECTIONS")
                    .map(|n| ("DATABASE_MAX_CONNECTIONS", n)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("serve log"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        Self {
            pid: child.id() as i32,
            child,
            address: format!("127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits until `GET /healthz` answers.
    pub async fn wait_until_up(&self) {
        let health = format!("http://{}/healthz", self.address);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "serve did not answer on {health}; see {}",
            self.log.display()
        );
    }

    pub fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
        }
    }

    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
