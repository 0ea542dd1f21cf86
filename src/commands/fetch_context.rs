//! What `backfill`, `verify`, `catch-up` and `ensure-customer` share: settings checked first (a
//! bad key fails before any database starts), then the database, its pool and the Stripe
//! client.

use super::CliError;
use super::database::{Database, LocalUse};
use crate::configuration::{DatabaseArgs, StripeApiArgs, StripeApiSettings, SyncArgs};
use crate::store::pool;
use crate::stripe_api::preflight::{self, Preflight};
use crate::stripe_api::{RetryPolicy, StripeClient};
use crate::sync::SyncSettings;

pub(super) struct FetchContext {
    pub(super) database: Database,
    pub(super) pool: sqlx::PgPool,
    pub(super) client: StripeClient,
    pub(super) api: StripeApiSettings,
    pub(super) sync: SyncSettings,
}

impl FetchContext {
    pub(super) async fn open(
        database: &DatabaseArgs,
        stripe: &StripeApiArgs,
        sync: &SyncArgs,
        connections: u32,
    ) -> Result<Self, CliError> {
        let api = StripeApiSettings::from_args(stripe)?;
        let sync = sync.settings(&api)?;
        let client = StripeClient::new(&api, RetryPolicy::default())
            .map_err(|e| CliError::failed("Stripe client", e))?;
        check_stripe(&client).await?;
        let database = Database::from_args(database, LocalUse::Command).await?;
        let pool = match pool::command_pool(database.options.clone(), connections).await {
            Ok(pool) => pool,
            Err(error) => {
                database.close();
                return Err(CliError::database(format!(
                    "cannot connect to the database: {error}"
                )));
            }
        };
        Ok(Self {
            database,
            pool,
            client,
            api,
            sync,
        })
    }

    pub(super) async fn close(self) {
        self.pool.close().await;
        self.database.close();
    }
}

/// Refuses to run on an answer that is not Stripe's (an unknown URL, a refused key, another
/// mode), before any database starts; an unreachable Stripe only warns: the command's own
/// requests will retry, and say so if they fail.
pub(super) async fn check_stripe(client: &StripeClient) -> Result<(), CliError> {
    match preflight::check(client).await {
        Ok(Preflight::Answered) => Ok(()),
        Ok(Preflight::Unreachable(why)) => {
            tracing::warn!("Stripe's API did not answer the start-up check: {why}");
            Ok(())
        }
        Err(error) => Err(CliError::failed(
            "Stripe's API refused the start-up check",
            error,
        )),
    }
}
