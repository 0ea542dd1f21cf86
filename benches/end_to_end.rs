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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};
use stripe_customer_sync::domain::WebhookSecret;
use stripe_customer_sync::local_db::{ClusterOptions, LocalCluster, PgBinaries};
use stripe_customer_sync::store::customers::{INSERT_SQL, SNAPSHOT_SQL, UPDATE_SQL};
use stripe_customer_sync::store::schema;
use stripe_customer_sync::stripe::signature::sign;
use uuid::Uuid;

const SECRET: &str = "whsec_bench_4eC39HqLyjWDarjtT1zdp7dc";
const DATABASE: &str = "bench";
/// User ids of pgbench's new customers: `2^40 + n`; of its pre-seeded customers: `2^41 + k`;
/// of the lookup rows: `2^42 + g`. Ours are `1..`.
const PGBENCH_NEW_USER_BASE: u64 = 1 << 40;
const PGBENCH_SEED_USER_BASE: u64 = 1 << 41;
const LOOKUP_USER_BASE: u64 = 1 << 42;

struct Settings {
    events: usize,
    levels: Vec<usize>,
    lookup_rows: u64,
    lookups: usize,
    serve_bin: PathBuf,
    perf: Option<(usize, PathBuf)>,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str, default: u64| {
            var(name).map_or(default, |v| {
                v.replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} must be a number"))
            })
        };
        let levels = var("BENCH_CONCURRENCY")
            .unwrap_or_else(|| "1,4,16,32".into())
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .expect("BENCH_CONCURRENCY: numbers, comma-separated")
            })
            .collect();
        let perf = var("BENCH_PERF_LEVEL").map(|level| {
            let out = var("BENCH_PERF_OUT").unwrap_or_else(|| "perf.data".into());
            (level.parse().expect("BENCH_PERF_LEVEL"), PathBuf::from(out))
        });
        Self {
            events: number("BENCH_EVENTS", 10_000) as usize,
            levels,
            lookup_rows: number("BENCH_LOOKUP_ROWS", 1_000_000),
            lookups: number("BENCH_LOOKUPS", 20_000) as usize,
            serve_bin: var("BENCH_SERVE_BIN").map_or_else(
                || PathBuf::from(env!("CARGO_BIN_EXE_stripe-customer-sync")),
                PathBuf::from,
            ),
            perf,
        }
    }
}

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
    let work = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("bench dir");
    make_traversable(work.path());
    let binaries = PgBinaries::locate().unwrap_or_else(|e| panic!("{e}"));
    let pgbench_bin = find_pgbench(&binaries);
    let cluster = LocalCluster::start(
        &binaries,
        &ClusterOptions {
            data_dir: work.path().join("pgdata"),
            durable: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.url(DATABASE);
    let admin = PgPoolOptions::new()
        .max_connections(2)
        .connect(&cluster.url("postgres"))
        .await
        .expect("connect");
    sqlx::raw_sql(AssertSqlSafe(format!("create database {DATABASE}")))
        .execute(&admin)
        .await
        .expect("create database");
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect bench database");
    schema::apply_supabase_shim_if_missing(&db)
        .await
        .expect("shim");
    schema::migrate(&db).await.expect("migrations");
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

    let serve = Serve::start(&settings.serve_bin, &url, work.path());
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
    let pgbench_script = work.path().join("per_event.pgbench");
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
        let before = CpuSample::take(&serve, &cluster);
        let load = drive(&serve.address, level.events, concurrency).await;
        let cpu = CpuSample::take(&serve, &cluster).since(&before);
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
        let before = CpuSample::take(&serve, &cluster);
        let pg = run_pgbench(
            &pgbench_bin,
            &pgbench_script,
            &url,
            work.path(),
            PgbenchLevel {
                index,
                concurrency,
                events: settings.events,
                seeds,
                payload: &payload_sample,
            },
        );
        let pg_cpu = CpuSample::take(&serve, &cluster).since(&before);
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
    admin.close().await;
    cluster.stop().expect("stop postgres");

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

// ---------------------------------------------------------------------------------------------
// Events

/// Generates distinct, realistic customer events and remembers which customers exist.
struct EventGenerator {
    secret: WebhookSecret,
    events_per_level: usize,
    next_customer: u64,
    /// Customers whose `customer.created` has been processed: targets for updates.
    existing: Vec<u64>,
    level_count: usize,
    rng: XorShift,
    /// `Host` of the requests: serve's address.
    host: String,
}

struct Level {
    events: Vec<SignedEvent>,
    /// Customers this level creates.
    created: Vec<u64>,
    id_prefix: String,
    mean_bytes: f64,
}

/// A whole HTTP request as Stripe sends one, built in advance.
struct SignedEvent {
    request: Vec<u8>,
}

impl EventGenerator {
    fn new(events_per_level: usize) -> Self {
        Self {
            secret: WebhookSecret::parse(SECRET).expect("secret"),
            events_per_level,
            next_customer: 1,
            existing: Vec::new(),
            level_count: 0,
            rng: XorShift(0x9E37_79B9_7F4A_7C15),
            host: String::new(),
        }
    }

    /// Enough customers for the first level's updates (20 % of a level), created at warm-up.
    fn warmup_count(&self) -> usize {
        self.events_per_level.div_ceil(4)
    }

    fn total_new_customers(&self, levels: usize) -> u64 {
        (self.warmup_count() + levels * self.events_per_level) as u64
    }

    /// One level: every 5th event updates a distinct existing customer (so no two events of a
    /// level race for one row, and every one of them is `processed`), the rest create new ones.
    fn level(&mut self, concurrency: usize, count: usize, warmup: bool) -> Level {
        let id_prefix = if warmup {
            "evt_warm".to_owned()
        } else {
            format!("evt_c{concurrency}l{}n", self.level_count)
        };
        self.level_count += 1;
        let updates = if warmup { 0 } else { count / 5 };
        assert!(
            updates <= self.existing.len(),
            "not enough existing customers"
        );
        // Partial Fisher–Yates: `updates` distinct existing customers.
        for i in 0..updates {
            let j = i + (self.rng.next() as usize) % (self.existing.len() - i);
            self.existing.swap(i, j);
        }
        let mut to_update = self.existing[..updates].iter().copied();
        let now = chrono::Utc::now().timestamp();
        let mut created = Vec::new();
        let mut events = Vec::with_capacity(count);
        let mut bytes = 0usize;
        for i in 0..count {
            let event_id = format!("{id_prefix}{i:08}");
            let body = if !warmup && i % 5 == 4 {
                let customer = to_update.next().expect("counted above");
                customer_event(&event_id, Kind::Updated, customer, now)
            } else {
                let customer = self.next_customer;
                self.next_customer += 1;
                created.push(customer);
                customer_event(&event_id, Kind::Created, customer, now)
            };
            bytes += body.len();
            let signature = sign(body.as_bytes(), &self.secret, now);
            let mut request = format!(
                "POST /webhooks/stripe HTTP/1.1\r\n\
                 Host: {}\r\n\
                 User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\
                 Accept: */*; q=0.5, application/xml\r\n\
                 Cache-Control: no-cache\r\n\
                 Content-Type: application/json; charset=utf-8\r\n\
                 Stripe-Signature: {signature}\r\n\
                 Content-Length: {}\r\n\r\n",
                self.host,
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body.as_bytes());
            events.push(SignedEvent { request });
        }
        Level {
            mean_bytes: bytes as f64 / count.max(1) as f64,
            events,
            created,
            id_prefix,
        }
    }

    fn commit_level(&mut self, created: &[u64]) {
        self.existing.extend_from_slice(created);
    }

    fn sample_payload(&self) -> String {
        customer_event(
            "evt_pgbench_sample",
            Kind::Created,
            1,
            chrono::Utc::now().timestamp(),
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Created,
    Updated,
}

const NAMES: [&str; 8] = [
    "Grace Hopper",
    "Ada Lovelace",
    "Katherine Johnson",
    "Margaret Hamilton",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
];

fn customer_id(customer: u64) -> String {
    format!("cus_B{customer:010}")
}

fn user_id(customer: u64) -> Uuid {
    Uuid::from_u128(u128::from(customer))
}

/// A customer event as Stripe's API 2024-06-20 renders it (pretty-printed, as Stripe sends it),
/// linked to its Supabase user, with a default payment method: about 2 KB.
fn customer_event(event_id: &str, kind: Kind, customer: u64, now: i64) -> String {
    let name = NAMES[(customer % NAMES.len() as u64) as usize];
    let name = if kind == Kind::Updated {
        format!("{name} (billing)")
    } else {
        name.to_owned()
    };
    let address = json!({
        "city": "Arlington",
        "country": "US",
        "line1": format!("{} S Eads St", 1000 + customer % 900),
        "line2": "Apt 1406",
        "postal_code": "22202",
        "state": "VA"
    });
    let mut object = json!({
        "id": customer_id(customer),
        "object": "customer",
        "address": address.clone(),
        "balance": 0,
        "created": now - 60,
        "currency": "usd",
        "default_source": null,
        "delinquent": false,
        "description": format!("Customer for user {}", user_id(customer)),
        "discount": null,
        "email": format!("customer{customer}@example.com"),
        "invoice_prefix": format!("{:08X}", customer.wrapping_mul(2_654_435_761) & 0xFFFF_FFFF),
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": format!("pm_1Bench{customer:012}"),
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": {
            "user_id": user_id(customer).to_string(),
            "plan": if customer.is_multiple_of(3) { "team" } else { "pro" },
            "supabase_project": "pmwhrtczqlbkdnyvsgaj",
            "team_id": Uuid::from_u128(u128::from(customer) << 32).to_string(),
            "signup_source": "pricing_page",
            "utm_campaign": "black-friday-2026"
        },
        "name": name,
        "next_invoice_sequence": 1,
        "phone": "+12025550143",
        "preferred_locales": ["en"],
        "shipping": {
            "address": address,
            "name": name,
            "phone": "+12025550143"
        },
        "tax_exempt": "none",
        "test_clock": null
    });
    if kind == Kind::Updated {
        object["next_invoice_sequence"] = json!(2);
    }
    let mut event = json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": {
            "id": format!("req_B{customer:014}"),
            "idempotency_key": Uuid::from_u128(u128::from(customer) << 64).to_string()
        },
        "type": match kind {
            Kind::Created => "customer.created",
            Kind::Updated => "customer.updated",
        }
    });
    if kind == Kind::Updated {
        event["data"]["previous_attributes"] = json!({
            "name": NAMES[(customer % NAMES.len() as u64) as usize],
            "next_invoice_sequence": 1
        });
    }
    serde_json::to_string_pretty(&event).expect("json")
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP load

struct LoadResult {
    elapsed: Duration,
    latencies_us: Vec<u64>,
    statuses: BTreeMap<String, usize>,
}

impl LoadResult {
    fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// `sorted[ceil(p·n) − 1]`
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `concurrency` senders, each with its own keep-alive connection, take the next event until
/// none is left; each request is timed from its first byte sent to the last byte of the answer.
///
/// A minimal HTTP/1.1 client (requests built in advance, answers read by `Content-Length`)
/// rather than reqwest: the load generator shares the two cores with `serve` and PostgreSQL,
/// and every cycle it spends is taken from them, so it should cost about what pgbench's own
/// client costs (reqwest and hyper cost about twice as much per request).
async fn drive(address: &str, events: Vec<SignedEvent>, concurrency: usize) -> LoadResult {
    let events = Arc::new(events);
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..concurrency {
        let (events, next, address) = (events.clone(), next.clone(), address.to_owned());
        senders.spawn(async move {
            let mut connection = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect to serve");
            connection.set_nodelay(true).expect("nodelay");
            let mut buffer = Vec::with_capacity(4096);
            let mut latencies = Vec::with_capacity(events.len() / concurrency + 1);
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(event) = events.get(i) else { break };
                let sent = Instant::now();
                let answer = match exchange(&mut connection, &mut buffer, &event.request).await {
                    Ok((status, body)) => answer_status(status, body),
                    Err(e) => panic!("HTTP exchange failed: {e}"),
                };
                latencies.push(sent.elapsed().as_micros() as u64);
                *statuses.entry(answer).or_default() += 1;
            }
            (latencies, statuses)
        });
    }
    let mut result = LoadResult {
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        statuses: BTreeMap::new(),
    };
    while let Some(joined) = senders.join_next().await {
        let (latencies, statuses) = joined.expect("sender task");
        result.latencies_us.extend(latencies);
        for (status, count) in statuses {
            *result.statuses.entry(status).or_default() += count;
        }
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    result
}

/// Writes one request, reads one answer (status line, headers, `Content-Length` bytes of body)
/// on a keep-alive connection. Returns the status and the body.
async fn exchange<'b>(
    connection: &mut tokio::net::TcpStream,
    buffer: &'b mut Vec<u8>,
    request: &[u8],
) -> std::io::Result<(u16, &'b [u8])> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    connection.write_all(request).await?;
    buffer.clear();
    let mut head_end = None;
    loop {
        if head_end.is_none() {
            head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n");
        }
        if let Some(end) = head_end {
            let head = std::str::from_utf8(&buffer[..end]).map_err(|_| bad("header not UTF-8"))?;
            let status = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("no status"))?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or_else(|| bad("no Content-Length"))?;
            let total = end + 4 + length;
            if buffer.len() >= total {
                return Ok((status, &buffer[end + 4..total]));
            }
        }
        if connection.read_buf(buffer).await? == 0 {
            return Err(bad("connection closed"));
        }
    }
}

/// `processed`, `duplicate`, … for a 200; `HTTP 503 unavailable` and the like otherwise.
fn answer_status(http: u16, body: &[u8]) -> String {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (http, &parsed["status"], &parsed["error"]["code"]) {
        (200, Value::String(status), _) => status.clone(),
        (_, _, Value::String(code)) => format!("HTTP {http} {code}"),
        _ => format!("HTTP {http}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The service under test

struct Serve {
    child: Child,
    pid: i32,
    /// `127.0.0.1:<port>`
    address: String,
    log: PathBuf,
}

struct Memory {
    rss_kb: u64,
    hwm_kb: u64,
}

impl Serve {
    fn start(binary: &Path, database_url: &str, dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = dir.join("serve.log");
        let child = Command::new(binary)
            .args(["serve", "--skip-migrations"])
            .env("DATABASE_URL", database_url)
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or("info".into()),
            )
            // The default pool size, unless BENCH_DATABASE_MAX_CONNECTIONS says otherwise.
            .env_remove("DATABASE_MAX_CONNECTIONS")
            .envs(
                std::env::var("BENCH_DATABASE_MAX_CONNECTIONS")
                    .map(|n| ("DATABASE_MAX_CONNECTIONS", n)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("serve log"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        Self {
            pid: child.id() as i32,
            child,
            address: format!("127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits until `GET /healthz` answers.
    async fn wait_until_up(&self) {
        let health = format!("http://{}/healthz", self.address);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "serve did not answer on {health}; see {}",
            self.log.display()
        );
    }

    fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
        }
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting, from /proc (clock ticks)

#[derive(Clone, Copy, Default)]
struct CpuSample {
    /// This process: the load generator (or nothing, while pgbench runs).
    client: u64,
    /// pgbench, once it has exited (children's time of this process).
    children: u64,
    serve: u64,
    /// The postmaster and all its children (backends, checkpointer, WAL writer, …), including
    /// those that exited in between (they are added to the postmaster's children's time).
    postgres: u64,
    machine_busy: u64,
    machine_total: u64,
}

fn proc_stat(pid: i32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    // Field 3 (state) is skipped: ppid is index 0 below, utime 10, stime 11, cutime 12,
    // cstime 13 (fields 4, 14, 15, 16, 17 of proc(5)).
    Some(
        after
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

impl CpuSample {
    fn take(serve: &Serve, cluster: &LocalCluster) -> Self {
        let own = proc_stat(std::process::id() as i32).unwrap_or_default();
        let serve_stat = proc_stat(serve.pid).unwrap_or_default();
        let postmaster = cluster.pid();
        let mut postgres = proc_stat(postmaster).map_or(0, |s| s[10] + s[11] + s[12] + s[13]);
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(s) = proc_stat(pid).filter(|s| s[0] == postmaster as u64) {
                postgres += s[10] + s[11];
            }
        }
        let machine: Vec<u64> = std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let total: u64 = machine.iter().sum();
        let idle = machine.get(3).copied().unwrap_or(0) + machine.get(4).copied().unwrap_or(0);
        Self {
            client: own.get(10).copied().unwrap_or(0) + own.get(11).copied().unwrap_or(0),
            children: own.get(12).copied().unwrap_or(0) + own.get(13).copied().unwrap_or(0),
            serve: serve_stat.get(10).copied().unwrap_or(0)
                + serve_stat.get(11).copied().unwrap_or(0),
            postgres,
            machine_busy: total - idle,
            machine_total: total,
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            client: self.client - before.client,
            children: self.children - before.children,
            serve: self.serve - before.serve,
            postgres: self.postgres.saturating_sub(before.postgres),
            machine_busy: self.machine_busy - before.machine_busy,
            machine_total: self.machine_total - before.machine_total,
        }
    }

    fn ms(ticks: u64) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks as f64 * 1000.0 / hz
    }

    fn per_event_ms(&self, ticks: u64, events: usize) -> f64 {
        Self::ms(ticks) / events.max(1) as f64
    }

    /// CPU of everything else on the machine (other builds and tests, the kernel's own
    /// threads): the noise of the measurement, in cores.
    fn others_cores(&self) -> f64 {
        let ours = self.client + self.children + self.serve + self.postgres;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.machine_busy.saturating_sub(ours) as f64 / self.machine_total.max(1) as f64 * cores
    }

    /// Cores busy on average (of 2 here), from /proc/stat.
    fn cores_busy(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.machine_busy as f64 / self.machine_total.max(1) as f64 * cores
    }

    fn describe(&self, events: usize) -> String {
        format!(
            "CPU ms per event: load generator {:.3}, pgbench {:.3}, serve {:.3}, postgres {:.3}; \
             cores busy {:.2}, of which other processes {:.2}",
            self.per_event_ms(self.client, events),
            self.per_event_ms(self.children, events),
            self.per_event_ms(self.serve, events),
            self.per_event_ms(self.postgres, events),
            self.cores_busy(),
            self.others_cores()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds and pgbench

/// The Supabase users our customers link to (`metadata.user_id`), as sign-up made them.
async fn seed_our_users(db: &PgPool, count: u64) {
    sqlx::query(
        "insert into auth.users (id, email)
         select lpad(to_hex(g), 32, '0')::uuid, 'user' || g || '@example.com'
           from generate_series(1::bigint, $1) g",
    )
    .bind(count as i64)
    .execute(db)
    .await
    .expect("seed users");
}

/// The existing customers pgbench's updates pick from (uniformly; like ours, rarely the same).
async fn seed_pgbench_customers(db: &PgPool, seeds: u64) {
    sqlx::query(
        "insert into auth.users (id, email)
         select lpad(to_hex($2 + g), 32, '0')::uuid, 'pgbseed' || g || '@example.com'
           from generate_series(1::bigint, $1) g",
    )
    .bind(seeds as i64)
    .bind(PGBENCH_SEED_USER_BASE as i64)
    .execute(db)
    .await
    .expect("seed pgbench users");
    sqlx::query(
        "insert into public.stripe_customers
             (stripe_customer_id, user_id, customer_email, customer_name, customer_metadata)
         select 'cus_pgbseed' || g, lpad(to_hex($2 + g), 32, '0')::uuid,
                'pgbseed' || g || '@example.com', 'Grace Hopper', $3
           from generate_series(1::bigint, $1) g",
    )
    .bind(seeds as i64)
    .bind(PGBENCH_SEED_USER_BASE as i64)
    .bind(sqlx::types::Json(row_metadata()))
    .execute(db)
    .await
    .expect("seed pgbench customers");
}

/// The users of pgbench's new customers at this level: `2^40 + n` for every `n` it can draw.
async fn seed_pgbench_users(db: &PgPool, level: usize, concurrency: usize, events: usize) {
    sqlx::query(
        "insert into auth.users (id, email)
         select lpad(to_hex($1 + $2 * 1000000000 + c * 1000000 + i), 32, '0')::uuid,
                'pgb' || $2 || 'x' || c || 'x' || i || '@example.com'
           from generate_series(0::bigint, $3 - 1) c, generate_series(1::bigint, $4) i",
    )
    .bind(PGBENCH_NEW_USER_BASE as i64)
    .bind(level as i64)
    .bind(concurrency as i64)
    .bind(events.div_ceil(concurrency) as i64)
    .execute(db)
    .await
    .expect("seed pgbench users");
}

/// What the service writes into `customer_metadata` for one of our events.
fn row_metadata() -> Value {
    json!({
        "stripe": {
            "user_id": Uuid::from_u128(PGBENCH_SEED_USER_BASE.into()).to_string(),
            "plan": "pro",
            "supabase_project": "pmwhrtczqlbkdnyvsgaj"
        },
        "sync": {
            "status": "synced",
            "last_event_id": "evt_c16l3n00004711",
            "last_event_type": "customer.created",
            "last_event_created": 1_732_500_000,
            "synced_at": "2026-11-25T10:00:00Z",
            "error": null
        }
    })
}

/// Replaces `$1`, `$2`, … of `sql` with what `arg` gives for each number.
fn bind_pgbench(sql: &str, arg: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len() * 2);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) => out.push_str(&arg(n)),
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    // pgbench reads a script line by line: no line may start with a backslash command by
    // accident, and blank lines inside a statement are fine.
    out
}

/// The service's per-event statements with pgbench variables for its parameters, each cast to
/// the type sqlx binds it as. Every 5th transaction of a client updates a pre-seeded customer
/// (snapshot read, then the compare-and-set update on the version it read); the others create a
/// new customer (snapshot read, then the insert). No BEGIN/COMMIT: the service runs none either
/// (each write is one statement: the row, its audit row and the ledger entry commit together).
fn pgbench_script_text() -> String {
    let uuid = |var: &str| format!("(lpad(to_hex((:{var})::bigint), 32, '0'))::uuid");
    let ledger = |n: usize, event_type: &str| -> String {
        match n {
            1 => "('evt_pgb' || :lvl || 'x' || :n)::text".into(),
            2 => format!("(:{event_type})::text"),
            3 => "(:livemode)::boolean".into(),
            4 => "(:apiver)::text".into(),
            5 => "(:created)::timestamptz".into(),
            6 => "(:payload)::text".into(),
            7 => "false".into(),
            8 => "(null)::text".into(),
            11 => "('c' || :n || '@example.com')::text".into(),
            12 => "(:cname)::text".into(),
            13 => "(:pm)::text".into(),
            14 => "(:meta)::jsonb".into(),
            15 => "(:s_version)::text".into(),
            _ => unreachable!("${n}"),
        }
    };
    let new_customer = "('cus_pgb' || :lvl || 'x' || :n)::text";
    let seeded_customer = "('cus_pgbseed' || :k)::text";
    let snapshot_new = bind_pgbench(SNAPSHOT_SQL, |n| match n {
        2 => new_customer.into(),
        3 => uuid("u"),
        n => ledger(n, "etype_c"),
    });
    let insert = bind_pgbench(INSERT_SQL, |n| match n {
        9 => new_customer.into(),
        10 => uuid("u"),
        n => ledger(n, "etype_c"),
    });
    let snapshot_update = bind_pgbench(SNAPSHOT_SQL, |n| match n {
        2 => seeded_customer.into(),
        3 => uuid("uk"),
        n => ledger(n, "etype_u"),
    });
    let update = bind_pgbench(UPDATE_SQL, |n| match n {
        9 => seeded_customer.into(),
        10 => uuid("uk"),
        n => ledger(n, "etype_u"),
    });
    format!(
        "\\set i :i + 1\n\
         \\set n :client_id * 1000000 + :i\n\
         \\if :i % 5 = 0\n\
         \\set k random(1, :seeds)\n\
         \\set uk {PGBENCH_SEED_USER_BASE} + :k\n\
         {snapshot_update} \\gset s_\n\
         {update};\n\
         \\else\n\
         \\set u {PGBENCH_NEW_USER_BASE} + :lvl * 1000000000 + :n\n\
         {snapshot_new};\n\
         {insert};\n\
         \\endif\n"
    )
}

struct PgbenchLevel<'a> {
    index: usize,
    concurrency: usize,
    events: usize,
    seeds: u64,
    payload: &'a str,
}

struct PgbenchResult {
    tps: f64,
    transactions: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn run_pgbench(
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

async fn checkpoint(db: &PgPool) {
    // Each measured phase starts right after a checkpoint: the same full-page-write burden
    // for the service and for pgbench.
    db.execute("checkpoint").await.expect("checkpoint");
}

fn start_perf(out: &Path) -> Child {
    let extra = std::env::var("BENCH_PERF_ARGS").unwrap_or_else(|_| "-F 999 -g".into());
    Command::new("perf")
        .arg("record")
        .args(extra.split_whitespace())
        .arg("-a")
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("perf record")
}

fn stop_perf(mut perf: Child) {
    // SAFETY: kill(2) on our own child; perf writes its file on SIGINT.
    unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
    let _ = perf.wait();
}

// ---------------------------------------------------------------------------------------------
// Lookups at 1 M rows

struct LookupReport {
    rows: i64,
    load_secs: f64,
    by_user: (f64, f64, f64),
    by_customer: (f64, f64, f64),
    plan_user: String,
}

/// Fills `stripe_customers` up to `rows` rows (users first: the foreign key), then times
/// `lookups` random lookups by `user_id` and by `stripe_customer_id`, one connection, prepared
/// statements, each timed from send to the row received.
async fn lookup_benchmark(db: &PgPool, rows: u64, lookups: usize) -> LookupReport {
    println!("\n== lookups: filling stripe_customers to {rows} rows");
    let load_started = Instant::now();
    let existing: i64 = sqlx::query_scalar("select count(*) from public.stripe_customers")
        .fetch_one(db)
        .await
        .expect("count");
    let missing = (rows as i64 - existing).max(0);
    let mut conn = db.acquire().await.expect("connection");
    sqlx::query(
        "insert into auth.users (id, email)
         select lpad(to_hex($2 + g), 32, '0')::uuid, 'lookup' || g || '@example.com'
           from generate_series(1::bigint, $1) g",
    )
    .bind(missing)
    .bind(LOOKUP_USER_BASE as i64)
    .execute(&mut *conn)
    .await
    .expect("users");
    // The bulk load skips the row triggers (the audit trail and updated_at), which would
    // otherwise double its time; this session only, and the rows are valid (users exist).
    conn.execute("set session_replication_role = replica")
        .await
        .expect("replica role");
    sqlx::query(
        "insert into public.stripe_customers
             (stripe_customer_id, user_id, customer_email, customer_name,
              default_payment_method, customer_metadata)
         select 'cus_L' || g, lpad(to_hex($2 + g), 32, '0')::uuid, 'lookup' || g || '@example.com',
                'Grace Hopper', 'pm_1Lookup' || g, $3
           from generate_series(1::bigint, $1) g",
    )
    .bind(missing)
    .bind(LOOKUP_USER_BASE as i64)
    .bind(sqlx::types::Json(row_metadata()))
    .execute(&mut *conn)
    .await
    .expect("customers");
    conn.execute("reset session_replication_role")
        .await
        .expect("reset role");
    conn.execute("vacuum analyze auth.users, public.stripe_customers")
        .await
        .expect("analyze");
    drop(conn);
    let load_secs = load_started.elapsed().as_secs_f64();
    let total: i64 = sqlx::query_scalar("select count(*) from public.stripe_customers")
        .fetch_one(db)
        .await
        .expect("count");
    println!("{total} rows in {load_secs:.0} s");

    // The vacuum's writes flushed now, not by a checkpoint in the middle of the timing.
    checkpoint(db).await;
    // One plain connection, not a pool: a pool's checkout and return each cost a ping, round
    // trips of the benchmark's client, not of the lookup.
    let options: PgConnectOptions = db.connect_options().as_ref().clone();
    let mut lookup_conn = PgConnection::connect_with(&options)
        .await
        .expect("lookup connection");
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let by_user = "select id, stripe_customer_id, customer_email, customer_name,
                          default_payment_method, customer_metadata, created_at, updated_at
                     from public.stripe_customers where user_id = $1";
    let by_customer = "select id, user_id, customer_email, customer_name,
                              default_payment_method, customer_metadata, created_at, updated_at
                         from public.stripe_customers where stripe_customer_id = $1";
    let plan_user: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "explain {}",
        by_user.replace(
            "$1",
            &format!("'{}'", Uuid::from_u128(LOOKUP_USER_BASE as u128 + 1))
        )
    )))
    .fetch_all(&mut lookup_conn)
    .await
    .expect("explain");
    let plan_user = plan_user.first().cloned().unwrap_or_default();
    println!("plan by user_id: {plan_user}");

    let mut time = async |kind: &str| -> (f64, f64, f64) {
        let mut latencies = Vec::with_capacity(lookups);
        for i in 0..lookups + lookups / 10 {
            let g = 1 + rng.next() % missing.max(1) as u64;
            let sent = Instant::now();
            let row = if kind == "user" {
                sqlx::query(by_user)
                    .bind(Uuid::from_u128(u128::from(LOOKUP_USER_BASE + g)))
                    .fetch_optional(&mut lookup_conn)
                    .await
            } else {
                sqlx::query(by_customer)
                    .bind(format!("cus_L{g}"))
                    .fetch_optional(&mut lookup_conn)
                    .await
            }
            .expect("lookup");
            let took = sent.elapsed().as_micros() as u64;
            assert!(row.is_some(), "lookup {kind} {g} found nothing");
            if i >= lookups / 10 {
                latencies.push(took); // the first tenth warms up
            }
        }
        latencies.sort_unstable();
        (
            percentile(&latencies, 0.50) as f64 / 1000.0,
            percentile(&latencies, 0.99) as f64 / 1000.0,
            latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        )
    };
    let by_user_result = time("user").await;
    let by_customer_result = time("customer").await;
    lookup_conn.close().await.ok();
    LookupReport {
        rows: total,
        load_secs,
        by_user: by_user_result,
        by_customer: by_customer_result,
        plan_user,
    }
}

// ---------------------------------------------------------------------------------------------
// Report

struct LevelReport {
    concurrency: usize,
    events: usize,
    per_second: f64,
    p50: f64,
    p99: f64,
    max: f64,
    processed_answers: usize,
    processed_rows: usize,
    other_answers: usize,
    cpu: CpuSample,
    rss_mb: f64,
    pgbench: PgbenchResult,
    pgbench_cpu: CpuSample,
}

fn print_machine() {
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

fn print_summary(
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

/// pgbench of the same installation: beside `postgres`, or beside what a symlink to it points
/// at (`/usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres`), else on PATH.
fn find_pgbench(binaries: &PgBinaries) -> PathBuf {
    let beside = |dir: &Path| Some(dir.join("pgbench")).filter(|p| p.is_file());
    beside(binaries.dir())
        .or_else(|| {
            let real = std::fs::canonicalize(binaries.dir().join("postgres")).ok()?;
            beside(real.parent()?)
        })
        .unwrap_or_else(|| PathBuf::from("pgbench"))
}

/// The cluster runs as the `postgres` OS user when we are root: it must reach its directory.
fn make_traversable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}
