//! Side by side with `@supabase/stripe-sync-engine`: `cargo bench --bench peer`.
//!
//! A thin entry point: `cargo bench` has built the release binary; this runs
//! `benches/peer/run.sh` with it (see the script's header for what it does and needs: root,
//! node + npm, wrk, the PostgreSQL server binaries). Settings (environment): `PEER_SECONDS`
//! (per run, default 20), `PEER_CONCURRENCY` (senders, space- or comma-separated, default
//! `1 16 32`), `PEER_REPS` (repetitions; the table shows medians, default 3),
//! `BENCH_SERVE_BIN` (another build of the binary), and the script's own `PEER_WORK_DIR`,
//! `PEER_QUIET_MAX_WAIT`.

use std::process::Command;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: nothing to check then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("peer: a side-by-side load benchmark; run it with `cargo bench --bench peer`");
        return;
    }
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let binary = var(
        "BENCH_SERVE_BIN",
        env!("CARGO_BIN_EXE_stripe-customer-sync"),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/run.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&binary)
        .arg(var("PEER_SECONDS", "20"))
        .arg(var("PEER_CONCURRENCY", "1 16 32").replace(',', " "))
        .arg(var("PEER_REPS", "3"))
        .status()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    if !status.success() {
        eprintln!("peer: {script} failed ({status})");
        std::process::exit(status.code().unwrap_or(1));
    }
}
