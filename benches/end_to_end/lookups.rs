//! Lookups at 1 M rows.

use std::time::Instant;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::LOOKUP_USER_BASE;
use crate::database::{checkpoint, row_metadata};
use crate::percentile::percentile;
use crate::rng::XorShift;

pub struct LookupReport {
    pub rows: i64,
    pub load_secs: f64,
    pub by_user: (f64, f64, f64),
    pub by_customer: (f64, f64, f64),
    pub plan_user: String,
}

/// Fills `stripe_customers` up to `rows` rows (users first: the foreign key), then times
/// `lookups` random lookups by `user_id` and by `stripe_customer_id`, one connection, prepared
/// statements, each timed from send to the row received.
pub async fn lookup_benchmark(db: &PgPool, rows: u64, lookups: usize) -> LookupReport {
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
