//! The test harness: one throwaway PostgreSQL cluster per test run (or the server named by
//! `DATABASE_URL`), one fresh database per test, cloned from a template that already carries
//! the Supabase shim and our migrations.

#![allow(dead_code)] // each test module uses its own subset

mod app;
mod cluster;
pub mod commands;
mod database;
mod dedicated_cluster;
pub mod events;
pub mod organizations;
pub mod pgbouncer;
mod rows;
pub mod schema;
pub mod serve_process;
pub mod stripe_double;
pub mod subscriptions;
pub mod tokens;
mod webhooks;

pub use app::{
    TestApp, customers_env, post_customers, spawn_app, spawn_app_from_env, spawn_app_with,
    spawn_app_with_customers, spawn_app_with_customers_on, spawn_app_with_stripe, stripe_env,
};
pub use cluster::TestServer;
pub use database::{
    TestDatabase, as_user, count, create_auth_user, create_auth_user_with_id, create_auth_users,
    insert_customer_by_hand, migrated_database, readme_login_sql, shim_only_database,
};
pub use dedicated_cluster::DedicatedCluster;
pub use rows::{LinkState, TableCounts, link_states};
pub use webhooks::{TEST_SECRET, event_id_of, expected_answer, json_reply, now, stripe_signature};
