//! A real `serve` process of the test, against a given database and the Stripe double, with
//! `POST /customers` on; killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TEST_SECRET;
use super::stripe_double::{BINARY, StripeDouble, TEST_API_KEY};
use super::tokens::JWT_SECRET;

pub struct ServeProcess {
    child: Option<Child>,
    pub base_url: String,
}

impl ServeProcess {
    /// `serve` with STRIPE_API_KEY and SUPABASE_JWT_SECRET: `POST /customers` is on.
    pub fn start(database_url: &str, double: &StripeDouble, dir: &Path) -> Self {
        let mut command = Self::command(database_url, double, dir);
        command.env("SUPABASE_JWT_SECRET", JWT_SECRET);
        Self::spawn(command)
    }

    /// The command, without a token setting; stdout and stderr discarded.
    pub fn command(database_url: &str, double: &StripeDouble, dir: &Path) -> Command {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .current_dir(dir)
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
            .env("STRIPE_API_KEY", TEST_API_KEY)
            .env("STRIPE_API_BASE", &double.base_url)
            .env("CATCH_UP_INTERVAL", "0")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .env_remove("USER_ID_METADATA_KEY")
            .env_remove("SUPABASE_JWT_SECRET")
            .env_remove("SUPABASE_JWKS_URL")
            .env_remove("ALLOWED_ORIGINS")
            .env_remove("PROFILE_NAME_COLUMN")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    pub fn spawn(mut command: Command) -> Self {
        let port = command
            .get_envs()
            .find(|(k, _)| *k == "LISTEN_ADDR")
            .and_then(|(_, v)| v?.to_str()?.rsplit(':').next()?.parse::<u16>().ok())
            .expect("LISTEN_ADDR set");
        let child = command.spawn().expect("start serve");
        Self {
            child: Some(child),
            base_url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = reqwest::get(format!("{}/readyz", self.base_url)).await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "serve was not ready within 60 s");
            let child = self.child.as_mut().unwrap();
            assert!(child.try_wait().unwrap().is_none(), "serve exited");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn customers_url(&self) -> String {
        format!("{}/customers", self.base_url)
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
