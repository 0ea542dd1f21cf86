//! `public.stripe_webhook_events`: one row per verified event id.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

use super::StoreError;

/// The ledger columns of one event (the outcome is added by the statement that records it).
#[derive(Debug, Clone, Copy)]
pub struct LedgerEntry<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub livemode: bool,
    pub api_version: Option<&'a str>,
    pub stripe_created: DateTime<Utc>,
    /// The raw event body, stored as `jsonb`.
    pub payload: &'a str,
}

pub(crate) type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

impl<'a> LedgerEntry<'a> {
    /// Binds the ledger columns as `$1`–`$6`: every statement that records an event starts so.
    pub(crate) fn bind_to<'q>(&self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.event_id)
            .bind(self.event_type)
            .bind(self.livemode)
            .bind(self.api_version)
            .bind(self.stripe_created)
            .bind(self.payload)
    }
}

/// The customer row state a record-only decision rested on.
#[derive(Debug, Clone, Copy)]
pub struct RowGuard<'a> {
    pub stripe_customer_id: &'a str,
    /// `None`: the decision assumed there is no row.
    pub version: Option<&'a str>,
}

/// Records an event that changes no customer row (`ignored`, or `skipped` with its reason).
/// With a guard, it records only while the customer row is still as read, so a decision is
/// never recorded against a state it did not see; `Ok(false)` then means "decide again".
pub async fn record(
    db: impl PgExecutor<'_>,
    entry: &LedgerEntry<'_>,
    outcome: &str,
    reason: Option<&str>,
    guard: Option<RowGuard<'_>>,
) -> Result<bool, StoreError> {
    let query = sqlx::query(
        "insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, outcome, reason)
         select $1, $2, $3, $4, $5, $6::jsonb, $7, $8
         where $9::text is null
            or (select c.xmin::text from public.stripe_customers c
                 where c.stripe_customer_id = $9) is not distinct from $10",
    );
    let result = entry
        .bind_to(query)
        .bind(outcome)
        .bind(reason)
        .bind(guard.map(|g| g.stripe_customer_id))
        .bind(guard.and_then(|g| g.version))
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}
