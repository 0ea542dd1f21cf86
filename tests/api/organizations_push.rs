//! An organization's billing email and name reach its Stripe customer through the outbox, as a
//! user's email does (docs/design.md "Organizations"): a real `serve` process, the Stripe double.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::helpers::events::{CustomerEvent, new_customer_id};
use crate::helpers::organizations::{create_organization, create_organizations_schema};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Customer, Request, StripeDouble, TEST_API_KEY};
use crate::helpers::{TestDatabase, migrated_database, now};

struct Setup {
    db: TestDatabase,
    double: StripeDouble,
    organization: Uuid,
    customer: String,
    _replica: ServeProcess,
}

/// The organizations' schema, one organization linked to its customer (through a
/// `customer.created` webhook), and a `serve` process that migrates at start, as deployed.
async fn setup() -> Setup {
    stripe_customer_sync::tls::install_crypto_provider();
    let db = migrated_database().await;
    create_organizations_schema(&db.pool).await;
    let organization = create_organization(&db.pool, "Acme", Some("billing@acme.test")).await;
    let double = StripeDouble::start().await;
    let replica = ServeProcess::command(&db.url)
        .migrating()
        .env("STRIPE_API_KEY", TEST_API_KEY)
        .env("STRIPE_API_BASE", &double.base_url)
        .env("CATCH_UP_INTERVAL", "0")
        .env_remove("RUST_LOG")
        .start()
        .await
        .ready()
        .await;
    let customer = new_customer_id();
    double.add([Customer::new(&customer)
        .metadata("organization_id", &organization.to_string())
        .email(Some("billing@acme.test"))
        .name(Some("Acme"))]);
    let created = CustomerEvent::created(&customer, now() - 5)
        .metadata("organization_id", &organization.to_string())
        .email(Some("billing@acme.test"))
        .name("Acme")
        .json();
    let (status, body) = replica.deliver(&created).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("processed")),
        "{body}"
    );
    Setup {
        db,
        double,
        organization,
        customer,
        _replica: replica,
    }
}

fn has(request: &Request, field: &str, value: &str) -> bool {
    request.form.iter().any(|(k, v)| k == field && v == value)
}

impl Setup {
    async fn update_organization(&self, column: &str, value: &str) {
        let sql = format!("update public.organizations set {column} = $2 where id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.organization)
            .bind(value)
            .execute(&self.db.pool)
            .await
            .unwrap();
    }

    /// Waits (up to `within`) until the double applied an update with `field` = `value`.
    async fn wait_for_applied(&self, field: &str, value: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self
            .double
            .applied_updates(&self.customer)
            .iter()
            .any(|r| has(r, field, value))
        {
            assert!(
                Instant::now() < deadline,
                "no update with {field}={value} within {within:?}: {:#?}",
                self.double.update_requests(&self.customer)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_billing_email_change_is_pushed_to_the_organizations_customer_within_seconds() {
    let s = setup().await;
    s.update_organization("billing_email", "finance@acme.test")
        .await;
    s.wait_for_applied("email", "finance@acme.test", Duration::from_secs(5))
        .await;
    let updates = s.double.update_requests(&s.customer);
    assert_eq!(updates.len(), 1, "{updates:#?}");
    assert_eq!(
        updates[0].form,
        [("email".into(), "finance@acme.test".into())]
    );
    let key = updates[0]
        .idempotency_key
        .as_deref()
        .expect("an idempotency key");
    assert!(
        key.starts_with(&format!("profile-push:organization:{}:", s.organization)),
        "{key}"
    );
}

#[tokio::test]
async fn a_name_change_is_pushed_and_other_columns_queue_nothing() {
    let s = setup().await;
    // Not a pushed column: the trigger's WHEN clause leaves it alone.
    s.update_organization("slug", "acme-renamed").await;
    let queued: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_customer_outbox where organization_id = $1",
    )
    .bind(s.organization)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(queued, 0);
    s.update_organization("name", "Acme Group").await;
    s.wait_for_applied("name", "Acme Group", Duration::from_secs(5))
        .await;
    assert_eq!(
        s.double.customer(&s.customer).unwrap().name.as_deref(),
        Some("Acme Group")
    );
}
