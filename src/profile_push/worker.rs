//! `serve`'s profile push: drains `public.stripe_customer_outbox` whenever a trigger's NOTIFY
//! says a user was queued (LISTEN on a session of its own), and on a periodic sweep, the safety
//! net for a notification missed while the listening connection was down (or for a deployment
//! that cannot LISTEN: a transaction-mode pooler). Between drains it also wakes when the next
//! back-off ends or another replica's lease runs out.
//!
//! Every replica runs one; the lease of each claim keeps them off each other's rows. On
//! shutdown the worker stops claiming and lets the push in flight finish; one cut off by the
//! stop timeout gives its lease back, so another replica takes the row at once.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Pusher;
use crate::store::outbox;

/// The sweep, when NOTIFY wakes the worker: only a safety net.
const SWEEP_WITH_LISTEN: Duration = Duration::from_secs(15);
/// The sweep without LISTEN: it alone finds new changes, and a push must follow within seconds.
const SWEEP_WITHOUT_LISTEN: Duration = Duration::from_secs(1);
/// After a notification, wait this long for the rest of a burst of edits (a form saving the
/// email and the name one after the other), so that one push carries them all.
const GATHER_EDITS: Duration = Duration::from_millis(200);
/// On shutdown, a push in flight gets its own time limit plus this to finish.
const STOP_MARGIN: Duration = Duration::from_secs(2);
/// While the database cannot be reached: how often to try again (and log it).
const DATABASE_RETRY: Duration = Duration::from_secs(5);

pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    pool: PgPool,
    worker_id: String,
    stop_timeout: Duration,
}

impl Worker {
    /// Starts the worker on the current tokio runtime.
    pub(crate) fn spawn(pusher: Pusher) -> Self {
        let (stop, stopped) = watch::channel(false);
        tracing::info!(
            name_column = %pusher.settings.name_column,
            listen = pusher.settings.listen,
            "profile changes are pushed to Stripe in the background"
        );
        let pool = pusher.pool.clone();
        let worker_id = pusher.worker_id.clone();
        let stop_timeout = pusher.settings.timeout + STOP_MARGIN;
        let task = tokio::spawn(run(pusher, stopped));
        Self {
            stop,
            task,
            pool,
            worker_id,
            stop_timeout,
        }
    }

    /// Stops claiming; waits for the push in flight (bounded); gives back a lease cut off.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(self.stop_timeout, self.task)
            .await
            .is_err()
        {
            abort.abort();
            match outbox::release(&self.pool, &self.worker_id).await {
                Ok(released) if released > 0 => {
                    tracing::info!(released, "profile push cut off by shutdown; row released")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    error = %error,
                    "could not release the profile push's lease; it runs out by itself"
                ),
            }
        }
        self.pool.close().await;
    }
}

async fn run(pusher: Pusher, mut stopped: watch::Receiver<bool>) {
    check_name_column(&pusher).await;
    let sweep = if pusher.settings.listen {
        SWEEP_WITH_LISTEN
    } else {
        SWEEP_WITHOUT_LISTEN
    };
    let mut listener = None;
    let mut next_listen = tokio::time::Instant::now();
    let mut last_cleanup = tokio::time::Instant::now();
    loop {
        if pusher.settings.listen
            && listener.is_none()
            && tokio::time::Instant::now() >= next_listen
        {
            listener = listen(&pusher.pool).await;
            next_listen = tokio::time::Instant::now() + DATABASE_RETRY;
        }
        let next_due = drain(&pusher, &stopped).await;
        if *stopped.borrow() {
            return;
        }
        if last_cleanup.elapsed() >= sweep {
            last_cleanup = tokio::time::Instant::now();
            if let Err(error) = outbox::delete_done(&pusher.pool, super::ECHO_WINDOW).await {
                tracing::warn!(error = %error, "could not clean the profile push outbox");
            }
        }
        let wait = next_due.map_or(sweep, |due| due.min(sweep));
        let notified = async {
            match listener.as_mut() {
                Some(listener) => listener.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            received = notified => match received {
                Ok(()) => {
                    // Let the rest of a burst land; the drain takes them all in one go.
                    tokio::select! {
                        () = tokio::time::sleep(GATHER_EDITS) => {}
                        _ = stopped.changed() => return,
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        error = %error,
                        "lost the LISTEN connection; sweeping until it is back"
                    );
                    listener = None;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Says at start-up what names will be pushed, and warns of a PROFILE_NAME_COLUMN that
/// public.profiles does not have.
async fn check_name_column(pusher: &Pusher) {
    let column = &pusher.settings.name_column;
    match outbox::profiles_have_column(&pusher.pool, column).await {
        Ok((true, true)) => {}
        Ok((true, false)) => tracing::warn!(
            column = %column,
            "public.profiles has no column PROFILE_NAME_COLUMN names: names are not pushed \
             to Stripe, emails are"
        ),
        Ok((false, _)) => {
            tracing::info!("no public.profiles: only emails are pushed to Stripe")
        }
        // The database is not there yet: the drain says so, and pushes names once it is.
        Err(_) => {}
    }
}

/// A listener on the triggers' channel; `None` (logged) when the database cannot be reached:
/// the sweep carries on and the next turn tries again.
async fn listen(pool: &PgPool) -> Option<PgListener> {
    let connected = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(outbox::CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match connected.await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(
                error = %error,
                "cannot LISTEN for profile changes; sweeping until it can"
            );
            None
        }
    }
}

/// Pushes every due row, one after the other, until none is due or the worker is stopped;
/// then reads the queue for the metrics, and returns how long until the next row falls due.
async fn drain(pusher: &Pusher, stopped: &watch::Receiver<bool>) -> Option<Duration> {
    while !*stopped.borrow() {
        match pusher.push_next().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(error = %error, "profile push: database unavailable; retrying");
                return Some(DATABASE_RETRY);
            }
        }
    }
    match outbox::stats(&pusher.pool, pusher.settings.min_interval).await {
        Ok(stats) => {
            pusher
                .metrics
                .profile_push_queue(stats.depth, stats.oldest_age_secs);
            stats.next_due.map(|due| {
                (due - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    // a due row that was not claimable (another replica's, just then)
                    .max(Duration::from_millis(50))
            })
        }
        Err(error) => {
            tracing::warn!(error = %error, "profile push: cannot read the queue");
            Some(DATABASE_RETRY)
        }
    }
}
