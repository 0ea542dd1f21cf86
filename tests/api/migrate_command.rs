//! `stripe-customer-sync migrate`, run as an operator runs it.

use std::process::{Command, Output};

use stripe_customer_sync::store::schema::MIGRATOR;

use crate::helpers::shim_only_database;

const BINARY: &str = env!("CARGO_BIN_EXE_stripe-customer-sync");

async fn migrate(database_url: &str, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command
        .arg("migrate")
        .args(args)
        .current_dir(std::env::temp_dir()) // away from any developer .env
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "json");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn table_exists(pool: &sqlx::PgPool, table: &str) -> bool {
    sqlx::query_scalar("select to_regclass($1) is not null")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrate_applies_every_migration_and_revert_undoes_only_the_last() {
    let db = shim_only_database().await;
    let applied = migrate(&db.url, &[]).await;
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    for table in [
        "public.stripe_customers",
        "public.stripe_webhook_events",
        "public.stripe_customers_audit",
        "public.stripe_catch_up_runs",
    ] {
        assert!(table_exists(&db.pool, table).await, "{table}");
    }

    let reverted = migrate(&db.url, &["--revert"]).await;
    assert!(
        reverted.status.success(),
        "{}",
        String::from_utf8_lossy(&reverted.stderr)
    );
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap();
    assert!(!applied_versions(&db.pool).await.contains(&latest));
    assert_eq!(
        applied_versions(&db.pool).await.len(),
        MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count()
            - 1,
        "only the last migration is reverted"
    );
    assert!(table_exists(&db.pool, "public.stripe_customers_audit").await);

    let again = migrate(&db.url, &[]).await;
    assert!(again.status.success());
    assert!(applied_versions(&db.pool).await.contains(&latest));
}

async fn applied_versions(pool: &sqlx::PgPool) -> Vec<i64> {
    sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn unreachable_database_is_one_clear_line_and_a_failure() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let output = migrate("postgres://postgres@127.0.0.1:1/postgres", &[]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.contains("cannot connect to the database"), "{stderr}");
}

#[tokio::test]
async fn malformed_database_url_names_the_variable() {
    let output = migrate("not a url", &[]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}
