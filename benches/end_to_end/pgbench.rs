//! pgbench at the same concurrency: PostgreSQL's own limit for the per-event work.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::database::row_metadata;
use crate::percentile::percentile;

pub struct PgbenchLevel<'a> {
    pub index: usize,
    pub concurrency: usize,
    pub events: usize,
    pub seeds: u64,
    pub payload: &'a str,
}

pub struct PgbenchResult {
    pub tps: f64,
    pub transactions: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn run_pgbench(
    pgbench: &Path,
    script: &Path,
    url: &str,
    dir: &Path,
    level: PgbenchLevel<'_>,
) -> PgbenchResult {
    let c = level.concurrency;
    let log_prefix = dir.join(format!("pgbench_log_c{c}_{}", level.index));
    let define = |name: &str, value: &str| ["-D".to_owned(), format!("{name}={value}")];
    let mut command = Command::new(pgbench);
    command
        .args(["-n", "-M", "prepared", "--no-vacuum"])
        .args(["-c", &c.to_string(), "-j", &c.min(2).to_string()])
        .args(["-t", &level.events.div_ceil(c).to_string()])
        .arg("-f")
        .arg(script)
        .arg("-l")
        .arg(format!("--log-prefix={}", log_prefix.display()))
        .args(define("i", "0"))
        .args(define("lvl", &level.index.to_string()))
        .args(define("seeds", &level.seeds.to_string()))
        .args(define("etype_c", "customer.created"))
        .args(define("etype_u", "customer.updated"))
        .args(define("livemode", "false"))
        .args(define("apiver", "2024-06-20"))
        .args(define("created", "2026-11-25 10:00:00+00"))
        .args(define("payload", level.payload))
        .args(define("cname", "Grace Hopper"))
        .args(define("pm", "pm_1Bench000000004711"))
        .args(define("meta", &row_metadata().to_string()))
        .arg(url)
        .stdin(Stdio::null());
    let output = command.output().expect("run pgbench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{stdout}"));
    // Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us.
    let mut latencies: Vec<u64> = Vec::new();
    let prefix = log_prefix
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for entry in std::fs::read_dir(dir).expect("read bench dir").flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        latencies.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()),
        );
        let _ = std::fs::remove_file(entry.path());
    }
    latencies.sort_unstable();
    PgbenchResult {
        tps,
        transactions: latencies.len(),
        p50_ms: percentile(&latencies, 0.50) as f64 / 1000.0,
        p99_ms: percentile(&latencies, 0.99) as f64 / 1000.0,
        max_ms: latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
    }
}
