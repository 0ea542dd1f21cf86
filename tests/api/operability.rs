//! What an operator polls: `/healthz`, `/readyz`, `/metrics`.

use std::time::Duration;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{DedicatedCluster, TestApp, now, spawn_app, spawn_app_with, stripe_signature};

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of one sample line of the exposition, e.g. `name{labels}`; 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let app = spawn_app().await;
    assert_eq!(get(&app, "/healthz").await.0, 200);
}

#[tokio::test]
async fn metrics_count_processed_duplicate_and_bad_signature_requests() {
    let app = spawn_app().await;
    let event = CustomerEvent::created(&new_customer_id(), T0).json();
    app.deliver(&event).await;
    app.deliver(&event).await;
    let forged = stripe_signature(&event, "whsec_not_ours", now());
    app.post_webhook(event.clone().into_bytes(), Some(&forged))
        .await;

    let (status, text) = get(&app, "/metrics").await;
    assert_eq!(status, 200);
    let created = r#"stripe_webhook_events_total{type="customer.created","#;
    assert_eq!(
        sample(&text, &format!(r#"{created}outcome="processed"}}"#)),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!(r#"{created}outcome="duplicate"}}"#)),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"stripe_webhook_signature_failures_total{reason="invalid_signature"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"stripe_webhook_request_duration_seconds_count{status="200"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"stripe_webhook_request_duration_seconds_count{status="400"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(
        text.contains(r#"database_pool_connections{state="idle"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn readyz_goes_503_while_the_database_is_gone_and_200_when_it_is_back() {
    let mut cluster = DedicatedCluster::start().await;
    let app = spawn_app_with(cluster.migrated_database().await, |_| {}).await;
    assert_eq!(get(&app, "/readyz").await.0, 200);

    cluster.stop().await;
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database_unavailable"), "{body}");

    cluster.restart().await;
    let mut status = 0;
    for _ in 0..50 {
        status = get(&app, "/readyz").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "readyz must recover without a restart of the service"
    );
}

#[tokio::test]
async fn readyz_is_503_while_migrations_are_pending() {
    let app = spawn_app().await;
    stripe_customer_sync::store::schema::revert_last(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("migrations_pending"), "{body}");
}
