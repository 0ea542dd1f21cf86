//! The write of a batch of events with and without the guard of an event that writes no row
//! (`store::customers::write`), for a batch of one new customer's `customer.created`, as every
//! batch is at one sender:
//!
//! ```sh
//! cargo bench --bench batch_statements     # BATCH_BENCH_SECONDS=20 BATCH_BENCH_REPS=3
//! ```
//!
//! It starts a durable PostgreSQL cluster of its own (fsync on), applies the migrations, and
//! runs pgbench with one client REPS times, each run taking the two statements at random
//! transaction by transaction, so that the VM's speed, which moves by 10–20 % from one run to
//! the next, weighs on both alike. The statements are the service's own text
//! (`store::customers::ARRAY_STATEMENTS`); each binds the arrays of one event whose user does
//! not exist, the shape of the peer benchmark's events (`benches/peer/`). Prints each run's
//! mean latency per statement, then the medians and their ratio.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::PgPool;
use stripe_customer_sync::store::customers::ARRAY_STATEMENTS;

#[path = "support/cluster.rs"]
mod support_cluster;
use support_cluster::BenchCluster;

const DATABASE: &str = "bench";
const WITH_GUARD: &str = "write of a batch of inserts";
const WITHOUT_GUARD: &str = "write of a batch of inserts that all write a row";

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: nothing to check then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "batch_statements: a benchmark; run it with `cargo bench --bench batch_statements`"
        );
        return;
    }
    let seconds = env_number("BATCH_BENCH_SECONDS", 20);
    let reps = env_number("BATCH_BENCH_REPS", 3);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(seconds, reps));
}

async fn run(seconds: u64, reps: u64) {
    let bench = BenchCluster::start("batch-statements-");
    let db = bench.migrated_database(DATABASE).await;

    let scripts: Vec<(&str, PathBuf)> = [WITH_GUARD, WITHOUT_GUARD]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let path = bench.dir().join(format!("statement_{i}.pgbench"));
            std::fs::write(&path, pgbench_script(statement(name))).expect("write script");
            (name, path)
        })
        .collect();
    let pgbench = bench.pgbench();
    let mut runs: Vec<[f64; 2]> = Vec::new();
    for rep in 1..=reps {
        let latencies = run_pgbench(&pgbench, &scripts, &bench.cluster().url(DATABASE), seconds);
        println!(
            "run {rep}: {} {:.3} ms, {} {:.3} ms",
            WITH_GUARD, latencies[0], WITHOUT_GUARD, latencies[1]
        );
        runs.push(latencies);
    }
    assert_every_event_wrote_its_row(&db).await;

    let with_guard = median(runs.iter().map(|r| r[0]).collect());
    let without_guard = median(runs.iter().map(|r| r[1]).collect());
    println!("\n| statement (one event, a new customer) | ms per statement, median of {reps} |");
    println!("| --- | ---: |");
    println!("| {WITH_GUARD} | {with_guard:.3} |");
    println!("| {WITHOUT_GUARD} | {without_guard:.3} |");
    println!(
        "| without / with the guard | {:.2}× |",
        without_guard / with_guard
    );
}

fn statement(name: &str) -> &'static str {
    ARRAY_STATEMENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sql)| *sql)
        .unwrap_or_else(|| panic!("no statement named {name:?}"))
}

/// The statement with its parameters as pgbench variables: the event's and the customer's ids
/// and the row's new id drawn afresh for every transaction, every other array from `-D`
/// (see [`defines`]).
fn pgbench_script(sql: &str) -> String {
    let mut text = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len() - at - 1, |end| end);
        let parameter: usize = rest[at + 1..at + 1 + digits]
            .parse()
            .expect("a numbered parameter");
        text.push_str(&match parameter {
            1 | 16 => "(array['cus_bench' || (:n)::bigint])".to_owned(),
            8 => "(array['evt_bench' || (:n)::bigint])".to_owned(),
            23 => "(array[md5((:n)::bigint::text)::uuid])".to_owned(),
            other => format!(":p{other}"),
        });
        rest = &rest[at + 1 + digits..];
    }
    text.push_str(rest);
    // pgbench reads one statement per line.
    format!(
        "\\set n random(1, 1000000000000)\n{};\n",
        text.replace('\n', " ")
    )
}

/// One-element array literals for the parameters [`pgbench_script`] leaves to `-D`.
fn defines() -> Vec<String> {
    let element = |value: Option<&str>| match value {
        None => "{NULL}".to_owned(),
        Some(v) => format!("{{\"{}\"}}", v.replace('\\', "\\\\").replace('"', "\\\"")),
    };
    let payload = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/2024-06-20/01_customer.created.json"
    ))
    .expect("fixture");
    let metadata = |error: Option<&str>| {
        serde_json::json!({
            "stripe": {"user_id": "0b1f6a52-3d4e-4a4b-9d7e-1f2a3b4c5d6e", "plan": "pro"},
            "sync": {"status": if error.is_some() { "unlinked" } else { "linked" },
                     "error": error, "livemode": false, "last_event_id": "evt_bench",
                     "last_event_type": "customer.created", "last_event_created": 1732500000}
        })
        .to_string()
    };
    let values: [(usize, Option<String>); 19] = [
        (2, None),
        (3, Some("0b1f6a52-3d4e-4a4b-9d7e-1f2a3b4c5d6e".into())),
        (4, Some("grace@example.com".into())),
        (5, Some("Grace Hopper".into())),
        (6, Some("pm_1Bench000000004711".into())),
        (7, Some(metadata(None))),
        (9, Some("customer.created".into())),
        (10, Some("false".into())),
        (11, Some("2024-06-20".into())),
        (12, Some("2026-11-25 10:00:00+00".into())),
        (13, Some(payload)),
        (14, Some("false".into())),
        (15, None),
        (17, Some("processed".into())),
        (18, None),
        (19, None),
        (20, None),
        (21, Some(metadata(Some("user_missing")))),
        (22, Some(metadata(Some("user_linked_elsewhere")))),
    ];
    values
        .into_iter()
        .flat_map(|(k, v)| ["-D".to_owned(), format!("p{k}={}", element(v.as_deref()))])
        .collect()
}

/// One pgbench run taking the scripts at random; the mean latency of each, in ms.
fn run_pgbench(pgbench: &Path, scripts: &[(&str, PathBuf)], url: &str, seconds: u64) -> [f64; 2] {
    let mut command = Command::new(pgbench);
    command
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            "1",
            "-T",
            &seconds.to_string(),
        ])
        .args(defines());
    for (_, path) in scripts {
        command.arg("-f").arg(path);
    }
    let output = command
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run pgbench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Per script: "SQL script N: <path>", then " - latency average = X ms".
    let latencies: Vec<f64> = stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- latency average = "))
        .filter_map(|rest| rest.trim_end_matches(" ms").parse().ok())
        .collect();
    assert_eq!(latencies.len(), 2, "one latency per script in: {stdout}");
    [latencies[0], latencies[1]]
}

/// Both statements did the service's work: a customer row and a ledger row for every event.
async fn assert_every_event_wrote_its_row(db: &PgPool) {
    let (events, customers): (i64, i64) = sqlx::query_as(
        "select (select count(*) from public.stripe_webhook_events),
                (select count(*) from public.stripe_customers)",
    )
    .fetch_one(db)
    .await
    .expect("count rows");
    assert!(events > 0, "no event was recorded");
    assert_eq!(events, customers, "an event was recorded without its row");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
