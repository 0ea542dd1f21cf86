//! The events a webhook writer takes together (group commit, see `sync::batch`): read in one
//! statement, decided one by one, written with their ledger rows in one statement.

use std::collections::HashSet;

use super::{Plan, Recording, key_of, plan};
use crate::store::StoreError;
use crate::store::customers::{self, EventWrite, RowToWrite, Snapshot, SnapshotKey};
use crate::store::ledger::{LedgerEntry, Recorded, RowGuard};
use crate::store::session::EventScope;
use crate::sync::Outcome;
use crate::sync::rules::{CustomerEventKind, IncomingCustomer, Origin, UserFacts};

/// One event of a batch: what it asks of the table.
pub(crate) enum BatchEvent<'a> {
    /// Recorded in the ledger with this outcome; no customer row is involved.
    Record {
        entry: &'a LedgerEntry<'a>,
        outcome: Outcome,
    },
    /// The customer state the event carries, decided against the row.
    State {
        entry: &'a LedgerEntry<'a>,
        state: &'a IncomingCustomer<'a>,
    },
}

/// What the batch makes of one event before its write.
enum Pending<'a> {
    /// Left to the single-event path: it depends on another event of the batch.
    Alone,
    /// Settled without a write (a redelivery).
    Settled(Outcome),
    /// Written as `write`; `outcome` once recorded.
    Write {
        write: EventWrite<'a>,
        outcome: Outcome,
    },
}

/// Applies the events together: one snapshot read, [`super::plan`] (so `decide()`) for each,
/// one write ([`customers::write_events`]). Per event, in order: its outcome, or `None` when
/// the batch did not settle it (its guard no longer held at the write, or it depends on an
/// earlier event of the batch); the caller applies those on their own ([`super::apply_one`]).
/// An error wrote nothing.
pub(crate) async fn apply_events<'a>(
    db: &mut EventScope<'_>,
    events: &[BatchEvent<'a>],
) -> Result<Vec<Option<Outcome>>, StoreError> {
    let taken = one_per_event_customer_and_user(events);
    // A new customer's `customer.created` is decided against what it almost always finds,
    // without a read: the write checks each expectation (see `customers::write_events`), and
    // an event whose expectation did not hold is not written and is decided again.
    let expected: Vec<Option<Plan>> = events
        .iter()
        .zip(&taken)
        .map(|(event, taken)| match event {
            BatchEvent::State { entry, state } if *taken && is_a_creation(state) => {
                let expected = expected_for_a_creation();
                let planned = plan(Recording::Event(entry), state, &expected, expected.user);
                matches!(planned, Plan::Write { version: None, .. }).then_some(planned)
            }
            _ => None,
        })
        .collect();
    let keys: Vec<(&str, SnapshotKey<'_>)> = events
        .iter()
        .zip(&taken)
        .zip(&expected)
        .filter_map(|((event, taken), expected)| match event {
            BatchEvent::State { entry, state } if *taken && expected.is_none() => {
                Some((entry.event_id, key_of(state)))
            }
            _ => None,
        })
        .collect();
    let snapshots = if keys.is_empty() {
        Vec::new()
    } else {
        customers::snapshot_events(&mut *db, &keys).await?
    };

    let mut snapshots = snapshots.iter();
    let plans: Vec<Option<Plan>> = events
        .iter()
        .zip(&taken)
        .zip(expected)
        .map(|((event, taken), expected)| match event {
            BatchEvent::State { .. } if expected.is_some() => expected,
            BatchEvent::State { entry, state } if *taken => {
                let snapshot = snapshots.next().expect("one snapshot per key");
                Some(if snapshot.already_recorded {
                    Plan::Done(super::AppliedCustomer::DUPLICATE)
                } else {
                    plan(Recording::Event(entry), state, snapshot, snapshot.user)
                })
            }
            _ => None,
        })
        .collect();

    let pending: Vec<Pending<'_>> = events
        .iter()
        .zip(&taken)
        .zip(&plans)
        .map(|((event, taken), plan)| pending(event, *taken, plan.as_ref()))
        .collect();
    let writes: Vec<EventWrite<'_>> = pending
        .iter()
        .filter_map(|p| match p {
            Pending::Write { write, .. } => Some(*write),
            _ => None,
        })
        .collect();
    let recorded = customers::write_events(&mut *db, &writes).await?;

    Ok(events
        .iter()
        .zip(pending)
        .map(|(event, pending)| match pending {
            Pending::Alone => None,
            Pending::Settled(outcome) => Some(outcome),
            Pending::Write { outcome, .. } => recorded.contains(event_id(event)).then_some(outcome),
        })
        .collect())
}

fn event_id<'a>(event: &BatchEvent<'a>) -> &'a str {
    match event {
        BatchEvent::Record { entry, .. } | BatchEvent::State { entry, .. } => entry.event_id,
    }
}

fn pending<'a>(event: &BatchEvent<'a>, taken: bool, plan: Option<&'a Plan>) -> Pending<'a> {
    if !taken {
        return Pending::Alone;
    }
    match (event, plan) {
        (BatchEvent::Record { entry, outcome }, _) => Pending::Write {
            write: EventWrite::Record {
                entry,
                recorded: Recorded {
                    outcome: outcome.status(),
                    reason: outcome.reason(),
                    error: None,
                },
                guard: None,
            },
            outcome: *outcome,
        },
        (BatchEvent::State { .. }, Some(Plan::Done(result))) => {
            Pending::Settled(result.applied.outcome())
        }
        (BatchEvent::State { entry, state }, Some(Plan::RecordSkip { reason, version })) => {
            Pending::Write {
                write: EventWrite::Record {
                    entry,
                    recorded: Recorded {
                        outcome: "skipped",
                        reason: Some(reason.as_str()),
                        error: None,
                    },
                    guard: Some(RowGuard {
                        stripe_customer_id: state.customer_id.as_str(),
                        version: version.as_deref(),
                    }),
                },
                outcome: Outcome::Skipped(*reason),
            }
        }
        (
            BatchEvent::State { entry, state },
            Some(Plan::Write {
                version,
                row,
                result,
            }),
        ) => Pending::Write {
            write: EventWrite::Row {
                entry,
                write: RowToWrite {
                    stripe_customer_id: state.customer_id.as_str(),
                    version: version.as_deref(),
                    row,
                },
            },
            outcome: result.applied.outcome(),
        },
        (BatchEvent::State { .. }, None) => unreachable!("a state taken by the batch is planned"),
    }
}

/// Which events the batch takes: the first of each event id and, of the customer states, the
/// first of each customer and of each candidate user. A later one depends on what the earlier
/// one writes, which the batch's one snapshot cannot show: it is applied after the batch.
fn one_per_event_customer_and_user(events: &[BatchEvent<'_>]) -> Vec<bool> {
    let mut ids = HashSet::new();
    let mut customers = HashSet::new();
    let mut users = HashSet::new();
    events
        .iter()
        .map(|event| match event {
            BatchEvent::Record { entry, .. } => ids.insert(entry.event_id),
            BatchEvent::State { entry, state } => {
                let user = state.link.user();
                // All three checked before any is claimed: an event left out claims nothing.
                let free = !ids.contains(entry.event_id)
                    && !customers.contains(state.customer_id.as_str())
                    && user.is_none_or(|user| !users.contains(&user));
                if free {
                    ids.insert(entry.event_id);
                    customers.insert(state.customer_id.as_str());
                    users.extend(user);
                }
                free
            }
        })
        .collect()
}

/// A snapshot event creating a customer that names no user: as a rule, of a customer the
/// table does not hold. (One that names a user is read first: whether the user exists decides
/// how its row is linked, and a guess that failed would cost a second attempt.)
fn is_a_creation(state: &IncomingCustomer<'_>) -> bool {
    state.kind == CustomerEventKind::Created
        && matches!(state.origin, Origin::Event(_))
        && state.link.user().is_none()
}

/// What such a creation almost always finds: no row, no delete recorded, the event not
/// recorded.
fn expected_for_a_creation() -> Snapshot {
    Snapshot {
        already_recorded: false,
        stored: None,
        values: None,
        user: UserFacts::default(),
        deletion_recorded: false,
    }
}
