//! Stripe does not deliver in order: every delivery order of one subscription's events ends
//! in the tier of the in-order history (docs/design.md "Tiers").

use uuid::Uuid;

use crate::helpers::TestApp;
use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::organizations::create_organization;
use crate::helpers::subscriptions::{
    SubscriptionEvent, new_subscription_id, organization_tier, organization_with_customer,
};

/// Every order of `n` items (Heap's algorithm would do; n is 3).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for shorter in permutations(n - 1) {
        for at in 0..=shorter.len() {
            let mut order = shorter.clone();
            order.insert(at, n - 1);
            all.push(order);
        }
    }
    all
}

/// Another organization, with its customer linked, in the same app.
async fn another_organization(app: &TestApp) -> (Uuid, String) {
    let organization = create_organization(&app.db.pool, "Other", None).await;
    let customer_id = new_customer_id();
    let created = CustomerEvent::created(&customer_id, T0 - 100)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&created.json(), "processed").await;
    (organization, customer_id)
}

/// Delivers the history built by `history` in every order, each to an organization of its
/// own, and asserts each ends in `expected`.
async fn every_order_ends_in(
    history: impl Fn(&str, &str) -> Vec<SubscriptionEvent>,
    expected: &str,
) {
    let first = organization_with_customer().await;
    let app = &first.app;
    let orders = permutations(3);
    assert_eq!(orders.len(), 6);
    for (index, order) in orders.iter().enumerate() {
        let (organization, customer_id) = if index == 0 {
            (first.organization, first.customer_id.clone())
        } else {
            another_organization(app).await
        };
        let events = history(&new_subscription_id(), &customer_id);
        for &i in order {
            let (status, body) = app.deliver_json(&events[i].json()).await;
            assert_eq!(status, 200, "{body}");
        }
        assert_eq!(
            organization_tier(app, organization).await.as_deref(),
            Some(expected),
            "delivery order {order:?}"
        );
    }
}

#[tokio::test]
async fn every_delivery_order_of_an_upgrade_ends_in_the_upgraded_tier() {
    every_order_ends_in(
        |subscription, customer| {
            vec![
                SubscriptionEvent::created(subscription, customer)
                    .price_by_lookup_key("pro")
                    .status("incomplete")
                    .at(T0),
                // The same second as the creation: its rank orders it after.
                SubscriptionEvent::updated(subscription, customer)
                    .price_by_lookup_key("pro")
                    .at(T0),
                SubscriptionEvent::updated(subscription, customer)
                    .price_by_lookup_key("enterprise")
                    .at(T0 + 60),
            ]
        },
        "enterprise",
    )
    .await;
}

#[tokio::test]
async fn every_delivery_order_of_a_cancellation_ends_in_the_lowest_tier() {
    every_order_ends_in(
        |subscription, customer| {
            vec![
                SubscriptionEvent::created(subscription, customer)
                    .price_by_lookup_key("pro")
                    .at(T0),
                SubscriptionEvent::updated(subscription, customer)
                    .price_by_lookup_key("enterprise")
                    .at(T0 + 30),
                // The same second as the upgrade: a deletion ranks last.
                SubscriptionEvent::deleted(subscription, customer)
                    .price_by_lookup_key("enterprise")
                    .at(T0 + 30),
            ]
        },
        "free",
    )
    .await;
}
