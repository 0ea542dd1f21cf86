//! Thin HTTP handlers: read the request, call into `stripe` and `sync`, shape the response.

mod body;
pub(crate) mod connections;
pub mod customer_errors;
pub mod customers;
pub mod error;
pub mod health;
pub mod organization_customer;
mod state;
pub mod webhook;

pub(crate) use state::AppState;
