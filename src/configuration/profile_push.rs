//! The profile push's settings in `serve`: `PROFILE_NAME_COLUMN`, `PROFILE_PUSH_TIMEOUT`,
//! `PROFILE_PUSH_MAX_BACKOFF`, `PROFILE_PUSH_MIN_INTERVAL`.

use std::time::Duration;

use super::{ConfigError, ServeArgs};
use crate::domain::{ColumnName, TableName};

/// How `serve` pushes profile changes to Stripe (docs/design.md "Profile changes reach Stripe").
#[derive(Debug, Clone)]
pub struct ProfilePushSettings {
    /// `PROFILE_NAME_COLUMN`: the column of `public.profiles` pushed as the customer's name.
    pub name_column: ColumnName,
    /// One push's time limit (`PROFILE_PUSH_TIMEOUT`).
    pub timeout: Duration,
    /// The back-off's cap (`PROFILE_PUSH_MAX_BACKOFF`).
    pub max_backoff: Duration,
    /// The least time between two calls to Stripe for one user (`PROFILE_PUSH_MIN_INTERVAL`):
    /// a burst of edits becomes one push per interval, the latest values last.
    pub min_interval: Duration,
    /// Wake on the triggers' NOTIFY (a LISTEN session). Off where the connection cannot keep a
    /// session (a transaction-mode pooler): then the sweep runs every second instead.
    pub listen: bool,
    /// `ORGANIZATIONS_TABLE`: where an organization's billing email and name are read.
    pub organizations_table: TableName,
}

impl Default for ProfilePushSettings {
    fn default() -> Self {
        Self {
            name_column: ColumnName::parse("full_name").expect("a valid column name"),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
            min_interval: Duration::from_secs(1),
            listen: true,
            organizations_table: TableName::parse("public.organizations")
                .expect("a valid table name"),
        }
    }
}

impl ProfilePushSettings {
    pub(super) fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let name_column = args.profile.column()?;
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
            min_interval: positive("PROFILE_PUSH_MIN_INTERVAL", &args.profile_push_min_interval)?,
            listen: true,
            // `serve` sets it from ORGANIZATIONS_TABLE (`Settings::organizations`).
            organizations_table: Self::default().organizations_table,
        })
    }
}
