//! Thin events on `POST /webhooks/stripe`: the event names a customer, the service fetches it
//! from Stripe's API and applies what Stripe answered (docs/design.md "Thin events"). A thin
//! subscription event goes to `sync::subscriptions::thin`, which fetches the subscription.
//!
//! Order of work, cheapest refusal first: a type the service does not apply is recorded as
//! `ignored` and a malformed customer id as `skipped` (no fetch for either); an event already in
//! the ledger is a `duplicate` without a call to Stripe; without an API key nothing is written
//! and the caller answers 503 `not_configured`, so that Stripe keeps the event; then the fetch,
//! within a deadline that leaves the database its share of the webhook's; then the one apply
//! loop, which writes the row and records the event in one statement.

use std::time::Duration;

use sqlx::PgPool;

use crate::domain::StripeCustomerId;
use crate::store::session::EventScope;
use crate::store::{StoreError, recorded};
use crate::stripe::thin_event::ThinEvent;
use crate::stripe_api::customers::{self, ApiCustomer, Retrieved};
use crate::stripe_api::{ApiError, StripeClient};
use crate::sync::fetched::FetchedCustomer;
use crate::sync::{FailReason, IgnoreReason, Outcome, SkipReason, SyncError, SyncSettings, thin};

/// The fetch's share of the webhook's 4.5 s: [`crate::stripe_api::RetryPolicy::within_a_webhook`]
/// keeps its attempts inside it; this bounds them whatever happens.
pub const FETCH_DEADLINE: Duration = Duration::from_millis(3000);

#[derive(Debug, thiserror::Error)]
pub enum ThinEventError {
    /// `STRIPE_API_KEY` is not set: the customer cannot be fetched.
    #[error("a thin customer event needs STRIPE_API_KEY to fetch the customer, and it is not set")]
    NotConfigured,
    #[error("fetching the customer from Stripe: {0}")]
    Stripe(#[from] ApiError),
    #[error("fetching the customer from Stripe took longer than {FETCH_DEADLINE:?}")]
    FetchTimedOut,
    /// The event's mode is not the key's: the key cannot read its customer.
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

/// Handles one verified thin event. `client`: the Stripe API, when `STRIPE_API_KEY` is set.
pub async fn handle(
    pool: &PgPool,
    settings: &SyncSettings,
    client: Option<&StripeClient>,
    event: &ThinEvent<'_>,
) -> Result<Outcome, ThinEventError> {
    if !settings.mode.keeps(event.livemode) {
        let other_mode = Outcome::Ignored(Some(IgnoreReason::OtherMode));
        return Ok(thin::record(pool, settings.connection, event, other_mode).await?);
    }
    if let Some(subscription_id) = event.subscription_id.as_deref() {
        return crate::sync::subscriptions::thin::handle(
            pool,
            settings,
            client,
            event,
            subscription_id,
        )
        .await;
    }
    let Some(raw_customer_id) = event.customer_id.as_deref() else {
        return Ok(thin::record(pool, settings.connection, event, Outcome::Ignored(None)).await?);
    };
    // A scope of its own, ended before the fetch: no transaction is held open while Stripe
    // answers (behind a transaction pooler it would pin a server connection).
    let mut scope = EventScope::begin(pool, settings.connection).await?;
    let already_recorded = recorded::is_recorded(&mut scope, event.id.as_str()).await?;
    scope.commit().await?;
    if already_recorded {
        return Ok(Outcome::Duplicate);
    }
    let Ok(customer_id) = StripeCustomerId::parse(raw_customer_id) else {
        let skipped = Outcome::Skipped(SkipReason::InvalidCustomerId);
        return Ok(thin::record(pool, settings.connection, event, skipped).await?);
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
            Ok(thin::apply_fetched(pool, settings, event, &customer_id, fetched).await?)
        }
        Fetch::Unknown { error } => Ok(thin::record_failed(
            pool,
            settings.connection,
            event,
            FailReason::CustomerNotFound,
            &error,
        )
        .await?),
    }
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
