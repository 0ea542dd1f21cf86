-- The link between a Supabase user and their Stripe customer, kept in step with Stripe's webhooks
-- by stripe-customer-sync. Written for Supabase: assumes auth.users, auth.uid() and the roles
-- anon, authenticated and service_role (on plain PostgreSQL the service's shim provides them).
--
-- Constraint names are named explicitly: the service and its tests tell violations apart by them
-- (a redelivered event by the ledger's primary key, a concurrent writer by these).

-- Fail fast rather than queue every query of a live database behind this migration's locks
-- (squawk: require-lock-timeout, require-statement-timeout). `local`: only for sqlx's
-- transaction around this file. Adding these lines changed the file's checksum; the service
-- adopts the old one (store::schema::LEGACY_CHECKSUMS) so deployed databases upgrade cleanly.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table public.stripe_customers (
    id uuid not null default gen_random_uuid(),
    -- Null while the customer is not (or no longer) linked to a user: Stripe customers can exist
    -- before or without a Supabase account, and a deleted customer releases its user. Deleting
    -- the auth user deletes the link (the audit trail keeps the row).
    user_id uuid,
    stripe_customer_id text not null,
    customer_email text not null,
    customer_name text,
    default_payment_method text,
    -- {"stripe": <the customer's Stripe metadata>, "sync": <the service's bookkeeping>}
    customer_metadata jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),

    constraint stripe_customers_pkey primary key (id),
    -- One customer per user. The unique index also serves the user -> customer lookup and the
    -- foreign key's cascade, so no separate index on user_id (the seed design's duplicate).
    constraint stripe_customers_user_id_key unique (user_id),
    constraint stripe_customers_user_id_fkey
        foreign key (user_id) references auth.users (id) on delete cascade,
    -- Likewise the only index needed for lookups by Stripe id.
    constraint stripe_customers_stripe_customer_id_key unique (stripe_customer_id),
    constraint stripe_customers_stripe_customer_id_format
        check (stripe_customer_id ~ '^cus_[a-zA-Z0-9]+$'),
    -- Readers index into it ("stripe", "sync"); an array or scalar would make those paths null.
    constraint stripe_customers_customer_metadata_is_object
        check (jsonb_typeof(customer_metadata) = 'object')
);

comment on table public.stripe_customers is
    'Supabase user <-> Stripe customer, maintained from Stripe webhooks by stripe-customer-sync.';

-- Email lookup. A plain btree, not one on lower(customer_email): the service matches the email
-- exactly as Stripe stores it (Stripe keeps the case it was given), and a lower() index would not
-- serve `customer_email = $1` at all. Case-insensitive search from SQL is rare, ad hoc, and can
-- add its own expression index where it matters. Not unique: Stripe allows several customers
-- with one email.
create index stripe_customers_customer_email_idx
    on public.stripe_customers (customer_email);

-- updated_at follows every update, whoever makes it (the service, SQL, the dashboard).
-- now() is the transaction's time, as for the column defaults, so one transaction stamps
-- consistently. The empty search_path pins name resolution (linter: function_search_path_mutable);
-- nothing here needs a schema.
create function public.stripe_customers_set_updated_at()
    returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end;
$$;

create trigger stripe_customers_set_updated_at
    before update on public.stripe_customers
    for each row
    execute function public.stripe_customers_set_updated_at();

-- Row level security. Supabase grants anon and authenticated everything on new public tables,
-- so RLS plus the revokes below are what keep this table private.
alter table public.stripe_customers enable row level security;

-- Users read their own link through the API and change nothing; anon gets nothing at all
-- (a permission error rather than an empty result, which also keeps the table out of anon's
-- GraphQL schema; authenticated does see it there, which is the price of reading one's own
-- row through the API). Only the backend, as service_role, writes, and with plain DML only:
-- TRUNCATE fires no row triggers, so it would empty the table without an audit trace.
revoke all on table public.stripe_customers from anon, authenticated, service_role;
grant select on table public.stripe_customers to authenticated;
grant select, insert, update, delete on table public.stripe_customers to service_role;

-- One policy per role and action, none overlapping (linter: multiple_permissive_policies).
-- `(select auth.uid())` is evaluated once per query instead of once per row
-- (linter: auth_rls_initplan); a user without a link, or a request without a subject, sees no row.
create policy stripe_customers_select_own
    on public.stripe_customers
    for select
    to authenticated
    using ((select auth.uid()) = user_id);

-- Documentation only: service_role has BYPASSRLS. It states who writes, and keeps the linter's
-- rls_enabled_no_policy quiet should the user policy ever go away.
create policy stripe_customers_service_role_all
    on public.stripe_customers
    for all
    to service_role
    using (true)
    with check (true);
