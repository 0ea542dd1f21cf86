//! Reading customers from Stripe's REST API (`backfill`, `verify`): a client that honours
//! Stripe's rate limits, and the two customer endpoints the commands use.

pub mod client;
pub mod customers;

pub use client::{ApiError, RetryPolicy, StripeClient};
