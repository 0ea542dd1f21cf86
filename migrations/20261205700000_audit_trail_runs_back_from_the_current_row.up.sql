-- The audit trail keeps each version once, as deltas that run back from the current row, and
-- finds a customer's rows through an index whose new entries land at its right edge:
--
-- * an INSERT's row names the customer, the event, the role and the time, and keeps no image:
--   the inserted version is the current row, or what the next change's old values give back;
-- * an UPDATE's row keeps only the OLD value of each column that changed: laid over the version
--   after it, they give the version before it;
-- * a DELETE's row keeps the whole old row, as before (the starting point once the row is gone);
-- * each new row names the `stripe_customers.id` it belongs to (`customer_row_id`), and a
--   customer's rows are found by it. The service gives the rows it inserts time-ordered ids
--   (UUIDv7), so a new customer's audit entries go to the right edge of the index; the
--   `(stripe_customer_id, changed_at)` index put every one on a random page, and after each
--   checkpoint the first change of such a page logs all 8 KB of it (dropping that index made
--   0.79-0.82x the WAL per event at 16 senders: docs/performance.md).
--
-- public.stripe_customers_history rebuilds every version walking back from the current row and
-- reads only old values, so it rebuilds rows of every shape (whole rows, the old-and-new deltas
-- of 20261205000001, and these) alike; it now finds new rows by row id and older ones (no row
-- id) by the Stripe id, each through an index of its own.
--
-- Nothing is rewritten: the column is added without a default, and the trail's rows stay as
-- they were. Two of the three indexes below start empty (their predicate needs the new column),
-- so building them reads the trail once; the index over the older rows is built from them, once,
-- in place of the one it replaces (hence the longer statement timeout; webhooks arriving
-- meanwhile wait, and past their own deadline are answered 503 and redelivered by Stripe).
-- squawk-ignore-file require-concurrent-index-creation, require-concurrent-index-deletion
set local lock_timeout = '5s';
set local statement_timeout = '10min';

alter table public.stripe_customers_audit add column customer_row_id uuid;

comment on column public.stripe_customers_audit.customer_row_id is
    'The stripe_customers.id of the row the change was made to (null on rows written before 20261205700000).';

-- A customer's rows, by the id of its row: new entries at the right edge (UUIDv7 ids).
create index stripe_customers_audit_customer_row_id_idx
    on public.stripe_customers_audit (customer_row_id, id)
    where customer_row_id is not null;

-- The rows a deletion left: where a removed row's id is found again, from its Stripe id.
create index stripe_customers_audit_deleted_row_idx
    on public.stripe_customers_audit (stripe_customer_id)
    where operation = 'DELETE' and customer_row_id is not null;

-- Rows written before this migration, by Stripe id as before; no new row enters it.
create index stripe_customers_audit_earlier_rows_idx
    on public.stripe_customers_audit (stripe_customer_id, id)
    where customer_row_id is null;

drop index public.stripe_customers_audit_stripe_customer_id_changed_at_idx;

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
            (stripe_customer_id, customer_row_id, operation, old_row, new_row, event_id, changed_by)
        select n.stripe_customer_id, n.id, 'INSERT', null, null,
               coalesce(declared_event, n.customer_metadata #>> '{sync,last_event_id}'),
               acting_role
          from new_rows n;
    elsif tg_op = 'UPDATE' then
        -- Old and new versions of a row are paired by the primary key. (Should an update change
        -- `id` itself, the two sides do not pair: the old side is kept whole as the version
        -- before, the new side whole as a row that appeared.)
        insert into public.stripe_customers_audit
            (stripe_customer_id, customer_row_id, operation, old_row, new_row, event_id, changed_by)
        select coalesce(n.stripe_customer_id, o.stripe_customer_id), coalesce(n.id, o.id), 'UPDATE',
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
            (stripe_customer_id, customer_row_id, operation, old_row, new_row, event_id, changed_by)
        select o.stripe_customer_id, o.id, 'DELETE', pg_catalog.to_jsonb(o), null, declared_event,
               acting_role
          from old_rows o;
    end if;
    return null; -- AFTER trigger: the result is ignored
end;
$$;

-- Every version of one customer's row, oldest first, as in 20261205000001; only the way to the
-- customer's audit rows changed: the ids its rows had (the current row's, and those deletions
-- removed), then their rows by row id, and rows written before 20261205700000 by Stripe id.
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
    row_ids uuid[];
    versions jsonb[] := '{}';
    ids bigint[] := '{}';
    i int;
begin
    select pg_catalog.to_jsonb(c) into state
      from public.stripe_customers c
     where c.stripe_customer_id = customer_id;
    select pg_catalog.array_agg(r.id) into row_ids
      from (select c.id from public.stripe_customers c where c.stripe_customer_id = customer_id
            union
            select a.customer_row_id from public.stripe_customers_audit a
             where a.stripe_customer_id = customer_id
               and a.operation = 'DELETE' and a.customer_row_id is not null) r;
    for change in
        select t.id, t.operation, t.old_row
          from (select a.id, a.operation, a.old_row
                  from public.stripe_customers_audit a
                 where a.customer_row_id = any(coalesce(row_ids, '{}'))
                   and a.stripe_customer_id = customer_id
                union all
                select a.id, a.operation, a.old_row
                  from public.stripe_customers_audit a
                 where a.customer_row_id is null
                   and a.stripe_customer_id = customer_id) t
         order by t.id desc
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
    'Every version of one stripe_customers row, in full, rebuilt back from the current row '
    'through the audit trail''s old values (any of its row shapes).';
