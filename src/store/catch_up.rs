//! `catch-up`'s own state: the completed runs (where the next one starts listing) and the
//! advisory lock that lets one replica run at a time.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use super::StoreError;

/// The advisory lock key of a catch-up run ("STRPCTCH" in ASCII): one per database, so one run
/// at a time across every replica and the command line.
pub const LOCK_KEY: i64 = 0x5354_5250_4354_4348;

/// Rows older than this are deleted as new ones are written: Stripe keeps events for 30 days,
/// so a run that old cannot tell the next one anything it could still use.
const KEEP_RUNS_FOR: &str = "90 days";

/// Who started a run (`started_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    Serve,
    Command,
}

impl StartedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Command => "command",
        }
    }
}

/// A run that listed and applied everything in its window.
#[derive(Debug, Clone, Copy)]
pub struct CompletedRun {
    pub listed_from: DateTime<Utc>,
    pub listing_started_at: DateTime<Utc>,
    pub events_listed: i64,
    pub events_applied: i64,
    pub started_by: StartedBy,
}

/// When the newest completed run started listing; `None` before the first one.
pub async fn last_listing_start(
    db: impl PgExecutor<'_>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(
        sqlx::query_scalar("select max(listing_started_at) from public.stripe_catch_up_runs")
            .fetch_one(db)
            .await?,
    )
}

/// Records a completed run (and forgets runs too old to matter), in one statement.
pub async fn record_completed(
    db: impl PgExecutor<'_>,
    run: &CompletedRun,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "with pruned as (
             delete from public.stripe_catch_up_runs
              where finished_at < now() - interval '{KEEP_RUNS_FOR}'
         )
         insert into public.stripe_catch_up_runs
             (listed_from, listing_started_at, events_listed, events_applied, started_by)
         values ($1, $2, $3, $4, $5)"
    )))
    .bind(run.listed_from)
    .bind(run.listing_started_at)
    .bind(run.events_listed)
    .bind(run.events_applied)
    .bind(run.started_by.as_str())
    .execute(db)
    .await?;
    Ok(())
}

/// The lock of one run: a TRANSACTION-scoped advisory lock, held by an open transaction on a
/// connection of its own for as long as the run lasts. Transaction-scoped because a session
/// lock outlives its transaction, which a transaction-mode pooler (PgBouncer, Supavisor on
/// 6543) cannot allow: the next transaction of that session may run on another server
/// connection. If the process dies, the connection closes and PostgreSQL ends the transaction
/// and its lock with it.
pub struct RunLock {
    transaction: Transaction<'static, Postgres>,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunLock")
    }
}

/// Takes the lock if no other run holds it; `None` when one does.
pub async fn try_lock(pool: &PgPool) -> Result<Option<RunLock>, StoreError> {
    let mut transaction = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *transaction)
        .await?;
    if locked {
        Ok(Some(RunLock { transaction }))
    } else {
        transaction.rollback().await?;
        Ok(None)
    }
}

impl RunLock {
    /// Records the completed run in the lock's transaction and commits: the record and the end
    /// of the lock are one step.
    pub async fn complete(mut self, run: &CompletedRun) -> Result<(), StoreError> {
        record_completed(&mut *self.transaction, run).await?;
        self.transaction.commit().await?;
        Ok(())
    }

    /// Checks, on the lock's own connection, that the lock is still held (taking it again
    /// within the transaction that holds it succeeds and nests). Called as the run goes: it
    /// keeps the transaction from sitting idle long enough for an
    /// `idle_in_transaction_session_timeout` (or a pooler's idle transaction timeout) to end it
    /// unnoticed, and a run whose connection was lost stops rather than run beside another.
    pub async fn keep_alive(&mut self) -> Result<(), StoreError> {
        let held: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut *self.transaction)
            .await?;
        if held {
            Ok(())
        } else {
            // Cannot happen within the transaction that took it; if it did, stop the run.
            Err(StoreError::Unavailable(sqlx::Error::Protocol(
                "the catch-up lock is no longer held".into(),
            )))
        }
    }

    /// Ends the transaction, and the lock with it.
    pub async fn release(self) -> Result<(), StoreError> {
        self.transaction.rollback().await?;
        Ok(())
    }
}
