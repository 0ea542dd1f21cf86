//! docs/design.md's sync rules for `customer.created` / `updated` / `deleted`: what lands in
//! `public.stripe_customers`, exactly once, whatever order Stripe delivers in.

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{
    LinkState, TestApp, create_auth_user, create_auth_user_with_id, migrated_database, spawn_app,
    spawn_app_with,
};

/// A fresh app and one signed-up user.
async fn app_with_user() -> (TestApp, Uuid) {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    (app, user)
}

async fn row(app: &TestApp, customer_id: &str) -> Value {
    app.customer(customer_id)
        .await
        .unwrap_or_else(|| panic!("no row for {customer_id}"))
}

/// The row without what differs between two equal outcomes: its own id and timestamps.
fn comparable(mut row: Value) -> Value {
    let columns = row.as_object_mut().expect("row is an object");
    for volatile in ["id", "created_at", "updated_at"] {
        columns.remove(volatile);
    }
    row["customer_metadata"]["sync"]
        .as_object_mut()
        .expect("sync object")
        .remove("synced_at");
    row
}

#[tokio::test]
async fn created_event_stores_every_column_as_stripe_sent_it() {
    let (app, user) = app_with_user().await;
    let customer = new_customer_id();
    let event = CustomerEvent::created(&customer, T0)
        .for_user(user)
        .metadata("plan", "pro")
        .payment_method("pm_1QbcDeFgHiJk");
    app.deliver_expecting(&event.json(), "processed").await;

    let stored = row(&app, &customer).await;
    let synced_at = stored["customer_metadata"]["sync"]["synced_at"]
        .as_str()
        .expect("synced_at")
        .to_owned();
    assert!(
        synced_at.ends_with('Z'),
        "synced_at is RFC 3339 in UTC: {synced_at}"
    );
    let synced_at: DateTime<Utc> = synced_at.parse().expect("synced_at is RFC 3339");
    assert!(
        (Utc::now() - synced_at).num_seconds().abs() < 60,
        "synced_at is the time of the sync"
    );
    assert_eq!(
        comparable(stored),
        json!({
            "stripe_customer_id": customer,
            "user_id": user,
            "organization_id": null,
            "customer_email": event.email,
            "customer_name": "Ada Lovelace",
            "default_payment_method": "pm_1QbcDeFgHiJk",
            "customer_metadata": {
                "stripe": { "user_id": user, "plan": "pro" },
                "sync": {
                    "status": "synced",
                    "livemode": false,
                    "last_event_id": event.event_id,
                    "last_event_type": "customer.created",
                    "last_event_created": T0,
                    "error": null
                }
            }
        })
    );
}

#[tokio::test]
async fn same_event_delivered_again_is_a_duplicate_and_leaves_updated_at_unchanged() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;
    let update = CustomerEvent::updated(&customer, T0 + 1)
        .name("Ada King")
        .json();
    app.deliver_expecting(&update, "processed").await;
    let before = (row(&app, &customer).await, app.table_counts().await);

    app.deliver_expecting(&update, "duplicate").await;
    assert_eq!(
        (row(&app, &customer).await, app.table_counts().await),
        before
    );
}

#[tokio::test]
async fn twenty_concurrent_deliveries_of_one_event_have_exactly_one_effect() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    let payload = CustomerEvent::created(&customer, T0).json();

    let answers = join_all((0..20).map(|_| app.deliver_json(&payload))).await;
    let answered = |status: &str| {
        answers
            .iter()
            .filter(|(code, body)| *code == 200 && body["status"] == status)
            .count()
    };
    assert_eq!(
        (answered("processed"), answered("duplicate")),
        (1, 19),
        "{answers:?}"
    );
    assert_eq!(app.ledger_count().await, 1);
    let operations: Vec<Value> = app
        .audit_rows(&customer)
        .await
        .iter()
        .map(|a| a["operation"].clone())
        .collect();
    assert_eq!(operations, [json!("INSERT")]);
}

#[tokio::test]
async fn every_delivery_order_of_created_updated_deleted_converges_to_the_same_tombstone() {
    let user = Uuid::new_v4();
    let customer = new_customer_id();
    let final_data = |event: CustomerEvent| {
        event
            .for_user(user)
            .email(Some("ada.king@example.com"))
            .name("Ada King")
            .payment_method("pm_1Final")
    };
    // In Stripe's order: index = order, so an event applies iff no later one came before it.
    let events = [
        CustomerEvent::created(&customer, T0).for_user(user),
        final_data(CustomerEvent::updated(&customer, T0 + 1)),
        final_data(CustomerEvent::deleted(&customer, T0 + 2)),
    ];
    let permutations = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];

    for order in permutations {
        let app = spawn_app().await;
        create_auth_user_with_id(&app.db.pool, user).await;
        let mut newest = None;
        for i in order {
            let expected = if Some(i) > newest {
                "processed"
            } else {
                "skipped stale_event"
            };
            app.deliver_expecting(&events[i].json(), expected).await;
            newest = newest.max(Some(i));
        }
        assert_eq!(app.ledger_count().await, 3, "order {order:?}");
        assert_eq!(
            comparable(row(&app, &customer).await),
            json!({
                "stripe_customer_id": customer,
                "user_id": null,
                "organization_id": null,
                "customer_email": "ada.king@example.com",
                "customer_name": "Ada King",
                "default_payment_method": "pm_1Final",
                "customer_metadata": {
                    "stripe": { "user_id": user },
                    "sync": {
                        "status": "deleted",
                        "livemode": false,
                        "last_event_id": events[2].event_id,
                        "last_event_type": "customer.deleted",
                        "last_event_created": T0 + 2,
                        "error": null
                    }
                }
            }),
            "delivery order {order:?}"
        );
    }
}

#[tokio::test]
async fn updated_delivered_before_created_of_the_same_second_keeps_the_updated_data() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    let updated = CustomerEvent::updated(&customer, T0).name("Ada King");
    app.deliver_expecting(&updated.json(), "processed").await;
    app.deliver_expecting(
        &CustomerEvent::created(&customer, T0).json(),
        "skipped stale_event",
    )
    .await;

    let stored = row(&app, &customer).await;
    assert_eq!(stored["customer_name"], "Ada King");
    assert_eq!(
        stored["customer_metadata"]["sync"]["last_event_id"],
        json!(updated.event_id)
    );
}

#[tokio::test]
async fn events_of_equal_order_both_apply_so_the_later_delivery_wins() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;
    for name in ["First", "Second"] {
        let update = CustomerEvent::updated(&customer, T0 + 1).name(name);
        app.deliver_expecting(&update.json(), "processed").await;
    }
    assert_eq!(row(&app, &customer).await["customer_name"], "Second");
}

#[tokio::test]
async fn update_ordered_before_the_last_applied_one_is_stale_and_changes_nothing() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;
    app.deliver_expecting(
        &CustomerEvent::updated(&customer, T0 + 2)
            .name("Newer")
            .json(),
        "processed",
    )
    .await;
    let before = (row(&app, &customer).await, app.audit_count().await);

    let stale = CustomerEvent::updated(&customer, T0 + 1).name("Older");
    app.deliver_expecting(&stale.json(), "skipped stale_event")
        .await;
    assert_eq!(
        (row(&app, &customer).await, app.audit_count().await),
        before
    );
    app.assert_recorded(&stale.event_id, "skipped stale_event")
        .await;
}

#[tokio::test]
async fn update_after_delete_is_skipped_as_customer_deleted() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    app.deliver_expecting(&CustomerEvent::created(&customer, T0).json(), "processed")
        .await;
    app.deliver_expecting(
        &CustomerEvent::deleted(&customer, T0 + 1).json(),
        "processed",
    )
    .await;
    let tombstone = row(&app, &customer).await;

    let late = CustomerEvent::updated(&customer, T0 + 2).name("Back from the dead");
    app.deliver_expecting(&late.json(), "skipped customer_deleted")
        .await;
    assert_eq!(row(&app, &customer).await, tombstone);
    app.assert_recorded(&late.event_id, "skipped customer_deleted")
        .await;
}

#[tokio::test]
async fn after_a_delete_the_same_user_can_be_linked_to_a_new_customer() {
    let (app, user) = app_with_user().await;
    let (old, new) = (new_customer_id(), new_customer_id());
    app.deliver_expecting(
        &CustomerEvent::created(&old, T0).for_user(user).json(),
        "processed",
    )
    .await;
    app.deliver_expecting(
        &CustomerEvent::deleted(&old, T0 + 1).for_user(user).json(),
        "processed",
    )
    .await;
    assert_eq!(app.link_state(&old).await, LinkState::deleted());

    app.deliver_expecting(
        &CustomerEvent::created(&new, T0 + 2).for_user(user).json(),
        "processed",
    )
    .await;
    assert_eq!(app.link_state(&new).await, LinkState::linked(user));
}

#[tokio::test]
async fn audit_rows_name_their_event_and_the_delete_keeps_the_former_user_id() {
    let (app, user) = app_with_user().await;
    let customer = new_customer_id();
    let events = [
        CustomerEvent::created(&customer, T0).for_user(user),
        CustomerEvent::updated(&customer, T0 + 1)
            .for_user(user)
            .name("Ada King"),
        CustomerEvent::deleted(&customer, T0 + 2).for_user(user),
    ];
    for event in &events {
        app.deliver_expecting(&event.json(), "processed").await;
    }

    let audit = app.audit_rows(&customer).await;
    let trail: Vec<(Value, Value)> = audit
        .iter()
        .map(|a| (a["operation"].clone(), a["event_id"].clone()))
        .collect();
    let expected: Vec<(Value, Value)> = ["INSERT", "UPDATE", "UPDATE"]
        .iter()
        .zip(&events)
        .map(|(operation, event)| (json!(operation), json!(event.event_id)))
        .collect();
    assert_eq!(trail, expected);
    let delete = audit.last().unwrap();
    assert_eq!(
        delete["old_row"]["user_id"],
        json!(user),
        "the tombstone's audit keeps the former user"
    );
    assert_eq!(
        delete["new_row"],
        Value::Null,
        "the version after the tombstone is the row itself, not a copy"
    );
}

#[tokio::test]
async fn update_without_email_keeps_the_stored_email_and_applies_the_rest() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    let created = CustomerEvent::created(&customer, T0);
    app.deliver_expecting(&created.json(), "processed").await;

    let update = CustomerEvent::updated(&customer, T0 + 1)
        .email(None)
        .name("Ada King")
        .payment_method("pm_1New");
    app.deliver_expecting(&update.json(), "processed").await;
    let stored = row(&app, &customer).await;
    assert_eq!(stored["customer_email"], json!(created.email));
    assert_eq!(
        (&stored["customer_name"], &stored["default_payment_method"]),
        (&json!("Ada King"), &json!("pm_1New"))
    );
    assert_eq!(
        stored["customer_metadata"]["sync"]["last_event_id"],
        json!(update.event_id)
    );
}

#[tokio::test]
async fn expanded_default_payment_method_is_stored_as_its_id() {
    let app = spawn_app().await;
    let customer = new_customer_id();
    let payload = CustomerEvent::created(&customer, T0).json_with(|event| {
        event["data"]["object"]["invoice_settings"]["default_payment_method"] = json!({
            "id": "pm_1Expanded",
            "object": "payment_method",
            "type": "card",
            "created": T0,
            "customer": customer,
            "livemode": false,
            "metadata": {}
        });
    });
    app.deliver_expecting(&payload, "processed").await;
    assert_eq!(
        row(&app, &customer).await["default_payment_method"],
        "pm_1Expanded"
    );
}

#[tokio::test]
async fn user_id_is_read_from_the_configured_metadata_key() {
    let app = spawn_app_with(migrated_database().await, |settings| {
        settings.sync.user_id_metadata_key = "supabase_uid".into();
    })
    .await;
    let user = create_auth_user(&app.db.pool).await;
    let (by_configured_key, by_default_key) = (new_customer_id(), new_customer_id());

    let event =
        CustomerEvent::created(&by_configured_key, T0).metadata("supabase_uid", &user.to_string());
    app.deliver_expecting(&event.json(), "processed").await;
    assert_eq!(
        app.link_state(&by_configured_key).await,
        LinkState::linked(user)
    );

    let other_user = create_auth_user(&app.db.pool).await;
    app.deliver_expecting(
        &CustomerEvent::created(&by_default_key, T0)
            .for_user(other_user)
            .json(),
        "processed",
    )
    .await;
    assert_eq!(
        app.link_state(&by_default_key).await,
        LinkState::unlinked("missing_user_id")
    );
}
