//! Customers as Stripe's API returned them (`backfill`, `verify --fix`), into the one apply
//! loop ([`super::apply`]) as states ordered at the request's start, recorded as their
//! [`FetchRun`]'s. A page is read and written in two statements.

use sqlx::PgPool;

use super::apply::{self, AppliedCustomer, Applying, CustomerState};
use super::request::{FetchRun, FetchedCustomer};
use super::rules::CustomerEventKind;
use super::{SyncError, SyncSettings, subscriptions};
use crate::domain::StripeCustomerId;
use crate::domain::outcome::SkipReason;
use crate::store::StoreError;
use crate::store::session::EventScope;

/// Applies one page of fetched customers; the result is in the order of `customers`.
pub(crate) async fn apply_page(
    pool: &PgPool,
    settings: &SyncSettings,
    run: &FetchRun,
    customers: &[FetchedCustomer<'_>],
) -> Result<Vec<AppliedCustomer>, SyncError> {
    let mut results: Vec<Option<AppliedCustomer>> = vec![None; customers.len()];
    let mut states = Vec::with_capacity(customers.len());
    let mut indexes = Vec::with_capacity(customers.len());
    for (index, fetched) in customers.iter().enumerate() {
        match applying(&settings.user_id_metadata_key, run, *fetched) {
            Some(state) => {
                states.push(state);
                indexes.push(index);
            }
            None => results[index] = Some(AppliedCustomer::skipped(SkipReason::InvalidCustomerId)),
        }
    }
    // One connection for the page's statements, in its own session: each statement commits
    // on its own, as a command's always did.
    let mut connection = pool.acquire().await.map_err(StoreError::from)?;
    let mut scope = EventScope::on(&mut connection);
    let applied = apply::apply_page(&mut scope, run, &states).await?;
    let linked: Vec<&str> = states
        .iter()
        .zip(&applied)
        .filter_map(|(state, result)| linked_owner(state, *result))
        .collect();
    subscriptions::linked::recompute_for(&mut scope, settings, &linked).await;
    for (index, result) in indexes.into_iter().zip(applied) {
        results[index] = Some(result);
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
    let Some(state) = applying(&settings.user_id_metadata_key, run, customer) else {
        return Ok(AppliedCustomer::skipped(SkipReason::InvalidCustomerId));
    };
    let mut connection = pool.acquire().await.map_err(StoreError::from)?;
    let mut scope = EventScope::on(&mut connection);
    let applied = apply::apply_one(&mut scope, &state).await?;
    let linked = linked_owner(&state, applied);
    subscriptions::linked::recompute_for(&mut scope, settings, linked.as_slice()).await;
    Ok(applied)
}

/// The customer of a fetched state that names an owner and was applied (or found already as
/// Stripe has it): subscriptions kept before the link may now give that owner a tier, as
/// after a webhook's write (see `subscriptions::linked`). A row found unchanged counts too: a
/// backfill after a stop between a write and its tier heals it.
fn linked_owner<'a>(
    state: &'a Applying<'_, &FetchRun>,
    result: AppliedCustomer,
) -> Option<&'a str> {
    subscriptions::linked::may_give_a_tier(result.applied.outcome())
        .then(|| subscriptions::linked::names_an_owner(state.state()))
        .flatten()
}

/// A fetched customer as the rules take it: `Updated` for a live customer, `Deleted` for
/// `{"id", "deleted": true}`, ordered at the request's start. `None`: its id is not a
/// customer's.
pub(crate) fn applying<'a>(
    user_id_metadata_key: &str,
    run: &'a FetchRun,
    fetched: FetchedCustomer<'a>,
) -> Option<Applying<'a, &'a FetchRun>> {
    let customer_id = StripeCustomerId::parse(&fetched.customer.id).ok()?;
    let kind = if fetched.deleted {
        CustomerEventKind::Deleted
    } else {
        CustomerEventKind::Updated
    };
    let state = CustomerState {
        kind,
        created: fetched.requested_at,
        customer_id,
        customer: fetched.customer,
        livemode: run.livemode,
    };
    Some(Applying::new(run, user_id_metadata_key, state))
}
