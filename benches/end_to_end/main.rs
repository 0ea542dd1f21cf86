//! End-to-end load benchmark: the release build of `serve` against PostgreSQL's own limit.
//!
//! `cargo bench --bench end_to_end` does, in ONE run on this machine:
//!
//! 1. starts a durable PostgreSQL cluster (fsync on; data directory on disk under
//!    `target/tmp`) with the Supabase shim and our migrations, and the release `serve` binary
//!    against it (its default pool size and log level);
//! 2. per concurrency level (1, 4, 16, 32): N distinct signed events, 80 % `customer.created` of
//!    new customers and 20 % `customer.updated` of existing ones, ~2 KB each, driven over
//!    keep-alive connections (one task and one connection per sender); reports events/s and
//!    p50 / p99 / max latency, the CPU each party spent per event, and `serve`'s memory;
//! 3. checks that the ledger holds exactly as many `processed` rows as there were `processed`
//!    answers (a fast wrong answer is no result);
//! 4. right after each level, `pgbench` at the same concurrency runs a script made from the very
//!    SQL text the service runs per event (`store::customers::{SNAPSHOT_SQL, INSERT_SQL,
//!    UPDATE_SQL}`: the snapshot read, then the one statement that writes the row and the ledger
//!    entry), same 80/20 mix, same payload size, same cluster and durability: the database's own
//!    limit for our per-event work;
//! 5. fills `stripe_customers` to 1,000,000 rows and times lookups by `user_id` and by
//!    `stripe_customer_id`.
//!
//! Settings (environment): `BENCH_EVENTS` (events per level, default 10000),
//! `BENCH_CONCURRENCY` (default `1,4,16,32`), `BENCH_LOOKUP_ROWS` (default 1000000; 0 skips the
//! lookup benchmark), `BENCH_LOOKUPS` (timed lookups per key, default 20000), `BENCH_SERVE_BIN`
//! (another build of the binary, e.g. to compare two commits under the same conditions),
//! `BENCH_DATABASE_MAX_CONNECTIONS` (serve's pool size; default: serve's own default),
//! `BENCH_PERF_LEVEL` + `BENCH_PERF_OUT` (record `perf record -a -g` of the whole machine during
//! that level's HTTP load, into that file).

mod cpu;
mod database;
mod events;
mod load;
mod lookups;
mod percentile;
mod perf;
mod pgbench;
mod pgbench_script;
mod report;
mod rng;
mod serve;
mod settings;
#[path = "../support/cluster.rs"]
mod support_cluster;

use std::time::Instant;

use cpu::CpuSample;
use database::{checkpoint, seed_our_users, seed_pgbench_customers, seed_pgbench_users};
use events::EventGenerator;
use load::drive;
use lookups::lookup_benchmark;
use perf::{start_perf, stop_perf};
use pgbench::{PgbenchLevel, run_pgbench};
use pgbench_script::pgbench_script_text;
use report::{LevelReport, print_machine, print_summary};
use serve::Serve;
use settings::Settings;
use support_cluster::BenchCluster;

const SECRET: &str = "whsec_bench_4eC39HqLyjWDarjtT1zdp7dc";
const DATABASE: &str = "bench";
/// User ids of pgbench's new customers: `2^40 + n`; of its pre-seeded customers: `2^41 + k`;
/// of the lookup rows: `2^42 + g`. Ours are `1..`.
const PGBENCH_NEW_USER_BASE: u64 = 1 << 40;
const PGBENCH_SEED_USER_BASE: u64 = 1 << 41;
const LOOKUP_USER_BASE: u64 = 1 << 42;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: nothing to check then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("end_to_end: a load benchmark; run it with `cargo bench --bench end_to_end`");
        return;
    }
    stripe_customer_sync::tls::install_crypto_provider();
    let settings = Settings::from_env();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(settings));
}

async fn run(settings: Settings) {
    let started = Instant::now();
    print_machine();
    let bench = BenchCluster::start("bench-");
    let pgbench_bin = bench.pgbench();
    let cluster = bench.cluster();
    let url = cluster.url(DATABASE);
    let db = bench.migrated_database(DATABASE).await;
    let settings_line: String = sqlx::query_scalar(
        "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings
          where name in ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
                         'shared_buffers', 'max_wal_size', 'server_version')",
    )
    .fetch_one(&db)
    .await
    .expect("settings");
    println!("PostgreSQL: {settings_line}");
    println!("data directory: {} (on disk)", cluster.data_dir().display());

    let mut generator = EventGenerator::new(settings.events);
    seed_our_users(&db, generator.total_new_customers(settings.levels.len())).await;
    let seeds = settings.events.max(2_000) as u64;
    seed_pgbench_customers(&db, seeds).await;

    let serve = Serve::start(&settings.serve_bin, &url, bench.dir());
    serve.wait_until_up().await;
    generator.host = serve.address.clone();
    println!(
        "serve: {} (pid {}), log at {}",
        settings.serve_bin.display(),
        serve.pid,
        serve.log.display()
    );

    // Warm-up, not reported: creates the customers the first level updates, fills caches.
    let warm = generator.level(4, generator.warmup_count(), true);
    let warm_result = drive(&serve.address, warm.events, 4).await;
    assert_eq!(
        warm_result.statuses.get("processed").copied().unwrap_or(0),
        generator.warmup_count(),
        "warm-up: every event must be processed: {:?}",
        warm_result.statuses
    );
    generator.commit_level(&warm.created);

    let payload_sample = generator.sample_payload();
    let pgbench_script = bench.dir().join("per_event.pgbench");
    std::fs::write(&pgbench_script, pgbench_script_text()).expect("write pgbench script");

    let mut reports = Vec::new();
    for (index, &concurrency) in settings.levels.iter().enumerate() {
        let level = generator.level(concurrency, settings.events, false);
        println!(
            "\n== concurrency {concurrency}: {} events ({} created, {} updated), {:.0} bytes on average",
            level.events.len(),
            level.created.len(),
            level.events.len() - level.created.len(),
            level.mean_bytes
        );
        checkpoint(&db).await;
        let perf = settings
            .perf
            .as_ref()
            .filter(|(at, _)| *at == concurrency)
            .map(|(_, out)| start_perf(out));
        let before = CpuSample::take(&serve, cluster);
        let load = drive(&serve.address, level.events, concurrency).await;
        let cpu = CpuSample::take(&serve, cluster).since(&before);
        if let Some(perf) = perf {
            stop_perf(perf);
        }
        let memory = serve.memory();
        let processed_answers = load.statuses.get("processed").copied().unwrap_or(0);
        let processed_rows: i64 = sqlx::query_scalar(
            "select count(*) from public.stripe_webhook_events
              where outcome = 'processed' and id like $1",
        )
        .bind(format!("{}%", level.id_prefix))
        .fetch_one(&db)
        .await
        .expect("count ledger");
        generator.commit_level(&level.created);
        println!(
            "service: {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; answers {:?}; \
             ledger rows processed {processed_rows}",
            load.per_second(),
            load.percentile_ms(0.50),
            load.percentile_ms(0.99),
            load.max_ms(),
            load.statuses,
        );
        println!("service CPU: {}", cpu.describe(load.latencies_us.len()));
        println!(
            "serve memory: VmRSS {:.1} MB, VmHWM {:.1} MB",
            memory.rss_kb as f64 / 1024.0,
            memory.hwm_kb as f64 / 1024.0
        );

        seed_pgbench_users(&db, index, concurrency, settings.events).await;
        checkpoint(&db).await;
        let before = CpuSample::take(&serve, cluster);
        let pg = run_pgbench(
            &pgbench_bin,
            &pgbench_script,
            &url,
            bench.dir(),
            PgbenchLevel {
                index,
                concurrency,
                events: settings.events,
                seeds,
                payload: &payload_sample,
            },
        );
        let pg_cpu = CpuSample::take(&serve, cluster).since(&before);
        let pg_rows: i64 = sqlx::query_scalar(
            "select count(*) from public.stripe_webhook_events where id like $1",
        )
        .bind(format!("evt_pgb{index}x%"))
        .fetch_one(&db)
        .await
        .expect("count pgbench ledger");
        println!(
            "pgbench: {:.0} TPS, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} transactions, \
             {pg_rows} ledger rows written (an update that lost a race writes none)",
            pg.tps, pg.p50_ms, pg.p99_ms, pg.max_ms, pg.transactions
        );
        println!("pgbench CPU: {}", pg_cpu.describe(pg.transactions));
        reports.push(LevelReport {
            concurrency,
            events: load.latencies_us.len(),
            per_second: load.per_second(),
            p50: load.percentile_ms(0.50),
            p99: load.percentile_ms(0.99),
            max: load.max_ms(),
            processed_answers,
            processed_rows: processed_rows as usize,
            other_answers: load.latencies_us.len() - processed_answers,
            cpu,
            rss_mb: memory.rss_kb as f64 / 1024.0,
            pgbench: pg,
            pgbench_cpu: pg_cpu,
        });
    }
    let memory = serve.memory();
    let log_bytes = std::fs::metadata(&serve.log).map_or(0, |m| m.len());
    serve.stop();

    let lookups = if settings.lookup_rows > 0 {
        Some(lookup_benchmark(&db, settings.lookup_rows, settings.lookups).await)
    } else {
        None
    };

    db.close().await;

    print_summary(&reports, memory, log_bytes, lookups.as_ref());
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    let wrong: Vec<_> = reports
        .iter()
        .filter(|r| r.processed_rows != r.processed_answers || r.other_answers > 0)
        .map(|r| r.concurrency)
        .collect();
    assert!(
        wrong.is_empty(),
        "ledger rows and `processed` answers disagree (or not every event was processed) at \
         concurrency {wrong:?}: the figures above are no result"
    );
}
