//! Customers as Stripe's API returned them (`backfill`, `verify --fix`), into the one apply
//! loop ([`super::apply`]) as states ordered at the request's start, recorded as a run
//! ([`apply::Recording::Run`]): no ledger row (there is no event), the run's id in the audit
//! trail, and a customer whose state would not change the row (a backfill run again) is not
//! written at all. A page is read and written in two statements.

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use super::apply::{self, AppliedCustomer};
use super::rules::{CustomerEventKind, FetchCommand, IncomingCustomer, Origin};
use super::{SyncError, SyncSettings, incoming};
use crate::domain::StripeCustomerId;
use crate::domain::outcome::SkipReason;
use crate::store::StoreError;
use crate::store::session::EventScope;
use crate::stripe::event::CustomerObject;

/// A run of a fetching command: what the rows it writes record, and whether it writes at all.
#[derive(Debug, Clone)]
pub(crate) struct FetchRun {
    pub command: FetchCommand,
    /// `backfill:<start>-<random>`: `sync.last_event_id` and the audit trail's `event_id`.
    pub run_id: String,
    /// Decide and count, write nothing.
    pub dry_run: bool,
    /// The mode of the API key the customers were read with (`sync.livemode`).
    pub livemode: bool,
}

impl FetchRun {
    pub(crate) fn new(command: FetchCommand, dry_run: bool, livemode: bool) -> Self {
        let now = Utc::now().format("%Y%m%dT%H%M%SZ");
        let random = Uuid::new_v4().simple().to_string();
        Self {
            command,
            run_id: format!("{}:{now}-{}", command.as_str(), &random[..8]),
            dry_run,
            livemode,
        }
    }

    fn recording(&self) -> apply::Recording<'_> {
        apply::Recording::Run {
            run_id: &self.run_id,
            dry_run: self.dry_run,
        }
    }
}

/// One customer as fetched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchedCustomer<'a> {
    pub customer: &'a CustomerObject,
    /// Stripe answered `{"id", "deleted": true}` (or, for `verify`, that it has no such customer).
    pub deleted: bool,
    /// Unix seconds at which the request that returned it started.
    pub requested_at: i64,
}

/// Applies one page of fetched customers; the result is in the order of `customers`.
pub(crate) async fn apply_page(
    pool: &PgPool,
    settings: &SyncSettings,
    run: &FetchRun,
    customers: &[FetchedCustomer<'_>],
) -> Result<Vec<AppliedCustomer>, SyncError> {
    let mut results: Vec<Option<AppliedCustomer>> = vec![None; customers.len()];
    let mut ids = Vec::with_capacity(customers.len());
    for (index, fetched) in customers.iter().enumerate() {
        match StripeCustomerId::parse(&fetched.customer.id) {
            Ok(id) => ids.push((index, id)),
            Err(_) => {
                results[index] = Some(AppliedCustomer::skipped(SkipReason::InvalidCustomerId))
            }
        }
    }
    let states: Vec<IncomingCustomer<'_>> = ids
        .iter()
        .map(|(index, id)| incoming_of(settings, run, id, customers[*index]))
        .collect();
    // One connection for the page's statements, in its own session: each statement commits
    // on its own, as a command's always did.
    let mut connection = pool.acquire().await.map_err(StoreError::from)?;
    let mut scope = EventScope::on(&mut connection);
    let applied = apply::apply_page(&mut scope, run.recording(), &states).await?;
    for ((index, _), result) in ids.iter().zip(applied) {
        results[*index] = Some(result);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every customer of the page has a result"))
        .collect())
}

/// Applies one fetched customer on its own (verify's fixes).
pub(crate) async fn apply_one(
    pool: &PgPool,
    settings: &SyncSettings,
    run: &FetchRun,
    customer: FetchedCustomer<'_>,
) -> Result<AppliedCustomer, SyncError> {
    let Ok(id) = StripeCustomerId::parse(&customer.customer.id) else {
        return Ok(AppliedCustomer::skipped(SkipReason::InvalidCustomerId));
    };
    let state = incoming_of(settings, run, &id, customer);
    let mut connection = pool.acquire().await.map_err(StoreError::from)?;
    let mut scope = EventScope::on(&mut connection);
    apply::apply_one(&mut scope, run.recording(), &state).await
}

/// A fetched customer as the rules take it: `Updated` for a live customer, `Deleted` for
/// `{"id", "deleted": true}`, ordered at the request's start.
pub(crate) fn incoming_of<'a>(
    settings: &SyncSettings,
    run: &'a FetchRun,
    id: &'a StripeCustomerId,
    fetched: FetchedCustomer<'a>,
) -> IncomingCustomer<'a> {
    let kind = if fetched.deleted {
        CustomerEventKind::Deleted
    } else {
        CustomerEventKind::Updated
    };
    let origin = Origin::Fetched {
        command: run.command,
        run_id: &run.run_id,
    };
    incoming(
        &settings.user_id_metadata_key,
        kind,
        origin,
        fetched.requested_at,
        id,
        fetched.customer,
        run.livemode,
    )
}
