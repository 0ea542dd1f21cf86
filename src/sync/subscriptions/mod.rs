//! Subscriptions and the tiers they grant (docs/design.md "Tiers"). A subscription event is
//! applied in one transaction of its own, under a lock on its customer: the ledger row, the
//! subscription's row, and the owner's tier (written only when it changes) commit together.
//! The decisions are `rules`' (pure); the SQL is `store::subscriptions`'.

pub(crate) mod rules;

use chrono::DateTime;

use super::event::record_only;
use super::{Outcome, SkipReason, SyncError, SyncSettings};
use crate::domain::{ColumnName, StripeCustomerId};
use crate::store::StoreError;
use crate::store::ledger::{self, LedgerEntry, Recorded};
use crate::store::session::EventScope;
use crate::store::subscriptions::{self as store, SubscriptionRow, TierOwner};
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

fn is_subscription_id(id: &str) -> bool {
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
    let subscription = event.subscription;
    let customer = subscription
        .customer
        .as_deref()
        .and_then(|id| StripeCustomerId::parse(id).ok());
    let (Some(customer), Some(status), true) = (
        customer,
        subscription.status.as_deref(),
        is_subscription_id(&subscription.id),
    ) else {
        let outcome = Outcome::Skipped(SkipReason::InvalidSubscription);
        return record_only(scope, event.entry, outcome).await;
    };
    let (mut transaction, policy) = scope.nested().await?;
    let applied = {
        let mut inner = EventScope::within(&mut transaction, policy);
        apply_in(&mut inner, settings, event, customer.as_str(), status).await
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

async fn apply_in(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    event: &SubscriptionEvent<'_>,
    customer: &str,
    status: &str,
) -> Result<Outcome, SyncError> {
    store::lock_customer(scope, customer).await?;
    if store::already_recorded(scope, event.entry.event_id.as_str()).await? {
        return Ok(Outcome::Duplicate);
    }
    let stored = store::stored_order(scope, &event.subscription.id).await?;
    if let Err(reason) = rules::decide(event.kind, event.created, stored.as_ref()) {
        record(scope, event.entry, Outcome::Skipped(reason)).await?;
        return Ok(Outcome::Skipped(reason));
    }
    store::write(scope, &row(settings, event, customer, status)).await?;

    let subscriptions = store::of_customer(scope, customer).await?;
    let tier = rules::owner_tier(&settings.tiers, &subscriptions);
    let organization_tier = ColumnName::parse("subscription_tier").expect("a column name");
    let changed = match store::owner(scope, customer).await? {
        TierOwner::Organization(organization) => {
            let table = &settings.tiers.organizations;
            store::write_tier(scope, table, &organization_tier, organization, tier).await?
        }
        TierOwner::User(user) => match &settings.tiers.profile_column {
            Some(column) => {
                let profiles =
                    crate::domain::TableName::parse("public.profiles").expect("a table name");
                store::write_tier(scope, &profiles, column, user, tier).await?
            }
            None => false,
        },
        TierOwner::Nobody => false,
    };
    if changed {
        tracing::info!(tier, "an owner's tier changed");
    }
    record(scope, event.entry, Outcome::Processed).await?;
    Ok(Outcome::Processed)
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
    event: &'a SubscriptionEvent<'a>,
    customer: &'a str,
    status: &'a str,
) -> SubscriptionRow<'a> {
    let subscription = event.subscription;
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
            tracing::warn!(price = %price.id, "a subscribed price names no tier");
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
        livemode: event.livemode,
        last_event_id: event.entry.event_id.as_str(),
        last_event_created: event.created,
        last_event_type: event.kind.as_event_type(),
        ended: rules::is_ended(event.kind, status),
    }
}
