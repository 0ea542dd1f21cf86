//! Thin `v1.customer.subscription.*` events (docs/design.md "Tiers"): the subscription is
//! fetched from Stripe (the double) and applied under the subscription rules as a fetched
//! state; a subscription Stripe does not know never ends anything.

use serde_json::json;

use crate::helpers::commands::workdir;
use crate::helpers::event_id_of;
use crate::helpers::events::T0;
use crate::helpers::spawn_app_with_stripe;
use crate::helpers::stripe_double::{Fault, StripeDouble, Target, output};
use crate::helpers::subscriptions::{
    OrganizationWithCustomer, SubscriptionEvent, new_subscription_id, organization_tier,
    organization_with_customer_in, subscription_row, thin_subscription_event,
};

async fn organization_with_stripe(double: &StripeDouble) -> OrganizationWithCustomer {
    organization_with_customer_in(spawn_app_with_stripe(double).await).await
}

#[tokio::test]
async fn a_thin_subscription_event_sets_the_tier_from_the_fetched_subscription() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    let subscription = new_subscription_id();
    let state = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_by_lookup_key("enterprise");
    double.put_subscription(state.object());

    let created = thin_subscription_event("v1.customer.subscription.created", &subscription);
    app.deliver_expecting(&created, "processed").await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
    let row = subscription_row(app, &subscription).await.expect("the row");
    assert_eq!(row["last_event_type"], "v1.customer.subscription.created");
    assert_eq!(row["last_event_id"], event_id_of(&created).as_str());
    let ledger = app.ledger_row(&event_id_of(&created)).await.unwrap();
    assert_eq!(ledger["type"], "v1.customer.subscription.created");
    assert_eq!(ledger["outcome"], "processed");

    // Again: a duplicate, without a second fetch.
    app.deliver_expecting(&created, "duplicate").await;
    let path = format!("/v1/subscriptions/{subscription}");
    assert_eq!(double.requests_to(&path).len(), 1);

    // Canceled in Stripe: the thin deletion fetches it ended.
    double.put_subscription(state.status("canceled").object());
    let deleted = thin_subscription_event("v1.customer.subscription.deleted", &subscription);
    app.deliver_expecting(&deleted, "processed").await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("free")
    );
    let row = subscription_row(app, &subscription).await.unwrap();
    assert_eq!(row["ended"], true);
}

#[tokio::test]
async fn a_thin_subscription_event_for_a_subscription_stripe_does_not_know_is_failed_and_ends_nothing()
 {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    let subscription = new_subscription_id();
    let created = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(T0);
    app.deliver_expecting(&created.json(), "processed").await;

    // The key's account and mode do not know it (another key, test data wiped): not an end.
    let deleted = thin_subscription_event("v1.customer.subscription.deleted", &subscription);
    app.deliver_expecting(&deleted, "failed subscription_not_found")
        .await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("pro")
    );
    let row = subscription_row(app, &subscription).await.unwrap();
    assert_eq!(
        (&row["ended"], &row["status"]),
        (&json!(false), &json!("active"))
    );

    // Once the key knows it, `reapply-failed` fetches it again and applies it.
    double.put_subscription(created.status("canceled").object());
    let dir = workdir();
    let out = output(double.command(&app.db.url, dir.path(), &["reapply-failed", "--json"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(results[0]["status"], "processed", "{results}");
    app.assert_recorded(&event_id_of(&deleted), "processed")
        .await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("free")
    );
}

#[tokio::test]
async fn a_snapshot_event_older_than_a_thin_events_fetch_is_stale() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    let subscription = new_subscription_id();
    let state = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("enterprise");
    double.put_subscription(state.object());
    let thin = thin_subscription_event("v1.customer.subscription.updated", &subscription);
    app.deliver_expecting(&thin, "processed").await;

    // Sent before the fetch, delivered after it: the fetch already saw what came after.
    let older = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(crate::helpers::now() - 600);
    app.deliver_expecting(&older.json(), "skipped stale_event")
        .await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
}

#[tokio::test]
async fn a_thin_events_fetch_yields_to_an_event_of_its_own_second() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    // Stripe's `Date` says T: the fetch is ordered at T - 1.
    let t = crate::helpers::now();
    double.set_fixed_date(t);
    let subscription = new_subscription_id();
    let event = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("enterprise")
        .at(t - 1);
    app.deliver_expecting(&event.json(), "processed").await;
    // The fetch may have been answered before the change that event describes.
    double.put_subscription(
        SubscriptionEvent::updated(&subscription, &org.customer_id)
            .price_by_lookup_key("pro")
            .object(),
    );
    let thin = thin_subscription_event("v1.customer.subscription.updated", &subscription);
    app.deliver_expecting(&thin, "skipped stale_event").await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
}

#[tokio::test]
async fn a_thin_subscription_event_answered_by_something_not_stripe_writes_nothing() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    let subscription = new_subscription_id();
    double.fail(
        Target::Subscription(subscription.clone()),
        Fault::Canned {
            status: 200,
            content_type: "text/html",
            body: "<html>a proxy's page</html>",
        },
        1,
    );
    let thin = thin_subscription_event("v1.customer.subscription.created", &subscription);
    let (status, _) = app.deliver_json(&thin).await;
    assert_eq!(status, 503);
    assert_eq!(app.ledger_row(&event_id_of(&thin)).await, None);
    assert_eq!(subscription_row(app, &subscription).await, None);

    // Unknown URL (a 404 without resource_missing): a configuration error, not "not found".
    double.fail(
        Target::Subscription(subscription.clone()),
        Fault::UnknownUrl,
        1,
    );
    let (status, _) = app.deliver_json(&thin).await;
    assert_eq!(status, 503);
    assert_eq!(app.ledger_row(&event_id_of(&thin)).await, None);
}

#[tokio::test]
async fn a_live_thin_subscription_event_in_a_test_deployment_is_ignored_without_a_fetch() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    let subscription = new_subscription_id();
    let live = thin_subscription_event("v1.customer.subscription.created", &subscription)
        .replace(r#""livemode":false"#, r#""livemode":true"#);
    assert!(live.contains(r#""livemode":true"#));
    app.deliver_expecting(&live, "ignored other_mode").await;
    let path = format!("/v1/subscriptions/{subscription}");
    assert!(double.requests_to(&path).is_empty());
    assert_eq!(subscription_row(app, &subscription).await, None);
}
