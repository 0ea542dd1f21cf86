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

use super::apply::{Recording, apply_one};
use super::rules::{CustomerEventKind, Origin};
use super::{Outcome, SyncError, SyncSettings, incoming};
use crate::domain::StripeCustomerId;
use crate::store::session::EventScope;
use crate::stripe::event::CustomerObject;

/// A customer as Stripe's create or search answered it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreatedCustomer<'a> {
    pub id: &'a StripeCustomerId,
    pub customer: &'a CustomerObject,
    /// Unix second no later than Stripe's creation (the request's start).
    pub requested_at: i64,
    /// The API key's mode.
    pub livemode: bool,
    /// `ensure-customer:<user_id>:<attempt>`
    pub source_id: &'a str,
}

/// Applies it on `conn` (inside the caller's transaction, which holds the user's lock).
pub(crate) async fn apply_created(
    conn: &mut PgConnection,
    settings: &SyncSettings,
    created: CreatedCustomer<'_>,
) -> Result<Outcome, SyncError> {
    let origin = Origin::Created {
        id: created.source_id,
    };
    let incoming = incoming(
        &settings.user_id_metadata_key,
        CustomerEventKind::Updated,
        origin,
        created.requested_at,
        created.id,
        created.customer,
        created.livemode,
    );
    let recording = Recording::Created {
        source_id: created.source_id,
    };
    // Unnamed statements behind a transaction pooler: the caller's transaction ends, the
    // server connection goes to another client.
    let mut scope = EventScope::within(conn, settings.connection);
    let applied = apply_one(&mut scope, recording, &incoming).await?;
    Ok(applied.applied.outcome())
}
