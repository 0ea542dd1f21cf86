//! What creating a user's customer reads and records (`public.stripe_customer_creations`), and
//! the per-user lock that makes one creation at a time per user, on any number of replicas.
//!
//! Every statement is unnamed (`persistent(false)`): a creation runs a handful, and nothing
//! here then needs a session, so it works through a transaction-mode pooler as it is.
//!
//! The lock is a TRANSACTION-scoped advisory lock (a session lock would outlive the transaction
//! behind a pooler in transaction mode and land on someone else's connection): the caller holds
//! it in an explicit transaction for the length of one step of the creation, Stripe call
//! included, bounded by the timeouts set with it.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::StoreError;
use crate::domain::ColumnName;

/// The advisory lock class of customer creations ("SCUS"); the user id's hash is the object.
/// The two-int key space never meets the one-bigint keys (catch-up's run lock).
const LOCK_CLASS: i32 = 0x5343_5553;

/// Bounds the step's lock wait and statements (`statement_timeout`, `lock_timeout`), and frees
/// the lock of a holder that stopped mid-step (`idle_in_transaction_session_timeout`: the
/// server ends its session). Transaction-local (`set_config(…, true)`), as a pooler in
/// transaction mode requires; then waits for the user's lock.
pub async fn lock_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    wait: std::time::Duration,
    idle: std::time::Duration,
) -> Result<(), StoreError> {
    let wait_ms = format!("{}ms", wait.as_millis());
    let idle_ms = format!("{}ms", idle.as_millis());
    sqlx::query(
        "select set_config('statement_timeout', $1, true),
                set_config('lock_timeout', $1, true),
                set_config('idle_in_transaction_session_timeout', $2, true)",
    )
    .persistent(false)
    .bind(&wait_ms)
    .bind(&idle_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2::text))")
        .persistent(false)
        .bind(LOCK_CLASS)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The user's live linked customer, if any (a tombstone holds no user).
pub async fn linked_customer(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "select stripe_customer_id from public.stripe_customers
          where user_id = $1 and customer_metadata #>> '{sync,status}' is distinct from 'deleted'",
    )
    .persistent(false)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// What a new customer is made of, from Supabase's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub email: Option<String>,
    /// `public.profiles.<name column>`, where that table and column exist.
    pub name: Option<String>,
}

/// The user's email (`auth.users`) and name (`public.profiles.<name_column>`, keyed by the
/// user id, where that table and column exist and this login may read them: a least-privilege
/// login without the grant creates customers without a name rather than failing); `None`: no
/// such user.
pub async fn user_record(
    conn: &mut PgConnection,
    user_id: Uuid,
    name_column: &ColumnName,
) -> Result<Option<UserRecord>, StoreError> {
    let user: Option<(Option<String>, bool)> = sqlx::query_as(
        "select u.email,
                exists (select 1 from pg_catalog.pg_attribute a
                         where a.attrelid = pg_catalog.to_regclass('public.profiles')
                           and a.attname = $2 and a.attnum > 0 and not a.attisdropped
                           and pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')
                           and pg_catalog.has_column_privilege(a.attrelid, 'id', 'SELECT'))
                    as name_readable
           from auth.users u
          where u.id = $1",
    )
    .persistent(false)
    .bind(user_id)
    .bind(name_column.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((email, name_readable)) = user else {
        return Ok(None);
    };
    let name = if name_readable {
        // One column, so that a column-level grant is enough; ColumnName quotes exactly.
        let sql = format!(
            "select p.{}::text from public.profiles p where p.id = $1",
            name_column.quoted()
        );
        sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql))
            .persistent(false)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten()
    } else {
        None
    };
    let clean = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    Ok(Some(UserRecord {
        email: clean(email),
        name: clean(name),
    }))
}

/// The user's last creation attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    /// How long ago it started, by the database's clock (the one that stamped it).
    pub age: std::time::Duration,
    /// The attempt linked its customer (`finished_at` is set).
    pub finished: bool,
    /// What the attempt sends to Stripe: every retry of its key sends the same.
    pub email: String,
    pub name: Option<String>,
}

pub async fn last_attempt(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<Attempt>, StoreError> {
    type Row = (i64, DateTime<Utc>, f64, bool, String, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "select attempt, started_at,
                greatest(extract(epoch from clock_timestamp() - started_at), 0)::float8,
                finished_at is not null, email, name
           from public.stripe_customer_creations where user_id = $1",
    )
    .persistent(false)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(
        |(attempt, started_at, age, finished, email, name)| Attempt {
            attempt,
            started_at,
            age: std::time::Duration::from_secs_f64(age),
            finished,
            email,
            name,
        },
    ))
}

/// Records that `attempt` starts now (not finished), sending `email` and `name`; returns it
/// as stored.
pub async fn start_attempt(
    conn: &mut PgConnection,
    user_id: Uuid,
    attempt: i64,
    email: &str,
    name: Option<&str>,
) -> Result<Attempt, StoreError> {
    let started_at: DateTime<Utc> = sqlx::query_scalar(
        "insert into public.stripe_customer_creations as c
             (user_id, attempt, started_at, email, name)
         values ($1, $2, clock_timestamp(), $3, $4)
         on conflict (user_id) do update
            set attempt = excluded.attempt, started_at = excluded.started_at,
                email = excluded.email, name = excluded.name,
                finished_at = null, stripe_customer_id = null
         returning started_at",
    )
    .persistent(false)
    .bind(user_id)
    .bind(attempt)
    .bind(email)
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Attempt {
        attempt,
        started_at,
        age: std::time::Duration::ZERO,
        finished: false,
        email: email.to_owned(),
        name: name.map(str::to_owned),
    })
}

/// Records that `attempt` linked `stripe_customer_id`; in the transaction that wrote the row.
pub async fn finish_attempt(
    conn: &mut PgConnection,
    user_id: Uuid,
    attempt: i64,
    stripe_customer_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "update public.stripe_customer_creations
            set finished_at = clock_timestamp(), stripe_customer_id = $3
          where user_id = $1 and attempt = $2",
    )
    .persistent(false)
    .bind(user_id)
    .bind(attempt)
    .bind(stripe_customer_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
