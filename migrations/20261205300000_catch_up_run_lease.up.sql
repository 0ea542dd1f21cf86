-- One catch-up run at a time across replicas and the command line, without a transaction held
-- while Stripe answers: a lease row (who runs, until when) replaces the transaction-scoped
-- advisory lock that a run held, on a connection of its own, for its whole length, its calls
-- to Stripe's Events API included. A run takes the lease when it is free or has run out,
-- renews it as it goes, and gives it back at its end; a run whose process died leaves a lease
-- that runs out, and the next run takes it.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table public.stripe_catch_up_lease (
    -- One row at most: there is one lease.
    singleton boolean not null default true,
    -- The run that holds it (a random id per run).
    holder text not null,
    held_until timestamptz not null,

    constraint stripe_catch_up_lease_pkey primary key (singleton),
    constraint stripe_catch_up_lease_singleton check (singleton)
);

comment on table public.stripe_catch_up_lease is
    'Which stripe-customer-sync catch-up run may run now, and until when.';

-- Private to the backend, like the runs table.
alter table public.stripe_catch_up_lease enable row level security;

revoke all on table public.stripe_catch_up_lease from anon, authenticated, service_role;
grant select, insert, update, delete on table public.stripe_catch_up_lease to service_role;

-- Documentation only (service_role has BYPASSRLS); keeps the linter's rls_enabled_no_policy
-- quiet. No policy for anon or authenticated: with RLS on and no grants they read nothing.
create policy stripe_catch_up_lease_service_role_all
    on public.stripe_catch_up_lease
    for all
    to service_role
    using (true)
    with check (true);
