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
    /// The database is unreachable, timed out or failed otherwise. Nothing was written
    /// (every write is one statement), so the sender may retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
}

/// The ledger's primary key: a violation means the event was recorded already.
const LEDGER_PKEY: &str = "stripe_webhook_events_pkey";

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let Some(db) = error.as_database_error() else {
            return Self::Unavailable(error);
        };
        match (db.code().as_deref(), db.constraint()) {
            (Some("23505"), Some(LEDGER_PKEY)) => Self::Duplicate,
            // A unique or foreign key race on the customer row or its user, a serialization
            // failure or a deadlock: the next attempt reads the new state.
            (Some("23505" | "23503" | "40001" | "40P01"), _) => Self::Conflict,
            _ => Self::Unavailable(error),
        }
    }
}
