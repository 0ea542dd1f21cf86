//! All SQL lives here: the schema, the ledger, the customer rows. Nothing here decides a rule;
//! it reads the state the rules need and writes what they decided, atomically.

pub mod backup;
pub mod catch_up;
pub mod customer_creations;
pub mod customers;
pub mod error;
pub mod ledger;
pub mod outbox;
pub mod pool;
pub mod recorded;
pub mod schema;
pub mod session;

pub use error::StoreError;
