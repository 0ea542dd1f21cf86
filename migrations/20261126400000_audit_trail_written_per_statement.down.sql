-- Reverts 20261126400000_audit_trail_written_per_statement: the row trigger of
-- 20261125000003_create_stripe_customers_audit, naming only the event a transaction declared.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop trigger stripe_customers_audit_insert on public.stripe_customers;
drop trigger stripe_customers_audit_update on public.stripe_customers;
drop trigger stripe_customers_audit_delete on public.stripe_customers;

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
        -- Reads '' rather than null once a transaction-local value has been set and ended
        -- earlier in the same session (pooled connections).
        nullif(pg_catalog.current_setting('stripe_customer_sync.event_id', true), ''),
        coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user)
    );
    return null; -- AFTER trigger: the result is ignored
end;
$$;

create trigger stripe_customers_audit
    after insert or update or delete on public.stripe_customers
    for each row
    execute function public.stripe_customers_audit_row();
