//! `stripe-customer-sync catch-up`: its arguments, its main (`--since` checked, the shared
//! context, then [`crate::catch_up::run`]) and what it prints.

use std::process::ExitCode;

use super::CliError;
use super::fetch_context::FetchContext;
use crate::catch_up::{self, CatchUpOptions, Summary};
use crate::configuration::{self, DatabaseArgs, OrganizationArgs, StripeApiArgs, SyncArgs};

#[derive(clap::Args, Debug)]
pub(crate) struct CatchUpArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Where an organization's tier is written.
    #[command(flatten)]
    pub(crate) organizations: OrganizationArgs,
    /// List the events of the last DURATION (30s, 15m, 2h, 3d; at most 30d, all that Stripe
    /// keeps) instead of those since shortly before the last completed run.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// List and count what would be applied; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn command(args: CatchUpArgs) -> Result<ExitCode, CliError> {
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
    Ok(print(&summary, args.json))
}

/// What the command line prints; exit 0 when the run completed.
fn print(summary: &Summary, json: bool) -> ExitCode {
    crate::report::print(summary, json, catch_up::render);
    ExitCode::SUCCESS
}
