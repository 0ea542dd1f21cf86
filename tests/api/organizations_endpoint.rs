//! `POST /organizations/{organization_id}/customer` and `ensure-customer --organization-id`:
//! an organization's Stripe customer, created exactly once for its active owners and admins,
//! with its billing email and name (docs/design.md "Organizations").

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::organizations::{
    add_member, create_organization, create_organizations_schema, customer_of_organization,
};
use crate::helpers::serve_process::ServeProcess;
use crate::helpers::stripe_double::{Fault, StripeDouble, TEST_API_KEY, Target};
use crate::helpers::tokens::{JWT_SECRET, service_role_token, user_token};
use crate::helpers::{
    TestApp, create_auth_user, json_reply, post_customers, spawn_app, spawn_app_with_customers,
};

/// The app with `POST /customers` on, and the organizations' schema.
async fn app_with_organizations(double: &StripeDouble) -> TestApp {
    let app = spawn_app_with_customers(double, |_| {}).await;
    create_organizations_schema(&app.db.pool).await;
    app
}

fn url(base: &str, organization: Uuid) -> String {
    format!("{base}/organizations/{organization}/customer")
}

/// POSTs with `token` and returns (status, body).
async fn ensure(app: &TestApp, organization: Uuid, token: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    json_reply(post_customers(&client, &url(&app.address, organization), Some(token), None).await)
        .await
}

/// An organization with a billing email, and its active owner.
async fn organization_and_owner(app: &TestApp) -> (Uuid, Uuid) {
    let organization =
        create_organization(&app.db.pool, "Acme Ltd", Some("billing@acme.test")).await;
    let owner = create_auth_user(&app.db.pool).await;
    add_member(&app.db.pool, organization, owner, "owner", "active").await;
    (organization, owner)
}

#[tokio::test]
async fn an_owner_gets_the_organizations_customer_with_its_billing_email_name_and_id() {
    let double = StripeDouble::start().await;
    let app = app_with_organizations(&double).await;
    let (organization, owner) = organization_and_owner(&app).await;

    let (status, body) = ensure(&app, organization, &user_token(owner)).await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["organization_id"], organization.to_string());
    assert_eq!(body["created"], true);
    let stripe = &double.customers()[0];
    assert_eq!(stripe.id, body["stripe_customer_id"].as_str().unwrap());
    assert_eq!(stripe.email.as_deref(), Some("billing@acme.test"));
    assert_eq!(stripe.name.as_deref(), Some("Acme Ltd"));
    assert_eq!(stripe.metadata["organization_id"], organization.to_string());
    assert_eq!(
        double.create_requests()[0].idempotency_key.as_deref(),
        Some(format!("organization:{organization}:1").as_str())
    );
    let row = customer_of_organization(&app.db.pool, organization)
        .await
        .expect("a linked row");
    assert_eq!(row["stripe_customer_id"], body["stripe_customer_id"]);
    assert_eq!(
        (row["user_id"].clone(), row["customer_email"].clone()),
        (Value::Null, "billing@acme.test".into())
    );

    // Again: the row answers, Stripe is not asked.
    double.clear_requests();
    let (status, again) = ensure(&app, organization, &user_token(owner)).await;
    assert_eq!(
        (status, &again["stripe_customer_id"]),
        (200, &body["stripe_customer_id"])
    );
    assert!(double.api_requests().is_empty());
}

#[tokio::test]
async fn ten_concurrent_owner_calls_on_two_replicas_create_one_customer_and_one_linked_row() {
    let spawned = spawn_app().await; // for its database
    create_organizations_schema(&spawned.db.pool).await;
    let double = StripeDouble::start().await;
    // Stripe takes a while, so that the calls overlap the creation.
    double.set_latency(Duration::from_millis(300));
    let (organization, owner) = organization_and_owner(&spawned).await;
    let env = [
        ("STRIPE_API_KEY", TEST_API_KEY),
        ("STRIPE_API_BASE", double.base_url.as_str()),
        ("CATCH_UP_INTERVAL", "0"),
        ("SUPABASE_JWT_SECRET", JWT_SECRET),
    ];
    let a = ServeProcess::start(&spawned.db.url, &env).await;
    let b = ServeProcess::start(&spawned.db.url, &env).await;

    let client = reqwest::Client::new();
    let token = user_token(owner);
    let calls = (0..10).map(|i| {
        let base = if i % 2 == 0 { &a.base_url } else { &b.base_url };
        let (client, token, url) = (client.clone(), token.clone(), url(base, organization));
        async move { json_reply(post_customers(&client, &url, Some(&token), None).await).await }
    });
    let answers = futures::future::join_all(calls).await;

    let ids: HashSet<&str> = answers
        .iter()
        .map(|(_, body)| {
            body["stripe_customer_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"))
        })
        .collect();
    assert_eq!(ids.len(), 1, "every caller gets the same id: {answers:?}");
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert_eq!(double.customers().len(), 1, "one customer in Stripe");
    assert_eq!(double.create_requests().len(), 1, "one create call");
    assert_eq!(
        double.customers()[0].email.as_deref(),
        Some("billing@acme.test")
    );
    let rows: i64 = sqlx::query_scalar(
        "select count(*) from public.stripe_customers where organization_id = $1",
    )
    .bind(organization)
    .fetch_one(&spawned.db.pool)
    .await
    .unwrap();
    assert_eq!((rows, spawned.customer_count().await), (1, 1));
}

#[tokio::test]
async fn members_without_an_admin_role_inactive_admins_and_strangers_get_403_and_stripe_is_not_called()
 {
    let double = StripeDouble::start().await;
    let app = app_with_organizations(&double).await;
    let (organization, _) = organization_and_owner(&app).await;
    let pool = &app.db.pool;
    let mut refused = Vec::new();
    for (role, status) in [
        ("member", "active"),
        ("viewer", "active"),
        ("admin", "pending"),
        ("owner", "suspended"),
    ] {
        let user = create_auth_user(pool).await;
        add_member(pool, organization, user, role, status).await;
        refused.push((format!("{status} {role}"), user));
    }
    // A member of another organization only.
    let other = create_organization(pool, "Other", Some("b@other.test")).await;
    let stranger = create_auth_user(pool).await;
    add_member(pool, other, stranger, "owner", "active").await;
    refused.push(("stranger".into(), stranger));

    for (who, user) in refused {
        let (status, body) = ensure(&app, organization, &user_token(user)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{who}: {body}"
        );
    }
    assert!(double.api_requests().is_empty(), "Stripe was not called");
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn an_active_admin_may_create_and_the_roles_are_configurable() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |settings| {
        settings.organizations.admin_roles = vec!["member".into()];
    })
    .await;
    create_organizations_schema(&app.db.pool).await;
    let (organization, owner) = organization_and_owner(&app).await;
    let member = create_auth_user(&app.db.pool).await;
    add_member(&app.db.pool, organization, member, "member", "active").await;
    let (status, _) = ensure(&app, organization, &user_token(owner)).await;
    assert_eq!(
        status, 403,
        "owner is not among ORGANIZATION_ADMIN_ROLES=member"
    );
    let (status, body) = ensure(&app, organization, &user_token(member)).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn an_organization_without_a_billing_email_is_422_and_stripe_is_not_called() {
    let double = StripeDouble::start().await;
    let app = app_with_organizations(&double).await;
    let organization = create_organization(&app.db.pool, "Acme", None).await;
    let admin = create_auth_user(&app.db.pool).await;
    add_member(&app.db.pool, organization, admin, "admin", "active").await;
    let (status, body) = ensure(&app, organization, &user_token(admin)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("missing_email")),
        "{body}"
    );
    // service_role acts for any organization: an unknown one is 404.
    let (status, body) = ensure(&app, Uuid::new_v4(), &service_role_token()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_organization")),
        "{body}"
    );
    assert!(double.api_requests().is_empty());
}

#[tokio::test]
async fn without_the_organizations_tables_the_route_answers_404() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    let user = create_auth_user(&app.db.pool).await;
    let (status, body) = ensure(&app, Uuid::new_v4(), &user_token(user)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert!(double.api_requests().is_empty());
}

#[tokio::test]
async fn ensure_customer_command_creates_the_organizations_customer_once() {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    let double = StripeDouble::start().await;
    let organization = create_organization(&app.db.pool, "Acme", Some("billing@acme.test")).await;
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let mut command = double.command(
            &app.db.url,
            dir.path(),
            &[
                "ensure-customer",
                "--organization-id",
                &organization.to_string(),
            ],
        );
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        crate::helpers::stripe_double::output(command)
    };
    let first = run().await;
    assert!(first.status.success(), "{first:?}");
    let printed: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        (
            printed["created"].clone(),
            printed["organization_id"].clone()
        ),
        (Value::Bool(true), organization.to_string().into())
    );
    double.clear_requests();
    let second = run().await;
    let again: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        (
            again["stripe_customer_id"].clone(),
            again["created"].clone()
        ),
        (printed["stripe_customer_id"].clone(), Value::Bool(false))
    );
    assert!(double.api_requests().is_empty());
}

#[tokio::test]
async fn a_crash_after_stripe_created_then_a_retry_past_the_key_window_finds_the_organizations_customer()
 {
    let app = spawn_app().await;
    create_organizations_schema(&app.db.pool).await;
    let double = StripeDouble::start().await;
    let organization = create_organization(&app.db.pool, "Acme", Some("billing@acme.test")).await;
    let dir = tempfile::tempdir().unwrap();
    let command = || {
        let mut command = double.command(
            &app.db.url,
            dir.path(),
            &[
                "ensure-customer",
                "--organization-id",
                &organization.to_string(),
            ],
        );
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    // Stripe creates, its answer never arrives: the process dies before the row is written.
    double.fail(Target::Create, Fault::HangAfterCreating, 1);
    let mut child = command().spawn().unwrap();
    double
        .wait_for("the customer to be created", |d| d.customers().len() == 1)
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    double.release_hangs();
    assert_eq!(app.customer_count().await, 0, "the row write was cut off");
    let made = double.customers()[0].id.clone();

    // A day later Stripe forgot the key: the look-up by metadata organization_id finds it.
    sqlx::query(
        "update public.stripe_customer_creations
            set started_at = started_at - interval '25 hours',
                lease_until = lease_until - interval '25 hours'
          where organization_id = $1",
    )
    .bind(organization)
    .execute(&app.db.pool)
    .await
    .unwrap();
    double.expire_idempotency_keys();
    double.clear_requests();
    let output = crate::helpers::stripe_double::output(command()).await;

    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["stripe_customer_id"], made.as_str());
    assert_eq!(double.customers().len(), 1, "still one customer");
    assert_eq!(double.search_requests().len(), 1, "looked up");
    assert!(double.create_requests().is_empty(), "not created again");
    let row = customer_of_organization(&app.db.pool, organization).await;
    assert_eq!(row.expect("linked")["stripe_customer_id"], made.as_str());
}
