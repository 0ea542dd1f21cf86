-- sqlx records applied migrations in _sqlx_migrations, a table it creates itself (in the first
-- schema of the migrating role's search_path: public on Supabase) before the first migration
-- runs. Supabase's default privileges give anon and authenticated everything on new tables in
-- public, and RLS is off on it, so anyone holding the public anon key could, through the REST
-- API, mark a migration failed (every replica's /readyz turns 503) or delete a row (the next
-- start fails on "relation already exists"). Only the migrating role, which owns the table,
-- writes it; the backend (service_role, and the least-privilege login of README, a member of
-- it) reads it for /readyz.
--
-- The name is left unqualified on purpose: it resolves exactly as it did when sqlx created it.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table _sqlx_migrations enable row level security;

revoke all on table _sqlx_migrations from anon, authenticated, service_role;
grant select on table _sqlx_migrations to service_role;

-- For members of service_role that do not bypass RLS themselves; the owner is not subject to it.
create policy _sqlx_migrations_service_role_select
    on _sqlx_migrations
    for select
    to service_role
    using (true);
