//! Every setting, read from the command line or the environment, parsed and validated once.
//!
//! Each value is taken as text and parsed here rather than by clap, so that an error names the
//! environment variable a container operator actually set, and never echoes a secret.

use std::fmt;
use std::net::SocketAddr;

use clap::Args;
use sqlx::postgres::PgConnectOptions;

use crate::domain::{SignatureTolerance, WebhookSecrets};
use crate::store::pool;
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
    fn new(variable: &'static str, problem: impl fmt::Display) -> Self {
        Self {
            variable,
            problem: problem.to_string(),
        }
    }
}

/// Where the database is.
#[derive(Args, Debug, Clone, Default)]
pub struct DatabaseArgs {
    /// PostgreSQL connection string. Without it, `serve` runs a local database of its own.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Never fall back to the local database: a missing DATABASE_URL is an error (containers).
    #[arg(long, env = "REQUIRE_DATABASE_URL")]
    pub require_database_url: bool,
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

    /// Connection pool size.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value = "10",
        value_name = "N"
    )]
    pub database_max_connections: String,

    /// Do not apply pending migrations at start-up.
    #[arg(long)]
    pub skip_migrations: bool,
}

/// Settings every command shares.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// `pretty` or `json` [default: pretty on a terminal, else json]
    #[arg(long, env = "LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// The validated settings of the webhook consumer.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub webhook: WebhookSettings,
    pub listen_addr: SocketAddr,
    pub sync: SyncSettings,
}

#[derive(Clone)]
pub struct DatabaseSettings {
    /// `None`: run the local database.
    pub connect_options: Option<PgConnectOptions>,
    pub max_connections: u32,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PgConnectOptions' own Debug prints the password.
        f.debug_struct("DatabaseSettings")
            .field("url", &self.connect_options.as_ref().map(|_| "[redacted]"))
            .field("max_connections", &self.max_connections)
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
        let key = args.user_id_metadata_key.trim();
        if key.is_empty() {
            return Err(ConfigError::new(
                "USER_ID_METADATA_KEY",
                "must not be empty",
            ));
        }
        Ok(Self {
            database: DatabaseSettings::from_args(&args.database, &args.database_max_connections)?,
            webhook: WebhookSettings { secrets, tolerance },
            listen_addr,
            sync: SyncSettings {
                user_id_metadata_key: key.to_owned(),
            },
        })
    }
}

impl DatabaseSettings {
    pub fn from_args(args: &DatabaseArgs, max_connections: &str) -> Result<Self, ConfigError> {
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
        ];
        for (args, variable) in cases {
            let error = parse(args).unwrap_err();
            assert_eq!(error.variable, *variable, "{args:?}");
        }
    }

    #[test]
    fn errors_never_repeat_a_secret() {
        let error = parse(&["--stripe-webhook-secret=whsec_ok,whsec_has space"]).unwrap_err();
        assert!(!error.to_string().contains("has space"), "{error}");
        let error = parse(&[SECRET, "--database-url=postgres://u:hunter2@[bad/db"]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
