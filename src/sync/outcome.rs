//! What became of an event: the `status` (and `reason`) the webhook answers with and the
//! ledger records.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A row was written.
    Processed,
    /// The event id was already recorded; nothing changed.
    Duplicate,
    /// Verified, of a type the service does not apply; recorded.
    Ignored,
    /// A customer event that cannot change the table; recorded with its reason.
    Skipped(SkipReason),
}

impl Outcome {
    pub fn status(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Skipped(_) => "skipped",
        }
    }

    pub fn reason(self) -> Option<SkipReason> {
        match self {
            Outcome::Skipped(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Why a verified customer event left the table as it was (DESIGN.md's snake_case reasons).
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
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::StaleEvent => "stale_event",
            SkipReason::CustomerDeleted => "customer_deleted",
            SkipReason::MissingEmail => "missing_email",
            SkipReason::InvalidCustomerId => "invalid_customer_id",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stored row has no `user_id` (`customer_metadata.sync.error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkReason {
    MissingUserId,
    InvalidUserId,
    UnknownUser,
    UserAlreadyLinked,
}

impl UnlinkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnlinkReason::MissingUserId => "missing_user_id",
            UnlinkReason::InvalidUserId => "invalid_user_id",
            UnlinkReason::UnknownUser => "unknown_user",
            UnlinkReason::UserAlreadyLinked => "user_already_linked",
        }
    }
}
