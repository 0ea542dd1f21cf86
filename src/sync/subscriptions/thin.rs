//! Thin `v1.customer.subscription.*` events (docs/design.md "Tiers"): the event names a
//! subscription; the service fetches it from Stripe's API (and the products its prices need),
//! then applies what Stripe answered under the subscription rules, as a state read at the
//! fetch's start (below every event of its second, as a fetched customer is), and records the
//! event with it.
//!
//! As for thin customer events: no transaction is held while Stripe answers; a subscription
//! the key does not know (404 `resource_missing`) is never an end: the event is recorded
//! `failed` (`subscription_not_found`) and `reapply-failed` fetches it again; any answer that
//! is not Stripe's writes nothing and the webhook answers 503.

use sqlx::PgPool;

use super::products;
use super::rules::FETCHED_RANK;
use super::{SubscriptionState, apply_recorded, is_subscription_id};
use crate::store::StoreError;
use crate::store::ledger;
use crate::store::session::EventScope;
use crate::stripe::event::SubscriptionObject;
use crate::stripe::thin_event::ThinEvent;
use crate::stripe_api::StripeClient;
use crate::stripe_api::subscriptions::{self, Retrieved};
use crate::sync::event::recording_refusal;
use crate::sync::ledger_entry::{Delivered, ledger_entry};
use crate::sync::thin::{self, FETCH_DEADLINE, ThinEventError};
use crate::sync::{FailReason, Outcome, SkipReason, SyncError, SyncSettings};

const DELETED: &str = "v1.customer.subscription.deleted";

/// Fetches a verified thin subscription event's subscription and applies it: the
/// `Subject::Subscription` arm of `sync::thin`, once the event is known to be of a mode this
/// deployment keeps and not yet recorded.
pub(in crate::sync) async fn apply(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    event: &ThinEvent<'_>,
    subscription_id: &str,
) -> Result<Outcome, ThinEventError> {
    if !is_subscription_id(subscription_id) {
        let skipped = Outcome::Skipped(SkipReason::InvalidSubscription);
        return Ok(thin::record(pool, settings, event, skipped).await?);
    }
    let client = client.ok_or(ThinEventError::NotConfigured)?;
    match fetch(client, settings, event, subscription_id).await? {
        Fetched::Found {
            subscription,
            requested_at,
        } => {
            let mut scope = EventScope::begin(pool, settings.connection).await?;
            let outcome =
                apply_in(&mut scope, settings, event, &subscription, requested_at).await?;
            scope.commit().await?;
            Ok(outcome)
        }
        Fetched::Unknown { error } => {
            let reason = FailReason::SubscriptionNotFound;
            Ok(thin::record_unknown(pool, settings, event, reason, &error).await?)
        }
    }
}

/// `reapply-failed` for a thin subscription event: fetched again now (outside any
/// transaction), then applied in the transaction that removes its `failed` row. `Ok(None)`:
/// re-applied meanwhile by another run; `Err`: still failing, as it was.
pub(in crate::sync) async fn reapply(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    failed_id: &str,
    event: &ThinEvent<'_>,
    subscription_id: &str,
) -> Result<Option<Outcome>, String> {
    let client = client.ok_or_else(|| {
        "a thin event is re-applied by fetching its subscription: set STRIPE_API_KEY".to_owned()
    })?;
    if !is_subscription_id(subscription_id) {
        return Err("the thin event names no valid subscription".into());
    }
    let (subscription, requested_at) = match fetch(client, settings, event, subscription_id).await {
        Ok(Fetched::Found {
            subscription,
            requested_at,
        }) => (subscription, requested_at),
        Ok(Fetched::Unknown { error }) => return Err(error),
        Err(error) => return Err(error.to_string()),
    };
    let attempt = async {
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        if !ledger::forget_failed(&mut *tx, failed_id).await? {
            return Ok(None);
        }
        let mut scope = EventScope::within(&mut tx, settings.connection);
        let outcome = apply_in(&mut scope, settings, event, &subscription, requested_at).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok::<_, SyncError>(Some(outcome))
    };
    attempt.await.map_err(|error| error.to_string())
}

enum Fetched {
    Found {
        subscription: SubscriptionObject,
        requested_at: i64,
    },
    Unknown {
        error: String,
    },
}

/// The subscription and its prices' products, within [`FETCH_DEADLINE`] in all.
async fn fetch(
    client: &StripeClient,
    settings: &SyncSettings,
    event: &ThinEvent<'_>,
    subscription_id: &str,
) -> Result<Fetched, ThinEventError> {
    if event.livemode != client.key_livemode() {
        return Err(ThinEventError::OtherModeKey {
            event_livemode: event.livemode,
        });
    }
    let work = async {
        let (retrieved, requested_at) = subscriptions::retrieve(client, subscription_id).await?;
        Ok::<_, ThinEventError>(match retrieved {
            Retrieved::Found(mut subscription) => {
                products::expand(
                    Some(client),
                    &settings.tiers,
                    &mut subscription,
                    event.livemode,
                )
                .await?;
                Fetched::Found {
                    subscription,
                    requested_at,
                }
            }
            Retrieved::ResourceMissing => Fetched::Unknown {
                error: format!(
                    "Stripe answered 404 resource_missing for subscription {subscription_id}: \
                     STRIPE_API_KEY's account and mode do not know it (a key of another account \
                     or mode, or test data deleted in the dashboard); re-apply with \
                     `reapply-failed` once the key is right"
                ),
            },
        })
    };
    tokio::time::timeout(FETCH_DEADLINE, work)
        .await
        .map_err(|_| ThinEventError::FetchTimedOut)?
}

/// Applies the fetched subscription and records the thin event with its outcome (a value the
/// database refuses: recorded `failed`).
async fn apply_in(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    event: &ThinEvent<'_>,
    subscription: &SubscriptionObject,
    requested_at: i64,
) -> Result<Outcome, SyncError> {
    let entry = ledger_entry(Delivered::Thin(event), None);
    let state = SubscriptionState {
        subscription,
        created: requested_at,
        rank: FETCHED_RANK,
        recorded_type: &event.event_type,
        source_id: event.id.as_str(),
        deleted: event.event_type == DELETED,
        livemode: event.livemode,
    };
    let applied = apply_recorded(scope, settings, &entry, &state).await;
    recording_refusal(scope, &entry, applied).await
}
