//! The tier follows the subscription (docs/design.md "Tiers"): the highest tier among the
//! owner's subscriptions that grant access, else the lowest, written to the organization.

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::organizations::create_organization;
use crate::helpers::stripe_double::{BINARY, output};
use crate::helpers::subscriptions::{
    SubscriptionEvent, app_with_a_profiles_plan_column, app_with_a_tier_the_organizations_refuse,
    new_subscription_id, organization_tier, organization_with_customer, profile_plan,
    subscription_row,
};
use crate::helpers::{count, create_auth_user, spawn_app};

#[tokio::test]
async fn an_active_pro_subscription_makes_the_organization_pro() {
    let org = organization_with_customer().await;
    let subscription = new_subscription_id();
    let created = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(T0);
    org.app
        .deliver_expecting(&created.json(), "processed")
        .await;

    assert_eq!(
        organization_tier(&org.app, org.organization)
            .await
            .as_deref(),
        Some("pro")
    );
    let row = subscription_row(&org.app, &subscription)
        .await
        .expect("the row");
    assert_eq!(row["status"], "active");
    assert_eq!(row["tiers"], serde_json::json!(["pro"]));
    assert_eq!(row["stripe_customer_id"], org.customer_id.as_str());
    // The same event again changes nothing and says so.
    org.app
        .deliver_expecting(&created.json(), "duplicate")
        .await;
}

#[tokio::test]
async fn the_highest_active_tier_wins_and_each_ending_falls_back_to_the_next() {
    let org = organization_with_customer().await;
    let (pro, enterprise) = (new_subscription_id(), new_subscription_id());
    let app = &org.app;
    let tier = || organization_tier(app, org.organization);

    let pro_created = SubscriptionEvent::created(&pro, &org.customer_id).price_by_lookup_key("pro");
    app.deliver_expecting(&pro_created.at(T0).json(), "processed")
        .await;
    // A price names its tier by its metadata too.
    let enterprise_created = SubscriptionEvent::created(&enterprise, &org.customer_id)
        .price_by_metadata("enterprise")
        .at(T0 + 10);
    app.deliver_expecting(&enterprise_created.json(), "processed")
        .await;
    assert_eq!(tier().await.as_deref(), Some("enterprise"));

    let enterprise_ended = SubscriptionEvent::deleted(&enterprise, &org.customer_id)
        .price_by_metadata("enterprise")
        .at(T0 + 20);
    app.deliver_expecting(&enterprise_ended.json(), "processed")
        .await;
    assert_eq!(tier().await.as_deref(), Some("pro"));

    // Canceled by an update ends it as a deletion does.
    let pro_canceled = SubscriptionEvent::updated(&pro, &org.customer_id)
        .price_by_lookup_key("pro")
        .status("canceled")
        .at(T0 + 30);
    app.deliver_expecting(&pro_canceled.json(), "processed")
        .await;
    assert_eq!(tier().await.as_deref(), Some("free"));
}

#[tokio::test]
async fn a_stale_updated_delivered_after_the_end_changes_nothing() {
    let org = organization_with_customer().await;
    let subscription = new_subscription_id();
    let app = &org.app;
    let deleted = SubscriptionEvent::deleted(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(T0 + 20);
    app.deliver_expecting(&deleted.json(), "processed").await;

    let stale = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(T0 + 10);
    app.deliver_expecting(&stale.json(), "skipped subscription_ended")
        .await;
    // Even one stamped later: ended is terminal.
    let later = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(T0 + 30);
    app.deliver_expecting(&later.json(), "skipped subscription_ended")
        .await;

    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("free")
    );
    let row = subscription_row(app, &subscription).await.expect("the row");
    assert_eq!(row["ended"], true);
    assert_eq!(row["last_event_id"], deleted.event_id.as_str());
}

#[tokio::test]
async fn an_older_updated_than_the_rows_is_stale() {
    let org = organization_with_customer().await;
    let subscription = new_subscription_id();
    let app = &org.app;
    let newer = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("enterprise")
        .at(T0 + 20);
    app.deliver_expecting(&newer.json(), "processed").await;
    let older = SubscriptionEvent::updated(&subscription, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(T0 + 10);
    app.deliver_expecting(&older.json(), "skipped stale_event")
        .await;
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
}

#[tokio::test]
async fn a_live_mode_event_in_a_test_deployment_changes_nothing() {
    let org = organization_with_customer().await;
    let subscription = new_subscription_id();
    let live = SubscriptionEvent::created(&subscription, &org.customer_id)
        .price_by_lookup_key("enterprise")
        .live();
    org.app
        .deliver_expecting(&live.json(), "ignored other_mode")
        .await;
    assert_eq!(subscription_row(&org.app, &subscription).await, None);
    assert_eq!(
        organization_tier(&org.app, org.organization)
            .await
            .as_deref(),
        Some("free")
    );
}

#[tokio::test]
async fn without_an_organizations_table_subscriptions_are_still_kept_and_nothing_else_written() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    let customer_id = new_customer_id();
    let created = CustomerEvent::created(&customer_id, T0 - 100).for_user(user);
    app.deliver_expecting(&created.json(), "processed").await;

    let subscription = new_subscription_id();
    let event = SubscriptionEvent::created(&subscription, &customer_id).price_by_lookup_key("pro");
    app.deliver_expecting(&event.json(), "processed").await;
    let row = subscription_row(&app, &subscription)
        .await
        .expect("the row");
    assert_eq!(row["tiers"], serde_json::json!(["pro"]));
    assert_eq!(count(&app.db.pool, "public.stripe_subscriptions").await, 1);
}

#[tokio::test]
async fn a_tier_the_column_refuses_fails_the_event_with_its_reason_and_writes_nothing() {
    let app = app_with_a_tier_the_organizations_refuse().await;
    let organization = create_organization(&app.db.pool, "Acme", None).await;
    let customer_id = new_customer_id();
    let created = CustomerEvent::created(&customer_id, T0 - 100)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&created.json(), "processed").await;

    let subscription = new_subscription_id();
    let event =
        SubscriptionEvent::created(&subscription, &customer_id).price_by_lookup_key("platinum");
    app.deliver_expecting(&event.json(), "failed constraint_violation")
        .await;

    let (outcome, error): (String, String) =
        sqlx::query_as("select outcome, error from public.stripe_webhook_events where id = $1")
            .bind(&event.event_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(outcome, "failed");
    assert!(error.starts_with("23514"), "{error}");
    // Nothing of the event was written: re-applied once the column allows it, it applies.
    assert_eq!(subscription_row(&app, &subscription).await, None);
    let tier: Option<String> =
        sqlx::query_scalar("select subscription_tier from public.organizations where id = $1")
            .bind(organization)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(tier.as_deref(), Some("free"));

    // Once the column allows the tier, the operator re-applies the event.
    sqlx::raw_sql(
        "alter table public.organizations drop constraint organizations_subscription_tier_check",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let mut command = std::process::Command::new(BINARY);
    command
        .arg("reapply-failed")
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", &app.db.url)
        .env("STRIPE_MODE", "test")
        .env("TIERS", "free,pro,enterprise,platinum")
        .env("LOG_FORMAT", "json");
    let reapplied = output(command).await;
    assert!(
        reapplied.status.success(),
        "{}",
        String::from_utf8_lossy(&reapplied.stderr)
    );
    app.assert_recorded(&event.event_id, "processed").await;
    let tier: Option<String> =
        sqlx::query_scalar("select subscription_tier from public.organizations where id = $1")
            .bind(organization)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(tier.as_deref(), Some("platinum"));
}

#[tokio::test]
async fn a_users_tier_goes_to_the_configured_profiles_column() {
    let (app, user) = app_with_a_profiles_plan_column().await;
    let customer_id = new_customer_id();
    let created = CustomerEvent::created(&customer_id, T0 - 100).for_user(user);
    app.deliver_expecting(&created.json(), "processed").await;

    let subscription = new_subscription_id();
    let event = SubscriptionEvent::created(&subscription, &customer_id)
        .price_by_lookup_key("enterprise")
        .status("trialing");
    app.deliver_expecting(&event.json(), "processed").await;
    let plan = profile_plan(&app, user).await;
    assert_eq!(plan, "enterprise");
}
