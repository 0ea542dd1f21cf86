//! Reading Stripe's REST API (`backfill`, `verify`, `catch-up`, thin events): a client that
//! honours Stripe's rate limits, the two customer endpoints and the events list.

pub mod client;
pub mod customer_creation;
pub mod customers;
pub mod events;

pub use client::{ApiError, RetryPolicy, StripeClient};
