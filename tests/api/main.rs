//! Integration tests: one binary (one link, one throwaway PostgreSQL cluster per run),
//! one module per rule family.

mod backfill;
mod backup;
mod catch_up;
mod concurrency_guards;
mod customer_tokens;
mod customers_endpoint;
mod database_outage;
mod database_roles;
mod fixtures_replay;
mod group_commit;
mod helpers;
mod jwks_outages;
mod migrate_command;
mod modes;
mod operability;
mod poison_events;
mod poolers;
mod profile_push;
mod query_plans;
mod row_ids;
mod row_storage;
mod schema_constraints;
mod schema_migrations;
mod schema_outbox;
mod schema_privileges;
mod schema_rls;
mod serve_binary;
mod smoke;
mod sync_deletion;
mod sync_linking;
mod sync_rules;
mod thin_events;
mod token_claims;
mod verify;
mod webhook_http;
