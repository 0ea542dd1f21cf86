//! `stripe-customer-sync catch-up`: its arguments and what it prints.

use std::process::ExitCode;

use super::Summary;
use super::summary::render;
use crate::configuration::{DatabaseArgs, OrganizationArgs, StripeApiArgs, SyncArgs};

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

/// What the command line prints; exit 0 when the run completed.
pub(crate) fn print(summary: &Summary, json: bool) -> ExitCode {
    crate::report::print(summary, json, render);
    ExitCode::SUCCESS
}
