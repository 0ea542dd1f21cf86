//! `verify`'s command line, and the options a run takes.

use crate::configuration::{DatabaseArgs, StripeApiArgs, SyncArgs};

#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Apply Stripe's current state to every drifted row, through the sync rules.
    #[arg(long)]
    pub fix: bool,
    /// Let --fix tombstone rows missing in Stripe even when they are more than 10 % of the
    /// rows checked (and more than 5).
    #[arg(long, requires = "fix")]
    pub allow_mass_delete: bool,
    /// Exit 0 even when live rows were left unchecked (no mode recorded, the other mode): the
    /// report still counts them. Without it such a run exits 3, "not verified".
    #[arg(long)]
    pub allow_unchecked: bool,
    /// Requests to Stripe in flight at once. Stripe allows 100 reads/s in live mode and 25 in
    /// test mode; 429s are waited out either way.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct VerifyOptions {
    pub fix: bool,
    /// The mode of the API key: only rows of this mode are compared.
    pub livemode: bool,
    /// Let `--fix` tombstone more than [`super::run::MASS_DELETE_SHARE`] of the rows.
    pub allow_mass_delete: bool,
    pub concurrency: usize,
    pub progress: bool,
}
