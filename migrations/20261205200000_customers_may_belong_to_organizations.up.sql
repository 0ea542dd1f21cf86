-- Organization billing (docs/design.md "Organizations"): a Stripe customer can belong to an
-- organization instead of a user. Linked by the customer's metadata `organization_id`,
-- validated against the organizations table (ORGANIZATIONS_TABLE, default
-- public.organizations), never by email.
--
-- The organizations table is the application's, and may not exist (most projects bill users
-- only) or be created later: what depends on it (the foreign key, the check that an
-- organization exists, the members' read policy) is installed by
-- public.stripe_customers_watch_organizations(), called by every `stripe-customer-sync migrate`
-- and serve's start-up, as the profiles trigger is. Until then the column stays null.
--
-- A new nullable column (no rewrite). Its unique index and its check each read the table once
-- under its lock (about a second per million rows; every value is null); CONCURRENTLY and
-- NOT VALID + VALIDATE cannot run inside sqlx's per-migration transaction.
-- squawk-ignore-file constraint-missing-not-valid, disallowed-unique-constraint

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customers
    -- Null unless the customer belongs to an organization. One customer per organization; the
    -- unique index also serves the organization -> customer lookup and the cascade.
    add column organization_id uuid,
    add constraint stripe_customers_organization_id_key unique (organization_id),
    -- A row belongs to a user or to an organization, never both.
    add constraint stripe_customers_one_owner
        check (user_id is null or organization_id is null);

comment on column public.stripe_customers.organization_id is
    'The organization this Stripe customer bills (its metadata organization_id); null for a user''s customer.';

-- Whether an organization exists: false until the organizations table is watched, then a
-- lookup in it (replaced by the function below). The sync rules' reads call it, so that their
-- statements never name a table that may not exist. SQL, STABLE: inlined into the reads.
create function public.stripe_customers_organization_exists(organization uuid)
    returns boolean
    language sql
    stable
    set search_path = ''
as $$
    select false
$$;

-- Installs what depends on the application's organizations: the foreign key (cascading, as
-- user_id's does), the existence check above, and the read policy that lets the active members
-- of an organization read its customer. Returns whether organizations are on. Idempotent.
-- `organizations` must have a uuid `id`; `memberships` `user_id`, `organization_id` (uuid) and
-- `status` ('active' members read). SECURITY INVOKER: the caller must be allowed to do all this.
create function public.stripe_customers_watch_organizations(organizations text, memberships text)
    returns boolean
    language plpgsql
    set search_path = ''
as $$
declare
    orgs regclass;
    members regclass;
begin
    -- Replicas starting together: one at a time (see stripe_customer_outbox_watch_profiles).
    perform pg_catalog.pg_advisory_xact_lock(1935897444,
        pg_catalog.hashtext('stripe_customers_watch_organizations'));
    orgs := pg_catalog.to_regclass(organizations);
    members := pg_catalog.to_regclass(memberships);
    if orgs is null or members is null then
        return false;
    end if;
    if not exists (select 1 from pg_catalog.pg_attribute a
                    where a.attrelid = orgs and a.attname = 'id' and not a.attisdropped
                      and a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype) then
        raise warning '% has no uuid column "id": organization billing is off', orgs;
        return false;
    end if;

    if not exists (select 1 from pg_catalog.pg_constraint k
                    where k.conrelid = 'public.stripe_customers'::pg_catalog.regclass
                      and k.conname = 'stripe_customers_organization_id_fkey') then
        execute pg_catalog.format(
            'alter table public.stripe_customers
                 add constraint stripe_customers_organization_id_fkey
                 foreign key (organization_id) references %s (id) on delete cascade', orgs);
    end if;

    execute pg_catalog.format(
        'create or replace function public.stripe_customers_organization_exists(organization uuid)
             returns boolean language sql stable set search_path = %L
         as %L', '',
        pg_catalog.format('select exists (select 1 from %s o where o.id = organization)', orgs));

    -- One select policy for authenticated (linter: multiple_permissive_policies): a user's own
    -- row, or the row of an organization they are an active member of. The memberships are
    -- read as the caller, so the app's own policy on them must let a user read their own
    -- memberships (the usual one). `(select auth.uid())`: evaluated once per query.
    execute pg_catalog.format(
        'alter policy stripe_customers_select_own on public.stripe_customers
             using ((select auth.uid()) = user_id
                    or organization_id in (select m.organization_id from %s m
                                            where m.user_id = (select auth.uid())
                                              and m.status = %L))', members, 'active');
    return true;
end;
$$;

-- The migrating role's business, like watching profiles; and nothing the API roles may call.
revoke execute on function public.stripe_customers_watch_organizations(text, text)
    from public, anon, authenticated, service_role;
-- The backend's reads call the lookup (service_role, and a login that is a member of it); the
-- API roles have no use for it. (CREATE OR REPLACE keeps these privileges.)
revoke execute on function public.stripe_customers_organization_exists(uuid)
    from public, anon, authenticated;
grant execute on function public.stripe_customers_organization_exists(uuid) to service_role;

select public.stripe_customers_watch_organizations('public.organizations',
                                                   'public.organization_memberships');
