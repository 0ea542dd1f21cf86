//! Each command's main: its settings from its arguments, its database, the work, the
//! outcome. [`crate::cli`] parses the command line and dispatches here; the work itself is
//! done by the modules these call.

mod backfill;
mod catch_up;
mod database;
mod ensure_customer;
mod fetch_context;
mod healthcheck;
mod migrate;
mod reapply;
mod serve;
mod verify;

pub(crate) use backfill::backfill;
pub(crate) use catch_up::catch_up;
pub(crate) use ensure_customer::ensure_customer;
pub(crate) use healthcheck::{HealthcheckArgs, healthcheck};
pub(crate) use migrate::{MigrateArgs, migrate};
pub(crate) use reapply::reapply;
pub(crate) use serve::serve;
pub(crate) use verify::verify;

use crate::configuration;

/// Failures that end a command: one line on stderr and an exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Config(#[from] configuration::ConfigError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub(crate) fn failed(context: &str, error: impl std::fmt::Display) -> Self {
        Self::Failed(format!("{context}: {error}"))
    }
}
