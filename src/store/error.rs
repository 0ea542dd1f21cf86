/// How a write can fail, in the terms the sync needs to react to.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ledger already holds this event id: another delivery (maybe on another replica)
    /// recorded it first. Nothing was written.
    #[error("event already recorded")]
    Duplicate,
    /// The state a decision rested on changed before the write (a concurrent event for the same
    /// customer, or a race for the same user). Nothing was written; decide again.
    #[error("customer row changed concurrently")]
    Conflict,
    /// The database refused the data itself (SQLSTATE class 22 data exception, 23 integrity
    /// violation other than the races above, 54 program limit exceeded): the same write fails
    /// however often it is retried. Nothing was written.
    #[error("database rejected the data ({code}): {message}")]
    Rejected { code: String, message: String },
    /// The database is unreachable, timed out, refused for a reason an operator or time can
    /// fix (permissions, read-only, shutting down), or failed otherwise. Nothing was written
    /// (every write is one statement), so the sender may retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
}

/// The ledger's primary key: a violation means the event was recorded already.
const LEDGER_PKEY: &str = "stripe_webhook_events_pkey";

/// Constraints a concurrent writer can make a write violate; the next attempt reads the new
/// state. Any other integrity violation is the data's own and will not go away.
const RACE_CONSTRAINTS: [&str; 5] = [
    "stripe_customers_stripe_customer_id_key",
    "stripe_customers_user_id_key",
    "stripe_customers_user_id_fkey",
    "stripe_customers_organization_id_key",
    "stripe_customers_organization_id_fkey",
];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let Some(db) = error.as_database_error() else {
            return Self::Unavailable(error);
        };
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let constraint = db.constraint();
        match (code.as_str(), constraint) {
            ("23505", Some(LEDGER_PKEY)) => Self::Duplicate,
            ("23505" | "23503", Some(name)) if RACE_CONSTRAINTS.contains(&name) => Self::Conflict,
            // A serialization failure or a deadlock: the next attempt reads the new state.
            ("40001" | "40P01", _) => Self::Conflict,
            (code, _) if is_permanent(code) => Self::Rejected {
                message: db.message().to_owned(),
                code: code.to_owned(),
            },
            _ => Self::Unavailable(error),
        }
    }
}

/// SQLSTATE classes that describe the data rather than the database's condition.
fn is_permanent(code: &str) -> bool {
    matches!(code.get(..2), Some("22" | "23" | "54"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_classes_are_permanent_and_everything_else_is_transient() {
        for permanent in ["22P05", "22021", "23514", "23502", "54000"] {
            assert!(is_permanent(permanent), "{permanent}");
        }
        for transient in [
            "08006", "57014", "57P01", "53300", "25006", "42501", "XX000", "",
        ] {
            assert!(!is_permanent(transient), "{transient}");
        }
    }
}
