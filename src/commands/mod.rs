//! Every command's main, thin: its settings from its arguments, its database, the work, the
//! outcome. [`crate::cli`] parses the command line and dispatches here. Those that change the
//! table do so through the one apply loop (`crate::sync`): `backfill` and
//! `verify --fix` as fetched states, `reapply-failed` and `catch-up` as the events they were,
//! `ensure-customer` as a customer created for a user; `serve` hands webhooks to it.
//! (`catch-up`'s run lives with its background worker in [`crate::catch_up`].)
//!
//! Every command has one shape: a module with its clap arguments (`serve`'s are the settings
//! themselves, [`crate::configuration::ServeArgs`]) and `command(args) -> Result<ExitCode,
//! CliError>`.

pub(crate) mod backfill;
pub(crate) mod catch_up;
pub(crate) mod ensure_customer;
pub(crate) mod healthcheck;
pub(crate) mod migrate;
pub(crate) mod reapply;
pub(crate) mod replay;
pub(crate) mod serve;
pub(crate) mod verify;

mod database;
mod fetch_context;

use crate::configuration;

/// Failures that end a command: one line on stderr (and, for a command asked for `--json`,
/// one JSON object on stdout) and an exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Config(#[from] configuration::ConfigError),
    /// The database could not be reached, or the local one could not start.
    #[error("{0}")]
    Database(String),
    #[error("{0}")]
    Failed(String),
}

/// A bad setting or argument: the process exits 2, as for clap's own usage errors.
pub(crate) const EXIT_CONFIGURATION: u8 = 2;

impl CliError {
    pub(crate) fn failed(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Failed(format!("{context}: {error}"))
    }

    pub(crate) fn database(message: impl Into<String>) -> Self {
        Self::Database(message.into())
    }

    /// What a script matches on, in `{"error": {"code": …}}`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "invalid_configuration",
            Self::Database(_) => "database_unavailable",
            Self::Failed(_) => "failed",
        }
    }

    pub(crate) fn exit_code(&self) -> std::process::ExitCode {
        match self {
            Self::Config(_) => std::process::ExitCode::from(EXIT_CONFIGURATION),
            Self::Database(_) | Self::Failed(_) => std::process::ExitCode::FAILURE,
        }
    }

    /// `{"error": {"code": …, "message": …}}` (and the `variable` of a bad setting): what a
    /// `--json` command prints on stdout when it fails, so a script never reads an empty
    /// stdout.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let Self::Config(config) = self {
            error["variable"] = config.variable.into();
        }
        serde_json::json!({ "error": error })
    }
}
