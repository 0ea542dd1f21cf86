//! What the ledger keeps, and for how long: an `ignored` event keeps no payload, a kept payload
//! is compressed, and `LEDGER_RETENTION` removes old rows in batches, never one a rule needs.

use std::time::Duration;

use serde_json::Value;
use stripe_customer_sync::ledger_retention::pass;
use stripe_customer_sync::store::ledger_retention::LOCK_KEY;

use crate::helpers::events::{CustomerEvent, new_customer_id};
use crate::helpers::{TestApp, event_id_of, now, spawn_app};

const NINETY_DAYS: Duration = Duration::from_secs(90 * 86_400);

async fn payload_of(app: &TestApp, event_id: &str) -> Value {
    app.ledger_row(event_id).await.expect("recorded")["payload"].clone()
}

#[tokio::test]
async fn an_ignored_event_keeps_no_payload_and_the_others_keep_theirs() {
    let app = spawn_app().await;
    let invoice = CustomerEvent::new("invoice.paid", &new_customer_id(), now()).json();
    let live = CustomerEvent::created(&new_customer_id(), now())
        .live()
        .json();
    let processed = CustomerEvent::created(&new_customer_id(), now()).json();
    let skipped = CustomerEvent::created(&new_customer_id(), now())
        .email(None)
        .json();
    app.deliver_expecting(&invoice, "ignored").await;
    app.deliver_expecting(&live, "ignored other_mode").await;
    app.deliver_expecting(&processed, "processed").await;
    app.deliver_expecting(&skipped, "skipped missing_email")
        .await;

    assert!(payload_of(&app, &event_id_of(&invoice)).await.is_null());
    assert!(payload_of(&app, &event_id_of(&live)).await.is_null());
    for kept in [&processed, &skipped] {
        let payload = payload_of(&app, &event_id_of(kept)).await;
        assert_eq!(payload, serde_json::from_str::<Value>(kept).unwrap());
    }
    // A duplicate of an ignored event is still known by its id.
    app.deliver_expecting(&invoice, "duplicate").await;
}

#[tokio::test]
async fn a_kept_payload_is_stored_compressed() {
    let app = spawn_app().await;
    let event = CustomerEvent::created(&new_customer_id(), now())
        .metadata("notes", &"a customer note that Stripe keeps ".repeat(40))
        .json();
    assert!(event.len() > 2_000, "a 2 KB event");
    app.deliver_expecting(&event, "processed").await;
    let (stored, text): (i32, i32) = sqlx::query_as(
        "select pg_column_size(payload), octet_length(payload::text)
           from public.stripe_webhook_events where id = $1",
    )
    .bind(event_id_of(&event))
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(
        stored * 2 < text,
        "{stored} bytes stored for {text} bytes of JSON"
    );
}

/// Makes a ledger row look received `days` ago.
async fn received_days_ago(app: &TestApp, event_id: &str, days: i32) {
    sqlx::query(
        "update public.stripe_webhook_events
            set received_at = now() - make_interval(days => $2) where id = $1",
    )
    .bind(event_id)
    .bind(days)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn retention_removes_old_rows_in_batches_and_never_one_a_rule_needs() {
    let app = spawn_app().await;
    let mut old = Vec::new();
    for _ in 0..7 {
        let event = CustomerEvent::created(&new_customer_id(), now()).json();
        app.deliver_expecting(&event, "processed").await;
        received_days_ago(&app, &event_id_of(&event), 100).await;
        old.push(event_id_of(&event));
    }
    let recent = CustomerEvent::created(&new_customer_id(), now()).json();
    app.deliver_expecting(&recent, "processed").await;
    // A delete that could write no tombstone (no email): the ledger row is all that keeps
    // the customer deleted.
    let gone = new_customer_id();
    let deletion = CustomerEvent::deleted(&gone, now() - 10).email(None).json();
    app.deliver_expecting(&deletion, "skipped missing_email")
        .await;
    received_days_ago(&app, &event_id_of(&deletion), 400).await;
    // A failed event waits to be re-applied from its payload (marked so by hand: what made
    // the database refuse it does not matter here).
    let failed = CustomerEvent::created(&new_customer_id(), now()).json();
    app.deliver_expecting(&failed, "processed").await;
    let failed_id = event_id_of(&failed);
    sqlx::query(
        "update public.stripe_webhook_events
            set outcome = 'failed', reason = 'constraint_violation', error = 'refused'
          where id = $1",
    )
    .bind(&failed_id)
    .execute(&app.db.pool)
    .await
    .unwrap();
    received_days_ago(&app, &failed_id, 400).await;

    let done = pass(&app.db.pool, NINETY_DAYS, 3, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(done.removed, 7);
    assert_eq!(done.batches, 3, "3 + 3 + 1");
    for id in &old {
        assert!(app.ledger_row(id).await.is_none(), "{id} removed");
    }
    for kept in [event_id_of(&recent), event_id_of(&deletion), failed_id] {
        assert!(app.ledger_row(&kept).await.is_some(), "{kept} kept");
    }
    // Deleted is terminal, however old the deletion.
    app.deliver_expecting(
        &CustomerEvent::created(&gone, now()).json(),
        "skipped customer_deleted",
    )
    .await;
}

#[tokio::test]
async fn one_replica_at_a_time_removes_rows() {
    let app = spawn_app().await;
    let event = CustomerEvent::created(&new_customer_id(), now()).json();
    app.deliver_expecting(&event, "processed").await;
    received_days_ago(&app, &event_id_of(&event), 100).await;

    let mut other = app.db.pool.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *other)
        .await
        .unwrap();
    let done = pass(&app.db.pool, NINETY_DAYS, 100, Duration::ZERO)
        .await
        .unwrap();
    assert!(done.locked_out);
    assert_eq!(done.removed, 0);
    other.rollback().await.unwrap();

    let done = pass(&app.db.pool, NINETY_DAYS, 100, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((done.removed, done.locked_out), (1, false));
}
