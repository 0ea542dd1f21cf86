//! What `serve`'s profile push runs on: its Stripe client, its own connections and its
//! settings; built from the settings by [`crate::startup`].

use std::sync::Arc;

use sqlx::PgPool;

use super::Pusher;
use crate::configuration::{ProfilePushSettings, Settings};
use crate::domain::StripeMode;
use crate::metrics::Metrics;
use crate::store::pool::{self, ConnectionPolicy, PoolMode};
use crate::stripe_api::{RetryPolicy, StripeClient};

/// The push; `None` without STRIPE_API_KEY.
pub(crate) fn pusher(
    settings: &Settings,
    pool: &PgPool,
    metrics: &Arc<Metrics>,
) -> std::io::Result<Option<Pusher>> {
    let Some(api) = &settings.stripe_api else {
        return Ok(None);
    };
    // One attempt per claim, bounded by PROFILE_PUSH_TIMEOUT: the retry schedule lives on
    // the outbox row.
    let retry = RetryPolicy {
        attempt_timeout: settings.profile_push.timeout,
        ..RetryPolicy::default()
    };
    Ok(Some(Pusher {
        pool: database(settings, pool),
        client: StripeClient::new(api, retry).map_err(std::io::Error::other)?,
        settings: push_settings(settings),
        metrics: metrics.clone(),
        key_livemode: api.mode == StripeMode::Live,
        worker_id: format!(
            "serve-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
    }))
}

/// The profile push's own pool (one connection listens, one claims and finishes). Its LISTEN
/// needs a session: behind a transaction pooler it connects to `MIGRATION_DATABASE_URL`, the
/// session connection, when there is one, and otherwise goes through the pooler and sweeps
/// (see [`push_settings`]). The statement timeout as the serving pool's.
fn database(settings: &Settings, pool: &PgPool) -> PgPool {
    const PUSH_CONNECTIONS: u32 = 2;
    let serving = settings.connection();
    match (
        serving.mode,
        settings.database.migration_connect_options.clone(),
    ) {
        (PoolMode::Transaction, Some(session)) => {
            let policy = ConnectionPolicy {
                mode: PoolMode::Session,
                ..serving
            };
            pool::serving_pool(session, PUSH_CONNECTIONS, policy)
        }
        _ => pool::serving_pool((*pool.connect_options()).clone(), PUSH_CONNECTIONS, serving),
    }
}

/// The push LISTENs where its connection keeps a session (the direct connection, a session
/// pooler, or `MIGRATION_DATABASE_URL` behind a transaction pooler); otherwise it relies on its
/// sweep alone, as a notification reaches only the server connection that listened.
fn push_settings(settings: &Settings) -> ProfilePushSettings {
    let session = settings.connection().mode.keeps_sessions()
        || settings.database.migration_connect_options.is_some();
    ProfilePushSettings {
        listen: settings.profile_push.listen && session,
        organizations_table: settings.organizations.organizations.clone(),
        ..settings.profile_push.clone()
    }
}
