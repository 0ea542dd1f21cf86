//! A price that names no tier itself takes its product's (docs/design.md "Tiers"): the
//! product's metadata, expanded in the event or fetched from Stripe (the double) once and
//! cached; a price with no tier at all is counted and grants none; a product Stripe cannot
//! give right now answers 503, never a guessed tier.

use serde_json::json;

use crate::helpers::spawn_app_with_stripe;
use crate::helpers::stripe_double::{Fault, StripeDouble, Target};
use crate::helpers::subscriptions::{
    OrganizationWithCustomer, SubscriptionEvent, new_subscription_id, organization_tier,
    organization_with_customer_in, subscription_row,
};

async fn organization_with_stripe(double: &StripeDouble) -> OrganizationWithCustomer {
    organization_with_customer_in(spawn_app_with_stripe(double).await).await
}

fn product(id: &str, metadata: serde_json::Value) -> serde_json::Value {
    json!({ "id": id, "object": "product", "livemode": false, "name": "Plan", "metadata": metadata })
}

#[tokio::test]
async fn a_price_without_tier_metadata_takes_its_products_tier_fetched_once() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    double.put_product(product("prod_Team", json!({ "tier": "enterprise" })));
    let subscription = new_subscription_id();
    let created = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_of_product(json!("prod_Team"))
        .at(crate::helpers::events::T0);
    app.deliver_expecting(&created.json(), "processed").await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
    let row = subscription_row(app, &subscription).await.unwrap();
    assert_eq!(row["tiers"], json!(["enterprise"]));

    // The next event of a price of the same product reads the cache.
    let updated = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_of_product(json!("prod_Team"))
        .at(crate::helpers::events::T0 + 10);
    app.deliver_expecting(&updated.json(), "processed").await;
    assert_eq!(double.requests_to("/v1/products/prod_Team").len(), 1);
}

#[tokio::test]
async fn an_expanded_product_gives_its_tier_without_a_fetch_and_a_prices_own_tier_comes_first() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    let subscription = new_subscription_id();
    let expanded = product("prod_Pro", json!({ "tier": "pro" }));
    // The product would say enterprise, but the price's own lookup key names pro.
    double.put_product(product("prod_Tier1", json!({ "tier": "enterprise" })));
    let created = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_of_product(expanded)
        .price_by_lookup_key("pro");
    app.deliver_expecting(&created.json(), "processed").await;
    let row = subscription_row(app, &subscription).await.unwrap();
    assert_eq!(row["tiers"], json!(["pro", "pro"]));
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("pro")
    );
    let products: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/products/"))
        .collect();
    assert!(products.is_empty(), "{products:?}");
}

#[tokio::test]
async fn a_price_with_no_tier_is_counted_and_changes_nothing() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    double.put_product(product("prod_Addon", json!({ "kind": "seats" })));
    let before = prices_without_tier(&app.metrics_text().await);
    let subscription = new_subscription_id();
    let created = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_of_product(json!("prod_Addon"));
    app.deliver_expecting(&created.json(), "processed").await;

    let row = subscription_row(app, &subscription).await.unwrap();
    assert_eq!(row["tiers"], json!([null]));
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("free")
    );
    assert_eq!(prices_without_tier(&app.metrics_text().await), before + 1);
}

#[tokio::test]
async fn a_product_stripe_cannot_give_now_answers_503_and_writes_nothing() {
    let double = StripeDouble::start().await;
    let org = organization_with_stripe(&double).await;
    let app = &org.app;
    double.put_product(product("prod_Team", json!({ "tier": "enterprise" })));
    double.fail(Target::Product("prod_Team".into()), Fault::Unavailable, 100);
    let subscription = new_subscription_id();
    let created = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_of_product(json!("prod_Team"));
    let (status, _) = app.deliver_json(&created.json()).await;
    assert_eq!(status, 503);
    assert_eq!(app.ledger_row(&created.event_id).await, None);
    assert_eq!(subscription_row(app, &subscription).await, None);

    // Stripe's retry, once the product can be read, applies it.
    double.release_hangs();
    app.deliver_expecting(&created.json(), "processed").await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
}

/// `stripe_prices_without_tier_total` in a `/metrics` text.
fn prices_without_tier(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("stripe_prices_without_tier_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stripe_prices_without_tier_total in {metrics}"))
}
