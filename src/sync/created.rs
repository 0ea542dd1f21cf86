//! A customer the service created for a user (`POST /customers`, `ensure-customer`), applied
//! through the one apply loop as a state Stripe returned, like a fetched one: ordered at the
//! creation request's start ([`super::rules::EventOrder::fetched`]), so the `customer.created`
//! webhook of the same second applies on top of it whichever arrives first, and the rules link
//! the user (or say why not) exactly as for any event.
//!
//! No ledger row: there is no event, and the ledger holds one row per verified Stripe event
//! (catch-up reads its newest `created` as a high-water mark; a synthetic row would move it).
//! The creation is named in `sync.last_event_id` and the audit trail instead. A stale skip (the
//! webhook came first) writes nothing.

use sqlx::PgConnection;

use super::apply::{Applying, CustomerState, apply_one};
use super::request::CreatedCustomer;
use super::rules::CustomerEventKind;
use super::{Outcome, SyncError, SyncSettings};
use crate::store::session::EventScope;

/// Applies it on `conn` (inside the caller's transaction, which holds the user's lock).
pub(crate) async fn apply_created(
    conn: &mut PgConnection,
    settings: &SyncSettings,
    created: CreatedCustomer<'_>,
) -> Result<Outcome, SyncError> {
    let state = CustomerState {
        kind: CustomerEventKind::Updated,
        created: created.requested_at,
        customer_id: created.id.clone(),
        customer: created.customer,
        livemode: created.livemode,
    };
    let applying = Applying::new(created, &settings.user_id_metadata_key, state);
    // Unnamed statements behind a transaction pooler: the caller's transaction ends, the
    // server connection goes to another client.
    let mut scope = EventScope::within(conn, settings.connection);
    let applied = apply_one(&mut scope, &applying).await?;
    Ok(applied.applied.outcome())
}
