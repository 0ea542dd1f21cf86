//! Who may call `POST /customers`: Supabase access tokens, HS256 with the project's secret or
//! ES256 with a key of the project's JWKS (served by the double). Every refusal is a 401 or 403
//! before anything else happens: no Stripe call, no row.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::stripe_double::StripeDouble;
use crate::helpers::tokens::{
    JWT_SECRET, SigningKey, hs256, in_an_hour, jwks, user_claims, user_token,
};
use crate::helpers::{TestApp, create_auth_user, json_reply, spawn_app_with_customers};

async fn answer(app: &TestApp, token: &str) -> (u16, Value) {
    json_reply(app.post_customers(Some(token), None).await).await
}

/// Asserts `token` is refused with (status, code) and nothing happened.
async fn assert_refused(app: &TestApp, double: &StripeDouble, token: &str, expected: (u16, &str)) {
    let (status, body) = answer(app, token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap_or_default()),
        expected,
        "{body}"
    );
    assert!(double.api_requests().is_empty(), "no Stripe call");
    assert_eq!(app.customer_count().await, 0);
}

#[tokio::test]
async fn tokens_that_prove_nothing_are_401_and_call_no_stripe() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    let user = create_auth_user(&app.db.pool).await;
    let claims = user_claims(user);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims.clone();
        change(&mut claims);
        claims
    };
    let cases = [
        (
            "expired",
            hs256(&with(&|c| c["exp"] = json!(1_700_000_000)), JWT_SECRET),
        ),
        (
            "wrong signature",
            hs256(&claims, "another-projects-secret-of-32-characters"),
        ),
        (
            "wrong audience",
            hs256(&with(&|c| c["aud"] = json!("somebody-else")), JWT_SECRET),
        ),
        (
            "no audience",
            hs256(&with(&|c| c["aud"] = Value::Null), JWT_SECRET),
        ),
        (
            "sub not a uuid",
            hs256(&with(&|c| c["sub"] = json!("alice")), JWT_SECRET),
        ),
        (
            "exp not a number",
            hs256(
                &with(&|c| c["exp"] = json!(in_an_hour().to_string())),
                JWT_SECRET,
            ),
        ),
        ("not a token", "hello".to_owned()),
        // {"alg":"none","typ":"JWT"} . {"role":"service_role","exp":4102444800} . (nothing)
        (
            "alg none",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
             eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ."
                .to_owned(),
        ),
    ];
    for (what, token) in cases {
        let (status, body) = answer(&app, &token).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{what}: {body}"
        );
    }
    let missing = app.post_customers(None, None).await;
    assert_eq!(missing.status().as_u16(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert!(double.api_requests().is_empty(), "no Stripe call");
    assert_eq!(app.table_counts().await, Default::default());
}

#[tokio::test]
async fn an_anon_key_is_403() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    let anon = hs256(
        &json!({"iss": "supabase", "ref": "project-ref", "role": "anon", "exp": in_an_hour()}),
        JWT_SECRET,
    );
    assert_refused(&app, &double, &anon, (403, "forbidden")).await;
}

/// The app configured with the double's JWKS only (no HS256 secret), refetching at once.
async fn jwks_only(double: &StripeDouble) -> TestApp {
    let url = double.jwks_url();
    spawn_app_with_customers(double, |settings| {
        settings.customers.jwt_secret = None;
        settings.customers.jwks_url = Some(url.parse().unwrap());
        settings.customers.jwks_min_refetch = Duration::ZERO;
    })
    .await
}

fn jwks_fetches(double: &StripeDouble) -> usize {
    double
        .requests()
        .iter()
        .filter(|r| r.path == "/jwks.json")
        .count()
}

#[tokio::test]
async fn an_es256_token_of_the_projects_jwks_is_accepted_and_the_keys_are_cached() {
    let double = StripeDouble::start().await;
    let key = SigningKey::generate("key-1");
    double.set_jwks(jwks(&[&key]));
    let app = jwks_only(&double).await;
    let user = create_auth_user(&app.db.pool).await;

    let (status, body) = answer(&app, &key.sign(&user_claims(user))).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = answer(&app, &key.sign(&user_claims(user))).await;
    assert_eq!(status, 200);
    assert_eq!(jwks_fetches(&double), 1, "fetched once, then cached");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_without_a_restart() {
    let double = StripeDouble::start().await;
    let old = SigningKey::generate("key-old");
    double.set_jwks(jwks(&[&old]));
    let app = jwks_only(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    assert_eq!(answer(&app, &old.sign(&user_claims(user))).await.0, 201);

    // The project rotates: a new key signs, the JWKS lists it.
    let new = SigningKey::generate("key-new");
    double.set_jwks(jwks(&[&new, &old]));
    let (status, body) = answer(&app, &new.sign(&user_claims(user))).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(jwks_fetches(&double), 2, "refetched for the unknown kid");
}

#[tokio::test]
async fn an_unknown_kid_is_401_and_call_no_stripe() {
    let double = StripeDouble::start().await;
    let listed = SigningKey::generate("listed");
    double.set_jwks(jwks(&[&listed]));
    let app = jwks_only(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    let unlisted = SigningKey::generate("unlisted");
    let token = unlisted.sign(&user_claims(user));
    assert_refused(&app, &double, &token, (401, "invalid_token")).await;
    // A listed kid on a token signed by another key: a bad signature.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("listed".into());
    let forged = unlisted.sign_with(header, &user_claims(user));
    assert_refused(&app, &double, &forged, (401, "invalid_token")).await;
}

#[tokio::test]
async fn an_hs256_token_against_a_jwks_only_configuration_is_401() {
    let double = StripeDouble::start().await;
    let key = SigningKey::generate("key-1");
    double.set_jwks(jwks(&[&key]));
    let app = jwks_only(&double).await;
    let user = create_auth_user(&app.db.pool).await;
    assert_refused(&app, &double, &user_token(user), (401, "invalid_token")).await;
    // Nor does the JWKS's public key work as an HMAC secret (algorithm confusion).
    let confused = hs256(&user_claims(user), &key.jwk().to_string());
    assert_refused(&app, &double, &confused, (401, "invalid_token")).await;
}

#[tokio::test]
async fn a_user_token_for_a_user_that_does_not_exist_is_404() {
    let double = StripeDouble::start().await;
    let app = spawn_app_with_customers(&double, |_| {}).await;
    let (status, body) = answer(&app, &user_token(Uuid::new_v4())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_user"))
    );
}

#[tokio::test]
async fn a_stream_of_unknown_kids_does_not_refetch_the_jwks_more_than_the_rate_limit_allows() {
    let double = StripeDouble::start().await;
    let key = SigningKey::generate("key-1");
    double.set_jwks(jwks(&[&key]));
    let url = double.jwks_url();
    let app = spawn_app_with_customers(&double, |settings| {
        settings.customers.jwt_secret = None;
        settings.customers.jwks_url = Some(url.parse().unwrap());
        settings.customers.jwks_min_refetch = Duration::from_secs(3600);
    })
    .await;
    let user = create_auth_user(&app.db.pool).await;
    assert_eq!(answer(&app, &key.sign(&user_claims(user))).await.0, 201);

    for i in 0..5 {
        let stranger = SigningKey::generate(&format!("made-up-{i}"));
        let (status, _) = answer(&app, &stranger.sign(&user_claims(user))).await;
        assert_eq!(status, 401);
    }

    assert_eq!(jwks_fetches(&double), 1, "the first fetch only");
}

#[tokio::test]
async fn a_jwks_that_cannot_be_fetched_is_503_with_retry_after_not_401() {
    let double = StripeDouble::start().await;
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with_customers(&double, |settings| {
        settings.customers.jwt_secret = None;
        settings.customers.jwks_url = Some(url.parse().unwrap());
    })
    .await;
    let user = create_auth_user(&app.db.pool).await;
    let key = SigningKey::generate("key-1");

    let response = app
        .post_customers(Some(&key.sign(&user_claims(user))), None)
        .await;

    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(double.api_requests().is_empty());
}
