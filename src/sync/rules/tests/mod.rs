//! The rules' unit tests, by rule family, on shared fixtures.

mod deletion;
mod fetched;
mod linking;
mod ordering;
mod organizations;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::*;
use crate::domain::{EventId, StoredCustomer, StoredValues, StripeCustomerId, UnlinkReason};

/// The rules where the ledger holds no delete of the customer (most tests).
pub(super) fn decide(
    incoming: &IncomingCustomer<'_>,
    stored: Option<&StoredCustomer>,
    user: UserFacts,
    now: DateTime<Utc>,
) -> Decision {
    super::decide(incoming, stored, user, false, now)
}

pub(super) const T: i64 = 1_732_500_000;

pub(super) struct Fixture {
    pub(super) event_id: EventId,
    pub(super) customer_id: StripeCustomerId,
    pub(super) metadata: Map<String, Value>,
}

impl Fixture {
    pub(super) fn new() -> Self {
        Self {
            event_id: EventId::parse("evt_1").unwrap(),
            customer_id: StripeCustomerId::parse("cus_A").unwrap(),
            metadata: Map::new(),
        }
    }

    pub(super) fn event(&self, kind: CustomerEventKind, created: i64) -> IncomingCustomer<'_> {
        IncomingCustomer {
            kind,
            origin: Origin::Event(&self.event_id),
            created,
            customer_id: self.customer_id.clone(),
            email: Some("a@example.com"),
            name: Some("Ada"),
            default_payment_method: None,
            stripe_metadata: &self.metadata,
            link: LinkCandidate::Missing,
            livemode: false,
        }
    }
}

pub(super) fn stored(status: SyncStatus, last: EventOrder) -> StoredCustomer {
    StoredCustomer {
        version: "7".into(),
        status: Some(status),
        last_applied: Some(last),
    }
}

pub(super) fn known_free_user() -> UserFacts {
    UserFacts {
        exists: true,
        linked_elsewhere: false,
    }
}

/// A field of `customer_metadata.sync` as the store writes it (leaked: tests only).
pub(super) fn sync_field(decision: &Decision, field: &str) -> &'static Value {
    let row = match decision {
        Decision::Insert(row) | Decision::Update { row, .. } => row,
        Decision::Skip { .. } => panic!("expected a write, got {decision:?}"),
    };
    let metadata = crate::store::customers::metadata_json(row);
    Box::leak(Box::new(metadata["sync"][field].clone()))
}

pub(super) fn fetched<'a>(f: &'a Fixture, requested_at: i64) -> IncomingCustomer<'a> {
    IncomingCustomer {
        origin: Origin::Fetched {
            command: FetchCommand::Backfill,
            run_id: "backfill:run1",
        },
        ..f.event(CustomerEventKind::Updated, requested_at)
    }
}
