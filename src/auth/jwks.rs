//! The project's public signing keys (`SUPABASE_JWKS_URL`, e.g.
//! `https://<ref>.supabase.co/auth/v1/.well-known/jwks.json`), cached by `kid`.
//!
//! Fetched on first use, then again when a token names a `kid` the cache lacks (a key rotated
//! in) — at most once per `min_refetch`, so a stream of made-up `kid`s cannot make the service
//! hammer the endpoint — and when the keys are older than the refresh age (a key revoked out).
//! Never on every request.
//!
//! A failed fetch is retried with back-off (1 s, 2 s, 4 s, … up to 30 s), so that the service
//! recovers within seconds of the JWKS coming back. Meanwhile the keys it had keep verifying,
//! up to `max_age` (`SUPABASE_JWKS_MAX_AGE`) after they were fetched: past that, a revoked key
//! could still be among them, so tokens are answered 503 (retry) rather than accepted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

#[derive(Debug, thiserror::Error)]
#[error("cannot fetch SUPABASE_JWKS_URL: {0}")]
pub(crate) struct JwksError(String);

/// Keys older than this are refetched before use; should that fail, they keep verifying until
/// `max_age`. Supabase's own JWKS endpoint is cached for 10 minutes.
pub(crate) const REFRESH_AGE: Duration = Duration::from_secs(600);
/// `SUPABASE_JWKS_MAX_AGE`'s default: how long after its fetch a key may still verify while the
/// JWKS cannot be fetched, i.e. how long a revoked key may outlive its revocation during an
/// outage of the JWKS endpoint.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// The least time between two fetches caused by unknown `kid`s.
pub(crate) const MIN_REFETCH: Duration = Duration::from_secs(30);
/// The first retry after a failed fetch; it doubles with each failure, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched_at: Option<Instant>,
}

impl Keys {
    fn age(&self) -> Option<Duration> {
        self.fetched_at.map(|at| at.elapsed())
    }
}

/// The fetches tried since the last success.
#[derive(Default)]
struct Attempts {
    last: Option<Instant>,
    failures: u32,
}

impl Attempts {
    /// How long after the last attempt the next may be made: the back-off after failures, the
    /// rate limit of unknown `kid`s while the keys are fresh, else at once.
    fn wait(&self, fresh: bool, min_refetch: Duration) -> Duration {
        match self.failures {
            0 if fresh => min_refetch,
            0 => Duration::ZERO,
            n => FIRST_RETRY
                .saturating_mul(1 << (n - 1).min(16))
                .min(MAX_RETRY),
        }
    }

    fn may_fetch(&self, fresh: bool, min_refetch: Duration) -> bool {
        self.last
            .is_none_or(|at| at.elapsed() >= self.wait(fresh, min_refetch))
    }
}

pub(crate) struct JwksCache {
    url: Url,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time.
    attempts: Mutex<Attempts>,
    min_refetch: Duration,
    max_age: Duration,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url.as_str())
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// rustls' crypto provider must be installed first (`tls::install_crypto_provider`).
    pub(crate) fn new(
        url: Url,
        min_refetch: Duration,
        max_age: Duration,
    ) -> Result<Self, JwksError> {
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
            attempts: Mutex::default(),
            min_refetch,
            max_age,
        })
    }

    /// Keys younger than this are used without a refetch.
    fn refresh_age(&self) -> Duration {
        REFRESH_AGE.min(self.max_age / 2)
    }

    /// The key `kid` names and its algorithm; `None`: the JWKS has no such (usable) key.
    pub(crate) async fn key(
        &self,
        kid: &str,
    ) -> Result<Option<(DecodingKey, Algorithm)>, JwksError> {
        {
            let keys = self.keys.read().await;
            if keys.age().is_some_and(|age| age < self.refresh_age())
                && let Some(found) = keys.by_kid.get(kid)
            {
                return Ok(Some(found.clone()));
            }
        }
        // One fetch at a time; whoever waited here finds what the fetch before it brought.
        let mut attempts = self.attempts.lock().await;
        let fresh = self
            .keys
            .read()
            .await
            .age()
            .is_some_and(|age| age < self.refresh_age());
        if fresh && let Some(found) = self.keys.read().await.by_kid.get(kid) {
            return Ok(Some(found.clone()));
        }
        if !attempts.may_fetch(fresh, self.min_refetch) {
            return self.cached(kid, attempts.failures).await;
        }
        attempts.last = Some(Instant::now());
        match self.fetch().await {
            Ok(by_kid) => {
                let found = by_kid.get(kid).cloned();
                tracing::info!(keys = by_kid.len(), "fetched the Supabase JWKS");
                *self.keys.write().await = Keys {
                    by_kid,
                    fetched_at: Some(Instant::now()),
                };
                attempts.failures = 0;
                Ok(found)
            }
            Err(error) => {
                attempts.failures = attempts.failures.saturating_add(1);
                tracing::error!(
                    error = %error,
                    failures = attempts.failures,
                    retry_in = ?attempts.wait(false, self.min_refetch),
                    "could not fetch the Supabase JWKS"
                );
                self.cached(kid, attempts.failures).await
            }
        }
    }

    /// The answer from the cache alone, when no fetch is made or it failed: a cached key
    /// younger than `max_age`; none when the last fetch succeeded and lacks `kid`; otherwise
    /// "unavailable" (the key may have been rotated in, or revoked, unseen).
    async fn cached(
        &self,
        kid: &str,
        failures: u32,
    ) -> Result<Option<(DecodingKey, Algorithm)>, JwksError> {
        let keys = self.keys.read().await;
        match (keys.by_kid.get(kid), keys.age()) {
            (Some(found), Some(age)) if age < self.max_age => Ok(Some(found.clone())),
            (Some(_), _) => Err(JwksError(format!(
                "the cached keys are older than SUPABASE_JWKS_MAX_AGE ({:?}) and cannot be \
                 refreshed",
                self.max_age
            ))),
            (None, Some(_)) if failures == 0 => Ok(None),
            (None, _) => Err(JwksError("the last fetch failed; retrying shortly".into())),
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
    fn a_failed_fetch_is_retried_after_a_second_then_doubling_up_to_30_s() {
        let after = |failures| Attempts {
            last: None,
            failures,
        };
        let secs = Duration::from_secs;
        assert_eq!(after(1).wait(true, MIN_REFETCH), secs(1));
        assert_eq!(after(2).wait(true, MIN_REFETCH), secs(2));
        assert_eq!(after(3).wait(false, MIN_REFETCH), secs(4));
        assert_eq!(after(6).wait(true, MIN_REFETCH), secs(30));
        assert_eq!(after(u32::MAX).wait(true, MIN_REFETCH), secs(30));
        // No failure: unknown kids wait for the rate limit, stale keys are refetched at once.
        assert_eq!(after(0).wait(true, MIN_REFETCH), MIN_REFETCH);
        assert_eq!(after(0).wait(false, MIN_REFETCH), Duration::ZERO);
    }

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
