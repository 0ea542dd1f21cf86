-- The ledger and the audit trail keep both their guarantees (every event applied once, every
-- change to stripe_customers traced) at the cost they need, and no more.
--
-- * An `ignored` event (a type the service does not apply, another mode) keeps its id, type,
--   mode, times and outcome, and no payload: nothing re-applies it, and its payload (invoices of
--   10 KB and more) was most of the ledger's bytes and WAL. `failed` events keep theirs: they are
--   re-applied from it.
-- * A kept payload is compressed with lz4 where the server was built with it (pglz otherwise):
--   PostgreSQL compresses a row over about 2 KB (a fixed threshold of the build), and lz4 does it
--   at a fraction of pglz's CPU. `toast_tuple_target` stays at its default: it cannot lower that
--   threshold, and below the default it moves the compressed payload out of the row into the
--   TOAST table (measured by benches/ledger_bytes: twice the WAL for a 2.6 KB event).
-- * An UPDATE's audit row holds only the columns that changed, old and new value of each;
--   INSERT keeps the new row and DELETE the old one, as before. Rows written in the earlier
--   whole-row shape stay as they are: public.stripe_customers_history rebuilds every version of
--   a customer, in full, from either shape.
--
-- Nothing here rewrites or scans the ledger or the audit trail: a column's compression applies
-- to rows written from now on, and the new check is added NOT
-- VALID: every row already there has a payload (the column was NOT NULL), so validating it
-- would only hold the table's lock for a scan of a year of events. Readers of `payload` are
-- the service's own (re-apply reads `failed` events, which always keep theirs).
-- squawk-ignore-file ban-drop-not-null

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_webhook_events
    alter column payload drop not null,
    add constraint stripe_webhook_events_payload_unless_ignored
        check (payload is not null or outcome = 'ignored') not valid;

-- lz4 compresses a Stripe event about as well as pglz at a fraction of the CPU; a server built
-- without it refuses the setting, and then pglz (the default) it is.
do $$
begin
    alter table public.stripe_webhook_events alter column payload set compression lz4;
exception when feature_not_supported or invalid_parameter_value then
    raise notice 'lz4 is not available on this server: ledger payloads are compressed with pglz';
end;
$$;

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

-- Every version of one customer's row, oldest first: the row after each INSERT and UPDATE, and
-- the row a DELETE removed. Rebuilt backwards from the row as it is now (or from what a DELETE
-- removed): each UPDATE's old values, laid over the version after it, give the version before
-- it. A whole-row image of the earlier shape is laid over the same way and gives the whole row,
-- so both shapes rebuild alike. SECURITY INVOKER: it reads with the caller's rights, so the
-- audit trail's RLS decides who may.
create function public.stripe_customers_history(customer_id text)
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

revoke all on function public.stripe_customers_history(text) from public, anon, authenticated;
grant execute on function public.stripe_customers_history(text) to service_role;
