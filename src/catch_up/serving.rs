//! What `serve`'s background catch-up runs on: its Stripe client, its own connections, and the
//! interval; built from the settings by [`crate::startup`].

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::worker::Context;
use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::store::pool::{self, ConnectionPolicy, PoolMode};
use crate::stripe_api::{RetryPolicy, StripeClient};
use crate::sync::SyncSettings;

/// The background catch-up's context and interval; `None` without STRIPE_API_KEY, with
/// `CATCH_UP_INTERVAL=0`, or without a session connection (see [`database`]).
pub(crate) fn context(
    settings: &Settings,
    pool: &PgPool,
    metrics: &Arc<Metrics>,
) -> std::io::Result<Option<(Context, Duration)>> {
    let (Some(api), Some(interval)) = (&settings.stripe_api, settings.catch_up_interval) else {
        return Ok(None);
    };
    let client = StripeClient::new(api, RetryPolicy::default()).map_err(std::io::Error::other)?;
    Ok(database(settings, pool).map(|(pool, sync)| {
        let context = Context {
            pool,
            client,
            settings: sync,
            metrics: metrics.clone(),
        };
        (context, interval)
    }))
}

/// A catch-up run holds one transaction open for its whole run (its lock) and reads and
/// writes with prepared statements: it needs connections that keep their session, and gets a
/// small pool of its own beside the webhooks' (never theirs). Behind a
/// transaction pooler it gets a small pool of its own on `MIGRATION_DATABASE_URL`, the session
/// connection; without one, it is off (and says so).
fn database(settings: &Settings, pool: &PgPool) -> Option<(PgPool, SyncSettings)> {
    /// One applies events, one renews the run's lease and reads the ledger meanwhile.
    const CATCH_UP_CONNECTIONS: u32 = 2;
    let serving = settings.connection();
    if serving.mode.keeps_sessions() {
        // Its own connections: a long run never takes the webhooks'.
        let own = pool::pool_beside(pool, CATCH_UP_CONNECTIONS, serving);
        return Some((own, settings.sync.clone()));
    }
    let Some(options) = settings.database.migration_connect_options.clone() else {
        tracing::warn!(
            "DATABASE_POOL_MODE=transaction and no MIGRATION_DATABASE_URL: the background \
             catch-up is off, as it needs a session connection; set MIGRATION_DATABASE_URL to the \
             direct or session-pooler string"
        );
        return None;
    };
    let session = ConnectionPolicy {
        mode: PoolMode::Session,
        ..serving
    };
    let sync = SyncSettings {
        connection: session,
        ..settings.sync.clone()
    };
    Some((
        pool::serving_pool(options, CATCH_UP_CONNECTIONS, session),
        sync,
    ))
}
