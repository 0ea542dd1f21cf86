//! `LOG_FORMAT`, which every command shares.

use clap::Args;

use super::ConfigError;
use crate::telemetry::LogFormat;

/// Settings every command shares.
#[derive(Args, Debug, Clone)]
pub(crate) struct LogArgs {
    /// `pretty` or `json` [default: pretty on a terminal, else json]
    #[arg(long, env = "LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl LogArgs {
    pub(crate) fn format(&self) -> Result<LogFormat, ConfigError> {
        match self.log_format.as_deref().map(str::trim) {
            None | Some("") => Ok(LogFormat::for_terminal()),
            Some(raw) => raw.parse().map_err(|e| ConfigError::new("LOG_FORMAT", e)),
        }
    }
}
