-- Subscriptions, kept as customers are (docs/design.md "Tiers"): the last state of each Stripe
-- subscription that a `customer.subscription.*` event carried, under the customers' rules
-- (each event once, ordered by (created, type rank) with same-second ties, an ended
-- subscription stays ended, other modes ignored). The owner's tier is computed from these rows;
-- the rows and the ledger say why a tier changed.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table public.stripe_subscriptions (
    stripe_subscription_id text not null,
    -- The customer it bills; no foreign key: a subscription's event may arrive before its
    -- customer's, and a customer's tombstone does not end its subscriptions' history.
    stripe_customer_id text not null,
    -- Stripe's status as sent (incomplete, trialing, active, past_due, canceled, ...).
    status text not null,
    -- The items' prices, lookup keys (null where a price has none) and tiers (null where a
    -- price names no tier), index for index.
    price_ids text[] not null default '{}',
    lookup_keys text[] not null default '{}',
    tiers text[] not null default '{}',
    cancel_at_period_end boolean not null default false,
    current_period_end timestamptz,
    livemode boolean not null,
    -- The order of the last applied event, as the customers keep theirs: its id, its
    -- `created` (Unix seconds) and its type (the rank breaks ties within one second).
    last_event_id text not null,
    last_event_created bigint not null,
    last_event_type text not null,
    -- A `deleted` event, or a status canceled/incomplete_expired, was applied: terminal.
    ended boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),

    constraint stripe_subscriptions_pkey primary key (stripe_subscription_id),
    constraint stripe_subscriptions_id_format
        check (stripe_subscription_id ~ '^sub_[a-zA-Z0-9]+$')
);

-- An owner's tier reads all the subscriptions of its customer.
create index stripe_subscriptions_customer_idx
    on public.stripe_subscriptions (stripe_customer_id);

comment on table public.stripe_subscriptions is
    'Stripe subscriptions as their customer.subscription.* events left them (stripe-customer-sync).';

-- Private like the other tables, except that a user reads the subscriptions of the customers
-- they may read: their own, and (once stripe_customers_watch_organizations has installed the
-- members' part of that policy) their organizations'.
alter table public.stripe_subscriptions enable row level security;

revoke all on table public.stripe_subscriptions from anon, authenticated, service_role;
grant select on table public.stripe_subscriptions to authenticated;
grant select, insert, update, delete on table public.stripe_subscriptions to service_role;

-- The customers' own select policy (`(select auth.uid()) = user_id`, or an active membership
-- of the customer's organization) decides which customers the subquery sees, so this policy
-- follows it without naming the application's tables, which may not exist yet.
create policy stripe_subscriptions_select_own
    on public.stripe_subscriptions
    for select
    to authenticated
    using (exists (select 1 from public.stripe_customers c
                    where c.stripe_customer_id = stripe_subscriptions.stripe_customer_id
                      and (c.user_id = (select auth.uid()) or c.organization_id is not null)));

-- Documentation only (service_role has BYPASSRLS); keeps rls_enabled_no_policy quiet.
create policy stripe_subscriptions_service_role_all
    on public.stripe_subscriptions
    for all
    to service_role
    using (true)
    with check (true);
