//! DESIGN.md's sync rules as one pure function: given the incoming customer event and what
//! the table holds, decide what to write. No I/O here, so every rule is tested in isolation.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::outcome::{SkipReason, UnlinkReason};
use crate::domain::{EventId, StripeCustomerId};

/// The three customer events the service applies, in their tie-breaking rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerEventKind {
    Created,
    Updated,
    Deleted,
}

impl CustomerEventKind {
    pub fn from_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            "customer.created" => Some(Self::Created),
            "customer.updated" => Some(Self::Updated),
            "customer.deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    pub fn as_event_type(self) -> &'static str {
        match self {
            Self::Created => "customer.created",
            Self::Updated => "customer.updated",
            Self::Deleted => "customer.deleted",
        }
    }

    /// `created` < `updated` < `deleted` among events of the same second.
    fn rank(self) -> u8 {
        match self {
            Self::Created => 1,
            Self::Updated => 2,
            Self::Deleted => 3,
        }
    }
}

/// The commands that apply a customer as Stripe's API returned it, rather than from an event.
/// Their name is what `customer_metadata.sync.last_event_type` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchCommand {
    Backfill,
    Verify,
}

impl FetchCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backfill => "backfill",
            Self::Verify => "verify",
        }
    }

    fn from_recorded(event_type: &str) -> Option<Self> {
        match event_type {
            "backfill" => Some(Self::Backfill),
            "verify" => Some(Self::Verify),
            _ => None,
        }
    }
}

/// Where the incoming state of a customer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// A webhook event: `created` is the event's.
    Event(&'a EventId),
    /// A read of the customer from Stripe's API (`backfill`, `verify --fix`): `created` is the
    /// Unix second the request STARTED, so the data reflects every change stamped before it.
    /// `run_id` (e.g. `backfill:20261125T100000Z-1a2b3c4d`) is recorded as `last_event_id` and
    /// in the audit trail.
    Fetched {
        command: FetchCommand,
        run_id: &'a str,
    },
    /// A thin event (`v1.customer.*`, DESIGN.md "Thin events"): it carries only the customer's
    /// id, so the state is the customer as fetched from Stripe's API after the event arrived.
    /// Ordered as a fetched state (`created` is the fetch's start); recorded under the event's
    /// own id and type (`v1.customer.updated`), which read back as fetched.
    ThinEvent {
        id: &'a EventId,
        event_type: &'a str,
    },
    /// A customer the service just created for a user (`POST /customers`, `ensure-customer`),
    /// as Stripe's create (or search) answered it. Ordered as a fetched state (`created` is the
    /// request's start), so the `customer.created` Stripe sends for it applies on top in either
    /// delivery order; recorded as [`CREATED_FOR_USER`] under `id`
    /// (`ensure-customer:<user_id>:<attempt>`), in no ledger (there is no event).
    Created { id: &'a str },
}

/// `sync.last_event_type` of a row written from a customer the service created for a user;
/// reads back as a fetched state.
pub const CREATED_FOR_USER: &str = "ensure-customer";

/// The types a thin customer event is recorded under: a row that records one of them was
/// written from a fetched state.
pub const THIN_EVENT_TYPES: [&str; 3] = [
    "v1.customer.created",
    "v1.customer.updated",
    "v1.customer.deleted",
];

/// Rank of a fetched state among the events of its second: below all of them. A request that
/// started in second S may have been answered before or after a change Stripe stamps S, so the
/// event of that second (which describes the change itself) wins in either delivery order;
/// every change has its event, so yielding costs nothing but a later convergence. Two fetches
/// of the same second tie, and equal order applies (the later one wins).
const FETCHED_RANK: u8 = 0;

/// Stripe does not deliver in order and `created` has 1-second resolution, so events are
/// ordered by (`created`, type rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventOrder {
    created: i64,
    rank: u8,
}

impl EventOrder {
    pub fn new(created: i64, kind: CustomerEventKind) -> Self {
        Self {
            created,
            rank: kind.rank(),
        }
    }

    /// The order of a customer fetched from Stripe's API by a request started at `requested_at`.
    pub fn fetched(requested_at: i64) -> Self {
        Self {
            created: requested_at,
            rank: FETCHED_RANK,
        }
    }

    /// Reads back the order a row records in `customer_metadata.sync`. A fetched state
    /// (`backfill`, `verify`, a thin event's `v1.customer.*`) ranks below events of its second; an unknown type (written by
    /// hand, or by a future version) ranks as an update.
    pub fn from_recorded(created: i64, event_type: &str) -> Self {
        if FetchCommand::from_recorded(event_type).is_some()
            || THIN_EVENT_TYPES.contains(&event_type)
            || event_type == CREATED_FOR_USER
        {
            return Self::fetched(created);
        }
        let rank = CustomerEventKind::from_event_type(event_type)
            .unwrap_or(CustomerEventKind::Updated)
            .rank();
        Self { created, rank }
    }
}

/// The user a customer's metadata points at, before the database has been asked about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCandidate {
    Missing,
    Invalid,
    User(Uuid),
}

impl LinkCandidate {
    pub fn from_metadata(value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Null) => Self::Missing,
            Some(Value::String(s)) if s.trim().is_empty() => Self::Missing,
            Some(Value::String(s)) => Uuid::try_parse(s.trim()).map_or(Self::Invalid, Self::User),
            Some(_) => Self::Invalid,
        }
    }

    pub fn user(self) -> Option<Uuid> {
        match self {
            Self::User(id) => Some(id),
            _ => None,
        }
    }
}

/// What the database says about the candidate user, read in the same snapshot as the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserFacts {
    pub exists: bool,
    /// Another live customer row already holds this user.
    pub linked_elsewhere: bool,
}

/// A customer event, its fields as Stripe sent them, ready for the rules.
///
/// A customer fetched from Stripe's API goes through the same rules: `kind` is `Updated` for a
/// live customer and `Deleted` for `{"id", "deleted": true}`, `origin` is
/// [`Origin::Fetched`] and `created` the request's start.
#[derive(Debug, Clone)]
pub struct IncomingCustomer<'a> {
    pub kind: CustomerEventKind,
    pub origin: Origin<'a>,
    pub created: i64,
    pub customer_id: &'a StripeCustomerId,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub default_payment_method: Option<&'a str>,
    pub stripe_metadata: &'a Map<String, Value>,
    pub link: LinkCandidate,
    /// Stripe's mode the state comes from, recorded as `sync.livemode`.
    pub livemode: bool,
}

impl IncomingCustomer<'_> {
    pub fn order(&self) -> EventOrder {
        match self.origin {
            Origin::Event(_) => EventOrder::new(self.created, self.kind),
            Origin::Fetched { .. } | Origin::ThinEvent { .. } | Origin::Created { .. } => {
                EventOrder::fetched(self.created)
            }
        }
    }

    /// `sync.last_event_id`: the event id, or the fetching run's id.
    fn source_id(&self) -> &str {
        match self.origin {
            Origin::Event(id) => id.as_str(),
            Origin::Fetched { run_id, .. } => run_id,
            Origin::ThinEvent { id, .. } => id.as_str(),
            Origin::Created { id } => id,
        }
    }

    /// `sync.last_event_type`: the event type, or the fetching command.
    fn source_type(&self) -> &str {
        match self.origin {
            Origin::Event(_) => self.kind.as_event_type(),
            Origin::Fetched { command, .. } => command.as_str(),
            Origin::ThinEvent { event_type, .. } => event_type,
            Origin::Created { .. } => CREATED_FOR_USER,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    Synced,
    Unlinked,
    Deleted,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Unlinked => "unlinked",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "synced" => Some(Self::Synced),
            "unlinked" => Some(Self::Unlinked),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// The existing row, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCustomer {
    /// Opaque row version; a write based on this read succeeds only if it is still current.
    pub version: String,
    pub status: Option<SyncStatus>,
    pub last_applied: Option<EventOrder>,
}

/// The values to write into a row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowWrite {
    pub user_id: Option<Uuid>,
    /// `None` keeps the stored email (an existing row is never given an empty one).
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    /// `{"stripe": …, "sync": …}`
    pub customer_metadata: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Insert(RowWrite),
    Update {
        version: String,
        row: RowWrite,
    },
    /// Record the event only. `version` is the row state the decision rests on (`None`: no row).
    Skip {
        reason: SkipReason,
        version: Option<String>,
    },
}

/// Applies the sync rules to one customer event. `deletion_recorded`: the ledger holds a
/// delete of this customer id, whether or not it could write a tombstone.
pub fn decide(
    incoming: &IncomingCustomer<'_>,
    stored: Option<&StoredCustomer>,
    user: UserFacts,
    deletion_recorded: bool,
    now: DateTime<Utc>,
) -> Decision {
    let version = stored.map(|s| s.version.clone());
    let skip = |reason| Decision::Skip {
        reason,
        version: version.clone(),
    };
    let deleting = incoming.kind == CustomerEventKind::Deleted;

    if let Some(stored) = stored {
        let tombstone = stored.status == Some(SyncStatus::Deleted);
        // Equal order applies: the later delivery of a same-second event wins. A delete is
        // never stale against a live row, though: deleted is terminal whatever the order, and
        // Stripe changes nothing of a deleted customer afterwards.
        let stale = stored
            .last_applied
            .is_some_and(|last| incoming.order() < last);
        if stale && (tombstone || !deleting) {
            return skip(SkipReason::StaleEvent);
        }
        if tombstone {
            return skip(SkipReason::CustomerDeleted);
        }
    }
    // Deleted is terminal even where the delete could write no row (it had no email).
    if deletion_recorded && !deleting {
        return skip(SkipReason::CustomerDeleted);
    }

    let email = incoming
        .email
        .filter(|e| !e.trim().is_empty())
        .map(str::to_owned);
    if stored.is_none() && email.is_none() {
        return skip(SkipReason::MissingEmail);
    }

    let (user_id, status, error) = match incoming.kind {
        // A tombstone frees the user to be linked to a new customer; the audit keeps the old id.
        CustomerEventKind::Deleted => (None, SyncStatus::Deleted, None),
        CustomerEventKind::Created | CustomerEventKind::Updated => {
            match resolve_link(incoming.link, user) {
                Ok(user_id) => (Some(user_id), SyncStatus::Synced, None),
                Err(reason) => (None, SyncStatus::Unlinked, Some(reason)),
            }
        }
    };
    let row = RowWrite {
        user_id,
        email,
        name: incoming.name.map(str::to_owned),
        default_payment_method: incoming.default_payment_method.map(str::to_owned),
        customer_metadata: json!({
            "stripe": incoming.stripe_metadata,
            "sync": {
                "status": status.as_str(),
                "livemode": incoming.livemode,
                "last_event_id": incoming.source_id(),
                "last_event_type": incoming.source_type(),
                "last_event_created": incoming.created,
                "synced_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
                "error": error.map(UnlinkReason::as_str),
            }
        }),
    };
    match stored {
        None => Decision::Insert(row),
        Some(stored) => Decision::Update {
            version: stored.version.clone(),
            row,
        },
    }
}

/// What an existing row holds of the values the rules write (the `sync` bookkeeping of the
/// last event aside): enough to tell a write that changes the row from one that would not.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredValues {
    pub user_id: Option<Uuid>,
    pub email: String,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    /// `customer_metadata.stripe`
    pub stripe_metadata: Value,
    /// `customer_metadata.sync.status`
    pub status: Option<String>,
    /// `customer_metadata.sync.error`
    pub error: Option<String>,
    /// `customer_metadata.sync.livemode` (absent on rows older than modes)
    pub livemode: Option<bool>,
}

/// True when writing `row` would leave the row as it is but for the bookkeeping of which event
/// or fetch came last. A fetched customer that is unchanged is not written at all: a backfill
/// run again leaves no audit rows and no new row versions, and its summary says `unchanged`.
/// (Webhook events are always written: each one is recorded as the row's last applied event.)
pub fn is_unchanged(stored: &StoredValues, row: &RowWrite) -> bool {
    let sync = &row.customer_metadata["sync"];
    stored.user_id == row.user_id
        && row
            .email
            .as_ref()
            .is_none_or(|email| *email == stored.email)
        && stored.name == row.name
        && stored.default_payment_method == row.default_payment_method
        && stored.stripe_metadata == row.customer_metadata["stripe"]
        && stored.status.as_deref() == sync["status"].as_str()
        && stored.error.as_deref() == sync["error"].as_str()
        && stored.livemode == sync["livemode"].as_bool()
}

fn resolve_link(candidate: LinkCandidate, user: UserFacts) -> Result<Uuid, UnlinkReason> {
    match candidate {
        LinkCandidate::Missing => Err(UnlinkReason::MissingUserId),
        LinkCandidate::Invalid => Err(UnlinkReason::InvalidUserId),
        LinkCandidate::User(_) if !user.exists => Err(UnlinkReason::UnknownUser),
        LinkCandidate::User(_) if user.linked_elsewhere => Err(UnlinkReason::UserAlreadyLinked),
        LinkCandidate::User(id) => Ok(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules where the ledger holds no delete of the customer (most tests).
    fn decide(
        incoming: &IncomingCustomer<'_>,
        stored: Option<&StoredCustomer>,
        user: UserFacts,
        now: DateTime<Utc>,
    ) -> Decision {
        super::decide(incoming, stored, user, false, now)
    }

    const T: i64 = 1_732_500_000;

    struct Fixture {
        event_id: EventId,
        customer_id: StripeCustomerId,
        metadata: Map<String, Value>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                event_id: EventId::parse("evt_1").unwrap(),
                customer_id: StripeCustomerId::parse("cus_A").unwrap(),
                metadata: Map::new(),
            }
        }

        fn event(&self, kind: CustomerEventKind, created: i64) -> IncomingCustomer<'_> {
            IncomingCustomer {
                kind,
                origin: Origin::Event(&self.event_id),
                created,
                customer_id: &self.customer_id,
                email: Some("a@example.com"),
                name: Some("Ada"),
                default_payment_method: None,
                stripe_metadata: &self.metadata,
                link: LinkCandidate::Missing,
                livemode: false,
            }
        }
    }

    fn stored(status: SyncStatus, last: EventOrder) -> StoredCustomer {
        StoredCustomer {
            version: "7".into(),
            status: Some(status),
            last_applied: Some(last),
        }
    }

    fn known_free_user() -> UserFacts {
        UserFacts {
            exists: true,
            linked_elsewhere: false,
        }
    }

    fn sync_field<'a>(decision: &'a Decision, field: &str) -> &'a Value {
        let row = match decision {
            Decision::Insert(row) | Decision::Update { row, .. } => row,
            Decision::Skip { .. } => panic!("expected a write, got {decision:?}"),
        };
        &row.customer_metadata["sync"][field]
    }

    #[test]
    fn first_event_for_a_customer_inserts_a_row() {
        let f = Fixture::new();
        let decision = decide(
            &f.event(CustomerEventKind::Updated, T),
            None,
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(decision, Decision::Insert(_)));
    }

    #[test]
    fn event_ordered_before_the_last_applied_one_is_stale() {
        let f = Fixture::new();
        let last = EventOrder::new(T + 1, CustomerEventKind::Updated);
        let decision = decide(
            &f.event(CustomerEventKind::Updated, T),
            Some(&stored(SyncStatus::Synced, last)),
            UserFacts::default(),
            Utc::now(),
        );
        assert_eq!(
            decision,
            Decision::Skip {
                reason: SkipReason::StaleEvent,
                version: Some("7".into())
            }
        );
    }

    #[test]
    fn created_is_ordered_before_updated_of_the_same_second() {
        let f = Fixture::new();
        let last = EventOrder::new(T, CustomerEventKind::Updated);
        let decision = decide(
            &f.event(CustomerEventKind::Created, T),
            Some(&stored(SyncStatus::Synced, last)),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(
            decision,
            Decision::Skip {
                reason: SkipReason::StaleEvent,
                ..
            }
        ));
    }

    #[test]
    fn equal_order_applies_so_the_later_delivery_wins() {
        let f = Fixture::new();
        let last = EventOrder::new(T, CustomerEventKind::Updated);
        let decision = decide(
            &f.event(CustomerEventKind::Updated, T),
            Some(&stored(SyncStatus::Synced, last)),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(decision, Decision::Update { .. }));
    }

    #[test]
    fn deleted_is_terminal_for_later_events() {
        let f = Fixture::new();
        let last = EventOrder::new(T, CustomerEventKind::Deleted);
        for kind in [
            CustomerEventKind::Created,
            CustomerEventKind::Updated,
            CustomerEventKind::Deleted,
        ] {
            let decision = decide(
                &f.event(kind, T + 5),
                Some(&stored(SyncStatus::Deleted, last)),
                UserFacts::default(),
                Utc::now(),
            );
            assert!(
                matches!(
                    decision,
                    Decision::Skip {
                        reason: SkipReason::CustomerDeleted,
                        ..
                    }
                ),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_recorded_delete_without_a_row_keeps_every_later_state_from_creating_one() {
        let f = Fixture::new();
        for kind in [CustomerEventKind::Created, CustomerEventKind::Updated] {
            let decision = super::decide(
                &f.event(kind, T + 5),
                None,
                known_free_user(),
                true,
                Utc::now(),
            );
            assert_eq!(
                decision,
                Decision::Skip {
                    reason: SkipReason::CustomerDeleted,
                    version: None
                },
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_delete_ordered_before_the_last_applied_event_still_tombstones_a_live_row() {
        let f = Fixture::new();
        let last = EventOrder::new(T + 5, CustomerEventKind::Updated);
        let decision = decide(
            &f.event(CustomerEventKind::Deleted, T),
            Some(&stored(SyncStatus::Synced, last)),
            known_free_user(),
            Utc::now(),
        );
        assert_eq!(sync_field(&decision, "status"), "deleted");
    }

    #[test]
    fn no_row_and_no_email_is_skipped_for_missing_email() {
        let f = Fixture::new();
        for kind in [CustomerEventKind::Created, CustomerEventKind::Deleted] {
            let mut event = f.event(kind, T);
            event.email = None;
            let decision = decide(&event, None, UserFacts::default(), Utc::now());
            assert_eq!(
                decision,
                Decision::Skip {
                    reason: SkipReason::MissingEmail,
                    version: None
                }
            );
        }
    }

    #[test]
    fn existing_row_without_incoming_email_keeps_the_stored_email_and_applies_the_rest() {
        let f = Fixture::new();
        let mut event = f.event(CustomerEventKind::Updated, T + 1);
        event.email = Some("");
        let last = EventOrder::new(T, CustomerEventKind::Created);
        let decision = decide(
            &event,
            Some(&stored(SyncStatus::Synced, last)),
            UserFacts::default(),
            Utc::now(),
        );
        let Decision::Update { row, .. } = decision else {
            panic!("expected update")
        };
        assert_eq!(row.email, None);
        assert_eq!(row.name.as_deref(), Some("Ada"));
    }

    #[test]
    fn valid_existing_unheld_user_is_linked() {
        let f = Fixture::new();
        let user = Uuid::new_v4();
        let mut event = f.event(CustomerEventKind::Created, T);
        event.link = LinkCandidate::User(user);
        let decision = decide(&event, None, known_free_user(), Utc::now());
        let Decision::Insert(row) = &decision else {
            panic!("expected insert")
        };
        assert_eq!(row.user_id, Some(user));
        assert_eq!(sync_field(&decision, "status"), "synced");
        assert_eq!(sync_field(&decision, "error"), &Value::Null);
    }

    #[test]
    fn each_unlinkable_user_id_gives_an_unlinked_row_with_its_reason() {
        let f = Fixture::new();
        let user = Uuid::new_v4();
        let cases = [
            (LinkCandidate::Missing, known_free_user(), "missing_user_id"),
            (LinkCandidate::Invalid, known_free_user(), "invalid_user_id"),
            (
                LinkCandidate::User(user),
                UserFacts {
                    exists: false,
                    linked_elsewhere: false,
                },
                "unknown_user",
            ),
            (
                LinkCandidate::User(user),
                UserFacts {
                    exists: true,
                    linked_elsewhere: true,
                },
                "user_already_linked",
            ),
        ];
        for (link, facts, reason) in cases {
            let mut event = f.event(CustomerEventKind::Created, T);
            event.link = link;
            let decision = decide(&event, None, facts, Utc::now());
            let Decision::Insert(row) = &decision else {
                panic!("expected insert")
            };
            assert_eq!(row.user_id, None, "{reason}");
            assert_eq!(sync_field(&decision, "status"), "unlinked", "{reason}");
            assert_eq!(sync_field(&decision, "error"), reason);
        }
    }

    #[test]
    fn delete_writes_a_tombstone_that_frees_the_user() {
        let f = Fixture::new();
        let mut event = f.event(CustomerEventKind::Deleted, T + 2);
        event.link = LinkCandidate::User(Uuid::new_v4());
        let last = EventOrder::new(T, CustomerEventKind::Created);
        let decision = decide(
            &event,
            Some(&stored(SyncStatus::Synced, last)),
            known_free_user(),
            Utc::now(),
        );
        let Decision::Update { row, .. } = &decision else {
            panic!("expected update")
        };
        assert_eq!(row.user_id, None);
        assert_eq!(sync_field(&decision, "status"), "deleted");
        assert_eq!(sync_field(&decision, "last_event_type"), "customer.deleted");
    }

    fn fetched<'a>(f: &'a Fixture, requested_at: i64) -> IncomingCustomer<'a> {
        IncomingCustomer {
            origin: Origin::Fetched {
                command: FetchCommand::Backfill,
                run_id: "backfill:run1",
            },
            ..f.event(CustomerEventKind::Updated, requested_at)
        }
    }

    #[test]
    fn fetched_state_ranks_below_every_event_of_its_second() {
        let f = Fixture::new();
        for kind in [
            CustomerEventKind::Created,
            CustomerEventKind::Updated,
            CustomerEventKind::Deleted,
        ] {
            // The event came first: the fetch of the same second is stale.
            let status = match kind {
                CustomerEventKind::Deleted => SyncStatus::Deleted,
                _ => SyncStatus::Synced,
            };
            let decision = decide(
                &fetched(&f, T),
                Some(&stored(status, EventOrder::new(T, kind))),
                UserFacts::default(),
                Utc::now(),
            );
            assert!(
                matches!(
                    decision,
                    Decision::Skip {
                        reason: SkipReason::StaleEvent,
                        ..
                    }
                ),
                "{kind:?}"
            );
            // The fetch came first: the event of the same second applies.
            let decision = decide(
                &f.event(kind, T),
                Some(&stored(SyncStatus::Synced, EventOrder::fetched(T))),
                UserFacts::default(),
                Utc::now(),
            );
            assert!(matches!(decision, Decision::Update { .. }), "{kind:?}");
        }
    }

    #[test]
    fn fetched_state_wins_over_older_events_and_loses_to_newer_ones() {
        let f = Fixture::new();
        let older = EventOrder::new(T - 1, CustomerEventKind::Updated);
        let decision = decide(
            &fetched(&f, T),
            Some(&stored(SyncStatus::Synced, older)),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(decision, Decision::Update { .. }));
        let newer = EventOrder::new(T + 1, CustomerEventKind::Created);
        let decision = decide(
            &fetched(&f, T),
            Some(&stored(SyncStatus::Synced, newer)),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(
            decision,
            Decision::Skip {
                reason: SkipReason::StaleEvent,
                ..
            }
        ));
    }

    #[test]
    fn fetched_state_records_its_command_and_run_and_reads_back_as_fetched() {
        let f = Fixture::new();
        let decision = decide(&fetched(&f, T), None, UserFacts::default(), Utc::now());
        assert_eq!(sync_field(&decision, "last_event_type"), "backfill");
        assert_eq!(sync_field(&decision, "last_event_id"), "backfill:run1");
        assert_eq!(sync_field(&decision, "last_event_created"), T);
        assert_eq!(
            EventOrder::from_recorded(T, "backfill"),
            EventOrder::fetched(T)
        );
        assert_eq!(
            EventOrder::from_recorded(T, "verify"),
            EventOrder::fetched(T)
        );
    }

    #[test]
    fn thin_event_is_ordered_as_its_fetch_and_recorded_under_its_own_id_and_type() {
        let f = Fixture::new();
        let thin = IncomingCustomer {
            origin: Origin::ThinEvent {
                id: &f.event_id,
                event_type: "v1.customer.updated",
            },
            ..f.event(CustomerEventKind::Updated, T)
        };
        assert_eq!(thin.order(), EventOrder::fetched(T));
        let decision = decide(&thin, None, UserFacts::default(), Utc::now());
        assert_eq!(sync_field(&decision, "last_event_id"), "evt_1");
        assert_eq!(
            sync_field(&decision, "last_event_type"),
            "v1.customer.updated"
        );
        for thin_type in THIN_EVENT_TYPES {
            assert_eq!(
                EventOrder::from_recorded(T, thin_type),
                EventOrder::fetched(T)
            );
        }
        // A snapshot event of the fetch's second that arrives later still applies; an older
        // one is stale.
        let after_thin = stored(SyncStatus::Synced, EventOrder::fetched(T));
        let same_second = decide(
            &f.event(CustomerEventKind::Created, T),
            Some(&after_thin),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(same_second, Decision::Update { .. }));
        let older = decide(
            &f.event(CustomerEventKind::Updated, T - 1),
            Some(&after_thin),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(
            older,
            Decision::Skip {
                reason: SkipReason::StaleEvent,
                ..
            }
        ));
    }

    #[test]
    fn customer_created_for_a_user_ranks_below_its_own_customer_created_event() {
        let f = Fixture::new();
        let created = IncomingCustomer {
            origin: Origin::Created {
                id: "ensure-customer:u:1",
            },
            ..f.event(CustomerEventKind::Updated, T)
        };
        assert_eq!(created.order(), EventOrder::fetched(T));
        let decision = decide(&created, None, known_free_user(), Utc::now());
        assert!(matches!(decision, Decision::Insert(_)));
        assert_eq!(
            sync_field(&decision, "last_event_id"),
            "ensure-customer:u:1"
        );
        assert_eq!(sync_field(&decision, "last_event_type"), CREATED_FOR_USER);
        assert_eq!(
            EventOrder::from_recorded(T, CREATED_FOR_USER),
            EventOrder::fetched(T)
        );
        // Its `customer.created` (stamped in the creation's second) applies after it, and the
        // creation written after that event is stale: one row either way.
        let after_creation = stored(SyncStatus::Synced, EventOrder::fetched(T));
        let webhook = decide(
            &f.event(CustomerEventKind::Created, T),
            Some(&after_creation),
            known_free_user(),
            Utc::now(),
        );
        assert!(matches!(webhook, Decision::Update { .. }));
        let after_webhook = stored(
            SyncStatus::Synced,
            EventOrder::new(T, CustomerEventKind::Created),
        );
        let late_creation = decide(
            &created,
            Some(&after_webhook),
            known_free_user(),
            Utc::now(),
        );
        assert!(matches!(
            late_creation,
            Decision::Skip {
                reason: SkipReason::StaleEvent,
                ..
            }
        ));
    }

    #[test]
    fn fetched_state_never_revives_a_tombstone() {
        let f = Fixture::new();
        let last = EventOrder::new(T, CustomerEventKind::Deleted);
        let decision = decide(
            &fetched(&f, T + 60),
            Some(&stored(SyncStatus::Deleted, last)),
            UserFacts::default(),
            Utc::now(),
        );
        assert!(matches!(
            decision,
            Decision::Skip {
                reason: SkipReason::CustomerDeleted,
                ..
            }
        ));
    }

    #[test]
    fn write_that_changes_only_the_bookkeeping_is_unchanged() {
        let f = Fixture::new();
        let Decision::Insert(row) = decide(&fetched(&f, T), None, UserFacts::default(), Utc::now())
        else {
            panic!("expected insert")
        };
        let values = StoredValues {
            user_id: None,
            email: "a@example.com".into(),
            name: Some("Ada".into()),
            default_payment_method: None,
            stripe_metadata: json!({}),
            status: Some("unlinked".into()),
            error: Some("missing_user_id".into()),
            livemode: Some(false),
        };
        assert!(is_unchanged(&values, &row));
        let mut no_email = row.clone();
        no_email.email = None;
        assert!(
            is_unchanged(&values, &no_email),
            "a kept email is no change"
        );
        for changed in [
            StoredValues {
                name: Some("Grace".into()),
                ..values.clone()
            },
            StoredValues {
                email: "b@example.com".into(),
                ..values.clone()
            },
            StoredValues {
                default_payment_method: Some("pm_1".into()),
                ..values.clone()
            },
            StoredValues {
                stripe_metadata: json!({"plan": "pro"}),
                ..values.clone()
            },
            StoredValues {
                error: Some("unknown_user".into()),
                ..values.clone()
            },
            StoredValues {
                user_id: Some(Uuid::new_v4()),
                status: Some("synced".into()),
                error: None,
                ..values.clone()
            },
        ] {
            assert!(!is_unchanged(&changed, &row), "{changed:?}");
        }
    }

    #[test]
    fn metadata_user_id_is_parsed_from_strings_only() {
        assert_eq!(LinkCandidate::from_metadata(None), LinkCandidate::Missing);
        assert_eq!(
            LinkCandidate::from_metadata(Some(&json!(""))),
            LinkCandidate::Missing
        );
        assert_eq!(
            LinkCandidate::from_metadata(Some(&json!("nope"))),
            LinkCandidate::Invalid
        );
        assert_eq!(
            LinkCandidate::from_metadata(Some(&json!(42))),
            LinkCandidate::Invalid
        );
        let id = Uuid::new_v4();
        assert_eq!(
            LinkCandidate::from_metadata(Some(&json!(id.to_string()))),
            LinkCandidate::User(id)
        );
    }
}
