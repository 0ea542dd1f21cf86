//! `catch-up`'s own state: the completed runs (where the next one starts listing) and the
//! lease that lets one run at a time.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use super::StoreError;

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

/// How long a run's lease lasts without being renewed. While the run's process lives, a task of
/// its own renews it every third of that, whatever the run is waiting for; a process that died
/// leaves it to run out, and the next run takes it within this long.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// The lease of one run (`public.stripe_catch_up_lease`): one run at a time across replicas and
/// the command line, with no transaction or connection held while the run waits for Stripe (a
/// transaction-scoped advisory lock did that for the run's whole length).
pub struct RunLock {
    pool: PgPool,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock")
            .field("holder", &self.holder)
            .finish()
    }
}

fn lease_interval() -> String {
    format!("{} seconds", LEASE.as_secs())
}

/// Takes the lease if it is free or has run out; `None` while another run holds it.
pub async fn try_lock(pool: &PgPool) -> Result<Option<RunLock>, StoreError> {
    let holder = format!("run-{}", uuid::Uuid::new_v4().simple());
    let taken: Option<String> = sqlx::query_scalar(
        "insert into public.stripe_catch_up_lease (holder, held_until)
         values ($1, now() + $2::interval)
         on conflict (singleton) do update
            set holder = excluded.holder, held_until = excluded.held_until
          where public.stripe_catch_up_lease.held_until < now()
         returning holder",
    )
    .bind(&holder)
    .bind(lease_interval())
    .fetch_optional(pool)
    .await?;
    Ok(taken.map(|holder| RunLock {
        pool: pool.clone(),
        renewer: tokio::spawn(renew_while_alive(pool.clone(), holder.clone())),
        holder,
    }))
}

/// Renews the lease every third of [`LEASE`] until the run ends (the task is aborted) or the
/// lease is lost (the run finds out at its next [`RunLock::keep_alive`]).
async fn renew_while_alive(pool: PgPool, holder: String) {
    loop {
        tokio::time::sleep(LEASE / 3).await;
        match renew(&pool, &holder).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(error = %error, "could not renew the catch-up lease; trying again")
            }
        }
    }
}

async fn renew(pool: &PgPool, holder: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "update public.stripe_catch_up_lease set held_until = now() + $2::interval
          where holder = $1",
    )
    .bind(holder)
    .bind(lease_interval())
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

impl RunLock {
    /// Records the completed run and gives the lease back, in one transaction: a run is on
    /// record only if it still held the lease when it ended.
    pub async fn complete(self, run: &CompletedRun) -> Result<(), StoreError> {
        self.renewer.abort();
        let mut transaction = self.pool.begin().await?;
        let held = sqlx::query("delete from public.stripe_catch_up_lease where holder = $1")
            .bind(&self.holder)
            .execute(&mut *transaction)
            .await?
            .rows_affected()
            == 1;
        if !held {
            return Err(lost());
        }
        record_completed(&mut *transaction, run).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Renews the lease, and checks it is still this run's. Called as the run goes: a run whose
    /// lease was lost (its database unreachable for longer than [`LEASE`], and another run took
    /// it) stops rather than run beside the other.
    pub async fn keep_alive(&mut self) -> Result<(), StoreError> {
        if renew(&self.pool, &self.holder).await? {
            Ok(())
        } else {
            Err(lost())
        }
    }

    /// Gives the lease back.
    pub async fn release(self) -> Result<(), StoreError> {
        self.renewer.abort();
        sqlx::query("delete from public.stripe_catch_up_lease where holder = $1")
            .bind(&self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn lost() -> StoreError {
    StoreError::Unavailable(sqlx::Error::Protocol(
        "the catch-up lease ran out and another run took it".into(),
    ))
}
