//! The order of the states of one customer: Stripe does not deliver in order and `created` has
//! 1-second resolution, so states are ordered by (`created`, type rank), and a state read from
//! Stripe's API ranks below every event of its second (docs/design.md "Sync rules", 3).

/// The three customer events the service applies, in their tie-breaking rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CustomerEventKind {
    Created,
    Updated,
    Deleted,
}

impl CustomerEventKind {
    pub(crate) fn from_event_type(event_type: &str) -> Option<Self> {
        match event_type {
            "customer.created" => Some(Self::Created),
            "customer.updated" => Some(Self::Updated),
            "customer.deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    pub(crate) fn as_event_type(self) -> &'static str {
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
pub(crate) enum FetchCommand {
    Backfill,
    Verify,
}

impl FetchCommand {
    pub(crate) fn as_str(self) -> &'static str {
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

/// `sync.last_event_type` of a row written from a customer the service created for a user;
/// reads back as a fetched state.
pub(crate) const CREATED_FOR_USER: &str = "ensure-customer";

/// The types a thin customer event is recorded under: a row that records one of them was
/// written from a fetched state.
pub(crate) const THIN_EVENT_TYPES: [&str; 3] = [
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
pub(crate) struct EventOrder {
    created: i64,
    rank: u8,
}

impl EventOrder {
    pub(crate) fn new(created: i64, kind: CustomerEventKind) -> Self {
        Self {
            created,
            rank: kind.rank(),
        }
    }

    /// The order of a customer fetched from Stripe's API by a request started at `requested_at`.
    pub(crate) fn fetched(requested_at: i64) -> Self {
        Self {
            created: requested_at,
            rank: FETCHED_RANK,
        }
    }

    /// Reads back the order a row records in `customer_metadata.sync`. A fetched state
    /// (`backfill`, `verify`, a thin event's `v1.customer.*`, a customer created for a user)
    /// ranks below events of its second; an unknown type (written by hand, or by a future
    /// version) ranks as an update.
    pub(crate) fn from_recorded(created: i64, event_type: &str) -> Self {
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
