//! `serve`: the webhook consumer, on `DATABASE_URL` or the local database, migrated first
//! unless told not to.

use std::process::ExitCode;

use sqlx::postgres::PgConnectOptions;

use super::CliError;
use super::database::{Database, LocalUse};
use super::migrate::prepare_schema;
use crate::configuration::{ServeArgs, Settings};
use crate::startup::{self, Application};
use crate::store::{pool, schema};
use crate::stripe_api::preflight::{self, Preflight};
use crate::stripe_api::{RetryPolicy, StripeClient};

pub(crate) async fn command(args: ServeArgs) -> Result<ExitCode, CliError> {
    let settings = Settings::from_args(&args)?;
    let stripe_api = check_stripe_api(&settings).await?;
    let database =
        Database::open(settings.database.connect_options.clone(), LocalUse::Serve).await?;
    if !args.skip_migrations {
        // Over MIGRATION_DATABASE_URL when set: the migrator needs a session.
        let options = (settings.database.migration_connect_options.clone())
            .unwrap_or_else(|| database.options.clone());
        prepare_schema(&options, database.local.is_some(), &settings.organizations).await?;
    }
    let connection = settings.connection();
    warn_of_a_likely_pool_mode_mismatch(&database.options, connection.mode);
    let pool = startup::serving_pool(&settings, database.options.clone());
    let application = Application::build(&settings, pool.clone())
        .map_err(|e| CliError::failed(&format!("cannot listen on {}", settings.listen_addr), e))?;
    tracing::info!(
        address = %settings.listen_addr,
        port = application.port(),
        secrets = settings.webhook.secrets.len(),
        stripe_mode = %settings.sync.mode,
        database_pool_mode = %connection.mode,
        "listening for Stripe webhooks on POST /webhooks/stripe"
    );
    log_what_is_off(&args, &settings);
    log_organizations(&pool, &settings).await;
    if let StripeApiAtStart::Unreachable = stripe_api {
        application.metrics().stripe_api_unreachable_at_start();
    }
    let served = application.run_until_stopped().await;
    pool.close().await;
    database.close();
    served.map_err(|e| CliError::failed("server", e))?;
    Ok(ExitCode::SUCCESS)
}

/// Says whether organization billing is on: its tables exist and the schema watches them
/// (installed by the start-up migration, or by `migrate` as a release step).
async fn log_organizations(pool: &sqlx::PgPool, settings: &Settings) {
    let tables = &settings.organizations;
    match schema::organizations_on(pool, tables).await {
        Ok(true) => tracing::info!(
            organizations_table = %tables.organizations,
            memberships_table = %tables.memberships,
            "organization billing is on: POST /organizations/{{id}}/customer, members read \
             their organization's customer"
        ),
        Ok(false) => tracing::info!(
            organizations_table = %tables.organizations,
            memberships_table = %tables.memberships,
            "organization billing is off: the tables do not exist (or `migrate` has not run \
             since they were created)"
        ),
        Err(error) => {
            tracing::warn!(error = %error, "could not tell whether organization billing is on")
        }
    }
}

/// What the start-up check of Stripe's API found, when it let `serve` start.
enum StripeApiAtStart {
    NoKey,
    Answered,
    Unreachable,
}

/// With a key, one cheap request to Stripe's API: an answer that is not Stripe's (an unknown
/// URL, an invalid key, another mode) stops start-up with the fix; an unreachable Stripe only
/// warns, since webhooks need no API.
async fn check_stripe_api(settings: &Settings) -> Result<StripeApiAtStart, CliError> {
    let Some(api) = &settings.stripe_api else {
        return Ok(StripeApiAtStart::NoKey);
    };
    let client = StripeClient::new(api, RetryPolicy::default())
        .map_err(|e| CliError::failed("Stripe client", e))?;
    match preflight::check(&client).await {
        Ok(Preflight::Answered) => Ok(StripeApiAtStart::Answered),
        Ok(Preflight::Unreachable(why)) => {
            tracing::warn!(
                "Stripe's API did not answer the start-up check ({why}); starting all the same: \
                 webhooks need no API, and thin events, catch-up, POST /customers and the \
                 profile push retry until it answers"
            );
            Ok(StripeApiAtStart::Unreachable)
        }
        Err(error) => Err(CliError::failed(
            "Stripe's API refused the start-up check",
            error,
        )),
    }
}

/// Says at start-up which optional parts are off, and why.
fn log_what_is_off(args: &ServeArgs, settings: &Settings) {
    if args.sync.stripe_mode.is_none() && settings.stripe_api.is_none() {
        tracing::warn!(
            "STRIPE_MODE is not set and there is no STRIPE_API_KEY to take it from: keeping \
             test-mode and live-mode events alike; set STRIPE_MODE=live in production so that a \
             test-mode customer can never take a real user's link"
        );
    }
    match settings.customers_endpoint_off() {
        None => {
            let issuer = settings.customers.issuer();
            tracing::info!(
                hs256 = settings.customers.jwt_secret.is_some(),
                jwks = settings.customers.jwks_url.is_some(),
                issuer = issuer.as_ref().map(|issuer| issuer.as_str()),
                allowed_origins = settings.customers.allowed_origins.len(),
                "POST /customers is on"
            );
            if issuer.is_none() {
                tracing::warn!(
                    "SUPABASE_URL is not set (nor SUPABASE_JWKS_URL in Supabase's form): the \
                     issuer (iss) of tokens is not checked; set SUPABASE_URL to the project's URL"
                );
            }
        }
        Some(why) => tracing::info!("POST /customers is off (404): {why}"),
    }
    match (&settings.stripe_api, settings.catch_up_interval) {
        (None, _) => tracing::warn!(
            "STRIPE_API_KEY is not set: thin events are answered 503 not_configured, and the \
             background catch-up and the profile push are off (profile changes stay queued)"
        ),
        (Some(_), None) => {
            tracing::info!("CATCH_UP_INTERVAL is 0: the background catch-up is off")
        }
        (Some(_), Some(_)) => {}
    }
}

/// Supabase's transaction pooler listens on 6543: in session mode the service would keep
/// prepared statements there and fail at random once the pooler reshuffles connections.
fn warn_of_a_likely_pool_mode_mismatch(options: &PgConnectOptions, mode: pool::PoolMode) {
    if options.get_port() == SUPAVISOR_TRANSACTION_PORT && mode == pool::PoolMode::Session {
        tracing::warn!(
            "DATABASE_URL uses port 6543, Supabase's transaction pooler, but DATABASE_POOL_MODE \
             is session: unless that pooler was switched to session mode, set \
             DATABASE_POOL_MODE=transaction (and MIGRATION_DATABASE_URL)"
        );
    }
}

const SUPAVISOR_TRANSACTION_PORT: u16 = 6543;
