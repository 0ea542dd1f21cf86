//! `backfill`: bring every existing Stripe customer into `public.stripe_customers` through
//! the same sync rules as a webhook event.
//!
//! It pages through `GET /v1/customers` (`limit=100`, `starting_after`), newest first, and
//! applies each page through the one apply loop in two statements (`sync::fetched`). Each
//! customer's order is the start of the request that fetched it, so a backfilled row never
//! overwrites a newer webhook and an older webhook never overwrites a backfilled row. The next
//! page is fetched while earlier ones are written (two at a time, `pipeline::WRITERS`), so a run
//! is bounded by the slower of Stripe and the database, not by their sum.
//!
//! Resumable: after each committed page a checkpoint file records the cursor and the running
//! totals; a rerun continues after the last committed page. A page committed but not yet
//! checkpointed when the process died is applied again and counts as `unchanged` the second
//! time: the rows are right, only that page's counts move. A completed run removes the file.
//!
//! Customers created after the run started sort before its cursor and are not listed: they come
//! in through webhooks, so the webhook endpoint must be live before a backfill starts.
//!
//! By purpose: [`args`] (the command line), [`pipeline`] (the run), [`checkpoint`] (resuming),
//! [`report`] (the summary).

use crate::commands::CliError;
use crate::commands::fetch_context::FetchContext;
use crate::domain::StripeMode;
use std::process::ExitCode;

mod args;
mod checkpoint;
mod pipeline;
mod report;
mod subscriptions;

use std::path::PathBuf;

pub(crate) use args::{BackfillArgs, BackfillOptions};
pub(crate) use checkpoint::target_of;
pub(crate) use pipeline::run;
pub(crate) use report::{Summary, Totals, print};

use crate::stripe_api::ApiError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BackfillError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("applying customers: {0}")]
    Sync(#[from] SyncError),
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
}

/// The command's main: `backfill`'s main: the shared context, then [`crate::commands::backfill::run`].
pub(crate) async fn command(args: BackfillArgs) -> Result<ExitCode, CliError> {
    let organizations = crate::configuration::OrganizationSettings::from_args(&args.organizations)?;
    let mut context = FetchContext::open(&args.database, &args.stripe, &args.sync, 4).await?;
    context.sync.tiers.organizations = organizations.organizations;
    let options = BackfillOptions {
        dry_run: args.dry_run,
        livemode: context.api.mode == StripeMode::Live,
        checkpoint: args.checkpoint.clone(),
        restart: args.restart,
        target: target_of(&context.api, &context.database.options),
        progress: true,
    };
    let result = run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let summary = result.map_err(|e| CliError::failed("backfill", e))?;
    Ok(print(&summary, args.json))
}
