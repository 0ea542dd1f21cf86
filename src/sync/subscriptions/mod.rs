//! Subscriptions and the tiers they grant (docs/design.md "Tiers"). A subscription event is
//! applied in one transaction of its own, under a lock on its customer: the ledger row, the
//! subscription's row, and the owner's tier (written only when it changes) commit together.
//! The decisions are `rules`' (pure); the SQL is `store::subscriptions`'.

pub(crate) mod fetched;
pub(crate) mod linked;
pub(crate) mod products;
pub(crate) mod rules;
pub(crate) mod thin;

use chrono::DateTime;

use super::event::record_only;
use super::{ORGANIZATION_ID_METADATA_KEY, Outcome, SkipReason, SyncError, SyncSettings};
use crate::domain::{ColumnName, StripeCustomerId};
use crate::store::StoreError;
use crate::store::ledger::{self, LedgerEntry, Recorded};
use crate::store::session::EventScope;
use crate::store::subscriptions::{
    self as store, Owner, OwnerMetadataKeys, SubscriptionRow, TierOwner,
};
use crate::stripe::event::SubscriptionObject;
use rules::SubscriptionEventKind;

/// One subscription event as the webhook (or a catch-up) delivered it.
pub(crate) struct SubscriptionEvent<'a> {
    pub entry: &'a LedgerEntry<'a>,
    pub kind: SubscriptionEventKind,
    pub created: i64,
    pub livemode: bool,
    pub subscription: &'a SubscriptionObject,
}

pub(crate) fn is_subscription_id(id: &str) -> bool {
    id.strip_prefix("sub_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Applies the event and records it, exactly once; a value the database refuses is returned
/// as `StoreError::Rejected` with nothing written (the caller records the event `failed`).
pub(crate) async fn apply_subscription_event(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    event: &SubscriptionEvent<'_>,
) -> Result<Outcome, SyncError> {
    let state = SubscriptionState {
        subscription: event.subscription,
        created: event.created,
        rank: SubscriptionEventKind::rank_of(event.kind.as_event_type()),
        recorded_type: event.kind.as_event_type(),
        source_id: event.entry.event_id.as_str(),
        deleted: event.kind == SubscriptionEventKind::Deleted,
        livemode: event.livemode,
    };
    apply_recorded(scope, settings, event.entry, &state).await
}

/// A subscription's state, from an event or read from Stripe's API, and its place in the
/// subscription's order.
pub(crate) struct SubscriptionState<'a> {
    pub subscription: &'a SubscriptionObject,
    /// With `rank`, the state's order (see `rules::decide_at`).
    pub created: i64,
    pub rank: u8,
    /// What the row records as its last applied type and id: the event's, or the command's
    /// name and run id.
    pub recorded_type: &'a str,
    pub source_id: &'a str,
    /// The event says the subscription was deleted (whatever its status).
    pub deleted: bool,
    pub livemode: bool,
}

/// Applies `state` and records `entry` with its outcome, exactly once (see
/// [`apply_subscription_event`]).
pub(crate) async fn apply_recorded(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    entry: &LedgerEntry<'_>,
    state: &SubscriptionState<'_>,
) -> Result<Outcome, SyncError> {
    let Some((customer, status)) = valid(state.subscription) else {
        let outcome = Outcome::Skipped(SkipReason::InvalidSubscription);
        return record_only(scope, entry, outcome).await;
    };
    let (mut transaction, policy) = scope.nested().await?;
    let applied = {
        let mut inner = EventScope::within(&mut transaction, policy);
        async {
            store::lock_customer(&mut inner, customer.as_str()).await?;
            if store::already_recorded(&mut inner, entry.event_id.as_str()).await? {
                return Ok(Outcome::Duplicate);
            }
            let outcome = match apply_state(&mut inner, settings, state, &customer, status).await? {
                Ok(()) => Outcome::Processed,
                Err(reason) => Outcome::Skipped(reason),
            };
            record(&mut inner, entry, outcome).await?;
            Ok(outcome)
        }
        .await
    };
    match applied {
        Ok(outcome) => {
            transaction.commit().await.map_err(StoreError::from)?;
            Ok(outcome)
        }
        // Recorded meanwhile by a writer that did not take the customer's lock (none does
        // today): this one's writes roll back with the transaction.
        Err(SyncError::Store(StoreError::Duplicate)) => Ok(Outcome::Duplicate),
        Err(error) => Err(error),
    }
}

/// Applies a state read from Stripe's API by a command's run (`backfill`, see `fetched`): no
/// ledger row, the run's id and the command's name on the subscription's row; in its own
/// transaction, rolled back in a dry run. `Ok(Err(reason))`: not applied.
async fn apply_fetched(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    state: &SubscriptionState<'_>,
    dry_run: bool,
) -> Result<Result<(), SkipReason>, SyncError> {
    let Some((customer, status)) = valid(state.subscription) else {
        return Ok(Err(SkipReason::InvalidSubscription));
    };
    let (mut transaction, policy) = scope.nested().await?;
    let applied = {
        let mut inner = EventScope::within(&mut transaction, policy);
        store::lock_customer(&mut inner, customer.as_str()).await?;
        apply_state(&mut inner, settings, state, &customer, status).await?
    };
    if !dry_run {
        transaction.commit().await.map_err(StoreError::from)?;
    }
    Ok(applied)
}

/// The customer and status of a subscription the rules can keep, or `None`.
fn valid(subscription: &SubscriptionObject) -> Option<(StripeCustomerId, &str)> {
    let customer = subscription
        .customer
        .as_deref()
        .and_then(|id| StripeCustomerId::parse(id).ok())?;
    let status = subscription.status.as_deref()?;
    is_subscription_id(&subscription.id).then_some((customer, status))
}

/// Under the customer's lock: decides `state` against the stored order, writes it and the
/// owner's tier. `Ok(Err(reason))`: nothing written.
async fn apply_state(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    state: &SubscriptionState<'_>,
    customer: &StripeCustomerId,
    status: &str,
) -> Result<Result<(), SkipReason>, SyncError> {
    let stored = store::stored_order(scope, &state.subscription.id).await?;
    if let Err(reason) = rules::decide_at(state.created, state.rank, stored.as_ref()) {
        return Ok(Err(reason));
    }
    store::write(scope, &row(settings, state, customer.as_str(), status)).await?;
    recompute_tier(scope, settings, customer.as_str()).await?;
    Ok(Ok(()))
}

/// Writes the owner's tier from all the customer's kept subscriptions, if it changed; `true`
/// when it did. The caller holds the customer's lock ([`store::lock_customer`]).
pub(crate) async fn recompute_tier(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    customer: &str,
) -> Result<bool, StoreError> {
    let keys = OwnerMetadataKeys {
        user: &settings.user_id_metadata_key,
        organization: ORGANIZATION_ID_METADATA_KEY,
    };
    let (owner, tier) = match store::owner(scope, customer, keys).await? {
        TierOwner::Nobody => return Ok(false),
        // A deleted customer bills nobody: whatever its subscriptions still say (their
        // cancellations may come later, or never), the owner it billed has none left.
        TierOwner::Released(owner) => (owner, rules::owner_tier(&settings.tiers, &[])),
        TierOwner::Bills(owner) => {
            let subscriptions = store::of_customer(scope, customer).await?;
            (owner, rules::owner_tier(&settings.tiers, &subscriptions))
        }
    };
    let changed = match (owner, &settings.tiers.profile_column) {
        (Owner::Organization(organization), _) => {
            let column = ColumnName::parse("subscription_tier").expect("a column name");
            let table = &settings.tiers.organizations;
            store::write_tier(scope, table, &column, organization, tier).await?
        }
        (Owner::User(user), Some(column)) => {
            let profiles =
                crate::domain::TableName::parse("public.profiles").expect("a table name");
            store::write_tier(scope, &profiles, column, user, tier).await?
        }
        (Owner::User(_), None) => false,
    };
    if changed {
        tracing::info!(tier, "an owner's tier changed");
    }
    Ok(changed)
}

async fn record(
    scope: &mut EventScope<'_>,
    entry: &LedgerEntry<'_>,
    outcome: Outcome,
) -> Result<(), SyncError> {
    ledger::record(&mut *scope, entry, Recorded::from(outcome), None).await?;
    Ok(())
}

fn row<'a>(
    settings: &SyncSettings,
    state: &'a SubscriptionState<'a>,
    customer: &'a str,
    status: &'a str,
) -> SubscriptionRow<'a> {
    let subscription = state.subscription;
    let prices: Vec<_> = subscription
        .items
        .data
        .iter()
        .filter_map(|item| item.price.as_ref())
        .collect();
    let tiers: Vec<Option<String>> = prices
        .iter()
        .map(|price| rules::price_tier(&settings.tiers, price))
        .collect();
    for (price, tier) in prices.iter().zip(&tiers) {
        if tier.is_none() {
            settings.tiers.products.price_without_tier(&price.id);
        }
    }
    // From the 2025 API versions on each item; before, on the subscription.
    let period_end = subscription
        .items
        .data
        .iter()
        .filter_map(|item| item.current_period_end)
        .max()
        .or(subscription.current_period_end);
    SubscriptionRow {
        id: &subscription.id,
        stripe_customer_id: customer,
        status,
        price_ids: prices.iter().map(|price| price.id.clone()).collect(),
        lookup_keys: prices
            .iter()
            .map(|price| price.lookup_key.clone())
            .collect(),
        tiers,
        cancel_at_period_end: subscription.cancel_at_period_end,
        current_period_end: period_end.and_then(|end| DateTime::from_timestamp(end, 0)),
        livemode: state.livemode,
        last_event_id: state.source_id,
        last_event_created: state.created,
        last_event_type: state.recorded_type,
        ended: state.deleted || rules::is_ended(SubscriptionEventKind::Updated, status),
    }
}
