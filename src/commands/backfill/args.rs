//! `backfill`'s command line, and the options a run takes.

use std::path::PathBuf;

use crate::configuration::{DatabaseArgs, OrganizationArgs, StripeApiArgs, SyncArgs};

/// Where the checkpoint lives unless `--checkpoint` says otherwise: beside the local database,
/// in the working directory.
pub(super) const DEFAULT_CHECKPOINT: &str = ".stripe-customer-sync/backfill-checkpoint.json";

#[derive(clap::Args, Debug)]
pub(crate) struct BackfillArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Where an organization's tier is written (the subscriptions listed after the customers).
    #[command(flatten)]
    pub(crate) organizations: OrganizationArgs,
    /// Decide and report what would change; write nothing (no checkpoint either).
    #[arg(long)]
    pub dry_run: bool,
    /// The file that keeps the run's progress, so that a rerun continues where it stopped.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// Discard an existing checkpoint and start again from the newest customer.
    #[arg(long)]
    pub restart: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct BackfillOptions {
    pub dry_run: bool,
    /// The mode of the API key the customers are read with.
    pub livemode: bool,
    pub checkpoint: PathBuf,
    pub restart: bool,
    /// Names the Stripe account and the database a checkpoint belongs to ([`super::target_of`]):
    /// a checkpoint of another target is refused rather than continued.
    pub target: String,
    /// Draw a progress bar (on a terminal only).
    pub progress: bool,
}
