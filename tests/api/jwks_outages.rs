//! When the project's JWKS cannot be fetched: the service retries within seconds (with
//! back-off), not after a fixed 30 s, and keys it fetched long ago stop verifying once they are
//! older than SUPABASE_JWKS_MAX_AGE (a revoked key must not stay valid for as long as the
//! outage lasts).

use std::time::{Duration, Instant};

use crate::helpers::stripe_double::{Fault, StripeDouble, Target};
use crate::helpers::tokens::{SigningKey, jwks, user_claims};
use crate::helpers::{TestApp, create_auth_user, json_reply, spawn_app_with_customers};

/// The app verifying with the double's JWKS only, with the default refetch rate limit.
async fn jwks_only(double: &StripeDouble, max_age: Option<Duration>) -> TestApp {
    let url = double.jwks_url();
    spawn_app_with_customers(double, |settings| {
        settings.customers.jwt_secret = None;
        settings.customers.jwks_url = Some(url.parse().unwrap());
        if let Some(max_age) = max_age {
            settings.customers.jwks_max_age = max_age;
        }
    })
    .await
}

async fn status(app: &TestApp, token: &str) -> (u16, serde_json::Value) {
    json_reply(app.post_customers(Some(token), None).await).await
}

#[tokio::test]
async fn once_the_jwks_is_back_tokens_verify_again_within_seconds() {
    let double = StripeDouble::start().await;
    let key = SigningKey::generate("key-1");
    double.set_jwks(jwks(&[&key]));
    double.fail(Target::Jwks, Fault::Unavailable, 1);
    let app = jwks_only(&double, None).await;
    let user = create_auth_user(&app.db.pool).await;
    let token = key.sign(&user_claims(user));

    let (first, body) = status(&app, &token).await;
    assert_eq!(first, 503, "{body}");

    // The JWKS answers again (the fault was for one request).
    let back = Instant::now();
    let answered = loop {
        let (status, body) = status(&app, &token).await;
        if status != 503 || back.elapsed() > Duration::from_secs(20) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answered.0, 201, "{}", answered.1);
    // The first retry is due 1 s after the failure; before, the next fetch waited 30 s.
    assert!(
        back.elapsed() < Duration::from_secs(8),
        "recovered only after {:?}",
        back.elapsed()
    );
}

#[tokio::test]
async fn keys_older_than_the_max_age_do_not_verify_while_the_jwks_cannot_be_fetched() {
    let double = StripeDouble::start().await;
    let key = SigningKey::generate("key-1");
    double.set_jwks(jwks(&[&key]));
    let app = jwks_only(&double, Some(Duration::from_secs(2))).await;
    let user = create_auth_user(&app.db.pool).await;
    let token = key.sign(&user_claims(user));
    assert_eq!(status(&app, &token).await.0, 201);

    // The JWKS endpoint goes down for good; the cached key outlives its max age.
    double.fail(Target::Jwks, Fault::Unavailable, usize::MAX);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (status, body) = status(&app, &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "a key past its max age is not accepted: {body}"
    );
}
