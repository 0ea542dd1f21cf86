//! Writing a decided row, only if the row is still as read, in one statement together with
//! what is recorded beside it ([`Recording`]). The row's insert and update are written once
//! ([`insert_row!`], [`update_row!`]) over a relation `i` of the values to write; each
//! statement below says where `i` comes from and what it records beside the row.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::super::StoreError;
use super::super::ledger::{LedgerEntry, PgQuery, Recorded, RowGuard, record_guard};
use super::MetadataJson;
use crate::domain::RowWrite;

/// The row's insert from `i` (`stripe_customer_id`, `user_id`, `email`, `name`,
/// `default_payment_method`, `metadata` jsonb); the statement adds its condition.
macro_rules! insert_row {
    () => {
        "insert into public.stripe_customers (stripe_customer_id, user_id, customer_email,
                 customer_name, default_payment_method, customer_metadata)
             select i.stripe_customer_id, i.user_id, i.email, i.name, i.default_payment_method,
                    i.metadata
               from input i, audit_context"
    };
}

/// The row's update from `i`, as [`insert_row!`] plus `version`: the row `c` is updated only
/// at the version the decision read.
macro_rules! update_row {
    () => {
        "update public.stripe_customers c
                set user_id = i.user_id,
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

/// Inserts the row and records the event. Binds: the ledger's `$1`–`$8` (see
/// `LedgerEntry::bind_to`), then `$9`–`$14` (see `bind_row`). Public, with [`UPDATE_SQL`]
/// and `SNAPSHOT_SQL`, for `benches/end_to_end.rs`.
pub const INSERT_SQL: &str = concat!(
    audit_context!(),
    ", input as (
             select $9::text as stripe_customer_id, $10::uuid as user_id, $11::text as email,
                    $12::text as name, $13::text as default_payment_method, $14::jsonb as metadata
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
/// [`INSERT_SQL`] plus `$15`.
pub const UPDATE_SQL: &str = concat!(
    audit_context!(),
    ", input as (
             select $9::text as stripe_customer_id, $10::uuid as user_id, $11::text as email,
                    $12::text as name, $13::text as default_payment_method, $14::jsonb as metadata,
                    $15::text as version
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
/// the audit trail's source, `$2`–`$8` the rows as arrays (see [`write_page`]).
///
/// `on conflict do nothing` covers both unique constraints for inserts: a row another writer
/// inserted meanwhile, or a user it linked meanwhile, leaves this row unwritten rather than
/// failing the page. Updates have no such clause: a race on a user (another writer linked it in
/// between) or on `auth.users` (the user was deleted in between) fails the whole statement as
/// [`StoreError::Conflict`], and nothing is written.
const WRITE_PAGE_SQL: &str = concat!(
    audit_context!(),
    ", input as (
             select i.stripe_customer_id, i.version, i.user_id, i.email, i.name,
                    i.default_payment_method, i.metadata::jsonb as metadata, i.ord
               from unnest($2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[],
                           $7::text[], $8::text[]) with ordinality
                    as i(stripe_customer_id, version, user_id, email, name,
                         default_payment_method, metadata, ord)
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

/// The rows to write of a batch of events, as arrays: `$1`–`$7` as [`WRITE_PAGE_SQL`]'s
/// `$2`–`$8`.
macro_rules! events_input {
    () => {
        "with audit_context as (
             select 1
         ), input as (
             select i.stripe_customer_id, i.version, i.user_id, i.email, i.name,
                    i.default_payment_method, i.metadata::jsonb as metadata
               from unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                           $6::text[], $7::text[])
                    as i(stripe_customer_id, version, user_id, email, name,
                         default_payment_method, metadata)
         )"
    };
}

/// Inserts the batch's new rows, each only where there is still no row, the customer may
/// still be inserted, and the user it links (if any) still exists and is still free: a row
/// that fails any of these is not written, and its event is decided again.
macro_rules! events_inserted {
    () => {
        concat!(
            ", inserted as (
             ",
            insert_row!(),
            "
              where i.version is null
                and public.stripe_customers_may_insert(i.stripe_customer_id)
                and (i.user_id is null
                     or (exists (select 1 from auth.users u where u.id = i.user_id)
                         and not exists (select 1 from public.stripe_customers o
                                          where o.user_id = i.user_id)))
             on conflict do nothing
             returning stripe_customer_id
         )"
        )
    };
}

/// Updates the batch's rows, each only at the version its decision read.
macro_rules! events_updated {
    () => {
        concat!(
            ", updated as (
             ",
            update_row!(),
            "
             returning c.stripe_customer_id
         )"
        )
    };
}

/// A statement with no insert (or no update) does not name the table in one: an AFTER
/// STATEMENT trigger fires for every statement naming it, rows or none.
macro_rules! none_inserted {
    () => {
        ", inserted as (select null::text as stripe_customer_id where false)"
    };
}

macro_rules! none_updated {
    () => {
        ", updated as (select null::text as stripe_customer_id where false)"
    };
}

/// Records each event of the batch: `processed` if its row was written, otherwise (an event
/// that writes no row) with its outcome while its guard holds. Binds `$8`–`$20` (see
/// [`WRITE_EVENTS_SQL`]).
macro_rules! events_recorded {
    () => {
        concat!(
            ", g as (
             select *
               from unnest($8::text[], $9::text[], $10::boolean[], $11::text[],
                           $12::timestamptz[], $13::text[], $14::boolean[], $15::text[],
                           $16::text[], $17::text[], $18::text[], $19::text[], $20::text[])
                    as g(id, type, livemode, api_version, stripe_created, payload,
                         payload_sanitized, deleted_customer_id, written_customer_id,
                         outcome, reason, guard_customer_id, guard_version)
         )
         insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, payload_sanitized,
              deleted_customer_id, outcome, reason)
         select g.id, g.type, g.livemode, g.api_version, g.stripe_created, g.payload::jsonb,
                g.payload_sanitized, g.deleted_customer_id, g.outcome, g.reason
           from g
          where case when g.written_customer_id is not null
                     then g.written_customer_id in (select stripe_customer_id from inserted
                                                    union all
                                                    select stripe_customer_id from updated)
                     else ",
            record_guard!(),
            "
                end
         returning id"
        )
    };
}

/// Writes the rows of many events and records each event, in one statement (group commit);
/// returns the ids of the events recorded. Each row is written only if still as read, as by
/// [`WRITE_PAGE_SQL`] (an insert also only while the user it links is still free), and its
/// event recorded `processed` only if it was; an event that writes no row is recorded with its
/// outcome only while its guard holds (as `ledger::record`). An event whose write or guard did
/// not hold is not recorded: decide it again. Binds: `$1`–`$7` the rows as arrays, `$8`–`$15`
/// the ledger columns of every event as arrays (as `LedgerEntry::bind_to`), `$16` the customer
/// each event wrote (null: it writes none), `$17`–`$18` outcome and reason of those that write
/// none, `$19`–`$20` their guards.
///
/// No statement-wide event id for the audit trail: its trigger reads each row's event from the
/// `sync.last_event_id` the write sets. A duplicate event id (a delivery another replica is
/// recording) fails the statement on the ledger's primary key, and nothing is written. The
/// variants below leave out the insert or the update the batch does not need.
const WRITE_EVENTS_SQL: &str = concat!(
    events_input!(),
    events_inserted!(),
    events_updated!(),
    events_recorded!()
);
const INSERT_EVENTS_SQL: &str = concat!(
    events_input!(),
    events_inserted!(),
    none_updated!(),
    events_recorded!()
);
const UPDATE_EVENTS_SQL: &str = concat!(
    events_input!(),
    none_inserted!(),
    events_updated!(),
    events_recorded!()
);
const RECORD_EVENTS_SQL: &str = concat!(
    events_input!(),
    none_inserted!(),
    none_updated!(),
    events_recorded!()
);

/// One event of a batch, and what it writes.
#[derive(Debug, Clone, Copy)]
pub enum EventWrite<'a> {
    /// The event's customer row; the event is recorded `processed` if the row is written.
    Row {
        entry: &'a LedgerEntry<'a>,
        write: RowToWrite<'a>,
    },
    /// The event alone, with its outcome, while `guard` holds.
    Record {
        entry: &'a LedgerEntry<'a>,
        recorded: Recorded<'a>,
        guard: Option<RowGuard<'a>>,
    },
}

impl<'a> EventWrite<'a> {
    fn entry(&self) -> &'a LedgerEntry<'a> {
        match *self {
            Self::Row { entry, .. } | Self::Record { entry, .. } => entry,
        }
    }
}

/// Writes the events of a batch in one statement ([`WRITE_EVENTS_SQL`]); the ids of the events
/// recorded come back. An event missing from them wrote nothing: decide it again.
pub async fn write_events(
    db: impl PgExecutor<'_>,
    events: &[EventWrite<'_>],
) -> Result<HashSet<String>, StoreError> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<RowToWrite<'_>> = events
        .iter()
        .filter_map(|event| match event {
            EventWrite::Row { write, .. } => Some(*write),
            EventWrite::Record { .. } => None,
        })
        .collect();
    let mut ledger = LedgerColumns::default();
    for event in events {
        ledger.push(event);
    }
    let inserts = rows.iter().any(|r| r.version.is_none());
    let updates = rows.iter().any(|r| r.version.is_some());
    let sql = match (inserts, updates) {
        (true, true) => WRITE_EVENTS_SQL,
        (true, false) => INSERT_EVENTS_SQL,
        (false, true) => UPDATE_EVENTS_SQL,
        (false, false) => RECORD_EVENTS_SQL,
    };
    let rows = RowColumns::of(&rows);
    let recorded: Vec<String> = sqlx::query_scalar(sql)
        .bind(&rows.ids)
        .bind(&rows.versions)
        .bind(&rows.users)
        .bind(&rows.emails)
        .bind(&rows.names)
        .bind(&rows.payment_methods)
        .bind(&rows.metadata)
        .bind(&ledger.ids)
        .bind(&ledger.types)
        .bind(&ledger.livemodes)
        .bind(&ledger.api_versions)
        .bind(&ledger.created)
        .bind(&ledger.payloads)
        .bind(&ledger.sanitized)
        .bind(&ledger.deleted_customer_ids)
        .bind(&ledger.written_customer_ids)
        .bind(&ledger.outcomes)
        .bind(&ledger.reasons)
        .bind(&ledger.guard_customer_ids)
        .bind(&ledger.guard_versions)
        .fetch_all(db)
        .await?;
    Ok(recorded.into_iter().collect())
}

/// The ledger columns of a batch's events, one array per column.
#[derive(Default)]
struct LedgerColumns<'a> {
    ids: Vec<&'a str>,
    types: Vec<&'a str>,
    livemodes: Vec<bool>,
    api_versions: Vec<Option<&'a str>>,
    created: Vec<DateTime<Utc>>,
    payloads: Vec<&'a str>,
    sanitized: Vec<bool>,
    deleted_customer_ids: Vec<Option<&'a str>>,
    written_customer_ids: Vec<Option<&'a str>>,
    outcomes: Vec<&'a str>,
    reasons: Vec<Option<&'a str>>,
    guard_customer_ids: Vec<Option<&'a str>>,
    guard_versions: Vec<Option<&'a str>>,
}

impl<'a> LedgerColumns<'a> {
    fn push(&mut self, event: &EventWrite<'a>) {
        let entry = event.entry();
        self.ids.push(entry.event_id);
        self.types.push(entry.event_type);
        self.livemodes.push(entry.livemode);
        self.api_versions.push(entry.api_version);
        self.created.push(entry.stripe_created);
        self.payloads.push(entry.payload);
        self.sanitized.push(entry.payload_sanitized);
        self.deleted_customer_ids.push(entry.deleted_customer_id);
        let (written, outcome, reason, guard) = match *event {
            EventWrite::Row { write, .. } => {
                (Some(write.stripe_customer_id), "processed", None, None)
            }
            EventWrite::Record {
                recorded, guard, ..
            } => (None, recorded.outcome, recorded.reason, guard),
        };
        self.written_customer_ids.push(written);
        self.outcomes.push(outcome);
        self.reasons.push(reason);
        self.guard_customer_ids
            .push(guard.map(|g| g.stripe_customer_id));
        self.guard_versions.push(guard.and_then(|g| g.version));
    }
}

/// What a customer write records beside the row.
#[derive(Debug, Clone, Copy)]
pub enum Recording<'a> {
    /// The event's ledger row (`processed`), in the same statement: a Stripe event.
    Ledger(&'a LedgerEntry<'a>),
    /// No ledger row (there is no event), only the writer's id in the audit trail: a fetching
    /// run (`backfill:…`, `verify:…`) or a customer created for a user (`ensure-customer:…`).
    Audit { source_id: &'a str },
}

/// One row to write: an insert (`version` `None`) or an update of the row at `version`.
#[derive(Debug, Clone, Copy)]
pub struct RowToWrite<'a> {
    pub stripe_customer_id: &'a str,
    pub version: Option<&'a str>,
    pub row: &'a RowWrite,
}

/// Writes one row if it is still as read, and records `recording` with it. `Ok(false)`: the
/// row changed since it was read (or a delete was recorded meanwhile); nothing was written.
pub async fn write_one(
    db: impl PgExecutor<'_>,
    recording: Recording<'_>,
    write: RowToWrite<'_>,
) -> Result<bool, StoreError> {
    let entry = match recording {
        Recording::Ledger(entry) => entry,
        Recording::Audit { source_id } => {
            return Ok(write_page(db, source_id, &[write]).await? == [true]);
        }
    };
    let query = match write.version {
        None => sqlx::query(INSERT_SQL),
        Some(_) => sqlx::query(UPDATE_SQL),
    };
    let mut query = bind_row(entry.bind_to(query), write.stripe_customer_id, write.row);
    if let Some(version) = write.version {
        query = query.bind(version);
    }
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
pub async fn write_page(
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
}

impl<'a> RowColumns<'a> {
    fn of(rows: &[RowToWrite<'a>]) -> Self {
        let mut columns = Self {
            ids: Vec::with_capacity(rows.len()),
            versions: Vec::with_capacity(rows.len()),
            users: Vec::with_capacity(rows.len()),
            emails: Vec::with_capacity(rows.len()),
            names: Vec::with_capacity(rows.len()),
            payment_methods: Vec::with_capacity(rows.len()),
            metadata: Vec::with_capacity(rows.len()),
        };
        for r in rows {
            columns.ids.push(r.stripe_customer_id);
            columns.versions.push(r.version);
            columns.users.push(r.row.user_id);
            columns.emails.push(r.row.email.as_deref());
            columns.names.push(r.row.name.as_deref());
            columns
                .payment_methods
                .push(r.row.default_payment_method.as_deref());
            columns.metadata.push(
                serde_json::to_string(&MetadataJson::of(r.row))
                    .expect("customer metadata serializes"),
            );
        }
        columns
    }
}
