//! `backfill`: bring every existing Stripe customer into `public.stripe_customers` through
//! the same sync rules as a webhook event.
//!
//! It pages through `GET /v1/customers` (`limit=100`, `starting_after`), newest first, and
//! applies each page in two statements (`sync::fetched`). Each customer's order is the start of
//! the request that fetched it, so a backfilled row never overwrites a newer webhook and an
//! older webhook never overwrites a backfilled row. The next page is fetched while earlier ones
//! are written (two at a time, [`WRITERS`]), so a run is bounded by the slower of Stripe and the
//! database, not by their sum.
//!
//! Resumable: after each committed page a checkpoint file records the cursor and the running
//! totals; a rerun continues after the last committed page. A page committed but not yet
//! checkpointed when the process died is applied again and counts as `unchanged` the second
//! time: the rows are right, only that page's counts move. A completed run removes the file.
//!
//! Customers created after the run started sort before its cursor and are not listed: they come
//! in through webhooks, so the webhook endpoint must be live before a backfill starts.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::configuration::{DatabaseArgs, StripeApiArgs, StripeApiSettings, SyncArgs};
use crate::progress;
use crate::stripe_api::customers::{self, CustomerPage};
use crate::stripe_api::{ApiError, StripeClient};
use crate::sync::apply::{Applied, AppliedCustomer};
use crate::sync::fetched::{self, FetchRun, FetchedCustomer};
use crate::sync::rules::FetchCommand;
use crate::sync::{SyncError, SyncSettings};

/// Where the checkpoint lives unless `--checkpoint` says otherwise: beside the local database,
/// in the working directory.
pub const DEFAULT_CHECKPOINT: &str = ".stripe-customer-sync/backfill-checkpoint.json";

#[derive(clap::Args, Debug)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
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
pub struct BackfillOptions {
    pub dry_run: bool,
    /// The mode of the API key the customers are read with.
    pub livemode: bool,
    pub checkpoint: PathBuf,
    pub restart: bool,
    /// Names the Stripe account and the database a checkpoint belongs to ([`target_of`]):
    /// a checkpoint of another target is refused rather than continued.
    pub target: String,
    /// Draw a progress bar (on a terminal only).
    pub progress: bool,
}

/// Counts over the whole run (resumed parts included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub customers: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Of the inserted, updated and unchanged rows: those left without a user, by `sync.error`.
    pub unlinked: BTreeMap<String, u64>,
    /// Customers that changed nothing, by reason (`stale_event`, `customer_deleted`, …).
    pub skipped: BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, results: &[AppliedCustomer]) {
        for result in results {
            self.customers += 1;
            match result.applied {
                Applied::Inserted => self.inserted += 1,
                Applied::Updated => self.updated += 1,
                // A duplicate is an event's; a run has none.
                Applied::Unchanged | Applied::Duplicate => self.unchanged += 1,
                Applied::Skipped(reason) => {
                    *self.skipped.entry(reason.as_str().to_owned()).or_default() += 1
                }
            }
            if let Some(reason) = result.unlinked {
                *self.unlinked.entry(reason.as_str().to_owned()).or_default() += 1;
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub dry_run: bool,
    /// Pages already committed by an earlier, interrupted invocation of this run.
    pub resumed_after_pages: u64,
    pub pages: u64,
    /// Unix seconds at which the run's first page was requested: customers created later are
    /// not in this run (webhooks bring them).
    pub started_at: i64,
    pub totals: Totals,
    /// This invocation only.
    pub customers_this_invocation: u64,
    pub elapsed_secs: f64,
    /// Wall time during which at least one page was being read and written in the database
    /// (it overlaps fetching the next page).
    pub database_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("applying customers: {0}")]
    Sync(#[from] SyncError),
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    run_id: String,
    target: String,
    /// The run's fetch-time floor: every page was requested at or after it.
    started_at: i64,
    /// `starting_after` of the next page: the last customer of the last committed page.
    starting_after: Option<String>,
    pages: u64,
    totals: Totals,
}

const CHECKPOINT_VERSION: u32 = 1;

/// Pages written at once, each on its own connection. Two keep a small database server's two
/// cores busy while our side waits; rows of concurrent pages never overlap (Stripe lists each
/// customer once), and a user claimed from two pages at once is settled by the unique index:
/// the loser is decided again on its own and comes out `user_already_linked`.
const WRITERS: usize = 2;

/// The fetch of the next page, in flight while pages are written.
type PageFetch<'a> = Pin<Box<dyn Future<Output = Result<CustomerPage, ApiError>> + 'a>>;

/// Runs (or continues) a backfill.
pub async fn run(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    options: &BackfillOptions,
) -> Result<Summary, BackfillError> {
    let resumed = if options.dry_run || options.restart {
        None
    } else {
        load_checkpoint(&options.checkpoint, &options.target)?
    };
    // A resumed run keeps its id: the audit trail shows one run, however often it was resumed.
    let run = match &resumed {
        Some(checkpoint) => FetchRun {
            command: FetchCommand::Backfill,
            run_id: checkpoint.run_id.clone(),
            dry_run: false,
            livemode: options.livemode,
        },
        None => FetchRun::new(FetchCommand::Backfill, options.dry_run, options.livemode),
    };
    let mut state = resumed.unwrap_or_else(|| Checkpoint {
        version: CHECKPOINT_VERSION,
        run_id: run.run_id.clone(),
        target: options.target.clone(),
        started_at: 0,
        starting_after: None,
        pages: 0,
        totals: Totals::default(),
    });
    let resumed_after_pages = state.pages;
    tracing::info!(
        run_id = %run.run_id,
        dry_run = run.dry_run,
        resumed_after_pages,
        "backfill started"
    );

    let bar = progress::counter(options.progress, "customers");
    bar.set_position(state.totals.customers);
    let started = Instant::now();
    let mut database_time = Duration::ZERO;
    let mut this_invocation = 0;

    let first = customers::list_page(client, state.starting_after.as_deref()).await?;
    if state.pages == 0 {
        state.started_at = first.requested_at;
    }
    // A pipeline: one page fetched ahead, up to WRITERS pages being written, the checkpoint
    // advanced in page order as each write commits (never by a fetch: a slow, or never
    // answered, next page does not hold back the checkpoint of the pages before it).
    let mut ready: Option<CustomerPage> = Some(first);
    let mut fetching: Option<PageFetch<'_>> = None;
    let mut fetch_failed: Option<ApiError> = None;
    let mut writing = FuturesOrdered::new();
    loop {
        while writing.len() < WRITERS
            && let Some(page) = ready.take()
        {
            if page.has_more
                && let Some(cursor) = page.cursor().map(str::to_owned)
            {
                fetching = Some(Box::pin(async move {
                    customers::list_page(client, Some(&cursor)).await
                }));
            }
            let run = &run;
            writing.push_back(async move {
                let applied = apply(pool, settings, run, &page).await;
                (applied, page.cursor().map(str::to_owned))
            });
        }
        if writing.is_empty() {
            match fetch_failed.take() {
                Some(error) => return Err(error.into()),
                None if fetching.is_none() && ready.is_none() => break,
                None => {}
            }
        }
        let busy_since = (!writing.is_empty()).then(Instant::now);
        tokio::select! {
            fetched = async { fetching.as_mut().expect("a fetch in flight").await },
                if fetching.is_some() && ready.is_none() && fetch_failed.is_none() =>
            {
                fetching = None;
                match fetched {
                    Ok(page) => ready = Some(page),
                    // The pages being written are still checkpointed, then the run fails.
                    Err(error) => fetch_failed = Some(error),
                }
            }
            Some((applied, cursor)) = writing.next(), if !writing.is_empty() => {
                let applied = applied?;
                state.totals.add(&applied);
                state.pages += 1;
                if let Some(cursor) = cursor {
                    state.starting_after = Some(cursor);
                }
                this_invocation += applied.len() as u64;
                if !run.dry_run {
                    save_checkpoint(&options.checkpoint, &state)?;
                }
                bar.inc(applied.len() as u64);
                bar.set_message(format!("page {}", state.pages));
                tracing::debug!(page = state.pages, customers = applied.len(), "page applied");
            }
        }
        if let Some(since) = busy_since {
            database_time += since.elapsed();
        }
    }
    bar.finish_and_clear();
    if !run.dry_run {
        remove_checkpoint(&options.checkpoint)?;
    }
    let summary = Summary {
        run_id: run.run_id.clone(),
        dry_run: run.dry_run,
        resumed_after_pages,
        pages: state.pages,
        started_at: state.started_at,
        totals: state.totals,
        customers_this_invocation: this_invocation,
        elapsed_secs: started.elapsed().as_secs_f64(),
        database_secs: database_time.as_secs_f64(),
    };
    tracing::info!(
        run_id = %summary.run_id,
        customers = summary.totals.customers,
        inserted = summary.totals.inserted,
        updated = summary.totals.updated,
        unchanged = summary.totals.unchanged,
        skipped = summary.totals.skipped.values().sum::<u64>(),
        "backfill complete"
    );
    Ok(summary)
}

async fn apply(
    pool: &PgPool,
    settings: &SyncSettings,
    run: &FetchRun,
    page: &CustomerPage,
) -> Result<Vec<AppliedCustomer>, SyncError> {
    let fetched: Vec<FetchedCustomer<'_>> = page
        .customers
        .iter()
        .map(|c| FetchedCustomer {
            customer: &c.customer,
            deleted: c.deleted,
            requested_at: page.requested_at,
        })
        .collect();
    fetched::apply_page(pool, settings, run, &fetched).await
}

/// A short digest of the Stripe account (base URL and key) and the database (host, port,
/// socket, name): the same target gives the same string; the key cannot be read back from it.
pub fn target_of(api: &StripeApiSettings, database: &PgConnectOptions) -> String {
    let mut digest = Sha256::new();
    digest.update(api.base.as_str());
    digest.update([0]);
    digest.update(api.key.expose_secret());
    digest.update([0]);
    digest.update(database.get_host());
    digest.update(database.get_port().to_be_bytes());
    if let Some(socket) = database.get_socket() {
        digest.update(socket.as_os_str().as_encoded_bytes());
    }
    digest.update([0]);
    digest.update(database.get_database().unwrap_or_default());
    hex::encode(&digest.finalize()[..12])
}

fn checkpoint_error(path: &Path, detail: impl std::fmt::Display) -> BackfillError {
    BackfillError::Checkpoint {
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

fn load_checkpoint(path: &Path, target: &str) -> Result<Option<Checkpoint>, BackfillError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(checkpoint_error(path, error)),
    };
    let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| {
        checkpoint_error(
            path,
            format!("unreadable ({e}); remove it or pass --restart"),
        )
    })?;
    if checkpoint.version != CHECKPOINT_VERSION {
        return Err(checkpoint_error(
            path,
            "written by another version; remove it or pass --restart",
        ));
    }
    if checkpoint.target != target {
        return Err(checkpoint_error(
            path,
            "belongs to another Stripe account or database; remove it or pass --restart",
        ));
    }
    Ok(Some(checkpoint))
}

/// Written to a temporary file and renamed over the old one: a kill at any moment leaves
/// either the previous checkpoint or the new one, never half of one.
fn save_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<(), BackfillError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| checkpoint_error(path, e))?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(checkpoint).map_err(|e| checkpoint_error(path, e))?;
    std::fs::write(&temporary, text).map_err(|e| checkpoint_error(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| checkpoint_error(path, e))
}

fn remove_checkpoint(path: &Path) -> Result<(), BackfillError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(checkpoint_error(path, error)),
    }
}

/// The summary as a person reads it.
pub fn render(summary: &Summary) -> String {
    let t = &summary.totals;
    let verb = |done: &str, would: &str| {
        if summary.dry_run {
            would.to_owned()
        } else {
            done.to_owned()
        }
    };
    let by_reason = |counts: &BTreeMap<String, u64>| {
        if counts.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!("  ({})", parts.join(", "))
        }
    };
    let rate = if summary.elapsed_secs > 0.0 {
        summary.customers_this_invocation as f64 / summary.elapsed_secs
    } else {
        0.0
    };
    let mut text = format!(
        "backfill {} {}: {} customers in {} pages{}\n",
        summary.run_id,
        if summary.dry_run {
            "(dry run, nothing written)"
        } else {
            "complete"
        },
        t.customers,
        summary.pages,
        if summary.resumed_after_pages > 0 {
            format!(
                " (resumed after page {}, continued from the checkpoint)",
                summary.resumed_after_pages
            )
        } else {
            String::new()
        },
    );
    text += &format!(
        "  {:<12}{:>9}\n",
        verb("inserted", "would insert"),
        t.inserted
    );
    text += &format!(
        "  {:<12}{:>9}\n",
        verb("updated", "would update"),
        t.updated
    );
    text += &format!("  {:<12}{:>9}\n", "unchanged", t.unchanged);
    text += &format!(
        "  {:<12}{:>9}{}\n",
        "unlinked",
        t.unlinked.values().sum::<u64>(),
        by_reason(&t.unlinked)
    );
    text += &format!(
        "  {:<12}{:>9}{}\n",
        "skipped",
        t.skipped.values().sum::<u64>(),
        by_reason(&t.skipped)
    );
    text += &format!(
        "  this invocation: {} customers in {:.1} s ({:.0}/s; database {:.1} s)\n",
        summary.customers_this_invocation, summary.elapsed_secs, rate, summary.database_secs
    );
    text
}

/// What the command line prints; exit 0 when the run completed.
pub fn print(summary: &Summary, json: bool) -> ExitCode {
    crate::report::print(summary, json, render);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(dry_run: bool) -> Summary {
        Summary {
            run_id: "backfill:20261125T100000Z-1a2b3c4d".into(),
            dry_run,
            resumed_after_pages: 4,
            pages: 10,
            started_at: 1_795_018_062,
            totals: Totals {
                customers: 1000,
                inserted: 990,
                updated: 2,
                unchanged: 5,
                unlinked: [("missing_user_id".to_owned(), 20)].into(),
                skipped: [
                    ("missing_email".to_owned(), 2),
                    ("stale_event".to_owned(), 1),
                ]
                .into(),
            },
            customers_this_invocation: 600,
            elapsed_secs: 2.0,
            database_secs: 1.5,
        }
    }

    #[test]
    fn summary_reads_as_counts_by_outcome_and_reason() {
        assert_eq!(
            render(&summary(false)),
            "backfill backfill:20261125T100000Z-1a2b3c4d complete: 1000 customers in 10 pages \
             (resumed after page 4, continued from the checkpoint)\n\
             \x20 inserted          990\n\
             \x20 updated             2\n\
             \x20 unchanged           5\n\
             \x20 unlinked           20  (missing_user_id 20)\n\
             \x20 skipped             3  (missing_email 2, stale_event 1)\n\
             \x20 this invocation: 600 customers in 2.0 s (300/s; database 1.5 s)\n"
        );
        assert!(render(&summary(true)).contains("would insert"));
    }

    #[test]
    fn totals_count_each_outcome_and_each_unlinked_row() {
        let mut totals = Totals::default();
        totals.add(&[
            AppliedCustomer {
                applied: Applied::Inserted,
                unlinked: Some(crate::sync::UnlinkReason::UnknownUser),
            },
            AppliedCustomer {
                applied: Applied::Unchanged,
                unlinked: Some(crate::sync::UnlinkReason::UnknownUser),
            },
            AppliedCustomer {
                applied: Applied::Skipped(crate::sync::SkipReason::StaleEvent),
                unlinked: None,
            },
        ]);
        assert_eq!(totals.customers, 3);
        assert_eq!((totals.inserted, totals.unchanged), (1, 1));
        assert_eq!(totals.unlinked["unknown_user"], 2);
        assert_eq!(totals.skipped["stale_event"], 1);
    }
}
