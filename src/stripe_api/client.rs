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
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;

use crate::configuration::StripeApiSettings;

/// The API version every request asks for, so that the account's default version (which the
/// dashboard can change) never changes the answers: the current one, whose customer shape the
/// fixtures (`fixtures/2026-09-30.endive/`) and the test double use. The decoding reads only
/// the five fields the sync needs, so older and newer shapes decode the same.
pub const STRIPE_VERSION: &str = "2026-09-30.endive";

/// How often and how long to retry a request that Stripe rate-limited (429), failed (5xx) or
/// that did not get an answer at all.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt; then the request fails.
    pub max_retries: u32,
    /// The first back-off; it doubles per retry (with jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is waited for this long only.
    pub max_retry_after: Duration,
    /// How long one attempt may take, from sending to the end of the answer.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Stripe's own libraries start at 0.5 s; eight retries wait up to about a minute in all,
    /// enough to ride out a rate-limit burst or a short incident in a long backfill.
    fn default() -> Self {
        Self {
            max_retries: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(16),
            max_retry_after: Duration::from_secs(60),
            // Stripe's libraries allow 80 s; a list of 100 customers takes well under one.
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// For a request made while a webhook waits for its answer (a thin event's customer): all
    /// attempts together stay well inside the webhook's deadline, leaving it time for the
    /// database. Stripe answers a retrieve in a few hundred milliseconds; two quick retries
    /// ride out a blip, and anything longer is Stripe's to retry (503, it redelivers).
    pub fn within_a_webhook() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_retry_after: Duration::from_millis(500),
            attempt_timeout: Duration::from_millis(1000),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "Stripe refused STRIPE_API_KEY ({status}): is it a key of the right account and mode \
         (test/live), and may it (a restricted key) read customers (and write them, for the \
         profile push)?"
    )]
    Unauthorized { status: u16 },
    #[error("Stripe answered {status} to {url}: {message}")]
    Rejected {
        status: u16,
        url: String,
        message: String,
    },
    #[error("{url} failed {attempts} times, giving up; the last time: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("Stripe's answer to {url} is not what its API documents: {detail}")]
    Malformed { url: String, detail: String },
    #[error("cannot build a request: {0}")]
    Request(String),
}

/// A 2xx or 404 answer, and when the request that got it started.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `None`: 404, Stripe has no such object.
    pub body: Option<Vec<u8>>,
    /// A Unix second no later than Stripe's read of what it answered, by Stripe's own clock
    /// where it says (see [`read_no_later_than`]): the answer reflects every change Stripe
    /// stamped before it (the order a fetched customer is applied with).
    pub requested_at: i64,
    /// The request line (`GET https://…`), for errors.
    pub url: String,
    /// `Idempotent-Replayed: true`: Stripe answered a POST whose key it had seen with the
    /// first answer, and did nothing again.
    pub replayed: bool,
}

/// The answer to one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// 2xx: applied (or replayed: Stripe answers a known idempotency key with its first answer).
    Done(Vec<u8>),
    /// 429, 5xx, or no answer: try again later (`Retry-After` when Stripe said).
    Retry {
        problem: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx: the same request fails again; Stripe's message says why.
    Rejected { status: u16, message: String },
}

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: Url,
    authorization: HeaderValue,
    retry: RetryPolicy,
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
    pub fn new(settings: &StripeApiSettings, retry: RetryPolicy) -> Result<Self, ApiError> {
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
        })
    }

    /// `base` + `path` (relative, e.g. `v1/customers`), with `query` appended.
    pub fn url(&self, path_segments: &[&str], query: &[(&str, &str)]) -> Result<Url, ApiError> {
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
    pub async fn get(&self, url: Url) -> Result<Answer, ApiError> {
        self.send(Method::GET, url, None).await
    }

    /// POSTs `form` (form-encoded, as Stripe's API takes it) with an `Idempotency-Key`, retried
    /// as [`Self::get`] is: every retry sends the same key, so Stripe does the work at most once
    /// and answers a replay with its first answer.
    pub async fn post_form(
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
                            match response.bytes().await {
                                Ok(body) => {
                                    return Ok(Answer {
                                        body: (status != StatusCode::NOT_FOUND)
                                            .then(|| body.into()),
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
                            return Err(ApiError::Unauthorized {
                                status: status.as_u16(),
                            });
                        }
                        Verdict::Fail => {
                            let body = response.bytes().await.unwrap_or_default();
                            return Err(ApiError::Rejected {
                                status: status.as_u16(),
                                url: request_line,
                                message: error_message(&body),
                            });
                        }
                        Verdict::Retry => {
                            let retry_after = retry_after(response.headers());
                            let body = response.bytes().await.unwrap_or_default();
                            (format!("{status}: {}", error_message(&body)), retry_after)
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
    pub async fn post_form_once(
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
        let verdict = match classify(status, response.headers()) {
            // A write to something Stripe does not have is no answer to wait for.
            Verdict::Answer if status == StatusCode::NOT_FOUND => Verdict::Fail,
            verdict => verdict,
        };
        let retry_after = retry_after(response.headers());
        match verdict {
            Verdict::Answer => match response.bytes().await {
                Ok(body) => Ok(Posted::Done(body.into())),
                // Cut off: Stripe may or may not have applied it; the idempotency key makes the
                // retry safe either way.
                Err(error) => Ok(Posted::Retry {
                    problem: format!("reading the answer: {error}"),
                    retry_after: None,
                }),
            },
            Verdict::Unauthorized => Err(ApiError::Unauthorized {
                status: status.as_u16(),
            }),
            Verdict::Fail => {
                let body = response.bytes().await.unwrap_or_default();
                Ok(Posted::Rejected {
                    status: status.as_u16(),
                    message: error_message(&body),
                })
            }
            Verdict::Retry => {
                let body = response.bytes().await.unwrap_or_default();
                Ok(Posted::Retry {
                    problem: format!("{status}: {}", error_message(&body)),
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

enum Verdict {
    Answer,
    Unauthorized,
    Retry,
    Fail,
}

/// The `Date` of Stripe's answer, in Unix seconds.
fn response_date(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    chrono::DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|date| date.timestamp())
}

/// The second a fetched state is ordered at. Our clock may run ahead of Stripe's: then our
/// request's start would rank the read above a change Stripe stamped after it, and the real
/// change would lose as stale. Stripe's `Date` is stamped after its read, within the same or
/// the next second, so one second before it is never later than the read; the earlier of that
/// and our own start is safe whichever clock is off (a state ordered too early only yields to
/// events and converges through them).
pub fn read_no_later_than(local_start: i64, stripe_date: Option<i64>) -> i64 {
    match stripe_date {
        Some(date) => local_start.min(date - 1),
        None => local_start,
    }
}

fn classify(status: StatusCode, headers: &HeaderMap) -> Verdict {
    // Stripe says per answer whether a retry can succeed; it overrides the status code.
    let should_retry = headers
        .get("Stripe-Should-Retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.eq_ignore_ascii_case("true"));
    if status.is_success() || status == StatusCode::NOT_FOUND {
        return Verdict::Answer;
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Verdict::Unauthorized;
    }
    match should_retry {
        Some(true) => Verdict::Retry,
        Some(false) => Verdict::Fail,
        None if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => {
            Verdict::Retry
        }
        None => Verdict::Fail,
    }
}

/// `Retry-After` in seconds, as Stripe sends it (an HTTP date is not used by Stripe; ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// `error.message` of Stripe's error body, or a short note when there is none.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        code: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error }) => match (error.code, error.message) {
            (Some(code), Some(message)) => format!("{message} ({code})"),
            (None, Some(message)) => message,
            (Some(code), None) => code,
            (None, None) => "no message".into(),
        },
        Err(_) => "no Stripe error body".into(),
    }
}

/// reqwest's error, without the URL it repeats (the caller's message names it once).
fn without_url(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_unless_stripe_says_not_to() {
        let none = headers(&[]);
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &none),
            Verdict::Retry
        ));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &none),
            Verdict::Retry
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &none),
            Verdict::Fail
        ));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &none),
            Verdict::Answer
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &none),
            Verdict::Unauthorized
        ));
        let no = headers(&[("stripe-should-retry", "false")]);
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &no),
            Verdict::Fail
        ));
        let yes = headers(&[("stripe-should-retry", "true")]);
        assert!(matches!(
            classify(StatusCode::CONFLICT, &yes),
            Verdict::Retry
        ));
    }

    #[test]
    fn a_fetch_is_ordered_no_later_than_a_second_before_stripes_date() {
        let date = headers(&[("date", "Thu, 26 Nov 2026 07:11:18 GMT")]);
        let stripe = response_date(&date).expect("an HTTP date");
        assert_eq!(stripe, 1_795_677_078);
        // Our clock ahead of Stripe's: Stripe's date decides.
        assert_eq!(read_no_later_than(stripe + 30, Some(stripe)), stripe - 1);
        // Our clock behind: our own start is earlier still.
        assert_eq!(read_no_later_than(stripe - 30, Some(stripe)), stripe - 30);
        assert_eq!(read_no_later_than(stripe, None), stripe);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2026 07:28:00 GMT"
            )])),
            None
        );
        assert_eq!(retry_after(&headers(&[])), None);
    }

    #[test]
    fn stripe_error_bodies_give_their_message_and_code() {
        let body = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_X'"}}"#;
        assert_eq!(
            error_message(body),
            "No such customer: 'cus_X' (resource_missing)"
        );
        assert_eq!(error_message(b"<html>"), "no Stripe error body");
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        crate::tls::install_crypto_provider();
        let settings = StripeApiSettings {
            key: "sk_test_x".to_owned().into(),
            mode: crate::domain::StripeMode::Test,
            base: Url::parse("https://api.stripe.com/").unwrap(),
        };
        let client = StripeClient::new(&settings, RetryPolicy::default()).unwrap();
        for retries in 0..12 {
            let wait = client.backoff(retries);
            let full = Duration::from_millis(500)
                .saturating_mul(1 << retries)
                .min(Duration::from_secs(16));
            assert!(wait >= full / 2 && wait <= full, "{retries}: {wait:?}");
        }
        let url = client
            .url(
                &["v1", "customers"],
                &[("limit", "100"), ("starting_after", "cus_A")],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.stripe.com/v1/customers?limit=100&starting_after=cus_A"
        );
        assert!(!format!("{client:?}").contains("sk_test"));
    }
}
