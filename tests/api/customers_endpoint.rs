//! `POST /customers` and `ensure-customer`: a user's Stripe customer, created exactly once
//! (against the Stripe double), its row written linked through the sync rules.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::events::CustomerEvent;
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Fault, StripeDouble, TEST_API_KEY, Target};
use crate::helpers::tokens::{JWT_SECRET, service_role_token, user_token};
use crate::helpers::{
    LinkState, TestApp, create_auth_user, json_reply, now, post_customers, spawn_app,
    spawn_app_with_customers,
};

/// A `serve` process with `POST /customers` on, against the double.
pub(crate) async fn serve_with_customers(
    database_url: &str,
    double: &StripeDouble,
) -> ServeProcess {
    ServeProcess::start(
        database_url,
        &[
            ("STRIPE_API_KEY", TEST_API_KEY),
            ("STRIPE_API_BASE", &double.base_url),
            ("CATCH_UP_INTERVAL", "0"),
            ("SUPABASE_JWT_SECRET", JWT_SECRET),
        ],
    )
    .await
}

pub(crate) async fn app_and_double() -> (TestApp, StripeDouble) {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    (app, double)
}

/// POSTs as the user and returns (status, body).
pub(crate) async fn ensure(app: &TestApp, user: Uuid) -> (u16, Value) {
    json_reply(app.post_customers(Some(&user_token(user)), None).await).await
}

pub(crate) fn customer_id(body: &Value) -> String {
    body["stripe_customer_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no customer id in {body}"))
        .to_owned()
}

/// The user's creation record: (attempt, finished).
pub(crate) async fn creation(app: &TestApp, user: Uuid) -> Option<(i64, bool)> {
    sqlx::query_as(
        "select attempt, finished_at is not null from public.stripe_customer_creations
          where user_id = $1",
    )
    .bind(user)
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn first_call_creates_the_customer_in_stripe_and_writes_the_linked_row() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;

    let (status, body) = ensure(&app, user).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], true);
    assert_eq!(body["user_id"], user.to_string());
    let id = customer_id(&body);
    let creates = double.create_requests();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].idempotency_key.as_deref(),
        Some(format!("{user}:1").as_str())
    );
    let stripe = &double.customers()[0];
    assert_eq!(stripe.id, id);
    assert_eq!(
        stripe.email.as_deref(),
        Some(format!("{user}@example.com").as_str())
    );
    assert_eq!(stripe.metadata["user_id"], user.to_string());
    assert_eq!(app.link_state(&id).await, LinkState::linked(user));
    let row = app.customer(&id).await.unwrap();
    let sync = &row["customer_metadata"]["sync"];
    assert_eq!(sync["last_event_type"], "ensure-customer");
    assert_eq!(sync["last_event_id"], format!("ensure-customer:{user}:1"));
    assert_eq!(sync["livemode"], false);
    assert_eq!(app.ledger_count().await, 0, "no event, no ledger row");
    assert_eq!(
        app.audit_rows(&id).await[0]["event_id"],
        format!("ensure-customer:{user}:1")
    );
    assert_eq!(creation(&app, user).await, Some((1, true)));
}

#[tokio::test]
async fn a_user_with_a_live_linked_row_gets_it_without_a_call_to_stripe() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    let existing = CustomerEvent::created("cus_Existing1", now()).for_user(user);
    app.deliver_expecting(&existing.json(), "processed").await;

    let (status, body) = ensure(&app, user).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"stripe_customer_id": "cus_Existing1", "user_id": user, "created": false})
    );
    assert!(double.api_requests().is_empty(), "Stripe was not called");
}

#[tokio::test]
async fn twenty_concurrent_calls_on_two_replicas_create_one_customer_and_all_get_its_id() {
    let spawned = spawn_app().await; // for its database
    let double = StripeDouble::start().await;
    // Stripe takes a while, so that the calls overlap the creation.
    double.set_latency(Duration::from_millis(300));
    let user = create_auth_user(&spawned.db.pool).await;
    let a = serve_with_customers(&spawned.db.url, &double).await;
    let b = serve_with_customers(&spawned.db.url, &double).await;

    let client = reqwest::Client::new();
    let token = user_token(user);
    let calls = (0..20).map(|i| {
        let url = if i % 2 == 0 {
            format!("{}/customers", a.base_url)
        } else {
            format!("{}/customers", b.base_url)
        };
        let (client, token) = (client.clone(), token.clone());
        async move { json_reply(post_customers(&client, &url, Some(&token), None).await).await }
    });
    let answers = futures::future::join_all(calls).await;

    let ids: std::collections::HashSet<String> =
        answers.iter().map(|(_, body)| customer_id(body)).collect();
    assert_eq!(ids.len(), 1, "every caller gets the same id: {answers:?}");
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let existing = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!((created, existing), (1, 19), "{answers:?}");
    assert_eq!(double.customers().len(), 1, "one customer in Stripe");
    assert_eq!(double.create_requests().len(), 1, "one create call");
    assert!(double.search_requests().is_empty());
    let rows: i64 =
        sqlx::query_scalar("select count(*) from public.stripe_customers where user_id = $1")
            .bind(user)
            .fetch_one(&spawned.db.pool)
            .await
            .unwrap();
    assert_eq!((rows, spawned.customer_count().await), (1, 1));

    // Later: the row answers, Stripe is not asked.
    double.clear_requests();
    let (status, body) = json_reply(
        post_customers(
            &client,
            &format!("{}/customers", b.base_url),
            Some(&token),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, customer_id(&body)),
        (200, ids.into_iter().next().unwrap())
    );
    assert!(double.api_requests().is_empty());
}

#[tokio::test]
async fn customer_created_webhook_after_the_call_is_processed_and_the_row_stays_linked() {
    let (app, _double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    let (_, body) = ensure(&app, user).await;
    let id = customer_id(&body);

    let event = CustomerEvent::created(&id, now())
        .for_user(user)
        .email(Some(&format!("{user}@example.com")));
    app.deliver_expecting(&event.json(), "processed").await;

    assert_eq!(app.customer_count().await, 1);
    assert_eq!(app.link_state(&id).await, LinkState::linked(user));
    assert_eq!(app.ledger_count().await, 1);
}

#[tokio::test]
async fn customer_created_webhook_before_the_row_is_written_leaves_one_linked_row() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    // Stripe creates the customer and sends its webhook before the service hears back.
    double.fail(Target::Create, Fault::HangAfterCreating, 1);
    let call = {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/customers", app.address),
            user_token(user),
        );
        tokio::spawn(async move {
            json_reply(post_customers(&client, &url, Some(&token), None).await).await
        })
    };
    double
        .wait_for("the customer to be created", |d| d.customers().len() == 1)
        .await;
    let id = double.customers()[0].id.clone();
    let event = CustomerEvent::created(&id, now())
        .for_user(user)
        .email(Some(&format!("{user}@example.com")));
    app.deliver_expecting(&event.json(), "processed").await;
    assert_eq!(app.link_state(&id).await, LinkState::linked(user));
    // The held answer fails; the client's retry with the same key is replayed.
    double.release_hangs();
    let (status, body) = call.await.unwrap();

    assert_eq!((status, customer_id(&body)), (201, id.clone()), "{body}");
    assert_eq!(double.customers().len(), 1);
    assert_eq!(app.customer_count().await, 1, "one row");
    assert_eq!(app.link_state(&id).await, LinkState::linked(user));
    let unlinked: i64 =
        sqlx::query_scalar("select count(*) from public.stripe_customers where user_id is null")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(unlinked, 0);
    app.assert_recorded(&event.event_id, "processed").await;
    // A redelivery is a duplicate of the event, nothing else.
    app.deliver_expecting(&event.json(), "duplicate").await;
}

#[tokio::test]
async fn a_user_whose_customer_was_deleted_gets_a_new_one() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    let (_, body) = ensure(&app, user).await;
    let first = customer_id(&body);
    let deleted = CustomerEvent::deleted(&first, now() + 1).for_user(user);
    app.deliver_expecting(&deleted.json(), "processed").await;
    assert_eq!(app.link_state(&first).await, LinkState::deleted());

    let (status, body) = ensure(&app, user).await;

    assert_eq!(status, 201, "{body}");
    let second = customer_id(&body);
    assert_ne!(second, first);
    assert_eq!(app.link_state(&second).await, LinkState::linked(user));
    let keys: Vec<Option<String>> = double
        .create_requests()
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys, [Some(format!("{user}:1")), Some(format!("{user}:2"))]);
    assert_eq!(creation(&app, user).await, Some((2, true)));
}

#[tokio::test]
async fn unknown_user_is_404_and_user_without_email_is_422_and_neither_calls_stripe() {
    let (app, double) = app_and_double().await;
    let (status, body) = ensure(&app, Uuid::new_v4()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_user"))
    );

    let user = create_auth_user(&app.db.pool).await;
    sqlx::query("update auth.users set email = null where id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = ensure(&app, user).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("missing_email"))
    );

    assert!(double.api_requests().is_empty());
    assert_eq!(app.table_counts().await, Default::default());
    assert_eq!(creation(&app, user).await, None);
}

#[tokio::test]
async fn stripe_down_is_503_with_retry_after_and_writes_no_row_and_a_later_call_creates_one() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    double.fail(Target::Create, Fault::ServerError, 100);

    let response = app.post_customers(Some(&user_token(user)), None).await;

    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = json_reply(response).await;
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        double.create_requests().len(),
        4,
        "retried with back-off, then gave up"
    );
    assert_eq!(
        app.table_counts().await,
        Default::default(),
        "nothing written"
    );
    assert_eq!(
        creation(&app, user).await,
        Some((1, false)),
        "the attempt is on record"
    );

    double.release_hangs();
    let (status, body) = ensure(&app, user).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        double
            .create_requests()
            .iter()
            .all(|r| r.idempotency_key == Some(format!("{user}:1"))),
        "the same attempt, the same key"
    );
    assert_eq!(double.customers().len(), 1);
}

#[tokio::test]
async fn a_service_role_token_names_the_user_and_a_users_token_only_itself() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    let other = create_auth_user(&app.db.pool).await;

    let (status, body) = json_reply(
        app.post_customers(Some(&service_role_token()), Some(json!({"user_id": user})))
            .await,
    )
    .await;
    assert_eq!((status, &body["user_id"]), (201, &json!(user)), "{body}");

    let (status, body) = json_reply(
        app.post_customers(Some(&user_token(user)), Some(json!({"user_id": other})))
            .await,
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    let (status, body) =
        json_reply(app.post_customers(Some(&service_role_token()), None).await).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_request"))
    );
    assert_eq!(double.create_requests().len(), 1);
}

#[tokio::test]
async fn every_call_is_counted_by_outcome() {
    let (app, _double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    ensure(&app, user).await;
    ensure(&app, user).await;
    app.post_customers(Some("not-a-token"), None).await;
    let text = app.metrics_text().await;
    for line in [
        r#"stripe_customer_requests_total{outcome="created"} 1"#,
        r#"stripe_customer_requests_total{outcome="existing"} 1"#,
        r#"stripe_customer_requests_total{outcome="invalid_token"} 1"#,
        r#"stripe_customer_api_calls_total{call="create",outcome="created"} 1"#,
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}
