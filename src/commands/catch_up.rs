//! `catch-up`'s main: `--since` checked, the shared context, then [`crate::catch_up::run`].

use std::process::ExitCode;

use super::CliError;
use super::fetch_context::FetchContext;
use crate::catch_up::{self, CatchUpArgs, CatchUpOptions};
use crate::configuration;

pub(crate) async fn catch_up(args: CatchUpArgs) -> Result<ExitCode, CliError> {
    let since = args
        .since
        .as_deref()
        .map(crate::domain::parse_duration)
        .transpose()
        .map_err(|e| configuration::ConfigError {
            variable: "--since",
            problem: e.to_string(),
        })?;
    // One connection holds the run's lock; one applies events.
    let organizations = configuration::OrganizationSettings::from_args(&args.organizations)?;
    let mut context = FetchContext::open(&args.database, &args.stripe, &args.sync, 3).await?;
    context.sync.tiers.organizations = organizations.organizations;
    let options = CatchUpOptions {
        since,
        dry_run: args.dry_run,
        started_by: crate::store::catch_up::StartedBy::Command,
        progress: true,
    };
    let result = catch_up::run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let summary = result.map_err(|e| CliError::failed("catch-up", e))?;
    Ok(catch_up::print(&summary, args.json))
}
