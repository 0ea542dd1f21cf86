//! Linking a Stripe customer to an organization (`metadata.organization_id`, docs/design.md
//! "Organizations"): validated against the organizations table, under the user link's rules,
//! and never a user's and an organization's at once.

use futures::future::join_all;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::organizations::{
    create_organization, create_organizations_schema, customer_of_organization,
};
use crate::helpers::{TestApp, create_auth_user, spawn_app};

async fn spawn_app_with_organizations() -> TestApp {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    app
}

fn created_for_organization(organization: impl ToString) -> CustomerEvent {
    CustomerEvent::created(&new_customer_id(), T0)
        .metadata("organization_id", &organization.to_string())
}

/// The row's owner columns and its `sync.status` / `sync.error`.
async fn owner_of(app: &TestApp, customer_id: &str) -> (Value, Value, Value, Value) {
    let row = app.customer(customer_id).await.expect("a row");
    let sync = &row["customer_metadata"]["sync"];
    (
        row["user_id"].clone(),
        row["organization_id"].clone(),
        sync["status"].clone(),
        sync["error"].clone(),
    )
}

fn linked_to(organization: Uuid) -> (Value, Value, Value, Value) {
    (
        Value::Null,
        Value::String(organization.to_string()),
        "synced".into(),
        Value::Null,
    )
}

fn unlinked(reason: &str) -> (Value, Value, Value, Value) {
    (Value::Null, Value::Null, "unlinked".into(), reason.into())
}

#[tokio::test]
async fn webhook_with_metadata_organization_id_links_the_row_to_the_organization() {
    let app = spawn_app_with_organizations().await;
    let organization = create_organization(&app.db.pool, "Acme", Some("billing@acme.test")).await;
    let event = created_for_organization(organization);
    app.deliver_expecting(&event.json(), "processed").await;
    assert_eq!(
        owner_of(&app, &event.customer_id).await,
        linked_to(organization)
    );
    let row = customer_of_organization(&app.db.pool, organization).await;
    assert_eq!(
        row.unwrap()["stripe_customer_id"],
        event.customer_id.as_str()
    );
}

#[tokio::test]
async fn each_unlinkable_organization_id_leaves_the_row_unlinked_with_its_reason() {
    let app = spawn_app_with_organizations().await;
    let organization = create_organization(&app.db.pool, "Acme", None).await;
    let first = created_for_organization(organization);
    app.deliver_expecting(&first.json(), "processed").await;

    let cases = [
        (created_for_organization("acme"), "invalid_organization_id"),
        (
            created_for_organization(Uuid::new_v4()),
            "unknown_organization",
        ),
        (
            created_for_organization(organization),
            "organization_already_linked",
        ),
    ];
    for (event, reason) in cases {
        app.deliver_expecting(&event.json(), "processed").await;
        assert_eq!(owner_of(&app, &event.customer_id).await, unlinked(reason));
    }
    assert_eq!(
        owner_of(&app, &first.customer_id).await,
        linked_to(organization),
        "the first link stays"
    );
}

#[tokio::test]
async fn a_user_and_an_organization_never_share_a_row() {
    let app = spawn_app_with_organizations().await;
    let organization = create_organization(&app.db.pool, "Acme", None).await;
    let user = create_auth_user(&app.db.pool).await;
    // Metadata naming both: the organization's customer, not the user's.
    let both = created_for_organization(organization).for_user(user);
    app.deliver_expecting(&both.json(), "processed").await;
    assert_eq!(
        owner_of(&app, &both.customer_id).await,
        linked_to(organization)
    );
    // The user stays free for a customer of their own.
    let own = CustomerEvent::created(&new_customer_id(), T0).for_user(user);
    app.deliver_expecting(&own.json(), "processed").await;
    assert_eq!(
        app.customer(&own.customer_id).await.unwrap()["user_id"],
        user.to_string().as_str()
    );
    // And the table itself refuses a row with both, whoever writes it.
    let error =
        sqlx::query("update public.stripe_customers set user_id = $1 where organization_id = $2")
            .bind(user)
            .bind(organization)
            .execute(&app.db.pool)
            .await
            .expect_err("a row with both owners");
    let constraint = error
        .as_database_error()
        .and_then(|e| e.constraint().map(str::to_owned));
    assert_eq!(constraint.as_deref(), Some("stripe_customers_one_owner"));
}

#[tokio::test]
async fn deleted_organization_customer_stays_deleted_and_frees_the_organization() {
    let app = spawn_app_with_organizations().await;
    let organization = create_organization(&app.db.pool, "Acme", None).await;
    let created = created_for_organization(organization);
    app.deliver_expecting(&created.json(), "processed").await;
    let deleted = CustomerEvent::deleted(&created.customer_id, T0 + 10)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&deleted.json(), "processed").await;
    let revived = CustomerEvent::updated(&created.customer_id, T0 + 20)
        .metadata("organization_id", &organization.to_string());
    app.deliver_expecting(&revived.json(), "skipped customer_deleted")
        .await;
    assert_eq!(
        owner_of(&app, &created.customer_id).await,
        (Value::Null, Value::Null, "deleted".into(), Value::Null)
    );
    let next = created_for_organization(organization);
    app.deliver_expecting(&next.json(), "processed").await;
    assert_eq!(
        owner_of(&app, &next.customer_id).await,
        linked_to(organization)
    );
}

#[tokio::test]
async fn deleting_the_organization_deletes_its_customer_row_as_deleting_a_user_does() {
    let app = spawn_app_with_organizations().await;
    let organization = create_organization(&app.db.pool, "Acme", None).await;
    let event = created_for_organization(organization);
    app.deliver_expecting(&event.json(), "processed").await;
    sqlx::query("delete from public.organizations where id = $1")
        .bind(organization)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert!(app.customer(&event.customer_id).await.is_none());
}

#[tokio::test]
async fn concurrent_webhooks_of_users_and_organizations_each_link_their_own_owner() {
    let app = spawn_app_with_organizations().await;
    let mut events = Vec::new();
    for i in 0..6 {
        let organization = create_organization(&app.db.pool, &format!("Org{i}"), None).await;
        events.push((
            created_for_organization(organization),
            Some(organization),
            None,
        ));
        let user = create_auth_user(&app.db.pool).await;
        let event = CustomerEvent::created(&new_customer_id(), T0).for_user(user);
        events.push((event, None, Some(user)));
    }
    let payloads: Vec<String> = events.iter().map(|(event, _, _)| event.json()).collect();
    let answers = join_all(payloads.iter().map(|payload| app.deliver_json(payload))).await;
    for (status, body) in answers {
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("processed")),
            "{body}"
        );
    }
    for (event, organization, user) in &events {
        let row = app.customer(&event.customer_id).await.expect("a row");
        let id = |v: &Option<Uuid>| v.map_or(Value::Null, |id| Value::String(id.to_string()));
        assert_eq!(
            (row["organization_id"].clone(), row["user_id"].clone()),
            (id(organization), id(user))
        );
    }
}
