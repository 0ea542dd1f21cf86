//! `public.stripe_customers`: reading what the rules need, writing what they decided.
//!
//! Each event costs two statements and no explicit transaction: one read, then one write that
//! changes the row AND records the event in the ledger atomically, and only if the row is still
//! the version that was read (compare-and-set on `xmin`). A concurrent writer on any replica
//! makes the write fail as [`StoreError::Conflict`] and the caller decides again; a duplicate
//! delivery makes it fail on the ledger's primary key. Round trips, not SQL, bound throughput.

use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::StoreError;
use super::ledger::{LedgerEntry, PgQuery};
use crate::sync::rules::{EventOrder, RowWrite, StoredCustomer, SyncStatus, UserFacts};

/// The snapshot read. Binds: `$1` event id (text), `$2` customer id (text), `$3` candidate user
/// (uuid). Public, like the two writes below, so that `benches/end_to_end.rs` has pgbench run
/// exactly the statements the service runs.
pub const SNAPSHOT_SQL: &str = "select
             exists (select 1 from public.stripe_webhook_events e where e.id = $1) as already_recorded,
             c.xmin::text as version,
             c.customer_metadata #>> '{sync,status}' as status,
             c.customer_metadata #>> '{sync,last_event_created}' as last_event_created,
             c.customer_metadata #>> '{sync,last_event_type}' as last_event_type,
             coalesce($3::uuid is not null
                 and exists (select 1 from auth.users u where u.id = $3), false) as user_exists,
             coalesce($3::uuid is not null
                 and exists (select 1 from public.stripe_customers o
                              where o.user_id = $3 and o.stripe_customer_id <> $2), false)
                 as user_linked_elsewhere,
             exists (select 1 from public.stripe_webhook_events d
                      where d.deleted_customer_id = $2) as deletion_recorded
         from (select 1) as one
         left join public.stripe_customers c on c.stripe_customer_id = $2";

/// Inserts the row and records the event. Binds: the ledger's `$1`–`$8` (see
/// [`LedgerEntry::bind_to`]), then `$9`–`$14` (see `bind_row`).
pub const INSERT_SQL: &str = "with audit_context as (
             select set_config('stripe_customer_sync.event_id', $1, true)
         ), written as (
             insert into public.stripe_customers (stripe_customer_id, user_id, customer_email,
                 customer_name, default_payment_method, customer_metadata)
             select $9, $10, $11, $12, $13, $14 from audit_context
              -- deleted is terminal: a delete recorded since the snapshot was read, even one
              -- committing at this moment on another replica, wins (see the function)
              where public.stripe_customers_may_insert($9)
             returning 1
         )
         insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, payload_sanitized,
              deleted_customer_id, outcome)
         select $1, $2, $3, $4, $5, $6::jsonb, $7, $8, 'processed' from written";

/// Updates the row if still at version `$15` (text) and records the event; binds as
/// [`INSERT_SQL`] plus `$15`.
pub const UPDATE_SQL: &str = "with audit_context as (
             select set_config('stripe_customer_sync.event_id', $1, true)
         ), written as (
             update public.stripe_customers c
                set user_id = $10,
                    customer_email = coalesce($11, c.customer_email),
                    customer_name = $12,
                    default_payment_method = $13,
                    -- replaces `stripe` and `sync`, keeps any key the application added
                    customer_metadata = c.customer_metadata || $14
               from audit_context
              where c.stripe_customer_id = $9 and c.xmin::text = $15
             returning 1
         )
         insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, payload_sanitized,
              deleted_customer_id, outcome)
         select $1, $2, $3, $4, $5, $6::jsonb, $7, $8, 'processed' from written";

/// Everything the rules need to decide one customer event, read in one snapshot.
#[derive(Debug, Clone)]
pub struct CustomerSnapshot {
    /// The ledger already holds the event: a redelivery.
    pub already_recorded: bool,
    pub stored: Option<StoredCustomer>,
    pub user: UserFacts,
    /// The ledger holds a `customer.deleted` for this id: deleted is terminal.
    pub deletion_recorded: bool,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    already_recorded: bool,
    version: Option<String>,
    status: Option<String>,
    last_event_created: Option<String>,
    last_event_type: Option<String>,
    user_exists: bool,
    user_linked_elsewhere: bool,
    deletion_recorded: bool,
}

pub async fn snapshot(
    db: impl PgExecutor<'_>,
    event_id: &str,
    stripe_customer_id: &str,
    candidate_user: Option<Uuid>,
) -> Result<CustomerSnapshot, StoreError> {
    let row: SnapshotRow = sqlx::query_as(SNAPSHOT_SQL)
        .bind(event_id)
        .bind(stripe_customer_id)
        .bind(candidate_user)
        .fetch_one(db)
        .await?;

    let stored = row.version.map(|version| {
        stored_customer(
            version,
            row.status.as_deref(),
            row.last_event_created.as_deref(),
            row.last_event_type.as_deref(),
        )
    });
    Ok(CustomerSnapshot {
        already_recorded: row.already_recorded,
        stored,
        user: UserFacts {
            exists: row.user_exists,
            linked_elsewhere: row.user_linked_elsewhere,
        },
        deletion_recorded: row.deletion_recorded,
    })
}

/// A row's sync state as the rules read it, from the row's version and the `status`,
/// `last_event_created` and `last_event_type` of its `customer_metadata.sync`.
pub(super) fn stored_customer(
    version: String,
    status: Option<&str>,
    last_event_created: Option<&str>,
    last_event_type: Option<&str>,
) -> StoredCustomer {
    StoredCustomer {
        version,
        status: status.and_then(SyncStatus::parse),
        last_applied: last_event_created
            .and_then(|created| created.parse::<i64>().ok())
            .map(|created| EventOrder::from_recorded(created, last_event_type.unwrap_or(""))),
    }
}

/// Inserts the row and records the event as `processed`, in one statement. `Ok(false)`: a
/// delete of the customer was recorded since the snapshot; nothing was written.
pub async fn insert(
    db: impl PgExecutor<'_>,
    entry: &LedgerEntry<'_>,
    stripe_customer_id: &str,
    row: &RowWrite,
) -> Result<bool, StoreError> {
    let query = sqlx::query(INSERT_SQL);
    let result = bind_row(entry.bind_to(query), stripe_customer_id, row)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Updates the row if it is still at `version` and records the event as `processed`, in one
/// statement. `Ok(false)`: the row changed since it was read; nothing was written.
pub async fn update(
    db: impl PgExecutor<'_>,
    entry: &LedgerEntry<'_>,
    stripe_customer_id: &str,
    version: &str,
    row: &RowWrite,
) -> Result<bool, StoreError> {
    let query = sqlx::query(UPDATE_SQL);
    let result = bind_row(entry.bind_to(query), stripe_customer_id, row)
        .bind(version)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Binds `$9`–`$14`: the customer id and the values of the row, after the ledger's `$1`–`$8`.
fn bind_row<'q>(query: PgQuery<'q>, stripe_customer_id: &'q str, row: &'q RowWrite) -> PgQuery<'q> {
    query
        .bind(stripe_customer_id)
        .bind(row.user_id)
        .bind(row.email.as_deref())
        .bind(row.name.as_deref())
        .bind(row.default_payment_method.as_deref())
        .bind(Json(&row.customer_metadata))
}
