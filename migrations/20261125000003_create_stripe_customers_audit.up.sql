-- The audit trail of public.stripe_customers: every insert, update and delete, by the service,
-- by hand in SQL, or by the cascade from auth.users, leaves one row, written by a trigger so that
-- nothing can change the table without a trace.

-- Fail fast rather than queue every query of a live database behind this migration's locks
-- (squawk: require-lock-timeout, require-statement-timeout). `local`: only for sqlx's
-- transaction around this file. Adding these lines changed the file's checksum; the service
-- adopts the old one (store::schema::LEGACY_CHECKSUMS) so deployed databases upgrade cleanly.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table public.stripe_customers_audit (
    id bigint generated always as identity,
    stripe_customer_id text not null,
    operation text not null,
    -- The row before and after the change; null where the operation has no such side.
    old_row jsonb,
    new_row jsonb,
    -- The Stripe event that caused the change, when the writer declared one for its transaction
    -- with set_config('stripe_customer_sync.event_id', <id>, true); null for other writers.
    event_id text,
    -- The role the change was made as (see the trigger function for how it is found).
    changed_by text not null default current_user,
    changed_at timestamptz not null default now(),

    constraint stripe_customers_audit_pkey primary key (id),
    constraint stripe_customers_audit_operation_valid
        check (operation in ('INSERT', 'UPDATE', 'DELETE'))
);

comment on table public.stripe_customers_audit is
    'Every change to public.stripe_customers, written by a trigger; append-only.';

-- "What happened to this customer", in order.
create index stripe_customers_audit_stripe_customer_id_changed_at_idx
    on public.stripe_customers_audit (stripe_customer_id, changed_at);

-- SECURITY DEFINER, because the trigger must never fail the change it records, whoever makes it.
-- When Supabase Auth deletes a user it connects as supabase_auth_admin; the ON DELETE CASCADE
-- removes the customer row as the table owner, but the AFTER trigger fires afterwards as
-- supabase_auth_admin, which has no rights on this audit table. As SECURITY INVOKER the insert
-- would fail with "permission denied" and take the user deletion down with it. Running as the
-- owner (the migration role, which owns the audit table and so is not subject to its RLS) the
-- insert always succeeds.
--
-- Consequently current_user is the owner in here. The acting role is the `role` setting, which
-- SET ROLE changes and SECURITY DEFINER does not (PostgREST's `set local role service_role`,
-- a test's `set role supabase_auth_admin`); without a SET ROLE it is 'none' and the acting role
-- is the session user (the service's own login, or supabase_auth_admin itself).
--
-- The empty search_path and fully qualified names keep a SECURITY DEFINER function from being
-- steered by objects a caller puts on its search path (linter: function_search_path_mutable).
create function public.stripe_customers_audit_row()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    insert into public.stripe_customers_audit
        (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
    values (
        case when tg_op = 'DELETE' then old.stripe_customer_id else new.stripe_customer_id end,
        tg_op,
        case when tg_op in ('UPDATE', 'DELETE') then pg_catalog.to_jsonb(old) end,
        case when tg_op in ('INSERT', 'UPDATE') then pg_catalog.to_jsonb(new) end,
        -- Reads '' rather than null once a transaction-local value has been set and ended
        -- earlier in the same session (pooled connections).
        nullif(pg_catalog.current_setting('stripe_customer_sync.event_id', true), ''),
        coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user)
    );
    return null; -- AFTER trigger: the result is ignored
end;
$$;

-- A trigger function cannot be called directly, but the linter cannot tell
-- (anon/authenticated_security_definer_function_executable), and Supabase's default privileges
-- granted EXECUTE to the API roles. Triggers fire without EXECUTE, so nobody needs it.
revoke execute on function public.stripe_customers_audit_row()
    from public, anon, authenticated, service_role;

-- AFTER, so the recorded new row is the stored one (updated_at already set) and a change that
-- fails a constraint leaves no trace. Fires for cascaded deletes like any other delete.
create trigger stripe_customers_audit
    after insert or update or delete on public.stripe_customers
    for each row
    execute function public.stripe_customers_audit_row();

-- Nothing but the trigger writes here. Supabase granted anon and authenticated everything on
-- the new table and its identity sequence: revoke it all. service_role may read the trail but
-- not insert, change or delete entries: the trigger writes as the owner, so an append-only
-- trail costs the backend nothing.
alter table public.stripe_customers_audit enable row level security;

revoke all on table public.stripe_customers_audit from anon, authenticated, service_role;
revoke all on sequence public.stripe_customers_audit_id_seq from anon, authenticated, service_role;
grant select on table public.stripe_customers_audit to service_role;

-- Documentation only (service_role has BYPASSRLS); also keeps the linter's rls_enabled_no_policy
-- quiet. No policy for anon or authenticated: with RLS on and no grants they read nothing.
create policy stripe_customers_audit_service_role_select
    on public.stripe_customers_audit
    for select
    to service_role
    using (true);
