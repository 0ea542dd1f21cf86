//! `verify`: compare every live row (every row but tombstones) with the customer Stripe has
//! now, and report the drift; `--fix` applies Stripe's state through the sync rules.
//!
//! Drift is what applying Stripe's state would change, field by field: the sync rules (`crate::sync::fetched_row`) on
//! Stripe's state against the stored row, its decided values compared with the row's (so no
//! rule is written twice: e.g. no email in Stripe is no drift, because the rules keep the
//! stored one). Reported: the customer is missing in Stripe (404) or deleted there, or its
//! email, name, default payment method or metadata user id would change.
//! Requests run with bounded concurrency and back off on Stripe's rate limits (the client).
//!
//! By purpose: [`args`] (the command line), [`run`] (checking and fixing), [`drift`] (what
//! differs), [`report`] (what is printed).

use crate::commands::CliError;
use crate::commands::fetch_context::FetchContext;
use crate::domain::StripeMode;
use std::process::ExitCode;

mod args;
mod drift;
mod report;
mod run;

pub(crate) use args::{VerifyArgs, VerifyOptions};
pub(crate) use drift::{Difference, DriftKind, compare};
pub(crate) use report::{DriftedRow, Report, Unchecked, print};
pub(crate) use run::run;

use crate::store::StoreError;
use crate::stripe_api::ApiError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("reading the table: {0}")]
    Store(#[from] StoreError),
    #[error("applying Stripe's state: {0}")]
    Sync(#[from] SyncError),
}

/// The command's main: `verify`'s main: the shared context, then [`crate::commands::verify::run`].
pub(crate) async fn command(args: VerifyArgs) -> Result<ExitCode, CliError> {
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
    let result = run(&context.pool, &context.client, &context.sync, &options).await;
    context.close().await;
    let report = result.map_err(|e| CliError::failed("verify", e))?;
    Ok(print(&report, args.json, args.allow_unchecked))
}
