//! The one model of a `public.stripe_customers` row, as the rules read and write it. Typed:
//! only `store` turns it into and out of the row's columns and its `customer_metadata` JSON.
//!
//! A row comes in three shapes, each for a reason:
//! - [`StoredCustomer`]: what the rules order and guard a write by (version, status, last
//!   applied state); every read returns it, the webhook's per-event read nothing more;
//! - [`StoredValues`]: the values the row holds, read where a decision is compared with the row
//!   (a fetched customer that changes nothing is not written; `verify`'s drift);
//! - [`RowWrite`]: the values a decision writes.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::event_order::EventOrder;

/// `customer_metadata.sync.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncStatus {
    Synced,
    Unlinked,
    Deleted,
    /// `verify --fix` found that the API key's account and mode do not know the customer
    /// (Stripe's 404 `resource_missing`). Not a deletion: the user link stays, and the next
    /// state Stripe sends or answers for the customer applies as on any live row.
    Missing,
}

impl SyncStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Unlinked => "unlinked",
            Self::Deleted => "deleted",
            Self::Missing => "missing",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "synced" => Some(Self::Synced),
            "unlinked" => Some(Self::Unlinked),
            "deleted" => Some(Self::Deleted),
            "missing" => Some(Self::Missing),
            _ => None,
        }
    }
}

/// Why a stored row has no owner, neither `user_id` nor `organization_id`
/// (`customer_metadata.sync.error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnlinkReason {
    MissingUserId,
    InvalidUserId,
    UnknownUser,
    UserAlreadyLinked,
    InvalidOrganizationId,
    UnknownOrganization,
    OrganizationAlreadyLinked,
}

impl UnlinkReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UnlinkReason::MissingUserId => "missing_user_id",
            UnlinkReason::InvalidUserId => "invalid_user_id",
            UnlinkReason::UnknownUser => "unknown_user",
            UnlinkReason::UserAlreadyLinked => "user_already_linked",
            UnlinkReason::InvalidOrganizationId => "invalid_organization_id",
            UnlinkReason::UnknownOrganization => "unknown_organization",
            UnlinkReason::OrganizationAlreadyLinked => "organization_already_linked",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::MissingUserId,
            Self::InvalidUserId,
            Self::UnknownUser,
            Self::UserAlreadyLinked,
            Self::InvalidOrganizationId,
            Self::UnknownOrganization,
            Self::OrganizationAlreadyLinked,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == s)
    }
}

/// What the database says about the candidate owner (the user, or the organization, that the
/// customer's metadata names), read in the same snapshot as the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct UserFacts {
    pub exists: bool,
    /// Another live customer row already holds this user (or organization).
    pub linked_elsewhere: bool,
}

/// The existing row, as far as the rules' order and guards care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredCustomer {
    /// Opaque row version; a write based on this read succeeds only if it is still current.
    pub version: String,
    pub status: Option<SyncStatus>,
    pub last_applied: Option<EventOrder>,
}

/// What an existing row holds of the values the rules write (the `sync` bookkeeping of the
/// last event aside): enough to tell a write that changes the row from one that would not.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredValues {
    pub user_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub email: String,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    /// `customer_metadata.stripe`, as stored (any JSON; null when absent)
    pub stripe_metadata: Value,
    /// `customer_metadata.sync.status` (`None`: absent or not one the service writes)
    pub status: Option<SyncStatus>,
    /// `customer_metadata.sync.error`
    pub error: Option<UnlinkReason>,
    /// `customer_metadata.sync.livemode` (absent on rows older than modes)
    pub livemode: Option<bool>,
}

/// `customer_metadata.sync` as a decision writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncState {
    pub status: SyncStatus,
    /// Stripe's mode the state came from.
    pub livemode: bool,
    /// The event id, or the fetching run's or the creation's id.
    pub last_event_id: String,
    /// The event type, or the fetching command (`backfill`, `ensure-customer`, …).
    pub last_event_type: String,
    pub last_event_created: i64,
    pub synced_at: DateTime<Utc>,
    /// Why the row is unlinked.
    pub error: Option<UnlinkReason>,
}

/// The values to write into a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowWrite {
    pub user_id: Option<Uuid>,
    /// Never set together with `user_id` (a row has one owner).
    pub organization_id: Option<Uuid>,
    /// `None` keeps the stored email (an existing row is never given an empty one).
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    /// `customer_metadata.stripe`: the customer's own Stripe metadata.
    pub stripe_metadata: Map<String, Value>,
    /// `customer_metadata.sync`
    pub sync: SyncState,
}

/// A value of a row that a write can change (the `sync` bookkeeping of the last event aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowField {
    UserId,
    OrganizationId,
    Email,
    Name,
    DefaultPaymentMethod,
    StripeMetadata,
    Status,
    Error,
    Livemode,
}

impl RowWrite {
    /// The values of `stored` that writing this row would change, in [`RowField`] order.
    pub(crate) fn changes(&self, stored: &StoredValues) -> Vec<RowField> {
        let changed = [
            (RowField::UserId, stored.user_id != self.user_id),
            (
                RowField::OrganizationId,
                stored.organization_id != self.organization_id,
            ),
            (
                RowField::Email,
                self.email
                    .as_ref()
                    .is_some_and(|email| *email != stored.email),
            ),
            (RowField::Name, stored.name != self.name),
            (
                RowField::DefaultPaymentMethod,
                stored.default_payment_method != self.default_payment_method,
            ),
            (
                RowField::StripeMetadata,
                stored.stripe_metadata.as_object() != Some(&self.stripe_metadata),
            ),
            (RowField::Status, stored.status != Some(self.sync.status)),
            (RowField::Error, stored.error != self.sync.error),
            (
                RowField::Livemode,
                stored.livemode != Some(self.sync.livemode),
            ),
        ];
        changed
            .into_iter()
            .filter_map(|(field, changed)| changed.then_some(field))
            .collect()
    }
}
