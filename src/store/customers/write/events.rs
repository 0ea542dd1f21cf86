//! The events a webhook writer takes together (group commit): their rows written and each
//! event recorded, in one statement.

use std::collections::HashSet;

use sqlx::PgExecutor;

use super::RowToWrite;
use crate::domain::RowWrite;
use crate::store::StoreError;
use crate::store::ledger::{LedgerEntry, Recorded, RowGuard, record_guard};
use columns::EventColumns;

mod columns;

/// The rows to write of a batch of events, as arrays: `$1`–`$7` as `WRITE_PAGE_SQL`'s
/// `$2`–`$8`, `$23` as its `$9` (the new ids of inserts); `$21`–`$22` the metadata of an
/// insert's alternatives ([`IfUserNotFree`]), null for a row without. Where a row has
/// alternatives, the one whose facts hold now is written: the user linked if it exists and no
/// row holds it, otherwise no user and the metadata for why. Only the choice is made here; each
/// alternative was decided by the rules.
macro_rules! events_input {
    () => {
        "with audit_context as (
             select 1
         ), input as (
             select i.stripe_customer_id, i.version,
                    case when f.user_missing or f.user_taken then null else i.user_id end
                        as user_id,
                    -- a batch takes no state whose candidate is an organization
                    null::uuid as organization_id,
                    i.email, i.name, i.default_payment_method,
                    (case when f.user_missing then i.metadata_if_user_missing
                          when f.user_taken then i.metadata_if_user_taken
                          else i.metadata end)::jsonb as metadata,
                    i.new_id
               from (select u.stripe_customer_id, ($2::text[])[n] as version,
                            ($3::uuid[])[n] as user_id, ($4::text[])[n] as email,
                            ($5::text[])[n] as name, ($6::text[])[n] as default_payment_method,
                            ($7::text[])[n] as metadata,
                            ($21::text[])[n] as metadata_if_user_missing,
                            ($22::text[])[n] as metadata_if_user_taken,
                            ($23::uuid[])[n] as new_id
                       from unnest($1::text[]) with ordinality as u(stripe_customer_id, n)) as i
               left join lateral (
                    select not exists (select 1 from auth.users u where u.id = i.user_id)
                               as user_missing,
                           exists (select 1 from public.stripe_customers o
                                    where o.user_id = i.user_id) as user_taken
                     where i.metadata_if_user_missing is not null
               ) f on true
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

/// Records each event of the batch whose row of `g` (one per event) passes `$recorded_if`.
/// Binds `$8`–`$20` (see [`WRITE_EVENTS_SQL`]).
macro_rules! events_recorded {
    ($recorded_if:expr) => {
        concat!(
            ", g as (
             select u.id, ($9::text[])[n] as type,
                    ($10::boolean[])[n] as livemode, ($11::text[])[n] as api_version,
                    ($12::timestamptz[])[n] as stripe_created, ($13::text[])[n] as payload,
                    ($14::boolean[])[n] as payload_sanitized,
                    ($15::text[])[n] as deleted_customer_id,
                    ($16::text[])[n] as written_customer_id, ($17::text[])[n] as outcome,
                    ($18::text[])[n] as reason, ($19::text[])[n] as guard_customer_id,
                    ($20::text[])[n] as guard_version
               from unnest($8::text[]) with ordinality as u(id, n)
         )
         insert into public.stripe_webhook_events
             (id, type, livemode, api_version, stripe_created, payload, payload_sanitized,
              deleted_customer_id, outcome, reason)
         select g.id, g.type, g.livemode, g.api_version, g.stripe_created, g.payload::jsonb,
                g.payload_sanitized, g.deleted_customer_id, g.outcome, g.reason
           from g
          where ",
            $recorded_if,
            "
         returning id,
                   -- Once per statement: whether a customer the batch wrote has subscriptions
                   -- kept before it, whose owner's tier its write may now give.
                   exists (select 1 from public.stripe_subscriptions s
                            where s.stripe_customer_id = any($16::text[])) as subscribed"
        )
    };
}

/// The event's row was written (it is among those the statement inserted or updated).
macro_rules! row_written {
    () => {
        "g.written_customer_id in (select stripe_customer_id from inserted
                                     union all
                                     select stripe_customer_id from updated)"
    };
}

/// `processed` if the event's row was written; an event that writes no row, with its outcome
/// while its guard holds.
macro_rules! row_written_or_guard_holds {
    () => {
        concat!(
            "case when g.written_customer_id is not null
                     then ",
            row_written!(),
            "
                     else ",
            record_guard!(),
            "
                end"
        )
    };
}

/// Writes the rows of many events and records each event, in one statement (group commit);
/// returns the ids of the events recorded. Each row is written only if still as read, as by
/// `WRITE_PAGE_SQL` (an insert also only while the user it links is still free), and its
/// event recorded `processed` only if it was; an event that writes no row is recorded with its
/// outcome only while its guard holds (as `ledger::record`). An event whose write or guard did
/// not hold is not recorded: decide it again. Its parameters are `EventColumns`', which binds
/// them: `$1`–`$7` the rows, `$8`–`$20` every event's ledger columns, outcome and guard,
/// `$21`–`$22` the alternatives of inserts (see [`events_input!`]), `$23` their new ids.
///
/// No statement-wide event id for the audit trail: its trigger reads each row's event from the
/// `sync.last_event_id` the write sets. A duplicate event id (a delivery another replica is
/// recording) fails the statement on the ledger's primary key, and nothing is written. The
/// variants below leave out the insert or the update the batch does not need, and (the
/// `*_ROW_EVENTS_SQL`) the guard when every event of the batch writes a row.
pub(in crate::store::customers) const WRITE_EVENTS_SQL: &str = concat!(
    events_input!(),
    events_inserted!(),
    events_updated!(),
    events_recorded!(row_written_or_guard_holds!())
);
pub(in crate::store::customers) const INSERT_EVENTS_SQL: &str = concat!(
    events_input!(),
    events_inserted!(),
    none_updated!(),
    events_recorded!(row_written_or_guard_holds!())
);
pub(in crate::store::customers) const UPDATE_EVENTS_SQL: &str = concat!(
    events_input!(),
    none_inserted!(),
    events_updated!(),
    events_recorded!(row_written_or_guard_holds!())
);
pub(in crate::store::customers) const RECORD_EVENTS_SQL: &str = concat!(
    events_input!(),
    none_inserted!(),
    none_updated!(),
    events_recorded!(row_written_or_guard_holds!())
);

/// The same statements for a batch in which every event writes a row (the usual batch):
/// without the guard of an event that writes none. PostgreSQL sets up every part of a plan at
/// each execution, used or not, and the guard's row lookup and function call are a fixed cost
/// that a batch of one event pays in full (`cargo bench --bench batch_statements`).
pub(in crate::store::customers) const WRITE_ROW_EVENTS_SQL: &str = concat!(
    events_input!(),
    events_inserted!(),
    events_updated!(),
    events_recorded!(row_written!())
);
pub(in crate::store::customers) const INSERT_ROW_EVENTS_SQL: &str = concat!(
    events_input!(),
    events_inserted!(),
    none_updated!(),
    events_recorded!(row_written!())
);
pub(in crate::store::customers) const UPDATE_ROW_EVENTS_SQL: &str = concat!(
    events_input!(),
    none_inserted!(),
    events_updated!(),
    events_recorded!(row_written!())
);

/// One event of a batch, and what it writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventWrite<'a> {
    /// The event's customer row; the event is recorded `processed` if the row is written.
    Row {
        entry: &'a LedgerEntry<'a>,
        write: RowToWrite<'a>,
        /// For an insert linking a user: what to write instead if the user is not free.
        if_user_not_free: Option<IfUserNotFree<'a>>,
    },
    /// The event alone, with its outcome, while `guard` holds.
    Record {
        entry: &'a LedgerEntry<'a>,
        recorded: Recorded<'a>,
        guard: Option<RowGuard<'a>>,
    },
}

/// The alternatives of an insert that links a user, decided without reading whether the user
/// exists and is free: the row to write if it does not exist, and if another row holds it.
/// Each differs from the linked row only in `user_id` (none) and `customer_metadata`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfUserNotFree<'a> {
    pub user_missing: &'a RowWrite,
    pub user_taken: &'a RowWrite,
}

impl IfUserNotFree<'_> {
    /// Whether the alternatives can be chosen by the write (see `events_input!`): the same
    /// row but for its user and metadata, linked in `linked` and in neither alternative.
    pub(crate) fn fit(&self, linked: &RowWrite) -> bool {
        let same_values = |other: &RowWrite| {
            other.user_id.is_none()
                && other.email == linked.email
                && other.name == linked.name
                && other.default_payment_method == linked.default_payment_method
        };
        linked.user_id.is_some() && same_values(self.user_missing) && same_values(self.user_taken)
    }
}

impl<'a> EventWrite<'a> {
    fn entry(&self) -> &'a LedgerEntry<'a> {
        match *self {
            Self::Row { entry, .. } | Self::Record { entry, .. } => entry,
        }
    }
}

/// What a batch's write recorded.
#[derive(Debug, Default)]
pub(crate) struct WrittenEvents {
    /// The ids of the events recorded. An event missing from them wrote nothing: decide it
    /// again.
    pub(crate) recorded: HashSet<String>,
    /// Whether any customer the batch wrote has subscriptions kept: only then may a write that
    /// links an owner give it a tier (asked in the same statement, not in a round trip of its
    /// own per batch).
    pub(crate) subscriptions_kept: bool,
}

/// Writes the events of a batch in one statement ([`WRITE_EVENTS_SQL`] or the variant the
/// batch needs).
pub(crate) async fn write_events(
    db: impl PgExecutor<'_>,
    events: &[EventWrite<'_>],
) -> Result<WrittenEvents, StoreError> {
    if events.is_empty() {
        return Ok(WrittenEvents::default());
    }
    let columns = EventColumns::of(events);
    let rows: Vec<(String, bool)> = columns
        .bind(sqlx::query_as(columns.statement()))
        .fetch_all(db)
        .await?;
    Ok(WrittenEvents {
        subscriptions_kept: rows.iter().any(|(_, subscribed)| *subscribed),
        recorded: rows.into_iter().map(|(id, _)| id).collect(),
    })
}
