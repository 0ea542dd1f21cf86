//! [`Settings`] from a map of environment variables, read exactly as `serve` reads its own (the
//! same clap arguments, defaults and checks): the tests start from the real configuration this
//! way and change only what they need.

use std::collections::BTreeMap;

use clap::{Args, FromArgMatches};

use super::{ConfigError, ServeArgs, Settings};

/// Values that leave a flag (`SKIP_MIGRATIONS`, `REQUIRE_DATABASE_URL`) unset, as clap reads them.
const FALSEY: [&str; 5] = ["", "0", "false", "no", "off"];

impl Settings {
    /// The settings `serve` would run on in an environment of exactly `variables` (the process'
    /// own environment is not read). As in a shell, the last value given for a name wins.
    pub fn from_env<'a>(
        variables: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let variables: BTreeMap<&str, &str> = variables.into_iter().collect();
        let command = ServeArgs::augment_args(clap::Command::new("serve").no_binary_name(true));
        let mut flags = Vec::new();
        for (name, value) in variables {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|env| env == name))
                .ok_or_else(|| {
                    ConfigError::new("environment", format!("{name} is not a setting of serve"))
                })?;
            let long = arg.get_long().expect("every setting has a flag");
            if arg.get_action().takes_values() {
                flags.push(format!("--{long}={value}"));
            } else if !FALSEY.contains(&value.trim().to_ascii_lowercase().as_str()) {
                flags.push(format!("--{long}"));
            }
        }
        // The variables above are the whole environment: none is read from the process'.
        let matches = command
            .mut_args(|arg| arg.env(None::<&'static str>))
            .try_get_matches_from(flags)
            .map_err(|e| ConfigError::new("environment", e.to_string().trim_end()))?;
        let args = ServeArgs::from_arg_matches(&matches)
            .map_err(|e| ConfigError::new("environment", e.to_string().trim_end()))?;
        Self::from_args(&args)
    }
}
