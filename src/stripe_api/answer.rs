//! What a request to Stripe comes back as, and how Stripe's answers are read: which are
//! answers, which are worth a retry (and after how long), what an error says.

use std::time::Duration;

use reqwest::StatusCode;

use super::ErrorFields;
use reqwest::header::{HeaderMap, RETRY_AFTER};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 401 or 403: the key is not valid, or (a restricted key) lacks a permission. `detail`
    /// names the permission and quotes Stripe's message, which speaks of the key, never of a
    /// customer.
    #[error("{detail}")]
    Unauthorized { status: u16, detail: String },
    /// A 4xx other than 401, 403, 404 and 429: Stripe refused the request as sent. `message` is
    /// what may be logged of Stripe's error (type, code, param, request id): Stripe's own
    /// message can quote customer data (an email), so it is not kept here.
    #[error("Stripe refused {url} ({status}: {message})")]
    Rejected {
        status: u16,
        url: String,
        message: String,
        /// What logs may say of the error (never Stripe's message); boxed, so that every
        /// `Result` carrying an ApiError stays small.
        fields: Box<ErrorFields>,
    },
    #[error("{url} failed {attempts} times, giving up; the last time: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    /// A 404 without `resource_missing`: the path is not one of Stripe's API (Stripe answers
    /// "Unrecognized request URL"; a proxy, its own page). `says`: Stripe's message, which names
    /// the path, never a customer.
    #[error(
        "{url} is not a path of Stripe's API (404; Stripe says: {says}): is STRIPE_API_BASE \
         Stripe's API (https://api.stripe.com, without /v1)?"
    )]
    UnknownUrl { url: String, says: String },
    /// Not an answer Stripe's API gives: a proxy's HTML, a cut-off or non-JSON body, an object
    /// of another type, another id than asked, another mode than the key's. A configuration
    /// error: nothing is concluded from it.
    #[error(
        "the answer to {url} is not what Stripe's API documents ({detail}): is STRIPE_API_BASE \
         Stripe's API (https://api.stripe.com, without /v1) and STRIPE_API_KEY a key of this \
         account and mode?"
    )]
    Malformed { url: String, detail: String },
    #[error("cannot build a request: {0}")]
    Request(String),
}

/// Stripe's error answer: what logs may say of it, and its message (which can quote the
/// customer's email: for errors about the key and the URL, or stored, never logged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StripeError {
    pub fields: ErrorFields,
    pub message: Option<String>,
}

impl StripeError {
    /// Reads Stripe's error body; `None` when the body is not one (HTML, nothing, other JSON).
    pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Body {
            error: Detail,
        }
        #[derive(serde::Deserialize)]
        struct Detail {
            #[serde(default)]
            message: Option<String>,
        }
        let Body { error } = serde_json::from_slice(body).ok()?;
        Some(Self {
            fields: ErrorFields::read(headers, body),
            message: error.message,
        })
    }

    pub(crate) fn is_resource_missing(&self) -> bool {
        self.fields.code.as_deref() == Some(RESOURCE_MISSING)
    }
}

/// The code of Stripe's 404 for an id this key's account and mode do not know.
pub(super) const RESOURCE_MISSING: &str = "resource_missing";

/// A 2xx answer, or a 404 `resource_missing`, and when the request that got it started.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// `None`: 404 with `resource_missing`: this key's account and mode do not know the id.
    /// Not a deletion (Stripe answers a deleted customer 200 `"deleted": true`), and never
    /// an unknown URL (that is [`ApiError::Malformed`]).
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
pub(crate) enum Posted {
    /// 2xx: applied (or replayed: Stripe answers a known idempotency key with its first answer).
    Done(Vec<u8>),
    /// 429, 5xx, or no answer: try again later (`Retry-After` when Stripe said).
    Retry {
        problem: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx (a 404 only with `resource_missing`): the same request fails again.
    /// `message` is Stripe's (it may quote the customer's data: store it, do not log it);
    /// `error` is the rest of Stripe's error, which may be logged.
    Rejected {
        status: u16,
        message: String,
        error: StripeError,
    },
}

pub(super) enum Verdict {
    Answer,
    Unauthorized,
    Retry,
    Fail,
}

/// The `Date` of Stripe's answer, in Unix seconds.
pub(super) fn response_date(headers: &HeaderMap) -> Option<i64> {
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
pub(super) fn read_no_later_than(local_start: i64, stripe_date: Option<i64>) -> i64 {
    match stripe_date {
        Some(date) => local_start.min(date - 1),
        None => local_start,
    }
}

pub(super) fn classify(status: StatusCode, headers: &HeaderMap) -> Verdict {
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
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// `error.message` of Stripe's error body (with its code), or a short note when there is none.
/// It may quote customer data: for errors kept out of logs, or about the key and URL.
pub(super) fn error_message(body: &[u8]) -> String {
    match StripeError::read(&HeaderMap::new(), body) {
        Some(error) => match (error.fields.code, error.message) {
            (Some(code), Some(message)) => format!("{message} ({code})"),
            (None, Some(message)) => message,
            (Some(code), None) => code,
            (None, None) => "no message".into(),
        },
        None => "no Stripe error body".into(),
    }
}

/// reqwest's error, without the URL it repeats (the caller's message names it once).
pub(super) fn without_url(error: &reqwest::Error) -> String {
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
    use reqwest::header::HeaderValue;

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
}
