-- Reverts 20261205000001_ledger_and_audit_cost_what_they_must: payloads required again (an
-- ignored event without one gets a stub naming it), default compression, and the
-- audit trigger writing whole rows for every update. Audit rows written in the delta shape
-- stay as they are (public.stripe_customers_history, which reads them, goes with this file).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

update public.stripe_webhook_events
   set payload = pg_catalog.jsonb_build_object('id', id, 'object', 'event', 'type', type,
                                               'payload_not_stored', 'ignored')
 where payload is null;

alter table public.stripe_webhook_events
    drop constraint stripe_webhook_events_payload_unless_ignored,
    alter column payload set not null,
    alter column payload set compression default;

drop function public.stripe_customers_history(text);

create or replace function public.stripe_customers_audit_row()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    declared_event text := nullif(pg_catalog.current_setting('stripe_customer_sync.event_id', true), '');
    acting_role text := coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user);
begin
    if tg_op = 'INSERT' then
        insert into public.stripe_customers_audit
            (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
        select n.stripe_customer_id, 'INSERT', null, pg_catalog.to_jsonb(n),
               coalesce(declared_event, n.customer_metadata #>> '{sync,last_event_id}'),
               acting_role
          from new_rows n;
    elsif tg_op = 'UPDATE' then
        insert into public.stripe_customers_audit
            (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
        select coalesce(n.stripe_customer_id, o.stripe_customer_id), 'UPDATE',
               pg_catalog.to_jsonb(o), pg_catalog.to_jsonb(n),
               coalesce(declared_event,
                        case when (n.customer_metadata #>> '{sync,last_event_id}')
                                  is distinct from (o.customer_metadata #>> '{sync,last_event_id}')
                             then n.customer_metadata #>> '{sync,last_event_id}'
                        end),
               acting_role
          from new_rows n
          full join old_rows o on o.id = n.id;
    else
        insert into public.stripe_customers_audit
            (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
        select o.stripe_customer_id, 'DELETE', pg_catalog.to_jsonb(o), null, declared_event,
               acting_role
          from old_rows o;
    end if;
    return null;
end;
$$;
