//! The built binary, run as a newcomer runs it: `serve` with no DATABASE_URL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::serve_process::listening_port;
use crate::helpers::{TEST_SECRET, now, stripe_signature};

const BINARY: &str = env!("CARGO_BIN_EXE_stripe-customer-sync");

/// A `serve` process in its own working directory; killed if a test fails half-way.
struct ServeProcess {
    child: Option<Child>,
    base_url: String,
}

impl ServeProcess {
    async fn start(workdir: &Path) -> Self {
        let child = Command::new(BINARY)
            .arg("serve")
            .current_dir(workdir)
            .env_remove("DATABASE_URL")
            // Never Stripe's real API from a test, whatever the developer's environment holds.
            .env_remove("STRIPE_API_KEY")
            .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
            // Port 0, read back from the log: no port is chosen here and raced for.
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let mut process = Self {
            child: Some(child),
            base_url: String::new(),
        };
        let port = listening_port(process.child.as_mut().expect("just spawned")).await;
        process.base_url = format!("http://127.0.0.1:{port}");
        process
    }

    async fn wait_until_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let ready = client.get(format!("{}/readyz", self.base_url)).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            let child = self.child.as_mut().unwrap();
            assert!(
                child.try_wait().unwrap().is_none(),
                "serve exited before it was ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve was not ready within 90 s");
    }

    /// SIGTERM, as a container runtime sends it; returns whether it exited 0.
    async fn terminate(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        tokio::task::spawn_blocking(move || child.wait().unwrap().success())
            .await
            .unwrap()
    }

    async fn deliver(&self, payload: &str) -> serde_json::Value {
        let header = stripe_signature(payload, TEST_SECRET, now());
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/stripe", self.base_url))
            .header("Stripe-Signature", header)
            .body(payload.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
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

/// A working directory the `postgres` OS user can reach (the cluster runs as it when root).
fn workdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Processes whose command line mentions `needle` (e.g. a data directory).
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&needle))
        .collect()
}

#[tokio::test]
async fn serve_without_database_url_keeps_its_rows_across_restarts_and_leaves_no_postgres() {
    let dir = workdir();
    let data_dir: PathBuf = dir.path().join(".stripe-customer-sync");
    let event = CustomerEvent::created(&new_customer_id(), T0).json();

    let mut first = ServeProcess::start(dir.path()).await;
    first.wait_until_ready().await;
    assert_eq!(first.deliver(&event).await["status"], "processed");
    assert!(first.terminate().await, "serve must exit 0 on SIGTERM");
    assert!(
        data_dir.join("pgdata/PG_VERSION").exists(),
        "the data directory stays for the next run"
    );

    let mut second = ServeProcess::start(dir.path()).await;
    second.wait_until_ready().await;
    // The ledger survived the restart: the same event is now a duplicate.
    assert_eq!(second.deliver(&event).await["status"], "duplicate");
    assert!(second.terminate().await);

    assert_eq!(
        processes_mentioning(&data_dir),
        Vec::<String>::new(),
        "no PostgreSQL may outlive serve"
    );
}

#[test]
fn malformed_variable_stops_start_up_with_one_line_naming_it() {
    let output = Command::new(BINARY)
        .arg("serve")
        .current_dir(std::env::temp_dir()) // away from any developer .env
        .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
        .env("STRIPE_WEBHOOK_TOLERANCE_SECS", "five minutes")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("STRIPE_WEBHOOK_TOLERANCE_SECS"), "{stderr}");
}

#[test]
fn bad_secret_is_refused_without_echoing_it() {
    let output = Command::new(BINARY)
        .arg("serve")
        .current_dir(std::env::temp_dir()) // away from any developer .env
        .env("STRIPE_WEBHOOK_SECRET", "sk_live_notasigningsecret")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STRIPE_WEBHOOK_SECRET"), "{stderr}");
    assert!(!stderr.contains("notasigningsecret"), "{stderr}");
}

#[test]
fn container_mode_refuses_to_start_without_database_url() {
    let output = Command::new(BINARY)
        .arg("serve")
        .current_dir(std::env::temp_dir()) // away from any developer .env
        .env_remove("DATABASE_URL")
        .env("REQUIRE_DATABASE_URL", "true")
        .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
}

#[test]
fn planted_symlink_at_the_socket_directory_refuses_start_up_and_touches_nothing() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A working directory deep enough that the socket goes to the shared temp dir, under a
    // name anyone can predict.
    let root = tempfile::tempdir().unwrap();
    let workdir = root.path().join("a-checkout-with-a-long-path".repeat(3));
    std::fs::create_dir_all(&workdir).unwrap();
    let data_dir = workdir.join(".stripe-customer-sync/pgdata");
    let socket_dir = stripe_customer_sync::local_db::socket_dir_for(&data_dir).unwrap();
    assert!(
        socket_dir.starts_with(std::env::temp_dir()),
        "{socket_dir:?}"
    );
    // Another local user's trap: a link to a directory of ours.
    let victim = tempfile::tempdir().unwrap();
    std::fs::set_permissions(victim.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let owner = std::fs::metadata(victim.path()).unwrap().uid();
    let _ = std::fs::remove_file(&socket_dir);
    std::os::unix::fs::symlink(victim.path(), &socket_dir).unwrap();
    let planted = scopeguard(&socket_dir);

    let output = Command::new(BINARY)
        .arg("serve")
        .current_dir(&workdir)
        .env_remove("DATABASE_URL")
        .env("STRIPE_WEBHOOK_SECRET", TEST_SECRET)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    drop(planted);

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to use") && stderr.contains("symbolic link"),
        "{stderr}"
    );
    let victim_now = std::fs::metadata(victim.path()).unwrap();
    assert_eq!(victim_now.mode() & 0o777, 0o750, "mode untouched");
    assert_eq!(victim_now.uid(), owner, "owner untouched");
}

/// Removes the planted link however the test ends.
fn scopeguard(path: &Path) -> impl Drop + '_ {
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    Remove(path)
}
