//! Applying a verified event: the rules of DESIGN.md ("Sync rules"), in one place.
//!
//! `rules` decides, `store` reads and writes. This module runs the read → decide → write
//! loop, deciding again when a concurrent writer changed the row in between.

pub mod fetched;
pub mod outcome;
pub mod rules;
pub mod thin;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

pub use outcome::{Outcome, SkipReason, UnlinkReason};

use crate::domain::StripeCustomerId;
use crate::store::ledger::{self, LedgerEntry, RowGuard};
use crate::store::{StoreError, customers};
use crate::stripe::event::{EventObject, StripeEvent};
use rules::{CustomerEventKind, Decision, IncomingCustomer, LinkCandidate, Origin};

/// Concurrent writers on one customer are rare; this many lost races in a row means
/// contention worth a 503 and a retry from Stripe rather than a spin.
const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The Stripe customer metadata key that carries the Supabase user id.
    pub user_id_metadata_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("gave up after {MAX_ATTEMPTS} concurrent changes to the same customer")]
    Contention,
}

/// Applies one verified event and records it in the ledger, exactly once.
pub async fn apply_event(
    pool: &PgPool,
    settings: &SyncSettings,
    event: &StripeEvent<'_>,
) -> Result<Outcome, SyncError> {
    let entry = LedgerEntry {
        event_id: event.id.as_str(),
        event_type: event.event_type,
        livemode: event.livemode,
        api_version: event.api_version,
        stripe_created: DateTime::from_timestamp(event.created, 0).unwrap_or_default(),
        payload: event.raw,
    };
    let kind = CustomerEventKind::from_event_type(event.event_type);
    // One connection for all of the event's statements: each checkout from sqlx's pool costs a
    // round trip of its own (the ping when the connection goes back).
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    match (&event.object, kind) {
        (EventObject::Customer(customer), Some(kind)) => {
            let Ok(customer_id) = StripeCustomerId::parse(&customer.id) else {
                return record_only(
                    &mut conn,
                    &entry,
                    Outcome::Skipped(SkipReason::InvalidCustomerId),
                )
                .await;
            };
            let incoming = IncomingCustomer {
                kind,
                origin: Origin::Event(&event.id),
                created: event.created,
                customer_id: &customer_id,
                email: customer.email.as_deref(),
                name: customer.name.as_deref(),
                default_payment_method: customer.default_payment_method.as_deref(),
                stripe_metadata: &customer.metadata,
                link: LinkCandidate::from_metadata(
                    customer.metadata.get(&settings.user_id_metadata_key),
                ),
            };
            apply_customer_state(&mut conn, &entry, &incoming).await
        }
        _ => record_only(&mut conn, &entry, Outcome::Ignored).await,
    }
}

/// The one apply loop: read → decide → write one incoming customer state together with the
/// ledger entry it arrived with (a snapshot event's `data.object`, or the customer a thin
/// event's fetch returned), deciding again when a concurrent writer changed the row in between.
pub(crate) async fn apply_customer_state(
    conn: &mut PgConnection,
    entry: &LedgerEntry<'_>,
    incoming: &IncomingCustomer<'_>,
) -> Result<Outcome, SyncError> {
    let customer_id = incoming.customer_id;
    for _ in 0..MAX_ATTEMPTS {
        let snapshot = customers::snapshot(
            &mut *conn,
            entry.event_id,
            customer_id.as_str(),
            incoming.link.user(),
        )
        .await?;
        if snapshot.already_recorded {
            return Ok(Outcome::Duplicate);
        }
        let decision = rules::decide(
            incoming,
            snapshot.stored.as_ref(),
            snapshot.user,
            Utc::now(),
        );
        let written = match &decision {
            Decision::Insert(row) => {
                customers::insert(&mut *conn, entry, customer_id.as_str(), row)
                    .await
                    .map(|()| true)
            }
            Decision::Update { version, row } => {
                customers::update(&mut *conn, entry, customer_id.as_str(), version, row).await
            }
            Decision::Skip { reason, version } => {
                let guard = RowGuard {
                    stripe_customer_id: customer_id.as_str(),
                    version: version.as_deref(),
                };
                ledger::record(
                    &mut *conn,
                    entry,
                    "skipped",
                    Some(reason.as_str()),
                    Some(guard),
                )
                .await
            }
        };
        match written {
            Ok(true) => return Ok(outcome_of(&decision)),
            Ok(false) | Err(StoreError::Conflict) => continue,
            Err(StoreError::Duplicate) => return Ok(Outcome::Duplicate),
            Err(error) => return Err(error.into()),
        }
    }
    Err(SyncError::Contention)
}

fn outcome_of(decision: &Decision) -> Outcome {
    match decision {
        Decision::Insert(_) | Decision::Update { .. } => Outcome::Processed,
        Decision::Skip { reason, .. } => Outcome::Skipped(*reason),
    }
}

pub(crate) async fn record_only(
    conn: &mut PgConnection,
    entry: &LedgerEntry<'_>,
    outcome: Outcome,
) -> Result<Outcome, SyncError> {
    let reason = outcome.reason().map(SkipReason::as_str);
    match ledger::record(conn, entry, outcome.status(), reason, None).await {
        Ok(_) => Ok(outcome),
        Err(StoreError::Duplicate) => Ok(Outcome::Duplicate),
        Err(error) => Err(error.into()),
    }
}
