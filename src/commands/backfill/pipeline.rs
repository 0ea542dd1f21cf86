//! The run: pages fetched from Stripe one ahead while earlier ones are applied through the
//! apply loop, the checkpoint advanced in page order as each page commits.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use sqlx::PgPool;

use super::checkpoint::{self, CHECKPOINT_VERSION, Checkpoint};
use super::{BackfillError, BackfillOptions, Summary, Totals};
use crate::progress;
use crate::stripe_api::customers::{self, CustomerPage};
use crate::stripe_api::{ApiError, StripeClient};
use crate::sync::request::{AppliedCustomer, FetchCommand, FetchRun, FetchedCustomer};
use crate::sync::{self, SyncError, SyncSettings};

/// Pages written at once, each on its own connection. Two keep a small database server's two
/// cores busy while our side waits; rows of concurrent pages never overlap (Stripe lists each
/// customer once), and a user claimed from two pages at once is settled by the unique index:
/// the loser is decided again on its own and comes out `user_already_linked`.
const WRITERS: usize = 2;

/// The fetch of the next page, in flight while pages are written.
type PageFetch<'a> = Pin<Box<dyn Future<Output = Result<CustomerPage, ApiError>> + 'a>>;

/// Runs (or continues) a backfill.
pub(crate) async fn run(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    options: &BackfillOptions,
) -> Result<Summary, BackfillError> {
    let resumed = if options.dry_run || options.restart {
        None
    } else {
        checkpoint::load(&options.checkpoint, &options.target)?
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
                    checkpoint::save(&options.checkpoint, &state)?;
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
    let subscriptions = super::subscriptions::run(pool, client, settings, &run).await?;
    if !run.dry_run {
        checkpoint::remove(&options.checkpoint)?;
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
        subscriptions,
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
    sync::apply_page(pool, settings, run, &fetched).await
}
