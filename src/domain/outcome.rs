//! What became of an event: the `status` (and `reason`) the webhook answers with and the
//! ledger records.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A row was written.
    Processed,
    /// The event id was already recorded; nothing changed.
    Duplicate,
    /// Verified, of a type (or a mode) the service does not apply; recorded.
    Ignored(Option<IgnoreReason>),
    /// A customer event that cannot change the table; recorded with its reason.
    Skipped(SkipReason),
    /// Verified, but the database refuses it as sent, whatever the retry; recorded with the
    /// error, answered 200 so that Stripe does not retry it for days, re-appliable by an
    /// operator (`reapply-failed`).
    Failed(FailReason),
}

impl Outcome {
    pub fn status(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored(_) => "ignored",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The snake_case reason the answer and the ledger give, where the status has one.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::Skipped(reason) => Some(reason.as_str()),
            Outcome::Ignored(reason) => reason.map(IgnoreReason::as_str),
            Outcome::Failed(reason) => Some(reason.as_str()),
            Outcome::Processed | Outcome::Duplicate => None,
        }
    }
}

/// Why a verified event of a type the service applies was nonetheless only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Of the Stripe mode (live or test) this deployment does not keep (`STRIPE_MODE`).
    OtherMode,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::OtherMode => "other_mode",
        }
    }
}

/// Why the database refused an event, by the class of its SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// Class 22: a value the column's type cannot hold.
    InvalidData,
    /// Class 23: a constraint of the table (one an operator added, say) refuses the row.
    ConstraintViolation,
    /// Class 54: a value beyond a limit of the server (an index entry too large, …).
    LimitExceeded,
    /// A thin event's customer is unknown to the API key (Stripe's 404 `resource_missing`): a
    /// wrong key, account or mode rather than a deletion; re-appliable once the key is right.
    CustomerNotFound,
    /// A thin subscription event's subscription is unknown to the API key: as
    /// `CustomerNotFound`, never an end of the subscription.
    SubscriptionNotFound,
}

impl FailReason {
    pub fn from_sqlstate(code: &str) -> Self {
        match code.get(..2) {
            Some("23") => FailReason::ConstraintViolation,
            Some("54") => FailReason::LimitExceeded,
            _ => FailReason::InvalidData,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::InvalidData => "invalid_data",
            FailReason::ConstraintViolation => "constraint_violation",
            FailReason::LimitExceeded => "limit_exceeded",
            FailReason::CustomerNotFound => "customer_not_found",
            FailReason::SubscriptionNotFound => "subscription_not_found",
        }
    }
}

/// Why a verified customer event left the table as it was (docs/design.md's snake_case reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Ordered before the row's last applied event.
    StaleEvent,
    /// The customer is a tombstone; deleted is terminal.
    CustomerDeleted,
    /// No row yet and Stripe sent no email: the column is NOT NULL and never written empty.
    MissingEmail,
    /// The id does not match `^cus_[a-zA-Z0-9]+$`.
    InvalidCustomerId,
    /// The subscription has ended (deleted, canceled, incomplete_expired); ended is terminal.
    SubscriptionEnded,
    /// The subscription's id does not match `^sub_[a-zA-Z0-9]+$`, or it names no valid customer.
    InvalidSubscription,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::StaleEvent => "stale_event",
            SkipReason::CustomerDeleted => "customer_deleted",
            SkipReason::MissingEmail => "missing_email",
            SkipReason::InvalidCustomerId => "invalid_customer_id",
            SkipReason::SubscriptionEnded => "subscription_ended",
            SkipReason::InvalidSubscription => "invalid_subscription",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
