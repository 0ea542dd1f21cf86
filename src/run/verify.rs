//! `verify`'s main: the shared context, then [`crate::verify::run`].

use std::process::ExitCode;

use super::CliError;
use super::fetch_context::FetchContext;
use crate::domain::StripeMode;
use crate::verify::{self, VerifyArgs, VerifyOptions};

pub(crate) async fn verify(args: VerifyArgs) -> Result<ExitCode, CliError> {
    let concurrency = args.concurrency.clamp(1, 64);
    let context = FetchContext::open(
        &args.database,
        &args.stripe,
        &args.sync,
        concurrency as u32 + 1,
    )
    .await?;
    let options = VerifyOptions {
        fix: args.fix,
        livemode: context.api.mode == StripeMode::Live,
        allow_mass_delete: args.allow_mass_delete,
        concurrency,
        progress: true,
    };
    let result = verify::run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let report = result.map_err(|e| CliError::failed("verify", e))?;
    Ok(verify::print(&report, args.json))
}
