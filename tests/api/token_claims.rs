//! `POST /customers` checks when a token is valid (`nbf` as well as `exp`, with the same small
//! leeway) and who issued it (`iss`, once the project's URL is known): a token valid from
//! tomorrow, or issued by another project with the same secret, proves nothing today.

use serde_json::{Value, json};

use crate::helpers::stripe_double::StripeDouble;
use crate::helpers::tokens::{JWT_SECRET, hs256, in_an_hour, user_claims};
use crate::helpers::{TestApp, create_auth_user, json_reply, spawn_app_with_customers};

/// `user_claims` name this project's issuer.
const PROJECT_URL: &str = "https://project-ref.supabase.co";

async fn answer(app: &TestApp, token: &str) -> (u16, Value) {
    json_reply(app.post_customers(Some(token), None).await).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The app with SUPABASE_URL set to the project `user_claims` belong to.
async fn app_knowing_the_project(double: &StripeDouble) -> TestApp {
    spawn_app_with_customers(double, |settings| {
        settings.customers.project_url = Some(PROJECT_URL.parse().unwrap());
    })
    .await
}

#[tokio::test]
async fn a_token_not_valid_before_a_time_to_come_is_401_and_calls_no_stripe() {
    let double = StripeDouble::start().await;
    let app = app_knowing_the_project(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    let mut claims = user_claims(user);
    claims["nbf"] = json!(now() + 86_400);

    let (status, body) = answer(&app, &hs256(&claims, JWT_SECRET)).await;

    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("invalid_token")),
        "{body}"
    );
    assert!(double.api_requests().is_empty(), "no Stripe call");
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn nbf_has_the_same_leeway_as_exp_and_must_be_a_number() {
    let double = StripeDouble::start().await;
    let app = app_knowing_the_project(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    let with_nbf = |nbf: Value| {
        let mut claims = user_claims(user);
        claims["nbf"] = nbf;
        hs256(&claims, JWT_SECRET)
    };
    // A clock a few seconds behind the issuer's.
    assert_eq!(answer(&app, &with_nbf(json!(now() + 5))).await.0, 201);
    assert_eq!(answer(&app, &with_nbf(json!(now() - 60))).await.0, 200);
    let (status, body) = answer(&app, &with_nbf(json!("tomorrow"))).await;
    assert_eq!(status, 401, "a nbf of another type is not skipped: {body}");
}

#[tokio::test]
async fn a_token_of_another_issuer_is_401_though_signed_with_the_projects_secret() {
    let double = StripeDouble::start().await;
    let app = app_knowing_the_project(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    for iss in [
        json!("https://another-ref.supabase.co/auth/v1"),
        json!("https://project-ref.supabase.co"),
        json!("supabase"),
        Value::Null,
    ] {
        let mut claims = user_claims(user);
        claims["iss"] = iss.clone();
        let (status, body) = answer(&app, &hs256(&claims, JWT_SECRET)).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (401, &json!("invalid_token")),
            "iss {iss}: {body}"
        );
    }
    assert!(double.api_requests().is_empty(), "no Stripe call");
    // The project's own issuer is accepted.
    assert_eq!(
        answer(&app, &hs256(&user_claims(user), JWT_SECRET)).await.0,
        201
    );
}

#[tokio::test]
async fn a_legacy_service_role_key_of_the_project_is_accepted_and_of_another_project_is_not() {
    let double = StripeDouble::start().await;
    let app = app_knowing_the_project(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    let key = |project: &str| {
        hs256(
            &json!({"iss": "supabase", "ref": project, "role": "service_role",
                    "iat": 1_700_000_000, "exp": in_an_hour()}),
            JWT_SECRET,
        )
    };
    let body = Some(json!({ "user_id": user }));
    let theirs = app
        .post_customers(Some(&key("another-ref")), body.clone())
        .await;
    assert_eq!(theirs.status().as_u16(), 401);
    let ours = app.post_customers(Some(&key("project-ref")), body).await;
    assert_eq!(ours.status().as_u16(), 201);
}

#[tokio::test]
async fn the_issuer_is_derived_from_a_jwks_url_of_supabases_form() {
    let double = StripeDouble::start().await;
    // Never fetched here: the tokens are HS256, and the URL only names the project.
    let app = spawn_app_with_customers(&double, |settings| {
        settings.customers.jwks_url = Some(
            "https://project-ref.supabase.co/auth/v1/.well-known/jwks.json"
                .parse()
                .unwrap(),
        );
    })
    .await;
    let user = create_auth_user(&app.db.pool).await;
    let mut claims = user_claims(user);
    claims["iss"] = json!("https://another-ref.supabase.co/auth/v1");
    assert_eq!(answer(&app, &hs256(&claims, JWT_SECRET)).await.0, 401);
    assert_eq!(
        answer(&app, &hs256(&user_claims(user), JWT_SECRET)).await.0,
        201
    );
}
