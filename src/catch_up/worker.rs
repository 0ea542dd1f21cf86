//! `serve`'s background catch-up: a first run shortly after start-up, then one every
//! `CATCH_UP_INTERVAL`. Every replica tries; the run's advisory lock lets one through and the
//! others skip their turn (counted as `locked`). A failed run is logged and counted; the next
//! one covers its window.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{CatchUpError, CatchUpOptions};
use crate::domain::duration::Human;
use crate::metrics::{CatchUpResult, Metrics};
use crate::store::catch_up::StartedBy;
use crate::stripe_api::StripeClient;
use crate::sync::SyncSettings;

/// The first run waits this long (or the interval, if shorter), so that start-up's log and
/// the first webhooks come first.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(2);
/// On shutdown, a run in progress gets this long to finish before it is dropped (each event is
/// one statement, and the lock ends with its connection: dropping a run loses nothing).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What a run needs, owned by the task.
pub struct Context {
    pub pool: PgPool,
    pub client: StripeClient,
    pub settings: SyncSettings,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    /// Starts the periodic runs on the current tokio runtime.
    pub fn spawn(context: Context, interval: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        tracing::info!(
            interval = %Human(interval),
            "catch-up from Stripe's Events API runs in the background"
        );
        let task = tokio::spawn(run_periodically(context, interval, stopped));
        Self { stop, task }
    }

    /// Stops the runs: waits for one in progress, a little.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_TIMEOUT, self.task).await.is_err() {
            abort.abort();
        }
    }
}

async fn run_periodically(
    context: Context,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let options = CatchUpOptions {
        since: None,
        dry_run: false,
        started_by: StartedBy::Serve,
        progress: false,
    };
    let mut delay = FIRST_RUN_AFTER.min(interval);
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => return,
        }
        delay = interval;
        let result = tokio::select! {
            result = super::run(&context.pool, &context.client, &context.settings, &options) => result,
            _ = stopped.changed() => return,
        };
        record(&context.metrics, result);
    }
}

fn record(metrics: &Metrics, result: Result<super::Summary, CatchUpError>) {
    let now = Utc::now().timestamp();
    match result {
        Ok(summary) => {
            if let Some(created) = summary.newest_event_created {
                metrics.event_recorded(created);
            }
            metrics.catch_up_finished(
                CatchUpResult::Completed,
                summary.applied.iter().map(|(outcome, n)| (*outcome, *n)),
                now,
            );
            // Rows changed: webhooks lost those changes. Events that changed nothing (stale by
            // the time they were listed) are the normal traffic of a late or racing delivery.
            let processed = summary.applied.get("processed").copied().unwrap_or(0);
            if processed > 0 {
                tracing::warn!(
                    processed,
                    applied = summary.applied_count(),
                    seen = summary.seen,
                    "catch-up applied events that webhooks had not delivered, and rows changed"
                );
            }
        }
        Err(CatchUpError::Locked) => {
            metrics.catch_up_finished(CatchUpResult::Locked, [], now);
            tracing::info!("catch-up skipped: another replica is running it (advisory lock held)");
        }
        Err(error) => {
            metrics.catch_up_finished(CatchUpResult::Failed, [], now);
            tracing::error!(error = %error, "catch-up failed; the next run covers its window");
        }
    }
}
