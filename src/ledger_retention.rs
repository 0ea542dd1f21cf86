//! `serve`'s ledger retention (`LEDGER_RETENTION`): off the hot path, a pass a few minutes after
//! start-up and then every hour removes the rows received longer ago than the retention, in
//! batches small enough that no lock or WAL burst is felt by the webhook's writers. Every
//! replica tries; a transaction-scoped advisory lock lets one batch run at a time.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::LedgerRetention;
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::ledger_retention::{remove_expired, size_bytes};

/// Rows removed per statement: a few milliseconds of work, a small WAL record each.
pub const BATCH: i64 = 1_000;
/// The pause between two batches, which leaves the disk and the locks to the webhooks.
const PAUSE: Duration = Duration::from_millis(50);
const FIRST_PASS_AFTER: Duration = Duration::from_secs(120);
const EVERY: Duration = Duration::from_secs(3_600);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    pub removed: u64,
    pub batches: u64,
    /// Another replica held the lock: this pass stopped there.
    pub locked_out: bool,
}

/// Removes every row older than `retention`, `batch` rows at a time (a pause between two).
pub async fn pass(
    pool: &PgPool,
    retention: Duration,
    batch: i64,
    pause: Duration,
) -> Result<Pass, StoreError> {
    let before =
        Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut done = Pass::default();
    loop {
        match remove_expired(pool, before, batch).await? {
            None => {
                done.locked_out = true;
                return Ok(done);
            }
            Some(removed) => {
                done.removed += removed;
                done.batches += 1;
                if removed < batch as u64 {
                    return Ok(done);
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Starts the passes on the current runtime; `None` when the retention is off.
    pub(crate) fn spawn(
        pool: PgPool,
        retention: LedgerRetention,
        metrics: Arc<Metrics>,
    ) -> Option<Self> {
        let LedgerRetention::After(after) = retention else {
            tracing::info!("LEDGER_RETENTION is off: the ledger keeps every event");
            return None;
        };
        tracing::info!(%retention, "ledger rows older than the retention are removed hourly");
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut delay = FIRST_PASS_AFTER;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stopped.changed() => return,
                }
                delay = EVERY;
                match pass(&pool, after, BATCH, PAUSE).await {
                    Ok(done) => {
                        metrics.ledger_rows_removed(done.removed);
                        if done.removed > 0 {
                            tracing::info!(removed = done.removed, "ledger retention pass");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "ledger retention pass failed; next in an hour")
                    }
                }
                if let Ok(bytes) = size_bytes(&pool).await {
                    metrics.ledger_size(bytes);
                }
            }
        });
        Some(Self { stop, task })
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_TIMEOUT, self.task).await.is_err() {
            abort.abort();
        }
    }
}
