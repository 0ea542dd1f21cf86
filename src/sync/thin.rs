//! A thin event's customer, as Stripe's API returned it after the event arrived, applied
//! through the one apply loop ([`super::apply`]) and recorded in the ledger
//! under the thin event, in the same statement as the row.
//!
//! The state is ordered as a fetched one ([`super::rules::EventOrder::fetched`]): the fetch's start,
//! below every event of its second. The thin event's own `created` says when something changed,
//! not what the customer looked like then; the fetch says what it looked like at its start. So
//! a snapshot event older than the fetch that is delivered afterwards is `stale_event`, and one
//! of the fetch's second still applies (it may describe a change the fetch did not see).

use sqlx::PgPool;

use super::fetched::FetchedCustomer;
use super::rules::{CustomerEventKind, Origin};
use super::{
    Outcome, SyncError, SyncSettings, apply_customer_state, incoming, record_only,
    recording_refusal,
};
use crate::domain::StripeCustomerId;
use crate::domain::outcome::FailReason;
use crate::store::ledger::LedgerEntry;
use crate::store::pool::ConnectionPolicy;
use crate::store::session::EventScope;
use crate::stripe::thin_event::ThinEvent;

/// The ledger row of a thin event: its type as sent (`v1.customer.updated`), its RFC 3339
/// `created`, no API version (thin events have none), the body as payload; and the customer
/// it tells us was deleted, if it does.
fn ledger_entry<'a>(
    event: &'a ThinEvent<'_>,
    deleted_customer_id: Option<&'a str>,
) -> LedgerEntry<'a> {
    LedgerEntry {
        event_id: event.id.as_str(),
        event_type: &event.event_type,
        livemode: event.livemode,
        api_version: None,
        stripe_created: event.created,
        payload: event.raw,
        payload_sanitized: event.payload_sanitized,
        deleted_customer_id,
    }
}

/// Applies the fetched state of the thin event's customer (`deleted`: Stripe answered
/// `deleted: true`, applied as a delete) and records the event.
pub(crate) async fn apply_fetched(
    pool: &PgPool,
    settings: &SyncSettings,
    event: &ThinEvent<'_>,
    customer_id: &StripeCustomerId,
    fetched: FetchedCustomer<'_>,
) -> Result<Outcome, SyncError> {
    let mut scope = EventScope::begin(pool, settings.connection).await?;
    let outcome = apply_fetched_in(&mut scope, settings, event, customer_id, fetched).await?;
    scope.commit().await?;
    Ok(outcome)
}

/// [`apply_fetched`] in the caller's scope (`reapply-failed`'s transaction, which also removes
/// the event's `failed` row); the caller commits.
pub(crate) async fn apply_fetched_in(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    event: &ThinEvent<'_>,
    customer_id: &StripeCustomerId,
    fetched: FetchedCustomer<'_>,
) -> Result<Outcome, SyncError> {
    // Stripe deleted the customer, whether the event says so or the fetch found out.
    let deleted = fetched.deleted || event.event_type == "v1.customer.deleted";
    let entry = ledger_entry(event, deleted.then_some(customer_id.as_str()));
    let kind = if fetched.deleted {
        CustomerEventKind::Deleted
    } else {
        CustomerEventKind::Updated
    };
    let origin = Origin::ThinEvent {
        id: &event.id,
        event_type: &event.event_type,
    };
    let incoming = incoming(
        &settings.user_id_metadata_key,
        kind,
        origin,
        fetched.requested_at,
        customer_id,
        fetched.customer,
        event.livemode,
    );
    let applied = apply_customer_state(scope, &entry, &incoming).await;
    let outcome = recording_refusal(scope, &entry, applied).await?;
    if outcome == Outcome::Processed {
        let linked = super::subscriptions::linked::names_an_owner(&incoming);
        super::subscriptions::linked::recompute_for(scope, settings, linked.as_slice()).await;
    }
    Ok(outcome)
}

/// Records a thin event as `failed` without fetching anything more: its customer could not be
/// read as it is (`reason`), and a later `reapply-failed` fetches it again.
pub(crate) async fn record_failed(
    pool: &PgPool,
    connection: ConnectionPolicy,
    event: &ThinEvent<'_>,
    reason: FailReason,
    error: &str,
) -> Result<Outcome, SyncError> {
    let entry = ledger_entry(event, None);
    let mut scope = EventScope::begin(pool, connection).await?;
    let outcome = super::record_failed(&mut scope, &entry, reason, error).await?;
    scope.commit().await?;
    Ok(outcome)
}

/// Records a thin event that changes no row (`ignored`: a type the service does not apply;
/// `skipped`: a customer id that is not one), without fetching anything.
pub(crate) async fn record(
    pool: &PgPool,
    connection: ConnectionPolicy,
    event: &ThinEvent<'_>,
    outcome: Outcome,
) -> Result<Outcome, SyncError> {
    let entry = ledger_entry(event, None);
    let mut scope = EventScope::begin(pool, connection).await?;
    let outcome = record_only(&mut scope, &entry, outcome).await?;
    scope.commit().await?;
    Ok(outcome)
}
