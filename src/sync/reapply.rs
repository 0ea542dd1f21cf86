//! `reapply-failed`'s way in: an event the ledger holds as `failed` applied again, through the
//! webhook's own apply loop, in a transaction that also removes its `failed` row, so that an
//! event is never lost between the two and never applied twice.

use sqlx::PgPool;

use super::event::apply_event_on;
use super::request::FetchedCustomer;
use super::subscriptions::{self, products};
use super::thin::{Fetch, apply_fetched_in, fetch};
use super::{Outcome, SyncError, SyncSettings};
use crate::domain::StripeCustomerId;
use crate::store::StoreError;
use crate::store::ledger;
use crate::store::session::EventScope;
use crate::stripe::event::StripeEvent;
use crate::stripe::thin_event::{Delivery, ThinEvent};
use crate::stripe_api::StripeClient;

/// Applies the failed event `failed_id` again, `delivery` its payload as stored. `Ok(None)`:
/// re-applied meanwhile by another run. `Err`: it still fails, and why; the transaction rolled back, so
/// the event is still on record as failed.
pub(crate) async fn reapply(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    failed_id: &str,
    delivery: &Delivery<'_>,
) -> Result<Option<Outcome>, String> {
    match delivery {
        Delivery::Snapshot(event) => {
            reapply_snapshot(pool, settings, client, failed_id, event).await
        }
        Delivery::Thin(event) => reapply_thin(pool, settings, client, failed_id, event).await,
    }
}

/// The event as delivered, through the webhook's apply loop. A subscription's prices get their
/// products' metadata first (docs/design.md "Tiers"), read before the transaction, as the
/// webhook does.
async fn reapply_snapshot(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    failed_id: &str,
    event: &StripeEvent<'_>,
) -> Result<Option<Outcome>, String> {
    let mut event = event.clone();
    products::expand_event(client, settings, &mut event)
        .await
        .map_err(|error| error.to_string())?;
    let event = &event;
    let attempt = async {
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        if !ledger::forget_failed(&mut *tx, failed_id).await? {
            return Ok(None);
        }
        let outcome = apply_event_on(&mut tx, settings, event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok::<_, SyncError>(Some(outcome))
    };
    attempt.await.map_err(|error| error.to_string())
}

/// A thin event as the webhook handles it: its customer fetched from Stripe now (outside any
/// transaction), then applied in the transaction that removes its `failed` row. A customer the
/// key still does not know leaves the event failed, as it was. A thin subscription event
/// fetches its subscription instead (`subscriptions::thin`).
async fn reapply_thin(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    failed_id: &str,
    event: &ThinEvent<'_>,
) -> Result<Option<Outcome>, String> {
    if let Some(subscription_id) = event.subscription_id.as_deref() {
        let reapply = subscriptions::thin::reapply;
        return reapply(pool, settings, client, failed_id, event, subscription_id).await;
    }
    let client = client.ok_or_else(|| {
        "a thin event is re-applied by fetching its customer: set STRIPE_API_KEY".to_owned()
    })?;
    let customer_id = event
        .customer_id
        .as_deref()
        .and_then(|id| StripeCustomerId::parse(id).ok())
        .ok_or_else(|| "the thin event names no valid customer".to_owned())?;
    let (customer, requested_at) = match fetch(client, event, &customer_id).await {
        Ok(Fetch::Customer {
            customer,
            requested_at,
        }) => (customer, requested_at),
        Ok(Fetch::Unknown { error }) => return Err(error),
        Err(error) => return Err(error.to_string()),
    };
    let fetched = FetchedCustomer {
        customer: &customer.customer,
        deleted: customer.deleted,
        requested_at,
    };
    let attempt = async {
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        if !ledger::forget_failed(&mut *tx, failed_id).await? {
            return Ok(None);
        }
        let mut scope = EventScope::within(&mut tx, settings.connection);
        let outcome = apply_fetched_in(&mut scope, settings, event, customer_id, fetched).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok::<_, SyncError>(Some(outcome))
    };
    attempt.await.map_err(|error| error.to_string())
}
