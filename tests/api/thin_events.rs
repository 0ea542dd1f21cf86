//! Thin events (`v1.customer.*`, `object: "v2.core.event"`) on `POST /webhooks/stripe`: verified
//! as usual, the customer fetched from Stripe (the double), its state applied at the fetch's time
//! through the same rules, the event recorded; 503 `not_configured` without an API key.

use serde_json::{Value, json};

use crate::helpers::events::{
    CustomerEvent, FIXTURE_CUSTOMER, FIXTURE_USER, fixtures_in, new_customer_id, new_event_id,
    thin_event,
};
use crate::helpers::stripe_double::{Customer, Fault, StripeDouble, Target};
use crate::helpers::{
    LinkState, TableCounts, create_auth_user, create_auth_user_with_id, event_id_of, now,
    spawn_app, spawn_app_with_stripe,
};

#[tokio::test]
async fn thin_created_updated_deleted_leave_the_row_as_the_fetched_customer_says() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let user = FIXTURE_USER.parse().unwrap();
    create_auth_user_with_id(&app.db.pool, user).await;
    double.add([Customer::new(FIXTURE_CUSTOMER)
        .for_user(user)
        .name(Some("Ada from the API"))
        .payment_method(Some("pm_1ThinFx"))]);
    let fixtures = fixtures_in("thin");
    assert_eq!(fixtures.len(), 3, "created, updated, deleted");
    let (created, updated, deleted) = (&fixtures[0].1, &fixtures[1].1, &fixtures[2].1);

    app.deliver_expecting(created, "processed").await;
    let row = app.customer(FIXTURE_CUSTOMER).await.unwrap();
    assert_eq!(row["customer_email"], "cus_thinfx7kq2wmzr@example.com");
    assert_eq!(row["customer_name"], "Ada from the API");
    assert_eq!(row["default_payment_method"], "pm_1ThinFx");
    assert_eq!(
        app.link_state(FIXTURE_CUSTOMER).await,
        LinkState::linked(user)
    );
    let sync = &row["customer_metadata"]["sync"];
    assert_eq!(sync["last_event_type"], "v1.customer.created");
    assert_eq!(sync["last_event_id"], crate::helpers::event_id_of(created));
    let fetched_at = double.retrieve_requests(FIXTURE_CUSTOMER).len();
    assert_eq!(fetched_at, 1, "one fetch per thin event");

    // The ledger: the thin event as sent, its RFC 3339 `created`, no API version.
    let ledger = app
        .ledger_row(&crate::helpers::event_id_of(created))
        .await
        .unwrap();
    assert_eq!(ledger["type"], "v1.customer.created");
    assert_eq!(ledger["outcome"], "processed");
    assert_eq!(ledger["api_version"], Value::Null);
    assert!(
        ledger["stripe_created"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-26T09:15:02.371"),
        "{}",
        ledger["stripe_created"]
    );
    assert_eq!(
        ledger["payload"],
        serde_json::from_str::<Value>(created).unwrap()
    );

    double.update(FIXTURE_CUSTOMER, |c| {
        c.name = Some("Ada, renamed".into());
        c.email = Some("ada.renamed@example.com".into());
    });
    app.deliver_expecting(updated, "processed").await;
    let row = app.customer(FIXTURE_CUSTOMER).await.unwrap();
    assert_eq!(row["customer_name"], "Ada, renamed");
    assert_eq!(row["customer_email"], "ada.renamed@example.com");

    double.delete(FIXTURE_CUSTOMER);
    app.deliver_expecting(deleted, "processed").await;
    assert_eq!(app.link_state(FIXTURE_CUSTOMER).await, LinkState::deleted());
    let row = app.customer(FIXTURE_CUSTOMER).await.unwrap();
    assert_eq!(
        row["customer_email"], "ada.renamed@example.com",
        "a deleted customer has no email: the stored one stays"
    );
    assert_eq!(app.ledger_count().await, 3);
    assert_eq!(app.audit_count().await, 3);
}

#[tokio::test]
async fn same_thin_event_twice_is_a_duplicate_without_a_second_fetch() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let id = new_customer_id();
    double.add([Customer::new(&id)]);
    let event = thin_event("v1.customer.updated", &id);

    app.deliver_expecting(&event, "processed").await;
    app.deliver_expecting(&event, "duplicate").await;
    assert_eq!(double.retrieve_requests(&id).len(), 1);
    assert_eq!(app.ledger_count().await, 1);
    assert_eq!(app.audit_count().await, 1);
}

#[tokio::test]
async fn snapshot_event_older_than_the_thin_events_fetch_is_stale_and_a_newer_one_applies() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let id = new_customer_id();
    double.add([Customer::new(&id).name(Some("as fetched"))]);
    app.deliver_expecting(&thin_event("v1.customer.updated", &id), "processed")
        .await;

    // Sent before the fetch, delivered after it: what it says is older than the fetched state.
    let older = CustomerEvent::updated(&id, now() - 60).name("older snapshot");
    app.deliver_expecting(&older.json(), "skipped stale_event")
        .await;
    assert_eq!(
        app.customer(&id).await.unwrap()["customer_name"],
        "as fetched"
    );

    let newer = CustomerEvent::updated(&id, now() + 60).name("newer snapshot");
    app.deliver_expecting(&newer.json(), "processed").await;
    assert_eq!(
        app.customer(&id).await.unwrap()["customer_name"],
        "newer snapshot"
    );
}

#[tokio::test]
async fn customer_the_key_does_not_know_is_failed_customer_not_found_and_keeps_its_link() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    let id = new_customer_id();
    app.deliver_expecting(
        &CustomerEvent::created(&id, now() - 60)
            .for_user(user)
            .json(),
        "processed",
    )
    .await;
    // 404 resource_missing: a key of another account or mode, or wiped test data; not a
    // deletion Stripe reported.
    double.add([Customer::new(&id)]);
    double.forget(&id);
    let thin = thin_event("v1.customer.updated", &id);
    app.deliver_expecting(&thin, "failed customer_not_found")
        .await;
    assert_eq!(app.link_state(&id).await, LinkState::linked(user));
    app.assert_recorded(&event_id_of(&thin), "failed customer_not_found")
        .await;
}

#[tokio::test]
async fn thin_event_without_an_api_key_is_503_not_configured_and_writes_nothing() {
    let app = spawn_app().await;
    let event = thin_event("v1.customer.created", &new_customer_id());
    let (status, body) = app.deliver_json(&event).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "not_configured");
    assert_eq!(app.table_counts().await, TableCounts::default());
}

#[tokio::test]
async fn thin_event_is_503_unavailable_while_stripe_fails_and_applies_on_the_retry() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let id = new_customer_id();
    double.add([Customer::new(&id)]);
    double.fail(Target::Retrieve(id.clone()), Fault::ServerError, 100);
    let event = thin_event("v1.customer.created", &id);

    let started = std::time::Instant::now();
    let (status, body) = app.deliver_json(&event).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        double.retrieve_requests(&id).len(),
        3,
        "the first attempt and two quick retries"
    );
    assert_eq!(app.table_counts().await, TableCounts::default());

    double.release_hangs();
    app.deliver_expecting(&event, "processed").await;

    // A Stripe that does not answer at all: still 503 within the webhook's deadline.
    let hanging = new_customer_id();
    double.add([Customer::new(&hanging)]);
    double.fail(Target::Retrieve(hanging.clone()), Fault::Hang, 100);
    let started = std::time::Instant::now();
    let (status, _) = app
        .deliver_json(&thin_event("v1.customer.updated", &hanging))
        .await;
    assert_eq!(status, 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    double.release_hangs();
}

#[tokio::test]
async fn thin_events_of_other_types_are_ignored_and_bad_customer_ids_skipped_without_a_fetch() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let invoice = json!({
        "id": new_event_id(),
        "object": "v2.core.event",
        "type": "v1.billing.meter.no_meter_found",
        "livemode": false,
        "created": "2026-11-26T09:00:00.000Z",
        "context": null,
        "reason": null
    })
    .to_string();
    app.deliver_expecting(&invoice, "ignored").await;
    app.deliver_expecting(
        &thin_event("v1.customer.updated", "cus_bad-id!"),
        "skipped invalid_customer_id",
    )
    .await;
    assert!(double.requests().is_empty(), "nothing fetched");
    assert_eq!(app.ledger_count().await, 2);
}

#[tokio::test]
async fn thin_event_of_a_mode_the_deployment_does_not_keep_is_ignored_without_a_fetch() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let id = new_customer_id();
    double.add([Customer::new(&id)]);
    let mut live: Value = serde_json::from_str(&thin_event("v1.customer.created", &id)).unwrap();
    live["livemode"] = json!(true);
    let payload = live.to_string();

    app.deliver_expecting(&payload, "ignored other_mode").await;
    assert_eq!(double.retrieve_requests(&id).len(), 0, "nothing fetched");
    assert_eq!(app.customer(&id).await, None);
}
