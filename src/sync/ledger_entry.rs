//! The ledger row of a delivered event, snapshot or thin: the one place that says which of an
//! event's fields the ledger keeps.

use chrono::DateTime;

use crate::store::ledger::LedgerEntry;
use crate::stripe::event::StripeEvent;
use crate::stripe::thin_event::ThinEvent;

/// A delivered event, borrowed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Delivered<'a, 'body> {
    Snapshot(&'a StripeEvent<'body>),
    Thin(&'a ThinEvent<'body>),
}

/// The ledger row of `event`, and the customer it deletes, if it does (remembered whatever
/// the outcome: deleted is terminal). A snapshot event's type, `created` (Unix seconds) and API
/// version as sent; a thin event's type as sent (`v1.customer.updated`), its RFC 3339
/// `created` and no API version (thin events have none). The body as payload.
pub(super) fn ledger_entry<'a>(
    event: Delivered<'a, '_>,
    deleted_customer_id: Option<&'a str>,
) -> LedgerEntry<'a> {
    match event {
        Delivered::Snapshot(event) => LedgerEntry {
            event_id: &event.id,
            event_type: event.event_type,
            livemode: event.livemode,
            api_version: event.api_version,
            stripe_created: DateTime::from_timestamp(event.created, 0).unwrap_or_default(),
            payload: event.raw,
            payload_sanitized: event.payload_sanitized,
            deleted_customer_id,
        },
        Delivered::Thin(event) => LedgerEntry {
            event_id: &event.id,
            event_type: &event.event_type,
            livemode: event.livemode,
            api_version: None,
            stripe_created: event.created,
            payload: event.raw,
            payload_sanitized: event.payload_sanitized,
            deleted_customer_id,
        },
    }
}
