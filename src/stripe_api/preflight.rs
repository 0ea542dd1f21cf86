//! One cheap authenticated request before a process relies on Stripe's API: a list of one
//! customer. A wrong `STRIPE_API_BASE` (a proxy, a path ending in `/v1`), an invalid key or a key
//! of another mode than its answers is found here, in one line that names the fix, rather than
//! by what a misread answer would do later.

use std::time::Duration;

use super::customers;
use super::list;
use super::{ApiError, RetryPolicy, StripeClient};

/// What the check found, when it did not find the configuration wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Preflight {
    /// Stripe's API answered as documented, for this key.
    Answered,
    /// No answer (refused connection, time-out, 5xx, 429): nothing is known of the
    /// configuration. Webhooks need no API, so `serve` starts all the same.
    Unreachable(String),
}

/// Short: a process starting should not wait a minute on an unreachable Stripe.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_retries: 1,
        initial_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_millis(500),
        max_retry_after: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(5),
    }
}

/// `GET /v1/customers?limit=1`, read as a list of customers of the key's mode. `Err`: the
/// answer was not Stripe's, or refused the key: the caller refuses to start.
pub(crate) async fn check(client: &StripeClient) -> Result<Preflight, ApiError> {
    let client = client.with_retry(quick());
    let answer = client
        .get(client.url(&["v1", "customers"], &[("limit", "1")])?)
        .await;
    match answer {
        Ok(answer) => {
            let livemode = client.key_livemode();
            list::items(&answer, |item| customers::decode(item.json, livemode))?;
            Ok(Preflight::Answered)
        }
        Err(error @ ApiError::Exhausted { .. }) => Ok(Preflight::Unreachable(error.to_string())),
        Err(error) => Err(error),
    }
}
