-- Reverts 20261126000001_lock_down_migration_bookkeeping as far as is safe: RLS goes off again.
-- The revoked privileges are NOT handed back: re-granting anon and authenticated access to the
-- bookkeeping would reopen the hole the up migration closed, and nothing needs them.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop policy _sqlx_migrations_service_role_select on _sqlx_migrations;
alter table _sqlx_migrations disable row level security;
