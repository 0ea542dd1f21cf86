//! `public.stripe_webhook_events`: one row per verified event id.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

use super::StoreError;
use crate::domain::EventId;
use crate::domain::outcome::Outcome;

/// The ledger columns of one event (the outcome is added by the statement that records it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LedgerEntry<'a> {
    pub event_id: &'a EventId,
    pub event_type: &'a str,
    pub livemode: bool,
    pub api_version: Option<&'a str>,
    pub stripe_created: DateTime<Utc>,
    /// The event body, stored as `jsonb`: as Stripe signed it, unless `payload_sanitized`.
    pub payload: &'a str,
    /// Characters PostgreSQL text cannot hold were replaced before storing and applying.
    pub payload_sanitized: bool,
    /// The customer this event deletes (`customer.deleted`), remembered whatever the outcome:
    /// deleted is terminal.
    pub deleted_customer_id: Option<&'a str>,
}

pub(crate) type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

impl<'a> LedgerEntry<'a> {
    /// Binds the ledger columns as `$1`–`$8` (`$6` as text, cast to `jsonb` by the statement):
    /// every statement that records an event starts so.
    pub(crate) fn bind_to<'q>(&self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        self.bind_with_payload(query, Some(self.payload))
    }

    /// [`Self::bind_to`] with the payload the outcome keeps (none for an `ignored` event), then
    /// the outcome's columns as `$9`, `$10`.
    fn bind_with_outcome<'q>(&self, query: PgQuery<'q>, outcome: Outcome) -> PgQuery<'q>
    where
        'a: 'q,
    {
        let columns = OutcomeColumns::of(outcome);
        self.bind_with_payload(query, self.payload_kept(outcome))
            .bind(columns.outcome)
            .bind(columns.reason)
    }

    /// The payload the ledger keeps for `outcome`: an `ignored` event (a type the service does
    /// not apply, another mode) keeps its id, type, mode, times and outcome, and no payload:
    /// nothing re-applies it, and its payload was most of the ledger's bytes.
    pub(crate) fn payload_kept(&self, outcome: Outcome) -> Option<&'a str> {
        (!matches!(outcome, Outcome::Ignored(_))).then_some(self.payload)
    }

    fn bind_with_payload<'q>(&self, query: PgQuery<'q>, payload: Option<&'a str>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.event_id.as_str())
            .bind(self.event_type)
            .bind(self.livemode)
            .bind(self.api_version)
            .bind(self.stripe_created)
            .bind(payload)
            .bind(self.payload_sanitized)
            .bind(self.deleted_customer_id)
    }
}

/// The customer row state a record-only decision rested on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowGuard<'a> {
    pub stripe_customer_id: &'a str,
    /// `None`: the decision assumed there is no row.
    pub version: Option<&'a str>,
}

/// How an event is recorded by [`record`]: what became of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded<'a> {
    /// Never `Duplicate`: a duplicate is the ledger's refusal of a second row, not a row.
    pub outcome: Outcome,
    /// Why a `failed` event could not be applied.
    pub error: Option<&'a str>,
}

/// An event recorded with `outcome` and no error.
impl From<Outcome> for Recorded<'_> {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            error: None,
        }
    }
}

/// The ledger's `outcome` and `reason` columns of an outcome: the one place their text is
/// made for a statement to bind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutcomeColumns {
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
}

impl OutcomeColumns {
    pub(crate) fn of(outcome: Outcome) -> Self {
        Self {
            outcome: outcome.status(),
            reason: outcome.reason(),
        }
    }
}

/// Whether a record-only decision still rests on what it read, over a relation `g`
/// (`guard_customer_id`, `guard_version`, `deleted_customer_id`): the guarded row is still at
/// `guard_version` (`null`: still no row), and a delete recorded against no row sees a row
/// inserted at this very moment (see `stripe_customers_may_record_deletion`). No guard
/// (`guard_customer_id` null): always. Shared by [`record`] and the batched event write.
macro_rules! record_guard {
    () => {
        "(g.guard_customer_id is null
                or (select c.xmin::text from public.stripe_customers c
                     where c.stripe_customer_id = g.guard_customer_id)
                   is not distinct from g.guard_version)
           and (g.deleted_customer_id is null or g.guard_customer_id is null
                or g.guard_version is not null
                or public.stripe_customers_may_record_deletion(g.deleted_customer_id))"
    };
}
pub(crate) use record_guard;

/// Records an event that changes no customer row. With a guard, it records only while the
/// customer row is still as read, so a decision is never recorded against a state it did not
/// see; `Ok(false)` then means "decide again".
pub(crate) async fn record(
    db: impl PgExecutor<'_>,
    entry: &LedgerEntry<'_>,
    recorded: Recorded<'_>,
    guard: Option<RowGuard<'_>>,
) -> Result<bool, StoreError> {
    let query = sqlx::query(concat!(
        "insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, payload_sanitized,
              deleted_customer_id, outcome, reason, error)
         select $1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11
           from (select $8::text as deleted_customer_id, $12::text as guard_customer_id,
                        $13::text as guard_version) g
          where ",
        record_guard!()
    ));
    let result = entry
        .bind_with_outcome(query, recorded.outcome)
        .bind(recorded.error)
        .bind(guard.map(|g| g.stripe_customer_id))
        .bind(guard.and_then(|g| g.version))
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// A failed event as the operator re-applies it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct FailedEvent {
    pub id: String,
    /// The stored payload, as text (a `failed` event always keeps it).
    pub payload: String,
    pub payload_sanitized: bool,
}

/// Every `failed` event, oldest first (or the one named).
pub(crate) async fn failed_events(
    db: impl PgExecutor<'_>,
    only: Option<&str>,
) -> Result<Vec<FailedEvent>, StoreError> {
    Ok(sqlx::query_as(
        "select id, payload::text as payload, payload_sanitized
           from public.stripe_webhook_events
          where outcome = 'failed' and ($1::text is null or id = $1)
          order by stripe_created, received_at",
    )
    .bind(only)
    .fetch_all(db)
    .await?)
}

/// Removes a `failed` event's ledger row, so that it can be applied afresh in the same
/// transaction. `Ok(false)`: it is no longer failed (re-applied meanwhile).
pub(crate) async fn forget_failed(
    db: impl PgExecutor<'_>,
    event_id: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "delete from public.stripe_webhook_events where id = $1 and outcome = 'failed'",
    )
    .bind(event_id)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}
