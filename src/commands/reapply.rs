//! `reapply-failed`: applies again the events the ledger holds as `failed`, once whatever made
//! the database refuse them is fixed (a constraint an operator added, a trigger, a limit).
//! Each goes through the webhook's own apply loop, in a transaction that also removes its
//! `failed` row, so an event is never lost between the two and never applied twice.

use crate::commands::CliError;
use crate::commands::database::{Database, LocalUse};
use crate::store::pool;
use std::process::ExitCode;

use serde::Serialize;
use sqlx::PgPool;

use crate::configuration::{
    DatabaseArgs, OrganizationArgs, OrganizationSettings, StripeApiArgs, StripeApiSettings,
    SyncArgs,
};
use crate::store::StoreError;
use crate::store::ledger::{self, FailedEvent};
use crate::stripe::thin_event;
use crate::stripe_api::{RetryPolicy, StripeClient};
use crate::sync::{self, SyncSettings};

#[derive(clap::Args, Debug)]
pub(crate) struct ReapplyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Where an organization's tier is written.
    #[command(flatten)]
    pub(crate) organizations: OrganizationArgs,
    /// Needed only for failed thin events, whose customer is fetched again.
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    /// Only this event (`evt_…`); default: every failed event, oldest first.
    #[arg(long, value_name = "EVENT_ID")]
    pub event_id: Option<String>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What became of one failed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Reapplied {
    pub event_id: String,
    /// The outcome it now has (`processed`, `skipped`, …), or `failed` if it still fails.
    pub status: String,
    pub reason: Option<String>,
    /// Why it still fails.
    pub error: Option<String>,
}

/// Re-applies every failed event (or the one named), oldest first.
pub(crate) async fn run(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    only: Option<&str>,
) -> Result<Vec<Reapplied>, StoreError> {
    let failed = ledger::failed_events(pool, only).await?;
    let mut results = Vec::with_capacity(failed.len());
    for event in &failed {
        let result = reapply(pool, settings, client, event).await;
        tracing::info!(event_id = %event.id, status = %result.status, "re-applied a failed event");
        results.push(result);
    }
    Ok(results)
}

async fn reapply(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    failed: &FailedEvent,
) -> Reapplied {
    let delivery = match thin_event::decode_delivery(failed.payload.as_bytes()) {
        Ok(delivery) => delivery.sanitized(failed.payload_sanitized),
        Err(error) => {
            return still_failing(
                failed,
                format!("the stored payload is not an event: {error}"),
            );
        }
    };
    let attempt = sync::reapply(pool, settings, client, &failed.id, &delivery).await;
    match attempt {
        Ok(Some(outcome)) => Reapplied {
            event_id: failed.id.clone(),
            status: outcome.status().into(),
            reason: outcome.reason().map(str::to_owned),
            error: None,
        },
        Ok(None) => Reapplied {
            event_id: failed.id.clone(),
            status: "already_reapplied".into(),
            reason: None,
            error: None,
        },
        // The transaction rolled back: the event is still on record as failed.
        Err(error) => still_failing(failed, error),
    }
}

fn still_failing(failed: &FailedEvent, error: String) -> Reapplied {
    Reapplied {
        event_id: failed.id.clone(),
        status: "failed".into(),
        reason: None,
        error: Some(error),
    }
}

/// One line per event (or JSON); exit 1 when any still fails.
pub(crate) fn print(results: &[Reapplied], json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(results).expect("results serialize")
        );
    } else if results.is_empty() {
        println!("no failed events");
    } else {
        for result in results {
            let detail = result
                .reason
                .as_deref()
                .or(result.error.as_deref())
                .unwrap_or_default();
            println!("{} {} {detail}", result.event_id, result.status);
        }
    }
    if results.iter().any(|r| r.status == "failed") {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The command's main: `reapply-failed`'s main: the database, then [`crate::commands::reapply::run`] (no Stripe API).
pub(crate) async fn command(args: ReapplyArgs) -> Result<ExitCode, CliError> {
    let api = StripeApiSettings::optional(&args.stripe)?;
    let (sync, client) = match &api {
        Some(api) => {
            let client = StripeClient::new(api, RetryPolicy::default())
                .map_err(|e| CliError::failed("Stripe client", e))?;
            super::fetch_context::check_stripe(&client).await?;
            (args.sync.settings(api)?, Some(client))
        }
        None => (args.sync.settings_without_api()?, None),
    };
    let mut sync = sync;
    sync.tiers.organizations = OrganizationSettings::from_args(&args.organizations)?.organizations;
    let database = Database::from_args(&args.database, LocalUse::Command).await?;
    let result = match pool::command_pool(database.options.clone(), 2).await {
        Ok(pool) => {
            let result = run(&pool, &sync, client.as_ref(), args.event_id.as_deref()).await;
            pool.close().await;
            result.map_err(|e| CliError::failed("reapply-failed", e))
        }
        Err(error) => Err(CliError::database(format!(
            "cannot connect to the database: {error}"
        ))),
    };
    database.close();
    Ok(print(&result?, args.json))
}
