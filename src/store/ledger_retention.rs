//! Removing ledger rows older than the retention, in small batches, one replica at a time.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;

/// The advisory lock key of the ledger's retention ("STRPLDGR" in ASCII): one per database.
pub const LOCK_KEY: i64 = 0x5354_5250_4c44_4752;

/// Removes up to `limit` rows received before `before`, oldest first, in one transaction that
/// holds the retention's transaction-scoped advisory lock (so it works behind a transaction
/// pooler too). `Ok(None)`: another replica holds the lock, this one removes nothing.
///
/// Never removed: a `failed` event (it is re-applied from its payload), and a recorded
/// deletion (`deleted_customer_id`): it is what keeps a customer deleted when the delete could
/// write no tombstone (no email), and there are few.
pub async fn remove_expired(
    pool: &PgPool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Option<u64>, StoreError> {
    let mut tx = pool.begin().await?;
    // Unnamed statements: behind a transaction pooler a named one would outlive the transaction.
    let held: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .persistent(false)
        .bind(LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
    if !held {
        return Ok(None);
    }
    let removed = sqlx::query(
        "delete from public.stripe_webhook_events e
          where e.id in (select x.id from public.stripe_webhook_events x
                          where x.received_at < $1
                            and x.outcome <> 'failed'
                            and x.deleted_customer_id is null
                          order by x.received_at
                          limit $2
                            for update skip locked)",
    )
    .persistent(false)
    .bind(before)
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Some(removed))
}

/// The ledger's size on disk: table, TOAST and indexes.
pub async fn size_bytes(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "select pg_catalog.pg_total_relation_size('public.stripe_webhook_events'::regclass)",
    )
    .persistent(false)
    .fetch_one(pool)
    .await?)
}
