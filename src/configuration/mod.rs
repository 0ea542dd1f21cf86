//! Every setting, read from the command line or the environment, parsed and validated once.
//!
//! Each value is taken as text and parsed here rather than by clap, so that an error names the
//! environment variable a container operator actually set, and never echoes a secret.
//!
//! One file per group of settings: `serve`'s own ([`Settings`]), its HTTP side, the database,
//! Stripe's API, the sync rules, the profile push, `POST /customers`, logging.

mod customers;
mod database;
mod environment;
mod http;
mod log;
mod organizations;
mod profile_push;
#[cfg(test)]
mod properties;
mod serve;
mod stripe_api;
mod sync;
#[cfg(test)]
mod tests;
mod tiers;

use std::fmt;

use reqwest::Url;

// What `serve` runs on (tests build it with `Settings::from_env`).
pub use customers::CustomerSettings;
pub use database::DatabaseSettings;
pub use http::HttpSettings;
pub use organizations::OrganizationSettings;
pub use profile_push::ProfilePushSettings;
pub use serve::{Settings, WebhookSettings};
pub use stripe_api::StripeApiSettings;
// Arguments that the batch commands' public argument structs flatten.
pub use database::DatabaseArgs;
pub use stripe_api::StripeApiArgs;
pub use sync::SyncArgs;
pub use tiers::{TierArgs, TierSettings};
// The other arguments, and their errors.
pub(crate) use customers::{CustomersArgs, ProfileArgs};
pub(crate) use http::HttpArgs;
pub(crate) use log::LogArgs;
pub(crate) use organizations::OrganizationArgs;
pub(crate) use serve::ServeArgs;

/// One line that names the variable and says what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {problem}")]
pub struct ConfigError {
    pub(crate) variable: &'static str,
    pub(crate) problem: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, problem: impl fmt::Display) -> Self {
        Self {
            variable,
            problem: problem.to_string(),
        }
    }
}

/// `localhost` or a loopback address: the one place plain http is allowed (a local Supabase,
/// a test double).
fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
