//! Seeds the benchmark database and runs checkpoints.

use serde_json::{Value, json};
use sqlx::{Executor, PgPool};
use uuid::Uuid;

use crate::{PGBENCH_NEW_USER_BASE, PGBENCH_SEED_USER_BASE};

/// The Supabase users our customers link to (`metadata.user_id`), as sign-up made them.
pub async fn seed_our_users(db: &PgPool, count: u64) {
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
pub async fn seed_pgbench_customers(db: &PgPool, seeds: u64) {
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
pub async fn seed_pgbench_users(db: &PgPool, level: usize, concurrency: usize, events: usize) {
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
pub fn row_metadata() -> Value {
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

pub async fn checkpoint(db: &PgPool) {
    // Each measured phase starts right after a checkpoint: the same full-page-write burden
    // for the service and for pgbench.
    db.execute("checkpoint").await.expect("checkpoint");
}
