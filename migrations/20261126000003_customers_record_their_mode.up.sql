-- Every row records the Stripe mode it came from, `customer_metadata.sync.livemode` (DESIGN.md,
-- "Modes"), so that `verify` and `backfill` touch only rows of their API key's mode. Rows
-- written before this migration learn it from the event that last wrote them, where the ledger
-- still holds it; rows last written by a backfill or verify run stay without a mode until the
-- next event or fetch writes them, and until then `verify` leaves them alone.

set local lock_timeout = '5s';
set local statement_timeout = '300s';

update public.stripe_customers c
   set customer_metadata = jsonb_set(c.customer_metadata, '{sync,livemode}', to_jsonb(e.livemode))
  from public.stripe_webhook_events e
 where e.id = c.customer_metadata #>> '{sync,last_event_id}'
   and jsonb_typeof(c.customer_metadata -> 'sync') = 'object'
   and not (c.customer_metadata -> 'sync') ? 'livemode';
