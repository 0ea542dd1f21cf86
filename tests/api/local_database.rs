//! Without DATABASE_URL every command uses the one local database of its working directory:
//! the one `serve` runs while it runs, else one started (and migrated) for the command alone.

use std::path::Path;

use serde_json::Value;

use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Customer, StripeDouble, output};

/// A working directory the `postgres` OS user can reach (the cluster runs as it when root).
fn workdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// One command run in `dir` with no DATABASE_URL: its exit code, its `--json` answer, the
/// database URL it logged and the message beside it.
struct LocalRun {
    code: Option<i32>,
    answer: Value,
    database_url: String,
    how: String,
    stderr: String,
}

async fn run_without_database_url(double: &StripeDouble, dir: &Path, args: &[&str]) -> LocalRun {
    let mut command = double.command("", dir, args);
    command.env_remove("DATABASE_URL");
    let out = output(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let logged = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["database_url"].is_string())
        .unwrap_or_else(|| panic!("no database_url logged:\n{stderr}"));
    LocalRun {
        code: out.status.code(),
        answer: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        database_url: logged["database_url"].as_str().unwrap().to_owned(),
        how: logged["message"].as_str().unwrap().to_owned(),
        stderr,
    }
}

#[tokio::test]
async fn every_command_without_database_url_uses_the_local_database_serve_runs_or_starts_it() {
    let dir = workdir();
    let double = StripeDouble::start().await;
    double.add((0..5).map(|i| Customer::new(&format!("cus_Local{i}"))));

    // No serve yet, a fresh directory: the command starts the database and migrates it.
    let first = run_without_database_url(&double, dir.path(), &["backfill", "--json"]).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(first.answer["totals"]["inserted"], 5, "{}", first.answer);
    assert!(first.how.contains("started"), "{}", first.how);
    let url = first.database_url.clone();
    assert!(url.contains("pgdata.sock"), "{url}");

    let serve = ServeProcess::command("")
        .env_remove("DATABASE_URL")
        .current_dir(dir.path())
        .migrating()
        .start()
        .await
        .ready()
        .await;

    // Beside serve: its database, left running.
    let beside = run_without_database_url(&double, dir.path(), &["backfill", "--json"]).await;
    assert_eq!(beside.code, Some(0), "{}", beside.stderr);
    assert_eq!(beside.database_url, url);
    assert!(beside.how.contains("running"), "{}", beside.how);
    assert_eq!(beside.answer["totals"]["unchanged"], 5, "{}", beside.answer);
    let verified = run_without_database_url(&double, dir.path(), &["verify", "--json"]).await;
    assert_eq!(verified.code, Some(0), "{}", verified.stderr);
    assert_eq!(verified.answer["checked"], 5, "{}", verified.answer);
    assert_eq!(verified.database_url, url);
    let migrated = run_without_database_url(&double, dir.path(), &["migrate"]).await;
    assert_eq!(migrated.code, Some(0), "{}", migrated.stderr);
    assert_eq!(migrated.database_url, url);
    let ready = reqwest::get(format!("{}/readyz", serve.base_url)).await;
    assert!(
        ready.is_ok_and(|r| r.status().is_success()),
        "serve kept its database: {}",
        serve.log()
    );
    assert!(serve.terminate().await);

    // serve stopped: started again for the command, the same database.
    let after = run_without_database_url(&double, dir.path(), &["backfill", "--json"]).await;
    assert_eq!(after.code, Some(0), "{}", after.stderr);
    assert_eq!(after.database_url, url);
    assert!(after.how.contains("started"), "{}", after.how);
    assert_eq!(after.answer["totals"]["unchanged"], 5, "{}", after.answer);
    let data_dir = dir.path().join(".stripe-customer-sync/pgdata");
    assert_eq!(
        stripe_customer_sync::local_db::RunningCluster::find(&data_dir),
        None,
        "the command stopped the database it started"
    );
}
