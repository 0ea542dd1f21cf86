//! Which of Stripe's answers to a creation are refusals (permanent for the values sent), and
//! how a Stripe error is told in logs and errors: its status, type, code, param and request id,
//! never its message (which can quote the customer's email).

use std::fmt;
use std::time::Duration;

use crate::store::customer_creations::{RefusedStep, StoredRefusal};
use crate::stripe_api::ApiError;

/// A refusal read from Stripe's answer: its status and what it said, minus the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub step: RefusedStep,
    pub status: u16,
    pub kind: Option<String>,
    pub code: Option<String>,
    /// How long until a call with the same values is made again.
    pub retry_in: Duration,
}

impl Refused {
    pub(crate) fn from_stored(stored: &StoredRefusal, backoff: Duration) -> Self {
        Self {
            step: stored.refusal.step,
            status: stored.refusal.status,
            kind: stored.refusal.kind.clone(),
            code: stored.refusal.code.clone(),
            retry_in: backoff.saturating_sub(stored.age),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match self.step {
            RefusedStep::Create => "the creation of this user's customer",
            RefusedStep::Search => "the look-up of this user's customer",
        };
        write!(f, "Stripe refused {call} ({}", self.status)?;
        if let Some(code) = self.code.as_deref().or(self.kind.as_deref()) {
            write!(f, " {code}")?;
        }
        write!(
            f,
            "); no new attempt until the user's email or name changes, or for {} s",
            self.retry_in.as_secs().max(1)
        )
    }
}

/// A 4xx other than 429 (rate limit) and 409 (a request with the same idempotency key still
/// running): Stripe answers the same request the same way until something changes. 401/403:
/// the key, the operator's to fix, and no reason to call again meanwhile either.
pub(crate) fn refusal_of(error: &ApiError) -> Option<(u16, Option<String>, Option<String>)> {
    match error {
        ApiError::Rejected { status, fields, .. }
            if (400..500).contains(status) && *status != 429 && *status != 409 =>
        {
            Some((*status, fields.kind.clone(), fields.code.clone()))
        }
        ApiError::Unauthorized { status, .. } => Some((*status, None, None)),
        // Not a path of Stripe's API (a base ending in /v1): the same request fails the same
        // way until the configuration changes.
        ApiError::UnknownUrl { .. } => Some((404, Some("invalid_request_error".into()), None)),
        _ => None,
    }
}

/// The error, as logs and errors may tell it: Stripe's type, code, param and request id, not
/// its message.
pub(crate) fn describe(error: &ApiError) -> String {
    match error {
        ApiError::Rejected {
            status,
            url,
            fields,
            ..
        } => {
            let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
            format!(
                "Stripe answered {status} to {url} (type {}, code {}, param {}, request id {})",
                or_none(&fields.kind),
                or_none(&fields.code),
                or_none(&fields.param),
                or_none(&fields.request_id),
            )
        }
        ApiError::Exhausted { url, attempts, .. } => {
            format!("{url} failed {attempts} times (rate limited, server errors or no answer)")
        }
        // These carry no text of Stripe's about a customer (an unknown URL's message names
        // the path, a refused key's the key's masked prefix).
        ApiError::Unauthorized { .. }
        | ApiError::UnknownUrl { .. }
        | ApiError::Malformed { .. }
        | ApiError::Request(_) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe_api::ErrorFields;

    fn rejected(status: u16) -> ApiError {
        ApiError::Rejected {
            status,
            url: "POST https://api.stripe.com/v1/customers".into(),
            message: "Invalid email address: ada@example.com".into(),
            fields: Box::new(ErrorFields {
                kind: Some("invalid_request_error".into()),
                code: Some("email_invalid".into()),
                param: Some("email".into()),
                request_id: Some("req_1".into()),
            }),
        }
    }

    #[test]
    fn a_4xx_is_a_refusal_but_a_rate_limit_or_a_concurrent_key_is_not() {
        assert_eq!(
            refusal_of(&rejected(400)),
            Some((
                400,
                Some("invalid_request_error".into()),
                Some("email_invalid".into())
            ))
        );
        assert!(refusal_of(&rejected(404)).is_some());
        assert!(
            refusal_of(&ApiError::Unauthorized {
                status: 401,
                detail: "Stripe refused STRIPE_API_KEY (401)".into(),
            })
            .is_some()
        );
        assert_eq!(refusal_of(&rejected(429)), None);
        assert_eq!(refusal_of(&rejected(409)), None);
        let exhausted = ApiError::Exhausted {
            url: "u".into(),
            attempts: 4,
            last: "500".into(),
        };
        assert_eq!(refusal_of(&exhausted), None);
    }

    #[test]
    fn the_description_names_type_code_param_and_request_id_and_never_the_message() {
        let text = describe(&rejected(400));
        assert!(text.contains("invalid_request_error"), "{text}");
        assert!(
            text.contains("email_invalid") && text.contains("param email"),
            "{text}"
        );
        assert!(text.contains("req_1"), "{text}");
        assert!(!text.contains("ada@example.com"), "{text}");
        let exhausted = ApiError::Exhausted {
            url: "POST u".into(),
            attempts: 4,
            last: "500: ada@example.com is odd".into(),
        };
        assert!(!describe(&exhausted).contains("ada@"));
    }
}
