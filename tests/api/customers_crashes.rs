//! `POST /customers` when a creation is cut off: the service dies between Stripe's answer and
//! the row, and the next call (on any replica, or `ensure-customer`) finds Stripe's customer
//! instead of making another.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::customers_endpoint::{app_and_double, creation, customer_id, ensure};
use crate::helpers::stripe_double::{Fault, StripeDouble, Target};
use crate::helpers::{LinkState, TestApp, create_auth_user, spawn_app};

/// A `serve` process with `POST /customers` on, against the double.
/// Runs `ensure-customer` against the double; the child, still running.
fn ensure_customer_process(
    app: &TestApp,
    double: &StripeDouble,
    dir: &std::path::Path,
    user: Uuid,
) -> std::process::Command {
    let mut command = double.command(
        &app.db.url,
        dir,
        &["ensure-customer", "--user-id", &user.to_string()],
    );
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Starts `ensure-customer`, waits until the double created the customer (and, as told,
/// holds its answer back), then kills the process: Stripe did the work, no row was written.
async fn crash_after_stripe_created(app: &TestApp, double: &StripeDouble, user: Uuid) {
    double.fail(Target::Create, Fault::HangAfterCreating, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut child = ensure_customer_process(app, double, dir.path(), user)
        .spawn()
        .unwrap();
    double
        .wait_for("the customer to be created", |d| d.customers().len() == 1)
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    double.release_hangs();
    assert_eq!(app.customer_count().await, 0, "the row write was cut off");
    assert_eq!(
        creation(app, user).await,
        Some((1, false)),
        "attempt 1 unfinished"
    );
}

/// Moves the attempt (and the lease its killed process held) `by` into the past.
async fn backdate_attempt(app: &TestApp, user: Uuid, by: &str) {
    sqlx::query(
        "update public.stripe_customer_creations
            set started_at = started_at - $2::interval, lease_until = lease_until - $2::interval
          where user_id = $1",
    )
    .bind(user)
    .bind(by)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_crash_then_a_retry_after_the_key_window_finds_the_customer_instead_of_making_another() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    crash_after_stripe_created(&app, &double, user).await;
    let made = double.customers()[0].id.clone();

    // A day later: Stripe forgot the key; the look-up finds the customer.
    backdate_attempt(&app, user, "25 hours").await;
    double.expire_idempotency_keys();
    double.clear_requests();
    let dir = tempfile::tempdir().unwrap();
    let output = crate::helpers::stripe_double::output(ensure_customer_process(
        &app,
        &double,
        dir.path(),
        user,
    ))
    .await;

    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        printed,
        json!({"stripe_customer_id": made, "user_id": user, "created": true})
    );
    assert_eq!(double.customers().len(), 1, "still one customer");
    assert_eq!(double.search_requests().len(), 1, "looked up");
    assert!(double.create_requests().is_empty(), "not created again");
    assert_eq!(app.link_state(&made).await, LinkState::linked(user));
    assert_eq!(creation(&app, user).await, Some((1, true)));
}

#[tokio::test]
async fn a_crash_then_a_retry_the_search_cannot_see_yet_sends_the_same_key_and_stripe_replays() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    crash_after_stripe_created(&app, &double, user).await;
    let made = double.customers()[0].id.clone();

    // Minutes later, but Stripe's search has not caught up with the customer yet; and the user
    // changed their email meanwhile (the key must still be sent with what it was sent with).
    backdate_attempt(&app, user, "2 minutes").await;
    double.set_search_lag(Duration::from_secs(3600));
    sqlx::query("update auth.users set email = 'new@example.com' where id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = ensure(&app, user).await;

    assert_eq!((status, customer_id(&body)), (201, made.clone()), "{body}");
    assert_eq!(double.customers().len(), 1, "still one customer");
    assert_eq!(double.search_requests().len(), 1, "looked up first");
    let creates = double.create_requests();
    assert_eq!(creates.len(), 2);
    assert!(
        creates
            .iter()
            .all(|r| r.idempotency_key == Some(format!("{user}:1"))),
        "the same key"
    );
    assert_eq!(creates[1].form, creates[0].form, "the same parameters");
    assert!(creates[1].replayed, "Stripe replayed the first answer");
    assert_eq!(app.link_state(&made).await, LinkState::linked(user));
}

#[tokio::test]
async fn ensure_customer_command_prints_the_customer_and_a_second_run_calls_no_stripe() {
    let app = spawn_app().await;
    let double = StripeDouble::start().await;
    let user = create_auth_user(&app.db.pool).await;
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        crate::helpers::stripe_double::output(ensure_customer_process(
            &app,
            &double,
            dir.path(),
            user,
        ))
    };
    let first = run().await;
    assert!(first.status.success(), "{first:?}");
    let printed: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(printed["created"], true);
    double.clear_requests();
    let second = run().await;
    let again: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(again["stripe_customer_id"], printed["stripe_customer_id"]);
    assert_eq!(again["created"], false);
    assert!(double.api_requests().is_empty());
}
