//! What every handler shares, built once by `startup`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::store::pool;
use crate::stripe::signature::SignatureVerifier;
use crate::stripe_api::{RetryPolicy, StripeClient};
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

impl AppState {
    /// The webhooks' `pool`, and what the handlers need beside it.
    pub(crate) fn new(
        settings: &Settings,
        pool: PgPool,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let stripe_api = (settings.stripe_api.as_ref())
            .map(|api| StripeClient::new(api, RetryPolicy::within_a_webhook()))
            .transpose()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            verifier: SignatureVerifier::new(&settings.webhook.secrets, settings.webhook.tolerance),
            health_pool: pool::pool_beside(&pool, pool::HEALTH_CONNECTIONS, settings.connection()),
            pool,
            sync: settings.sync.clone(),
            metrics,
            stripe_api,
            body_timeout: settings.http.body_timeout,
        })
    }
}
