//! What a request to Stripe comes back as, and how Stripe's answers are read: which are
//! answers, which are worth a retry (and after how long), what an error says.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

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
        /// What logs may say of the error (never `message`); boxed, so that every `Result`
        /// carrying an ApiError stays small.
        fields: Box<super::ErrorFields>,
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
pub fn read_no_later_than(local_start: i64, stripe_date: Option<i64>) -> i64 {
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

/// `error.message` of Stripe's error body, or a short note when there is none.
pub(super) fn error_message(body: &[u8]) -> String {
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
