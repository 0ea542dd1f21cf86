-- Reverts 20261205700000_audit_trail_runs_back_from_the_current_row: the trigger writes an
-- INSERT's new row and an UPDATE's changed columns with old and new value again (the shape of
-- 20261205000001), a customer's rows are found by Stripe id through the index of before (built
-- again over the whole trail), and the row id column goes. Rows written in the backward shape
-- stay as they are; the history function rebuilds them all the same.
-- squawk-ignore-file require-concurrent-index-creation, require-concurrent-index-deletion, ban-drop-column

set local lock_timeout = '5s';
set local statement_timeout = '10min';

-- The statement trigger of 20261126400000_audit_trail_written_per_statement, writing each
-- version once. CREATE OR REPLACE keeps its owner, its grants and its three triggers.
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
        select n.stripe_customer_id, 'INSERT', null, pg_catalog.to_jsonb(n),
               coalesce(declared_event, n.customer_metadata #>> '{sync,last_event_id}'),
               acting_role
          from new_rows n;
    elsif tg_op = 'UPDATE' then
        -- Old and new versions of a row are paired by the primary key; each side keeps only the
        -- columns whose value changed. (Should an update change `id` itself, the two sides do
        -- not pair, and each is recorded whole, as two rows of the trail.)
        insert into public.stripe_customers_audit
            (stripe_customer_id, operation, old_row, new_row, event_id, changed_by)
        select coalesce(n.stripe_customer_id, o.stripe_customer_id), 'UPDATE',
               case when n.id is null then pg_catalog.to_jsonb(o) else d.old_values end,
               case when o.id is null then pg_catalog.to_jsonb(n) else d.new_values end,
               coalesce(declared_event,
                        case when (n.customer_metadata #>> '{sync,last_event_id}')
                                  is distinct from (o.customer_metadata #>> '{sync,last_event_id}')
                             then n.customer_metadata #>> '{sync,last_event_id}'
                        end),
               acting_role
          from new_rows n
          full join old_rows o on o.id = n.id
          left join lateral (
               select coalesce(pg_catalog.jsonb_object_agg(nv.key, ov.value), '{}') as old_values,
                      coalesce(pg_catalog.jsonb_object_agg(nv.key, nv.value), '{}') as new_values
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

create or replace function public.stripe_customers_history(customer_id text)
    returns table (
        audit_id bigint,
        operation text,
        event_id text,
        changed_by text,
        changed_at timestamptz,
        version jsonb
    )
    language plpgsql
    stable
    security invoker
    set search_path = ''
as $$
declare
    state jsonb;
    change record;
    versions jsonb[] := '{}';
    ids bigint[] := '{}';
    i int;
begin
    select pg_catalog.to_jsonb(c) into state
      from public.stripe_customers c
     where c.stripe_customer_id = customer_id;
    for change in
        select a.id, a.operation, a.old_row, a.new_row
          from public.stripe_customers_audit a
         where a.stripe_customer_id = customer_id
         order by a.id desc
    loop
        if change.operation = 'DELETE' then
            state := change.old_row;
        end if;
        versions := versions || state;
        ids := ids || change.id;
        if change.operation = 'UPDATE' then
            state := coalesce(state, '{}') || coalesce(change.old_row, '{}');
        elsif change.operation = 'INSERT' then
            state := null;
        end if;
    end loop;
    for i in reverse coalesce(pg_catalog.array_length(ids, 1), 0) .. 1 loop
        return query
            select a.id, a.operation, a.event_id, a.changed_by, a.changed_at, versions[i]
              from public.stripe_customers_audit a
             where a.id = ids[i];
    end loop;
end;
$$;

comment on function public.stripe_customers_history(text) is
    'Every version of one stripe_customers row, in full, rebuilt from the audit trail.';

create index stripe_customers_audit_stripe_customer_id_changed_at_idx
    on public.stripe_customers_audit (stripe_customer_id, changed_at);

-- Its three indexes go with it.
alter table public.stripe_customers_audit drop column customer_row_id;
