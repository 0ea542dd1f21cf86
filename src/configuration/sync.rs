//! The sync rules' settings: `USER_ID_METADATA_KEY` and `STRIPE_MODE`, declared once for
//! `serve` and every command that applies the rules.

use clap::Args;

use super::{ConfigError, StripeApiSettings};
use crate::domain::StripeMode;
use crate::store::pool::ConnectionPolicy;
use crate::sync::SyncSettings;

/// The sync rules' settings, for `serve` and every command that applies them.
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
    /// [default: the mode of STRIPE_API_KEY, else both]
    #[arg(long, env = "STRIPE_MODE", value_name = "MODE")]
    pub stripe_mode: Option<String>,

    #[command(flatten)]
    pub tiers: super::TierArgs,
}

impl SyncArgs {
    /// The settings for a command that reads Stripe with `api`'s key: the key's mode must be
    /// one the deployment keeps.
    pub(crate) fn settings(&self, api: &StripeApiSettings) -> Result<SyncSettings, ConfigError> {
        let settings = sync_settings(self, Some(api.mode))?;
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

    /// The settings for a command that reads no customers from Stripe (`reapply-failed`).
    pub(crate) fn settings_without_api(&self) -> Result<SyncSettings, ConfigError> {
        sync_settings(self, None)
    }
}

/// The user-id key and the mode. `STRIPE_MODE` defaults to the API key's mode: a deployment
/// that reads Stripe with a live key keeps live data only. Without a key nothing says which
/// mode the endpoint receives (Stripe's dashboard endpoint, `stripe listen`, replayed fixtures),
/// so both are kept, as before modes existed, and `serve` warns that production should say.
fn sync_settings(
    args: &SyncArgs,
    api_key_mode: Option<StripeMode>,
) -> Result<SyncSettings, ConfigError> {
    let key = args.user_id_metadata_key.trim();
    if key.is_empty() {
        return Err(ConfigError::new(
            "USER_ID_METADATA_KEY",
            "must not be empty",
        ));
    }
    let mode = match args.stripe_mode.as_deref().map(str::trim) {
        None | Some("") => api_key_mode.unwrap_or(StripeMode::Both),
        Some(raw) => StripeMode::parse(raw).map_err(|e| ConfigError::new("STRIPE_MODE", e))?,
    };
    Ok(SyncSettings {
        user_id_metadata_key: key.to_owned(),
        mode,
        tiers: super::TierSettings::from_args(&args.tiers)?,
        // The batch commands that apply the rules work on a session connection.
        connection: ConnectionPolicy::default(),
    })
}
