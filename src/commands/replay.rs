//! `replay`: sign event files with the current time, exactly as Stripe does, and POST them.
//! How tests, developers and support engineers re-deliver events.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::domain::WebhookSecrets;
use crate::stripe::signature;

#[derive(clap::Args, Debug)]
pub(crate) struct ReplayArgs {
    /// Event files, or folders whose `.json` files are sent in name order.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The webhook endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/stripe")]
    pub url: String,
    /// Signing secret `whsec_…` (the first, if several are given).
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "WHSEC"
    )]
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplayError {
    #[error("--secret: {0}")]
    Secret(String),
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Client(String),
}

/// Sends every event; prints `<file> <http status> <service status>` per event on stdout.
/// Non-zero exit when any delivery was not answered 2xx.
pub(crate) async fn command(args: ReplayArgs) -> Result<ExitCode, super::CliError> {
    replay(args)
        .await
        .map_err(|e| super::CliError::failed("replay", e))
}

async fn replay(args: ReplayArgs) -> Result<ExitCode, ReplayError> {
    let secrets =
        WebhookSecrets::parse(&args.secret).map_err(|e| ReplayError::Secret(e.to_string()))?;
    let secret = secrets
        .iter()
        .next()
        .expect("WebhookSecrets is never empty");
    let files = event_files(&args.paths)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ReplayError::Client(e.to_string()))?;

    let mut failures = 0;
    for file in &files {
        let body = std::fs::read(file).map_err(|error| ReplayError::Read {
            path: file.clone(),
            error,
        })?;
        let header = signature::sign(&body, secret, chrono::Utc::now().timestamp());
        let line = match client
            .post(&args.url)
            .header("Content-Type", "application/json")
            .header("Stripe-Signature", header)
            .body(body)
            .send()
            .await
        {
            Ok(response) => {
                let code = response.status();
                let answer: serde_json::Value = response.json().await.unwrap_or_default();
                if !code.is_success() {
                    failures += 1;
                }
                format!(
                    "{}  {}  {}",
                    file.display(),
                    code.as_u16(),
                    describe(&answer)
                )
            }
            Err(error) => {
                failures += 1;
                format!("{}  error  {error}", file.display())
            }
        };
        println!("{line}");
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `processed`, `skipped stale_event`, or the error code of a 4xx/5xx answer.
fn describe(answer: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    match (
        text(&answer["status"]),
        text(&answer["reason"]),
        text(&answer["error"]["code"]),
    ) {
        (Some(status), Some(reason), _) => format!("{status} {reason}"),
        (Some(status), None, _) => status,
        (None, _, Some(code)) => code,
        _ => "-".into(),
    }
}

/// Files as given; folders expand to their `.json` files in name order.
fn event_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(json_files_in(path)?);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn json_files_in(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let read_error = |error| ReplayError::Read {
        path: dir.to_owned(),
        error,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    Ok(files)
}
