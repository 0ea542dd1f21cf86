-- Back to users only: the organizations' trigger and queued organizations go, user_id is the
-- primary key again.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

do $$
declare
    t record;
begin
    for t in select tgrelid::regclass as rel from pg_catalog.pg_trigger
              where tgname = 'stripe_customer_outbox_organization_changed' loop
        execute format('drop trigger stripe_customer_outbox_organization_changed on %s', t.rel);
    end loop;
end;
$$;

drop function public.stripe_customer_outbox_watch_organizations(text);
drop function public.stripe_customer_outbox_organization_changed();
drop function public.stripe_customer_outbox_enqueue_organization(uuid);

delete from public.stripe_customer_outbox where user_id is null;

alter table public.stripe_customer_outbox
    drop constraint stripe_customer_outbox_one_owner,
    drop constraint stripe_customer_outbox_organization_id_key,
    drop constraint stripe_customer_outbox_user_id_key,
    drop constraint stripe_customer_outbox_pkey,
    drop column organization_id,
    drop column id,
    alter column user_id set not null,
    add constraint stripe_customer_outbox_pkey primary key (user_id);
