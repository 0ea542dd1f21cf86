//! The row of a customer the service created for a user (`POST /customers`), written like an
//! event's row (`customers::INSERT_SQL` / `UPDATE_SQL`: one statement, compare-and-set on the
//! row's version) but with no ledger row: there is no event. The creation's id
//! (`ensure-customer:<user_id>:<attempt>`) goes to the audit trail, as a backfill run's does.
//! The `customer.created` Stripe sends afterwards is recorded in the ledger as usual. Unnamed
//! statements (`persistent(false)`), as the rest of a creation's.

use sqlx::PgExecutor;
use sqlx::types::Json;

use super::StoreError;
use crate::sync::rules::RowWrite;

const INSERT_SQL: &str = "with audit_context as (
             select set_config('stripe_customer_sync.event_id', $1, true)
         )
         insert into public.stripe_customers (stripe_customer_id, user_id, customer_email,
             customer_name, default_payment_method, customer_metadata)
         select $2, $3, $4, $5, $6, $7 from audit_context
          -- deleted is terminal, as for an event's insert (customers::INSERT_SQL)
          where public.stripe_customers_may_insert($2)";

const UPDATE_SQL: &str = "with audit_context as (
             select set_config('stripe_customer_sync.event_id', $1, true)
         )
         update public.stripe_customers c
            set user_id = $3,
                customer_email = coalesce($4, c.customer_email),
                customer_name = $5,
                default_payment_method = $6,
                -- replaces `stripe` and `sync`, keeps any key the application added
                customer_metadata = c.customer_metadata || $7
           from audit_context
          where c.stripe_customer_id = $2 and c.xmin::text = $8";

/// Inserts the row. `Ok(false)`: a delete of the customer was recorded since the snapshot;
/// nothing was written.
pub async fn insert(
    db: impl PgExecutor<'_>,
    source_id: &str,
    stripe_customer_id: &str,
    row: &RowWrite,
) -> Result<bool, StoreError> {
    let result = sqlx::query(INSERT_SQL)
        .persistent(false)
        .bind(source_id)
        .bind(stripe_customer_id)
        .bind(row.user_id)
        .bind(row.email.as_deref())
        .bind(row.name.as_deref())
        .bind(row.default_payment_method.as_deref())
        .bind(Json(&row.customer_metadata))
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Updates the row if it is still at `version`; `Ok(false)`: it changed since it was read.
pub async fn update(
    db: impl PgExecutor<'_>,
    source_id: &str,
    stripe_customer_id: &str,
    version: &str,
    row: &RowWrite,
) -> Result<bool, StoreError> {
    let result = sqlx::query(UPDATE_SQL)
        .persistent(false)
        .bind(source_id)
        .bind(stripe_customer_id)
        .bind(row.user_id)
        .bind(row.email.as_deref())
        .bind(row.name.as_deref())
        .bind(row.default_payment_method.as_deref())
        .bind(Json(&row.customer_metadata))
        .bind(version)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}
