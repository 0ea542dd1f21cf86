-- The audit trail is written once per statement instead of once per row, and names the event
-- behind each row change even when one statement writes the rows of many events.
--
-- Why: the service applies the webhook events that arrive together in one statement (group
-- commit, src/store/customers/write.rs). A row trigger runs its own INSERT for every row; an
-- AFTER STATEMENT trigger with transition tables writes all of a statement's audit rows in one
-- INSERT ... SELECT. Measured on PostgreSQL 15 (10,000 inserted rows): the row trigger added
-- about 50 µs per row, this one about 10 µs. What is recorded does not change: one audit row per
-- inserted, updated or deleted customer row, its old and new row, who made the change, when.
--
-- Which event: a transaction can declare only one event id
-- (set_config('stripe_customer_sync.event_id', ...)), so where it declared none the trigger takes
-- the id the row itself records, `customer_metadata.sync.last_event_id`, if this change set it
-- (an insert that carries one, an update that changed it). A change by hand leaves
-- last_event_id as it was, and its audit row names no event, as before.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop trigger stripe_customers_audit on public.stripe_customers;

-- The same function, now for statement triggers (CREATE OR REPLACE keeps its owner and
-- grants). SECURITY DEFINER and the empty search_path for the reasons given in
-- 20261125000003_create_stripe_customers_audit (a cascaded delete fires this as
-- supabase_auth_admin; current_user is the owner in here, the acting role is `role`).
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
        -- Old and new versions of a row are paired by the primary key. (Should an update change
        -- `id` itself, both sides are still recorded, as two rows of the trail.)
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
    return null; -- AFTER trigger: the result is ignored
end;
$$;

-- AFTER, so the recorded new row is the stored one (updated_at already set) and a change that
-- fails a constraint leaves no trace. One trigger per operation: PostgreSQL allows transition
-- tables only on a trigger for a single event. Cascaded deletes fire the delete trigger.
create trigger stripe_customers_audit_insert
    after insert on public.stripe_customers
    referencing new table as new_rows
    for each statement
    execute function public.stripe_customers_audit_row();

create trigger stripe_customers_audit_update
    after update on public.stripe_customers
    referencing old table as old_rows new table as new_rows
    for each statement
    execute function public.stripe_customers_audit_row();

create trigger stripe_customers_audit_delete
    after delete on public.stripe_customers
    referencing old table as old_rows
    for each statement
    execute function public.stripe_customers_audit_row();
