//! All SQL lives here: the schema, the ledger, the customer rows. Nothing here decides a rule;
//! it reads the state the rules need and writes what they decided, atomically.

pub(crate) mod backup;
pub mod catch_up;
pub(crate) mod customer_creations;
pub mod customers;
mod error;
pub(crate) mod ledger;
pub mod ledger_retention;
pub(crate) mod organizations;
pub(crate) mod outbox;
pub mod pool;
pub(crate) mod recorded;
pub mod schema;
pub(crate) mod session;
pub(crate) mod subscriptions;

pub use error::StoreError;
