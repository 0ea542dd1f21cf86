//! A small client for Stripe's REST API: the key, a pinned `Stripe-Version`, and retries with
//! back-off on rate limits and server errors.
//!
//! reqwest (already the crate's HTTP client) rather than async-stripe's 1.0 client: that one
//! brings a second HTTP stack and its generated request builders for two GET endpoints. The
//! customer objects are decoded by `stripe::event`, as a webhook's are.
//!
//! The key travels only in the `Authorization` header, marked sensitive; no log line and no
//! error says it. URLs (which carry customer ids, never the key) do appear in errors.

use std::time::Duration;

use chrono::Utc;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;

use super::answer::{
    Answer, ApiError, Posted, StripeError, Verdict, classify, error_message, read_no_later_than,
    response_date, retry_after, without_url,
};
use super::error_fields::ErrorFields;
use super::retry::RetryPolicy;
use crate::configuration::StripeApiSettings;
use crate::domain::StripeMode;

/// The API version every request asks for, so that the account's default version (which the
/// dashboard can change) never changes the answers: the current one, whose customer shape the
/// fixtures (`fixtures/2026-09-30.endive/`) and the test double use. The decoding reads only
/// the five fields the sync needs, so older and newer shapes decode the same.
pub(super) const STRIPE_VERSION: &str = "2026-09-30.endive";

#[derive(Clone)]
pub(crate) struct StripeClient {
    http: reqwest::Client,
    base: Url,
    authorization: HeaderValue,
    retry: RetryPolicy,
    /// The key's mode: Stripe answers a test key with test objects only.
    key_livemode: bool,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// rustls' crypto provider must be installed first (`tls::install_crypto_provider`).
    pub(crate) fn new(settings: &StripeApiSettings, retry: RetryPolicy) -> Result<Self, ApiError> {
        let mut authorization =
            HeaderValue::try_from(format!("Bearer {}", settings.key.expose_secret()))
                .map_err(|_| ApiError::Request("STRIPE_API_KEY is not a valid header".into()))?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("Stripe-Version", HeaderValue::from_static(STRIPE_VERSION));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("stripe-customer-sync/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10).min(retry.attempt_timeout))
            .timeout(retry.attempt_timeout)
            .build()
            .map_err(|e| ApiError::Request(e.to_string()))?;
        Ok(Self {
            http,
            base: settings.base.clone(),
            authorization,
            retry,
            key_livemode: settings.mode == StripeMode::Live,
        })
    }

    /// The same client with another retry policy.
    pub(crate) fn with_retry(&self, retry: RetryPolicy) -> Self {
        Self {
            retry,
            ..self.clone()
        }
    }

    /// Whether the key reads live data (`sk_live_`, `rk_live_`) rather than test data.
    pub(crate) fn key_livemode(&self) -> bool {
        self.key_livemode
    }

    /// `base` + `path` (relative, e.g. `v1/customers`), with `query` appended.
    pub(crate) fn url(
        &self,
        path_segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, ApiError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::Request("STRIPE_API_BASE cannot be a base".into()))?
            .pop_if_empty()
            .extend(path_segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// GETs `url`, retrying rate limits (429), server errors (5xx) and failed connections with
    /// back-off, `Retry-After` first. 2xx and 404 are answers; 401/403 and other 4xx are errors.
    pub(crate) async fn get(&self, url: Url) -> Result<Answer, ApiError> {
        self.send(Method::GET, url, None).await
    }

    /// POSTs `form` (form-encoded, as Stripe's API takes it) with an `Idempotency-Key`, retried
    /// as [`Self::get`] is: every retry sends the same key, so Stripe does the work at most once
    /// and answers a replay with its first answer.
    pub(crate) async fn post_form(
        &self,
        url: Url,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Answer, ApiError> {
        let key = HeaderValue::try_from(idempotency_key)
            .map_err(|_| ApiError::Request("the idempotency key is not a valid header".into()))?;
        self.send(Method::POST, url, Some((form, key))).await
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        form: Option<(&[(String, String)], HeaderValue)>,
    ) -> Result<Answer, ApiError> {
        // What errors name: the request line, never the key.
        let request_line = format!("{method} {url}");
        let mut retries = 0;
        loop {
            let requested_at = Utc::now().timestamp();
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.authorization.clone());
            if let Some((form, key)) = &form {
                request = request.header("Idempotency-Key", key.clone()).form(form);
            }
            let sent = request.send().await;
            let (problem, retry_after) = match sent {
                Ok(response) => {
                    let status = response.status();
                    match classify(status, response.headers()) {
                        Verdict::Answer => {
                            let stripe_date = response_date(response.headers());
                            let replayed = response
                                .headers()
                                .get("Idempotent-Replayed")
                                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
                            let headers = response.headers().clone();
                            match response.bytes().await {
                                Ok(body) if status == StatusCode::NOT_FOUND => {
                                    unknown_id_or_url(&headers, &body, &request_line)?;
                                    return Ok(Answer {
                                        body: None,
                                        requested_at: read_no_later_than(requested_at, stripe_date),
                                        url: request_line,
                                        replayed,
                                    });
                                }
                                Ok(body) => {
                                    return Ok(Answer {
                                        body: Some(body.into()),
                                        requested_at: read_no_later_than(requested_at, stripe_date),
                                        url: request_line,
                                        replayed,
                                    });
                                }
                                // The body was cut off: as good as no answer.
                                Err(error) => (format!("reading the answer: {error}"), None),
                            }
                        }
                        Verdict::Unauthorized => {
                            return Err(unauthorized(&method, &url, response).await);
                        }
                        Verdict::Fail => {
                            let headers = response.headers().clone();
                            let body = response.bytes().await.unwrap_or_default();
                            let fields = ErrorFields::read(&headers, &body);
                            return Err(ApiError::Rejected {
                                status: status.as_u16(),
                                url: request_line,
                                message: fields.loggable(),
                                fields: Box::new(fields),
                            });
                        }
                        Verdict::Retry => {
                            let retry_after = retry_after(response.headers());
                            let headers = response.headers().clone();
                            let body = response.bytes().await.unwrap_or_default();
                            let fields = ErrorFields::read(&headers, &body);
                            (format!("{status}: {}", fields.loggable()), retry_after)
                        }
                    }
                }
                Err(error) if error.is_builder() => {
                    return Err(ApiError::Request(error.to_string()));
                }
                Err(error) => (without_url(&error), None),
            };
            if retries >= self.retry.max_retries {
                return Err(ApiError::Exhausted {
                    url: request_line,
                    attempts: retries + 1,
                    last: problem,
                });
            }
            let wait = match retry_after {
                Some(after) if !after.is_zero() => after.min(self.retry.max_retry_after),
                _ => self.backoff(retries),
            };
            tracing::warn!(
                request = %request_line,
                problem = %problem,
                retry_in_ms = wait.as_millis() as u64,
                retry = retries + 1,
                "Stripe request failed; retrying"
            );
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// POSTs `form` (form-encoded, as Stripe's API takes writes) to `url` ONCE, with an
    /// `Idempotency-Key`: the caller keeps its own retry schedule (the profile push stores it on
    /// the row, so a retry survives a restart and never blocks other work).
    pub(crate) async fn post_form_once(
        &self,
        url: Url,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<Posted, ApiError> {
        // Url's query serializer is exactly application/x-www-form-urlencoded.
        let mut encoder = Url::parse("form:").map_err(|e| ApiError::Request(e.to_string()))?;
        encoder.query_pairs_mut().extend_pairs(form);
        let body = encoder.query().unwrap_or_default().to_owned();
        let sent = self
            .http
            .post(url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header("Idempotency-Key", idempotency_key)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_builder() => return Err(ApiError::Request(error.to_string())),
            Err(error) => {
                return Ok(Posted::Retry {
                    problem: without_url(&error),
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        match classify(status, response.headers()) {
            Verdict::Answer if status == StatusCode::NOT_FOUND => {
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                // An unknown URL is a configuration error, not a refusal of these values.
                unknown_id_or_url(&headers, &body, &format!("POST {url}"))?;
                // The customer is unknown to this key: Stripe refuses the write as sent.
                Ok(Posted::Rejected {
                    status: status.as_u16(),
                    message: error_message(&body),
                    error: StripeError::read(&headers, &body).unwrap_or_default(),
                })
            }
            Verdict::Answer => match response.bytes().await {
                Ok(body) => Ok(Posted::Done(body.into())),
                // Cut off: Stripe may or may not have applied it; the idempotency key makes the
                // retry safe either way.
                Err(error) => Ok(Posted::Retry {
                    problem: format!("reading the answer: {error}"),
                    retry_after: None,
                }),
            },
            Verdict::Unauthorized => Err(unauthorized(&Method::POST, &url, response).await),
            Verdict::Fail => {
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                Ok(Posted::Rejected {
                    status: status.as_u16(),
                    message: error_message(&body),
                    error: StripeError::read(&headers, &body).unwrap_or_default(),
                })
            }
            Verdict::Retry => {
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                let fields = ErrorFields::read(&headers, &body);
                Ok(Posted::Retry {
                    problem: format!("{status}: {}", fields.loggable()),
                    retry_after,
                })
            }
        }
    }

    /// Exponential back-off with "equal jitter": half fixed, half random, so that many clients
    /// (or verify's concurrent requests) do not retry in lock-step.
    fn backoff(&self, retries: u32) -> Duration {
        let exponential = self
            .retry
            .initial_backoff
            .saturating_mul(1 << retries.min(16))
            .min(self.retry.max_backoff);
        // uuid's v4 generator is the one random source already in the crate.
        let random = (uuid::Uuid::new_v4().as_u128() % 1_000) as f64 / 1_000.0;
        exponential.mul_f64(0.5 + random / 2.0)
    }
}

/// A 404's meaning: `Ok` for Stripe's `resource_missing` (this key's account and mode do not
/// know the id); anything else (Stripe's "Unrecognized request URL", a proxy's page) is not
/// an answer about the object, and says so with Stripe's own message.
fn unknown_id_or_url(headers: &HeaderMap, body: &[u8], request_line: &str) -> Result<(), ApiError> {
    match StripeError::read(headers, body) {
        Some(error) if error.is_resource_missing() => Ok(()),
        Some(error) => Err(ApiError::UnknownUrl {
            url: request_line.to_owned(),
            says: error.message.unwrap_or_else(|| "nothing".into()),
        }),
        None => Err(ApiError::UnknownUrl {
            url: request_line.to_owned(),
            says: "nothing: no Stripe error body".into(),
        }),
    }
}

/// A 401 or 403, as a message that says what to fix: the key, or the permission the request
/// needs (Stripe's dashboard names restricted keys' permissions this way).
async fn unauthorized(method: &Method, url: &Url, response: reqwest::Response) -> ApiError {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap_or_default();
    let says = StripeError::read(&headers, &body)
        .and_then(|e| e.message)
        .unwrap_or_else(|| "nothing".into());
    let permission = permission_for(method, url.path());
    let detail = if status == 401 {
        format!(
            "Stripe refused STRIPE_API_KEY (401): the key is not valid (mistyped, rolled or \
             revoked); Stripe says: {says}"
        )
    } else {
        format!(
            "STRIPE_API_KEY may not {method} {} ({status}): a restricted key needs the \
             \"{permission}\" permission; Stripe says: {says}",
            url.path()
        )
    };
    ApiError::Unauthorized { status, detail }
}

/// The permission of a restricted key that a request needs.
fn permission_for(method: &Method, path: &str) -> &'static str {
    let events = path.trim_end_matches('/').ends_with("/v1/events");
    match (events, method == Method::GET) {
        (true, _) => "Events: Read",
        (false, true) => "Customers: Read",
        (false, false) => "Customers: Write",
    }
}

#[cfg(test)]
mod tests;
