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
