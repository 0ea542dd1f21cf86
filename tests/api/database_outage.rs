//! "Database unavailable → 503 within 5 s, nothing half-written; Stripe retries." On a cluster
//! of this test's own: the shared test cluster keeps running for every other test.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{DedicatedCluster, TableCounts, expected_answer, spawn_app_with};

#[tokio::test]
async fn database_stopped_answers_503_and_after_restart_the_retried_delivery_is_processed() {
    let mut cluster = DedicatedCluster::start().await;
    let app = spawn_app_with(cluster.migrated_database().await, |_| {}).await;
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;
    let before_outage = (app.table_counts().await, app.customer(&customer).await);
    assert_eq!(
        before_outage.0,
        TableCounts {
            ledger: 1,
            customers: 1,
            audit: 1
        }
    );

    cluster.stop().await;
    let update = CustomerEvent::updated(&customer, T0 + 1).name("Ada King");
    let started = Instant::now();
    let (status, body) = app.deliver_json(&update.json()).await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");

    // No service restart: the same app, its pool reconnecting on its own.
    cluster.restart().await;
    assert_eq!(
        (app.table_counts().await, app.customer(&customer).await),
        before_outage,
        "nothing half-written"
    );
    // Stripe retries until it gets a 2xx. Right after the restart the pool may still hand out
    // a connection that died with the old server, so a try may meet a 503 again: retry as
    // Stripe would, and what counts is that the retried delivery is processed, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        let (status, body) = app.deliver_json(&update.json()).await;
        if status != 503 || Instant::now() >= deadline {
            break (status, body);
        }
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status, &body),
        (200, &expected_answer(&update.json(), "processed")),
        "answer to the retried delivery"
    );
    assert_eq!(app.ledger_count().await, 2);
    assert_eq!(
        app.customer(&customer).await.unwrap()["customer_name"],
        json!("Ada King")
    );
}
