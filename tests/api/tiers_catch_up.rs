//! catch-up applies a subscription event the webhook missed, and the tier follows it
//! (docs/design.md "Tiers", "Catch-up").

use crate::helpers::commands::{catch_up, workdir};
use crate::helpers::now;
use crate::helpers::stripe_double::StripeDouble;
use crate::helpers::subscriptions::{
    SubscriptionEvent, new_subscription_id, organization_tier, organization_with_customer,
};

#[tokio::test]
async fn catch_up_applies_a_missed_subscription_event() {
    let org = organization_with_customer().await;
    let app = &org.app;
    let subscription = new_subscription_id();
    let delivered = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(now() - 120);
    app.deliver_expecting(&delivered.json(), "processed").await;
    // The upgrade's webhook never arrived.
    let missed = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("enterprise")
        .at(now() - 60);

    let double = StripeDouble::start().await;
    double.add_events([delivered.json().as_str(), missed.json().as_str()]);
    let dir = workdir();
    let run = catch_up(&double, &app.db.url, dir.path()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let summary = &run.summary;
    assert_eq!(summary["applied"]["processed"], 1, "{summary}");
    app.assert_recorded(&missed.event_id, "processed").await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
}
