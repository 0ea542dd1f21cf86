//! A creation Stripe refuses (docs/design.md "Stripe's answers": another 4xx to a write) is
//! permanent for those values: `POST /customers` answers 502 `stripe_refused` with Stripe's
//! code, and no new Stripe call is made for the user, on any replica, until the back-off passes
//! or the user's email or name changed. Logs name Stripe's type, code, param and request id,
//! never its message (which can quote the email).

use std::process::Stdio;

use futures::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::stripe_double::{Fault, StripeDouble, Target, output};
use crate::helpers::tokens::user_token;
use crate::helpers::{LinkState, TestApp, create_auth_user, json_reply, spawn_app_with_customers};

/// What the double's refusal quotes: it must never reach a log.
const QUOTED_BY_STRIPE: &str = "refused@example.com";

async fn app_and_double() -> (TestApp, StripeDouble) {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    (app, double)
}

async fn ensure(app: &TestApp, user: Uuid) -> (u16, Value) {
    json_reply(app.post_customers(Some(&user_token(user)), None).await).await
}

fn assert_refused(status: u16, body: &Value, stripe_status: u16, stripe_code: Option<&str>) {
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "stripe_refused", "{body}");
    assert_eq!(body["error"]["stripe_status"], stripe_status, "{body}");
    assert_eq!(body["error"]["stripe_code"], json!(stripe_code), "{body}");
    assert!(!body.to_string().contains(QUOTED_BY_STRIPE), "{body}");
}

/// `ensure-customer --user-id` against the double; its output once it ended.
async fn ensure_customer_command(
    app: &TestApp,
    double: &StripeDouble,
    user: Uuid,
) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = double.command(
        &app.db.url,
        dir.path(),
        &["ensure-customer", "--user-id", &user.to_string()],
    );
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    output(command).await
}

#[tokio::test]
async fn a_refused_creation_is_502_and_twenty_more_requests_make_no_new_stripe_call() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    double.fail(Target::Create, Fault::InvalidEmail, usize::MAX);

    let (status, body) = ensure(&app, user).await;
    assert_refused(status, &body, 400, Some("email_invalid"));
    assert_eq!(body["error"]["stripe_type"], "invalid_request_error");

    let answers = join_all((0..20).map(|_| ensure(&app, user))).await;
    for (status, body) in &answers {
        assert_refused(*status, body, 400, Some("email_invalid"));
    }
    // Another replica (a process of its own) sees the refusal in the database too.
    let other = ensure_customer_command(&app, &double, user).await;
    assert!(!other.status.success(), "{other:?}");
    assert_eq!(
        double.create_requests().len(),
        1,
        "one call to Stripe in all"
    );
    assert_eq!(app.customer_count().await, 0, "nothing written");
}

#[tokio::test]
async fn changing_the_email_after_a_refusal_allows_a_new_call_at_once() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    double.fail(Target::Create, Fault::InvalidEmail, 1);
    let (status, body) = ensure(&app, user).await;
    assert_refused(status, &body, 400, Some("email_invalid"));

    sqlx::query("update auth.users set email = 'fixed@example.com' where id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = ensure(&app, user).await;

    assert_eq!(status, 201, "{body}");
    let creates = double.create_requests();
    assert_eq!(creates.len(), 2);
    assert!(
        creates[1]
            .form
            .contains(&("email".into(), "fixed@example.com".into())),
        "the new email: {:?}",
        creates[1].form
    );
    // Nothing was created under the refused key: a new attempt, a new key.
    assert_eq!(creates[1].idempotency_key, Some(format!("{user}:2")));
    let id = body["stripe_customer_id"].as_str().unwrap();
    assert_eq!(app.link_state(id).await, LinkState::linked(user));
}

#[tokio::test]
async fn a_missing_search_endpoint_is_a_refusal_and_not_a_503_forever() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    // An attempt whose caller stopped mid-call two minutes ago: it must be looked up first.
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
    double.fail(Target::Search, Fault::UnknownUrl, usize::MAX);

    let (status, body) = ensure(&app, user).await;
    assert_refused(status, &body, 404, None);
    let answers = join_all((0..5).map(|_| ensure(&app, user))).await;
    for (status, body) in &answers {
        assert_refused(*status, body, 404, None);
    }

    assert_eq!(double.search_requests().len(), 1, "looked up once");
    assert!(
        double.create_requests().is_empty(),
        "never created blind after an interrupted attempt"
    );
}

#[tokio::test]
async fn a_refusal_is_logged_with_stripes_type_code_param_and_request_id_never_its_message() {
    let (app, double) = app_and_double().await;
    let user = create_auth_user(&app.db.pool).await;
    double.fail(Target::Create, Fault::InvalidEmail, usize::MAX);

    let run = ensure_customer_command(&app, &double, user).await;

    assert!(!run.status.success(), "{run:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let refusal = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["stripe_code"] == "email_invalid")
        .unwrap_or_else(|| panic!("no log line with Stripe's code:\n{text}"));
    let fields = &refusal;
    assert_eq!(fields["stripe_type"], "invalid_request_error", "{refusal}");
    assert_eq!(fields["stripe_param"], "email", "{refusal}");
    assert_eq!(fields["request_id"], "req_double_refused", "{refusal}");
    assert!(!text.contains(QUOTED_BY_STRIPE), "{text}");
    assert!(
        text.contains("stripe_refused") || text.contains("Stripe refused"),
        "{text}"
    );
}
