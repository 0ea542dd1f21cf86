//! Deleted is terminal (docs/design.md, "Sync rules"): once a `customer.deleted` of an id is
//! recorded, nothing applied afterwards creates or revives a live row for it, whatever the
//! delivery order and whether or not the delete could write a tombstone.

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{TestApp, create_auth_user, spawn_app};

/// The row's `sync.status`, or `None` when there is no row.
async fn status(app: &TestApp, customer: &str) -> Option<String> {
    app.customer(customer).await.map(|row| {
        row["customer_metadata"]["sync"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
}

async fn linked_customer(app: &TestApp, user: Uuid) -> Option<Value> {
    sqlx::query_scalar("select to_jsonb(c) from public.stripe_customers c where user_id = $1")
        .bind(user)
        .fetch_optional(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_order_of_created_updated_deleted_with_or_without_email_ends_with_no_live_row() {
    let app = spawn_app().await;
    let permutations = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    // Bit i of `emails` set: event i (created, updated, deleted) carries an email.
    for emails in 0..8u8 {
        for order in permutations {
            let user = create_auth_user(&app.db.pool).await;
            let customer = new_customer_id();
            let with_email = |i: usize, event: CustomerEvent| {
                let event = event.for_user(user);
                if emails & (1 << i) == 0 {
                    event.email(None)
                } else {
                    event
                }
            };
            let events = [
                with_email(0, CustomerEvent::created(&customer, T0)),
                with_email(1, CustomerEvent::updated(&customer, T0 + 1)),
                with_email(2, CustomerEvent::deleted(&customer, T0 + 2)),
            ];
            let mut answers = Vec::new();
            for i in order {
                let (status, body) = app.deliver_json(&events[i].json()).await;
                assert_eq!(status, 200, "{body}");
                answers.push(body);
            }
            let case = format!("emails {emails:03b}, order {order:?}: {answers:?}");
            let stored = status(&app, &customer).await;
            assert!(
                stored.is_none() || stored.as_deref() == Some("deleted"),
                "a live row ({stored:?}) for a deleted customer; {case}"
            );
            assert_eq!(
                linked_customer(&app, user).await,
                None,
                "the user stays linked to a deleted customer; {case}"
            );
        }
    }
}

#[tokio::test]
async fn created_after_a_delete_that_had_no_email_is_skipped_as_customer_deleted() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    let customer = new_customer_id();
    let deleted = CustomerEvent::deleted(&customer, T0 + 1).email(None);
    app.deliver_expecting(&deleted.json(), "skipped missing_email")
        .await;

    let created = CustomerEvent::created(&customer, T0).for_user(user);
    app.deliver_expecting(&created.json(), "skipped customer_deleted")
        .await;
    let updated = CustomerEvent::updated(&customer, T0 + 5).for_user(user);
    app.deliver_expecting(&updated.json(), "skipped customer_deleted")
        .await;
    assert_eq!(app.customer(&customer).await, None);
    assert_eq!(linked_customer(&app, user).await, None);
}

#[tokio::test]
async fn a_delete_ordered_before_the_last_update_still_ends_the_live_row() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    let customer = new_customer_id();
    app.deliver_expecting(
        &CustomerEvent::updated(&customer, T0 + 5)
            .for_user(user)
            .json(),
        "processed",
    )
    .await;
    app.deliver_expecting(
        &CustomerEvent::deleted(&customer, T0 + 3)
            .for_user(user)
            .json(),
        "processed",
    )
    .await;
    assert_eq!(status(&app, &customer).await.as_deref(), Some("deleted"));
    assert_eq!(linked_customer(&app, user).await, None);
}
