//! Everything that knows Stripe's wire formats: the signature header and the event envelope.

pub mod event;
pub mod sanitize;
pub mod signature;
