-- Profile changes waiting for Stripe (DESIGN.md "Profile changes reach Stripe"). When a linked
-- user's email changes in auth.users, or their row in public.profiles changes, a trigger queues
-- the user here; `serve` (with STRIPE_API_KEY) pushes the latest email and name to the user's
-- Stripe customer (POST /v1/customers/{id}) and marks the row done.
--
-- One row per user: quick edits coalesce into one push of the latest values, read at push time.
-- The row stays a few minutes after its push, remembering what was pushed, so that an edit made
-- before Stripe's customer.updated has come back is compared with what Stripe now holds rather
-- than with the table's older value; the worker deletes it afterwards.

-- Fail fast rather than queue the app's sign-ins and profile edits behind this migration's
-- locks (creating a trigger locks its table). `local`: only for sqlx's transaction.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Each change gets a number that no other change of any user ever had (until a rollback drops
-- the sequence): the worker's compare-and-set token, and part of the push's idempotency key, so
-- a key is never reused for different values.
create sequence public.stripe_customer_outbox_version_seq as bigint;

create table public.stripe_customer_outbox (
    -- The user whose Stripe customer must follow; a deleted user needs no push.
    user_id uuid not null,
    -- The latest change (see the sequence above).
    version bigint not null default nextval('public.stripe_customer_outbox_version_seq'),
    -- When the oldest change not yet pushed was queued (the age the metrics report), and the
    -- latest change.
    queued_at timestamptz not null default now(),
    changed_at timestamptz not null default now(),
    -- When the worker may try next; null once the latest change has been pushed (or needed no
    -- push). A change makes it now(); a failure moves it out by the back-off.
    next_attempt_at timestamptz default now(),
    -- Failed attempts at the current change, and the last failure (Stripe's answer, never a key).
    attempts bigint not null default 0,
    last_error text,
    -- The lease of the worker pushing the row (one process, by a random id), committed before
    -- the push so that the app's writes never wait for Stripe; another worker takes the row
    -- only once the lease has run out (a process killed mid-push).
    claimed_by text,
    claimed_until timestamptz,
    -- What the last successful push left in Stripe, and when.
    pushed_version bigint,
    pushed_email text,
    pushed_name text,
    pushed_at timestamptz,

    constraint stripe_customer_outbox_pkey primary key (user_id),
    constraint stripe_customer_outbox_user_id_fkey
        foreign key (user_id) references auth.users (id) on delete cascade,
    constraint stripe_customer_outbox_attempts_valid check (attempts >= 0)
);

-- Dropped with the table.
alter sequence public.stripe_customer_outbox_version_seq
    owned by public.stripe_customer_outbox.version;

comment on table public.stripe_customer_outbox is
    'Users whose email or name changed and must be pushed to their Stripe customer by stripe-customer-sync.';

-- The worker's claim and its wake-up read the rows that have something to push, soonest first.
create index stripe_customer_outbox_next_attempt_at_idx
    on public.stripe_customer_outbox (next_attempt_at)
    where next_attempt_at is not null;

-- Private to the backend: Supabase granted the API roles everything on the new table and
-- sequence; take it back. The backend (service_role, and a login that is a member of it, see
-- README "A login of its own") claims, finishes and deletes rows; only the triggers (as the
-- owner) insert.
alter table public.stripe_customer_outbox enable row level security;

revoke all on table public.stripe_customer_outbox from anon, authenticated, service_role;
revoke all on sequence public.stripe_customer_outbox_version_seq from anon, authenticated, service_role;
grant select, update, delete on table public.stripe_customer_outbox to service_role;

-- For members of service_role that do not bypass RLS themselves (service_role itself does).
-- No policy for anon or authenticated: with RLS on and no grants they read nothing.
create policy stripe_customer_outbox_service_role_all
    on public.stripe_customer_outbox
    for all
    to service_role
    using (true)
    with check (true);

-- Queues one user, if they have a live linked customer (the unique index on
-- stripe_customers.user_id makes that one lookup; unlinked and deleted rows hold no user_id),
-- and wakes the workers: pg_notify is delivered at commit, and not at all on rollback.
--
-- SECURITY DEFINER, like the audit trigger: Supabase Auth changes auth.users as
-- supabase_auth_admin, which has no rights on public tables, and the app edits profiles as
-- `authenticated`; a trigger that failed for them would fail the sign-in or the edit. As the
-- owner the insert always succeeds. The empty search_path and qualified names keep callers'
-- objects out (linter: function_search_path_mutable).
create function public.stripe_customer_outbox_enqueue(target_user uuid)
    returns void
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    if not exists (select 1 from public.stripe_customers c where c.user_id = target_user) then
        return;
    end if;
    insert into public.stripe_customer_outbox as o (user_id)
    values (target_user)
    on conflict (user_id) do update
        set version = pg_catalog.nextval('public.stripe_customer_outbox_version_seq'),
            changed_at = pg_catalog.now(),
            -- a change after a completed push starts a new wait
            queued_at = case when o.next_attempt_at is null then pg_catalog.now()
                             else o.queued_at end,
            next_attempt_at = pg_catalog.now(),
            attempts = 0,
            last_error = null;
    perform pg_catalog.pg_notify('stripe_customer_outbox', '');
end;
$$;

-- auth.users: only an email that really changed (the WHEN clause below) queues the user.
create function public.stripe_customer_outbox_user_changed()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    perform public.stripe_customer_outbox_enqueue(new.id);
    return null; -- AFTER trigger: the result is ignored
exception when others then
    -- Never fail the user's change for the sake of the push (a sign-in or an email
    -- confirmation matters more); say so in the server log. `others` does not catch a
    -- cancelled statement, which still ends the transaction as it should.
    raise warning 'stripe_customer_outbox: user % not queued: % (%)', new.id, sqlerrm, sqlstate;
    return null;
end;
$$;

-- public.profiles: any update queues the user. The name column is a runtime setting
-- (PROFILE_NAME_COLUMN), so the trigger cannot know which column matters; the worker reads the
-- latest name at push time and pushes nothing when it did not change. `id` is the user id
-- (Supabase's convention; checked when the trigger is attached).
create function public.stripe_customer_outbox_profile_changed()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    perform public.stripe_customer_outbox_enqueue(new.id);
    return null;
exception when others then
    raise warning 'stripe_customer_outbox: user % not queued: % (%)', new.id, sqlerrm, sqlstate;
    return null;
end;
$$;

-- Attaches the profiles trigger when public.profiles exists with a uuid `id`; returns whether
-- it is attached. Idempotent. Called here, by every `stripe-customer-sync migrate` (and serve's
-- start-up migration), so a profiles table created later is picked up on the next one; or by
-- hand: `select public.stripe_customer_outbox_watch_profiles();`. SECURITY INVOKER: whoever
-- calls it must be allowed to create the trigger.
create function public.stripe_customer_outbox_watch_profiles()
    returns boolean
    language plpgsql
    set search_path = ''
as $$
declare
    profiles regclass := pg_catalog.to_regclass('public.profiles');
begin
    -- Replicas starting together each call this after migrating: one at a time, and each
    -- query below then sees (VOLATILE: a fresh snapshot per query) what the one before did,
    -- so the second finds the trigger instead of failing to create it again.
    perform pg_catalog.pg_advisory_xact_lock(1935897444,
        pg_catalog.hashtext('stripe_customer_outbox_watch_profiles'));
    profiles := pg_catalog.to_regclass('public.profiles');
    if profiles is null then
        return false;
    end if;
    if not exists (select 1 from pg_catalog.pg_attribute a
                    where a.attrelid = profiles and a.attname = 'id' and not a.attisdropped
                      and a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype) then
        raise warning 'public.profiles has no uuid column "id": profile changes are not pushed to Stripe';
        return false;
    end if;
    if not exists (select 1 from pg_catalog.pg_trigger t
                    where t.tgrelid = profiles
                      and t.tgname = 'stripe_customer_outbox_profile_changed') then
        create trigger stripe_customer_outbox_profile_changed
            after update on public.profiles
            for each row
            execute function public.stripe_customer_outbox_profile_changed();
    end if;
    return true;
end;
$$;

-- Nobody calls these through the API: triggers fire without EXECUTE, and watching profiles is
-- the migrating role's business (the linter flags SECURITY DEFINER functions the API roles can
-- execute). Supabase's default privileges and PUBLIC's default granted EXECUTE: revoke both.
revoke execute on function public.stripe_customer_outbox_enqueue(uuid)
    from public, anon, authenticated, service_role;
revoke execute on function public.stripe_customer_outbox_user_changed()
    from public, anon, authenticated, service_role;
revoke execute on function public.stripe_customer_outbox_profile_changed()
    from public, anon, authenticated, service_role;
revoke execute on function public.stripe_customer_outbox_watch_profiles()
    from public, anon, authenticated, service_role;

create trigger stripe_customer_outbox_email_changed
    after update of email on auth.users
    for each row
    when (new.email is distinct from old.email)
    execute function public.stripe_customer_outbox_user_changed();

select public.stripe_customer_outbox_watch_profiles();
