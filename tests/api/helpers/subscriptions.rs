//! `customer.subscription.*` events as Stripe sends them (docs/design.md "Tiers"), and what the
//! tier rules leave in the database.

use serde_json::{Value, json};
use uuid::Uuid;

use super::events::{CustomerEvent, T0, new_customer_id, new_event_id};
use super::organizations::{create_organization, create_organizations_schema};
use super::{TestApp, create_auth_user, migrated_database, spawn_app, spawn_app_with};

pub struct SubscriptionEvent {
    pub event_id: String,
    pub event_type: &'static str,
    pub created: i64,
    pub subscription_id: String,
    pub customer_id: String,
    pub status: &'static str,
    /// (price id, lookup key, metadata tier)
    pub prices: Vec<(String, Option<String>, Option<String>)>,
    /// Prices as sent, for shapes the tuples above do not give (a product's tier).
    pub price_objects: Vec<Value>,
    pub livemode: bool,
}

pub fn new_subscription_id() -> String {
    format!("sub_{}", Uuid::new_v4().simple())
}

impl SubscriptionEvent {
    pub fn new(event_type: &'static str, subscription_id: &str, customer_id: &str) -> Self {
        Self {
            event_id: new_event_id(),
            event_type,
            created: T0,
            subscription_id: subscription_id.into(),
            customer_id: customer_id.into(),
            status: "active",
            prices: Vec::new(),
            price_objects: Vec::new(),
            livemode: false,
        }
    }

    pub fn created(subscription_id: &str, customer_id: &str) -> Self {
        Self::new(
            "customer.subscription.created",
            subscription_id,
            customer_id,
        )
    }

    pub fn updated(subscription_id: &str, customer_id: &str) -> Self {
        Self::new(
            "customer.subscription.updated",
            subscription_id,
            customer_id,
        )
    }

    pub fn deleted(subscription_id: &str, customer_id: &str) -> Self {
        Self::new(
            "customer.subscription.deleted",
            subscription_id,
            customer_id,
        )
        .status("canceled")
    }

    pub fn at(mut self, created: i64) -> Self {
        self.created = created;
        self
    }

    pub fn status(mut self, status: &'static str) -> Self {
        self.status = status;
        self
    }

    /// A price whose `lookup_key` names `tier`.
    pub fn price_by_lookup_key(mut self, tier: &str) -> Self {
        let id = format!("price_{}", Uuid::new_v4().simple());
        self.prices.push((id, Some(tier.into()), None));
        self
    }

    /// A price whose metadata `tier` names `tier` (its lookup key names none).
    pub fn price_by_metadata(mut self, tier: &str) -> Self {
        let id = format!("price_{}", Uuid::new_v4().simple());
        self.prices
            .push((id, Some(format!("{tier}_monthly")), Some(tier.into())));
        self
    }

    pub fn live(mut self) -> Self {
        self.livemode = true;
        self
    }

    /// A price that names no tier itself (no metadata tier, a lookup key naming none), of
    /// `product`: an id (`"prod_…"`) or an expanded product object.
    pub fn price_of_product(mut self, product: Value) -> Self {
        self.price_objects.push(json!({
            "id": format!("price_{}", Uuid::new_v4().simple()),
            "object": "price",
            "lookup_key": "plan_monthly",
            "metadata": {},
            "product": product,
        }));
        self
    }

    /// The subscription object, as the event's `data.object` and Stripe's API carry it.
    pub fn object(&self) -> Value {
        let prices = self.prices.iter().map(|(id, lookup_key, tier)| {
            let metadata = match tier {
                Some(tier) => json!({ "tier": tier }),
                None => json!({}),
            };
            json!({
                "id": id,
                "object": "price",
                "lookup_key": lookup_key,
                "metadata": metadata,
                "product": "prod_Tier1",
            })
        });
        let items: Vec<Value> = prices
            .chain(self.price_objects.iter().cloned())
            .map(|price| {
                json!({
                    "id": format!("si_{}", Uuid::new_v4().simple()),
                    "object": "subscription_item",
                    "current_period_end": T0 + 30 * 86_400,
                    "price": price,
                })
            })
            .collect();
        json!({
            "id": self.subscription_id,
            "object": "subscription",
            "customer": self.customer_id,
            "status": self.status,
            "cancel_at_period_end": false,
            "livemode": self.livemode,
            "items": { "object": "list", "data": items },
        })
    }

    pub fn json(&self) -> String {
        json!({
            "id": self.event_id,
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": self.created,
            "data": { "object": self.object() },
            "livemode": self.livemode,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": self.event_type
        })
        .to_string()
    }
}

/// A thin `v1.customer.subscription.*` event about `subscription_id`, as an event destination
/// sends it.
pub fn thin_subscription_event(event_type: &str, subscription_id: &str) -> String {
    json!({
        "id": new_event_id(),
        "object": "v2.core.event",
        "type": event_type,
        "livemode": false,
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "context": null,
        "reason": { "type": "request", "request": { "id": "req_v2Thin", "idempotency_key": null } },
        "related_object": {
            "id": subscription_id,
            "type": "subscription",
            "url": format!("/v1/subscriptions/{subscription_id}")
        }
    })
    .to_string()
}

/// An app on the organizations schema, with one organization whose customer is linked.
pub struct OrganizationWithCustomer {
    pub app: TestApp,
    pub organization: Uuid,
    pub customer_id: String,
}

pub async fn organization_with_customer() -> OrganizationWithCustomer {
    organization_with_customer_in(spawn_app().await).await
}

/// [`organization_with_customer`] in `app` (one with the Stripe double, say).
pub async fn organization_with_customer_in(app: TestApp) -> OrganizationWithCustomer {
    create_organizations_schema(&app.db.pool).await;
    let organization = create_organization(&app.db.pool, "Acme", Some("billing@acme.test")).await;
    let customer_id = new_customer_id();
    let created = CustomerEvent::created(&customer_id, T0 - 100)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&created.json(), "processed").await;
    OrganizationWithCustomer {
        app,
        organization,
        customer_id,
    }
}

/// The organization's `subscription_tier`.
pub async fn organization_tier(app: &TestApp, organization: Uuid) -> Option<String> {
    sqlx::query_scalar("select subscription_tier from public.organizations where id = $1")
        .bind(organization)
        .fetch_one(&app.db.pool)
        .await
        .expect("the organization")
}

/// The subscription's row, as JSON.
pub async fn subscription_row(app: &TestApp, subscription_id: &str) -> Option<Value> {
    sqlx::query_scalar(
        "select to_jsonb(s) from public.stripe_subscriptions s where stripe_subscription_id = $1",
    )
    .bind(subscription_id)
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
}

/// An app whose tiers include "platinum", which the organizations' column (created here) refuses.
pub async fn app_with_a_tier_the_organizations_refuse() -> TestApp {
    let app = spawn_app_with(migrated_database().await, |settings| {
        settings.sync.tiers.tiers = ["free", "pro", "enterprise", "platinum"]
            .map(String::from)
            .to_vec();
    })
    .await;
    create_organizations_schema(&app.db.pool).await;
    app
}

/// An app that writes a user's tier to `public.profiles.plan` (created here, default "free"),
/// and a user with a profile.
pub async fn app_with_a_profiles_plan_column() -> (TestApp, Uuid) {
    let app = spawn_app_with(migrated_database().await, |settings| {
        settings.sync.tiers.profile_column =
            Some(stripe_customer_sync::domain::ColumnName::parse("plan").unwrap());
    })
    .await;
    sqlx::raw_sql(
        "create table if not exists public.profiles (id uuid primary key);
         alter table public.profiles add column plan text not null default 'free';",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let user = create_auth_user(&app.db.pool).await;
    sqlx::query("insert into public.profiles (id) values ($1) on conflict do nothing")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    (app, user)
}

/// The user's `public.profiles.plan`.
pub async fn profile_plan(app: &TestApp, user: Uuid) -> String {
    sqlx::query_scalar("select plan from public.profiles where id = $1")
        .bind(user)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Asserts the organization's `subscription_tier`.
pub async fn assert_organization_tier(app: &TestApp, organization: Uuid, tier: &str) {
    assert_eq!(
        organization_tier(app, organization).await.as_deref(),
        Some(tier)
    );
}
