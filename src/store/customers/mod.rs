//! `public.stripe_customers`: reading what the rules need, writing what they decided. The one
//! place that turns the row model of `crate::domain::customer` into and out of the row's
//! columns and its `customer_metadata` JSON.
//!
//! Reading (`read`): one statement reads a customer's row (or a page of them) together with
//! the facts the rules need beside it. Writing ([`write`]): one statement writes a row only if
//! it is still the version that was read (compare-and-set on `xmin`), together with what is
//! recorded beside it: the event's ledger row, or only the audit trail's source. A concurrent writer makes the write not happen (`Ok(false)`) or fail as
//! [`super::StoreError::Conflict`], and the caller decides again. Round trips, not SQL, bound
//! throughput: an event costs two statements, a page of fetched customers two as well.

mod missing;
mod read;
mod write;

pub(crate) use missing::mark_missing;
pub use read::SNAPSHOT_SQL;
pub(crate) use read::{
    Snapshot, SnapshotKey, StoredRow, count_live, count_other_live, live_rows, snapshot,
    snapshot_events, snapshot_page,
};
pub(crate) use write::{
    EventWrite, IfUserNotFree, RowToWrite, write_events, write_one, write_page,
};
pub use write::{INSERT_SQL, UPDATE_SQL};

/// The statements that bind one array per column (a batch of events, a page of customers), by
/// name. Public for `tests/api/query_plans.rs`, which checks that their plans reach the rows
/// through the indexes, whatever the planner guesses of the arrays' length, and for
/// `benches/batch_statements.rs`, which times two of them.
pub const ARRAY_STATEMENTS: [(&str, &str); 10] = [
    ("snapshot of a batch of events", read::EVENTS_SNAPSHOT_SQL),
    ("write of a batch of events", write::WRITE_EVENTS_SQL),
    ("write of a batch of inserts", write::INSERT_EVENTS_SQL),
    ("write of a batch of updates", write::UPDATE_EVENTS_SQL),
    (
        "write of a batch of events that all write a row",
        write::WRITE_ROW_EVENTS_SQL,
    ),
    (
        "write of a batch of inserts that all write a row",
        write::INSERT_ROW_EVENTS_SQL,
    ),
    (
        "write of a batch of updates that all write a row",
        write::UPDATE_ROW_EVENTS_SQL,
    ),
    ("record of a batch of events", write::RECORD_EVENTS_SQL),
    ("snapshot of a page of customers", read::PAGE_SNAPSHOT_SQL),
    ("write of a page of customers", write::WRITE_PAGE_SQL),
];

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{RowWrite, UnlinkReason};

/// `customer_metadata` as a write sets it: `{"stripe": …, "sync": …}` (docs/design.md "Data").
#[derive(Serialize)]
struct MetadataJson<'a> {
    stripe: &'a Map<String, Value>,
    sync: SyncJson<'a>,
}

#[derive(Serialize)]
struct SyncJson<'a> {
    status: &'static str,
    livemode: bool,
    last_event_id: &'a str,
    last_event_type: &'a str,
    last_event_created: i64,
    synced_at: String,
    error: Option<&'static str>,
}

impl<'a> MetadataJson<'a> {
    fn of(row: &'a RowWrite) -> Self {
        let sync = &row.sync;
        Self {
            stripe: &row.stripe_metadata,
            sync: SyncJson {
                status: sync.status.as_str(),
                livemode: sync.livemode,
                last_event_id: &sync.last_event_id,
                last_event_type: &sync.last_event_type,
                last_event_created: sync.last_event_created,
                synced_at: sync
                    .synced_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                error: sync.error.map(UnlinkReason::as_str),
            },
        }
    }
}

/// The `customer_metadata` a write of `row` sets, as JSON (for the rules' tests).
#[cfg(test)]
pub(crate) fn metadata_json(row: &RowWrite) -> Value {
    serde_json::to_value(MetadataJson::of(row)).expect("customer metadata serializes")
}
