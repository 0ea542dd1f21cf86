-- The audit trail names the event behind each row change even when one statement writes the
-- rows of many events (the service's group commit, see src/store/batch.rs). A transaction can
-- declare only one event id (set_config('stripe_customer_sync.event_id', ...)), so where it
-- declared none the trigger takes the id the row itself records, `customer_metadata.sync
-- .last_event_id`, if this change set it: an insert that carries one, or an update that
-- changed it. A change by hand leaves last_event_id as it was, and its audit row names no
-- event, as before.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Same signature, owner, SECURITY DEFINER and search_path as the function it replaces (see
-- 20261125000003_create_stripe_customers_audit for why); CREATE OR REPLACE keeps its grants.
create or replace function public.stripe_customers_audit_row()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    insert into public.stripe_customers_audit
        (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
    values (
        case when tg_op = 'DELETE' then old.stripe_customer_id else new.stripe_customer_id end,
        tg_op,
        case when tg_op in ('UPDATE', 'DELETE') then pg_catalog.to_jsonb(old) end,
        case when tg_op in ('INSERT', 'UPDATE') then pg_catalog.to_jsonb(new) end,
        coalesce(
            -- Reads '' rather than null once a transaction-local value has been set and ended
            -- earlier in the same session (pooled connections).
            nullif(pg_catalog.current_setting('stripe_customer_sync.event_id', true), ''),
            case
                when tg_op = 'INSERT'
                    then new.customer_metadata #>> '{sync,last_event_id}'
                when tg_op = 'UPDATE'
                     and (new.customer_metadata #>> '{sync,last_event_id}')
                         is distinct from (old.customer_metadata #>> '{sync,last_event_id}')
                    then new.customer_metadata #>> '{sync,last_event_id}'
            end
        ),
        coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user)
    );
    return null; -- AFTER trigger: the result is ignored
end;
$$;
