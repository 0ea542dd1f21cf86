//! What applying a state records beside the row, by the type of the request it came with: a
//! Stripe event ([`EventRecording`]), a fetching run ([`FetchRun`]), a customer created for a
//! user ([`CreatedCustomer`]). The rules' [`Origin`] of the state is the recording's own, so a
//! state cannot be ordered as one origin and recorded as another.

use crate::domain::{EventId, StripeCustomerId};
use crate::store::ledger::LedgerEntry;
use crate::stripe::event::CustomerObject;
use crate::sync::request::{CreatedCustomer, FetchRun};
use crate::sync::rules::{
    CustomerEventKind, IncomingCustomer, LinkCandidate, ORGANIZATION_ID_METADATA_KEY, Origin,
};

/// What applying a state records beside the row, and what a decision that writes nothing leaves
/// behind.
// No lifetime on the trait: the apply loop's futures are generic over it, and a bound such as
// `R: Recording<'a>` on them defeats the compiler's proof that they are `Send`.
pub(crate) trait Recording {
    /// What a skip is recorded under: [`InLedger`] for an event; [`NoEvent`] for a state
    /// without an event, whose skip leaves nothing behind (it has no value: such a skip cannot
    /// be planned to be recorded).
    type Skip: Copy;

    /// The id the per-state read looks up in the ledger (a redelivered event) and the audit
    /// trail names.
    fn source_id(&self) -> &str;

    /// The event's ledger row, written in the same statement as the row; `None`: there is no
    /// event, only the audit trail names [`Self::source_id`].
    fn ledger(&self) -> Option<&LedgerEntry<'_>>;

    /// Where a skip is recorded; `None`: nowhere.
    fn skip(&self) -> Option<Self::Skip>;

    /// The ledger row a recorded skip writes.
    fn skip_entry(&self, skip: Self::Skip) -> &LedgerEntry<'_>;

    /// A fetching run's: a state is compared with the row's values, and a row that would not
    /// change is not written (a rerun leaves no trace).
    fn compares_values(&self) -> bool {
        false
    }

    /// Decide and count, write nothing.
    fn dry_run(&self) -> bool {
        false
    }
}

/// Where the states of a recording come from, as the rules order and name them.
pub(crate) trait HasOrigin<'a>: Recording {
    fn origin(&self) -> Origin<'a>;
}

/// An event's skip: recorded in its ledger row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InLedger;

/// A state with no event: nothing is recorded of its skip. No value of it exists.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NoEvent {}

/// A Stripe event (snapshot or thin; delivered, caught up or re-applied): its ledger row, in
/// the same statement as the row, or alone (guarded by the row's version) for a skip. Every
/// write is made, changed values or not: the event becomes the row's last applied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRecording<'a> {
    entry: LedgerEntry<'a>,
    ordered: Ordered,
}

#[derive(Debug, Clone, Copy)]
enum Ordered {
    /// A snapshot event's `data.object`: ordered by the event's `created` and type.
    AsSent,
    /// The customer a thin event's fetch returned: ordered as fetched.
    AsFetched,
}

impl<'a> EventRecording<'a> {
    /// A snapshot event, whose `data.object` is the state.
    pub(crate) fn snapshot(entry: LedgerEntry<'a>) -> Self {
        Self {
            entry,
            ordered: Ordered::AsSent,
        }
    }

    /// A thin event, whose customer was fetched after it arrived (see `sync::thin`).
    pub(crate) fn thin(entry: LedgerEntry<'a>) -> Self {
        Self {
            entry,
            ordered: Ordered::AsFetched,
        }
    }

    pub(crate) fn event_id(&self) -> &'a EventId {
        self.entry.event_id
    }

    pub(crate) fn entry(&self) -> &LedgerEntry<'a> {
        &self.entry
    }
}

impl<'a> HasOrigin<'a> for EventRecording<'a> {
    fn origin(&self) -> Origin<'a> {
        match self.ordered {
            Ordered::AsSent => Origin::Event(self.entry.event_id),
            Ordered::AsFetched => Origin::ThinEvent {
                id: self.entry.event_id,
                event_type: self.entry.event_type,
            },
        }
    }
}

impl Recording for EventRecording<'_> {
    type Skip = InLedger;

    fn source_id(&self) -> &str {
        self.entry.event_id.as_str()
    }

    fn ledger(&self) -> Option<&LedgerEntry<'_>> {
        Some(&self.entry)
    }

    fn skip(&self) -> Option<InLedger> {
        Some(InLedger)
    }

    fn skip_entry(&self, _: InLedger) -> &LedgerEntry<'_> {
        &self.entry
    }
}

/// A fetching command's run (`backfill`, `verify --fix`): no ledger row, the run's id in the
/// audit trail; a row that would not change is not written, a skip leaves nothing behind, and a
/// dry run writes nothing at all.
impl<'a> HasOrigin<'a> for &'a FetchRun {
    fn origin(&self) -> Origin<'a> {
        Origin::Fetched {
            command: self.command,
            run_id: &self.run_id,
        }
    }
}

impl Recording for &FetchRun {
    type Skip = NoEvent;

    fn source_id(&self) -> &str {
        &self.run_id
    }

    fn ledger(&self) -> Option<&LedgerEntry<'_>> {
        None
    }

    fn skip(&self) -> Option<NoEvent> {
        None
    }

    fn skip_entry(&self, skip: NoEvent) -> &LedgerEntry<'_> {
        match skip {}
    }

    fn compares_values(&self) -> bool {
        true
    }

    fn dry_run(&self) -> bool {
        self.dry_run
    }
}

/// A customer the service created for a user: no ledger row (there is no event), the
/// creation's id in the audit trail; a skip leaves nothing behind.
impl<'a> HasOrigin<'a> for CreatedCustomer<'a> {
    fn origin(&self) -> Origin<'a> {
        Origin::Created { id: self.source_id }
    }
}

impl Recording for CreatedCustomer<'_> {
    type Skip = NoEvent;

    fn source_id(&self) -> &str {
        self.source_id
    }

    fn ledger(&self) -> Option<&LedgerEntry<'_>> {
        None
    }

    fn skip(&self) -> Option<NoEvent> {
        None
    }

    fn skip_entry(&self, skip: NoEvent) -> &LedgerEntry<'_> {
        match skip {}
    }
}

/// A customer state and what applying it records. The state's origin is the recording's own:
/// the one place a state is made for the apply loop.
#[derive(Debug, Clone)]
pub(crate) struct Applying<'a, R> {
    recording: R,
    state: IncomingCustomer<'a>,
}

/// A customer as Stripe sent (or returned) it, and how the rules read it.
#[derive(Debug, Clone)]
pub(crate) struct CustomerState<'a> {
    pub kind: CustomerEventKind,
    /// The event's `created`, or the Unix second the request that returned it started.
    pub created: i64,
    pub customer_id: StripeCustomerId,
    pub customer: &'a CustomerObject,
    /// Stripe's mode the state comes from, recorded as `sync.livemode`.
    pub livemode: bool,
}

impl<'a, R: HasOrigin<'a>> Applying<'a, R> {
    /// The state of `customer` as the rules take it, its owner read from the metadata under
    /// `user_id_metadata_key` (or the organization key).
    pub(crate) fn new(
        recording: R,
        user_id_metadata_key: &str,
        customer: CustomerState<'a>,
    ) -> Self {
        let CustomerState {
            kind,
            created,
            customer_id,
            customer,
            livemode,
        } = customer;
        let state = IncomingCustomer {
            kind,
            origin: recording.origin(),
            created,
            customer_id,
            email: customer.email.as_deref(),
            name: customer.name.as_deref(),
            default_payment_method: customer.default_payment_method.as_deref(),
            stripe_metadata: &customer.metadata,
            link: LinkCandidate::from_owner_metadata(
                customer.metadata.get(user_id_metadata_key),
                customer.metadata.get(ORGANIZATION_ID_METADATA_KEY),
            ),
            livemode,
        };
        Self { recording, state }
    }
}

impl<'a, R> Applying<'a, R> {
    pub(crate) fn recording(&self) -> &R {
        &self.recording
    }

    pub(crate) fn state(&self) -> &IncomingCustomer<'a> {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::domain::EventOrder;
    use crate::sync::request::FetchCommand;

    const T: i64 = 1_732_500_000;

    fn entry<'a>(id: &'a EventId, event_type: &'a str) -> LedgerEntry<'a> {
        LedgerEntry {
            event_id: id,
            event_type,
            livemode: false,
            api_version: None,
            stripe_created: DateTime::from_timestamp(T, 0).unwrap(),
            payload: "{}",
            payload_sanitized: false,
            deleted_customer_id: None,
        }
    }

    fn state(created: i64) -> CustomerState<'static> {
        let customer = Box::leak(Box::new(CustomerObject {
            id: "cus_A".into(),
            ..CustomerObject::default()
        }));
        CustomerState {
            kind: CustomerEventKind::Updated,
            created,
            customer_id: StripeCustomerId::parse("cus_A").unwrap(),
            customer,
            livemode: false,
        }
    }

    #[test]
    fn a_snapshot_events_state_is_ordered_as_sent_and_a_thin_events_as_fetched() {
        let id = EventId::parse("evt_1").unwrap();
        let snapshot = Applying::new(
            EventRecording::snapshot(entry(&id, "customer.updated")),
            "user_id",
            state(T),
        );
        let thin = Applying::new(
            EventRecording::thin(entry(&id, "v1.customer.updated")),
            "user_id",
            state(T),
        );
        assert_eq!(snapshot.state().origin, Origin::Event(&id));
        assert_eq!(
            snapshot.state().order(),
            EventOrder::new(T, CustomerEventKind::Updated)
        );
        assert_eq!(
            thin.state().origin,
            Origin::ThinEvent {
                id: &id,
                event_type: "v1.customer.updated"
            }
        );
        assert_eq!(thin.state().order(), EventOrder::fetched(T));
    }

    #[test]
    fn only_an_event_records_its_skip_and_its_row_in_the_ledger() {
        let id = EventId::parse("evt_1").unwrap();
        let event = EventRecording::snapshot(entry(&id, "customer.updated"));
        let run = FetchRun::new(FetchCommand::Backfill, false, false);
        let created = CreatedCustomer {
            id: &StripeCustomerId::parse("cus_A").unwrap(),
            customer: &CustomerObject::default(),
            requested_at: T,
            livemode: false,
            source_id: "ensure-customer:u:1",
        };
        assert!(event.skip().is_some());
        assert_eq!(event.ledger().map(|e| e.event_id), Some(&id));
        assert!((&run).skip().is_none() && (&run).ledger().is_none());
        assert!(created.skip().is_none() && created.ledger().is_none());
        assert_eq!((&run).source_id(), run.run_id);
        assert_eq!(created.source_id(), "ensure-customer:u:1");
    }

    #[test]
    fn only_a_run_compares_values_and_only_a_dry_run_writes_nothing() {
        let id = EventId::parse("evt_1").unwrap();
        let event = EventRecording::snapshot(entry(&id, "customer.updated"));
        let run = FetchRun::new(FetchCommand::Verify, false, false);
        let dry = FetchRun::new(FetchCommand::Backfill, true, false);
        assert!(!event.compares_values() && !event.dry_run());
        assert!((&run).compares_values() && !(&run).dry_run());
        assert!((&dry).dry_run());
    }
}
