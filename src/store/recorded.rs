//! Which events the ledger already holds, read before doing work that a recorded event would
//! make pointless (a thin event's fetch from Stripe; applying a listed event in `catch-up`).
//!
//! Only an optimisation: the statement that records an event still fails on the ledger's
//! primary key if another delivery recorded it in between, and the sync answers `duplicate`.

use std::collections::HashSet;

use sqlx::PgExecutor;

use super::StoreError;

/// Whether `event_id` is in the ledger.
pub(crate) async fn is_recorded(
    db: impl PgExecutor<'_>,
    event_id: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from public.stripe_webhook_events where id = $1)",
    )
    .bind(event_id)
    .fetch_one(db)
    .await?)
}

/// The ids of `event_ids` (snapshot events) that are in the ledger, themselves or as the
/// `snapshot_event` of a thin event that stands for them: one round trip for a page of events.
pub(crate) async fn recorded_among(
    db: impl PgExecutor<'_>,
    event_ids: &[&str],
) -> Result<HashSet<String>, StoreError> {
    let recorded: Vec<String> = sqlx::query_scalar(
        "select id from public.stripe_webhook_events where id = any($1)
         union
         select payload ->> 'snapshot_event' from public.stripe_webhook_events
          where payload ? 'snapshot_event' and payload ->> 'snapshot_event' = any($1)",
    )
    .bind(event_ids)
    .fetch_all(db)
    .await?;
    Ok(recorded.into_iter().collect())
}
