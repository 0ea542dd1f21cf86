//! Stripe's REST API: reading customers and events (`backfill`, `verify`, `catch-up`, thin
//! events) with a client that honours Stripe's rate limits, and updating a customer (the
//! profile push).

pub mod client;
pub mod customer_creation;
pub mod customers;
pub mod events;
mod list;

pub use client::{ApiError, Posted, RetryPolicy, StripeClient};
