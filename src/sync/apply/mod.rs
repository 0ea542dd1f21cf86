//! How a customer state reaches the table: the one apply loop.
//!
//! Whatever its origin — a snapshot event's `data.object`, the customer a thin event's fetch
//! returned, a catch-up or re-applied event, a backfill page, a `verify --fix`, a customer just
//! created for a user — a state is applied here, the same way:
//!
//! 1. read the row and the facts beside it in one statement (`store::customers::snapshot`);
//! 2. [`rules::decide`] what to write (pure);
//! 3. write it in one statement, only if the row is still the version that was read
//!    (compare-and-set), together with what its [`Recording`] records beside the row;
//! 4. a lost race (the write did not happen, or [`StoreError::Conflict`]) goes back to 1.
//!
//! The origins differ only in their [`Recording`]: what is recorded beside the row, and what a
//! decision that writes nothing leaves behind. A page of fetched customers ([`apply_page`])
//! takes steps 1 and 3 for the whole page at once; a customer whose write lost its race goes
//! round the loop on its own ([`apply_one`]). The events a webhook writer takes together
//! ([`apply_events`]) are applied the same way, with their ledger rows.

mod events;
mod page;
mod recording;

pub(crate) use events::{Settled, apply_events};
pub(crate) use page::apply_page;
pub(crate) use recording::{Applying, CustomerState, EventRecording, Recording};

use chrono::Utc;

use super::rules::{self, Decision, IncomingCustomer, RowWrite, UserFacts};
use super::{MAX_ATTEMPTS, Outcome, SkipReason, SyncError};
use crate::domain::{SyncStatus, UnlinkReason};
use crate::store::StoreError;
use crate::store::customers::{self, RowToWrite, Snapshot, SnapshotKey};
use crate::store::ledger::{self, LedgerEntry, Recorded, RowGuard};
use crate::store::session::EventScope;

/// What applying one state did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Inserted,
    Updated,
    /// The row already holds these values: nothing was written (fetching runs only).
    Unchanged,
    Skipped(SkipReason),
    /// The event was recorded already: nothing changed (events only).
    Duplicate,
}

impl Applied {
    /// What became of an event (or a creation) whose state this was.
    pub(crate) fn outcome(self) -> Outcome {
        match self {
            Self::Inserted | Self::Updated | Self::Unchanged => Outcome::Processed,
            Self::Skipped(reason) => Outcome::Skipped(reason),
            Self::Duplicate => Outcome::Duplicate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppliedCustomer {
    pub applied: Applied,
    /// The row stands (after this state) unlinked for this reason (`sync.error`).
    pub unlinked: Option<UnlinkReason>,
}

impl AppliedCustomer {
    pub(crate) fn skipped(reason: SkipReason) -> Self {
        Self {
            applied: Applied::Skipped(reason),
            unlinked: None,
        }
    }

    const DUPLICATE: Self = Self {
        applied: Applied::Duplicate,
        unlinked: None,
    };
}

/// What one decision asks of the database. `K`: what a skip is recorded under
/// ([`Recording::Skip`]): an event's ledger row, or [`NoEvent`], which has no value, so that a
/// plan of a state without an event cannot ask to record a skip.
// A plan lives for one event, on the stack; boxing the row would cost an allocation per event
// on the webhook's hot path to save a few hundred bytes nobody keeps.
#[allow(clippy::large_enum_variant)]
enum Plan<K> {
    /// Nothing to write or record.
    Done(AppliedCustomer),
    /// Record the event's skip in the ledger under `skip`, while the row is still at `version`.
    RecordSkip {
        skip: K,
        reason: SkipReason,
        version: Option<String>,
    },
    Write {
        version: Option<String>,
        row: RowWrite,
        result: AppliedCustomer,
    },
}

/// Applies one state: read → decide → write, deciding again after a lost race.
pub(crate) async fn apply_one<R: Recording>(
    scope: &mut EventScope<'_>,
    applying: &Applying<'_, R>,
) -> Result<AppliedCustomer, SyncError> {
    let (recording, state) = (applying.recording(), applying.state());
    let key = key_of(state);
    for _ in 0..MAX_ATTEMPTS {
        let snapshot = if recording.compares_values() {
            // A fetched state is compared with the row's values: read them too.
            customers::snapshot_page(&mut *scope, &[key])
                .await?
                .pop()
                .expect("one snapshot per key")
        } else {
            customers::snapshot(&mut *scope, recording.source_id(), key).await?
        };
        if snapshot.already_recorded {
            return Ok(AppliedCustomer::DUPLICATE);
        }
        let written = match plan(recording, state, &snapshot, snapshot.user) {
            Plan::Done(result) => return Ok(result),
            Plan::Write { result, .. } if recording.dry_run() => return Ok(result),
            Plan::Write {
                version,
                row,
                result,
            } => {
                let write = RowToWrite {
                    stripe_customer_id: state.customer_id.as_str(),
                    version: version.as_deref(),
                    row: &row,
                };
                write_row(scope, recording, write)
                    .await
                    .map(|written| written.then_some(result))
            }
            Plan::RecordSkip {
                skip,
                reason,
                version,
            } => record_skip(
                scope,
                recording.skip_entry(skip),
                state,
                reason,
                version.as_deref(),
            )
            .await
            .map(|recorded| recorded.then(|| AppliedCustomer::skipped(reason))),
        };
        match written {
            Ok(Some(result)) => return Ok(result),
            Ok(None) => continue,
            Err(StoreError::Conflict) => scope.restart().await?,
            Err(StoreError::Duplicate) => return Ok(AppliedCustomer::DUPLICATE),
            Err(error) => return Err(error.into()),
        }
    }
    Err(SyncError::Contention)
}

fn key_of<'a>(state: &'a IncomingCustomer<'_>) -> SnapshotKey<'a> {
    SnapshotKey {
        stripe_customer_id: state.customer_id.as_str(),
        candidate_user: state.link.user(),
        candidate_organization: state.link.organization(),
    }
}

/// Writes one row if it is still as read, recording beside it what `recording` records: the
/// event's ledger row in the same statement, or only its source in the audit trail.
async fn write_row<R: Recording>(
    scope: &mut EventScope<'_>,
    recording: &R,
    write: RowToWrite<'_>,
) -> Result<bool, StoreError> {
    match recording.ledger() {
        Some(entry) => customers::write_one(&mut *scope, entry, write).await,
        None => {
            let written =
                customers::write_page(&mut *scope, recording.source_id(), &[write]).await?;
            Ok(written == [true])
        }
    }
}

/// Decides `state` against `snapshot` (with `user` as the facts about its candidate user) and
/// says what the decision asks of the database under `recording`.
fn plan<R: Recording>(
    recording: &R,
    state: &IncomingCustomer<'_>,
    snapshot: &Snapshot,
    user: UserFacts,
) -> Plan<R::Skip> {
    let decision = rules::decide(
        state,
        snapshot.stored.as_ref(),
        user,
        snapshot.deletion_recorded,
        Utc::now(),
    );
    match decision {
        Decision::Skip { reason, version } => match recording.skip() {
            Some(skip) => Plan::RecordSkip {
                skip,
                reason,
                version,
            },
            // Nothing to record, and nothing written: the state the decision rested on need
            // not still hold.
            None => Plan::Done(AppliedCustomer::skipped(reason)),
        },
        Decision::Insert(row) => Plan::Write {
            version: None,
            result: AppliedCustomer {
                applied: Applied::Inserted,
                unlinked: unlink_reason(&row),
            },
            row,
        },
        Decision::Update { version, row } => {
            let result = AppliedCustomer {
                applied: Applied::Updated,
                unlinked: unlink_reason(&row),
            };
            let unchanged = recording.compares_values()
                && snapshot
                    .values
                    .as_ref()
                    .is_some_and(|values| rules::is_unchanged(values, &row));
            if unchanged {
                Plan::Done(AppliedCustomer {
                    applied: Applied::Unchanged,
                    ..result
                })
            } else {
                Plan::Write {
                    version: Some(version),
                    row,
                    result,
                }
            }
        }
    }
}

/// `sync.error` of a row written unlinked.
fn unlink_reason(row: &RowWrite) -> Option<UnlinkReason> {
    (row.sync.status == SyncStatus::Unlinked)
        .then_some(row.sync.error)
        .flatten()
}

/// Records an event's skip, only while the row is still as the decision read it.
async fn record_skip(
    scope: &mut EventScope<'_>,
    entry: &LedgerEntry<'_>,
    state: &IncomingCustomer<'_>,
    reason: SkipReason,
    version: Option<&str>,
) -> Result<bool, StoreError> {
    let guard = RowGuard {
        stripe_customer_id: state.customer_id.as_str(),
        version,
    };
    let recorded = Recorded::from(Outcome::Skipped(reason));
    ledger::record(&mut *scope, entry, recorded, Some(guard)).await
}
