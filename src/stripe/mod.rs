//! Everything that knows Stripe's wire formats: the signature header, the snapshot event
//! envelope and the thin event envelope.

pub mod event;
#[cfg(test)]
mod properties;
pub(crate) mod sanitize;
pub mod signature;
pub(crate) mod thin_event;
