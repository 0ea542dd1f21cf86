//! The real `serve` binary as a process of its own, for tests that need several replicas on
//! one database. It binds port 0 and the test reads the port `serve` logs, so no port is ever
//! released and raced for between choosing it and binding it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{TEST_SECRET, now, stripe_signature};

const BINARY: &str = env!("CARGO_BIN_EXE_stripe-customer-sync");

/// A running `serve`; killed when dropped (a test that fails half-way leaves nothing behind).
pub struct ServeProcess {
    child: Option<Child>,
    pub base_url: String,
    client: reqwest::Client,
}

impl ServeProcess {
    /// Starts `serve` on `database_url` (test-mode events, no background work) with `env` on
    /// top, and waits until it listens.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        stripe_customer_sync::tls::install_crypto_provider();
        // Before the process exists: nothing after the spawn may panic and leave it orphaned.
        let client = reqwest::Client::new();
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .arg("--skip-migrations")
            .current_dir(std::env::temp_dir()) // away from any developer .env
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
            .env("STRIPE_MODE", "test")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("STRIPE_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut process = Self {
            child: Some(command.spawn().expect("start serve")),
            base_url: String::new(),
            client,
        };
        let port = listening_port(process.child.as_mut().expect("just spawned")).await;
        process.base_url = format!("http://127.0.0.1:{port}");
        process
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

    /// POSTs `payload` signed now, as Stripe delivers it: (HTTP status, JSON body).
    pub async fn deliver(&self, payload: &str) -> (u16, serde_json::Value) {
        let header = stripe_signature(payload, TEST_SECRET, now());
        let response = self
            .client
            .post(format!("{}/webhooks/stripe", self.base_url))
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
    let stderr = child.stderr.take().expect("piped stderr");
    let (found, port) = mpsc::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(sender) = found.as_ref()
                && let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(port) = entry["port"].as_u64()
            {
                let _ = sender.send(port as u16);
                found = None;
            }
        }
    });
    tokio::task::spawn_blocking(move || port.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("serve logged the port it listens on within 60 s")
}
