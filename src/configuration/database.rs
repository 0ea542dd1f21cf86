//! Where the database is: `DATABASE_URL`, its pool mode, and the session connection that
//! migrations and the batch commands need (`MIGRATION_DATABASE_URL`).

use std::fmt;

use clap::Args;
use sqlx::postgres::PgConnectOptions;

use super::ConfigError;
use crate::store::pool::{self, ConnectionPolicy, PoolMode};

/// Where the database is.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// PostgreSQL connection string. Without it, every command uses the local database under
    /// `.stripe-customer-sync/` in the working directory: the one a running `serve` keeps up,
    /// or one started for the command (created and migrated the first time) and stopped after.
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
    pub(crate) fn pool_mode(&self) -> Result<PoolMode, ConfigError> {
        self.database_pool_mode
            .parse()
            .map_err(|e| ConfigError::new("DATABASE_POOL_MODE", e))
    }

    /// `DATABASE_POOL_MODE` and the statement timeout of the serving path.
    pub(crate) fn connection_policy(&self) -> Result<ConnectionPolicy, ConfigError> {
        Ok(ConnectionPolicy {
            mode: self.pool_mode()?,
            ..ConnectionPolicy::default()
        })
    }

    /// The connection for work that needs a session of its own (sqlx's migrator holds a session
    /// advisory lock; the batch commands keep prepared statements): `MIGRATION_DATABASE_URL`
    /// when set, else `DATABASE_URL` unless that goes through a transaction pooler. `None`:
    /// the local database.
    pub(crate) fn session_database_url(&self) -> Result<Option<PgConnectOptions>, ConfigError> {
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
    pub(crate) fn session_database_url_text(&self) -> &str {
        match self.migration_database_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url,
            _ => self.database_url.as_deref().unwrap_or_default().trim(),
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
            .finish()
    }
}

impl DatabaseSettings {
    /// `migrate`: whether the command applies migrations (and so needs a session connection).
    pub(crate) fn from_args(
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
        })
    }
}

/// Parses `DATABASE_URL` when given (an empty value counts as not given).
fn database_url(args: &DatabaseArgs) -> Result<Option<PgConnectOptions>, ConfigError> {
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
