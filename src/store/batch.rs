//! Group commit: the snapshot read and the write of many events, one statement each.
//!
//! Under concurrency the per-statement costs (a round trip, parse/bind, a commit and its WAL
//! flush) outweigh the work each row needs, so the events waiting together are read in one
//! statement and written in one statement. The write keeps every per-event guard of the single
//! statements in [`super::customers`] and [`super::ledger`]: an insert only where the customer
//! may still be inserted, an update only of the version that was read, a record-only decision
//! only while the row is as read. An event whose guard no longer holds is simply not recorded
//! and the caller applies it on its own; the statement is atomic, so an error writes nothing.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::StoreError;
use super::customers::{CustomerSnapshot, stored_customer};
use super::ledger::{LedgerEntry, Recorded, RowGuard};
use crate::sync::rules::{RowWrite, UserFacts};

/// The snapshot read of [`super::customers::SNAPSHOT_SQL`], for many events at once: one row
/// per element of the arrays, in their order. Binds: `$1` event ids, `$2` customer ids, `$3`
/// candidate users (text[], text[], uuid[]).
const SNAPSHOTS_SQL: &str = "select
             exists (select 1 from public.stripe_webhook_events e where e.id = b.event_id)
                 as already_recorded,
             c.xmin::text as version,
             c.customer_metadata #>> '{sync,status}' as status,
             c.customer_metadata #>> '{sync,last_event_created}' as last_event_created,
             c.customer_metadata #>> '{sync,last_event_type}' as last_event_type,
             coalesce(b.user_id is not null
                 and exists (select 1 from auth.users u where u.id = b.user_id), false)
                 as user_exists,
             coalesce(b.user_id is not null
                 and exists (select 1 from public.stripe_customers o
                              where o.user_id = b.user_id
                                and o.stripe_customer_id <> b.customer_id), false)
                 as user_linked_elsewhere,
             exists (select 1 from public.stripe_webhook_events d
                      where d.deleted_customer_id = b.customer_id) as deletion_recorded
         from unnest($1::text[], $2::text[], $3::uuid[]) with ordinality
              as b(event_id, customer_id, user_id, position)
         left join public.stripe_customers c on c.stripe_customer_id = b.customer_id
         order by b.position";

/// Writes many events' decisions in one statement and returns the ids of the events it
/// recorded. Each array holds one element per event, in the same order:
/// - `$1`–`$8`: the ledger columns (as [`LedgerEntry::bind_to`]; payloads as text);
/// - `$9` the action (`insert`, `update` or `record`), `$10` the customer id;
/// - `$11`–`$15`: the row values (user, email, name, payment method, metadata as text);
/// - `$16` the version an update or a guarded record rests on;
/// - `$17`–`$18`: outcome and reason of a record-only event, `$19` its guarded customer id.
///
/// The customer writes come first and the ledger rows follow from what they returned, so an
/// event is recorded `processed` exactly when its row was written. A duplicate event id (a
/// concurrent delivery on another replica) fails the statement on the ledger's primary key:
/// nothing is written, and the caller applies the events one by one.
const WRITE_SQL: &str = "with b as (
             select * from unnest($1::text[], $2::text[], $3::bool[], $4::text[],
                                  $5::timestamptz[], $6::text[], $7::bool[], $8::text[],
                                  $9::text[], $10::text[], $11::uuid[], $12::text[],
                                  $13::text[], $14::text[], $15::text[], $16::text[],
                                  $17::text[], $18::text[], $19::text[])
                 as b(event_id, type, livemode, api_version, stripe_created, payload,
                      payload_sanitized, deleted_customer_id, action, customer_id, user_id,
                      email, name, default_payment_method, metadata, version, outcome,
                      reason, guard_customer_id)
         ), inserted as (
             insert into public.stripe_customers (stripe_customer_id, user_id, customer_email,
                 customer_name, default_payment_method, customer_metadata)
             select b.customer_id, b.user_id, b.email, b.name, b.default_payment_method,
                    b.metadata::jsonb
               from b
              -- deleted is terminal, as in the single insert
              where b.action = 'insert' and public.stripe_customers_may_insert(b.customer_id)
             -- a row inserted since the snapshot (any replica): not recorded, decided again
             on conflict do nothing
             returning stripe_customer_id
         ), updated as (
             update public.stripe_customers c
                set user_id = b.user_id,
                    customer_email = coalesce(b.email, c.customer_email),
                    customer_name = b.name,
                    default_payment_method = b.default_payment_method,
                    customer_metadata = c.customer_metadata || b.metadata::jsonb
               from b
              where b.action = 'update' and c.stripe_customer_id = b.customer_id
                and c.xmin::text = b.version
             returning c.stripe_customer_id
         )
         insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, payload_sanitized,
              deleted_customer_id, outcome, reason)
         select b.event_id, b.type, b.livemode, b.api_version, b.stripe_created,
                b.payload::jsonb, b.payload_sanitized, b.deleted_customer_id,
                b.outcome, b.reason
           from b
          where (b.action = 'insert'
                 and b.customer_id in (select stripe_customer_id from inserted))
             or (b.action = 'update'
                 and b.customer_id in (select stripe_customer_id from updated))
             or (b.action = 'record'
                 and (b.guard_customer_id is null
                      or (select c.xmin::text from public.stripe_customers c
                           where c.stripe_customer_id = b.guard_customer_id)
                         is not distinct from b.version)
                 and (b.deleted_customer_id is null or b.guard_customer_id is null
                      or b.version is not null
                      or public.stripe_customers_may_record_deletion(b.deleted_customer_id)))
         returning id";

/// What one event's snapshot is read for.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotKey<'a> {
    pub event_id: &'a str,
    pub stripe_customer_id: &'a str,
    pub candidate_user: Option<Uuid>,
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

/// One snapshot per key, in the keys' order, read in one statement.
pub async fn snapshots(
    db: impl PgExecutor<'_>,
    keys: &[SnapshotKey<'_>],
) -> Result<Vec<CustomerSnapshot>, StoreError> {
    let event_ids: Vec<&str> = keys.iter().map(|k| k.event_id).collect();
    let customer_ids: Vec<&str> = keys.iter().map(|k| k.stripe_customer_id).collect();
    let users: Vec<Option<Uuid>> = keys.iter().map(|k| k.candidate_user).collect();
    let rows: Vec<SnapshotRow> = sqlx::query_as(SNAPSHOTS_SQL)
        .bind(event_ids)
        .bind(customer_ids)
        .bind(users)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| CustomerSnapshot {
            already_recorded: row.already_recorded,
            stored: row.version.map(|version| {
                stored_customer(
                    version,
                    row.status.as_deref(),
                    row.last_event_created.as_deref(),
                    row.last_event_type.as_deref(),
                )
            }),
            user: UserFacts {
                exists: row.user_exists,
                linked_elsewhere: row.user_linked_elsewhere,
            },
            deletion_recorded: row.deletion_recorded,
        })
        .collect())
}

/// One event's decided write.
#[derive(Debug, Clone, Copy)]
pub enum BatchWrite<'a> {
    /// Insert the row (see [`super::customers::insert`]).
    Insert {
        entry: &'a LedgerEntry<'a>,
        stripe_customer_id: &'a str,
        row: &'a RowWrite,
    },
    /// Update the row if still at `version` (see [`super::customers::update`]).
    Update {
        entry: &'a LedgerEntry<'a>,
        stripe_customer_id: &'a str,
        version: &'a str,
        row: &'a RowWrite,
    },
    /// Record the event only, guarded as [`super::ledger::record`] is.
    Record {
        entry: &'a LedgerEntry<'a>,
        recorded: Recorded<'a>,
        guard: Option<RowGuard<'a>>,
    },
}

impl<'a> BatchWrite<'a> {
    fn entry(&self) -> &'a LedgerEntry<'a> {
        match self {
            Self::Insert { entry, .. }
            | Self::Update { entry, .. }
            | Self::Record { entry, .. } => entry,
        }
    }
}

/// The columns of [`WRITE_SQL`], one vector per array parameter.
#[derive(Default)]
struct Columns<'a> {
    event_id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    livemode: Vec<bool>,
    api_version: Vec<Option<&'a str>>,
    stripe_created: Vec<DateTime<Utc>>,
    payload: Vec<&'a str>,
    payload_sanitized: Vec<bool>,
    deleted_customer_id: Vec<Option<&'a str>>,
    action: Vec<&'static str>,
    customer_id: Vec<Option<&'a str>>,
    user_id: Vec<Option<Uuid>>,
    email: Vec<Option<&'a str>>,
    name: Vec<Option<&'a str>>,
    default_payment_method: Vec<Option<&'a str>>,
    metadata: Vec<Option<String>>,
    version: Vec<Option<&'a str>>,
    outcome: Vec<&'a str>,
    reason: Vec<Option<&'a str>>,
    guard_customer_id: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, write: &BatchWrite<'a>) {
        let entry = write.entry();
        self.event_id.push(entry.event_id);
        self.event_type.push(entry.event_type);
        self.livemode.push(entry.livemode);
        self.api_version.push(entry.api_version);
        self.stripe_created.push(entry.stripe_created);
        self.payload.push(entry.payload);
        self.payload_sanitized.push(entry.payload_sanitized);
        self.deleted_customer_id.push(entry.deleted_customer_id);
        let (action, customer_id, row, version) = match *write {
            BatchWrite::Insert {
                stripe_customer_id,
                row,
                ..
            } => ("insert", Some(stripe_customer_id), Some(row), None),
            BatchWrite::Update {
                stripe_customer_id,
                version,
                row,
                ..
            } => ("update", Some(stripe_customer_id), Some(row), Some(version)),
            BatchWrite::Record { guard, .. } => (
                "record",
                guard.map(|g| g.stripe_customer_id),
                None,
                guard.and_then(|g| g.version),
            ),
        };
        self.action.push(action);
        self.customer_id.push(customer_id);
        self.user_id.push(row.and_then(|r| r.user_id));
        self.email.push(row.and_then(|r| r.email.as_deref()));
        self.name.push(row.and_then(|r| r.name.as_deref()));
        self.default_payment_method
            .push(row.and_then(|r| r.default_payment_method.as_deref()));
        self.metadata
            .push(row.map(|r| r.customer_metadata.to_string()));
        self.version.push(version);
        let (outcome, reason) = match write {
            BatchWrite::Record { recorded, .. } => (recorded.outcome, recorded.reason),
            _ => ("processed", None),
        };
        self.outcome.push(outcome);
        self.reason.push(reason);
        self.guard_customer_id.push(match write {
            BatchWrite::Record { guard, .. } => guard.map(|g| g.stripe_customer_id),
            _ => None,
        });
    }
}

/// Writes the decisions in one statement; the ids of the events it recorded come back. An
/// event missing from them was not written at all: its guard no longer held.
pub async fn write(
    db: impl PgExecutor<'_>,
    writes: &[BatchWrite<'_>],
) -> Result<HashSet<String>, StoreError> {
    let mut columns = Columns::default();
    for write in writes {
        columns.push(write);
    }
    let recorded: Vec<(String,)> = sqlx::query_as(WRITE_SQL)
        .bind(columns.event_id)
        .bind(columns.event_type)
        .bind(columns.livemode)
        .bind(columns.api_version)
        .bind(columns.stripe_created)
        .bind(columns.payload)
        .bind(columns.payload_sanitized)
        .bind(columns.deleted_customer_id)
        .bind(columns.action)
        .bind(columns.customer_id)
        .bind(columns.user_id)
        .bind(columns.email)
        .bind(columns.name)
        .bind(columns.default_payment_method)
        .bind(columns.metadata)
        .bind(columns.version)
        .bind(columns.outcome)
        .bind(columns.reason)
        .bind(columns.guard_customer_id)
        .fetch_all(db)
        .await?;
    Ok(recorded.into_iter().map(|(id,)| id).collect())
}
