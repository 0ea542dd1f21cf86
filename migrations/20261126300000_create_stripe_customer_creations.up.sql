-- `POST /customers` and `ensure-customer` create a user's Stripe customer exactly once. Each
-- creation is an ATTEMPT with its own Stripe idempotency key (`<user_id>:<attempt>`), recorded
-- here and committed BEFORE Stripe is called, so that a crash between Stripe's answer and the
-- customer row's write leaves a trace: the next request finds an attempt started and not
-- finished, looks the customer up in Stripe (metadata user id) and, within Stripe's 24 h key
-- window, sends the same key again (Stripe replays its first answer). A new attempt, with a new
-- key, starts only when the last one finished (its customer was linked, and later deleted) or
-- when its key expired and the look-up found nothing. One row per user.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table public.stripe_customer_creations (
    user_id uuid not null,
    -- The attempt in progress or last made; the idempotency key's second half.
    attempt bigint not null,
    -- When this attempt's key was first sent (or about to be): Stripe keeps a key >= 24 h.
    started_at timestamptz not null default now(),
    -- What the attempt sends. A key sent again must carry the same parameters (Stripe refuses
    -- it otherwise), even if the user's email or name changed since the first try.
    email text not null,
    name text,
    -- Set, with the customer's id, in the transaction that wrote the linked customer row.
    finished_at timestamptz,
    stripe_customer_id text,

    constraint stripe_customer_creations_pkey primary key (user_id),
    -- A deleted user has nothing left to create.
    constraint stripe_customer_creations_user_id_fkey
        foreign key (user_id) references auth.users (id) on delete cascade,
    constraint stripe_customer_creations_attempt_positive check (attempt > 0),
    constraint stripe_customer_creations_finished_with_customer
        check ((finished_at is null) = (stripe_customer_id is null)),
    constraint stripe_customer_creations_customer_id_format
        check (stripe_customer_id ~ '^cus_[a-zA-Z0-9]+$')
);

comment on table public.stripe_customer_creations is
    'stripe-customer-sync: one row per user whose Stripe customer the service created (or is creating): the attempt behind the Stripe idempotency key, and whether it finished. Private to the backend.';
comment on column public.stripe_customer_creations.attempt is
    'The Stripe idempotency key of the creation is <user_id>:<attempt>.';
comment on column public.stripe_customer_creations.started_at is
    'When the attempt started; its key is replayed by Stripe for at least 24 hours after.';
comment on column public.stripe_customer_creations.email is
    'The email (and name) this attempt sends to Stripe, the same on every retry of its key.';
comment on column public.stripe_customer_creations.finished_at is
    'Null while the attempt is in flight, or was interrupted (a crash between Stripe and the row).';

-- Private to the backend, like the ledger. Supabase granted the API roles everything on this
-- new table; take it back and leave the backend what it uses.
alter table public.stripe_customer_creations enable row level security;

revoke all on table public.stripe_customer_creations from anon, authenticated, service_role;
grant select, insert, update on table public.stripe_customer_creations to service_role;

-- Documentation only (service_role has BYPASSRLS); keeps the linter's rls_enabled_no_policy
-- quiet. No policy for anon or authenticated: with RLS on and no grants they read nothing.
create policy stripe_customer_creations_service_role_all
    on public.stripe_customer_creations
    for all
    to service_role
    using (true)
    with check (true);
