//! `backfill`'s main: the shared context, then [`crate::backfill::run`].

use std::process::ExitCode;

use super::CliError;
use super::fetch_context::FetchContext;
use crate::backfill::{self, BackfillArgs, BackfillOptions};
use crate::domain::StripeMode;

pub(crate) async fn backfill(args: BackfillArgs) -> Result<ExitCode, CliError> {
    let context = FetchContext::open(&args.database, &args.stripe, &args.sync, 4).await?;
    let options = BackfillOptions {
        dry_run: args.dry_run,
        livemode: context.api.mode == StripeMode::Live,
        checkpoint: args.checkpoint.clone(),
        restart: args.restart,
        target: backfill::target_of(&context.api, &context.database.options),
        progress: true,
    };
    let result = backfill::run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let summary = result.map_err(|e| CliError::failed("backfill", e))?;
    Ok(backfill::print(&summary, args.json))
}
