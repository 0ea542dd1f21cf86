//! Properties of reading who calls `POST /customers`, over any input: the `Authorization`
//! header's parser never panics and finds a bearer token however its scheme is written; a
//! token's header and claims, however malformed, never make verification panic; a token is
//! accepted only when its claims say what the rules ask (role, audience, user id, times,
//! issuer), and never when it was signed with another secret.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use super::jwt::{Caller, Issuer, TokenVerifier};
use crate::http::authenticated::bearer_token_of;
use crate::properties::{config, json_object, small_json_value, text};

const SECRET: &str = "property-tests-jwt-secret-of-at-least-32-chars";
const PROJECT: &str = "https://project-ref.supabase.co";

fn verifier() -> TokenVerifier {
    TokenVerifier::new(
        Some(&SecretString::from(SECRET)),
        None,
        Some(Issuer::of_project(&PROJECT.parse().unwrap())),
    )
}

/// Runs `verify` to its end: no JWKS is configured, so nothing waits on the network.
fn verify(token: &str) -> Result<Caller, super::TokenError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(verifier().verify(token))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A value for a claim: what Supabase puts there, or anything else.
fn claim(usual: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::of(prop_oneof![prop::sample::select(usual), small_json_value(),])
}

/// Claims near what Supabase issues: each usual claim present or not, usual or not.
fn claims() -> impl Strategy<Value = Value> {
    let user = Uuid::new_v4().to_string();
    (
        claim(vec![json!(user), json!("not-a-uuid")]),
        claim(vec![
            json!("authenticated"),
            json!("service_role"),
            json!("anon"),
        ]),
        claim(vec![
            json!("authenticated"),
            json!(["authenticated", "x"]),
            json!("other"),
        ]),
        claim(vec![json!(now() + 3600), json!(now() - 3600), json!(now())]),
        claim(vec![
            json!(now() - 60),
            json!(now() + 3600),
            json!(now() + 10),
        ]),
        claim(vec![
            json!(format!("{PROJECT}/auth/v1")),
            json!("https://another-ref.supabase.co/auth/v1"),
            json!("supabase"),
        ]),
        claim(vec![json!("project-ref"), json!("another-ref")]),
        json_object(small_json_value()),
    )
        .prop_map(|(sub, role, aud, exp, nbf, iss, project_ref, extra)| {
            let mut claims = extra.as_object().cloned().unwrap_or_default();
            for (key, value) in [
                ("sub", sub),
                ("role", role),
                ("aud", aud),
                ("exp", exp),
                ("nbf", nbf),
                ("iss", iss),
                ("ref", project_ref),
            ] {
                match value {
                    Some(value) => claims.insert(key.to_owned(), value),
                    None => claims.remove(key),
                };
            }
            Value::Object(claims)
        })
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Whether the rules accept `claims` (signed with the project's secret), and as whom.
fn expected(claims: &Value) -> Option<Caller> {
    const LEEWAY: i64 = 30;
    let now = now();
    let exp = claims.get("exp")?.as_i64()?;
    if exp < now - LEEWAY {
        return None;
    }
    // A null `nbf` sets no start, as no `nbf` at all (found by the million-case run).
    match claims.get("nbf").filter(|nbf| !nbf.is_null()) {
        None => {}
        Some(nbf) if nbf.as_i64()? <= now + LEEWAY => {}
        Some(_) => return None,
    }
    let role = claims.get("role").and_then(Value::as_str);
    let iss = claims.get("iss").and_then(Value::as_str);
    let issuer = format!("{PROJECT}/auth/v1");
    // A `ref` of null names no project, as no `ref` at all (the million-case run found the
    // model treating it as another project's).
    let legacy = iss == Some("supabase")
        && role == Some("service_role")
        && claims
            .get("ref")
            .filter(|r| !r.is_null())
            .is_none_or(|r| r == "project-ref");
    // Typed claims: a present one of another type makes the token malformed.
    let typed = |key: &str| claims.get(key).is_none_or(|v| v.is_string() || v.is_null());
    let audience_typed = claims.get("aud").is_none_or(|aud| {
        aud.is_string()
            || aud.is_null()
            || aud
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string))
    });
    if !(typed("sub") && typed("role") && typed("iss") && typed("ref") && audience_typed) {
        return None;
    }
    if iss != Some(issuer.as_str()) && !legacy {
        return None;
    }
    match role {
        Some("authenticated") => {
            let aud = claims.get("aud")?;
            let audience = aud == "authenticated"
                || aud
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a == "authenticated"));
            if !audience {
                return None;
            }
            Uuid::try_parse(claims.get("sub")?.as_str()?)
                .ok()
                .map(Caller::User)
        }
        Some("service_role") => Some(Caller::ServiceRole),
        _ => None,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_authorization_parser_never_panics(value in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Some(token) = bearer_token_of(&value) {
            prop_assert!(!token.is_empty());
            prop_assert_eq!(token, token.trim());
        }
    }

    #[test]
    fn a_bearer_token_is_found_whatever_the_schemes_case_and_the_spaces_around(
        token in "[!-~]{1,200}",
        scheme in "[bB][eE][aA][rR][eE][rR]",
        before in "[ \t]{0,3}",
        between in " [ \t]{0,3}",
        after in "[ \t]{0,3}",
    ) {
        let value = format!("{before}{scheme}{between}{token}{after}");
        prop_assert_eq!(bearer_token_of(value.as_bytes()), Some(token.as_str()));
    }

    #[test]
    fn another_scheme_gives_no_token(scheme in "[A-Za-z]{1,10}", token in "[!-~]{1,50}") {
        prop_assume!(!scheme.eq_ignore_ascii_case("bearer"));
        let value = format!("{scheme} {token}");
        prop_assert_eq!(bearer_token_of(value.as_bytes()), None);
    }

    #[test]
    fn verification_never_panics_on_any_text(token in text()) {
        let _ = verify(&token);
    }

    #[test]
    fn verification_never_panics_on_any_header_and_claims(
        header in json_object(small_json_value()),
        claims in json_object(small_json_value()),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let token = format!(
            "{}.{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes()),
            base64url(&signature)
        );
        let _ = verify(&token);
    }

    #[test]
    fn a_token_signed_with_the_secret_is_accepted_exactly_when_its_claims_follow_the_rules(
        claims in claims(),
    ) {
        let got = verify(&hs256(&claims, SECRET)).ok();
        prop_assert_eq!(got, expected(&claims), "{}", claims);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_never_accepted(
        claims in claims(),
        other in "[!-~]{32,64}",
    ) {
        prop_assume!(other != SECRET);
        prop_assert!(verify(&hs256(&claims, &other)).is_err());
    }
}
