//! The batch commands (`backfill`) run as an operator runs them, against the Stripe double.

use std::path::Path;

use serde_json::Value;

use super::stripe_double::{StripeDouble, output};

/// The answer of one `backfill --json` run.
pub struct Run {
    pub code: Option<i32>,
    pub summary: Value,
    pub stderr: String,
}

pub async fn backfill(
    double: &StripeDouble,
    database_url: &str,
    workdir: &Path,
    extra: &[&str],
) -> Run {
    let mut args = vec!["backfill", "--json"];
    args.extend_from_slice(extra);
    json_command(double, database_url, workdir, &args).await
}

/// `catch-up --json` against `double`.
pub async fn catch_up(double: &StripeDouble, database_url: &str, workdir: &Path) -> Run {
    json_command(double, database_url, workdir, &["catch-up", "--json"]).await
}

async fn json_command(
    double: &StripeDouble,
    database_url: &str,
    workdir: &Path,
    args: &[&str],
) -> Run {
    let out = output(double.command(database_url, workdir, args)).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Run {
        code: out.status.code(),
        summary,
        stderr,
    }
}

/// What one command run left: its exit code and its two outputs.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Its stdout as JSON (`--json`), or a panic that shows both outputs.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

/// `stripe-customer-sync <args>` against `database_url` and the double, in `dir`, to its end.
pub async fn run(double: &StripeDouble, database_url: &str, dir: &Path, args: &[&str]) -> Ran {
    let out = output(double.command(database_url, dir, args)).await;
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
