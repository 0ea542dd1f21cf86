//! The events a webhook writer takes together (group commit, see `sync::batch`): read in one
//! statement, decided one by one, written with their ledger rows in one statement.

use std::collections::HashSet;

use super::{Plan, Recording, key_of, plan};
use crate::store::StoreError;
use crate::store::customers::{self, EventWrite, IfUserNotFree, RowToWrite, Snapshot, SnapshotKey};
use crate::store::ledger::{LedgerEntry, Recorded, RowGuard};
use crate::store::session::EventScope;
use crate::sync::Outcome;
use crate::sync::rules::{CustomerEventKind, IncomingCustomer, Origin, RowWrite, UserFacts};

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
    let expected: Vec<Option<Planned>> = events
        .iter()
        .zip(&taken)
        .map(|(event, taken)| match event {
            BatchEvent::State { entry, state } if *taken && is_a_creation(state) => {
                plan_a_creation(Recording::Event(entry), state)
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
    let plans: Vec<Option<Planned>> = events
        .iter()
        .zip(&taken)
        .zip(expected)
        .map(|((event, taken), expected)| match event {
            BatchEvent::State { .. } if expected.is_some() => expected,
            BatchEvent::State { entry, state } if *taken => {
                let snapshot = snapshots.next().expect("one snapshot per key");
                Some(Planned::read(if snapshot.already_recorded {
                    Plan::Done(super::AppliedCustomer::DUPLICATE)
                } else {
                    plan(Recording::Event(entry), state, snapshot, snapshot.user)
                }))
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

fn pending<'a>(event: &BatchEvent<'a>, taken: bool, planned: Option<&'a Planned>) -> Pending<'a> {
    if !taken {
        return Pending::Alone;
    }
    let plan = planned.map(|planned| &planned.plan);
    match (event, plan) {
        (BatchEvent::Record { entry, outcome }, _) => Pending::Write {
            write: EventWrite::Record {
                entry,
                recorded: Recorded::from(*outcome),
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
                    recorded: Recorded::from(Outcome::Skipped(*reason)),
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
                if_user_not_free: planned
                    .and_then(|planned| planned.if_user_not_free.as_ref())
                    .map(|alternatives| IfUserNotFree {
                        user_missing: &alternatives.user_missing,
                        user_taken: &alternatives.user_taken,
                    }),
            },
            outcome: result.applied.outcome(),
        },
        (BatchEvent::State { .. }, None) => unreachable!("a state taken by the batch is planned"),
    }
}

/// Which events the batch takes: the first of each event id and, of the customer states, the
/// first of each customer and of each candidate user, none naming an organization. A later one depends on what the earlier
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
                // A state naming an organization goes one by one: the batch's write checks
                // only a user's facts again (and organizations bill rarely change).
                let free = !state.link.is_organization()
                    && !ids.contains(entry.event_id)
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

/// A decision, and for an insert that links a user decided without a read, the rows the rules
/// give should the user turn out not to be free.
struct Planned {
    plan: Plan,
    if_user_not_free: Option<UserAlternatives>,
}

impl Planned {
    /// Decided against what was read: nothing left to choose at the write.
    fn read(plan: Plan) -> Self {
        Self {
            plan,
            if_user_not_free: None,
        }
    }
}

struct UserAlternatives {
    user_missing: RowWrite,
    user_taken: RowWrite,
}

/// A snapshot event creating a customer: as a rule, of a customer the table does not hold.
fn is_a_creation(state: &IncomingCustomer<'_>) -> bool {
    state.kind == CustomerEventKind::Created && matches!(state.origin, Origin::Event(_))
}

/// Decides a creation against what it almost always finds ([`expected_for_a_creation`]). The
/// user it names (if any) is unknown without a read, so it is decided once for each fact the
/// write may find — the user free, missing, linked to another row — and the write takes the
/// one that holds. `None` where that is not an insert whose alternatives the write can choose
/// between: it is read first.
fn plan_a_creation(recording: Recording<'_>, state: &IncomingCustomer<'_>) -> Option<Planned> {
    let expected = expected_for_a_creation();
    let decided = |user| plan(recording, state, &expected, user);
    let free = UserFacts {
        exists: true,
        linked_elsewhere: false,
    };
    let Plan::Write {
        version: None,
        row: linked,
        result,
    } = decided(free)
    else {
        return None;
    };
    let if_user_not_free = match state.link.user() {
        None => None,
        Some(_) => {
            let missing = decided(UserFacts {
                exists: false,
                linked_elsewhere: false,
            });
            let taken = decided(UserFacts {
                exists: true,
                linked_elsewhere: true,
            });
            let (
                Plan::Write {
                    version: None,
                    row: user_missing,
                    ..
                },
                Plan::Write {
                    version: None,
                    row: user_taken,
                    ..
                },
            ) = (missing, taken)
            else {
                return None;
            };
            let alternatives = UserAlternatives {
                user_missing,
                user_taken,
            };
            let fit = IfUserNotFree {
                user_missing: &alternatives.user_missing,
                user_taken: &alternatives.user_taken,
            }
            .fit(&linked);
            if !fit {
                return None;
            }
            Some(alternatives)
        }
    };
    Some(Planned {
        plan: Plan::Write {
            version: None,
            row: linked,
            result,
        },
        if_user_not_free,
    })
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
