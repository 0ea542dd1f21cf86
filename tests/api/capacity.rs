//! "The webhook path has database capacity of its own" and "no database connection is held
//! while waiting for Stripe" (docs/design.md "Capacity"): a slow Stripe under a burst of sign-ups
//! leaves every webhook answered promptly, on the direct connection and behind PgBouncer in
//! transaction mode (where the webhook writers draw from the pool).

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};
use stripe_customer_sync::store::pool::PoolMode;

use crate::helpers::events::{CustomerEvent, new_customer_id, thin_event};
use crate::helpers::pgbouncer::{Route, Upstream};
use crate::helpers::stripe_double::{Customer, Fault, StripeDouble, Target};
use crate::helpers::tokens::user_token;
use crate::helpers::{
    LinkState, TestApp, create_auth_users, customers_env, json_reply, migrated_database, now,
    spawn_app_from_env,
};

/// How long Stripe takes to answer each create.
const SLOW_STRIPE: Duration = Duration::from_secs(4);
const SIGN_UPS: usize = 30;
const WEBHOOKS: usize = 20;
/// "Well under a second", with room for a loaded two-core machine.
const PROMPT: Duration = Duration::from_millis(1500);

macro_rules! direct_and_through_a_transaction_pooler {
    ($($rule:ident),* $(,)?) => {$(
        mod $rule {
            use super::*;

            #[tokio::test]
            async fn direct() {
                super::$rule(Upstream::Direct).await;
            }

            #[tokio::test]
            async fn pgbouncer_transaction() {
                super::$rule(Upstream::PgBouncer(PoolMode::Transaction)).await;
            }
        }
    )*};
}

direct_and_through_a_transaction_pooler!(
    sign_ups_waiting_on_a_slow_stripe_leave_every_webhook_answered_promptly
);

async fn sign_ups_waiting_on_a_slow_stripe_leave_every_webhook_answered_promptly(
    upstream: Upstream,
) {
    let db = migrated_database().await;
    let Some(route) = Route::open(upstream, &db.url, &db.name) else {
        return;
    };
    let double = StripeDouble::start().await;
    double.fail(Target::Create, Fault::Delay(SLOW_STRIPE), usize::MAX);
    let users = create_auth_users(&db.pool, SIGN_UPS).await;
    // Half the webhooks are thin events, whose customer is fetched (promptly) from Stripe and
    // applied through the pool; half are snapshot events, through the webhook writers.
    let fetched: Vec<String> = (0..WEBHOOKS / 2).map(|_| new_customer_id()).collect();
    double.add(fetched.iter().map(|id| Customer::new(id)));
    let mut env = customers_env(&double);
    env.push(("DATABASE_URL", route.url().to_owned()));
    env.push(("DATABASE_POOL_MODE", route.pool_mode().as_str().to_owned()));
    env.push(("MIGRATION_DATABASE_URL", db.url.clone()));
    // The default pool size (DATABASE_MAX_CONNECTIONS = 10), a third of the sign-ups.
    let app = spawn_app_from_env(db, env, |_| {}).await;

    let sign_ups = join_all(users.iter().map(|&user| {
        let app = &app;
        async move {
            let answer = app.post_customers(Some(&user_token(user)), None).await;
            json_reply(answer).await
        }
    }));
    let webhooks_meanwhile = async {
        // As many sign-ups wait on Stripe as the webhooks' pool has connections (all of them
        // do, unless they hold connections while waiting).
        double
            .wait_for("the sign-ups to reach Stripe", |d| {
                d.create_requests().len() >= 10
            })
            .await;
        let mut answers = Vec::new();
        for n in 0..WEBHOOKS {
            let payload = if n % 2 == 0 {
                CustomerEvent::updated(&new_customer_id(), now()).json()
            } else {
                thin_event("v1.customer.updated", &fetched[n / 2])
            };
            answers.push(timed(app.deliver_json(&payload)).await);
        }
        let ready = timed(readyz(&app)).await;
        // Still within Stripe's delay: the webhooks ran while every sign-up was waiting.
        let sign_ups_pending = double
            .create_requests()
            .iter()
            .filter(|r| r.status == 200 && r.at.elapsed() < SLOW_STRIPE)
            .count();
        (answers, ready, sign_ups_pending)
    };
    let (sign_ups, (webhooks, ready, pending)) = tokio::join!(sign_ups, webhooks_meanwhile);

    for (n, ((status, body), took)) in webhooks.iter().enumerate() {
        assert_eq!(*status, 200, "webhook {n}: {body}");
        assert_eq!(body["status"], json!("processed"), "webhook {n}: {body}");
        assert!(*took < PROMPT, "webhook {n} took {took:?}");
    }
    assert!(
        pending > 0,
        "the webhooks were delivered while sign-ups waited on Stripe"
    );
    let (ready_status, ready_took) = ready;
    assert_eq!(ready_status, 200, "/readyz while sign-ups wait on Stripe");
    assert!(ready_took < PROMPT, "/readyz took {ready_took:?}");
    for ((status, body), user) in sign_ups.iter().zip(&users) {
        assert_eq!(*status, 201, "sign-up of {user}: {body}");
        let id = body["stripe_customer_id"].as_str().unwrap();
        assert_eq!(app.link_state(id).await, LinkState::linked(*user));
    }
    assert_eq!(
        double.create_requests().len(),
        SIGN_UPS,
        "one create per user"
    );
    drop(route);
}

async fn timed<T>(work: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let result = work.await;
    (result, started.elapsed())
}

async fn readyz(app: &TestApp) -> u16 {
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let _: Value = response.json().await.unwrap();
    status
}
