//! `serve`'s background catch-up across replicas: one run at a time, each event applied once.

use std::time::{Duration, Instant};

use crate::catch_up::customer;
use crate::helpers::events::CustomerEvent;
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{StripeDouble, TEST_API_KEY};
use crate::helpers::{now, spawn_app};

/// A `serve` replica with the Stripe API at the double and a catch-up every second.
async fn replica(database_url: &str, double: &StripeDouble) -> ServeProcess {
    ServeProcess::start(
        database_url,
        &[
            ("STRIPE_API_KEY", TEST_API_KEY),
            ("STRIPE_API_BASE", &double.base_url),
            ("CATCH_UP_INTERVAL", "1s"),
        ],
    )
    .await
}

#[tokio::test]
async fn two_serve_replicas_catch_up_one_at_a_time_and_apply_each_event_once() {
    const N: usize = 150;
    let app = spawn_app().await; // only for its database and helpers
    let double = StripeDouble::start().await;
    // Created a minute ago: every run's window holds them all, so every run lists 2 pages.
    let events: Vec<String> = (0..N)
        .map(|i| CustomerEvent::created(&customer(i), now() - 60).json())
        .collect();
    double.add_events(events.iter().map(String::as_str));
    // A slow Stripe: a run takes over a second, longer than the interval between runs.
    double.set_latency(Duration::from_millis(500));

    let a = replica(&app.db.url, &double).await;
    let b = replica(&app.db.url, &double).await;

    const LOCKED: &str = r#"stripe_catch_up_runs_total{result="locked"}"#;
    const COMPLETED: &str = r#"stripe_catch_up_runs_total{result="completed"}"#;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let locked = a.metric(LOCKED).await + b.metric(LOCKED).await;
        let completed = a.metric(COMPLETED).await + b.metric(COMPLETED).await;
        if app.ledger_count().await == N as i64 && locked >= 1.0 && completed >= 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ledger {}, locked {locked}, completed {completed}",
            app.ledger_count().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each event applied once: one ledger row and one audit row (one insert) per event, and the
    // replicas' counts add up to exactly that, with no duplicate from overlapping runs.
    const PROCESSED: &str = r#"stripe_catch_up_events_total{outcome="processed"}"#;
    const DUPLICATE: &str = r#"stripe_catch_up_events_total{outcome="duplicate"}"#;
    assert_eq!(
        a.metric(PROCESSED).await + b.metric(PROCESSED).await,
        N as f64
    );
    assert_eq!(a.metric(DUPLICATE).await + b.metric(DUPLICATE).await, 0.0);
    assert_eq!(app.ledger_count().await, N as i64);
    assert_eq!(app.audit_count().await, N as i64);
    // The lock shows: some turns were skipped, and the completed runs never overlapped.
    let runs: Vec<(
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
        String,
    )> = sqlx::query_as(
        "select listing_started_at, finished_at, started_by from public.stripe_catch_up_runs
              order by listing_started_at",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert!(runs.len() >= 3);
    assert!(runs.iter().all(|(_, _, by)| by == "serve"));
    // `listing_started_at` is one second before Stripe's `Date` (whole seconds) at the latest,
    // so it reads up to 2 s early; `finished_at` is the end of the run.
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1 - chrono::Duration::seconds(2),
            "runs overlapped: {pair:?}"
        );
    }
    assert!(
        a.metric("stripe_catch_up_last_completed_timestamp_seconds")
            .await
            > 0.0
            || b.metric("stripe_catch_up_last_completed_timestamp_seconds")
                .await
                > 0.0
    );

    assert!(
        a.terminate().await,
        "serve exits 0 on SIGTERM, catch-up and all"
    );
    assert!(b.terminate().await);
}
