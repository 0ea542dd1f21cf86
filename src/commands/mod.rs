//! The batch commands, thin: each parses its options, runs, and prints a summary. Those that
//! change the table do so through the one apply loop ([`crate::sync::apply`]): `backfill` and
//! `verify --fix` as fetched states, `reapply-failed` as the events they were,
//! `ensure-customer` as a customer created for a user. (`catch-up`'s command lives with its
//! background worker in [`crate::catch_up`].)

pub mod backfill;
pub mod ensure_customer;
pub mod reapply;
pub mod replay;
pub mod verify;
