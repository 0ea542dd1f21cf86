//! How often and how long the client retries a request, and how long one attempt may take.

use std::time::Duration;

/// How often and how long to retry a request that Stripe rate-limited (429), failed (5xx) or
/// that did not get an answer at all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
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
    pub(crate) fn within_a_webhook() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_retry_after: Duration::from_millis(500),
            attempt_timeout: Duration::from_millis(1000),
        }
    }
}
