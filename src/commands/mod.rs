//! Every command's main, thin: its settings from its arguments, its database, the work, the
//! outcome. [`crate::cli`] parses the command line and dispatches here. Those that change the
//! table do so through the one apply loop ([`crate::sync::apply`]): `backfill` and
//! `verify --fix` as fetched states, `reapply-failed` and `catch-up` as the events they were,
//! `ensure-customer` as a customer created for a user; `serve` hands webhooks to it.
//! (`catch-up`'s run lives with its background worker in [`crate::catch_up`].)

pub mod backfill;
pub mod ensure_customer;
pub mod reapply;
pub mod replay;
pub mod verify;

mod catch_up;
mod database;
mod fetch_context;
mod healthcheck;
mod migrate;
mod serve;

pub(crate) use catch_up::catch_up;
pub(crate) use healthcheck::{HealthcheckArgs, healthcheck};
pub(crate) use migrate::{MigrateArgs, migrate};
pub(crate) use serve::serve;

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
