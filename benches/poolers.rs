//! What each way of reaching the database costs in throughput: the release `serve` against one
//! durable PostgreSQL cluster directly, through PgBouncer (Debian's package, stock configuration
//! apart from upstream and auth) in session mode, and through PgBouncer in transaction mode
//! (`DATABASE_POOL_MODE=transaction`). All three in ONE run on the same cluster, the upstreams
//! taking turns within each round, so that the ratios compare like with like (absolute figures
//! from different runs on a shared VM do not).
//!
//! `cargo bench --bench poolers`. Needs PgBouncer (`apt-get install pgbouncer`). Settings
//! (environment): `BENCH_EVENTS` (events per upstream, level and round, default 3000),
//! `BENCH_CONCURRENCY` (senders, default `1,16`), `BENCH_ROUNDS` (default 3; the median round
//! of each upstream is reported).
//!
//! Every event is a `customer.created` of a new customer (~1.5 KB): the snapshot read and the
//! one statement that writes the row and the ledger entry; in transaction mode also BEGIN (with
//! `set local statement_timeout`) and COMMIT, and no statement is prepared once for good.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stripe_customer_sync::domain::WebhookSecret;
use stripe_customer_sync::store::pool::PoolMode;
use stripe_customer_sync::stripe::signature::sign;

#[allow(dead_code)] // the test helper; the benchmark uses PgBouncer only
#[path = "../tests/api/helpers/pgbouncer.rs"]
mod pgbouncer;
#[path = "support/cluster.rs"]
mod support_cluster;

use pgbouncer::{Route, Upstream};
use support_cluster::BenchCluster;

const SECRET: &str = "whsec_bench_4eC39HqLyjWDarjtT1zdp7dc";
const DATABASE: &str = "bench";
const UPSTREAMS: [(&str, Upstream); 3] = [
    ("direct", Upstream::Direct),
    ("pgbouncer session", Upstream::PgBouncer(PoolMode::Session)),
    (
        "pgbouncer transaction",
        Upstream::PgBouncer(PoolMode::Transaction),
    ),
];

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: nothing to check then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("poolers: a load benchmark; run it with `cargo bench --bench poolers`");
        return;
    }
    stripe_customer_sync::tls::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn run() {
    let events: usize = setting("BENCH_EVENTS", "3000")
        .parse()
        .expect("BENCH_EVENTS");
    let rounds: usize = setting("BENCH_ROUNDS", "3").parse().expect("BENCH_ROUNDS");
    let levels: Vec<usize> = setting("BENCH_CONCURRENCY", "1,16")
        .split(',')
        .map(|c| c.trim().parse().expect("BENCH_CONCURRENCY"))
        .collect();

    let bench = BenchCluster::start("bench-poolers-");
    let db = bench.migrated_database(DATABASE).await;
    let direct_url = bench.cluster().url(DATABASE);

    let routes: Vec<(&str, Route)> = UPSTREAMS
        .iter()
        .map(|&(name, upstream)| {
            let route = Route::open(upstream, &direct_url, DATABASE)
                .expect("this benchmark needs pgbouncer: apt-get install pgbouncer");
            (name, route)
        })
        .collect();
    let serves: Vec<Serve> = routes
        .iter()
        .map(|(name, route)| Serve::start(route, &direct_url, &bench.dir().join(name)))
        .collect();
    for serve in &serves {
        serve.wait_until_ready().await;
    }
    println!(
        "serve: {} (default pool size), PgBouncer stock configuration, PostgreSQL fsync on",
        env!("CARGO_BIN_EXE_stripe-customer-sync")
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let secret = WebhookSecret::parse(SECRET).expect("secret");
    let mut next_customer = 0u64;
    // Warm-up, not reported: connections opened, caches filled, statements prepared.
    for serve in &serves {
        let batch = signed_events(&secret, &mut next_customer, 200);
        drive(&client, &serve.base_url, batch, 4).await;
    }

    let mut table = Vec::new();
    for &concurrency in &levels {
        let mut per_upstream: Vec<Vec<Load>> = vec![Vec::new(); serves.len()];
        for round in 0..rounds {
            // A different upstream goes first each round: no one always runs on a warmer disk.
            for offset in 0..serves.len() {
                let index = (offset + round) % serves.len();
                let batch = signed_events(&secret, &mut next_customer, events);
                checkpoint(&db).await;
                let load = drive(&client, &serves[index].base_url, batch, concurrency).await;
                assert_eq!(
                    load.processed, events,
                    "{}: every event must be processed",
                    routes[index].0
                );
                println!(
                    "concurrency {concurrency:>2}, round {round}, {:<22} {:>6.0} events/s, \
                     p50 {:.2} ms, p99 {:.2} ms",
                    routes[index].0, load.per_second, load.p50_ms, load.p99_ms
                );
                per_upstream[index].push(load);
            }
        }
        for (index, loads) in per_upstream.into_iter().enumerate() {
            table.push((concurrency, routes[index].0, median(loads)));
        }
    }

    println!(
        "\n| senders | upstream | events/s (median of {rounds}) | vs direct | p50 ms | p99 ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (concurrency, name, load) in &table {
        let direct = table
            .iter()
            .find(|(c, n, _)| c == concurrency && *n == "direct")
            .map(|(_, _, l)| l.per_second)
            .unwrap_or(f64::NAN);
        println!(
            "| {concurrency} | {name} | {:.0} | {:.2} | {:.2} | {:.2} |",
            load.per_second,
            load.per_second / direct,
            load.p50_ms,
            load.p99_ms
        );
    }
    drop(serves);
    drop(routes);
    db.close().await;
}

#[derive(Clone, Debug)]
struct Load {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    processed: usize,
}

fn median(mut loads: Vec<Load>) -> Load {
    loads.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    loads[loads.len() / 2].clone()
}

/// `count` new customers' `customer.created`, signed now.
fn signed_events(
    secret: &WebhookSecret,
    next_customer: &mut u64,
    count: usize,
) -> Vec<(String, String)> {
    let now = chrono::Utc::now().timestamp();
    (0..count)
        .map(|_| {
            *next_customer += 1;
            let body = customer_created(*next_customer, now);
            let signature = sign(body.as_bytes(), secret, now);
            (body, signature)
        })
        .collect()
}

fn customer_created(customer: u64, now: i64) -> String {
    let address = json!({
        "city": "Arlington", "country": "US", "line1": "1000 S Eads St", "line2": "Apt 1406",
        "postal_code": "22202", "state": "VA"
    });
    json!({
        "id": format!("evt_1Pool{customer:018}"),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": format!("req_P{customer:014}"), "idempotency_key": null },
        "type": "customer.created",
        "data": { "object": {
            "id": format!("cus_Pool{customer:012}"),
            "object": "customer",
            "address": address,
            "balance": 0,
            "created": now - 60,
            "currency": "usd",
            "delinquent": false,
            "description": "Customer for the pooler benchmark",
            "email": format!("customer{customer}@example.com"),
            "invoice_prefix": format!("{:08X}", customer & 0xFFFF_FFFF),
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": format!("pm_1Pool{customer:012}"),
                "footer": null,
                "rendering_options": null
            },
            "livemode": false,
            "metadata": {
                "plan": "pro", "signup_source": "pricing_page",
                "utm_campaign": "black-friday-2026", "supabase_project": "pmwhrtczqlbkdnyvsgaj"
            },
            "name": "Ada Lovelace",
            "next_invoice_sequence": 1,
            "phone": "+12025550143",
            "preferred_locales": ["en"],
            "shipping": { "address": address, "name": "Ada Lovelace", "phone": "+12025550143" },
            "tax_exempt": "none",
            "test_clock": null
        } }
    })
    .to_string()
}

/// Sends every event once, `concurrency` at a time, each sender on its keep-alive connection.
async fn drive(
    client: &reqwest::Client,
    base_url: &str,
    events: Vec<(String, String)>,
    concurrency: usize,
) -> Load {
    let events = Arc::new(events);
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{base_url}/webhooks/stripe");
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (events, next, url, client) =
            (events.clone(), next.clone(), url.clone(), client.clone());
        senders.spawn(async move {
            let mut latencies = Vec::new();
            let mut processed = 0;
            while let Some((body, signature)) = events.get(next.fetch_add(1, Ordering::Relaxed)) {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("Stripe-Signature", signature)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("send event");
                let answer: Value = response.json().await.expect("JSON answer");
                latencies.push(sent.elapsed());
                if answer["status"] == "processed" {
                    processed += 1;
                }
            }
            (latencies, processed)
        });
    }
    let mut latencies = Vec::with_capacity(events.len());
    let mut processed = 0;
    while let Some(joined) = senders.join_next().await {
        let (mine, count) = joined.expect("sender");
        latencies.extend(mine);
        processed += count;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    Load {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        processed,
    }
}

/// Each level starts from a clean checkpoint, as in `end_to_end`.
async fn checkpoint(db: &sqlx::PgPool) {
    sqlx::raw_sql("checkpoint")
        .execute(db)
        .await
        .expect("checkpoint");
}

/// The release `serve` through one route; it picks its port and logs it.
struct Serve {
    child: Child,
    base_url: String,
}

impl Serve {
    fn start(route: &Route, migration_url: &str, log: &Path) -> Self {
        let log_file = std::fs::File::create(log.with_extension("log")).expect("serve log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-customer-sync"))
            .arg("serve")
            .current_dir(std::env::temp_dir())
            .env("DATABASE_URL", route.url())
            .env("DATABASE_POOL_MODE", route.pool_mode().as_str())
            .env("MIGRATION_DATABASE_URL", migration_url)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            let text = std::fs::read_to_string(log.with_extension("log")).unwrap_or_default();
            let port = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find_map(|entry| entry["port"].as_u64());
            if let Some(port) = port {
                break port;
            }
            assert!(
                child.try_wait().expect("serve status").is_none(),
                "serve exited:\n{text}"
            );
            assert!(Instant::now() < deadline, "serve logged no port:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = reqwest::get(format!("{}/readyz", self.base_url)).await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve at {} not ready", self.base_url);
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
