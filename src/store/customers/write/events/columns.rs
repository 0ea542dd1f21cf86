//! The columns of a batch of events, as the statements of `super` take them.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::QueryAs;

use super::super::{RowColumns, metadata_text};
use super::{
    EventWrite, INSERT_EVENTS_SQL, INSERT_ROW_EVENTS_SQL, RECORD_EVENTS_SQL, UPDATE_EVENTS_SQL,
    UPDATE_ROW_EVENTS_SQL, WRITE_EVENTS_SQL, WRITE_ROW_EVENTS_SQL,
};
use crate::domain::outcome::Outcome;
use crate::store::ledger::OutcomeColumns;

/// The statements of a batch that writes rows, by the writes it makes.
struct Statements {
    insert_and_update: &'static str,
    insert: &'static str,
    update: &'static str,
}

/// For a batch in which some event writes no row (it is recorded under its guard).
const EVENTS: Statements = Statements {
    insert_and_update: WRITE_EVENTS_SQL,
    insert: INSERT_EVENTS_SQL,
    update: UPDATE_EVENTS_SQL,
};

/// For a batch in which every event writes a row: without the guard.
const ROW_EVENTS: Statements = Statements {
    insert_and_update: WRITE_ROW_EVENTS_SQL,
    insert: INSERT_ROW_EVENTS_SQL,
    update: UPDATE_ROW_EVENTS_SQL,
};

/// The batch statement: each event recorded, and whether any customer it wrote has kept
/// subscriptions (see [`super::WrittenEvents`]).
pub(super) type BatchQuery<'q> = QueryAs<'q, Postgres, (String, bool), PgArguments>;

/// The columns of a batch of events, one array per column: what the statements take, and the
/// one place that says which parameter is which.
pub(super) struct EventColumns<'a> {
    /// The rows the events write (events that write none have no element here).
    rows: RowColumns<'a>,
    /// Per row, the metadata of its insert's alternatives ([`IfUserNotFree`]); null for a row
    /// without.
    if_user_missing: Vec<Option<String>>,
    if_user_taken: Vec<Option<String>>,
    /// Per event, its ledger row and what it is recorded with.
    ledger: LedgerColumns<'a>,
}

impl<'a> EventColumns<'a> {
    pub(super) fn of(events: &[EventWrite<'a>]) -> Self {
        let mut columns = Self {
            rows: RowColumns::with_capacity(events.len()),
            if_user_missing: Vec::with_capacity(events.len()),
            if_user_taken: Vec::with_capacity(events.len()),
            ledger: LedgerColumns::default(),
        };
        for event in events {
            if let EventWrite::Row {
                write,
                if_user_not_free,
                ..
            } = event
            {
                columns.rows.push(write);
                let alternatives = if_user_not_free.map(|alternatives| {
                    (
                        metadata_text(alternatives.user_missing),
                        metadata_text(alternatives.user_taken),
                    )
                });
                let (missing, taken) = alternatives.unzip();
                columns.if_user_missing.push(missing);
                columns.if_user_taken.push(taken);
            }
            columns.ledger.push(event);
        }
        columns
    }

    /// The statement this batch needs: without the insert or the update when none of its rows
    /// is one, and without the guard of an event that writes no row when every event writes one.
    pub(super) fn statement(&self) -> &'static str {
        let inserts = self.rows.versions.iter().any(Option::is_none);
        let updates = self.rows.versions.iter().any(Option::is_some);
        let every_event_writes_a_row = self.rows.ids.len() == self.ledger.ids.len();
        let statements = if every_event_writes_a_row {
            &ROW_EVENTS
        } else {
            &EVENTS
        };
        match (inserts, updates) {
            (true, true) => statements.insert_and_update,
            (true, false) => statements.insert,
            (false, true) => statements.update,
            (false, false) => RECORD_EVENTS_SQL,
        }
    }

    /// Binds the columns, in the statements' order (see [`WRITE_EVENTS_SQL`]).
    pub(super) fn bind<'q>(&'q self, query: BatchQuery<'q>) -> BatchQuery<'q> {
        let (rows, ledger) = (&self.rows, &self.ledger);
        query
            // $1–$7: the rows (as `WRITE_PAGE_SQL`'s $2–$8)
            .bind(&rows.ids)
            .bind(&rows.versions)
            .bind(&rows.users)
            .bind(&rows.emails)
            .bind(&rows.names)
            .bind(&rows.payment_methods)
            .bind(&rows.metadata)
            // $8–$15: every event's ledger columns (as `LedgerEntry::bind_to`'s $1–$8)
            .bind(&ledger.ids)
            .bind(&ledger.types)
            .bind(&ledger.livemodes)
            .bind(&ledger.api_versions)
            .bind(&ledger.created)
            .bind(&ledger.payloads)
            .bind(&ledger.sanitized)
            .bind(&ledger.deleted_customer_ids)
            // $16: the customer each event wrote (null: none)
            .bind(&ledger.written_customer_ids)
            // $17–$18: the outcome and reason of each event
            .bind(&ledger.outcomes)
            .bind(&ledger.reasons)
            // $19–$20: the guard of an event that writes no row
            .bind(&ledger.guard_customer_ids)
            .bind(&ledger.guard_versions)
            // $21–$22: the alternatives of inserts
            .bind(&self.if_user_missing)
            .bind(&self.if_user_taken)
            // $23: the new ids of inserts
            .bind(&rows.new_ids)
    }
}

/// The ledger columns of a batch's events, one array per column.
#[derive(Default)]
struct LedgerColumns<'a> {
    ids: Vec<&'a str>,
    types: Vec<&'a str>,
    livemodes: Vec<bool>,
    api_versions: Vec<Option<&'a str>>,
    created: Vec<DateTime<Utc>>,
    payloads: Vec<Option<&'a str>>,
    sanitized: Vec<bool>,
    deleted_customer_ids: Vec<Option<&'a str>>,
    written_customer_ids: Vec<Option<&'a str>>,
    outcomes: Vec<&'static str>,
    reasons: Vec<Option<&'static str>>,
    guard_customer_ids: Vec<Option<&'a str>>,
    guard_versions: Vec<Option<&'a str>>,
}

impl<'a> LedgerColumns<'a> {
    fn push(&mut self, event: &EventWrite<'a>) {
        let entry = event.entry();
        self.ids.push(entry.event_id.as_str());
        self.types.push(entry.event_type);
        self.livemodes.push(entry.livemode);
        self.api_versions.push(entry.api_version);
        self.created.push(entry.stripe_created);
        self.sanitized.push(entry.payload_sanitized);
        self.deleted_customer_ids.push(entry.deleted_customer_id);
        let (written, outcome, guard) = match *event {
            EventWrite::Row { write, .. } => {
                (Some(write.stripe_customer_id), Outcome::Processed, None)
            }
            EventWrite::Record {
                recorded, guard, ..
            } => (None, recorded.outcome, guard),
        };
        let columns = OutcomeColumns::of(outcome);
        self.payloads.push(entry.payload_kept(outcome));
        self.written_customer_ids.push(written);
        self.outcomes.push(columns.outcome);
        self.reasons.push(columns.reason);
        self.guard_customer_ids
            .push(guard.map(|g| g.stripe_customer_id));
        self.guard_versions.push(guard.and_then(|g| g.version));
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::Map;

    use super::*;
    use crate::domain::outcome::SkipReason;
    use crate::domain::{EventId, RowWrite, SyncStatus};
    use crate::store::customers::RowToWrite;
    use crate::store::ledger::{LedgerEntry, Recorded, RowGuard};

    /// A `customer.updated` event's ledger row.
    fn entry(id: &EventId) -> LedgerEntry<'_> {
        LedgerEntry {
            event_id: id,
            event_type: "customer.updated",
            livemode: false,
            api_version: None,
            stripe_created: DateTime::from_timestamp(0, 0).unwrap(),
            payload: "{}",
            payload_sanitized: false,
            deleted_customer_id: None,
        }
    }

    fn row() -> RowWrite {
        RowWrite {
            user_id: None,
            organization_id: None,
            email: Some("a@example.com".into()),
            name: None,
            default_payment_method: None,
            stripe_metadata: Map::new(),
            sync: crate::domain::customer::SyncState {
                status: SyncStatus::Unlinked,
                livemode: false,
                last_event_id: "evt_1".into(),
                last_event_type: "customer.created".into(),
                last_event_created: 0,
                synced_at: DateTime::from_timestamp(0, 0).unwrap(),
                error: None,
            },
        }
    }

    /// The statement a batch of these events takes: `Some(version)` an update, `Some(None)` an
    /// insert, `None` an event that writes no row.
    fn statement_of(writes: &[Option<Option<&str>>]) -> &'static str {
        let id = EventId::parse("evt_1").unwrap();
        let entry = entry(&id);
        let row = row();
        let events: Vec<EventWrite<'_>> = writes
            .iter()
            .map(|write| match write {
                Some(version) => EventWrite::Row {
                    entry: &entry,
                    write: RowToWrite {
                        stripe_customer_id: "cus_A",
                        version: *version,
                        row: &row,
                    },
                    if_user_not_free: None,
                },
                None => EventWrite::Record {
                    entry: &entry,
                    recorded: Recorded::from(Outcome::Skipped(SkipReason::StaleEvent)),
                    guard: Some(RowGuard {
                        stripe_customer_id: "cus_A",
                        version: Some("7"),
                    }),
                },
            })
            .collect();
        EventColumns::of(&events).statement()
    }

    const INSERT: Option<Option<&str>> = Some(None);
    const UPDATE: Option<Option<&str>> = Some(Some("7"));
    const RECORD: Option<Option<&str>> = None;

    #[test]
    fn a_batch_in_which_every_event_writes_a_row_takes_a_statement_without_the_guard() {
        assert_eq!(statement_of(&[INSERT, INSERT]), INSERT_ROW_EVENTS_SQL);
        assert_eq!(statement_of(&[UPDATE]), UPDATE_ROW_EVENTS_SQL);
        assert_eq!(statement_of(&[INSERT, UPDATE]), WRITE_ROW_EVENTS_SQL);
    }

    #[test]
    fn a_batch_with_an_event_that_writes_no_row_takes_a_statement_with_the_guard() {
        assert_eq!(statement_of(&[INSERT, RECORD]), INSERT_EVENTS_SQL);
        assert_eq!(statement_of(&[RECORD, UPDATE]), UPDATE_EVENTS_SQL);
        assert_eq!(statement_of(&[INSERT, RECORD, UPDATE]), WRITE_EVENTS_SQL);
        assert_eq!(statement_of(&[RECORD, RECORD]), RECORD_EVENTS_SQL);
    }

    #[test]
    fn the_columns_hold_one_row_per_row_written_and_one_ledger_row_per_event() {
        let id = EventId::parse("evt_1").unwrap();
        let entry = entry(&id);
        let row = row();
        let events = [
            EventWrite::Row {
                entry: &entry,
                write: RowToWrite {
                    stripe_customer_id: "cus_A",
                    version: None,
                    row: &row,
                },
                if_user_not_free: None,
            },
            EventWrite::Record {
                entry: &entry,
                recorded: Recorded::from(Outcome::Ignored(None)),
                guard: None,
            },
        ];
        let columns = EventColumns::of(&events);
        assert_eq!(columns.rows.ids, ["cus_A"]);
        assert_eq!(columns.if_user_missing, [None]);
        assert_eq!(columns.ledger.written_customer_ids, [Some("cus_A"), None]);
        assert_eq!(columns.ledger.outcomes, ["processed", "ignored"]);
        // An ignored event keeps no payload.
        assert_eq!(columns.ledger.payloads, [Some("{}"), None]);
    }
}
