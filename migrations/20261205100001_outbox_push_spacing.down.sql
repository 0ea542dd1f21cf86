-- Reverts 20261205100001_outbox_push_spacing: the trigger resets the back-off on every edit
-- again, and the worker's spacing columns go.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function public.stripe_customer_outbox_enqueue(target_user uuid)
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

alter table public.stripe_customer_outbox
    drop column last_call_at,
    drop column failed_values,
    drop column backoff_until;
