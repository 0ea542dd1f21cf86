//! The profile push when things go wrong: a replica killed mid-push, Stripe's echo, SIGTERM, no
//! LISTEN, a refusal, a name column the profiles table does not have.

use crate::profile_push::{has, setup, setup_with};
use std::time::{Duration, Instant};

use crate::helpers::events::CustomerEvent;
use crate::helpers::schema::{create_profiles, outbox_row};
use crate::helpers::stripe_double::{Customer, Fault, StripeDouble, Target};
use crate::helpers::{create_auth_user, migrated_database, now};

/// A `serve` process of the test with the tests' settings, then `extra` environment variables;
/// it applies migrations at start, as a deployment does, and is killed on drop.
#[tokio::test]
async fn a_replica_killed_mid_push_leaves_the_change_to_the_other_under_the_same_key() {
    // A push timeout long enough that the holder is killed well before its own request gives
    // up (which would count a failed attempt and move on to a fresh key).
    let mut s = setup_with(2, &[("PROFILE_PUSH_TIMEOUT", "5s")], async |_| {}).await;
    s.double
        .fail(Target::Update(s.customer.clone()), Fault::Hang, 1);
    s.set_email("after-crash@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while s.double.update_requests(&s.customer).is_empty() {
        assert!(Instant::now() < deadline, "no push began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The replica holding the lease is the one mid-push.
    let holder: String = sqlx::query_scalar(
        "select claimed_by from public.stripe_customer_outbox where user_id = $1",
    )
    .bind(s.user)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    let index = s
        .replicas
        .iter()
        .position(|r| holder.starts_with(&format!("serve-{}-", r.pid())))
        .expect("a replica holds the lease");
    let killed = s.replicas.remove(index);
    let killed_at = Instant::now();
    killed.kill_9();

    // The survivor takes the row once the lease (5 s push timeout + 10 s) runs out.
    s.wait_for_applied("email", "after-crash@example.com", Duration::from_secs(25))
        .await;
    s.wait_until_done(Duration::from_secs(2)).await;
    assert!(killed_at.elapsed() < Duration::from_secs(25));
    let updates = s.double.update_requests(&s.customer);
    assert_eq!(updates.len(), 2, "{updates:#?}");
    assert_eq!(
        updates[0].idempotency_key, updates[1].idempotency_key,
        "the retry of the same change replays rather than applies twice"
    );
    assert_eq!(s.double.applied_updates(&s.customer).len(), 1);
    s.double.release_hangs();
}

#[tokio::test]
async fn stripes_echoing_customer_updated_updates_the_row_and_queues_nothing() {
    let s = setup(2, async |_| {}).await;
    s.set_email("echo@example.com").await;
    s.wait_for_applied("email", "echo@example.com", Duration::from_secs(2))
        .await;
    s.wait_until_done(Duration::from_secs(2)).await;
    let before = outbox_row(&s.db.pool, s.user).await.unwrap();

    // What Stripe sends after the update.
    let echo = CustomerEvent::updated(&s.customer, now())
        .for_user(s.user)
        .email(Some("echo@example.com"))
        .json();
    assert_eq!(s.replicas[1].deliver(&echo).await.0, 200);
    let email: String = sqlx::query_scalar(
        "select customer_email from public.stripe_customers where stripe_customer_id = $1",
    )
    .bind(&s.customer)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(email, "echo@example.com", "the row follows Stripe");
    let after = outbox_row(&s.db.pool, s.user).await.unwrap();
    assert_eq!(after["version"], before["version"], "nothing queued");
    assert!(after["next_attempt_at"].is_null());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        s.double.update_requests(&s.customer).len(),
        1,
        "no second push"
    );
}

#[tokio::test]
async fn sigterm_lets_the_push_in_flight_finish_before_the_process_exits() {
    let mut s = setup(1, async |_| {}).await;
    s.double.set_latency(Duration::from_millis(1500));
    s.set_email("graceful@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while s.double.update_requests(&s.customer).is_empty() {
        assert!(Instant::now() < deadline, "no push began");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let replica = s.replicas.pop().unwrap();
    assert!(replica.terminate().await, "exits 0");

    assert_eq!(s.double.applied_updates(&s.customer).len(), 1);
    let row = outbox_row(&s.db.pool, s.user).await.unwrap();
    assert!(
        row["next_attempt_at"].is_null(),
        "finished and recorded: {row}"
    );
    assert!(row["claimed_by"].is_null());
}

#[tokio::test]
async fn without_listen_the_sweep_alone_pushes_a_change_within_seconds() {
    // As behind a transaction-mode pooler, where a LISTEN session cannot be kept.
    let double = StripeDouble::start().await;
    let env = crate::helpers::stripe_env(&double);
    let app = crate::helpers::spawn_app_from_env(migrated_database().await, env, |settings| {
        settings.profile_push.listen = false;
    })
    .await;
    let user = create_auth_user(&app.db.pool).await;
    let customer = crate::helpers::events::new_customer_id();
    double.add([Customer::new(&customer).for_user(user)]);
    let created = CustomerEvent::created(&customer, now() - 5)
        .for_user(user)
        .email(Some(&format!("{user}@example.com")))
        .json();
    app.deliver_expecting(&created, "processed").await;

    sqlx::query("update auth.users set email = 'swept@example.com' where id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while double.applied_updates(&customer).is_empty() {
        assert!(Instant::now() < deadline, "not pushed by the sweep");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(has(
        &double.applied_updates(&customer)[0],
        "email",
        "swept@example.com"
    ));
}

#[tokio::test]
async fn a_change_stripe_refuses_stays_visible_and_never_holds_up_the_others() {
    let s = setup(2, async |_| {}).await;
    // A second linked user whose customer Stripe does not have (deleted there, say, before
    // its customer.deleted arrived): every push of theirs is refused with a 404.
    let stuck = create_auth_user(&s.db.pool).await;
    let missing = crate::helpers::events::new_customer_id();
    let created = CustomerEvent::created(&missing, now() - 5)
        .for_user(stuck)
        .email(Some(&format!("{stuck}@example.com")))
        .json();
    assert_eq!(s.replicas[0].deliver(&created).await.0, 200);

    sqlx::query("update auth.users set email = 'refused@example.com' where id = $1")
        .bind(stuck)
        .execute(&s.db.pool)
        .await
        .unwrap();
    s.set_email("flows@example.com").await;
    s.wait_for_applied("email", "flows@example.com", Duration::from_secs(2))
        .await;

    let deadline = Instant::now() + Duration::from_secs(2);
    let row = loop {
        let row = outbox_row(&s.db.pool, stuck).await.unwrap();
        if row["attempts"] == 1 {
            break row;
        }
        assert!(Instant::now() < deadline, "{row}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .starts_with("404: No such customer"),
        "{row}"
    );
    let retry_in: f64 = sqlx::query_scalar(
        "select extract(epoch from next_attempt_at - now())::float8
           from public.stripe_customer_outbox where user_id = $1",
    )
    .bind(stuck)
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert!(retry_in > 3000.0, "backs off long: {retry_in}");
    assert_eq!(s.double.update_requests(&missing).len(), 1);
    let rejected = s.replicas[0]
        .metric(r#"stripe_profile_pushes_total{outcome="rejected"}"#)
        .await
        + s.replicas[1]
            .metric(r#"stripe_profile_pushes_total{outcome="rejected"}"#)
            .await;
    assert_eq!(rejected, 1.0);
}

#[tokio::test]
async fn a_name_column_that_profiles_does_not_have_is_named_in_a_warning() {
    let s = setup_with(
        1,
        &[("PROFILE_NAME_COLUMN", "display_name")],
        async |pool| create_profiles(pool).await,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.replicas[0]
        .log()
        .contains("public.profiles has no column")
    {
        assert!(Instant::now() < deadline, "{}", s.replicas[0].log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.replicas[0].log().contains("display_name"));
}
