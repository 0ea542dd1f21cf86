-- The audit trail keeps each version once, as deltas that run back from the current row:
--
-- * an INSERT's row names the customer, the event, the role and the time, and keeps no image:
--   the inserted version is the current row, or what the next change's old values give back;
-- * an UPDATE's row keeps only the OLD value of each column that changed: laid over the version
--   after it, they give the version before it;
-- * a DELETE's row keeps the whole old row, as before (the starting point once the row is gone).
--
-- public.stripe_customers_history (20261205000001) already rebuilds every version walking back
-- from the current row and reads only these old values, so it rebuilds rows of all three shapes
-- (whole rows, the forward-and-backward deltas of 20261205000001, and these) alike.
--
-- Why: 80 % of a busy endpoint's events insert a customer, and each INSERT image was a second
-- copy of the row (measured by benches/ledger_bytes: see docs/performance.md); an UPDATE's new
-- values are the next version, which is already in the table. Only the trigger function is
-- replaced: no table is rewritten or scanned, and rows already written stay as they are.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- CREATE OR REPLACE keeps the function's owner, its grants and its three statement triggers.
create or replace function public.stripe_customers_audit_row()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    -- Reads '' rather than null once a transaction-local value has been set and ended earlier
    -- in the same session (pooled connections).
    declared_event text := nullif(pg_catalog.current_setting('stripe_customer_sync.event_id', true), '');
    acting_role text := coalesce(nullif(pg_catalog.current_setting('role'), 'none'), session_user);
begin
    if tg_op = 'INSERT' then
        insert into public.stripe_customers_audit
            (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
        select n.stripe_customer_id, 'INSERT', null, null,
               coalesce(declared_event, n.customer_metadata #>> '{sync,last_event_id}'),
               acting_role
          from new_rows n;
    elsif tg_op = 'UPDATE' then
        -- Old and new versions of a row are paired by the primary key. (Should an update change
        -- `id` itself, the two sides do not pair: the old side is kept whole as the version
        -- before, the new side whole as a row that appeared.)
        insert into public.stripe_customers_audit
            (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
        select coalesce(n.stripe_customer_id, o.stripe_customer_id), 'UPDATE',
               case when n.id is null then pg_catalog.to_jsonb(o) else d.old_values end,
               case when o.id is null then pg_catalog.to_jsonb(n) end,
               coalesce(declared_event,
                        case when (n.customer_metadata #>> '{sync,last_event_id}')
                                  is distinct from (o.customer_metadata #>> '{sync,last_event_id}')
                             then n.customer_metadata #>> '{sync,last_event_id}'
                        end),
               acting_role
          from new_rows n
          full join old_rows o on o.id = n.id
          left join lateral (
               select coalesce(pg_catalog.jsonb_object_agg(ov.key, ov.value), '{}') as old_values
                 from pg_catalog.jsonb_each(pg_catalog.to_jsonb(n)) nv
                 join pg_catalog.jsonb_each(pg_catalog.to_jsonb(o)) ov on ov.key = nv.key
                where nv.value is distinct from ov.value
          ) d on n.id is not null and o.id is not null;
    else
        insert into public.stripe_customers_audit
            (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
        select o.stripe_customer_id, 'DELETE', pg_catalog.to_jsonb(o), null, declared_event,
               acting_role
          from old_rows o;
    end if;
    return null; -- AFTER trigger: the result is ignored
end;
$$;

comment on function public.stripe_customers_history(text) is
    'Every version of one stripe_customers row, in full, rebuilt back from the current row '
    'through the audit trail''s old values (any of its row shapes).';
