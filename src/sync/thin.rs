//! Thin events on `POST /webhooks/stripe`: the event names an object, the service fetches it
//! from Stripe's API and applies what Stripe answered (docs/design.md "Thin events"). The
//! decoder is `stripe::thin_event`; everything after it is here, but for what a thin
//! subscription event does once it is known to be one (`subscriptions::thin`, which fetches the
//! subscription: docs/design.md "Tiers").
//!
//! Order of work, cheapest refusal first: a type the service does not apply is recorded as
//! `ignored` and a malformed customer id as `skipped` (no fetch for either); an event already in
//! the ledger is a `duplicate` without a call to Stripe; without an API key nothing is written
//! and the caller answers 503 `not_configured`, so that Stripe keeps the event; then the fetch,
//! within a deadline that leaves the database its share of the webhook's; then the one apply
//! loop, which writes the row and records the event in one statement.
//!
//! The customer's state is ordered as a fetched one ([`super::rules::EventOrder::fetched`]): the
//! fetch's start, below every event of its second. The thin event's own `created` says when
//! something changed, not what the customer looked like then; the fetch says what it looked
//! like at its start. So a snapshot event older than the fetch that is delivered afterwards is
//! `stale_event`, and one of the fetch's second still applies (it may describe a change the
//! fetch did not see).

use std::time::Duration;

use sqlx::PgPool;

use super::apply::{self, Applying, CustomerState, EventRecording};
use super::event::{record_failed, record_only, recording_refusal};
use super::ledger_entry::{Delivered, ledger_entry};
use super::request::FetchedCustomer;
use super::rules::CustomerEventKind;
use super::{
    FailReason, IgnoreReason, Outcome, SkipReason, SyncError, SyncSettings, subscriptions,
};
use crate::domain::StripeCustomerId;
use crate::store::session::EventScope;
use crate::store::{StoreError, recorded};
use crate::stripe::thin_event::ThinEvent;
use crate::stripe_api::customers::{self, ApiCustomer, Retrieved};
use crate::stripe_api::{ApiError, StripeClient};

/// The fetch's share of the webhook's 4.5 s: [`crate::stripe_api::RetryPolicy::within_a_webhook`]
/// keeps its attempts inside it; this bounds them whatever happens.
pub(crate) const FETCH_DEADLINE: Duration = Duration::from_millis(3000);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ThinEventError {
    /// `STRIPE_API_KEY` is not set: the event's customer or subscription cannot be fetched.
    #[error(
        "a thin event needs STRIPE_API_KEY to fetch its customer or subscription, and it is not set"
    )]
    NotConfigured,
    #[error("fetching the thin event's object from Stripe: {0}")]
    Stripe(#[from] ApiError),
    #[error("fetching the thin event's object from Stripe took longer than {FETCH_DEADLINE:?}")]
    FetchTimedOut,
    /// The event's mode is not the key's: the key cannot read its customer or subscription.
    #[error(
        "a {} thin event cannot be fetched with STRIPE_API_KEY, a key of the other mode: set a \
         key of the event's mode, or STRIPE_MODE to the key's mode",
        if *event_livemode { "live-mode" } else { "test-mode" }
    )]
    OtherModeKey { event_livemode: bool },
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<StoreError> for ThinEventError {
    fn from(error: StoreError) -> Self {
        Self::Sync(error.into())
    }
}

/// What a thin event is about, as far as the service applies it. (Another kind of object is
/// one more arm here, with its own fetch and apply.)
enum Subject<'e> {
    /// A `v1.customer.*` event: its customer's id as sent, not yet validated.
    Customer(&'e str),
    /// A `v1.customer.subscription.*` event: its subscription's id as sent, not yet validated.
    Subscription(&'e str),
}

impl<'e> Subject<'e> {
    /// `Err`: the event is only recorded, with this outcome, and nothing is fetched.
    fn of(settings: &SyncSettings, event: &'e ThinEvent<'_>) -> Result<Self, Outcome> {
        if !settings.mode.keeps(event.livemode) {
            return Err(Outcome::Ignored(Some(IgnoreReason::OtherMode)));
        }
        match (
            event.subscription_id.as_deref(),
            event.customer_id.as_deref(),
        ) {
            (Some(subscription_id), _) => Ok(Self::Subscription(subscription_id)),
            (None, Some(customer_id)) => Ok(Self::Customer(customer_id)),
            (None, None) => Err(Outcome::Ignored(None)),
        }
    }
}

/// Handles one verified thin event. `client`: the Stripe API, when `STRIPE_API_KEY` is set.
pub(crate) async fn apply_thin(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    event: &ThinEvent<'_>,
) -> Result<Outcome, ThinEventError> {
    let subject = match Subject::of(settings, event) {
        Ok(subject) => subject,
        Err(outcome) => return Ok(record(pool, settings, event, outcome).await?),
    };
    // A scope of its own, ended before the fetch: no transaction is held open while Stripe
    // answers (behind a transaction pooler it would pin a server connection).
    let mut scope = EventScope::begin(pool, settings.connection).await?;
    let already_recorded = recorded::is_recorded(&mut scope, event.id.as_str()).await?;
    scope.commit().await?;
    if already_recorded {
        return Ok(Outcome::Duplicate);
    }
    match subject {
        Subject::Customer(raw_customer_id) => {
            apply_customer(pool, settings, client, event, raw_customer_id).await
        }
        Subject::Subscription(raw_subscription_id) => {
            subscriptions::thin::apply(pool, settings, client, event, raw_subscription_id).await
        }
    }
}

/// Fetches the thin event's customer and applies it.
async fn apply_customer(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    event: &ThinEvent<'_>,
    raw_customer_id: &str,
) -> Result<Outcome, ThinEventError> {
    let Ok(customer_id) = StripeCustomerId::parse(raw_customer_id) else {
        let skipped = Outcome::Skipped(SkipReason::InvalidCustomerId);
        return Ok(record(pool, settings, event, skipped).await?);
    };
    let client = client.ok_or(ThinEventError::NotConfigured)?;
    match fetch(client, event, &customer_id).await? {
        Fetch::Customer {
            customer,
            requested_at,
        } => {
            let fetched = FetchedCustomer {
                customer: &customer.customer,
                deleted: customer.deleted,
                requested_at,
            };
            let mut scope = EventScope::begin(pool, settings.connection).await?;
            let outcome = apply_fetched_in(&mut scope, settings, event, customer_id, fetched);
            let outcome = outcome.await?;
            scope.commit().await?;
            Ok(outcome)
        }
        Fetch::Unknown { error } => {
            let reason = FailReason::CustomerNotFound;
            Ok(record_unknown(pool, settings, event, reason, &error).await?)
        }
    }
}

/// Records a thin event as `failed` for `reason` without applying anything: the object it
/// names is unknown to the API key (a 404 `resource_missing`), which is never its deletion.
pub(super) async fn record_unknown(
    pool: &PgPool,
    settings: &SyncSettings,
    event: &ThinEvent<'_>,
    reason: FailReason,
    error: &str,
) -> Result<Outcome, SyncError> {
    let entry = ledger_entry(Delivered::Thin(event), None);
    let mut scope = EventScope::begin(pool, settings.connection).await?;
    let outcome = record_failed(&mut scope, &entry, reason, error).await?;
    scope.commit().await?;
    Ok(outcome)
}

/// What the fetch of a thin event's customer found.
pub(crate) enum Fetch {
    /// The customer as Stripe answered it (`deleted: true` included), and when it was read.
    Customer {
        customer: ApiCustomer,
        requested_at: i64,
    },
    /// Stripe's 404 `resource_missing`: this key's account and mode do not know the customer.
    /// Only Stripe's own deletion makes a tombstone, so this is recorded as `failed`
    /// (`customer_not_found`), to re-apply once the key is right; `error` says so.
    Unknown { error: String },
}

/// Fetches the thin event's customer within [`FETCH_DEADLINE`]. Anything that is not one of
/// Stripe's documented answers about the customer (an unknown URL, a proxy's page, another
/// object or id, the key refused) is an error, and nothing is written.
pub(crate) async fn fetch(
    client: &StripeClient,
    event: &ThinEvent<'_>,
    customer_id: &StripeCustomerId,
) -> Result<Fetch, ThinEventError> {
    // Stripe answers a key with its own mode's customers: a thin event of the other mode
    // cannot be read with this key, and a 404 for it would say nothing of the customer.
    if event.livemode != client.key_livemode() {
        return Err(ThinEventError::OtherModeKey {
            event_livemode: event.livemode,
        });
    }
    let (retrieved, requested_at) = tokio::time::timeout(
        FETCH_DEADLINE,
        customers::retrieve(client, customer_id.as_str()),
    )
    .await
    .map_err(|_| ThinEventError::FetchTimedOut)??;
    Ok(match retrieved {
        Retrieved::Found(customer) => Fetch::Customer {
            customer,
            requested_at,
        },
        Retrieved::ResourceMissing => Fetch::Unknown {
            error: format!(
                "Stripe answered 404 resource_missing for customer {customer_id}: STRIPE_API_KEY's \
                 account and mode do not know it (a key of another account or mode, or test \
                 data deleted in the dashboard); re-apply with `reapply-failed` once the key is \
                 right"
            ),
        },
    })
}

/// Applies the fetched state of the thin event's customer (`deleted`: Stripe answered
/// `deleted: true`, applied as a delete) and records the event, in the caller's scope (the
/// webhook's, or `reapply-failed`'s transaction, which also removes the event's `failed`
/// row); the caller commits.
pub(super) async fn apply_fetched_in(
    scope: &mut EventScope<'_>,
    settings: &SyncSettings,
    event: &ThinEvent<'_>,
    customer_id: StripeCustomerId,
    fetched: FetchedCustomer<'_>,
) -> Result<Outcome, SyncError> {
    // Stripe deleted the customer, whether the event says so or the fetch found out.
    let deleted = fetched.deleted || event.event_type == "v1.customer.deleted";
    let entry = ledger_entry(
        Delivered::Thin(event),
        deleted.then_some(customer_id.as_str()),
    );
    let kind = if fetched.deleted {
        CustomerEventKind::Deleted
    } else {
        CustomerEventKind::Updated
    };
    let state = CustomerState {
        kind,
        created: fetched.requested_at,
        customer_id: customer_id.clone(),
        customer: fetched.customer,
        livemode: event.livemode,
    };
    let applying = Applying::new(
        EventRecording::thin(entry),
        &settings.user_id_metadata_key,
        state,
    );
    let applied = apply::apply_one(scope, &applying).await;
    let applied = applied.map(|applied| applied.applied.outcome());
    let outcome = recording_refusal(scope, &entry, applied).await?;
    if outcome == Outcome::Processed {
        // The owner it names may now get the tier of subscriptions kept before it.
        let linked = subscriptions::linked::names_an_owner(applying.state());
        subscriptions::linked::recompute_for(scope, settings, linked.as_slice()).await;
    }
    Ok(outcome)
}

/// Records a thin event that changes no row (`ignored`: a type the service does not apply;
/// `skipped`: a customer or subscription id that is not one), without fetching anything.
pub(super) async fn record(
    pool: &PgPool,
    settings: &SyncSettings,
    event: &ThinEvent<'_>,
    outcome: Outcome,
) -> Result<Outcome, SyncError> {
    let entry = ledger_entry(Delivered::Thin(event), None);
    let mut scope = EventScope::begin(pool, settings.connection).await?;
    let outcome = record_only(&mut scope, &entry, outcome).await?;
    scope.commit().await?;
    Ok(outcome)
}
