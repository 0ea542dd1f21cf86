//! A subscription event may arrive before its customer is linked to an owner (docs/design.md
//! "Tiers"): the subscription is kept, and the owner's tier is written once a customer state
//! links it, whatever the path that state came by (webhook, catch-up, thin event, backfill,
//! `verify --fix`). Every delivery order ends in the same tier.

use uuid::Uuid;

use crate::helpers::commands::{backfill, catch_up, workdir};
use crate::helpers::events::{CustomerEvent, T0, new_customer_id, thin_event};
use crate::helpers::organizations::{create_organization, create_organizations_schema};
use crate::helpers::stripe_double::{Customer, StripeDouble, output};
use crate::helpers::subscriptions::{
    SubscriptionEvent, app_with_a_profiles_plan_column, app_with_a_tier_the_organizations_refuse,
    assert_organization_tier, new_subscription_id, organization_tier, profile_plan,
};
use crate::helpers::{TestApp, now, spawn_app, spawn_app_with_stripe};

async fn organization(app: &TestApp, name: &str) -> Uuid {
    create_organization(&app.db.pool, name, Some("billing@example.test")).await
}

#[tokio::test]
async fn a_subscription_delivered_before_its_customer_sets_the_tier_once_the_customer_is_linked() {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    // The same history, delivered in both orders, to two organizations.
    for subscription_first in [true, false] {
        let organization = organization(&app, "Acme").await;
        let customer = new_customer_id();
        let linking = CustomerEvent::created(&customer, T0)
            .metadata("organization_id", &organization.to_string());
        let subscribed = SubscriptionEvent::created(&new_subscription_id(), &customer)
            .price_by_lookup_key("pro")
            .at(T0);
        if subscription_first {
            app.deliver_expecting(&subscribed.json(), "processed").await;
            // No owner yet: kept, and no tier written anywhere.
            assert_eq!(
                organization_tier(&app, organization).await.as_deref(),
                Some("free")
            );
            app.deliver_expecting(&linking.json(), "processed").await;
        } else {
            app.deliver_expecting(&linking.json(), "processed").await;
            app.deliver_expecting(&subscribed.json(), "processed").await;
        }
        assert_eq!(
            organization_tier(&app, organization).await.as_deref(),
            Some("pro"),
            "subscription delivered first: {subscription_first}"
        );
    }
}

#[tokio::test]
async fn a_redelivered_linking_event_writes_the_tier_a_stop_after_its_commit_left_behind() {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    let organization = organization(&app, "Acme").await;
    let customer = new_customer_id();
    let subscribed = SubscriptionEvent::created(&new_subscription_id(), &customer)
        .price_by_lookup_key("pro")
        .at(T0);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    let linking = CustomerEvent::created(&customer, T0)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&linking.json(), "processed").await;
    // The process stopped after the customer's write committed and before the tier was
    // written (the two are separate transactions on a direct connection): Stripe got no
    // answer and delivers the event again.
    sqlx::query("update public.organizations set subscription_tier = 'free' where id = $1")
        .bind(organization)
        .execute(&app.db.pool)
        .await
        .unwrap();
    app.deliver_expecting(&linking.json(), "duplicate").await;
    assert_eq!(
        organization_tier(&app, organization).await.as_deref(),
        Some("pro")
    );
}

#[tokio::test]
async fn a_caught_up_event_that_links_the_customer_sets_the_tier() {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    let organization = organization(&app, "Acme").await;
    let customer = new_customer_id();
    let subscribed = SubscriptionEvent::created(&new_subscription_id(), &customer)
        .price_by_lookup_key("enterprise")
        .at(now() - 120);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    // The customer's own webhook never arrived; catch-up lists it.
    let missed = CustomerEvent::created(&customer, now() - 60)
        .metadata("organization_id", &organization.to_string());
    let double = StripeDouble::start().await;
    double.add_events([subscribed.json().as_str(), missed.json().as_str()]);
    let dir = workdir();
    let run = catch_up(&double, &app.db.url, dir.path()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    app.assert_recorded(&missed.event_id, "processed").await;
    assert_eq!(
        organization_tier(&app, organization).await.as_deref(),
        Some("enterprise")
    );
}

#[tokio::test]
async fn a_thin_event_that_links_a_customer_stored_unlinked_sets_the_tier() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let (organization, customer) = a_customer_stripe_now_links(&app, &double).await;
    // The thin event's fetch reads the organization the app has set.
    let thin = thin_event("v1.customer.updated", &customer);
    app.deliver_expecting(&thin, "processed").await;
    assert_organization_tier(&app, organization, "pro").await;
}

/// An organization on the free tier; a customer stored with no owner and a subscription of it
/// kept, no tier written; and `double` (Stripe) now holding the customer with the organization
/// in its metadata, and no subscription (only the one kept can give the tier).
async fn a_customer_stripe_now_links(app: &TestApp, double: &StripeDouble) -> (Uuid, String) {
    create_organizations_schema(&app.db.pool).await;
    let organization = organization(app, "Acme").await;
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;
    let subscribed = SubscriptionEvent::created(&new_subscription_id(), &customer)
        .price_by_lookup_key("pro")
        .at(T0 + 1);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    assert_organization_tier(app, organization, "free").await;
    double.add([Customer::new(&customer).metadata("organization_id", &organization.to_string())]);
    (organization, customer)
}

#[tokio::test]
async fn a_backfill_that_links_a_customer_sets_the_tier_of_its_kept_subscriptions() {
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    let (organization, _) = a_customer_stripe_now_links(&app, &double).await;
    let dir = workdir();
    let run = backfill(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_organization_tier(&app, organization, "pro").await;
}

#[tokio::test]
async fn a_verify_fix_that_links_a_customer_sets_the_tier_of_its_kept_subscriptions() {
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    let (organization, _) = a_customer_stripe_now_links(&app, &double).await;
    let dir = workdir();
    let out = output(double.command(&app.db.url, dir.path(), &["verify", "--fix", "--json"])).await;
    // Exit 1: there was drift (the missing link), and --fix applied it.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_organization_tier(&app, organization, "pro").await;
}

/// The recompute after a link runs after the customer's write: a tier the owner's column
/// refuses leaves the link standing, and is logged and counted for `/metrics`.
#[tokio::test]
async fn a_tier_the_owners_column_refuses_after_a_link_leaves_the_link_and_is_counted() {
    let app = app_with_a_tier_the_organizations_refuse().await;
    let organization = organization(&app, "Acme").await;
    let customer = new_customer_id();
    let subscribed = SubscriptionEvent::created(&new_subscription_id(), &customer)
        .price_by_lookup_key("platinum")
        .at(T0);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    let linking = CustomerEvent::created(&customer, T0)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&linking.json(), "processed").await;

    let linked: Option<Uuid> = sqlx::query_scalar(
        "select organization_id from public.stripe_customers where stripe_customer_id = $1",
    )
    .bind(&customer)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(linked, Some(organization));
    assert_organization_tier(&app, organization, "free").await;
    let failed = app.metrics_text().await.lines().find_map(|line| {
        line.strip_prefix("stripe_tier_recomputes_failed_total ")?
            .parse::<f64>()
            .ok()
    });
    assert_eq!(failed, Some(1.0));
}

#[tokio::test]
async fn a_users_subscription_delivered_before_the_customer_reaches_the_profiles_column() {
    let (app, user) = app_with_a_profiles_plan_column().await;
    let customer = new_customer_id();
    let subscribed = SubscriptionEvent::created(&new_subscription_id(), &customer)
        .price_by_lookup_key("pro")
        .at(T0);
    app.deliver_expecting(&subscribed.json(), "processed").await;
    let linking = CustomerEvent::created(&customer, T0).for_user(user);
    app.deliver_expecting(&linking.json(), "processed").await;
    let plan = profile_plan(&app, user).await;
    assert_eq!(plan, "pro");
}
