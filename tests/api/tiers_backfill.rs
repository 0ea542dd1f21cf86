//! `backfill` lists subscriptions too (docs/design.md "Tiers"): `GET /v1/subscriptions` with
//! every status, page after page, each applied as a state read from Stripe under the
//! subscription rules (never over a newer event, never reviving an ended one), the tiers
//! written, the report counting them.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::commands::{backfill, workdir};
use crate::helpers::migrated_database;
use crate::helpers::now;
use crate::helpers::organizations::{create_organization, create_organizations_schema};
use crate::helpers::stripe_double::{Customer, StripeDouble};
use crate::helpers::subscriptions::{
    SubscriptionEvent, new_subscription_id, organization_tier, organization_with_customer,
    subscription_row,
};

fn customer_of(organization: Uuid) -> (String, Customer) {
    let id = crate::helpers::events::new_customer_id();
    let customer = Customer::new(&id).metadata("organization_id", &organization.to_string());
    (id, customer)
}

#[tokio::test]
async fn backfill_lists_subscriptions_and_sets_tiers() {
    let db = migrated_database().await;
    create_organizations_schema(&db.pool).await;
    let acme = create_organization(&db.pool, "Acme", Some("billing@acme.test")).await;
    let globex = create_organization(&db.pool, "Globex", Some("billing@globex.test")).await;
    let double = StripeDouble::start().await;
    let (acme_customer, acme_in_stripe) = customer_of(acme);
    let (globex_customer, globex_in_stripe) = customer_of(globex);
    double.add([acme_in_stripe, globex_in_stripe]);
    // Acme's enterprise subscription is the oldest, on the second page; 100 ended ones before.
    let enterprise = SubscriptionEvent::created(&new_subscription_id(), &acme_customer)
        .price_by_lookup_key("enterprise");
    double.put_subscription(enterprise.object());
    for _ in 0..100 {
        let ended = SubscriptionEvent::created(&new_subscription_id(), &acme_customer)
            .price_by_lookup_key("pro")
            .status("canceled");
        double.put_subscription(ended.object());
    }
    let pro = SubscriptionEvent::created(&new_subscription_id(), &globex_customer)
        .price_by_metadata("pro");
    double.put_subscription(pro.object());

    let dir = workdir();
    let run = backfill(&double, &db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.summary["subscriptions"],
        json!({ "seen": 102, "applied": 102, "skipped": {} }),
        "{}",
        run.summary
    );
    let app = crate::helpers::spawn_app_with(db, |_| {}).await;
    assert_eq!(
        organization_tier(&app, acme).await.as_deref(),
        Some("enterprise")
    );
    assert_eq!(
        organization_tier(&app, globex).await.as_deref(),
        Some("pro")
    );
    let row = subscription_row(&app, &enterprise.subscription_id)
        .await
        .unwrap();
    assert_eq!(row["last_event_type"], "backfill");
    assert_eq!(row["tiers"], json!(["enterprise"]));

    // Two pages, every status asked for.
    let pages = double.requests_to("/v1/subscriptions");
    assert_eq!(pages.len(), 2, "{pages:?}");
    for page in &pages {
        assert_eq!(page.query.get("status").map(String::as_str), Some("all"));
        assert_eq!(page.query.get("limit").map(String::as_str), Some("100"));
    }
    assert!(pages[1].query.contains_key("starting_after"));
}

#[tokio::test]
async fn a_backfilled_subscription_never_overrides_a_newer_event_nor_revives_an_ended_one() {
    let org = organization_with_customer().await;
    let app = &org.app;
    let double = StripeDouble::start().await;
    double
        .add([Customer::new(&org.customer_id)
            .metadata("organization_id", &org.organization.to_string())]);
    // An upgrade whose event is newer than the backfill's read: Stripe's list still says pro.
    let upgraded = new_subscription_id();
    let newer = SubscriptionEvent::updated(&upgraded, &org.customer_id)
        .price_by_lookup_key("enterprise")
        .at(now() + 300);
    app.deliver_expecting(&newer.json(), "processed").await;
    double.put_subscription(
        SubscriptionEvent::updated(&upgraded, &org.customer_id)
            .price_by_lookup_key("pro")
            .object(),
    );
    // A deleted subscription that the list (wrongly, or late) shows active.
    let ended = new_subscription_id();
    let deleted = SubscriptionEvent::deleted(&ended, &org.customer_id)
        .price_by_lookup_key("pro")
        .at(now() - 60);
    app.deliver_expecting(&deleted.json(), "processed").await;
    double.put_subscription(
        SubscriptionEvent::updated(&ended, &org.customer_id)
            .price_by_lookup_key("pro")
            .object(),
    );

    // An event of the second the list is read in (Stripe's `Date` says T: read at T - 1).
    let t = now();
    double.set_fixed_date(t);
    let same_second = new_subscription_id();
    let event = SubscriptionEvent::updated(&same_second, &org.customer_id)
        .price_by_lookup_key("enterprise")
        .at(t - 1);
    app.deliver_expecting(&event.json(), "processed").await;
    double.put_subscription(
        SubscriptionEvent::updated(&same_second, &org.customer_id)
            .price_by_lookup_key("pro")
            .object(),
    );

    let dir = workdir();
    let run = backfill(&double, &app.db.url, dir.path(), &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.summary["subscriptions"],
        json!({ "seen": 3, "applied": 0,
                "skipped": { "stale_event": 2, "subscription_ended": 1 } }),
        "{}",
        run.summary
    );
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("enterprise")
    );
    let row = subscription_row(app, &upgraded).await.unwrap();
    assert_eq!(row["last_event_id"], newer.event_id.as_str());
}

#[tokio::test]
async fn a_dry_run_backfill_counts_subscriptions_and_writes_none() {
    let org = organization_with_customer().await;
    let app = &org.app;
    let double = StripeDouble::start().await;
    double
        .add([Customer::new(&org.customer_id)
            .metadata("organization_id", &org.organization.to_string())]);
    let subscription = new_subscription_id();
    double.put_subscription(
        SubscriptionEvent::created(&subscription, &org.customer_id)
            .price_by_lookup_key("pro")
            .object(),
    );
    let dir = workdir();
    let run = backfill(&double, &app.db.url, dir.path(), &["--dry-run"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.summary["subscriptions"]["applied"], 1,
        "{}",
        run.summary
    );
    assert_eq!(subscription_row(app, &subscription).await, None);
    assert_eq!(
        organization_tier(app, org.organization).await.as_deref(),
        Some("free")
    );
}
