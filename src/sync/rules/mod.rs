//! docs/design.md's sync rules as one pure function: given the incoming customer event and what
//! the table holds, decide what to write. No I/O here, so every rule is tested in isolation.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

pub(crate) use crate::domain::customer::{
    RowWrite, StoredCustomer, StoredValues, SyncState, SyncStatus, UnlinkReason, UserFacts,
};
#[cfg(test)]
use crate::domain::event_order::THIN_EVENT_TYPES;
pub(crate) use crate::domain::event_order::{
    CREATED_FOR_USER, CustomerEventKind, EventOrder, FetchCommand,
};
use crate::domain::outcome::SkipReason;
use crate::domain::{EventId, StripeCustomerId};

/// Where the incoming state of a customer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin<'a> {
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
    /// A thin event (`v1.customer.*`, docs/design.md "Thin events"): it carries only the customer's
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

/// The owner a customer's metadata points at, before the database has been asked about it:
/// a user (`USER_ID_METADATA_KEY`) or an organization (`organization_id`).
///
/// A customer whose metadata carries an `organization_id` is an organization's, whatever its
/// user key says: an organization's customer is created by a member, whose id the app may well
/// put beside the organization's, and the row can hold only one owner. So the organization is
/// the candidate, and the user key is not read (an invalid or unknown organization leaves the
/// row unlinked, never linked to the user instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkCandidate {
    Missing,
    Invalid,
    User(Uuid),
    InvalidOrganization,
    Organization(Uuid),
}

/// The metadata key that links a customer to an organization (docs/design.md "Organizations").
pub(crate) const ORGANIZATION_ID_METADATA_KEY: &str = "organization_id";

/// A metadata value as an id: absent (null, empty), a UUID, or something else.
fn parse_id(value: Option<&Value>) -> Option<Result<Uuid, ()>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(Uuid::try_parse(s.trim()).map_err(|_| ())),
        Some(_) => Some(Err(())),
    }
}

impl LinkCandidate {
    /// The candidate of a user-only metadata value (`USER_ID_METADATA_KEY`).
    pub(crate) fn from_metadata(value: Option<&Value>) -> Self {
        match parse_id(value) {
            None => Self::Missing,
            Some(Ok(id)) => Self::User(id),
            Some(Err(())) => Self::Invalid,
        }
    }

    /// The candidate of a customer's metadata: its organization when it names one, else its
    /// user.
    pub(crate) fn from_owner_metadata(user: Option<&Value>, organization: Option<&Value>) -> Self {
        match parse_id(organization) {
            Some(Ok(id)) => Self::Organization(id),
            Some(Err(())) => Self::InvalidOrganization,
            None => Self::from_metadata(user),
        }
    }

    pub(crate) fn user(self) -> Option<Uuid> {
        match self {
            Self::User(id) => Some(id),
            _ => None,
        }
    }

    pub(crate) fn organization(self) -> Option<Uuid> {
        match self {
            Self::Organization(id) => Some(id),
            _ => None,
        }
    }

    /// The metadata names an organization (valid or not).
    pub(crate) fn is_organization(self) -> bool {
        matches!(self, Self::Organization(_) | Self::InvalidOrganization)
    }
}

/// A customer event, its fields as Stripe sent them, ready for the rules.
///
/// A customer fetched from Stripe's API goes through the same rules: `kind` is `Updated` for a
/// live customer and `Deleted` for `{"id", "deleted": true}`, `origin` is
/// [`Origin::Fetched`] and `created` the request's start.
#[derive(Debug, Clone)]
pub(crate) struct IncomingCustomer<'a> {
    pub kind: CustomerEventKind,
    pub origin: Origin<'a>,
    pub created: i64,
    pub customer_id: StripeCustomerId,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub default_payment_method: Option<&'a str>,
    pub stripe_metadata: &'a Map<String, Value>,
    pub link: LinkCandidate,
    /// Stripe's mode the state comes from, recorded as `sync.livemode`.
    pub livemode: bool,
}

impl IncomingCustomer<'_> {
    pub(crate) fn order(&self) -> EventOrder {
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

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
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

/// Applies the sync rules to one customer event. `user`: the facts about the candidate owner
/// (`incoming.link`, a user or an organization). `deletion_recorded`: the ledger holds a
/// delete of this customer id, whether or not it could write a tombstone.
pub(crate) fn decide(
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

    let (owner, status, error) = match incoming.kind {
        // A tombstone frees the user (or organization) to be linked to a new customer; the
        // audit keeps the old id.
        CustomerEventKind::Deleted => (None, SyncStatus::Deleted, None),
        CustomerEventKind::Created | CustomerEventKind::Updated => {
            match resolve_link(incoming.link, user) {
                Ok(owner) => (Some(owner), SyncStatus::Synced, None),
                Err(reason) => (None, SyncStatus::Unlinked, Some(reason)),
            }
        }
    };
    let row = RowWrite {
        user_id: owner.and_then(LinkCandidate::user),
        organization_id: owner.and_then(LinkCandidate::organization),
        email,
        name: incoming.name.map(str::to_owned),
        default_payment_method: incoming.default_payment_method.map(str::to_owned),
        stripe_metadata: incoming.stripe_metadata.clone(),
        sync: SyncState {
            status,
            livemode: incoming.livemode,
            last_event_id: incoming.source_id().to_owned(),
            last_event_type: incoming.source_type().to_owned(),
            last_event_created: incoming.created,
            synced_at: now,
            error,
        },
    };
    match stored {
        None => Decision::Insert(row),
        Some(stored) => Decision::Update {
            version: stored.version.clone(),
            row,
        },
    }
}

/// True when writing `row` would leave the row as it is but for the bookkeeping of which event
/// or fetch came last. A fetched customer that is unchanged is not written at all: a backfill
/// run again leaves no audit rows and no new row versions, and its summary says `unchanged`.
/// (Webhook events are always written: each one is recorded as the row's last applied event.)
pub(crate) fn is_unchanged(stored: &StoredValues, row: &RowWrite) -> bool {
    row.changes(stored).is_empty()
}

/// The owner the row is linked to (a `User` or an `Organization` candidate), or why none.
/// `owner`: the facts about the candidate, whichever it is.
fn resolve_link(candidate: LinkCandidate, owner: UserFacts) -> Result<LinkCandidate, UnlinkReason> {
    match candidate {
        LinkCandidate::Missing => Err(UnlinkReason::MissingUserId),
        LinkCandidate::Invalid => Err(UnlinkReason::InvalidUserId),
        LinkCandidate::InvalidOrganization => Err(UnlinkReason::InvalidOrganizationId),
        LinkCandidate::User(_) if !owner.exists => Err(UnlinkReason::UnknownUser),
        LinkCandidate::User(_) if owner.linked_elsewhere => Err(UnlinkReason::UserAlreadyLinked),
        LinkCandidate::Organization(_) if !owner.exists => Err(UnlinkReason::UnknownOrganization),
        LinkCandidate::Organization(_) if owner.linked_elsewhere => {
            Err(UnlinkReason::OrganizationAlreadyLinked)
        }
        LinkCandidate::User(_) | LinkCandidate::Organization(_) => Ok(candidate),
    }
}

#[cfg(test)]
mod tests;
