//! `serve`'s background catch-up: a first run shortly after start-up, then one every
//! `CATCH_UP_INTERVAL`. Every replica tries; the run's lease lets one through and the
//! others skip their turn (counted as `locked`). A failed run is logged and counted; the next
//! one covers its window.
//!
//! A Stripe whose Events API this key cannot use (a restricted key without the Events read
//! permission, a mock that has no `/v1/events`) fails every run the same way: that is said
//! once, as a WARN naming the fix, and the runs back off (the interval doubling up to
//! [`MAX_BACKOFF`]) instead of logging an ERROR every interval.

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
use crate::stripe_api::ApiError;
use crate::stripe_api::StripeClient;
use crate::sync::SyncSettings;

/// The first run waits this long (or the interval, if shorter), so that start-up's log and
/// the first webhooks come first.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(2);
/// On shutdown, a run in progress gets this long to finish before it is dropped (each event is
/// one statement, and the lock ends with its connection: dropping a run loses nothing).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between runs while the Events API stays out of reach (or the interval,
/// if longer).
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What a run needs, owned by the task.
pub(crate) struct Context {
    pub pool: PgPool,
    pub client: StripeClient,
    pub settings: SyncSettings,
    pub metrics: Arc<Metrics>,
}

impl Worker {
    /// Starts the periodic runs on the current tokio runtime.
    pub(crate) fn spawn(context: Context, interval: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        tracing::info!(
            interval = %Human(interval),
            "catch-up from Stripe's Events API runs in the background"
        );
        let task = tokio::spawn(run_periodically(context, interval, stopped));
        Self { stop, task }
    }

    /// Stops the runs: waits for one in progress, a little.
    pub(crate) async fn stop(self) {
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
    // Runs in a row that could not use the Events API.
    let mut refused_runs: u32 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => return,
        }
        let result = tokio::select! {
            result = super::run(&context.pool, &context.client, &context.settings, &options) => result,
            _ = stopped.changed() => return,
        };
        if let Err(CatchUpError::Api(error)) = &result
            && let Some(why) = events_api_out_of_reach(error)
        {
            refused_runs = refused_runs.saturating_add(1);
            delay = backoff(interval, refused_runs);
            context
                .metrics
                .catch_up_finished(CatchUpResult::Failed, [], Utc::now().timestamp());
            if refused_runs == 1 {
                tracing::warn!(
                    why,
                    next_run_in = %Human(delay),
                    "the background catch-up cannot list Stripe's events (GET /v1/events): give \
                     STRIPE_API_KEY the Events read permission (a restricted key: Events, Read), \
                     or set CATCH_UP_INTERVAL=0 to turn the catch-up off; until then it retries \
                     less and less often, and says so only at debug level"
                );
            } else {
                tracing::debug!(why, refused_runs, next_run_in = %Human(delay), "catch-up still cannot list events");
            }
            continue;
        }
        if refused_runs > 0 && result.is_ok() {
            tracing::info!("the background catch-up lists Stripe's events again");
            refused_runs = 0;
        }
        delay = interval;
        record(&context.metrics, result);
    }
}

/// Why an error says this key (or this API) cannot list events at all, however often it is
/// asked: it was refused (401/403: a restricted key without the Events permission), or what
/// answered is no events list (a 404 or 400 from a mock that has no Events API). `None` for
/// what a later run may get past (exhausted retries, a refused page).
fn events_api_out_of_reach(error: &ApiError) -> Option<&'static str> {
    match error {
        ApiError::Unauthorized { .. } => Some("Stripe refused the key for GET /v1/events"),
        ApiError::UnknownUrl { .. } => Some("GET /v1/events is unknown to STRIPE_API_BASE"),
        ApiError::Malformed { .. } => Some("the answer to GET /v1/events is no events list"),
        ApiError::Rejected {
            status: 400 | 404, ..
        } => Some("GET /v1/events is unknown to STRIPE_API_BASE"),
        _ => None,
    }
}

/// The wait after the `refused_runs`-th refused run in a row: the interval, doubled each time,
/// up to [`MAX_BACKOFF`] (or the interval, if longer).
fn backoff(interval: Duration, refused_runs: u32) -> Duration {
    let factor = 1u32 << refused_runs.min(16);
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
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
            tracing::info!("catch-up skipped: another replica is running it (it holds the lease)");
        }
        Err(error) => {
            metrics.catch_up_finished(CatchUpResult::Failed, [], now);
            tracing::error!(error = %error, "catch-up failed; the next run covers its window");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_refused_by_the_events_api_wait_twice_as_long_each_time_up_to_an_hour() {
        let minute = Duration::from_secs(60);
        assert_eq!(backoff(minute, 1), 2 * minute);
        assert_eq!(backoff(minute, 2), 4 * minute);
        assert_eq!(backoff(minute, 10), MAX_BACKOFF);
        assert_eq!(backoff(minute, u32::MAX), MAX_BACKOFF);
        let day = Duration::from_secs(86_400);
        assert_eq!(backoff(day, 3), day, "never more often than the interval");
    }
}
