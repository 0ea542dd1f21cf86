//! The project's public signing keys (`SUPABASE_JWKS_URL`, e.g.
//! `https://<ref>.supabase.co/auth/v1/.well-known/jwks.json`), cached by `kid`.
//!
//! Fetched on first use, then again when a token names a `kid` the cache lacks (a key rotated
//! in) — at most once per `min_refetch`, so a stream of made-up `kid`s cannot make the service
//! hammer the endpoint — and when the cache is older than `max_age` (a key revoked out). Never
//! on every request. A failed refetch keeps the keys it had.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

#[derive(Debug, thiserror::Error)]
#[error("cannot fetch SUPABASE_JWKS_URL: {0}")]
pub struct JwksError(String);

/// How long the keys are trusted without a refetch; Supabase keeps a revoked key's successor
/// in the JWKS well before, so this bounds how long a revoked key still verifies.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// The least time between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched_at: Option<Instant>,
}

impl Keys {
    fn is_fresh(&self) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE)
    }
}

pub struct JwksCache {
    url: Url,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time; holds when the last one was tried.
    fetching: Mutex<Option<Instant>>,
    min_refetch: Duration,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// rustls' crypto provider must be installed first (`tls::install_crypto_provider`).
    pub fn new(url: Url, min_refetch: Duration) -> Result<Self, JwksError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("stripe-customer-sync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| JwksError(e.to_string()))?;
        Ok(Self {
            url,
            http,
            keys: RwLock::default(),
            fetching: Mutex::new(None),
            min_refetch,
        })
    }

    /// The key `kid` names and its algorithm; `None`: the JWKS has no such (usable) key.
    pub async fn key(&self, kid: &str) -> Result<Option<(DecodingKey, Algorithm)>, JwksError> {
        {
            let keys = self.keys.read().await;
            if keys.is_fresh()
                && let Some(found) = keys.by_kid.get(kid)
            {
                return Ok(Some(found.clone()));
            }
        }
        // One fetch at a time; whoever waited here finds what the fetch before it brought.
        let mut last_try = self.fetching.lock().await;
        {
            let keys = self.keys.read().await;
            let known = keys.by_kid.get(kid).cloned();
            let tried_recently = last_try.is_some_and(|at| at.elapsed() < self.min_refetch);
            if (keys.is_fresh() && known.is_some()) || tried_recently {
                return match known {
                    Some(found) => Ok(Some(found)),
                    None if keys.fetched_at.is_some() => Ok(None),
                    None => Err(JwksError("the last fetch failed; retrying shortly".into())),
                };
            }
        }
        *last_try = Some(Instant::now());
        match self.fetch().await {
            Ok(by_kid) => {
                let found = by_kid.get(kid).cloned();
                tracing::info!(keys = by_kid.len(), "fetched the Supabase JWKS");
                *self.keys.write().await = Keys {
                    by_kid,
                    fetched_at: Some(Instant::now()),
                };
                Ok(found)
            }
            Err(error) => {
                tracing::error!(error = %error, "could not fetch the Supabase JWKS");
                // Keys that were good a moment ago still are: serve them, and retry later.
                let keys = self.keys.read().await;
                match keys.by_kid.get(kid) {
                    Some(found) => Ok(Some(found.clone())),
                    None if keys.fetched_at.is_some() => Ok(None),
                    None => Err(error),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, JwksError> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let response = self
            .http
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| JwksError(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(JwksError(format!("answered {}", response.status())));
        }
        let set: Set = response
            .json()
            .await
            .map_err(|e| JwksError(format!("not a JWKS: {}", e.without_url())))?;
        Ok(set.keys.into_iter().filter_map(usable_key).collect())
    }
}

/// A verification key Supabase may sign with: RSA (RS256) or EC P-256 (ES256), with a `kid`.
/// Symmetric (`oct`) keys are never taken from a JWKS, nor keys for other algorithms.
fn usable_key(value: serde_json::Value) -> Option<(String, (DecodingKey, Algorithm))> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let kid = jwk.common.key_id.clone()?;
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, (key, algorithm)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_rsa_and_p256_keys_with_a_kid_are_used() {
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "use": "sig", "ext": true});
        let rsa = json!({"kty": "RSA", "kid": "rsa1", "alg": "RS256", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        let oct = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let no_kid = json!({"kty": "EC", "crv": "P-256", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let used: Vec<(String, Algorithm)> = [ec, rsa, oct, no_kid, json!({"kty": "weird"})]
            .into_iter()
            .filter_map(usable_key)
            .map(|(kid, (_, alg))| (kid, alg))
            .collect();
        assert_eq!(
            used,
            [
                ("ec1".to_owned(), Algorithm::ES256),
                ("rsa1".to_owned(), Algorithm::RS256)
            ]
        );
    }
}
