//! Stripe's REST API: reading customers and events (`backfill`, `verify`, `catch-up`, thin
//! events) with a client that honours Stripe's rate limits, and updating a customer (the
//! profile push).

mod answer;
mod client;
pub mod customer_creation;
pub mod customers;
mod error_fields;
pub mod events;
mod list;
pub mod preflight;
mod retry;

pub use answer::{Answer, ApiError, Posted};
pub use client::StripeClient;
pub use error_fields::ErrorFields;
pub use retry::RetryPolicy;
