//! The order of the state a subscription's row holds: what the store reads back for the tier
//! rules (`sync::subscriptions::rules::decide`) to order an incoming event against.

/// The order of the state a subscription's row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredOrder {
    pub created: i64,
    pub event_type: String,
    pub ended: bool,
}
