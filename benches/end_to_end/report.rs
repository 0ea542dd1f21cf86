//! The report: the machine, the results table and the targets.

use crate::cpu::CpuSample;
use crate::lookups::LookupReport;
use crate::pgbench::PgbenchResult;
use crate::serve::Memory;

pub struct LevelReport {
    pub concurrency: usize,
    pub events: usize,
    pub per_second: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub processed_answers: usize,
    pub processed_rows: usize,
    pub other_answers: usize,
    pub cpu: CpuSample,
    pub rss_mb: f64,
    pub pgbench: PgbenchResult,
    pub pgbench_cpu: CpuSample,
}

pub fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {cores} × {model}, {mem_gb:.0} GiB, Linux {}",
        kernel.trim()
    );
}

pub fn print_summary(
    reports: &[LevelReport],
    memory: Memory,
    log_bytes: u64,
    lookups: Option<&LookupReport>,
) {
    println!("\n## Results\n");
    println!(
        "| senders | events/s | p50 ms | p99 ms | max ms | pgbench TPS (p50 / p99 ms) | \
         ours / pgbench | CPU ms/event serve · postgres · load gen | cores busy (others) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
    for r in reports {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} ({:.2} / {:.2}) | {:.0} % | \
             {:.3} · {:.3} · {:.3} | {:.2} ({:.2}) |",
            r.concurrency,
            r.per_second,
            r.p50,
            r.p99,
            r.max,
            r.pgbench.tps,
            r.pgbench.p50_ms,
            r.pgbench.p99_ms,
            r.per_second / r.pgbench.tps * 100.0,
            r.cpu.per_event_ms(r.cpu.serve, r.events),
            r.cpu.per_event_ms(r.cpu.postgres, r.events),
            r.cpu.per_event_ms(r.cpu.client, r.events),
            r.cpu.cores_busy(),
            r.cpu.others_cores(),
        );
    }
    println!();
    for r in reports {
        println!(
            "senders {}: pgbench's own CPU {:.3} ms/tx, postgres {:.3} ms/tx, cores busy {:.2} \
             (others {:.2}); ledger check: {} processed answers, {} processed ledger rows, {} other answers — {}",
            r.concurrency,
            r.pgbench_cpu
                .per_event_ms(r.pgbench_cpu.children, r.pgbench.transactions),
            r.pgbench_cpu
                .per_event_ms(r.pgbench_cpu.postgres, r.pgbench.transactions),
            r.pgbench_cpu.cores_busy(),
            r.pgbench_cpu.others_cores(),
            r.processed_answers,
            r.processed_rows,
            r.other_answers,
            if r.processed_rows == r.processed_answers && r.other_answers == 0 {
                "OK"
            } else {
                "MISMATCH"
            }
        );
    }
    let peak_rss = reports.iter().map(|r| r.rss_mb).fold(0.0, f64::max);
    println!(
        "\nserve memory: VmHWM {:.1} MB (peak RSS over the run), VmRSS after the last level \
         {:.1} MB, max VmRSS seen after a level {peak_rss:.1} MB; log written {:.1} MB",
        memory.hwm_kb as f64 / 1024.0,
        memory.rss_kb as f64 / 1024.0,
        log_bytes as f64 / 1024.0 / 1024.0
    );
    if let Some(l) = lookups {
        println!(
            "\nlookups at {} rows (loaded in {:.0} s): by user_id p50 {:.3} ms, p99 {:.3} ms, \
             max {:.3} ms; by stripe_customer_id p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
             (plan: {})",
            l.rows,
            l.load_secs,
            l.by_user.0,
            l.by_user.1,
            l.by_user.2,
            l.by_customer.0,
            l.by_customer.1,
            l.by_customer.2,
            l.plan_user.trim()
        );
    }

    println!("\n## Targets\n");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(r) = reports.iter().find(|r| r.concurrency == 16) {
        let ratio = r.per_second / r.pgbench.tps;
        println!(
            "- events/s ≥ 80 % of pgbench's TPS at 16 senders: {:.0} %: {}",
            ratio * 100.0,
            verdict(ratio >= 0.8)
        );
        println!(
            "- p99 ≤ 10 ms at 16 senders: {:.2} ms: {}",
            r.p99,
            verdict(r.p99 <= 10.0)
        );
    }
    if let Some(l) = lookups {
        println!(
            "- lookup by user_id p99 < 1 ms at {} rows: {:.3} ms: {}",
            l.rows,
            l.by_user.1,
            verdict(l.by_user.1 < 1.0)
        );
    }
    println!(
        "- serve resident memory < 50 MB under load: VmHWM {:.1} MB: {}",
        memory.hwm_kb as f64 / 1024.0,
        verdict((memory.hwm_kb as f64 / 1024.0) < 50.0)
    );
    println!("- signature verification ≤ 2 µs per 2 KB event: see `cargo bench --bench signature`");
}
