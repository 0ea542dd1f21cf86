//! Writing a decided row, only if the row is still as read, in one statement together with
//! what is recorded beside it (an event's ledger row, or only its source in the audit trail). The row's insert and update are written once
//! ([`insert_row!`], [`update_row!`]) over a relation `i` of the values to write; each
//! statement below says where `i` comes from and what it records beside the row.
//!
//! A statement that writes many rows binds one array per column. It unnests the first, with
//! ordinality, and reads element `n` of each of the others by subscript, rather than
//! `unnest(a, b, …)`: PostgreSQL runs that as one set-returning function per array, each
//! materialised in a tuplestore of its own, a fixed cost per statement that group commit pays
//! at every batch, most of all at one event per batch. (`benches/array_rows/run.sh`: with one
//! element per array, this way takes 0.61× the time per statement of unnest of all ten; with
//! eight, 0.88×.) Not `generate_subscripts` for `n`: the planner takes a set-returning function it
//! knows nothing of for 1,000 rows, where it takes an unnested parameter for 10, and a generic
//! plan made while the tables are small then joins them by scanning them whole.

use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::MetadataJson;
use crate::domain::RowWrite;
use crate::store::StoreError;
use crate::store::ledger::{LedgerEntry, PgQuery};

/// The row's insert from `i` (`new_id`, `stripe_customer_id`, `user_id`, `organization_id`,
/// `email`, `name`, `default_payment_method`, `metadata` jsonb); the statement adds its
/// condition.
///
/// `new_id` is a time-ordered UUID (version 7, see [`new_row_id`]) rather than the column's
/// random default: each new row's primary key entry then lands at the right edge of
/// `stripe_customers_pkey`, instead of dirtying (and, after each checkpoint, logging a full
/// image of) a random page of an index much larger than the cache.
macro_rules! insert_row {
    () => {
        "insert into public.stripe_customers (id, stripe_customer_id, user_id, organization_id,
                 customer_email, customer_name, default_payment_method, customer_metadata)
             select i.new_id, i.stripe_customer_id, i.user_id, i.organization_id, i.email, i.name,
                    i.default_payment_method, i.metadata
               from input i, audit_context"
    };
}

/// The row's update from `i`, as [`insert_row!`] plus `version`: the row `c` is updated only
/// at the version the decision read.
macro_rules! update_row {
    () => {
        "update public.stripe_customers c
                set user_id = i.user_id,
                    organization_id = i.organization_id,
                    customer_email = coalesce(i.email, c.customer_email),
                    customer_name = i.name,
                    default_payment_method = i.default_payment_method,
                    -- replaces `stripe` and `sync`, keeps any key the application added
                    customer_metadata = c.customer_metadata || i.metadata
               from input i, audit_context
              where c.stripe_customer_id = i.stripe_customer_id and c.xmin::text = i.version"
    };
}

/// Names the writer in the audit trail (`stripe_customers_audit.event_id`) for the statement.
macro_rules! audit_context {
    () => {
        "with audit_context as (
             select set_config('stripe_customer_sync.event_id', $1, true)
         )"
    };
}

/// Records the event as `processed` in the ledger, if the row was `written`.
macro_rules! record_processed {
    () => {
        "
         insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, payload_sanitized,
              deleted_customer_id, outcome)
         select $1, $2, $3, $4, $5, $6::jsonb, $7, $8, 'processed' from written"
    };
}

// Declared after the macros above, which it uses.
mod events;
pub(crate) use events::{EventWrite, IfUserNotFree, write_events};
pub(super) use events::{
    INSERT_EVENTS_SQL, INSERT_ROW_EVENTS_SQL, RECORD_EVENTS_SQL, UPDATE_EVENTS_SQL,
    UPDATE_ROW_EVENTS_SQL, WRITE_EVENTS_SQL, WRITE_ROW_EVENTS_SQL,
};

/// Inserts the row and records the event. Binds: the ledger's `$1`–`$8` (see
/// `LedgerEntry::bind_to`), then `$9`–`$14` (see `bind_row`), then `$15` the row's new id, `$16`
/// its organization.
/// Public, with [`UPDATE_SQL`] and `SNAPSHOT_SQL`, for `benches/end_to_end.rs`.
pub const INSERT_SQL: &str = concat!(
    audit_context!(),
    ", input as (
             select $9::text as stripe_customer_id, $10::uuid as user_id, $11::text as email,
                    $12::text as name, $13::text as default_payment_method, $14::jsonb as metadata,
                    $15::uuid as new_id, $16::uuid as organization_id
         ), written as (
             ",
    insert_row!(),
    "
              -- deleted is terminal: a delete recorded since the snapshot was read, even one
              -- committing at this moment on another replica, wins (see the function)
              where public.stripe_customers_may_insert(i.stripe_customer_id)
             returning 1
         )",
    record_processed!()
);

/// Updates the row if still at version `$15` (text) and records the event; binds as
/// [`INSERT_SQL`], `$15` the version.
pub const UPDATE_SQL: &str = concat!(
    audit_context!(),
    ", input as (
             select $9::text as stripe_customer_id, $10::uuid as user_id, $11::text as email,
                    $12::text as name, $13::text as default_payment_method, $14::jsonb as metadata,
                    $15::text as version, $16::uuid as organization_id
         ), written as (
             ",
    update_row!(),
    "
             returning 1
         )",
    record_processed!()
);

/// Writes rows with no ledger row, each only if still as read (an insert only if there is still
/// no row, an update only at its version); returns the ordinals of those written. Binds: `$1`
/// the audit trail's source, `$2`–`$8` the rows as arrays, `$9` the new ids of inserts, `$10`
/// the organizations (see [`write_page`]).
///
/// `on conflict do nothing` covers both unique constraints for inserts: a row another writer
/// inserted meanwhile, or a user it linked meanwhile, leaves this row unwritten rather than
/// failing the page. Updates have no such clause: a race on a user (another writer linked it in
/// between) or on `auth.users` (the user was deleted in between) fails the whole statement as
/// [`StoreError::Conflict`], and nothing is written.
pub(super) const WRITE_PAGE_SQL: &str = concat!(
    audit_context!(),
    ", input as (
             select i.stripe_customer_id, i.version, i.user_id, i.organization_id, i.email,
                    i.name, i.default_payment_method, i.metadata::jsonb as metadata, i.new_id,
                    i.ord
               from (select u.stripe_customer_id, ($3::text[])[n] as version,
                            ($4::uuid[])[n] as user_id, ($5::text[])[n] as email,
                            ($6::text[])[n] as name, ($7::text[])[n] as default_payment_method,
                            ($8::text[])[n] as metadata, ($9::uuid[])[n] as new_id,
                            ($10::uuid[])[n] as organization_id, n as ord
                       from unnest($2::text[]) with ordinality as u(stripe_customer_id, n)) as i
         ), inserted as (
             ",
    insert_row!(),
    "
              where i.version is null
                -- deleted is terminal, even for a delete committing at this very moment
                and public.stripe_customers_may_insert(i.stripe_customer_id)
             on conflict do nothing
             returning stripe_customer_id
         ), updated as (
             ",
    update_row!(),
    "
             returning c.stripe_customer_id
         )
         select i.ord
           from input i
          where i.stripe_customer_id in (select stripe_customer_id from inserted
                                         union all
                                         select stripe_customer_id from updated)"
);

/// One row to write: an insert (`version` `None`) or an update of the row at `version`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowToWrite<'a> {
    pub stripe_customer_id: &'a str,
    pub version: Option<&'a str>,
    pub row: &'a RowWrite,
}

/// Writes one row if it is still as read, and records its event `entry` (`processed`) in the
/// same statement. `Ok(false)`: the row changed since it was read (or a delete was recorded
/// meanwhile); nothing was written. A write with no event is a page of one ([`write_page`]).
pub(crate) async fn write_one(
    db: impl PgExecutor<'_>,
    entry: &LedgerEntry<'_>,
    write: RowToWrite<'_>,
) -> Result<bool, StoreError> {
    let query = match write.version {
        None => sqlx::query(INSERT_SQL),
        Some(_) => sqlx::query(UPDATE_SQL),
    };
    let query = bind_row(entry.bind_to(query), write.stripe_customer_id, write.row);
    let query = match write.version {
        None => query.bind(new_row_id()),
        Some(version) => query.bind(version),
    };
    let query = query.bind(write.row.organization_id);
    let result = query.execute(db).await?;
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
        .bind(Json(MetadataJson::of(row)))
}

/// Writes every row in one statement with no ledger row, `source_id` in the audit trail, each
/// row only if still as read; returns, in the order of `rows`, whether each was written. A row
/// not written lost a race: decide it again.
pub(crate) async fn write_page(
    db: impl PgExecutor<'_>,
    source_id: &str,
    rows: &[RowToWrite<'_>],
) -> Result<Vec<bool>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let columns = RowColumns::of(rows);
    let written: Vec<i64> = sqlx::query_scalar(WRITE_PAGE_SQL)
        .bind(source_id)
        .bind(&columns.ids)
        .bind(&columns.versions)
        .bind(&columns.users)
        .bind(&columns.emails)
        .bind(&columns.names)
        .bind(&columns.payment_methods)
        .bind(&columns.metadata)
        .bind(&columns.new_ids)
        .bind(&columns.organizations)
        .fetch_all(db)
        .await?;

    let mut done = vec![false; rows.len()];
    for ord in written {
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| done.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(done)
}

/// The rows to write, one array per column: the input of [`WRITE_PAGE_SQL`] and
/// [`WRITE_EVENTS_SQL`].
struct RowColumns<'a> {
    ids: Vec<&'a str>,
    versions: Vec<Option<&'a str>>,
    users: Vec<Option<Uuid>>,
    emails: Vec<Option<&'a str>>,
    names: Vec<Option<&'a str>>,
    payment_methods: Vec<Option<&'a str>>,
    metadata: Vec<String>,
    /// The id of each insert; `None` for an update.
    new_ids: Vec<Option<Uuid>>,
    organizations: Vec<Option<Uuid>>,
}

impl<'a> RowColumns<'a> {
    fn of(rows: &[RowToWrite<'a>]) -> Self {
        let mut columns = Self::with_capacity(rows.len());
        for row in rows {
            columns.push(row);
        }
        columns
    }

    fn with_capacity(capacity: usize) -> Self {
        Self {
            ids: Vec::with_capacity(capacity),
            versions: Vec::with_capacity(capacity),
            users: Vec::with_capacity(capacity),
            emails: Vec::with_capacity(capacity),
            names: Vec::with_capacity(capacity),
            payment_methods: Vec::with_capacity(capacity),
            metadata: Vec::with_capacity(capacity),
            new_ids: Vec::with_capacity(capacity),
            organizations: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, r: &RowToWrite<'a>) {
        self.ids.push(r.stripe_customer_id);
        self.versions.push(r.version);
        self.users.push(r.row.user_id);
        self.emails.push(r.row.email.as_deref());
        self.names.push(r.row.name.as_deref());
        self.payment_methods
            .push(r.row.default_payment_method.as_deref());
        self.metadata.push(metadata_text(r.row));
        self.new_ids.push(r.version.is_none().then(new_row_id));
        self.organizations.push(r.row.organization_id);
    }
}

/// The id of a row the service inserts: a UUID of version 7, whose leading bits are the time in
/// milliseconds, so that ids sort in creation order (see [`insert_row!`]). Still a UUID that
/// nobody can guess; rows inserted by hand keep the column's random default.
fn new_row_id() -> Uuid {
    Uuid::now_v7()
}

/// `customer_metadata` as `row` sets it, as JSON text.
fn metadata_text(row: &RowWrite) -> String {
    serde_json::to_string(&MetadataJson::of(row)).expect("customer metadata serializes")
}
