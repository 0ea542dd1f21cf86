//! Rows written and read in SQL directly, below the service: for the schema's own rules.

use serde_json::{Value, json};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// Inserts a minimal customer row; the email is derived from the Stripe id.
pub(crate) async fn insert_customer(
    db: impl PgExecutor<'_>,
    user_id: Option<Uuid>,
    stripe_customer_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into public.stripe_customers (user_id, stripe_customer_id, customer_email)
         values ($1, $2, $3)",
    )
    .bind(user_id)
    .bind(stripe_customer_id)
    .bind(format!("{stripe_customer_id}@example.com"))
    .execute(db)
    .await
    .map(drop)
}

/// Inserts a ledger row with the given outcome and reason.
pub(crate) async fn insert_event(
    db: impl PgExecutor<'_>,
    id: &str,
    outcome: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, outcome, reason, payload)
         values ($1, 'customer.updated', false, '2026-09-30.clover', now(), $2, $3, $4)",
    )
    .bind(id)
    .bind(outcome)
    .bind(reason)
    .bind(json!({ "id": id, "object": "event" }))
    .execute(db)
    .await
    .map(drop)
}

/// The SQLSTATE and constraint of a statement that must have been rejected.
pub(crate) fn rejection(result: Result<(), sqlx::Error>) -> (String, Option<String>) {
    let error = result.expect_err("the statement should have been rejected");
    let db = error
        .as_database_error()
        .unwrap_or_else(|| panic!("not a database error: {error}"));
    (
        db.code().unwrap_or_default().into_owned(),
        db.constraint().map(str::to_owned),
    )
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub operation: String,
    pub old_row: Option<Value>,
    pub new_row: Option<Value>,
    pub event_id: Option<String>,
    pub changed_by: String,
}

/// The audit trail of one customer, oldest first.
pub(crate) async fn audit_rows(db: impl PgExecutor<'_>, stripe_customer_id: &str) -> Vec<AuditRow> {
    sqlx::query_as(
        "select operation, old_row, new_row, event_id, changed_by
         from public.stripe_customers_audit
         where stripe_customer_id = $1
         order by id",
    )
    .bind(stripe_customer_id)
    .fetch_all(db)
    .await
    .expect("read audit trail")
}

/// The user's outbox row as JSON, or `None`.
pub async fn outbox_row(pool: &PgPool, user: Uuid) -> Option<serde_json::Value> {
    sqlx::query_scalar("select to_jsonb(o) from public.stripe_customer_outbox o where user_id = $1")
        .bind(user)
        .fetch_optional(pool)
        .await
        .unwrap()
}

pub async fn create_profiles(pool: &PgPool) {
    sqlx::raw_sql(
        "create table public.profiles (
             id uuid primary key references auth.users (id) on delete cascade,
             full_name text,
             avatar_url text)",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// A transaction as the app's signed-in `user` (role `authenticated`, their JWT claims set), as
/// PostgREST runs a request: what row level security lets them read.
pub async fn as_signed_in_user(
    pool: &PgPool,
    user: uuid::Uuid,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(serde_json::json!({ "sub": user, "role": "authenticated" }).to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}
