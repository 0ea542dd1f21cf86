-- Reverts 20261126100000_create_stripe_catch_up_runs: the table takes its constraints, index and
-- policy with it. The next catch-up then lists the 30 days Stripe keeps, as a first run does.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop index public.stripe_webhook_events_snapshot_event_idx;
drop table public.stripe_catch_up_runs;
