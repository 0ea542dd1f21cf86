//! What every handler shares, built once by `startup`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::metrics::Metrics;
use crate::stripe::signature::SignatureVerifier;
use crate::stripe_api::StripeClient;
use crate::sync::SyncSettings;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub verifier: SignatureVerifier,
    /// The webhooks' pool: nothing else draws from it (docs/design.md "Capacity").
    pub pool: PgPool,
    /// `/readyz`'s own connection.
    pub health_pool: PgPool,
    pub sync: SyncSettings,
    pub metrics: Arc<Metrics>,
    /// Stripe's API for thin events (retries bounded by the webhook's deadline); `None`
    /// without STRIPE_API_KEY.
    pub stripe_api: Option<StripeClient>,
    /// `REQUEST_BODY_TIMEOUT`: a body must be in within this once its head is.
    pub body_timeout: Duration,
}
