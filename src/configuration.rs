//! Every setting, read from the command line or the environment, parsed and validated once.
//!
//! Each value is taken as text and parsed here rather than by clap, so that an error names the
//! environment variable a container operator actually set, and never echoes a secret.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use reqwest::Url;
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;

pub mod customers;

pub use customers::{CustomerSettings, CustomersArgs, ProfileArgs};

use crate::domain::{ColumnName, SignatureTolerance, StripeMode, WebhookSecrets};
use crate::store::pool::{self, ConnectionPolicy, PoolMode};
use crate::sync::SyncSettings;
use crate::telemetry::LogFormat;

/// One line that names the variable and says what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, problem: impl fmt::Display) -> Self {
        Self {
            variable,
            problem: problem.to_string(),
        }
    }
}

/// Where the database is.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL connection string. Without it, `serve` runs a local database of its own.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Never fall back to the local database: a missing DATABASE_URL is an error (containers).
    #[arg(long, env = "REQUIRE_DATABASE_URL")]
    pub require_database_url: bool,

    /// How DATABASE_URL's server connections are shared: `session` (direct connection, session
    /// pooler) or `transaction` (Supavisor on port 6543, PgBouncer pool_mode = transaction).
    #[arg(
        long,
        env = "DATABASE_POOL_MODE",
        default_value = "session",
        value_name = "MODE"
    )]
    pub database_pool_mode: String,

    /// A direct or session-pooler connection string for the work that needs a session:
    /// migrations (`serve`, `migrate`) and the batch commands. Default: DATABASE_URL, which
    /// must then be one (DATABASE_POOL_MODE=session).
    #[arg(
        long,
        env = "MIGRATION_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub migration_database_url: Option<String>,
}

impl Default for DatabaseArgs {
    fn default() -> Self {
        Self {
            database_url: None,
            require_database_url: false,
            database_pool_mode: PoolMode::default().to_string(),
            migration_database_url: None,
        }
    }
}

impl DatabaseArgs {
    /// `DATABASE_POOL_MODE`.
    pub fn pool_mode(&self) -> Result<PoolMode, ConfigError> {
        self.database_pool_mode
            .parse()
            .map_err(|e| ConfigError::new("DATABASE_POOL_MODE", e))
    }

    /// The connection for work that needs a session of its own (sqlx's migrator holds a session
    /// advisory lock; the batch commands keep prepared statements): `MIGRATION_DATABASE_URL`
    /// when set, else `DATABASE_URL` unless that goes through a transaction pooler. `None`:
    /// the local database.
    pub fn session_database_url(&self) -> Result<Option<PgConnectOptions>, ConfigError> {
        const VARIABLE: &str = "MIGRATION_DATABASE_URL";
        let database = database_url(self)?;
        match self.migration_database_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => {
                if database.is_none() {
                    return Err(ConfigError::new(
                        VARIABLE,
                        "is set but DATABASE_URL is not; set both, or neither for the local database",
                    ));
                }
                pool::connect_options(url)
                    .map(Some)
                    .map_err(|e| ConfigError::new(VARIABLE, format!("not a PostgreSQL URL ({e})")))
            }
            _ if database.is_some() && self.pool_mode()? == PoolMode::Transaction => {
                Err(ConfigError::new(
                    VARIABLE,
                    "required with DATABASE_POOL_MODE=transaction: migrations and batch commands \
                     need a direct or session-pooler connection (or run `migrate` against one \
                     and start `serve --skip-migrations`)",
                ))
            }
            _ => Ok(database),
        }
    }

    fn has_migration_database_url(&self) -> bool {
        self.migration_database_url
            .as_deref()
            .is_some_and(|url| !url.trim().is_empty())
    }

    /// The raw text of the URL [`Self::session_database_url`] chose (for tools that take a
    /// URL, e.g. pg_dump). May hold a password: never log it.
    pub fn session_database_url_text(&self) -> &str {
        match self.migration_database_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url,
            _ => self.database_url.as_deref().unwrap_or_default().trim(),
        }
    }
}

/// The settings of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
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

    /// How far a signature timestamp may be from now, either way, in seconds (0 is refused).
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_TOLERANCE_SECS",
        default_value = "300",
        value_name = "SECS"
    )]
    pub stripe_webhook_tolerance_secs: String,

    /// Stripe customer metadata key that carries the Supabase user id.
    #[arg(
        long,
        env = "USER_ID_METADATA_KEY",
        default_value = "user_id",
        value_name = "KEY"
    )]
    pub user_id_metadata_key: String,

    /// Which Stripe mode(s) to keep: live, test or both; events of another mode are ignored
    /// [default: the mode of STRIPE_API_KEY, else both]
    #[arg(long, env = "STRIPE_MODE", value_name = "MODE")]
    pub stripe_mode: Option<String>,

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

    /// Column of public.profiles whose value is pushed to Stripe as the customer's name.
    #[arg(
        long,
        env = "PROFILE_NAME_COLUMN",
        default_value = "full_name",
        value_name = "COLUMN"
    )]
    pub profile_name_column: String,

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

    /// `POST /customers`: token verification and CORS.
    #[command(flatten)]
    pub customers: CustomersArgs,
}

/// Well inside Stripe's retry window (3 days live, hours in test mode), so a delivery that
/// fails for good is applied within minutes of Stripe giving up, at one list request per run
/// when nothing was missed.
pub const DEFAULT_CATCH_UP_INTERVAL: &str = "15m";

/// Settings every command shares.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// `pretty` or `json` [default: pretty on a terminal, else json]
    #[arg(long, env = "LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// Stripe's API, for what reads customers or events from it (`backfill`, `verify`,
/// `catch-up`, and in `serve` thin events and the background catch-up).
#[derive(Args, Clone)]
pub struct StripeApiArgs {
    /// Secret (`sk_…`) or restricted (`rk_…`) key with read access to customers. Prefer the
    /// environment variable: a flag is visible in the process list.
    #[arg(
        long,
        env = "STRIPE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub stripe_api_key: Option<String>,

    /// Stripe API base URL (tests point it at a local double).
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = DEFAULT_STRIPE_API_BASE,
        value_name = "URL"
    )]
    pub stripe_api_base: String,
}

impl fmt::Debug for StripeApiArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApiArgs")
            .field(
                "stripe_api_key",
                &self.stripe_api_key.as_ref().map(|_| "[redacted]"),
            )
            .field("stripe_api_base", &self.stripe_api_base)
            .finish()
    }
}

pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";

/// The sync rules' settings, for the commands other than `serve` that apply them.
#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// Stripe customer metadata key that carries the Supabase user id.
    #[arg(
        long,
        env = "USER_ID_METADATA_KEY",
        default_value = "user_id",
        value_name = "KEY"
    )]
    pub user_id_metadata_key: String,

    /// Which Stripe mode(s) the deployment keeps: live, test or both
    /// [default: the mode of STRIPE_API_KEY]
    #[arg(long, env = "STRIPE_MODE", value_name = "MODE")]
    pub stripe_mode: Option<String>,
}

impl SyncArgs {
    /// The settings for a command that reads Stripe with `api`'s key: the key's mode must be
    /// one the deployment keeps.
    pub fn settings(&self, api: &StripeApiSettings) -> Result<SyncSettings, ConfigError> {
        let settings = sync_settings(
            &self.user_id_metadata_key,
            self.stripe_mode.as_deref(),
            Some(api.mode),
        )?;
        if !settings.mode.keeps(api.mode == StripeMode::Live) {
            return Err(ConfigError::new(
                "STRIPE_MODE",
                format!(
                    "is {}, which does not keep the {}-mode data STRIPE_API_KEY reads",
                    settings.mode, api.mode
                ),
            ));
        }
        Ok(settings)
    }
}

impl SyncArgs {
    /// The settings for a command that reads no customers from Stripe (`reapply-failed`).
    pub fn settings_without_api(&self) -> Result<SyncSettings, ConfigError> {
        sync_settings(
            &self.user_id_metadata_key,
            self.stripe_mode.as_deref(),
            None,
        )
    }
}

/// The user-id key and the mode. `STRIPE_MODE` defaults to the API key's mode: a deployment
/// that reads Stripe with a live key keeps live data only. Without a key nothing says which
/// mode the endpoint receives (Stripe's dashboard endpoint, `stripe listen`, replayed fixtures),
/// so both are kept, as before modes existed, and `serve` warns that production should say.
fn sync_settings(
    user_id_metadata_key: &str,
    stripe_mode: Option<&str>,
    api_key_mode: Option<StripeMode>,
) -> Result<SyncSettings, ConfigError> {
    let key = user_id_metadata_key.trim();
    if key.is_empty() {
        return Err(ConfigError::new(
            "USER_ID_METADATA_KEY",
            "must not be empty",
        ));
    }
    let mode = match stripe_mode.map(str::trim) {
        None | Some("") => api_key_mode.unwrap_or(StripeMode::Both),
        Some(raw) => StripeMode::parse(raw).map_err(|e| ConfigError::new("STRIPE_MODE", e))?,
    };
    Ok(SyncSettings {
        user_id_metadata_key: key.to_owned(),
        mode,
        // The batch commands that apply the rules work on a session connection.
        connection: ConnectionPolicy::default(),
    })
}

/// Validated access to Stripe's API. The key is a [`SecretString`]: it never shows in Debug.
#[derive(Clone)]
pub struct StripeApiSettings {
    pub key: SecretString,
    /// The key's mode: what it reads is live or test data.
    pub mode: StripeMode,
    /// Ends with `/`, so that `v1/customers` joins onto it.
    pub base: Url,
}

impl fmt::Debug for StripeApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApiSettings")
            .field("key", &"[redacted]")
            .field("base", &self.base.as_str())
            .finish()
    }
}

impl StripeApiSettings {
    pub fn from_args(args: &StripeApiArgs) -> Result<Self, ConfigError> {
        let (key, mode) = stripe_api_key(args.stripe_api_key.as_deref())?;
        Ok(Self {
            key,
            mode,
            base: stripe_api_base(&args.stripe_api_base)?,
        })
    }

    /// For `serve`, where the key is optional: `None` without one (STRIPE_API_BASE is still
    /// checked, so a typo shows before the key is added).
    pub fn optional(args: &StripeApiArgs) -> Result<Option<Self>, ConfigError> {
        match args.stripe_api_key.as_deref().map(str::trim) {
            None | Some("") => stripe_api_base(&args.stripe_api_base).map(|_| None),
            Some(_) => Self::from_args(args).map(Some),
        }
    }
}

/// Accepts secret and restricted keys only; no error repeats the key, or any part of it.
fn stripe_api_key(raw: Option<&str>) -> Result<(SecretString, StripeMode), ConfigError> {
    const VARIABLE: &str = "STRIPE_API_KEY";
    let key = raw.map(str::trim).unwrap_or_default();
    if key.is_empty() {
        return Err(ConfigError::new(
            VARIABLE,
            "required: a secret (sk_…) or restricted (rk_…) key with read access to customers",
        ));
    }
    if key.starts_with("pk_") {
        return Err(ConfigError::new(
            VARIABLE,
            "is a publishable key (pk_…), which cannot read customers; use a secret (sk_…) or \
             restricted (rk_…) key",
        ));
    }
    if !(key.starts_with("sk_") || key.starts_with("rk_")) {
        return Err(ConfigError::new(
            VARIABLE,
            "must be a secret (sk_…) or restricted (rk_…) key",
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ConfigError::new(
            VARIABLE,
            "holds characters a Stripe key never has",
        ));
    }
    let mode = StripeMode::of_api_key(key).ok_or_else(|| {
        ConfigError::new(
            VARIABLE,
            "must be a live (sk_live_…, rk_live_…) or test (sk_test_…, rk_test_…) key",
        )
    })?;
    Ok((SecretString::from(key.to_owned()), mode))
}

/// https, or plain http to this machine only (a test double): the key travels in a header.
fn stripe_api_base(raw: &str) -> Result<Url, ConfigError> {
    const VARIABLE: &str = "STRIPE_API_BASE";
    let mut url = Url::parse(raw.trim()).map_err(|_| {
        ConfigError::new(
            VARIABLE,
            "must be an absolute URL such as https://api.stripe.com",
        )
    })?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(ConfigError::new(
                VARIABLE,
                "must use https (plain http only to localhost): the API key would travel in clear",
            ));
        }
        _ => {
            return Err(ConfigError::new(
                VARIABLE,
                "must be an http(s) URL such as https://api.stripe.com",
            ));
        }
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            VARIABLE,
            "must be a base URL without query or fragment, such as https://api.stripe.com",
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The validated settings of the webhook consumer.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub webhook: WebhookSettings,
    pub listen_addr: SocketAddr,
    pub sync: SyncSettings,
    /// `None`: no STRIPE_API_KEY; thin events are answered 503 `not_configured`, no catch-up.
    pub stripe_api: Option<StripeApiSettings>,
    /// How often the background catch-up runs; `None`: never (`0`, or no API key).
    pub catch_up_interval: Option<std::time::Duration>,
    /// The profile push (runs only with `stripe_api`).
    pub profile_push: ProfilePushSettings,
    /// `POST /customers`; on when `stripe_api` is set and tokens can be verified.
    pub customers: CustomerSettings,
}

/// How `serve` pushes profile changes to Stripe (DESIGN.md "Profile changes reach Stripe").
#[derive(Debug, Clone)]
pub struct ProfilePushSettings {
    /// `PROFILE_NAME_COLUMN`: the column of `public.profiles` pushed as the customer's name.
    pub name_column: ColumnName,
    /// One push's time limit (`PROFILE_PUSH_TIMEOUT`).
    pub timeout: Duration,
    /// The back-off's cap (`PROFILE_PUSH_MAX_BACKOFF`).
    pub max_backoff: Duration,
    /// Wake on the triggers' NOTIFY (a LISTEN session). Off where the connection cannot keep a
    /// session (a transaction-mode pooler): then the sweep runs every second instead.
    pub listen: bool,
}

impl Default for ProfilePushSettings {
    fn default() -> Self {
        Self {
            name_column: ColumnName::parse("full_name").expect("a valid column name"),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
            listen: true,
        }
    }
}

impl Settings {
    /// Why `POST /customers` is off, or `None` when it is on.
    pub fn customers_endpoint_off(&self) -> Option<&'static str> {
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

#[derive(Clone)]
pub struct DatabaseSettings {
    /// `None`: run the local database.
    pub connect_options: Option<PgConnectOptions>,
    pub max_connections: u32,
    /// Where migrations run: `MIGRATION_DATABASE_URL` (or `DATABASE_URL` in session mode);
    /// `None` for the local database, or when this command does not migrate.
    pub migration_connect_options: Option<PgConnectOptions>,
    /// `DATABASE_POOL_MODE` and the statement timeout of the serving path.
    pub connection: ConnectionPolicy,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PgConnectOptions' own Debug prints the password.
        f.debug_struct("DatabaseSettings")
            .field("url", &self.connect_options.as_ref().map(|_| "[redacted]"))
            .field("max_connections", &self.max_connections)
            .field(
                "migration_url",
                &self
                    .migration_connect_options
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field("connection", &self.connection)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub secrets: WebhookSecrets,
    pub tolerance: SignatureTolerance,
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
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
        let mut sync = sync_settings(
            &args.user_id_metadata_key,
            args.stripe_mode.as_deref(),
            stripe_api.as_ref().map(|api| api.mode),
        )?;
        sync.connection = database.connection;
        if let Some(api) = &stripe_api
            && !sync.mode.keeps(api.mode == StripeMode::Live)
        {
            return Err(ConfigError::new(
                "STRIPE_MODE",
                format!(
                    "is {}, which does not keep the {}-mode data STRIPE_API_KEY reads",
                    sync.mode, api.mode
                ),
            ));
        }
        let catch_up_interval = crate::domain::parse_duration(&args.catch_up_interval)
            .map_err(|e| ConfigError::new("CATCH_UP_INTERVAL", e))?;
        let profile_push = ProfilePushSettings::from_args(args)?;
        Ok(Self {
            database,
            webhook: WebhookSettings { secrets, tolerance },
            listen_addr,
            sync,
            catch_up_interval: (stripe_api.is_some() && !catch_up_interval.is_zero())
                .then_some(catch_up_interval),
            stripe_api,
            customers: CustomerSettings::from_args(&args.customers)?,
            profile_push,
        })
    }
}

impl ProfilePushSettings {
    fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let name_column = ColumnName::parse(&args.profile_name_column)
            .map_err(|e| ConfigError::new("PROFILE_NAME_COLUMN", e))?;
        let positive = |variable: &'static str, raw: &str| match crate::domain::parse_duration(raw)
        {
            Ok(duration) if !duration.is_zero() => Ok(duration),
            Ok(_) => Err(ConfigError::new(variable, "must be above 0")),
            Err(e) => Err(ConfigError::new(variable, e)),
        };
        Ok(Self {
            name_column,
            timeout: positive("PROFILE_PUSH_TIMEOUT", &args.profile_push_timeout)?,
            max_backoff: positive("PROFILE_PUSH_MAX_BACKOFF", &args.profile_push_max_backoff)?,
            listen: true,
        })
    }
}

impl DatabaseSettings {
    /// `migrate`: whether the command applies migrations (and so needs a session connection).
    pub fn from_args(
        args: &DatabaseArgs,
        max_connections: &str,
        migrate: bool,
    ) -> Result<Self, ConfigError> {
        let max_connections = match max_connections.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(ConfigError::new(
                    "DATABASE_MAX_CONNECTIONS",
                    "must be a whole number above 0",
                ));
            }
        };
        Ok(Self {
            connect_options: database_url(args)?,
            max_connections,
            migration_connect_options: if migrate || args.has_migration_database_url() {
                args.session_database_url()?
            } else {
                // Migrations run elsewhere (a release step): a transaction pooler alone will do.
                None
            },
            connection: ConnectionPolicy {
                mode: args.pool_mode()?,
                ..ConnectionPolicy::default()
            },
        })
    }
}

/// Parses `DATABASE_URL` when given (an empty value counts as not given).
pub fn database_url(args: &DatabaseArgs) -> Result<Option<PgConnectOptions>, ConfigError> {
    match args.database_url.as_deref().map(str::trim) {
        None | Some("") if args.require_database_url => Err(ConfigError::new(
            "DATABASE_URL",
            "required (REQUIRE_DATABASE_URL is set, so there is no local database fallback)",
        )),
        None | Some("") => Ok(None),
        Some(url) => pool::connect_options(url)
            .map(Some)
            .map_err(|e| ConfigError::new("DATABASE_URL", format!("not a PostgreSQL URL ({e})"))),
    }
}

impl LogArgs {
    pub fn format(&self) -> Result<LogFormat, ConfigError> {
        match self.log_format.as_deref().map(str::trim) {
            None | Some("") => Ok(LogFormat::for_terminal()),
            Some(raw) => raw.parse().map_err(|e| ConfigError::new("LOG_FORMAT", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).unwrap();
        Settings::from_args(&cli.serve)
    }

    const SECRET: &str = "--stripe-webhook-secret=whsec_test_abc";

    #[test]
    fn defaults_follow_the_design() {
        let settings = parse(&[SECRET]).unwrap();
        assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.webhook.tolerance.as_secs(), 300);
        assert_eq!(settings.sync.user_id_metadata_key, "user_id");
        assert_eq!(settings.database.max_connections, 10);
        assert!(settings.database.connect_options.is_none());
        assert_eq!(settings.database.connection, ConnectionPolicy::default());
        assert_eq!(settings.database.connection.mode, PoolMode::Session);
        assert!(settings.stripe_api.is_none());
        assert_eq!(settings.catch_up_interval, None, "no key, no catch-up");
        assert_eq!(settings.profile_push.name_column.as_str(), "full_name");
        assert_eq!(settings.profile_push.timeout.as_secs(), 10);
        assert_eq!(settings.profile_push.max_backoff.as_secs(), 600);
        assert!(settings.profile_push.listen);
    }

    #[test]
    fn transaction_mode_migrates_over_the_migration_url_and_serves_in_transaction_mode() {
        let settings = parse(&[
            SECRET,
            "--database-url=postgres://u:pw@pooler.example:6543/postgres",
            "--database-pool-mode=transaction",
            "--migration-database-url=postgres://u:pw@pooler.example:5432/postgres",
        ])
        .unwrap();
        assert_eq!(settings.database.connection.mode, PoolMode::Transaction);
        assert_eq!(settings.sync.connection, settings.database.connection);
        let migration = settings
            .database
            .migration_connect_options
            .as_ref()
            .unwrap();
        assert_eq!(migration.get_port(), 5432);
        assert!(!format!("{settings:?}").contains("pw"), "{settings:?}");
    }

    #[test]
    fn transaction_mode_without_migrations_needs_no_migration_url() {
        let settings = parse(&[
            SECRET,
            "--skip-migrations",
            "--database-url=postgres://u@pooler.example:6543/postgres",
            "--database-pool-mode=transaction",
        ])
        .unwrap();
        assert_eq!(settings.database.connection.mode, PoolMode::Transaction);
        assert!(settings.database.migration_connect_options.is_none());
    }

    #[test]
    fn session_mode_migrates_over_the_database_url() {
        let settings = parse(&[
            SECRET,
            "--database-url=postgres://u@db.example:5432/postgres",
        ])
        .unwrap();
        let migration = settings
            .database
            .migration_connect_options
            .as_ref()
            .unwrap();
        assert_eq!(migration.get_host(), "db.example");
    }

    #[test]
    fn catch_up_runs_every_15_minutes_with_a_key_unless_the_interval_is_zero() {
        let key = "--stripe-api-key=sk_test_abc";
        let settings = parse(&[SECRET, key]).unwrap();
        assert!(settings.stripe_api.is_some());
        assert_eq!(
            settings.catch_up_interval,
            Some(std::time::Duration::from_secs(900))
        );
        let settings = parse(&[SECRET, key, "--catch-up-interval=30s"]).unwrap();
        assert_eq!(
            settings.catch_up_interval,
            Some(std::time::Duration::from_secs(30))
        );
        let settings = parse(&[SECRET, key, "--catch-up-interval=0"]).unwrap();
        assert_eq!(settings.catch_up_interval, None);
        assert!(settings.stripe_api.is_some(), "thin events still work");
    }

    #[test]
    fn a_deployment_keeps_its_api_keys_mode_unless_told_and_both_without_a_key() {
        let keyless = parse(&[SECRET]).unwrap();
        assert_eq!(keyless.sync.mode, StripeMode::Both);
        let live_key = "--stripe-api-key=sk_live_abc";
        assert_eq!(
            parse(&[SECRET, live_key]).unwrap().sync.mode,
            StripeMode::Live
        );
        let told = parse(&[SECRET, "--stripe-mode=test"]).unwrap();
        assert_eq!(told.sync.mode, StripeMode::Test);
        let mismatch = parse(&[SECRET, live_key, "--stripe-mode=test"]).unwrap_err();
        assert_eq!(mismatch.variable, "STRIPE_MODE");
        let error = parse(&[SECRET, "--stripe-mode=production"]).unwrap_err();
        assert_eq!(error.variable, "STRIPE_MODE");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "STRIPE_WEBHOOK_SECRET"),
            (
                &["--stripe-webhook-secret=sk_live_nope"],
                "STRIPE_WEBHOOK_SECRET",
            ),
            (
                &[SECRET, "--stripe-webhook-tolerance-secs=0"],
                "STRIPE_WEBHOOK_TOLERANCE_SECS",
            ),
            (
                &[SECRET, "--stripe-webhook-tolerance-secs=ten"],
                "STRIPE_WEBHOOK_TOLERANCE_SECS",
            ),
            (&[SECRET, "--listen-addr=localhost"], "LISTEN_ADDR"),
            (
                &[SECRET, "--database-max-connections=-1"],
                "DATABASE_MAX_CONNECTIONS",
            ),
            (&[SECRET, "--database-url=mysql://nope"], "DATABASE_URL"),
            (&[SECRET, "--require-database-url"], "DATABASE_URL"),
            (
                &[SECRET, "--database-pool-mode=statement"],
                "DATABASE_POOL_MODE",
            ),
            (
                &[
                    SECRET,
                    "--skip-migrations",
                    "--database-url=postgres://u@db/postgres",
                    "--migration-database-url=postgres://u:pw@[bad",
                ],
                "MIGRATION_DATABASE_URL",
            ),
            (
                &[
                    SECRET,
                    "--database-url=postgres://u@pooler:6543/postgres",
                    "--database-pool-mode=transaction",
                ],
                "MIGRATION_DATABASE_URL",
            ),
            (
                &[
                    SECRET,
                    "--migration-database-url=postgres://u@db:5432/postgres",
                ],
                "MIGRATION_DATABASE_URL",
            ),
            (
                &[
                    SECRET,
                    "--database-url=postgres://u@db/postgres",
                    "--migration-database-url=mysql://x",
                ],
                "MIGRATION_DATABASE_URL",
            ),
            (&[SECRET, "--catch-up-interval=15"], "CATCH_UP_INTERVAL"),
            (&[SECRET, "--catch-up-interval=soon"], "CATCH_UP_INTERVAL"),
            (&[SECRET, "--stripe-api-key=pk_test_x"], "STRIPE_API_KEY"),
            (&[SECRET, "--stripe-api-base=ftp://x"], "STRIPE_API_BASE"),
            (
                &[SECRET, "--profile-name-column=name; drop table x"],
                "PROFILE_NAME_COLUMN",
            ),
            (
                &[SECRET, "--profile-name-column=Name"],
                "PROFILE_NAME_COLUMN",
            ),
            (
                &[SECRET, "--profile-push-timeout=0"],
                "PROFILE_PUSH_TIMEOUT",
            ),
            (
                &[SECRET, "--profile-push-max-backoff=1"],
                "PROFILE_PUSH_MAX_BACKOFF",
            ),
        ];
        for (args, variable) in cases {
            let error = parse(args).unwrap_err();
            assert_eq!(error.variable, *variable, "{args:?}");
        }
    }

    #[derive(Parser)]
    struct ApiCli {
        #[command(flatten)]
        api: StripeApiArgs,
    }

    fn parse_api(args: &[&str]) -> Result<StripeApiSettings, ConfigError> {
        let cli = ApiCli::try_parse_from(std::iter::once("backfill").chain(args.iter().copied()))
            .unwrap();
        StripeApiSettings::from_args(&cli.api)
    }

    #[test]
    fn stripe_api_takes_secret_and_restricted_keys_and_defaults_to_stripe() {
        for key in ["sk_test_4eC39HqLyjWDarjtT1zdp7dc", "rk_live_51Habc"] {
            let settings = parse_api(&[&format!("--stripe-api-key={key}")]).unwrap();
            assert_eq!(settings.base.as_str(), "https://api.stripe.com/");
        }
        let settings = parse_api(&[
            "--stripe-api-key=sk_test_x",
            "--stripe-api-base=http://127.0.0.1:9/v",
        ])
        .unwrap();
        assert_eq!(settings.base.as_str(), "http://127.0.0.1:9/v/");
    }

    #[test]
    fn each_bad_stripe_api_value_names_its_variable_and_never_echoes_the_key() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "STRIPE_API_KEY"),
            (&["--stripe-api-key= "], "STRIPE_API_KEY"),
            (&["--stripe-api-key=pk_live_Secret123"], "STRIPE_API_KEY"),
            (&["--stripe-api-key=whsec_Secret123"], "STRIPE_API_KEY"),
            (&["--stripe-api-key=sk_live_Secret 123"], "STRIPE_API_KEY"),
            (
                &[
                    "--stripe-api-key=sk_test_x",
                    "--stripe-api-base=api.stripe.com",
                ],
                "STRIPE_API_BASE",
            ),
            (
                &[
                    "--stripe-api-key=sk_test_x",
                    "--stripe-api-base=http://api.stripe.com",
                ],
                "STRIPE_API_BASE",
            ),
            (
                &[
                    "--stripe-api-key=sk_test_x",
                    "--stripe-api-base=ftp://localhost",
                ],
                "STRIPE_API_BASE",
            ),
        ];
        for (args, variable) in cases {
            let error = parse_api(args).unwrap_err();
            assert_eq!(error.variable, *variable, "{args:?}");
            assert!(!error.to_string().contains("Secret"), "{error}");
        }
        let settings = parse_api(&["--stripe-api-key=sk_live_Secret123"]).unwrap();
        assert!(!format!("{settings:?}").contains("Secret"));
    }

    #[test]
    fn errors_never_repeat_a_secret() {
        let error = parse(&["--stripe-webhook-secret=whsec_ok,whsec_has space"]).unwrap_err();
        assert!(!error.to_string().contains("has space"), "{error}");
        let error = parse(&[SECRET, "--database-url=postgres://u:hunter2@[bad/db"]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = parse(&[
            SECRET,
            "--database-url=postgres://u@db/postgres",
            "--migration-database-url=postgres://u:hunter2@[bad/db",
        ])
        .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
