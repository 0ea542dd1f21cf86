//! Profile changes reach Stripe: two real `serve` processes on one database push a linked
//! user's new email or name to the Stripe double (`POST /v1/customers/{id}`), once, whichever
//! process takes it, through rate limits, outages and a process killed mid-push.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::join_all;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::events::CustomerEvent;
use crate::helpers::schema::{create_profiles, outbox_row};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Customer, Fault, Request, StripeDouble, TEST_API_KEY, Target};
use crate::helpers::{TestDatabase, create_auth_user, migrated_database, now};

/// A `serve` process of the test with the tests' settings, then `extra` environment variables;
/// it applies migrations at start, as a deployment does, and is killed on drop.
pub(crate) async fn replica(
    db: &TestDatabase,
    double: &StripeDouble,
    dir: &Path,
    extra: &[(&str, &str)],
) -> ServeProcess {
    ServeProcess::command(&db.url)
        .migrating()
        .current_dir(dir)
        .env("STRIPE_API_KEY", TEST_API_KEY)
        .env("STRIPE_API_BASE", &double.base_url)
        .env("CATCH_UP_INTERVAL", "0")
        // Short, so that the tests of failures take seconds rather than minutes.
        .env("PROFILE_PUSH_TIMEOUT", "2s")
        .env("PROFILE_PUSH_MAX_BACKOFF", "2s")
        .env_remove("RUST_LOG")
        .env_remove("USER_ID_METADATA_KEY")
        .env_remove("PROFILE_NAME_COLUMN")
        .envs(extra)
        .start()
        .await
}

/// The database, the double, a linked user (through a `customer.created` webhook, as Stripe
/// would deliver it) and `replicas` ready `serve` processes.
pub(crate) struct Setup {
    pub(crate) db: TestDatabase,
    pub(crate) double: StripeDouble,
    pub(crate) user: Uuid,
    pub(crate) customer: String,
    pub(crate) replicas: Vec<ServeProcess>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn setup(replicas: usize, before_start: impl AsyncFnOnce(&PgPool)) -> Setup {
    setup_with(replicas, &[], before_start).await
}

pub(crate) async fn setup_with(
    replicas: usize,
    extra: &[(&str, &str)],
    before_start: impl AsyncFnOnce(&PgPool),
) -> Setup {
    stripe_customer_sync::tls::install_crypto_provider(); // for the test's own HTTP client
    let db = migrated_database().await;
    before_start(&db.pool).await;
    let double = StripeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Started together, as replicas of one deployment are.
    let started = join_all((0..replicas).map(|_| replica(&db, &double, dir.path(), extra))).await;
    let started = join_all(started.into_iter().map(ServeProcess::ready)).await;
    let user = create_auth_user(&db.pool).await;
    let customer = crate::helpers::events::new_customer_id();
    let email = format!("{user}@example.com");
    double.add([Customer::new(&customer)
        .for_user(user)
        .email(Some(&email))
        .name(Some("Ada Lovelace"))]);
    let created = CustomerEvent::created(&customer, now() - 5)
        .for_user(user)
        .email(Some(&email))
        .json();
    assert_eq!(started[0].deliver(&created).await.0, 200);
    Setup {
        db,
        double,
        user,
        customer,
        replicas: started,
        _dir: dir,
    }
}

impl Setup {
    pub(crate) async fn set_email(&self, email: &str) {
        sqlx::query("update auth.users set email = $2 where id = $1")
            .bind(self.user)
            .bind(email)
            .execute(&self.db.pool)
            .await
            .unwrap();
    }

    /// Waits (up to `within`) until the double applied an update whose form has `field` =
    /// `value`; returns when that happened.
    pub(crate) async fn wait_for_applied(
        &self,
        field: &str,
        value: &str,
        within: Duration,
    ) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            if self
                .double
                .applied_updates(&self.customer)
                .iter()
                .any(|r| has(r, field, value))
            {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "no update with {field}={value} within {within:?}: {:#?}",
                self.double.update_requests(&self.customer)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the user's change is done (pushed or found unchanged).
    pub(crate) async fn wait_until_done(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let row = outbox_row(&self.db.pool, self.user).await;
            if row
                .as_ref()
                .is_none_or(|row| row["next_attempt_at"].is_null())
            {
                return;
            }
            assert!(Instant::now() < deadline, "still queued: {row:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn pushed_total(&self) -> f64 {
        let mut total = 0.0;
        for replica in &self.replicas {
            total += replica
                .metric(r#"stripe_profile_pushes_total{outcome="pushed"}"#)
                .await;
        }
        total
    }
}

pub(crate) fn has(request: &Request, field: &str, value: &str) -> bool {
    request.form.iter().any(|(k, v)| k == field && v == value)
}

#[tokio::test]
async fn an_email_change_reaches_stripe_once_within_2_s_whichever_replica_takes_it() {
    let s = setup(2, async |_| {}).await;
    let no_profiles: bool = sqlx::query_scalar("select to_regclass('public.profiles') is null")
        .fetch_one(&s.db.pool)
        .await
        .unwrap();
    assert!(no_profiles, "this database has no profiles table");

    let changed = Instant::now();
    s.set_email("ada.new@example.com").await;
    let pushed = s
        .wait_for_applied("email", "ada.new@example.com", Duration::from_secs(2))
        .await;
    assert!(pushed - changed < Duration::from_secs(2));
    s.wait_until_done(Duration::from_secs(2)).await;
    // Time for a second replica to push it again, were it to.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let updates = s.double.update_requests(&s.customer);
    assert_eq!(updates.len(), 1, "{updates:#?}");
    let update = &updates[0];
    assert_eq!(
        update.form,
        [("email".into(), "ada.new@example.com".into())]
    );
    assert!(update.authorized, "with the API key");
    assert_eq!(update.stripe_version.as_deref(), Some("2026-09-30.endive"));
    let key = update
        .idempotency_key
        .as_deref()
        .expect("an idempotency key");
    assert!(
        key.starts_with(&format!("profile-push:{}:", s.user)),
        "{key}"
    );
    assert_eq!(s.pushed_total().await, 1.0);
    let row = outbox_row(&s.db.pool, s.user).await.unwrap();
    assert_eq!(row["pushed_email"], "ada.new@example.com");
    assert_eq!(row["attempts"], 0);
    assert_eq!(
        s.double.customer(&s.customer).unwrap().email.as_deref(),
        Some("ada.new@example.com")
    );
    assert!(
        s.replicas
            .iter()
            .any(|r| r.log().contains("pushed the profile change to Stripe")),
        "the push is logged"
    );
    for replica in &s.replicas {
        let log = replica.log();
        assert!(!log.contains("example.com"), "no email in the log: {log}");
        assert!(!log.contains(TEST_API_KEY), "no key in the log");
    }
}

#[tokio::test]
async fn five_quick_edits_give_one_or_two_pushes_and_the_last_carries_the_final_values() {
    let s = setup(2, async |_| {}).await;
    for n in 1..=5 {
        s.set_email(&format!("edit-{n}@example.com")).await;
    }
    s.wait_for_applied("email", "edit-5@example.com", Duration::from_secs(3))
        .await;
    s.wait_until_done(Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let updates = s.double.update_requests(&s.customer);
    assert!((1..=2).contains(&updates.len()), "{updates:#?}");
    assert!(has(updates.last().unwrap(), "email", "edit-5@example.com"));
    assert_eq!(
        s.double.customer(&s.customer).unwrap().email.as_deref(),
        Some("edit-5@example.com")
    );
}

#[tokio::test]
async fn a_profile_name_change_is_pushed_as_the_customers_name() {
    // The profiles table exists before `serve` starts: its start-up migration watches it.
    let s = setup(2, async |pool| create_profiles(pool).await).await;
    sqlx::query("insert into public.profiles (id, full_name) values ($1, 'Ada Lovelace')")
        .bind(s.user)
        .execute(&s.db.pool)
        .await
        .unwrap();
    sqlx::query("update public.profiles set full_name = 'Ada King' where id = $1")
        .bind(s.user)
        .execute(&s.db.pool)
        .await
        .unwrap();
    s.wait_for_applied("name", "Ada King", Duration::from_secs(2))
        .await;
    s.wait_until_done(Duration::from_secs(2)).await;

    // An update that changes neither the name nor the email pushes nothing.
    sqlx::query("update public.profiles set avatar_url = 'ada.png' where id = $1")
        .bind(s.user)
        .execute(&s.db.pool)
        .await
        .unwrap();
    s.wait_until_done(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let updates = s.double.update_requests(&s.customer);
    assert_eq!(updates.len(), 1, "{updates:#?}");
    assert_eq!(updates[0].form, [("name".into(), "Ada King".into())]);
}

#[tokio::test]
async fn a_rate_limited_push_is_sent_again_after_retry_after_and_applied_once() {
    let s = setup(2, async |_| {}).await;
    s.double.fail(
        Target::Update(s.customer.clone()),
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    s.set_email("limited@example.com").await;
    s.wait_for_applied("email", "limited@example.com", Duration::from_secs(5))
        .await;
    s.wait_until_done(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let updates = s.double.update_requests(&s.customer);
    assert_eq!(
        updates.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert!(
        updates[1].at - updates[0].at >= Duration::from_secs(1),
        "Retry-After waited for"
    );
    assert_eq!(s.double.applied_updates(&s.customer).len(), 1);
    let retried: f64 = [
        s.replicas[0]
            .metric(r#"stripe_profile_pushes_total{outcome="retrying"}"#)
            .await,
        s.replicas[1]
            .metric(r#"stripe_profile_pushes_total{outcome="retrying"}"#)
            .await,
    ]
    .iter()
    .sum();
    assert_eq!(retried, 1.0);
}

#[tokio::test]
async fn while_stripe_is_down_changes_wait_visibly_and_are_pushed_when_it_returns() {
    let s = setup(2, async |_| {}).await;
    // A second linked user, so that "nothing lost" covers more than one change.
    let other = create_auth_user(&s.db.pool).await;
    let other_customer = crate::helpers::events::new_customer_id();
    s.double
        .add([Customer::new(&other_customer).for_user(other)]);
    let created = CustomerEvent::created(&other_customer, now() - 5)
        .for_user(other)
        .email(Some(&format!("{other}@example.com")))
        .json();
    assert_eq!(s.replicas[1].deliver(&created).await.0, 200);
    for customer in [&s.customer, &other_customer] {
        s.double.fail(
            Target::Update(customer.clone()),
            Fault::Unavailable,
            usize::MAX,
        );
    }

    s.set_email("during-outage@example.com").await;
    sqlx::query("update auth.users set email = 'other-new@example.com' where id = $1")
        .bind(other)
        .execute(&s.db.pool)
        .await
        .unwrap();
    // Stripe stays down for 20 s: attempts pile up, the queue shows it.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let failed = s.double.update_requests(&s.customer);
    assert!(failed.len() >= 4, "retried with back-off: {failed:#?}");
    assert!(failed.iter().all(|r| r.status == 503));
    let row = outbox_row(&s.db.pool, s.user).await.unwrap();
    assert!(row["attempts"].as_i64().unwrap() >= 3, "{row}");
    assert!(
        row["last_error"].as_str().unwrap().starts_with("503"),
        "{row}"
    );
    assert!(row["next_attempt_at"].is_string());
    let depth = s.replicas[0]
        .metric("stripe_profile_push_queue_depth")
        .await
        .max(
            s.replicas[1]
                .metric("stripe_profile_push_queue_depth")
                .await,
        );
    assert_eq!(depth, 2.0);
    let oldest = s.replicas[0]
        .metric("stripe_profile_push_oldest_age_seconds")
        .await
        .max(
            s.replicas[1]
                .metric("stripe_profile_push_oldest_age_seconds")
                .await,
        );
    assert!(oldest >= 15.0, "{oldest}");

    s.double.release_hangs(); // clears the faults: Stripe is back
    s.wait_for_applied("email", "during-outage@example.com", Duration::from_secs(5))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s
        .double
        .applied_updates(&other_customer)
        .iter()
        .any(|r| has(r, "email", "other-new@example.com"))
    {
        assert!(Instant::now() < deadline, "the other change was lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.wait_until_done(Duration::from_secs(2)).await;
    assert_eq!(s.double.applied_updates(&s.customer).len(), 1);
    assert_eq!(s.double.applied_updates(&other_customer).len(), 1);
    let row = outbox_row(&s.db.pool, s.user).await.unwrap();
    assert_eq!(
        (&row["attempts"], &row["last_error"]),
        (&0.into(), &serde_json::Value::Null)
    );
}
