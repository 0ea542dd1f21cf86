-- An organization's billing email and name reach its Stripe customer as a user's email and name
-- do (docs/design.md "Organizations", "Profile changes reach Stripe"): the outbox queues an
-- organization as it queues a user, keyed by organization_id, and the same worker pushes it.
--
-- The primary key moves from user_id to a surrogate id (user_id becomes nullable and stays
-- unique, so the users' trigger's `on conflict (user_id)` works as before); organization_id is
-- unique likewise; a row is one owner's. The trigger on the organizations table is attached by
-- stripe_customer_outbox_watch_organizations(), called where that table exists (by `migrate`
-- and serve's start-up, with the customers' link), as the profiles trigger is.
--
-- The outbox holds only changes waiting and recent pushes: small, so the new column's default
-- and the indexes are written under the lock in moments.
-- squawk-ignore-file ban-drop-constraint, constraint-missing-not-valid, disallowed-unique-constraint, adding-field-with-default, ban-drop-not-null, adding-serial-primary-key-field

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customer_outbox
    drop constraint stripe_customer_outbox_pkey,
    add column id uuid not null default gen_random_uuid(),
    add column organization_id uuid,
    alter column user_id drop not null,
    add constraint stripe_customer_outbox_pkey primary key (id),
    add constraint stripe_customer_outbox_user_id_key unique (user_id),
    add constraint stripe_customer_outbox_organization_id_key unique (organization_id),
    add constraint stripe_customer_outbox_one_owner
        check (num_nonnulls(user_id, organization_id) = 1);

comment on column public.stripe_customer_outbox.organization_id is
    'The organization whose billing email or name changed; null for a user''s row.';

-- Queues one organization, if it has a live linked customer, and wakes the workers; as
-- stripe_customer_outbox_enqueue does for a user (SECURITY DEFINER for the same reason: the app
-- edits its organizations as `authenticated`).
create function public.stripe_customer_outbox_enqueue_organization(target uuid)
    returns void
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    if not exists (select 1 from public.stripe_customers c where c.organization_id = target) then
        return;
    end if;
    insert into public.stripe_customer_outbox as o (organization_id)
    values (target)
    on conflict (organization_id) do update
        set version = pg_catalog.nextval('public.stripe_customer_outbox_version_seq'),
            changed_at = pg_catalog.now(),
            queued_at = case when o.next_attempt_at is null then pg_catalog.now()
                             else o.queued_at end,
            next_attempt_at = pg_catalog.now();
    perform pg_catalog.pg_notify('stripe_customer_outbox', '');
end;
$$;

-- The organizations table: a change of billing_email or name queues the organization (the
-- trigger's WHEN clause). Never fails the app's own change.
create function public.stripe_customer_outbox_organization_changed()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    perform public.stripe_customer_outbox_enqueue_organization(new.id);
    return null;
exception when others then
    raise warning 'stripe_customer_outbox: organization % not queued: % (%)', new.id, sqlerrm, sqlstate;
    return null;
end;
$$;

-- Attaches that trigger to `organizations` when it exists with uuid `id`, `name` and
-- `billing_email`; returns whether it is attached. Idempotent. SECURITY INVOKER: the caller
-- must be allowed to create the trigger.
create function public.stripe_customer_outbox_watch_organizations(organizations text)
    returns boolean
    language plpgsql
    set search_path = ''
as $$
declare
    orgs regclass;
begin
    perform pg_catalog.pg_advisory_xact_lock(1935897444,
        pg_catalog.hashtext('stripe_customer_outbox_watch_organizations'));
    orgs := pg_catalog.to_regclass(organizations);
    if orgs is null then
        return false;
    end if;
    if (select count(*) from pg_catalog.pg_attribute a
         where a.attrelid = orgs and a.attname in ('id', 'name', 'billing_email')
           and a.attnum > 0 and not a.attisdropped) < 3 then
        raise warning '% lacks id, name or billing_email: organization changes are not pushed to Stripe', orgs;
        return false;
    end if;
    if not exists (select 1 from pg_catalog.pg_trigger t
                    where t.tgrelid = orgs
                      and t.tgname = 'stripe_customer_outbox_organization_changed') then
        execute pg_catalog.format(
            'create trigger stripe_customer_outbox_organization_changed
                 after update of billing_email, name on %s
                 for each row
                 when (new.billing_email is distinct from old.billing_email
                       or new.name is distinct from old.name)
                 execute function public.stripe_customer_outbox_organization_changed()', orgs);
    end if;
    return true;
end;
$$;

revoke execute on function public.stripe_customer_outbox_enqueue_organization(uuid)
    from public, anon, authenticated, service_role;
revoke execute on function public.stripe_customer_outbox_organization_changed()
    from public, anon, authenticated, service_role;
revoke execute on function public.stripe_customer_outbox_watch_organizations(text)
    from public, anon, authenticated, service_role;

select public.stripe_customer_outbox_watch_organizations('public.organizations');
