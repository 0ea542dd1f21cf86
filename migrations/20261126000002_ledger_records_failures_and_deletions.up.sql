-- The ledger learns three things (DESIGN.md, "HTTP contract" and "Sync rules"):
--
-- * `failed`: a verified event that can never be applied as sent (the database rejects its
--   data, whatever the retry) is recorded and answered 200 instead of 503, so Stripe does not
--   retry it for three days; `error` keeps why, and `stripe-customer-sync reapply-failed`
--   applies it again once the cause is fixed.
-- * `payload_sanitized`: characters PostgreSQL text cannot hold (U+0000) were replaced by
--   U+FFFD before the event was stored and applied, so `payload` is not byte for byte what
--   Stripe signed.
-- * `deleted_customer_id`: the customer a recorded `customer.deleted` (or thin
--   `v1.customer.deleted`) deleted, whatever became of the event (even a delete that could
--   write no tombstone, having no email). Deleted is terminal: no later event may create or
--   revive a live row for an id found here.

-- The ledger is small (rows older than Stripe's three days of retries can be pruned), so
-- checking the new constraints and building the two partial indexes holds the table's lock for
-- moments, well inside the timeouts below; NOT VALID + VALIDATE and CONCURRENTLY cannot run
-- inside sqlx's per-migration transaction anyway. Each dropped constraint is replaced by a
-- wider one in the same statement, so no guarantee is lost.
-- squawk-ignore-file ban-drop-constraint, constraint-missing-not-valid, require-concurrent-index-creation

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_webhook_events
    add column error text,
    add column payload_sanitized boolean not null default false,
    add column deleted_customer_id text;

alter table public.stripe_webhook_events
    drop constraint stripe_webhook_events_outcome_valid,
    add constraint stripe_webhook_events_outcome_valid
        check (outcome in ('processed', 'ignored', 'skipped', 'failed')),
    -- skipped and failed always say why, processed never; ignored may (other_mode).
    drop constraint stripe_webhook_events_reason_iff_skipped,
    add constraint stripe_webhook_events_reason_matches_outcome
        check (case outcome
                   when 'processed' then reason is null
                   when 'ignored' then true
                   else reason is not null
               end),
    add constraint stripe_webhook_events_error_iff_failed
        check ((outcome = 'failed') = (error is not null));

-- Deletions recorded before this migration count too.
update public.stripe_webhook_events
   set deleted_customer_id = payload #>> '{data,object,id}'
 where type = 'customer.deleted';

-- Read by every customer event's snapshot ("was this id ever deleted?"). Partial: only deletes
-- carry an id here, so the index costs nothing on the other inserts.
create index stripe_webhook_events_deleted_customer_id_idx
    on public.stripe_webhook_events (deleted_customer_id)
    where deleted_customer_id is not null;

-- The operator's "what failed" (reapply-failed, monitoring), without a scan of the ledger.
create index stripe_webhook_events_failed_idx
    on public.stripe_webhook_events (received_at)
    where outcome = 'failed';

-- A delete that could write no tombstone (no row yet, no email) and the customer's first insert
-- can run at the same moment on two replicas: each statement's snapshot predates the other's
-- commit, so each would find nothing in the way, and a deleted customer would keep a live row.
-- Both now pass through one of these functions first: they take the same per-customer
-- transaction-level advisory lock (held to the end of the writing statement) and then look
-- again with a fresh snapshot, which a VOLATILE plpgsql function takes for each query; so the
-- second writer always sees the first one's commit. (Key class 0x7363_7364, "scsd".)
create function public.stripe_customers_may_insert(customer_id text)
    returns boolean
    language plpgsql
    volatile
    set search_path = ''
as $$
begin
    perform pg_catalog.pg_advisory_xact_lock(1935897444, pg_catalog.hashtext(customer_id));
    return not exists (select 1 from public.stripe_webhook_events d
                        where d.deleted_customer_id = customer_id);
end;
$$;

create function public.stripe_customers_may_record_deletion(customer_id text)
    returns boolean
    language plpgsql
    volatile
    set search_path = ''
as $$
begin
    perform pg_catalog.pg_advisory_xact_lock(1935897444, pg_catalog.hashtext(customer_id));
    return not exists (select 1 from public.stripe_customers c
                        where c.stripe_customer_id = customer_id);
end;
$$;

-- The backend calls them (as itself: SECURITY INVOKER, it reads what it may read anyway);
-- the API roles have no use for them (Supabase's default privileges granted them EXECUTE).
revoke execute on function public.stripe_customers_may_insert(text),
    public.stripe_customers_may_record_deletion(text)
    from public, anon, authenticated;
grant execute on function public.stripe_customers_may_insert(text),
    public.stripe_customers_may_record_deletion(text)
    to service_role;
