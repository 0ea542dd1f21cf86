//! Thin HTTP handlers: read the request, call into `stripe` and `sync`, shape the response.
//! Every error answer is an [`error::ApiError`], whose body is written in one place.

pub(crate) mod authenticated;
mod body;
pub(crate) mod connections;
pub(crate) mod customers;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod organization_customer;
mod state;
pub(crate) mod webhook;

pub(crate) use state::AppState;
