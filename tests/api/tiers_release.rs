//! A deleted customer bills nobody (docs/design.md "Tiers"): the owner it billed falls to the
//! lowest tier, whether Stripe's cancellation of its subscriptions comes before the deletion,
//! after it, or never; an owner that another live customer bills is left to that customer.

use uuid::Uuid;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::organizations::{create_organization, create_organizations_schema};
use crate::helpers::subscriptions::{
    SubscriptionEvent, app_with_a_profiles_plan_column, assert_organization_tier,
    new_subscription_id, organization_tier, profile_plan,
};
use crate::helpers::{TestApp, spawn_app};

/// An organization billed by a new customer with a "pro" subscription; the customer's id and
/// the subscription's.
async fn organization_on_pro(app: &TestApp, name: &str) -> (Uuid, String, String) {
    let organization = create_organization(&app.db.pool, name, Some("billing@example.test")).await;
    let customer = new_customer_id();
    let linking = CustomerEvent::created(&customer, T0)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&linking.json(), "processed").await;
    let subscription = new_subscription_id();
    let subscribed = SubscriptionEvent::created(&subscription, &customer)
        .price_by_lookup_key("pro")
        .at(T0 + 1);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    assert_organization_tier(app, organization, "pro").await;
    (organization, customer, subscription)
}

#[tokio::test]
async fn a_deleted_customers_organization_falls_to_the_lowest_tier_in_either_delivery_order() {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    for deletion_first in [true, false] {
        let (organization, customer, subscription) = organization_on_pro(&app, "Acme").await;
        // Stripe sends the deleted customer as it was, metadata and all.
        let deleted = CustomerEvent::deleted(&customer, T0 + 5)
            .metadata("organization_id", &organization.to_string());
        let canceled = SubscriptionEvent::deleted(&subscription, &customer)
            .price_by_lookup_key("pro")
            .at(T0 + 5);
        let (first, second) = if deletion_first {
            (deleted.json(), canceled.json())
        } else {
            (canceled.json(), deleted.json())
        };
        app.deliver_expecting(&first, "processed").await;
        app.deliver_expecting(&second, "processed").await;
        assert_eq!(
            organization_tier(&app, organization).await.as_deref(),
            Some("free"),
            "customer deleted first: {deletion_first}"
        );
    }
}

#[tokio::test]
async fn a_deleted_customer_whose_subscriptions_are_never_canceled_still_releases_its_organization()
{
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    let (organization, customer, _) = organization_on_pro(&app, "Acme").await;
    let deleted = CustomerEvent::deleted(&customer, T0 + 5)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&deleted.json(), "processed").await;
    assert_organization_tier(&app, organization, "free").await;
}

#[tokio::test]
async fn a_deleted_customer_leaves_alone_the_organization_another_live_customer_bills() {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    let (organization, _, _) = organization_on_pro(&app, "Acme").await;
    // A second customer names the same organization: stored unlinked (it is taken), with a
    // subscription of its own; then deleted.
    let other = new_customer_id();
    let naming = CustomerEvent::created(&other, T0 + 2)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&naming.json(), "processed").await;
    let subscribed = SubscriptionEvent::created(&new_subscription_id(), &other)
        .price_by_lookup_key("enterprise")
        .at(T0 + 3);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    let deleted = CustomerEvent::deleted(&other, T0 + 5)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&deleted.json(), "processed").await;
    assert_organization_tier(&app, organization, "pro").await;
}

#[tokio::test]
async fn a_deleted_customers_user_falls_to_the_lowest_tier_in_the_profiles_column() {
    let (app, user) = app_with_a_profiles_plan_column().await;
    let customer = new_customer_id();
    let linking = CustomerEvent::created(&customer, T0).for_user(user);
    app.deliver_expecting(&linking.json(), "processed").await;
    let subscribed = SubscriptionEvent::created(&new_subscription_id(), &customer)
        .price_by_lookup_key("pro")
        .at(T0 + 1);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    assert_eq!(profile_plan(&app, user).await, "pro");
    let deleted = CustomerEvent::deleted(&customer, T0 + 5).for_user(user);
    app.deliver_expecting(&deleted.json(), "processed").await;
    assert_eq!(profile_plan(&app, user).await, "free");
}
