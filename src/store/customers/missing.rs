//! `verify --fix`'s mark on a row whose customer the API key's account and mode do not know
//! (Stripe's 404 `resource_missing`). Not a tombstone: Stripe never said the customer was
//! deleted, so the user link and the values stay, and any later state of the customer applies.

use sqlx::PgPool;

use crate::domain::SyncStatus;
use crate::store::StoreError;

/// Marks a live row `missing` (`sync.status`, `sync.error = "missing_in_stripe"`), naming the
/// run in `sync.last_event_id` so that the audit trail says which run did it. The order the
/// row was last applied at is kept: a marker is no state of the customer. `Ok(false)`: the row
/// is gone, deleted, or already marked.
pub(crate) async fn mark_missing(
    pool: &PgPool,
    stripe_customer_id: &str,
    run_id: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        r#"update public.stripe_customers
            set customer_metadata = jsonb_set(customer_metadata, '{sync}',
                    coalesce(customer_metadata -> 'sync', '{}'::jsonb)
                    || jsonb_build_object('status', $2::text, 'error', 'missing_in_stripe',
                                          'last_event_id', $3::text,
                                          'synced_at', to_char(now() at time zone 'utc',
                                                               'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
          where stripe_customer_id = $1
            and (customer_metadata #>> '{sync,status}') is distinct from 'deleted'
            and (customer_metadata #>> '{sync,status}') is distinct from $2::text"#,
    )
    .bind(stripe_customer_id)
    .bind(SyncStatus::Missing.as_str())
    .bind(run_id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}
