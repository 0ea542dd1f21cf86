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

use crate::configuration::{DatabaseArgs, SyncArgs};
use crate::store::StoreError;
use crate::store::ledger::{self, FailedEvent};
use crate::stripe::event;
use crate::sync::{self, SyncError, SyncSettings};

#[derive(clap::Args, Debug)]
pub struct ReapplyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Only this event (`evt_…`); default: every failed event, oldest first.
    #[arg(long, value_name = "EVENT_ID")]
    pub event_id: Option<String>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What became of one failed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reapplied {
    pub event_id: String,
    /// The outcome it now has (`processed`, `skipped`, …), or `failed` if it still fails.
    pub status: String,
    pub reason: Option<String>,
    /// Why it still fails.
    pub error: Option<String>,
}

/// Re-applies every failed event (or the one named), oldest first.
pub async fn run(
    pool: &PgPool,
    settings: &SyncSettings,
    only: Option<&str>,
) -> Result<Vec<Reapplied>, StoreError> {
    let failed = ledger::failed_events(pool, only).await?;
    let mut results = Vec::with_capacity(failed.len());
    for event in &failed {
        let result = reapply(pool, settings, event).await;
        tracing::info!(event_id = %event.id, status = %result.status, "re-applied a failed event");
        results.push(result);
    }
    Ok(results)
}

async fn reapply(pool: &PgPool, settings: &SyncSettings, failed: &FailedEvent) -> Reapplied {
    let still_failing = |error: String| Reapplied {
        event_id: failed.id.clone(),
        status: "failed".into(),
        reason: None,
        error: Some(error),
    };
    let mut decoded = match event::decode(failed.payload.as_bytes()) {
        Ok(decoded) => decoded,
        Err(error) => return still_failing(format!("the stored payload is not an event: {error}")),
    };
    decoded.payload_sanitized = failed.payload_sanitized;

    let attempt = async {
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        if !ledger::forget_failed(&mut *tx, &failed.id).await? {
            // Re-applied meanwhile (another run): nothing to do.
            return Ok(None);
        }
        let outcome = sync::apply_event_on(&mut tx, settings, &decoded).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok::<_, SyncError>(Some(outcome))
    };
    match attempt.await {
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
        Err(error) => still_failing(error.to_string()),
    }
}

/// One line per event (or JSON); exit 1 when any still fails.
pub fn print(results: &[Reapplied], json: bool) -> ExitCode {
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
    let sync = args.sync.settings_without_api()?;
    let database = Database::from_args(&args.database, LocalUse::Command).await?;
    let result = match pool::command_pool(database.options.clone(), 2).await {
        Ok(pool) => {
            let result = run(&pool, &sync, args.event_id.as_deref()).await;
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
