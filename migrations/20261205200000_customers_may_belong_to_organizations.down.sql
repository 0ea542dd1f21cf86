-- Back to users only: the members' read policy, the organization link and what watched the
-- organizations table go; organization customers' rows stay, unlinked from their organization.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter policy stripe_customers_select_own on public.stripe_customers
    using ((select auth.uid()) = user_id);

drop function public.stripe_customers_watch_organizations(text, text);

alter table public.stripe_customers
    drop constraint if exists stripe_customers_organization_id_fkey,
    drop constraint stripe_customers_one_owner,
    drop constraint stripe_customers_organization_id_key,
    drop column organization_id;

drop function public.stripe_customers_organization_exists(uuid);
