//! The statements that take a batch of events (or a page of customers) as arrays reach the
//! customers and the ledger through their indexes, never by reading a table whole: also in the
//! generic plan that PostgreSQL makes once for a prepared statement and then reuses, made while
//! the tables are still small. The planner cannot know how many elements the arrays will hold
//! and guesses; a guess of 1,000 once turned the per-event lookups into whole-table scans, and
//! every event of the first minutes of a deployment paid for the whole table.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use stripe_customer_sync::store::customers::ARRAY_STATEMENTS;

use crate::helpers::migrated_database;

/// Rows in each table: past what a scan reads as fast as a handful of index lookups.
const ROWS: i32 = 20_000;

async fn seed_customers_and_ledger(connection: &mut PgConnection) {
    sqlx::query(
        "insert into public.stripe_customers (stripe_customer_id, customer_email)
         select 'cus_seed' || g, 'seed' || g || '@example.com'
           from generate_series(1, $1) g",
    )
    .bind(ROWS)
    .execute(&mut *connection)
    .await
    .expect("seed customers");
    sqlx::query(
        "insert into public.stripe_webhook_events
             (id, type, livemode, stripe_created, outcome, payload)
         select 'evt_seed' || g, 'customer.created', false, now(), 'ignored',
                '{\"object\": \"event\"}'
           from generate_series(1, $1) g",
    )
    .bind(ROWS)
    .execute(&mut *connection)
    .await
    .expect("seed the ledger");
    sqlx::query("analyze public.stripe_customers, public.stripe_webhook_events")
        .execute(&mut *connection)
        .await
        .expect("analyze");
}

/// The generic plan of `sql`, as `EXPLAIN` prints it (every parameter null: a generic plan
/// does not depend on the values).
async fn generic_plan(connection: &mut PgConnection, name: &str, sql: &str) -> String {
    // The statements are the service's own constants.
    sqlx::raw_sql(AssertSqlSafe(format!("prepare {name} as {sql}")))
        .execute(&mut *connection)
        .await
        .expect("prepare the statement");
    let parameters: i32 = sqlx::query_scalar(
        "select cardinality(parameter_types) from pg_prepared_statements where name = $1",
    )
    .bind(name)
    .fetch_one(&mut *connection)
    .await
    .expect("the statement's parameters");
    let nulls = vec!["null"; usize::try_from(parameters).expect("a count")].join(", ");
    let lines: Vec<String> =
        sqlx::query_scalar(AssertSqlSafe(format!("explain execute {name}({nulls})")))
            .fetch_all(&mut *connection)
            .await
            .expect("explain the statement");
    lines.join("\n")
}

#[tokio::test]
async fn statements_over_arrays_reach_customers_and_ledger_through_indexes_in_a_generic_plan() {
    let db = migrated_database().await;
    let mut connection = PgConnection::connect(&db.url).await.expect("connect");
    seed_customers_and_ledger(&mut connection).await;
    sqlx::query("set plan_cache_mode = force_generic_plan")
        .execute(&mut connection)
        .await
        .expect("generic plans only");

    for (n, (name, sql)) in ARRAY_STATEMENTS.into_iter().enumerate() {
        let plan = generic_plan(&mut connection, &format!("checked_{n}"), sql).await;
        for table in ["stripe_customers", "stripe_webhook_events"] {
            assert!(
                !plan.contains(&format!("Seq Scan on {table}")),
                "the {name} reads {table} whole:\n{plan}"
            );
        }
    }
}
