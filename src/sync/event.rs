//! A snapshot event (`object: "event"`, its customer or subscription in `data.object`): what it
//! asks of the table ([`EventPlan`]), applied on its own ([`apply_event`]) or in a webhook
//! writer's batch (`super::batch`), and recorded in the ledger exactly once. Also how an event
//! that changes no row, or that the database refuses, is recorded (thin events too).

use sqlx::{PgConnection, PgPool};

use super::apply::{self, Applying, CustomerState, EventRecording};
use super::ledger_entry::{Delivered, ledger_entry};
use super::rules::CustomerEventKind;
use super::subscriptions::{self, SubscriptionEvent, rules::SubscriptionEventKind};
use super::{FailReason, IgnoreReason, Outcome, SkipReason, SyncError, SyncSettings};
use crate::domain::StripeCustomerId;
use crate::store::StoreError;
use crate::store::ledger::{self, LedgerEntry, Recorded};
use crate::store::session::EventScope;
use crate::stripe::event::{EventObject, StripeEvent, SubscriptionObject};

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
    let plan = EventPlan::of(settings, event);
    let applied = apply_plan(&mut scope, settings, &plan).await;
    let outcome = recording_refusal(&mut scope, plan.entry(), applied).await?;
    scope.commit().await?;
    Ok(outcome)
}

/// Applies one verified event on `conn` (inside the caller's transaction) and records it in
/// the ledger; a refusal of the database is returned, not recorded.
pub(super) async fn apply_event_on(
    conn: &mut PgConnection,
    settings: &SyncSettings,
    event: &StripeEvent<'_>,
) -> Result<Outcome, SyncError> {
    let plan = EventPlan::of(settings, event);
    apply_plan(&mut EventScope::on(conn), settings, &plan).await
}

/// Turns the database's refusal of an event's data into the event recorded as `failed`:
/// answered 200, never a 503 that Stripe would retry for days.
pub(super) async fn recording_refusal(
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

/// Applies what `plan` asks; a refusal of the database is returned, not recorded.
pub(super) async fn apply_plan(
    conn: &mut EventScope<'_>,
    settings: &SyncSettings,
    plan: &EventPlan<'_>,
) -> Result<Outcome, SyncError> {
    match plan {
        EventPlan::RecordOnly { entry, outcome } => record_only(conn, entry, *outcome).await,
        EventPlan::Customer(applying) => {
            let outcome = apply::apply_one(conn, applying).await?.applied.outcome();
            if subscriptions::linked::may_give_a_tier(outcome) {
                // The owner it names may now get the tier of subscriptions kept before it.
                let linked = subscriptions::linked::names_an_owner(applying.state());
                subscriptions::linked::recompute_for(conn, settings, linked.as_slice()).await;
            }
            Ok(outcome)
        }
        EventPlan::Subscription {
            entry,
            kind,
            subscription,
            created,
        } => {
            let event = SubscriptionEvent {
                entry,
                kind: *kind,
                created: *created,
                livemode: entry.livemode,
                subscription,
            };
            subscriptions::apply_subscription_event(conn, settings, &event).await
        }
    }
}

/// What a snapshot event asks of the table, known before anything is read: the one
/// representation of an event, applied alone or in a batch.
// A plan lives for one event, on the stack or in a batch's vector for the batch's time.
#[allow(clippy::large_enum_variant)]
pub(crate) enum EventPlan<'e> {
    /// Recorded in the ledger with this outcome; no customer row is involved.
    RecordOnly {
        entry: LedgerEntry<'e>,
        outcome: Outcome,
    },
    /// A customer event: its state, to be decided against the customer's row.
    Customer(Applying<'e, EventRecording<'e>>),
    /// A subscription event, applied on its own (see `subscriptions`).
    Subscription {
        entry: LedgerEntry<'e>,
        kind: SubscriptionEventKind,
        subscription: &'e SubscriptionObject,
        created: i64,
    },
}

impl<'e> EventPlan<'e> {
    pub(crate) fn of(settings: &SyncSettings, event: &'e StripeEvent<'_>) -> Self {
        let entry = ledger_entry(Delivered::Snapshot(event), deleted_customer(event));
        if !settings.mode.keeps(event.livemode) {
            // Not a deletion this deployment keeps either.
            let entry = LedgerEntry {
                deleted_customer_id: None,
                ..entry
            };
            let outcome = Outcome::Ignored(Some(IgnoreReason::OtherMode));
            return Self::RecordOnly { entry, outcome };
        }
        if let EventObject::Subscription(subscription) = &event.object
            && let Some(kind) = SubscriptionEventKind::from_event_type(event.event_type)
        {
            return Self::Subscription {
                entry,
                kind,
                subscription,
                created: event.created,
            };
        }
        let kind = CustomerEventKind::from_event_type(event.event_type);
        let (EventObject::Customer(customer), Some(kind)) = (&event.object, kind) else {
            return Self::RecordOnly {
                entry,
                outcome: Outcome::Ignored(None),
            };
        };
        let Ok(customer_id) = StripeCustomerId::parse(&customer.id) else {
            return Self::RecordOnly {
                entry,
                outcome: Outcome::Skipped(SkipReason::InvalidCustomerId),
            };
        };
        let state = CustomerState {
            kind,
            created: event.created,
            customer_id,
            customer,
            livemode: event.livemode,
        };
        let recording = EventRecording::snapshot(entry);
        Self::Customer(Applying::new(
            recording,
            &settings.user_id_metadata_key,
            state,
        ))
    }

    /// The event's ledger row.
    pub(crate) fn entry(&self) -> &LedgerEntry<'e> {
        match self {
            Self::RecordOnly { entry, .. } | Self::Subscription { entry, .. } => entry,
            Self::Customer(applying) => applying.recording().entry(),
        }
    }
}

/// The customer a snapshot event deletes, if it does.
fn deleted_customer<'e>(event: &'e StripeEvent<'_>) -> Option<&'e str> {
    match &event.object {
        EventObject::Customer(customer)
            if CustomerEventKind::from_event_type(event.event_type)
                == Some(CustomerEventKind::Deleted)
                && StripeCustomerId::parse(&customer.id).is_ok() =>
        {
            Some(customer.id.as_str())
        }
        _ => None,
    }
}

/// Records an event that changes no row with `outcome`.
pub(super) async fn record_only(
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
pub(super) async fn record_failed(
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
                "id": entry.event_id.as_str(),
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
