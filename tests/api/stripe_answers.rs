//! What each path that reads Stripe's API concludes from each answer Stripe (or something in
//! its place) can give. Only Stripe's own answer about the object changes the table: 200 with
//! the customer applies it, 200 `deleted: true` makes the tombstone, 404 `resource_missing` is
//! recorded as such and never deletes or unlinks; an answer that is not Stripe's documented one
//! (an unknown URL, a proxy's page, a cut-off body, another object, another mode, the key
//! refused) writes nothing and fails loudly; rate limits, server errors and time-outs are
//! retried, and a webhook that still has no answer is a 503 for Stripe to redeliver.
//!
//! The commands (`catch-up`, `backfill`, `verify`) retry a transient answer for about a minute
//! and wait up to a minute for one attempt: here a transient answer is given once and the
//! retry must succeed; a time-out is left to the webhook paths, whose deadlines are seconds.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::commands::{run, workdir};
use crate::helpers::events::{CustomerEvent, new_customer_id, thin_event};
use crate::helpers::schema::outbox_row;
use crate::helpers::stripe_double::answers::{Asked, EVERY_ANSWER, StripeAnswer};
use crate::helpers::stripe_double::{Customer, StripeDouble, Target};
use crate::helpers::{
    LinkState, TestApp, create_auth_user, event_id_of, json_reply, migrated_database, now,
    spawn_app_with_customers, spawn_app_with_stripe,
};
use crate::profile_push::replica;

/// A customer row linked to a new user, named "Before"; the double holds it named "After".
async fn linked_customer(app: &TestApp, double: &StripeDouble) -> (String, uuid::Uuid) {
    let id = new_customer_id();
    let user = create_auth_user(&app.db.pool).await;
    let created = CustomerEvent::created(&id, now() - 120)
        .for_user(user)
        .name("Before");
    app.deliver_expecting(&created.json(), "processed").await;
    double.add([Customer::new(&id).for_user(user).name(Some("After"))]);
    (id, user)
}

async fn name_of(app: &TestApp, id: &str) -> Value {
    app.customer(id).await.expect("the row")["customer_name"].clone()
}

#[tokio::test]
async fn a_thin_events_fetch_changes_the_row_only_as_stripes_own_answer_says() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    for answer in EVERY_ANSWER {
        let (id, user) = linked_customer(&app, &double).await;
        if answer == StripeAnswer::Deleted {
            double.delete(&id);
        }
        answer.script(&double, Target::Retrieve(id.clone()), Asked::Customer(&id));
        let thin = thin_event("v1.customer.updated", &id);
        let (status, body) = app.deliver_json(&thin).await;
        let recorded = app.ledger_row(&event_id_of(&thin)).await;
        let case = format!("{answer:?}: {status} {body}");
        match answer {
            StripeAnswer::Object => {
                assert_eq!(
                    (status, &body["status"]),
                    (200, &Value::from("processed")),
                    "{case}"
                );
                assert_eq!(name_of(&app, &id).await, "After", "{case}");
                assert_eq!(app.link_state(&id).await, LinkState::linked(user), "{case}");
            }
            StripeAnswer::Deleted => {
                assert_eq!(
                    (status, &body["status"]),
                    (200, &Value::from("processed")),
                    "{case}"
                );
                assert_eq!(app.link_state(&id).await, LinkState::deleted(), "{case}");
            }
            StripeAnswer::ResourceMissing => {
                assert_eq!(
                    (status, &body["status"], &body["reason"]),
                    (
                        200,
                        &Value::from("failed"),
                        &Value::from("customer_not_found")
                    ),
                    "{case}"
                );
                assert_eq!(app.link_state(&id).await, LinkState::linked(user), "{case}");
                assert_eq!(name_of(&app, &id).await, "Before", "{case}");
            }
            _ => {
                assert_eq!(status, 503, "{case}");
                assert!(recorded.is_none(), "{case}: nothing recorded");
                assert_eq!(app.link_state(&id).await, LinkState::linked(user), "{case}");
                assert_eq!(name_of(&app, &id).await, "Before", "{case}");
            }
        }
        double.release_hangs();
    }
}

/// A command's answers: transient ones once (retried), a time-out not at all (see the module).
fn command_answers() -> impl Iterator<Item = StripeAnswer> {
    EVERY_ANSWER
        .into_iter()
        .filter(|answer| *answer != StripeAnswer::Timeout)
}

fn is_transient(answer: StripeAnswer) -> bool {
    matches!(
        answer,
        StripeAnswer::RateLimited | StripeAnswer::ServerError | StripeAnswer::BadGatewayHtml
    )
}

fn script_for_a_command(double: &StripeDouble, answer: StripeAnswer, target: Target, asked: Asked) {
    answer.script(double, target.clone(), asked);
    if is_transient(answer) {
        // Once: the command's retry must get the real answer.
        double.release_hangs();
        answer.script_times(double, target, asked, 1);
    }
}

#[tokio::test]
async fn verify_reports_only_what_stripe_said_and_fails_on_anything_else() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    let dir = workdir();
    for answer in command_answers() {
        let (id, user) = linked_customer(&app, &double).await;
        double.update(&id, |c| c.name = Some("Before".into()));
        if answer == StripeAnswer::Deleted {
            double.delete(&id);
        }
        script_for_a_command(
            &double,
            answer,
            Target::Retrieve(id.clone()),
            Asked::Customer(&id),
        );
        let ran = run(&double, &app.db.url, dir.path(), &["verify", "--json"]).await;
        let case = format!("{answer:?}: {:?} {} {}", ran.code, ran.stdout, ran.stderr);
        let report: Value = serde_json::from_str(&ran.stdout).unwrap_or(Value::Null);
        let kinds = report["by_kind"].clone();
        match answer {
            StripeAnswer::Object
            | StripeAnswer::RateLimited
            | StripeAnswer::ServerError
            | StripeAnswer::BadGatewayHtml => {
                assert_eq!(ran.code, Some(0), "{case}");
                assert_eq!(report["drifted"], 0, "{case}");
            }
            StripeAnswer::Deleted => {
                assert_eq!(ran.code, Some(1), "{case}");
                assert_eq!(kinds, serde_json::json!({"deleted_in_stripe": 1}), "{case}");
            }
            StripeAnswer::ResourceMissing => {
                assert_eq!(ran.code, Some(1), "{case}");
                assert_eq!(kinds, serde_json::json!({"missing_in_stripe": 1}), "{case}");
            }
            _ => {
                assert_ne!(ran.code, Some(0), "{case}: not verified");
                assert!(ran.stderr.contains("STRIPE_API"), "{case}: names the fix");
                assert!(
                    report.get("by_kind").is_none(),
                    "{case}: no report of drift"
                );
            }
        }
        // Nothing but --fix writes: the row is as it was.
        assert_eq!(app.link_state(&id).await, LinkState::linked(user), "{case}");
        assert_eq!(name_of(&app, &id).await, "Before", "{case}");
        double.release_hangs();
        // Out of the next case's way: a tombstone is not verified.
        app.deliver_expecting(&CustomerEvent::deleted(&id, now() - 60).json(), "processed")
            .await;
    }
}

#[tokio::test]
async fn a_backfill_page_is_applied_only_when_it_is_stripes_list_of_customers() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    for answer in command_answers().filter(|a| *a != StripeAnswer::Deleted) {
        let id = new_customer_id();
        double.add([Customer::new(&id)]);
        script_for_a_command(&double, answer, Target::ListPage(1), Asked::Customers);
        let dir = workdir();
        let ran = run(&double, &app.db.url, dir.path(), &["backfill", "--json"]).await;
        let case = format!("{answer:?}: {:?} {} {}", ran.code, ran.stdout, ran.stderr);
        if answer == StripeAnswer::Object || is_transient(answer) {
            assert_eq!(ran.code, Some(0), "{case}");
            assert!(app.customer(&id).await.is_some(), "{case}");
        } else {
            assert_ne!(ran.code, Some(0), "{case}");
            assert!(app.customer(&id).await.is_none(), "{case}: nothing written");
        }
        double.release_hangs();
    }
}

#[tokio::test]
async fn catch_up_applies_a_listed_event_only_when_the_list_is_stripes() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_stripe(&double).await;
    for answer in command_answers().filter(|a| *a != StripeAnswer::Deleted) {
        let id = new_customer_id();
        let event = CustomerEvent::created(&id, now() - 60).json();
        double.add_events([event.as_str()]);
        script_for_a_command(&double, answer, Target::EventsPage(1), Asked::Events);
        let dir = workdir();
        let ran = run(
            &double,
            &app.db.url,
            dir.path(),
            &["catch-up", "--since", "1h", "--json"],
        )
        .await;
        let case = format!("{answer:?}: {:?} {} {}", ran.code, ran.stdout, ran.stderr);
        let recorded = app.ledger_row(&event_id_of(&event)).await;
        if answer == StripeAnswer::Object || is_transient(answer) {
            assert_eq!(ran.code, Some(0), "{case}");
            assert!(app.customer(&id).await.is_some(), "{case}");
            assert!(recorded.is_some(), "{case}");
        } else {
            assert_ne!(ran.code, Some(0), "{case}");
            assert!(app.customer(&id).await.is_none(), "{case}: nothing written");
            assert!(recorded.is_none(), "{case}: nothing recorded");
        }
        double.release_hangs();
    }
}

#[tokio::test]
async fn post_customers_links_a_customer_only_from_stripes_answer_to_the_create() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    for answer in EVERY_ANSWER {
        let user = create_auth_user(&app.db.pool).await;
        answer.script(&double, Target::Create, Asked::Customer("cus_Created"));
        let token = crate::helpers::tokens::user_token(user);
        let (status, body) = json_reply(app.post_customers(Some(&token), None).await).await;
        let case = format!("{answer:?}: {status} {body}");
        let row = app.customer_of_user(user).await;
        if answer == StripeAnswer::Object {
            assert_eq!(status, 201, "{case}");
            assert!(row.is_some(), "{case}");
        } else {
            assert!(!(200..300).contains(&status), "{case}");
            assert!(row.is_none(), "{case}: nothing linked");
        }
        double.release_hangs();
    }
}

/// An attempt of `user`'s creation that was interrupted two minutes ago (a crash between
/// Stripe's answer and the row): the next call looks the customer up before it creates again.
async fn interrupted_attempt(app: &TestApp, user: uuid::Uuid) {
    sqlx::query(
        "insert into public.stripe_customer_creations
             (user_id, attempt, started_at, email, lease_owner, lease_until)
         select id, 1, now() - interval '2 minutes', email, gen_random_uuid(),
                now() - interval '90 seconds'
           from auth.users where id = $1",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn after_a_crash_post_customers_trusts_only_stripes_answer_to_the_search() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    // A list holds live customers only: `Deleted` is no answer a search gives.
    for answer in EVERY_ANSWER
        .into_iter()
        .filter(|a| *a != StripeAnswer::Deleted)
    {
        let user = create_auth_user(&app.db.pool).await;
        interrupted_attempt(&app, user).await;
        // What the interrupted attempt made in Stripe.
        let made = new_customer_id();
        double.add([Customer::new(&made).for_user(user)]);
        answer.script(&double, Target::Search, Asked::Customers);
        let token = crate::helpers::tokens::user_token(user);
        let (status, body) = json_reply(app.post_customers(Some(&token), None).await).await;
        let case = format!("{answer:?}: {status} {body}");
        let created_again = double
            .create_requests()
            .iter()
            .any(|r| r.form.iter().any(|(_, v)| *v == user.to_string()));
        if answer == StripeAnswer::Object {
            assert_eq!(
                (status, &body["stripe_customer_id"]),
                (201, &Value::from(made.as_str())),
                "{case}"
            );
            assert_eq!(
                app.link_state(&made).await,
                LinkState::linked(user),
                "{case}"
            );
        } else {
            assert!(!(200..300).contains(&status), "{case}");
            assert!(
                app.customer_of_user(user).await.is_none(),
                "{case}: nothing linked"
            );
        }
        assert!(
            !created_again,
            "{case}: no creation without the look-up's answer"
        );
        double.release_hangs();
    }
}

/// Waits until the user's outbox row says the push ended: done, or failed once.
async fn push_ended(pool: &sqlx::PgPool, user: uuid::Uuid) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = outbox_row(pool, user).await.expect("an outbox row");
        if row["next_attempt_at"].is_null() || row["attempts"].as_i64() > Some(0) {
            return row;
        }
        assert!(Instant::now() < deadline, "no push ended: {row}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_profile_push_is_done_only_when_stripe_answers_with_the_updated_customer() {
    stripe_customer_sync::tls::install_crypto_provider(); // for the test's own HTTP client
    let db = migrated_database().await;
    let double = StripeDouble::start().await;
    let dir = workdir();
    let serve = replica(&db, &double, dir.path(), &[]).await.ready().await;
    // Updating a deleted customer is no answer Stripe gives (it answers resource_missing).
    for answer in EVERY_ANSWER
        .into_iter()
        .filter(|a| *a != StripeAnswer::Deleted)
    {
        let user = create_auth_user(&db.pool).await;
        let id = new_customer_id();
        let email = format!("{user}@example.com");
        double.add([Customer::new(&id).for_user(user).email(Some(&email))]);
        let created = CustomerEvent::created(&id, now() - 5)
            .for_user(user)
            .email(Some(&email))
            .json();
        assert_eq!(serve.deliver(&created).await.0, 200);
        answer.script(&double, Target::Update(id.clone()), Asked::Customer(&id));
        let new_email = format!("new-{user}@example.com");
        sqlx::query("update auth.users set email = $2 where id = $1")
            .bind(user)
            .bind(&new_email)
            .execute(&db.pool)
            .await
            .unwrap();
        let row = push_ended(&db.pool, user).await;
        let case = format!("{answer:?}: {row}");
        if answer == StripeAnswer::Object {
            assert!(row["next_attempt_at"].is_null(), "{case}: done");
            assert_eq!(row["pushed_email"], new_email.as_str(), "{case}");
            assert_eq!(
                double.customer(&id).unwrap().email.as_deref(),
                Some(new_email.as_str())
            );
        } else {
            assert!(!row["next_attempt_at"].is_null(), "{case}: still to push");
            assert!(
                row["pushed_email"].is_null(),
                "{case}: never taken as pushed"
            );
            assert!(
                row["last_error"].is_string(),
                "{case}: the failure is visible"
            );
        }
        double.release_hangs();
    }
}
