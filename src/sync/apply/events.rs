//! The events a webhook writer takes together (group commit, see `sync::batch`): read in one
//! statement, decided one by one, written with their ledger rows in one statement.

use std::collections::HashSet;

use super::recording::InLedger;
use super::{Applying, EventRecording, Plan, Recording, key_of, plan};
use crate::domain::EventId;
use crate::store::StoreError;
use crate::store::customers::{self, EventWrite, IfUserNotFree, RowToWrite, Snapshot, SnapshotKey};
use crate::store::ledger::{LedgerEntry, Recorded, RowGuard};
use crate::store::session::EventScope;
use crate::sync::Outcome;
use crate::sync::event::EventPlan;
use crate::sync::rules::{CustomerEventKind, IncomingCustomer, Origin, RowWrite, UserFacts};

/// What the batch makes of one event, from taking it to its write: the one representation of
/// an event in a batch.
// Steps live for one batch, in one vector; boxing the decided rows would cost an allocation
// per event on the webhook's hot path.
#[allow(clippy::large_enum_variant)]
enum Step<'p, 'e> {
    /// Left to the single-event path: it depends on another event of the batch, or it is a
    /// subscription event (a transaction of its own, see `sync::subscriptions`).
    Alone,
    /// Recorded with `outcome`; no customer row is involved.
    Record {
        entry: &'p LedgerEntry<'e>,
        outcome: Outcome,
    },
    /// A customer state to decide against the snapshot the batch reads.
    ToRead(&'p Applying<'e, EventRecording<'e>>),
    /// A customer state decided.
    Decided {
        applying: &'p Applying<'e, EventRecording<'e>>,
        planned: Planned,
    },
}

impl<'p, 'e> Step<'p, 'e> {
    fn of(event: &'p EventPlan<'e>, taken: bool) -> Self {
        match event {
            _ if !taken => Self::Alone,
            EventPlan::Subscription { .. } => Self::Alone,
            EventPlan::RecordOnly { entry, outcome } => Self::Record {
                entry,
                outcome: *outcome,
            },
            // A new customer's `customer.created` is decided against what it almost always
            // finds, without a read: the write checks each expectation (see
            // `customers::write_events`), and an event whose expectation did not hold is not
            // written and is decided again.
            EventPlan::Customer(applying) => match plan_a_creation(applying) {
                Some(planned) => Self::Decided { applying, planned },
                None => Self::ToRead(applying),
            },
        }
    }

    /// The key of the snapshot this step waits for.
    fn to_read(&self) -> Option<(&'e str, SnapshotKey<'p>)> {
        match self {
            Self::ToRead(applying) => Some((
                applying.recording().event_id().as_str(),
                key_of(applying.state()),
            )),
            _ => None,
        }
    }

    /// Decides a step waiting for its snapshot.
    fn decide(&mut self, snapshot: &Snapshot) {
        if let Self::ToRead(applying) = *self {
            let plan = if snapshot.already_recorded {
                Plan::Done(super::AppliedCustomer::DUPLICATE)
            } else {
                plan(
                    applying.recording(),
                    applying.state(),
                    snapshot,
                    snapshot.user,
                )
            };
            *self = Self::Decided {
                applying,
                planned: Planned::read(plan),
            };
        }
    }

    /// What the batch's write does for this event; `None`: nothing (settled, or left alone).
    fn write(&self) -> Option<EventWrite<'_>> {
        let (applying, planned) = match self {
            Self::Alone | Self::ToRead(_) => return None,
            Self::Record { entry, outcome } => {
                return Some(EventWrite::Record {
                    entry,
                    recorded: Recorded::from(*outcome),
                    guard: None,
                });
            }
            Self::Decided { applying, planned } => (applying, planned),
        };
        let recording = applying.recording();
        let state = applying.state();
        match &planned.plan {
            Plan::Done(_) => None,
            Plan::RecordSkip {
                skip,
                reason,
                version,
            } => Some(EventWrite::Record {
                entry: recording.skip_entry(*skip),
                recorded: Recorded::from(Outcome::Skipped(*reason)),
                guard: Some(RowGuard {
                    stripe_customer_id: state.customer_id.as_str(),
                    version: version.as_deref(),
                }),
            }),
            Plan::Write { version, row, .. } => Some(EventWrite::Row {
                entry: recording.entry(),
                write: RowToWrite {
                    stripe_customer_id: state.customer_id.as_str(),
                    version: version.as_deref(),
                    row,
                },
                if_user_not_free: planned.if_user_not_free.as_ref().map(|alternatives| {
                    IfUserNotFree {
                        user_missing: &alternatives.user_missing,
                        user_taken: &alternatives.user_taken,
                    }
                }),
            }),
        }
    }

    /// What became of the event, `recorded` being the ids the write recorded; `None`: the
    /// batch did not settle it.
    fn outcome(&self, recorded: &HashSet<String>) -> Option<Outcome> {
        let written = |id: &EventId, outcome| recorded.contains(id.as_str()).then_some(outcome);
        match self {
            Self::Alone | Self::ToRead(_) => None,
            Self::Record { entry, outcome } => written(entry.event_id, *outcome),
            Self::Decided { applying, planned } => {
                let id = applying.recording().event_id();
                match &planned.plan {
                    Plan::Done(result) => Some(result.applied.outcome()),
                    Plan::RecordSkip { reason, .. } => written(id, Outcome::Skipped(*reason)),
                    Plan::Write { result, .. } => written(id, result.applied.outcome()),
                }
            }
        }
    }
}

/// Applies the events together: one snapshot read, [`super::plan`] (so `decide()`) for each,
/// one write ([`customers::write_events`]). Per event, in order: its outcome, or `None` when
/// the batch did not settle it (its guard no longer held at the write, it depends on an
/// earlier event of the batch, or it is a subscription event); the caller applies those on
/// their own. An error wrote nothing.
pub(crate) async fn apply_events(
    db: &mut EventScope<'_>,
    events: &[EventPlan<'_>],
) -> Result<Settled, StoreError> {
    let taken = one_per_event_customer_and_user(events);
    let mut steps: Vec<Step<'_, '_>> = events
        .iter()
        .zip(taken)
        .map(|(event, taken)| Step::of(event, taken))
        .collect();
    let keys: Vec<(&str, SnapshotKey<'_>)> = steps.iter().filter_map(Step::to_read).collect();
    if !keys.is_empty() {
        let snapshots = customers::snapshot_events(&mut *db, &keys).await?;
        // One snapshot per key, in their order: a step left unread is left to its own path.
        let to_read = steps
            .iter_mut()
            .filter(|step| matches!(step, Step::ToRead(_)));
        for (step, snapshot) in to_read.zip(&snapshots) {
            step.decide(snapshot);
        }
    }
    let writes: Vec<EventWrite<'_>> = steps.iter().filter_map(Step::write).collect();
    let written = customers::write_events(&mut *db, &writes).await?;
    Ok(Settled {
        outcomes: steps
            .iter()
            .map(|step| step.outcome(&written.recorded))
            .collect(),
        subscriptions_kept: written.subscriptions_kept,
    })
}

/// What a batch settled.
#[derive(Debug)]
pub(crate) struct Settled {
    /// Per event, in order: its outcome, or `None` when the batch did not settle it.
    pub(crate) outcomes: Vec<Option<Outcome>>,
    /// Whether a customer the batch wrote has subscriptions kept before it.
    pub(crate) subscriptions_kept: bool,
}

/// Which events the batch takes: the first of each event id and, of the customer states, the
/// first of each customer and of each candidate user, none naming an organization. A later one depends on what the earlier
/// one writes, which the batch's one snapshot cannot show: it is applied after the batch.
fn one_per_event_customer_and_user(events: &[EventPlan<'_>]) -> Vec<bool> {
    let mut ids = HashSet::new();
    let mut customers = HashSet::new();
    let mut users = HashSet::new();
    events
        .iter()
        .map(|event| match event {
            EventPlan::Subscription { .. } => false,
            EventPlan::RecordOnly { entry, .. } => ids.insert(entry.event_id),
            EventPlan::Customer(applying) => {
                let state = applying.state();
                let event_id = applying.recording().event_id();
                let user = state.link.user();
                // All three checked before any is claimed: an event left out claims nothing.
                // A state naming an organization goes one by one: the batch's write checks
                // only a user's facts again (and organizations bill rarely change).
                let free = !state.link.is_organization()
                    && !ids.contains(event_id)
                    && !customers.contains(state.customer_id.as_str())
                    && user.is_none_or(|user| !users.contains(&user));
                if free {
                    ids.insert(event_id);
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
    plan: Plan<InLedger>,
    if_user_not_free: Option<UserAlternatives>,
}

impl Planned {
    /// Decided against what was read: nothing left to choose at the write.
    fn read(plan: Plan<InLedger>) -> Self {
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
fn plan_a_creation(applying: &Applying<'_, EventRecording<'_>>) -> Option<Planned> {
    let (recording, state) = (applying.recording(), applying.state());
    if !is_a_creation(state) {
        return None;
    }
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
