//! The rules of docs/design.md ("Sync rules"), in one place: `rules::decide` decides (pure),
//! `apply` is the one loop through which every customer state reaches the table, whatever
//! its origin, and `store` reads and writes. This module is the way in for a verified event
//! (`batch`: the webhook's writers, which apply the events waiting together); `thin`,
//! `fetched` and `created` are the ways in for the other origins.

pub(crate) mod apply;
pub mod batch;
pub(crate) mod created;
pub(crate) mod fetched;
pub(crate) mod rules;
pub(crate) mod subscriptions;
pub(crate) mod thin;

use chrono::DateTime;
use sqlx::{PgConnection, PgPool};

// What became of an event is a domain type: the ledger, the metrics and the HTTP answer name it.
pub use crate::domain::outcome::{FailReason, IgnoreReason, Outcome, SkipReason};

use crate::domain::{StripeCustomerId, StripeMode};
use crate::store::StoreError;
use crate::store::ledger::{self, LedgerEntry, Recorded};
use crate::store::pool::ConnectionPolicy;
use crate::store::session::EventScope;
use crate::stripe::event::{CustomerObject, EventObject, StripeEvent, SubscriptionObject};
use apply::Recording;
use rules::{CustomerEventKind, IncomingCustomer, LinkCandidate, Origin};

/// Concurrent writers on one customer are rare; this many lost races in a row means
/// contention worth a 503 and a retry from Stripe rather than a spin.
const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The Stripe customer metadata key that carries the Supabase user id.
    pub user_id_metadata_key: String,
    /// The Stripe mode(s) this deployment keeps; events of another are `ignored`.
    pub mode: StripeMode,
    /// How the database is reached (`DATABASE_POOL_MODE`) and the statement timeout.
    pub connection: ConnectionPolicy,
    /// Which tiers exist and where an owner's tier is written (docs/design.md "Tiers").
    pub tiers: crate::configuration::TierSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("gave up after {MAX_ATTEMPTS} concurrent changes to the same customer")]
    Contention,
    /// The batch the event was written in failed for want of the database; nothing of it
    /// was written.
    #[error("the event's batch was not written: {0}")]
    BatchUnavailable(String),
    /// The request stopped waiting before the event's write was done; the event is answered
    /// 503, and a redelivery finds it recorded only if a write already sent committed.
    #[error("the event was not written before its deadline")]
    DeadlinePassed,
    /// The writers are gone (the service is shutting down).
    #[error("no writer is taking events")]
    WriterStopped,
}

/// Applies one verified event and records it in the ledger, exactly once. An event the
/// database refuses as sent is recorded as `failed` (never an error Stripe would retry).
pub(crate) async fn apply_event(
    pool: &PgPool,
    settings: &SyncSettings,
    event: &StripeEvent<'_>,
) -> Result<Outcome, SyncError> {
    // One connection for all of the event's statements: each checkout from sqlx's pool costs a
    // round trip of its own (the ping when the connection goes back). Behind a transaction
    // pooler the scope is also one transaction (see `store::session`).
    let mut scope = EventScope::begin(pool, settings.connection).await?;
    let applied = apply_event_in(&mut scope, settings, event).await;
    let outcome = recording_refusal(&mut scope, &ledger_entry(event), applied).await?;
    scope.commit().await?;
    Ok(outcome)
}

/// Turns the database's refusal of an event's data into the event recorded as `failed`:
/// answered 200, never a 503 that Stripe would retry for days.
pub(crate) async fn recording_refusal(
    conn: &mut EventScope<'_>,
    entry: &LedgerEntry<'_>,
    applied: Result<Outcome, SyncError>,
) -> Result<Outcome, SyncError> {
    match applied {
        Err(SyncError::Store(StoreError::Rejected { code, message })) => {
            tracing::error!(
                sqlstate = %code,
                "the database refuses the event as sent; recording it as failed"
            );
            let error = format!("{code}: {message}");
            conn.restart().await?;
            record_failed(conn, entry, FailReason::from_sqlstate(&code), &error).await
        }
        applied => applied,
    }
}

/// Applies one verified event on `conn` (which may be inside the caller's transaction) and
/// records it in the ledger; a refusal of the database is returned, not recorded.
pub(crate) async fn apply_event_on(
    conn: &mut PgConnection,
    settings: &SyncSettings,
    event: &StripeEvent<'_>,
) -> Result<Outcome, SyncError> {
    apply_event_in(&mut EventScope::on(conn), settings, event).await
}

async fn apply_event_in(
    conn: &mut EventScope<'_>,
    settings: &SyncSettings,
    event: &StripeEvent<'_>,
) -> Result<Outcome, SyncError> {
    match plan(settings, event) {
        EventPlan::RecordOnly { entry, outcome } => record_only(conn, &entry, outcome).await,
        EventPlan::Customer {
            entry,
            kind,
            customer_id,
            customer,
        } => {
            let incoming = event_state(settings, event, kind, &customer_id, customer);
            apply_customer_state(conn, &entry, &incoming).await
        }
        EventPlan::Subscription {
            entry,
            kind,
            subscription,
        } => {
            let event = subscriptions::SubscriptionEvent {
                entry: &entry,
                kind,
                created: event.created,
                livemode: event.livemode,
                subscription,
            };
            subscriptions::apply_subscription_event(conn, settings, &event).await
        }
    }
}

/// What an event asks of the table, known before anything is read.
pub(crate) enum EventPlan<'e> {
    /// Recorded in the ledger with this outcome; no customer row is involved.
    RecordOnly {
        entry: LedgerEntry<'e>,
        outcome: Outcome,
    },
    /// A customer event, to be decided against the customer's row.
    Customer {
        entry: LedgerEntry<'e>,
        kind: CustomerEventKind,
        customer_id: StripeCustomerId,
        customer: &'e CustomerObject,
    },
    /// A subscription event, applied on its own (see `subscriptions`).
    Subscription {
        entry: LedgerEntry<'e>,
        kind: subscriptions::rules::SubscriptionEventKind,
        subscription: &'e SubscriptionObject,
    },
}

pub(crate) fn plan<'e>(settings: &SyncSettings, event: &'e StripeEvent<'_>) -> EventPlan<'e> {
    let entry = ledger_entry(event);
    if !settings.mode.keeps(event.livemode) {
        // Not a deletion this deployment keeps either.
        let entry = LedgerEntry {
            deleted_customer_id: None,
            ..entry
        };
        let outcome = Outcome::Ignored(Some(IgnoreReason::OtherMode));
        return EventPlan::RecordOnly { entry, outcome };
    }
    if let EventObject::Subscription(subscription) = &event.object
        && let Some(kind) =
            subscriptions::rules::SubscriptionEventKind::from_event_type(event.event_type)
    {
        return EventPlan::Subscription {
            entry,
            kind,
            subscription,
        };
    }
    let kind = CustomerEventKind::from_event_type(event.event_type);
    match (&event.object, kind) {
        (EventObject::Customer(customer), Some(kind)) => {
            match StripeCustomerId::parse(&customer.id) {
                Ok(customer_id) => EventPlan::Customer {
                    entry,
                    kind,
                    customer_id,
                    customer,
                },
                Err(_) => EventPlan::RecordOnly {
                    entry,
                    outcome: Outcome::Skipped(SkipReason::InvalidCustomerId),
                },
            }
        }
        _ => EventPlan::RecordOnly {
            entry,
            outcome: Outcome::Ignored(None),
        },
    }
}

/// The customer state a snapshot event carries, ready for the rules.
pub(crate) fn event_state<'a>(
    settings: &SyncSettings,
    event: &'a StripeEvent<'_>,
    kind: CustomerEventKind,
    customer_id: &'a StripeCustomerId,
    customer: &'a CustomerObject,
) -> IncomingCustomer<'a> {
    incoming(
        &settings.user_id_metadata_key,
        kind,
        Origin::Event(&event.id),
        event.created,
        customer_id,
        customer,
        event.livemode,
    )
}

fn ledger_entry<'e>(event: &'e StripeEvent<'_>) -> LedgerEntry<'e> {
    let deleted_customer_id = match &event.object {
        EventObject::Customer(customer)
            if CustomerEventKind::from_event_type(event.event_type)
                == Some(CustomerEventKind::Deleted)
                && StripeCustomerId::parse(&customer.id).is_ok() =>
        {
            Some(customer.id.as_str())
        }
        _ => None,
    };
    LedgerEntry {
        event_id: event.id.as_str(),
        event_type: event.event_type,
        livemode: event.livemode,
        api_version: event.api_version,
        stripe_created: DateTime::from_timestamp(event.created, 0).unwrap_or_default(),
        payload: event.raw,
        payload_sanitized: event.payload_sanitized,
        deleted_customer_id,
    }
}

/// A customer state as Stripe sent (or returned) it, ready for the rules.
pub(crate) fn incoming<'a>(
    user_id_metadata_key: &str,
    kind: CustomerEventKind,
    origin: Origin<'a>,
    created: i64,
    customer_id: &'a StripeCustomerId,
    customer: &'a CustomerObject,
    livemode: bool,
) -> IncomingCustomer<'a> {
    IncomingCustomer {
        kind,
        origin,
        created,
        customer_id,
        email: customer.email.as_deref(),
        name: customer.name.as_deref(),
        default_payment_method: customer.default_payment_method.as_deref(),
        stripe_metadata: &customer.metadata,
        link: LinkCandidate::from_owner_metadata(
            customer.metadata.get(user_id_metadata_key),
            customer.metadata.get(rules::ORGANIZATION_ID_METADATA_KEY),
        ),
        livemode,
    }
}

/// Applies one customer state through the apply loop together with the ledger entry it
/// arrived with (a snapshot event's `data.object`, or the customer a thin event's fetch
/// returned), and says what became of the event.
pub(crate) async fn apply_customer_state(
    conn: &mut EventScope<'_>,
    entry: &LedgerEntry<'_>,
    incoming: &IncomingCustomer<'_>,
) -> Result<Outcome, SyncError> {
    let applied = apply::apply_one(conn, Recording::Event(entry), incoming).await?;
    Ok(applied.applied.outcome())
}

pub(crate) async fn record_only(
    conn: &mut EventScope<'_>,
    entry: &LedgerEntry<'_>,
    outcome: Outcome,
) -> Result<Outcome, SyncError> {
    match ledger::record(conn, entry, Recorded::from(outcome), None).await {
        Ok(_) => Ok(outcome),
        Err(StoreError::Duplicate) => Ok(Outcome::Duplicate),
        Err(error) => Err(error.into()),
    }
}

/// Records an event the database refused. Should even its payload be refused, a stub that
/// names the event stands in for it, so that the failure is on record all the same.
pub(crate) async fn record_failed(
    conn: &mut EventScope<'_>,
    entry: &LedgerEntry<'_>,
    reason: FailReason,
    error: &str,
) -> Result<Outcome, SyncError> {
    let recorded = Recorded {
        outcome: Outcome::Failed(reason),
        error: Some(error),
    };
    let result = match ledger::record(&mut *conn, entry, recorded, None).await {
        Err(StoreError::Rejected { .. }) => {
            conn.restart().await?;
            let stub = serde_json::json!({
                "id": entry.event_id,
                "object": "event",
                "type": entry.event_type,
                "payload_not_stored": "the database refused the payload as well",
            })
            .to_string();
            let stub_entry = LedgerEntry {
                payload: &stub,
                payload_sanitized: true,
                ..*entry
            };
            ledger::record(&mut *conn, &stub_entry, recorded, None).await
        }
        first => first,
    };
    match result {
        Ok(_) => Ok(Outcome::Failed(reason)),
        Err(StoreError::Duplicate) => Ok(Outcome::Duplicate),
        Err(error) => Err(error.into()),
    }
}
