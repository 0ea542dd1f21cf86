//! `POST /customers` and `ensure-customer`: a user's Stripe customer, created exactly once
//! (against the Stripe double), its row written linked through the sync rules.

use std::process::Stdio;
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
async fn serve_with_customers(database_url: &str, double: &StripeDouble) -> ServeProcess {
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

async fn app_and_double() -> (TestApp, StripeDouble) {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    (app, double)
}

/// POSTs as the user and returns (status, body).
async fn ensure(app: &TestApp, user: Uuid) -> (u16, Value) {
    json_reply(app.post_customers(Some(&user_token(user)), None).await).await
}

fn customer_id(body: &Value) -> String {
    body["stripe_customer_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no customer id in {body}"))
        .to_owned()
}

/// The user's creation record: (attempt, finished).
async fn creation(app: &TestApp, user: Uuid) -> Option<(i64, bool)> {
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
async fn the_name_comes_from_profiles_where_that_table_exists() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    sqlx::raw_sql(
        "create table public.profiles (id uuid primary key references auth.users (id),
                                       full_name text)",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("insert into public.profiles values ($1, 'Grace Hopper')")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();

    let (status, body) = ensure(&app, user).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(double.customers()[0].name.as_deref(), Some("Grace Hopper"));
    let row = app.customer(&customer_id(&body)).await.unwrap();
    assert_eq!(row["customer_name"], "Grace Hopper");
}

#[tokio::test]
async fn the_documented_least_privilege_login_creates_customers_and_reads_names_once_a_policy_lets_it()
 {
    let db = crate::helpers::migrated_database().await;
    let role = format!("scs_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let password = "a-long-random-test-password";
    let sql = crate::helpers::readme_login_sql()
        .replace("stripe_customer_sync", &role)
        .replace("choose-a-long-random-password", password);
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&db.pool)
        .await
        .expect("README's SQL runs as written");
    // As Supabase apps have it: RLS on, each user reads their own profile. Supabase's default
    // privileges grant service_role (of which the login is a member) the table itself.
    sqlx::raw_sql(
        "create table public.profiles (id uuid primary key references auth.users (id),
                                       full_name text);
         alter table public.profiles enable row level security;
         create policy profiles_own on public.profiles for select to authenticated
             using ((select auth.uid()) = id);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let login = crate::helpers::TestDatabase {
        pool: db.pool.clone(),
        url: crate::helpers::as_user(&db.url, &role, password),
        name: db.name.clone(),
    };
    let double = StripeDouble::start().await;
    let app = crate::helpers::spawn_app_with_customers_on(login, &double, |_| {}).await;
    let named = |user: Uuid| {
        sqlx::query("insert into public.profiles (id, full_name) values ($1, 'Grace Hopper')")
            .bind(user)
            .execute(&app.db.pool)
    };

    // The login does not bypass RLS, and no policy lets it read profiles: the customer is
    // created all the same, without a name.
    let first = create_auth_user(&app.db.pool).await;
    named(first).await.unwrap();
    let (status, body) = ensure(&app, first).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        app.link_state(&customer_id(&body)).await,
        LinkState::linked(first)
    );
    assert_eq!(double.customers()[0].name, None);

    // README's policy for it: the name comes along.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create policy profiles_read_by_sync on public.profiles for select to {role}
             using (true)"
    )))
    .execute(&app.db.pool)
    .await
    .unwrap();
    let second = create_auth_user(&app.db.pool).await;
    named(second).await.unwrap();
    let (status, body) = ensure(&app, second).await;
    assert_eq!(status, 201, "{body}");
    let row = app.customer(&customer_id(&body)).await.unwrap();
    assert_eq!(row["customer_name"], "Grace Hopper");
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
async fn a_preflight_from_an_allowed_origin_is_answered_and_others_are_refused() {
    let (app, _double) = app_and_double().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/customers", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    let user = create_auth_user(&app.db.pool).await;
    let response = app
        .client
        .post(format!("{}/customers", app.address))
        .header("Origin", "https://app.example.com")
        .bearer_auth(user_token(user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test]
async fn the_endpoint_is_off_without_a_token_setting_or_an_api_key() {
    let double = StripeDouble::start().await;
    let no_tokens = spawn_app_with_customers(&double, |settings| {
        settings.customers.jwt_secret = None;
    })
    .await;
    let user = create_auth_user(&no_tokens.db.pool).await;
    let response = no_tokens
        .post_customers(Some(&user_token(user)), None)
        .await;
    assert_eq!(response.status().as_u16(), 404);
    let no_key = spawn_app_with_customers(&double, |settings| settings.stripe_api = None).await;
    let response = no_key.post_customers(Some(&user_token(user)), None).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(double.api_requests().is_empty());
}

#[tokio::test]
async fn serve_says_at_start_up_whether_post_customers_is_on() {
    let spawned = spawn_app().await;
    let double = StripeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (secret, expected) in [
        (
            None,
            "POST /customers is off (404): neither SUPABASE_JWT_SECRET nor SUPABASE_JWKS_URL is set",
        ),
        (
            Some(crate::helpers::tokens::JWT_SECRET),
            "POST /customers is on",
        ),
    ] {
        let mut command = ServeProcess::command(&spawned.db.url)
            .current_dir(dir.path())
            .env("STRIPE_API_KEY", TEST_API_KEY)
            .env("STRIPE_API_BASE", &double.base_url)
            .env("CATCH_UP_INTERVAL", "0")
            .env_remove("RUST_LOG")
            .env_remove("USER_ID_METADATA_KEY")
            .env_remove("SUPABASE_JWT_SECRET")
            .env_remove("SUPABASE_JWKS_URL");
        if let Some(secret) = secret {
            command = command.env("SUPABASE_JWT_SECRET", secret);
        }
        let serve = command.start().await;
        let text = serve.wait_for_log("POST /customers is").await;
        drop(serve);
        assert!(text.contains(expected), "{expected}\n{text}");
        assert!(
            !text.contains(crate::helpers::tokens::JWT_SECRET),
            "the secret is never logged"
        );
    }
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
