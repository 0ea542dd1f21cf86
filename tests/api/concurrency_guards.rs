//! Two `serve` processes on one database, different events of one customer at the same time:
//! the guards that keep the outcome equal to some order of delivery. Each test fails without
//! the guard it names (see the comments), not only in theory: the races are run many times.

use futures::future::join_all;
use serde_json::Value;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::{TestApp, migrated_database, spawn_app_with};

/// Two replicas on a fresh migrated database, plus a handle on its pool for assertions.
async fn two_replicas() -> (TestApp, [ServeProcess; 2]) {
    let db = migrated_database().await;
    let url = db.url.clone();
    let first = ServeProcess::start(&url, &[]).await;
    let second = ServeProcess::start(&url, &[]).await;
    // The in-process app is only the test's window on the database.
    (spawn_app_with(db, |_| {}).await, [first, second])
}

async fn row(app: &TestApp, customer: &str) -> Value {
    app.customer(customer)
        .await
        .unwrap_or_else(|| panic!("no row for {customer}"))
}

/// Without the compare-and-set on the row version (`xmin` in `update_row!`, the one update of
/// `store/customers/write`, alone and in the webhook's batches), two updates that read the same
/// row both write, and an older one can land last.
#[tokio::test]
async fn racing_updates_of_one_customer_on_two_replicas_leave_the_newest() {
    let (app, replicas) = two_replicas().await;
    const UPDATES: i64 = 8;
    let customers: Vec<String> = (0..12).map(|_| new_customer_id()).collect();
    for customer in &customers {
        let (status, body) = replicas[0]
            .deliver(&CustomerEvent::created(customer, T0).json())
            .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("processed")));
    }
    let mut deliveries = Vec::new();
    for (c, customer) in customers.iter().enumerate() {
        for n in 1..=UPDATES {
            let event = CustomerEvent::updated(customer, T0 + n).name(&format!("version {n}"));
            // Newest first on one replica, oldest first on the other: the most overtaking.
            let replica = &replicas[(n as usize + c) % 2];
            deliveries.push(async move { replica.deliver(&event.json()).await });
        }
    }
    for (status, body) in join_all(deliveries).await {
        assert_eq!(status, 200, "{body}");
        assert!(
            matches!(body["status"].as_str(), Some("processed")) || body["reason"] == "stale_event",
            "{body}"
        );
    }
    for customer in &customers {
        let stored = row(&app, customer).await;
        assert_eq!(
            (
                stored["customer_name"].as_str(),
                stored["customer_metadata"]["sync"]["last_event_created"].as_i64()
            ),
            (
                Some(format!("version {UPDATES}").as_str()),
                Some(T0 + UPDATES)
            ),
            "{customer}"
        );
    }
}

/// Deleted is terminal under concurrency too: a delete without email (no tombstone possible)
/// racing the customer's creation never leaves a live row. Without the guard on a record-only
/// decision (`record_guard!` in `store::ledger`, alone and in batches: the row must still be as
/// read, and for a deletion against no row, `stripe_customers_may_record_deletion` looks again
/// under a per-customer lock) and its counterpart on the insert (`stripe_customers_may_insert`),
/// the delete is recorded as skipped while the creation inserts the row, and the deleted
/// customer stays live.
#[tokio::test]
async fn a_delete_without_email_racing_the_creation_never_leaves_a_live_row() {
    let (app, replicas) = two_replicas().await;
    let customers: Vec<String> = (0..60).map(|_| new_customer_id()).collect();
    let deliveries = customers.iter().enumerate().flat_map(|(i, customer)| {
        let created = CustomerEvent::created(customer, T0);
        let deleted = CustomerEvent::deleted(customer, T0 + 1).email(None);
        let (a, b) = (&replicas[i % 2], &replicas[(i + 1) % 2]);
        [
            Box::pin(async move { a.deliver(&created.json()).await })
                as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>,
            Box::pin(async move { b.deliver(&deleted.json()).await }),
        ]
    });
    for (status, body) in join_all(deliveries).await {
        assert_eq!(status, 200, "{body}");
    }
    for customer in &customers {
        if let Some(stored) = app.customer(customer).await {
            assert_eq!(
                stored["customer_metadata"]["sync"]["status"], "deleted",
                "{customer}"
            );
        }
    }
}
