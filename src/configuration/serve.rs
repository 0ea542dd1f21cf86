//! The settings of `serve`: its flags and environment variables, validated into [`Settings`].

use std::net::SocketAddr;

use clap::Args;

use super::{
    ConfigError, CustomerSettings, CustomersArgs, DatabaseArgs, DatabaseSettings, HttpArgs,
    HttpSettings, OrganizationArgs, OrganizationSettings, ProfileArgs, ProfilePushSettings,
    StripeApiArgs, StripeApiSettings, SyncArgs,
};
use crate::domain::{LedgerRetention, SignatureTolerance, WebhookSecrets};
use crate::store::pool::ConnectionPolicy;
use crate::sync::SyncSettings;

/// The settings of `serve`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Endpoint signing secret(s) `whsec_…`; several, comma-separated, are all accepted.
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "WHSEC"
    )]
    pub stripe_webhook_secret: Option<String>,

    /// Address to bind.
    #[arg(
        long,
        env = "LISTEN_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen_addr: String,

    /// REQUEST_HEAD_TIMEOUT, REQUEST_BODY_TIMEOUT, METRICS_ADDR.
    #[command(flatten)]
    pub http: HttpArgs,

    /// How far a signature timestamp may be from now, either way, in seconds (0 is refused).
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_TOLERANCE_SECS",
        default_value = "300",
        value_name = "SECS"
    )]
    pub stripe_webhook_tolerance_secs: String,

    /// USER_ID_METADATA_KEY and STRIPE_MODE, as every command that applies the rules has them.
    #[command(flatten)]
    pub sync: SyncArgs,

    /// Connection pool size.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value = "10",
        value_name = "N"
    )]
    pub database_max_connections: String,

    /// Do not apply pending migrations at start-up (they run as a release step: `migrate`).
    #[arg(long, env = "SKIP_MIGRATIONS")]
    pub skip_migrations: bool,

    /// Stripe's API: thin events and the background catch-up need it; without a key both are
    /// off (and `serve` says so).
    #[command(flatten)]
    pub stripe: StripeApiArgs,

    /// How often to run `catch-up` in the background (needs STRIPE_API_KEY): 30s, 15m, 1h, …;
    /// 0 = never. The first run starts a few seconds after start-up.
    #[arg(
        long,
        env = "CATCH_UP_INTERVAL",
        default_value = DEFAULT_CATCH_UP_INTERVAL,
        value_name = "DURATION"
    )]
    pub catch_up_interval: String,

    /// PROFILE_NAME_COLUMN, as `ensure-customer` has it.
    #[command(flatten)]
    pub profile: ProfileArgs,

    /// How long one profile push to Stripe may take before it counts as failed (and is retried
    /// with back-off): 10s, 30s, …
    #[arg(
        long,
        env = "PROFILE_PUSH_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub profile_push_timeout: String,

    /// The longest wait between two attempts at a profile push that Stripe rate-limited or
    /// failed: the back-off doubles from 1 s up to this.
    #[arg(
        long,
        env = "PROFILE_PUSH_MAX_BACKOFF",
        default_value = "10m",
        value_name = "DURATION"
    )]
    pub profile_push_max_backoff: String,

    /// The least time between two pushes of one user's profile to Stripe: a burst of edits
    /// becomes one push per interval, the latest values always last (1s, 5s, …).
    #[arg(
        long,
        env = "PROFILE_PUSH_MIN_INTERVAL",
        default_value = "1s",
        value_name = "DURATION"
    )]
    pub profile_push_min_interval: String,

    /// `POST /customers`: token verification and CORS.
    #[command(flatten)]
    pub customers: CustomersArgs,

    /// Organization billing: the application's tables, the roles that may create.
    #[command(flatten)]
    pub organizations: OrganizationArgs,

    /// How long the ledger keeps an event: 90d, 2160h, … (at least 31d: catch-up reaches 30
    /// days back), or `off` to keep every event. Failed events and recorded deletions stay.
    #[arg(
        long,
        env = "LEDGER_RETENTION",
        default_value = crate::domain::ledger_retention::DEFAULT,
        value_name = "DURATION"
    )]
    pub ledger_retention: String,
}

/// Well inside Stripe's retry window (3 days live, hours in test mode), so a delivery that
/// fails for good is applied within minutes of Stripe giving up, at one list request per run
/// when nothing was missed.
const DEFAULT_CATCH_UP_INTERVAL: &str = "15m";

/// The validated settings of the webhook consumer.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub webhook: WebhookSettings,
    pub listen_addr: SocketAddr,
    /// Request deadlines and the metrics' address.
    pub http: HttpSettings,
    pub sync: SyncSettings,
    /// `None`: no STRIPE_API_KEY; thin events are answered 503 `not_configured`, no catch-up.
    pub stripe_api: Option<StripeApiSettings>,
    /// How often the background catch-up runs; `None`: never (`0`, or no API key).
    pub catch_up_interval: Option<std::time::Duration>,
    /// The profile push (runs only with `stripe_api`).
    pub profile_push: ProfilePushSettings,
    /// `POST /customers`; on when `stripe_api` is set and tokens can be verified.
    pub customers: CustomerSettings,
    /// How long the ledger keeps an event.
    pub ledger_retention: LedgerRetention,
    /// Organization billing's tables and roles (on where the tables exist).
    pub organizations: OrganizationSettings,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub secrets: WebhookSecrets,
    pub tolerance: SignatureTolerance,
}

impl Settings {
    /// `DATABASE_POOL_MODE` and the statement timeout: the policy of every connection `serve`
    /// opens, held once, where the sync rules read it.
    pub fn connection(&self) -> ConnectionPolicy {
        self.sync.connection
    }

    /// Why `POST /customers` is off, or `None` when it is on.
    pub(crate) fn customers_endpoint_off(&self) -> Option<&'static str> {
        match (self.stripe_api.is_some(), self.customers.verifies_tokens()) {
            (true, true) => None,
            (false, false) => {
                Some("STRIPE_API_KEY and SUPABASE_JWT_SECRET/SUPABASE_JWKS_URL are not set")
            }
            (false, true) => Some("STRIPE_API_KEY is not set"),
            (true, false) => Some("neither SUPABASE_JWT_SECRET nor SUPABASE_JWKS_URL is set"),
        }
    }
}

impl Settings {
    pub(crate) fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let secrets = args
            .stripe_webhook_secret
            .as_deref()
            .ok_or_else(|| {
                ConfigError::new(
                    "STRIPE_WEBHOOK_SECRET",
                    "required (the endpoint's whsec_… signing secret)",
                )
            })
            .and_then(|raw| {
                WebhookSecrets::parse(raw).map_err(|e| ConfigError::new("STRIPE_WEBHOOK_SECRET", e))
            })?;
        let tolerance_secs: i64 =
            args.stripe_webhook_tolerance_secs
                .trim()
                .parse()
                .map_err(|_| {
                    ConfigError::new(
                        "STRIPE_WEBHOOK_TOLERANCE_SECS",
                        "must be a whole number of seconds",
                    )
                })?;
        let tolerance = SignatureTolerance::parse(tolerance_secs)
            .map_err(|e| ConfigError::new("STRIPE_WEBHOOK_TOLERANCE_SECS", e))?;
        let listen_addr = args.listen_addr.trim().parse().map_err(|_| {
            ConfigError::new(
                "LISTEN_ADDR",
                "must be an address and port such as 127.0.0.1:8080",
            )
        })?;
        let database = DatabaseSettings::from_args(
            &args.database,
            &args.database_max_connections,
            !args.skip_migrations,
        )?;
        let stripe_api = StripeApiSettings::optional(&args.stripe)?;
        let mut sync = match &stripe_api {
            Some(api) => args.sync.settings(api)?,
            None => args.sync.settings_without_api()?,
        };
        // The one connection policy of the serving path: the sync rules run their statements on
        // it, and `startup` builds every pool of `serve` with it ([`Settings::connection`]).
        sync.connection = args.database.connection_policy()?;
        // An organization's tier is written to the configured organizations table.
        sync.tiers.organizations =
            OrganizationSettings::from_args(&args.organizations)?.organizations;
        let catch_up_interval = crate::domain::parse_duration(&args.catch_up_interval)
            .map_err(|e| ConfigError::new("CATCH_UP_INTERVAL", e))?;
        let profile_push = ProfilePushSettings::from_args(args)?;
        let ledger_retention = LedgerRetention::parse(&args.ledger_retention)
            .map_err(|e| ConfigError::new("LEDGER_RETENTION", e))?;
        Ok(Self {
            database,
            webhook: WebhookSettings { secrets, tolerance },
            listen_addr,
            http: HttpSettings::from_args(&args.http)?,
            sync,
            catch_up_interval: (stripe_api.is_some() && !catch_up_interval.is_zero())
                .then_some(catch_up_interval),
            stripe_api,
            customers: CustomerSettings::from_args(&args.customers)?,
            profile_push,
            ledger_retention,
            organizations: OrganizationSettings::from_args(&args.organizations)?,
        })
    }
}
