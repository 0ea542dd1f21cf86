//! Customers fetched from Stripe's API (`backfill`, `verify --fix`), many at a time.
//!
//! A page of customers costs two statements, as one webhook event does: one snapshot of every
//! row and candidate user of the page, and one write of every row that changes, each row only
//! if it is still the version that was read (the same compare-and-set on `xmin` as the webhook
//! path). A row whose write lost a race is simply not written; the caller decides it again on
//! its own. There is no ledger row (there is no event); the audit trail names the run instead:
//! the write sets `stripe_customer_sync.event_id` to the run id (`backfill:…`, `verify:…`).

use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use super::customers::stored_customer;
use crate::sync::rules::{RowWrite, StoredCustomer, StoredValues, UserFacts};

/// One customer of a page to read the state of.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotKey<'a> {
    pub stripe_customer_id: &'a str,
    pub candidate_user: Option<Uuid>,
}

/// What the rules need to decide a fetched customer, and the row's values to tell an actual
/// change from a rewrite of the same values.
#[derive(Debug, Clone)]
pub struct FetchedSnapshot {
    pub stored: Option<(StoredCustomer, StoredValues)>,
    pub user: UserFacts,
    /// The ledger holds a delete of this customer id.
    pub deletion_recorded: bool,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    version: Option<String>,
    status: Option<String>,
    last_event_created: Option<String>,
    last_event_type: Option<String>,
    user_id: Option<Uuid>,
    customer_email: Option<String>,
    customer_name: Option<String>,
    default_payment_method: Option<String>,
    stripe_metadata: Option<serde_json::Value>,
    sync_error: Option<String>,
    user_exists: bool,
    user_linked_elsewhere: bool,
    deletion_recorded: bool,
    livemode: Option<bool>,
}

/// The state of every customer in `keys`, in one statement, in the order of `keys`.
pub async fn snapshot(
    pool: &PgPool,
    keys: &[SnapshotKey<'_>],
) -> Result<Vec<FetchedSnapshot>, StoreError> {
    let ids: Vec<&str> = keys.iter().map(|k| k.stripe_customer_id).collect();
    let users: Vec<Option<Uuid>> = keys.iter().map(|k| k.candidate_user).collect();
    // The per-customer subqueries are the webhook snapshot's, evaluated for each array element.
    let rows: Vec<SnapshotRow> = sqlx::query_as(
        "select
             c.xmin::text as version,
             c.customer_metadata #>> '{sync,status}' as status,
             c.customer_metadata #>> '{sync,last_event_created}' as last_event_created,
             c.customer_metadata #>> '{sync,last_event_type}' as last_event_type,
             c.user_id,
             c.customer_email,
             c.customer_name,
             c.default_payment_method,
             c.customer_metadata -> 'stripe' as stripe_metadata,
             c.customer_metadata #>> '{sync,error}' as sync_error,
             coalesce(i.user_id is not null
                 and exists (select 1 from auth.users u where u.id = i.user_id), false)
                 as user_exists,
             coalesce(i.user_id is not null
                 and exists (select 1 from public.stripe_customers o
                              where o.user_id = i.user_id
                                and o.stripe_customer_id <> i.stripe_customer_id), false)
                 as user_linked_elsewhere,
             exists (select 1 from public.stripe_webhook_events d
                      where d.deleted_customer_id = i.stripe_customer_id) as deletion_recorded,
             (c.customer_metadata #> '{sync,livemode}') = 'true'::jsonb as livemode
         from unnest($1::text[], $2::uuid[]) with ordinality as i(stripe_customer_id, user_id, ord)
         left join public.stripe_customers c on c.stripe_customer_id = i.stripe_customer_id
         order by i.ord",
    )
    .bind(&ids)
    .bind(&users)
    .fetch_all(pool)
    .await?;

    Ok(rows
        .into_iter()
        .map(|row| {
            let stored = row.version.map(|version| {
                let customer = stored_customer(
                    version,
                    row.status.as_deref(),
                    row.last_event_created.as_deref(),
                    row.last_event_type.as_deref(),
                );
                let values = StoredValues {
                    user_id: row.user_id,
                    email: row.customer_email.unwrap_or_default(),
                    name: row.customer_name,
                    default_payment_method: row.default_payment_method,
                    stripe_metadata: row.stripe_metadata.unwrap_or_default(),
                    status: row.status,
                    error: row.sync_error,
                    livemode: row.livemode,
                };
                (customer, values)
            });
            FetchedSnapshot {
                stored,
                user: UserFacts {
                    exists: row.user_exists,
                    linked_elsewhere: row.user_linked_elsewhere,
                },
                deletion_recorded: row.deletion_recorded,
            }
        })
        .collect())
}

/// One row to write: an insert (`version` `None`) or an update of the row at `version`.
#[derive(Debug, Clone, Copy)]
pub struct RowToWrite<'a> {
    pub stripe_customer_id: &'a str,
    pub version: Option<&'a str>,
    pub row: &'a RowWrite,
}

/// Writes every row in one statement, each only if still as read (an insert only if there is
/// still no row, an update only at its version); returns, in the order of `rows`, whether each
/// was written. A row not written lost a race: decide it again.
///
/// A race on a user (another writer linked the user in between) or on `auth.users` (the user was
/// deleted in between) fails the whole statement as [`StoreError::Conflict`]; nothing is written
/// then, and the caller decides each row again on its own.
pub async fn write(
    pool: &PgPool,
    run_id: &str,
    rows: &[RowToWrite<'_>],
) -> Result<Vec<bool>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut users = Vec::with_capacity(rows.len());
    let mut emails = Vec::with_capacity(rows.len());
    let mut names = Vec::with_capacity(rows.len());
    let mut payment_methods = Vec::with_capacity(rows.len());
    let mut metadata = Vec::with_capacity(rows.len());
    for r in rows {
        ids.push(r.stripe_customer_id);
        versions.push(r.version);
        users.push(r.row.user_id);
        emails.push(r.row.email.as_deref());
        names.push(r.row.name.as_deref());
        payment_methods.push(r.row.default_payment_method.as_deref());
        metadata.push(r.row.customer_metadata.to_string());
    }
    // `on conflict do nothing` covers both unique constraints for inserts: a row another writer
    // inserted meanwhile, or a user it linked meanwhile, leaves this row unwritten rather than
    // failing the page. Updates have no such clause; see above.
    let written: Vec<i64> = sqlx::query_scalar(
        "with audit_context as (
             select set_config('stripe_customer_sync.event_id', $1, true)
         ), input as (
             select *
               from unnest($2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[],
                           $7::text[], $8::text[]) with ordinality
                    as i(stripe_customer_id, version, user_id, email, name,
                         default_payment_method, metadata, ord)
         ), inserted as (
             insert into public.stripe_customers (stripe_customer_id, user_id, customer_email,
                 customer_name, default_payment_method, customer_metadata)
             select i.stripe_customer_id, i.user_id, i.email, i.name, i.default_payment_method,
                    i.metadata::jsonb
               from input i, audit_context
              where i.version is null
                -- deleted is terminal, even for a delete committing at this very moment
                and public.stripe_customers_may_insert(i.stripe_customer_id)
             on conflict do nothing
             returning stripe_customer_id
         ), updated as (
             update public.stripe_customers c
                set user_id = i.user_id,
                    customer_email = coalesce(i.email, c.customer_email),
                    customer_name = i.name,
                    default_payment_method = i.default_payment_method,
                    -- replaces `stripe` and `sync`, keeps any key the application added
                    customer_metadata = c.customer_metadata || i.metadata::jsonb
               from input i, audit_context
              where i.version is not null
                and c.stripe_customer_id = i.stripe_customer_id
                and c.xmin::text = i.version
             returning c.stripe_customer_id
         )
         select i.ord
           from input i
          where i.stripe_customer_id in (select stripe_customer_id from inserted
                                         union all
                                         select stripe_customer_id from updated)",
    )
    .bind(run_id)
    .bind(&ids)
    .bind(&versions)
    .bind(&users)
    .bind(&emails)
    .bind(&names)
    .bind(&payment_methods)
    .bind(&metadata)
    .fetch_all(pool)
    .await?;

    let mut done = vec![false; rows.len()];
    for ord in written {
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| done.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(done)
}

/// A row `verify` compares with Stripe: every customer row that is not a tombstone.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveRow {
    pub stripe_customer_id: String,
    pub customer_email: String,
    pub customer_name: Option<String>,
    pub default_payment_method: Option<String>,
    /// `customer_metadata.stripe[<user id key>]` as stored (any JSON value, or null).
    pub metadata_user_id: Option<serde_json::Value>,
}

/// How many rows are not tombstones.
/// Live rows of one Stripe mode: rows of the other mode, or of none recorded yet, are not
/// what an API key of this mode can speak for.
pub async fn count_live(pool: &PgPool, livemode: bool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "select count(*) from public.stripe_customers
          where (customer_metadata #>> '{sync,status}') is distinct from 'deleted'
            and (customer_metadata #> '{sync,livemode}') = to_jsonb($1::boolean)",
    )
    .bind(livemode)
    .fetch_one(pool)
    .await?)
}

/// The next `limit` live rows of one mode after `after`, by customer id (keyset paging:
/// stable and cheap on the unique index however large the table).
pub async fn live_rows(
    pool: &PgPool,
    user_id_metadata_key: &str,
    livemode: bool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<LiveRow>, StoreError> {
    Ok(sqlx::query_as(
        "select stripe_customer_id, customer_email, customer_name, default_payment_method,
                customer_metadata -> 'stripe' -> $1 as metadata_user_id
           from public.stripe_customers
          where (customer_metadata #>> '{sync,status}') is distinct from 'deleted'
            and ($2::text is null or stripe_customer_id > $2)
            and (customer_metadata #> '{sync,livemode}') = to_jsonb($4::boolean)
          order by stripe_customer_id
          limit $3",
    )
    .bind(user_id_metadata_key)
    .bind(after)
    .bind(limit)
    .bind(livemode)
    .fetch_all(pool)
    .await?)
}
