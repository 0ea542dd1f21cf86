//! Stripe's REST API: reading customers and events (`backfill`, `verify`, `catch-up`, thin
//! events) with a client that honours Stripe's rate limits, and updating a customer (the
//! profile push).

mod answer;
mod client;
pub(crate) mod customer_creation;
pub(crate) mod customers;
mod error_fields;
pub(crate) mod events;
mod list;
pub(crate) mod preflight;
pub(crate) mod products;
mod retry;
pub(crate) mod subscriptions;

pub(crate) use answer::{Answer, ApiError, Posted};
pub(crate) use client::StripeClient;
pub(crate) use error_fields::ErrorFields;
pub(crate) use retry::RetryPolicy;
