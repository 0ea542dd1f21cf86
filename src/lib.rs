//! stripe-customer-sync: keeps `public.stripe_customers` in step with Stripe.
//!
//! A request travels one way through the crate:
//! `http` (request in) → `stripe::signature` (verified) → `stripe::event` (decoded)
//! → `sync` (rule applied) → `store` (rows written) → `http` (response out).

// Crate-private by default: an item is `pub` only where the binary, the tests or the benches use
// it. CI's clippy run denies warnings, so this holds.
#![warn(unreachable_pub)]

pub(crate) mod auth;
pub(crate) mod backup;
pub(crate) mod catch_up;
pub mod cli;
pub(crate) mod commands;
pub mod configuration;
pub mod domain;
pub(crate) mod ensure_customer;
pub(crate) mod http;
pub mod ledger_retention;
pub mod local_db;
pub(crate) mod metrics;
pub(crate) mod profile_push;
pub(crate) mod progress;
#[cfg(test)]
mod properties;
pub(crate) mod report;
pub mod startup;
pub mod store;
pub mod stripe;
pub(crate) mod stripe_api;
pub mod sync;
pub mod telemetry;
pub mod tls;
