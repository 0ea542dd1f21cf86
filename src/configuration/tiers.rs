//! Tiers (docs/design.md "Tiers"): which tiers exist and in what order, where a price names
//! its tier, which subscription statuses grant access, and the profiles column a user's tier
//! is written to.

use clap::Args;

use super::ConfigError;
use crate::domain::{ColumnName, TableName};

#[derive(Args, Debug, Clone)]
pub struct TierArgs {
    /// The tiers, lowest first, comma-separated; the first is an owner's tier without a
    /// subscription that grants access.
    #[arg(
        long,
        env = "TIERS",
        default_value = "free,pro,enterprise",
        value_name = "TIERS"
    )]
    pub tiers: String,

    /// The price metadata key that names a price's tier.
    #[arg(
        long,
        env = "TIER_METADATA_KEY",
        default_value = "tier",
        value_name = "KEY"
    )]
    pub tier_metadata_key: String,

    /// Subscription statuses that grant their prices' tiers, comma-separated.
    #[arg(
        long,
        env = "TIER_ACCESS_STATUSES",
        default_value = "active,trialing,past_due",
        value_name = "STATUSES"
    )]
    pub tier_access_statuses: String,

    /// The column of public.profiles that holds a user's tier [default: none, a user's tier
    /// is not written]
    #[arg(long, env = "PROFILE_TIER_COLUMN", value_name = "COLUMN")]
    pub profile_tier_column: Option<String>,
}

/// The parsed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierSettings {
    /// Lowest first; never empty, no duplicates.
    pub tiers: Vec<String>,
    pub metadata_key: String,
    /// Never empty.
    pub access_statuses: Vec<String>,
    pub profile_column: Option<ColumnName>,
    /// Where an organization's tier goes (`ORGANIZATIONS_TABLE`'s `subscription_tier`).
    pub organizations: TableName,
    /// Products' metadata read so far, and the count of prices without a tier (shared by
    /// every clone of these settings).
    pub products: crate::sync::ProductTiers,
    /// Owners' tiers not computed after a customer's link (shared by every clone).
    pub recompute_failures: crate::sync::TierRecomputeFailures,
}

impl Default for TierSettings {
    fn default() -> Self {
        Self {
            tiers: vec!["free".into(), "pro".into(), "enterprise".into()],
            metadata_key: "tier".into(),
            access_statuses: vec!["active".into(), "trialing".into(), "past_due".into()],
            profile_column: None,
            organizations: TableName::parse("public.organizations").expect("a table name"),
            products: Default::default(),
            recompute_failures: Default::default(),
        }
    }
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

impl TierSettings {
    pub(crate) fn from_args(args: &TierArgs) -> Result<Self, ConfigError> {
        let tiers = list(&args.tiers);
        if tiers.is_empty() {
            return Err(ConfigError::new(
                "TIERS",
                "must name at least one tier (such as free,pro,enterprise)",
            ));
        }
        if let Some(twice) = tiers
            .iter()
            .enumerate()
            .find_map(|(i, tier)| tiers[..i].contains(tier).then_some(tier))
        {
            return Err(ConfigError::new("TIERS", format!("names {twice} twice")));
        }
        let metadata_key = args.tier_metadata_key.trim();
        if metadata_key.is_empty() {
            return Err(ConfigError::new("TIER_METADATA_KEY", "must not be empty"));
        }
        let access_statuses = list(&args.tier_access_statuses);
        if access_statuses.is_empty() {
            return Err(ConfigError::new(
                "TIER_ACCESS_STATUSES",
                "must name at least one status (such as active,trialing,past_due)",
            ));
        }
        let profile_column = match args.profile_tier_column.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(
                ColumnName::parse(raw).map_err(|e| ConfigError::new("PROFILE_TIER_COLUMN", e))?,
            ),
        };
        Ok(Self {
            tiers,
            metadata_key: metadata_key.to_owned(),
            access_statuses,
            profile_column,
            ..Self::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tiers: &str, statuses: &str, column: Option<&str>) -> TierArgs {
        TierArgs {
            tiers: tiers.into(),
            tier_metadata_key: "tier".into(),
            tier_access_statuses: statuses.into(),
            profile_tier_column: column.map(str::to_owned),
        }
    }

    #[test]
    fn the_defaults_parse_to_the_designs_tiers() {
        let parsed = TierSettings::from_args(&args(
            "free,pro,enterprise",
            "active,trialing,past_due",
            None,
        ));
        assert_eq!(parsed.unwrap(), TierSettings::default());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases = [
            (args(" , ", "active", None), "TIERS"),
            (args("free,pro,free", "active", None), "TIERS"),
            (args("free", "", None), "TIER_ACCESS_STATUSES"),
            (
                args("free", "active", Some("Tier;drop")),
                "PROFILE_TIER_COLUMN",
            ),
        ];
        for (args, variable) in cases {
            assert_eq!(
                TierSettings::from_args(&args).unwrap_err().variable,
                variable
            );
        }
    }
}
