//! stripe-customer-sync: keeps `public.stripe_customers` in step with Stripe.
//!
//! A request travels one way through the crate:
//! `http` (request in) → `stripe::signature` (verified) → `stripe::event` (decoded)
//! → `sync` (rule applied) → `store` (rows written) → `http` (response out).

pub mod auth;
pub mod backfill;
pub mod backup;
pub mod catch_up;
pub mod cli;
pub mod configuration;
pub mod domain;
pub mod ensure_customer;
pub mod http;
pub mod local_db;
pub mod metrics;
pub mod profile_push;
pub mod progress;
pub mod reapply;
pub mod replay;
pub mod report;
mod run;
pub mod startup;
pub mod store;
pub mod stripe;
pub mod stripe_api;
pub mod sync;
pub mod telemetry;
pub mod thin_events;
pub mod tls;
pub mod verify;
