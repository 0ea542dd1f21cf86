//! `catch-up`: the customer events Stripe still holds (`GET /v1/events`, 30 days) that the
//! ledger lacks, applied exactly as if they had been delivered.
//!
//! A run lists the window newest first (Stripe's order, pages of 100), asks the ledger once per
//! page which of the page's events it already holds, keeps the others, then applies them oldest
//! first (by `created`, then type rank, then Stripe's own order) through the webhook's apply
//! loop ([`sync::apply_event`]): each one is decoded from the JSON Stripe listed, recorded in
//! the ledger with that JSON as its payload, and changes the table as its delivery would have.
//!
//! Where the window starts (`--since` aside): shortly ([`MARGIN`]) before the listing of the
//! last COMPLETED run started, recorded in `public.stripe_catch_up_runs`. Every event created
//! before that moment was listed by that run and is in the ledger, so a gap of any length and
//! position (an endpoint disabled for four days, a wrong secret after a deploy) is listed again
//! until a run completes, for as long as Stripe keeps the events. The first run of a database
//! lists all 30 days. A run that fails or is interrupted records nothing; the next one covers
//! its window, and the ledger makes what it already applied a no-op: that is the resumption.
//!
//! One run at a time across replicas and the command line: a lease
//! ([`crate::store::catch_up::try_lock`]), renewed as the run goes, with no transaction held
//! while Stripe answers; a dry run writes nothing and takes no lease.

pub(crate) mod serving;
mod summary;
pub(crate) mod worker;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgPool;

use crate::domain::event_order::{CustomerEventKind, EventOrder};
use crate::progress;
use crate::store::catch_up::{self as store, CompletedRun, StartedBy};
use crate::store::{StoreError, recorded};
use crate::stripe::event;
use crate::stripe_api::events::{self, EventPage, ListedEvent};
use crate::stripe_api::{ApiError, StripeClient};
use crate::sync::{self, Outcome, SyncError, SyncSettings};

pub(crate) use summary::{Summary, WindowStart, render};

/// How long Stripe keeps events: the furthest back a run can list.
pub(crate) const RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// How far before the last completed run's listing the next one starts: an event becomes
/// listable shortly after its `created`, so one created just before a listing started may have
/// been missing from it.
pub(crate) const MARGIN: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
pub(crate) struct CatchUpOptions {
    /// `None`: from shortly before the last completed run (the first run: 30 days).
    pub since: Option<Duration>,
    pub dry_run: bool,
    pub started_by: StartedBy,
    /// Draw progress bars (on a terminal only).
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CatchUpError {
    #[error(
        "another catch-up is running (it holds the lease, which runs out within 30 s of its process stopping); nothing was done"
    )]
    Locked,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("applying events: {0}")]
    Sync(#[from] SyncError),
}

impl From<StoreError> for CatchUpError {
    fn from(error: StoreError) -> Self {
        Self::Sync(error.into())
    }
}

/// Runs catch-up once.
pub(crate) async fn run(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    options: &CatchUpOptions,
) -> Result<Summary, CatchUpError> {
    let mut lock = if options.dry_run {
        None
    } else {
        Some(store::try_lock(pool).await?.ok_or(CatchUpError::Locked)?)
    };
    let result = run_locked(pool, client, settings, options, lock.as_mut()).await;
    let Some(lock) = lock else {
        return result.map(|(summary, _)| summary);
    };
    match result {
        Ok((summary, completed)) => {
            // The run's record commits with the lock's transaction: it exists only for a run
            // that completed.
            lock.complete(&completed).await?;
            Ok(summary)
        }
        Err(error) => {
            if let Err(release) = lock.release().await {
                tracing::warn!(error = %release, "could not release the catch-up lock; it ends with its connection");
            }
            Err(error)
        }
    }
}

/// How many events are applied between two checks that the lock is still held.
const KEEP_ALIVE_EVERY: usize = 100;

async fn run_locked(
    pool: &PgPool,
    client: &StripeClient,
    settings: &SyncSettings,
    options: &CatchUpOptions,
    mut lock: Option<&mut store::RunLock>,
) -> Result<(Summary, CompletedRun), CatchUpError> {
    let started = Instant::now();
    let now = Utc::now();
    let (listed_from, window_start) = window(pool, options.since, now).await?;
    tracing::info!(
        listed_from = %listed_from.to_rfc3339_opts(SecondsFormat::Secs, true),
        window_start = ?window_start,
        dry_run = options.dry_run,
        "catch-up started"
    );

    let listing = list_missing(
        pool,
        client,
        listed_from.timestamp(),
        options.progress,
        lock.as_deref_mut(),
    )
    .await?;
    let mut summary = Summary {
        dry_run: options.dry_run,
        listed_from: listed_from.to_rfc3339_opts(SecondsFormat::Secs, true),
        window_start,
        pages: listing.pages,
        seen: listing.seen,
        already_recorded: listing.seen - listing.missing.len() as u64,
        missing: BTreeMap::new(),
        applied: BTreeMap::new(),
        skipped: BTreeMap::new(),
        undecodable: 0,
        newest_event_created: listing.newest_created,
        elapsed_secs: 0.0,
    };
    for listed in &listing.missing {
        *summary
            .missing
            .entry(listed.event_type.clone())
            .or_default() += 1;
    }

    if !options.dry_run {
        let bar = progress::bar(options.progress, listing.missing.len() as u64, "events");
        for (n, listed) in listing.missing.iter().enumerate() {
            if n % KEEP_ALIVE_EVERY == 0
                && let Some(lock) = lock.as_deref_mut()
            {
                lock.keep_alive().await?;
            }
            let Ok(mut event) = event::decode(listed.json.as_bytes()) else {
                tracing::error!(event_id = %listed.id, "Stripe listed an event that cannot be read; left out");
                summary.undecodable += 1;
                continue;
            };
            event.payload_sanitized = listed.sanitized;
            sync::expand_products(Some(client), settings, &mut event).await?;
            let outcome = sync::apply_event(pool, settings, &event).await?;
            *summary.applied.entry(outcome.status()).or_default() += 1;
            if let Outcome::Skipped(reason) = outcome {
                *summary.skipped.entry(reason.as_str()).or_default() += 1;
            }
            tracing::debug!(event_id = %listed.id, status = outcome.status(), "listed event applied");
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    tracing::info!(
        seen = summary.seen,
        already_recorded = summary.already_recorded,
        applied = summary.applied_count(),
        dry_run = summary.dry_run,
        "catch-up complete"
    );
    let completed = CompletedRun {
        listed_from,
        listing_started_at: DateTime::from_timestamp(listing.started_at, 0).unwrap_or(now),
        events_listed: i64::try_from(summary.seen).unwrap_or(i64::MAX),
        events_applied: i64::try_from(listing.missing.len()).unwrap_or(i64::MAX),
        started_by: options.started_by,
    };
    Ok((summary, completed))
}

/// Where the listing starts, and why.
async fn window(
    pool: &PgPool,
    since: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, WindowStart), CatchUpError> {
    let earliest = now - RETENTION;
    let (from, why) = match since {
        Some(since) => (now - since, WindowStart::Since),
        None => match store::last_listing_start(pool).await? {
            Some(last) => (last - MARGIN, WindowStart::LastRun),
            None => (earliest, WindowStart::FirstRun),
        },
    };
    if from < earliest {
        tracing::warn!(
            "Stripe keeps events for 30 days: listing from 30 days ago; anything older that was \
             missed needs `backfill`"
        );
    }
    Ok((from.max(earliest), why))
}

/// The events of the window that the ledger lacks, in the order to apply them.
struct Listing {
    pages: u64,
    seen: u64,
    /// When the first page was requested (Unix seconds).
    started_at: i64,
    newest_created: Option<i64>,
    missing: Vec<ListedEvent>,
}

async fn list_missing(
    pool: &PgPool,
    client: &StripeClient,
    created_gte: i64,
    progress: bool,
    mut lock: Option<&mut store::RunLock>,
) -> Result<Listing, CatchUpError> {
    let bar = progress::counter(progress, "events listed");
    let mut listing = Listing {
        pages: 0,
        seen: 0,
        started_at: 0,
        newest_created: None,
        missing: Vec::new(),
    };
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        if let Some(lock) = lock.as_deref_mut() {
            lock.keep_alive().await?;
        }
        let page: EventPage = events::list_page(client, created_gte, cursor.as_deref()).await?;
        if listing.pages == 0 {
            listing.started_at = page.requested_at;
        }
        listing.pages += 1;
        let page_ids: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
        let recorded = recorded::recorded_among(pool, &page_ids).await?;
        cursor = page.cursor().map(str::to_owned);
        let has_more = page.has_more;
        for listed in page.events {
            listing.seen += 1;
            listing.newest_created = listing.newest_created.max(Some(listed.created));
            // Stripe lists each event once; a repeat would only be applied as a duplicate.
            if !recorded.contains(&listed.id) && ids.insert(listed.id.clone()) {
                listing.missing.push(listed);
            }
        }
        bar.set_position(listing.seen);
        if !has_more || cursor.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    // Listed newest first: reversed, then a stable sort by order, so events of equal order keep
    // Stripe's (oldest first) and the later one is applied last, as its delivery would have.
    listing.missing.reverse();
    listing.missing.sort_by_key(order_of);
    Ok(listing)
}

/// An event's place in the sync rules' order; a subscription event ranks as the customer
/// event of its kind, and a type the rules do not know ranks as an update (the list asks for
/// customer and subscription events only).
fn order_of(listed: &ListedEvent) -> EventOrder {
    let event_type = listed
        .event_type
        .replacen("customer.subscription.", "customer.", 1);
    let kind =
        CustomerEventKind::from_event_type(&event_type).unwrap_or(CustomerEventKind::Updated);
    EventOrder::new(listed.created, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, event_type: &str, created: i64) -> ListedEvent {
        ListedEvent {
            id: id.into(),
            event_type: event_type.into(),
            created,
            json: String::new(),
            sanitized: false,
        }
    }

    #[test]
    fn events_are_applied_by_created_then_type_then_stripes_order() {
        // As Stripe lists them: newest first.
        let mut events = [
            listed("evt_5", "customer.updated", 20),
            listed("evt_4", "customer.deleted", 10),
            listed("evt_3b", "customer.updated", 10),
            listed("evt_3a", "customer.updated", 10),
            listed("evt_2", "customer.created", 10),
            listed("evt_1", "customer.updated", 5),
        ];
        events.reverse();
        events.sort_by_key(order_of);
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            ["evt_1", "evt_2", "evt_3a", "evt_3b", "evt_4", "evt_5"]
        );
    }
}
