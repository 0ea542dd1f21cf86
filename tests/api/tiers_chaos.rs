//! Chaos: two replicas, every event delivered twice, shuffled and concurrently, for several
//! organizations at once; each ends in the tier of its in-order history, each event recorded
//! once (docs/design.md "Tiers"). Without the lock on the customer (`store::subscriptions::
//! lock_customer`), two subscriptions of one owner compute its tier from each other's stale
//! rows, and this fails in most runs.

use futures::future::join_all;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::organizations::{create_organization, create_organizations_schema};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::subscriptions::{SubscriptionEvent, new_subscription_id, organization_tier};
use crate::helpers::{migrated_database, spawn_app_with};

/// One organization's history: two subscriptions; the enterprise one ends, the pro one is
/// past due (which still grants access). In order, the tier ends `pro`.
fn history(customer: &str) -> Vec<SubscriptionEvent> {
    let (a, b) = (new_subscription_id(), new_subscription_id());
    vec![
        SubscriptionEvent::created(&a, customer)
            .price_by_lookup_key("pro")
            .at(T0),
        SubscriptionEvent::updated(&a, customer)
            .price_by_metadata("enterprise")
            .at(T0 + 10),
        SubscriptionEvent::deleted(&a, customer)
            .price_by_metadata("enterprise")
            .at(T0 + 20),
        SubscriptionEvent::created(&b, customer)
            .price_by_lookup_key("pro")
            .at(T0 + 5),
        SubscriptionEvent::updated(&b, customer)
            .price_by_lookup_key("pro")
            .status("past_due")
            .at(T0 + 15),
    ]
}

/// A fixed shuffle (no randomness in the test): a stride through the list.
fn shuffled<T: Clone>(items: &[T], stride: usize) -> Vec<T> {
    let n = items.len();
    (0..n)
        .map(|i| items[(i * stride + 3) % n].clone())
        .collect()
}

#[tokio::test]
async fn duplicated_shuffled_concurrent_deliveries_on_two_replicas_end_in_the_in_order_tier() {
    let db = migrated_database().await;
    let url = db.url.clone();
    let app = spawn_app_with(db, |_| {}).await;
    create_organizations_schema(&app.db.pool).await;
    let replicas = [
        ServeProcess::start(&url, &[]).await,
        ServeProcess::start(&url, &[]).await,
    ];

    let mut organizations = Vec::new();
    let mut payloads = Vec::new();
    for _ in 0..20 {
        let organization = create_organization(&app.db.pool, "Org", None).await;
        let customer = new_customer_id();
        let created = CustomerEvent::created(&customer, T0 - 100)
            .metadata("organization_id", &organization.to_string());
        app.deliver_expecting(&created.json(), "processed").await;
        for event in history(&customer) {
            // Twice each: Stripe's retries, or a delivery to both endpoints.
            payloads.push(event.json());
            payloads.push(event.json());
        }
        organizations.push(organization);
    }
    // 200 deliveries; a stride coprime with 200 visits each once.
    let order = shuffled(&payloads, 7);
    let deliveries = order.iter().enumerate().map(|(i, payload)| {
        let replica = &replicas[i % 2];
        async move { replica.deliver(payload).await }
    });
    for (status, body) in join_all(deliveries).await {
        assert_eq!(status, 200, "{body}");
    }

    for organization in organizations {
        assert_eq!(
            organization_tier(&app, organization).await.as_deref(),
            Some("pro"),
            "{organization}"
        );
    }
    let recorded: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_webhook_events where type like 'customer.subscription.%'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 100, "each event recorded once");
}
