-- Supabase compatibility shim for plain PostgreSQL.
--
-- Our migrations are written for Supabase and assume what every Supabase project has: the API
-- roles, the `auth` schema with `auth.users` and `auth.uid()`/`auth.role()`/`auth.jwt()`, and
-- Supabase's default privileges in `public`. This file recreates just enough of that on plain
-- PostgreSQL (tests, the local database of `serve`) that the migrations run unchanged and RLS
-- behaves as it does behind Supabase's API. It is never run on Supabase (the caller skips it when
-- `auth.users` exists).
--
-- Requirements: run by a superuser (BYPASSRLS can only be granted by one), and the migrations must
-- then be applied by the same role, because `alter default privileges` below only covers objects
-- that role creates (on Supabase the equivalent is declared `for role postgres`).
--
-- Idempotent: safe to run twice, and in a second database of the same cluster, where the roles
-- (cluster-wide) already exist while the schema and privileges (per database) do not.

-- The API roles. PostgREST switches to one of them per request with `set local role`. Supabase
-- creates them NOLOGIN NOINHERIT; `service_role` bypasses RLS, which is what makes it the backend
-- role. No membership is granted to the current user: the superuser running this can `set role`
-- to any role, and a grant would be one more difference from Supabase.
--
-- Each role is created in its own block that tolerates a concurrent creator: test harnesses may
-- shim several fresh databases at once, and roles live in a shared catalog, so the existence check
-- alone races (the loser sees unique_violation on pg_authid, or duplicate_object).
do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
        begin
            create role anon nologin noinherit;
        exception when duplicate_object or unique_violation then null;
        end;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
        begin
            create role authenticated nologin noinherit;
        exception when duplicate_object or unique_violation then null;
        end;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'service_role') then
        begin
            create role service_role nologin noinherit bypassrls;
        exception when duplicate_object or unique_violation then null;
        end;
    end if;
end
$$;

create schema if not exists auth;

-- A realistic subset of Supabase Auth's users table: the columns an application (or a test) is
-- likely to touch. Supabase's own table has no default on `id` (GoTrue generates it); the default
-- here saves tests from inventing ids. Emails are not unique: Supabase only enforces that for
-- non-SSO users, through a partial index we do not need.
create table if not exists auth.users (
    instance_id uuid,
    id uuid primary key default gen_random_uuid(),
    aud varchar(255),
    role varchar(255),
    email text,
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    phone text,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_anonymous boolean not null default false,
    last_sign_in_at timestamptz,
    banned_until timestamptz,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    deleted_at timestamptz
);

-- The request helpers, as Supabase Auth defines them today. PostgREST puts the verified JWT's
-- claims into `request.jwt.claims` (JSON) for each request; older versions set one
-- `request.jwt.claim.<name>` per claim, which is why both are read. `nullif(…, '')` because a
-- custom setting, once set in a session, reads back as '' rather than null after its
-- transaction ends. The pinned empty search_path matches Supabase (and its linter).
create or replace function auth.uid()
    returns uuid
    language sql
    stable
    set search_path = ''
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;

create or replace function auth.role()
    returns text
    language sql
    stable
    set search_path = ''
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;

create or replace function auth.email()
    returns text
    language sql
    stable
    set search_path = ''
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.email', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$$;

create or replace function auth.jwt()
    returns jsonb
    language sql
    stable
    set search_path = ''
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

-- Policies call these as the API role, so the roles need to reach them; like Supabase, they get
-- the schema and the functions, not `auth.users`.
grant usage on schema auth to anon, authenticated, service_role;
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
    to anon, authenticated, service_role;

-- Supabase's defaults in `public`: every new table, sequence and function is fully granted to
-- the API roles. This is deliberate here: it is the situation our migrations face on Supabase,
-- where RLS and explicit revokes are the only protection. A shim that left tables closed would
-- let a migration that forgot a revoke pass its tests and leak in production.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
