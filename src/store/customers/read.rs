//! Reading a customer row and the facts the rules need beside it, in one statement: for one
//! event ([`snapshot`]), for a page of fetched customers ([`snapshot_page`]), or the live rows
//! `verify` compares with Stripe ([`live_rows`]). Every read names its customers as a relation
//! `i(stripe_customer_id, user_id)` (the customer and its candidate user), so the columns below
//! are written once for all of them.

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::super::StoreError;
use crate::domain::{
    EventOrder, StoredCustomer, StoredValues, SyncStatus, UnlinkReason, UserFacts,
};

/// What the rules order and guard a write by, from the row `c` (null without one).
macro_rules! stored_columns {
    () => {
        "c.xmin::text as version,
             c.customer_metadata #>> '{sync,status}' as status,
             c.customer_metadata #>> '{sync,last_event_created}' as last_event_created,
             c.customer_metadata #>> '{sync,last_event_type}' as last_event_type"
    };
}

/// What the database says about the customer `i` and its candidate owner: the user
/// `i.user_id` or the organization `i.organization_id` (at most one is set). The organization
/// is looked up through `stripe_customers_organization_exists`, which the migration makes a
/// lookup in the configured organizations table when it exists (and `false` until then), so
/// that this statement names no table that may not exist.
macro_rules! candidate_columns {
    () => {
        "coalesce((i.user_id is not null
                   and exists (select 1 from auth.users u where u.id = i.user_id))
                  or (i.organization_id is not null
                      and public.stripe_customers_organization_exists(i.organization_id)), false)
                 as user_exists,
             coalesce((i.user_id is not null
                   and exists (select 1 from public.stripe_customers o
                                where o.user_id = i.user_id
                                  and o.stripe_customer_id <> i.stripe_customer_id))
                  or (i.organization_id is not null
                      and exists (select 1 from public.stripe_customers o
                                   where o.organization_id = i.organization_id
                                     and o.stripe_customer_id <> i.stripe_customer_id)), false)
                 as user_linked_elsewhere,
             exists (select 1 from public.stripe_webhook_events d
                      where d.deleted_customer_id = i.stripe_customer_id) as deletion_recorded"
    };
}

/// The values the row `c` holds ([`StoredValues`]).
macro_rules! value_columns {
    () => {
        "c.user_id,
             c.organization_id,
             c.customer_email,
             c.customer_name,
             c.default_payment_method,
             c.customer_metadata -> 'stripe' as stripe_metadata,
             c.customer_metadata #>> '{sync,error}' as sync_error,
             (c.customer_metadata #> '{sync,livemode}') = 'true'::jsonb as livemode"
    };
}

/// The snapshot read of one event. Binds: `$1` event id (text), `$2` customer id (text), `$3`
/// candidate user (uuid), `$4` candidate organization (uuid). Public, like the two writes, so
/// that `benches/end_to_end.rs` has pgbench run exactly the statements the service runs.
pub const SNAPSHOT_SQL: &str = concat!(
    "select
             exists (select 1 from public.stripe_webhook_events e where e.id = $1) as already_recorded,
             ",
    stored_columns!(),
    ",
             ",
    candidate_columns!(),
    "
         from (select $2::text as stripe_customer_id, $3::uuid as user_id,
                      $4::uuid as organization_id) as i
         left join public.stripe_customers c on c.stripe_customer_id = i.stripe_customer_id"
);

/// The snapshot read of many events at once (group commit): binds `$1` event ids (text[]),
/// `$2` customer ids (text[]), `$3` candidate users (uuid[]); one row per element, in their
/// order, with the columns of [`SNAPSHOT_SQL`]. (One array unnested, the others read by subscript:
/// see `store::customers::write`.) A batch takes no state whose candidate is an organization
/// (`sync::apply::events`): those go one by one.
pub(super) const EVENTS_SNAPSHOT_SQL: &str = concat!(
    "select
             exists (select 1 from public.stripe_webhook_events e where e.id = i.event_id)
                 as already_recorded,
             ",
    stored_columns!(),
    ",
             ",
    candidate_columns!(),
    "
         from (select u.event_id, ($2::text[])[n] as stripe_customer_id,
                      ($3::uuid[])[n] as user_id, null::uuid as organization_id, n as ord
                 from unnest($1::text[]) with ordinality as u(event_id, n)) as i
         left join public.stripe_customers c on c.stripe_customer_id = i.stripe_customer_id
         order by i.ord"
);

/// The snapshot of a page of customers: binds `$1` customer ids (text[]), `$2` candidate users
/// (uuid[]), `$3` candidate organizations (uuid[]); one row per element, in their order.
pub(super) const PAGE_SNAPSHOT_SQL: &str = concat!(
    "select
             ",
    stored_columns!(),
    ",
             ",
    candidate_columns!(),
    ",
             ",
    value_columns!(),
    "
         from (select u.stripe_customer_id, ($2::uuid[])[n] as user_id,
                      ($3::uuid[])[n] as organization_id, n as ord
                 from unnest($1::text[]) with ordinality as u(stripe_customer_id, n)) as i
         left join public.stripe_customers c on c.stripe_customer_id = i.stripe_customer_id
         order by i.ord"
);

/// Live rows of one mode after `$2` by id, `$3` at most: rows of the other mode, or of none
/// recorded yet, are not what an API key of this mode can speak for.
const LIVE_ROWS_SQL: &str = concat!(
    "select c.stripe_customer_id,
             ",
    stored_columns!(),
    ",
             ",
    value_columns!(),
    "
           from public.stripe_customers c
          where (c.customer_metadata #>> '{sync,status}') is distinct from 'deleted'
            and ($1::text is null or c.stripe_customer_id > $1)
            and (c.customer_metadata #> '{sync,livemode}') = to_jsonb($3::boolean)
          order by c.stripe_customer_id
          limit $2"
);

/// Everything the rules need to decide one customer state, read in one statement.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The ledger already holds the event: a redelivery (per-event reads only).
    pub already_recorded: bool,
    pub stored: Option<StoredCustomer>,
    /// The row's values (page reads only: a fetched state that changes nothing is not written).
    pub values: Option<StoredValues>,
    pub user: UserFacts,
    /// The ledger holds a `customer.deleted` for this id: deleted is terminal.
    pub deletion_recorded: bool,
}

/// One customer to read, and the user or organization its metadata points at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapshotKey<'a> {
    pub stripe_customer_id: &'a str,
    pub candidate_user: Option<Uuid>,
    pub candidate_organization: Option<Uuid>,
}

/// A live row, as `verify` compares it with Stripe.
#[derive(Debug, Clone)]
pub(crate) struct StoredRow {
    pub stripe_customer_id: String,
    pub stored: StoredCustomer,
    pub values: StoredValues,
}

#[derive(sqlx::FromRow)]
struct StoredColumns {
    version: Option<String>,
    status: Option<String>,
    last_event_created: Option<String>,
    last_event_type: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CandidateColumns {
    user_exists: bool,
    user_linked_elsewhere: bool,
    deletion_recorded: bool,
}

#[derive(sqlx::FromRow)]
struct ValueColumns {
    user_id: Option<Uuid>,
    organization_id: Option<Uuid>,
    customer_email: Option<String>,
    customer_name: Option<String>,
    default_payment_method: Option<String>,
    stripe_metadata: Option<serde_json::Value>,
    sync_error: Option<String>,
    livemode: Option<bool>,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    already_recorded: bool,
    #[sqlx(flatten)]
    stored: StoredColumns,
    #[sqlx(flatten)]
    candidate: CandidateColumns,
}

#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    stored: StoredColumns,
    #[sqlx(flatten)]
    candidate: CandidateColumns,
    #[sqlx(flatten)]
    values: ValueColumns,
}

#[derive(sqlx::FromRow)]
struct LiveRow {
    stripe_customer_id: String,
    #[sqlx(flatten)]
    stored: StoredColumns,
    #[sqlx(flatten)]
    values: ValueColumns,
}

impl SnapshotRow {
    fn into_snapshot(self) -> Snapshot {
        Snapshot {
            already_recorded: self.already_recorded,
            stored: self.stored.into_stored(),
            values: None,
            user: self.candidate.user(),
            deletion_recorded: self.candidate.deletion_recorded,
        }
    }
}

impl StoredColumns {
    /// A row's sync state as the rules read it; `None` without a row.
    fn into_stored(self) -> Option<StoredCustomer> {
        let version = self.version?;
        Some(StoredCustomer {
            version,
            status: self.status.as_deref().and_then(SyncStatus::parse),
            last_applied: self
                .last_event_created
                .and_then(|created| created.parse::<i64>().ok())
                .map(|created| {
                    EventOrder::from_recorded(
                        created,
                        self.last_event_type.as_deref().unwrap_or(""),
                    )
                }),
        })
    }
}

impl ValueColumns {
    fn into_values(self, status: Option<SyncStatus>) -> StoredValues {
        StoredValues {
            user_id: self.user_id,
            organization_id: self.organization_id,
            email: self.customer_email.unwrap_or_default(),
            name: self.customer_name,
            default_payment_method: self.default_payment_method,
            stripe_metadata: self.stripe_metadata.unwrap_or_default(),
            status,
            error: self.sync_error.as_deref().and_then(UnlinkReason::parse),
            livemode: self.livemode,
        }
    }
}

impl CandidateColumns {
    fn user(&self) -> UserFacts {
        UserFacts {
            exists: self.user_exists,
            linked_elsewhere: self.user_linked_elsewhere,
        }
    }
}

/// The snapshot of one customer state: `source_id` is the event id looked up in the ledger
/// (a redelivery is `already_recorded`).
pub(crate) async fn snapshot(
    db: impl PgExecutor<'_>,
    source_id: &str,
    key: SnapshotKey<'_>,
) -> Result<Snapshot, StoreError> {
    let row: SnapshotRow = sqlx::query_as(SNAPSHOT_SQL)
        .bind(source_id)
        .bind(key.stripe_customer_id)
        .bind(key.candidate_user)
        .bind(key.candidate_organization)
        .fetch_one(db)
        .await?;
    Ok(row.into_snapshot())
}

/// The snapshot of each event's customer (as [`snapshot`] reads one), in one statement, in
/// the order of `keys`: the event id looked up in the ledger, and the customer to read.
pub(crate) async fn snapshot_events(
    db: impl PgExecutor<'_>,
    keys: &[(&str, SnapshotKey<'_>)],
) -> Result<Vec<Snapshot>, StoreError> {
    let events: Vec<&str> = keys.iter().map(|(event, _)| *event).collect();
    let ids: Vec<&str> = keys.iter().map(|(_, k)| k.stripe_customer_id).collect();
    let users: Vec<Option<Uuid>> = keys.iter().map(|(_, k)| k.candidate_user).collect();
    let rows: Vec<SnapshotRow> = sqlx::query_as(EVENTS_SNAPSHOT_SQL)
        .bind(&events)
        .bind(&ids)
        .bind(&users)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(SnapshotRow::into_snapshot).collect())
}

/// The snapshot of every customer in `keys`, with the rows' values, in one statement, in the
/// order of `keys`.
pub(crate) async fn snapshot_page(
    db: impl PgExecutor<'_>,
    keys: &[SnapshotKey<'_>],
) -> Result<Vec<Snapshot>, StoreError> {
    let ids: Vec<&str> = keys.iter().map(|k| k.stripe_customer_id).collect();
    let users: Vec<Option<Uuid>> = keys.iter().map(|k| k.candidate_user).collect();
    let organizations: Vec<Option<Uuid>> = keys.iter().map(|k| k.candidate_organization).collect();
    let rows: Vec<PageRow> = sqlx::query_as(PAGE_SNAPSHOT_SQL)
        .bind(&ids)
        .bind(&users)
        .bind(&organizations)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let stored = row.stored.into_stored();
            let values = stored
                .as_ref()
                .map(|stored| row.values.into_values(stored.status));
            Snapshot {
                already_recorded: false,
                stored,
                values,
                user: row.candidate.user(),
                deletion_recorded: row.candidate.deletion_recorded,
            }
        })
        .collect())
}

/// How many rows of one Stripe mode are not tombstones.
pub(crate) async fn count_live(pool: &PgPool, livemode: bool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "select count(*) from public.stripe_customers
          where (customer_metadata #>> '{sync,status}') is distinct from 'deleted'
            and (customer_metadata #> '{sync,livemode}') = to_jsonb($1::boolean)",
    )
    .bind(livemode)
    .fetch_one(pool)
    .await?)
}

/// The live rows `verify` with a key of one mode does not compare, by why: `no_mode_recorded`
/// (rows written before the sync recorded modes, or filled by hand) and `other_mode` (rows of
/// the other Stripe mode, which this key cannot read).
pub(crate) async fn count_other_live(
    pool: &PgPool,
    livemode: bool,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "select case when jsonb_typeof(customer_metadata #> '{sync,livemode}') = 'boolean'
                     then 'other_mode' else 'no_mode_recorded' end as reason,
                count(*)
           from public.stripe_customers
          where (customer_metadata #>> '{sync,status}') is distinct from 'deleted'
            and (customer_metadata #> '{sync,livemode}') is distinct from to_jsonb($1::boolean)
          group by 1
          order by 1",
    )
    .bind(livemode)
    .fetch_all(pool)
    .await?)
}

/// The next `limit` live rows of one mode after `after`, by customer id (keyset paging:
/// stable and cheap on the unique index however large the table).
pub(crate) async fn live_rows(
    pool: &PgPool,
    livemode: bool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredRow>, StoreError> {
    let rows: Vec<LiveRow> = sqlx::query_as(LIVE_ROWS_SQL)
        .bind(after)
        .bind(limit)
        .bind(livemode)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let stored = row.stored.into_stored()?;
            let values = row.values.into_values(stored.status);
            Some(StoredRow {
                stripe_customer_id: row.stripe_customer_id,
                stored,
                values,
            })
        })
        .collect())
}
