//! Linking a Stripe customer to its Supabase user (`metadata.user_id`), and the customer events
//! that cannot be written at all.

use futures::future::join;
use serde_json::json;

use crate::helpers::events::{CustomerEvent, T0, new_customer_id};
use crate::helpers::{LinkState, TestApp, create_auth_user, spawn_app};

/// Delivers `event`, which must be `processed` and leave its row with `expected` link.
async fn assert_stored_as(app: &TestApp, event: &CustomerEvent, expected: LinkState) {
    app.deliver_expecting(&event.json(), "processed").await;
    assert_eq!(app.link_state(&event.customer_id).await, expected);
}

/// Delivers `event`, which must be skipped for `reason`, recorded so, and write no row.
async fn assert_skipped_and_recorded(app: &TestApp, event: &CustomerEvent, reason: &str) {
    let expected = format!("skipped {reason}");
    app.deliver_expecting(&event.json(), &expected).await;
    app.assert_recorded(&event.event_id, &expected).await;
    assert_eq!(
        (app.customer_count().await, app.audit_count().await),
        (0, 0)
    );
}

fn created() -> CustomerEvent {
    CustomerEvent::created(&new_customer_id(), T0)
}

#[tokio::test]
async fn existing_user_held_by_no_other_customer_is_linked() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    assert_stored_as(&app, &created().for_user(user), LinkState::linked(user)).await;
}

#[tokio::test]
async fn customer_without_a_user_id_is_stored_unlinked_as_missing_user_id() {
    let app = spawn_app().await;
    assert_stored_as(&app, &created(), LinkState::unlinked("missing_user_id")).await;
}

#[tokio::test]
async fn user_id_that_is_not_a_uuid_is_stored_unlinked_as_invalid_user_id() {
    let app = spawn_app().await;
    let event = created().metadata("user_id", "user-42");
    assert_stored_as(&app, &event, LinkState::unlinked("invalid_user_id")).await;
}

#[tokio::test]
async fn user_id_of_no_auth_user_is_stored_unlinked_as_unknown_user() {
    let app = spawn_app().await;
    let event = created().for_user(uuid::Uuid::new_v4());
    assert_stored_as(&app, &event, LinkState::unlinked("unknown_user")).await;
}

#[tokio::test]
async fn user_held_by_another_customer_is_stored_unlinked_as_user_already_linked() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    let first = created().for_user(user);
    assert_stored_as(&app, &first, LinkState::linked(user)).await;

    assert_stored_as(
        &app,
        &created().for_user(user),
        LinkState::unlinked("user_already_linked"),
    )
    .await;
    assert_eq!(
        app.link_state(&first.customer_id).await,
        LinkState::linked(user),
        "the first link stays"
    );
}

#[tokio::test]
async fn customer_without_email_and_no_row_is_skipped_as_missing_email_and_recorded() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    assert_skipped_and_recorded(&app, &created().for_user(user).email(None), "missing_email").await;
}

#[tokio::test]
async fn customer_id_of_the_wrong_shape_is_skipped_as_invalid_customer_id_and_recorded() {
    let app = spawn_app().await;
    let user = create_auth_user(&app.db.pool).await;
    let event = CustomerEvent::created("cus_bad-id!", T0).for_user(user);
    assert_skipped_and_recorded(&app, &event, "invalid_customer_id").await;
}

#[tokio::test]
async fn two_customers_racing_for_one_user_link_exactly_one_and_never_fail() {
    let app = spawn_app().await;
    for round in 0..10 {
        let user = create_auth_user(&app.db.pool).await;
        let (a, b) = (created().for_user(user), created().for_user(user));
        let (answer_a, answer_b) =
            join(app.deliver_json(&a.json()), app.deliver_json(&b.json())).await;
        assert_eq!(
            answer_a,
            (
                200,
                json!({ "status": "processed", "event_id": a.event_id })
            ),
            "round {round}"
        );
        assert_eq!(
            answer_b,
            (
                200,
                json!({ "status": "processed", "event_id": b.event_id })
            ),
            "round {round}"
        );

        let mut links = vec![
            app.link_state(&a.customer_id).await,
            app.link_state(&b.customer_id).await,
        ];
        links.sort_by_key(|link| link.user_id.is_none());
        assert_eq!(
            links,
            [
                LinkState::linked(user),
                LinkState::unlinked("user_already_linked")
            ],
            "round {round}"
        );
    }
}
