-- Reverts 20261125000002_create_stripe_webhook_events: the table takes its constraints, index
-- and policy with it. The recorded events are lost; back them up first if they matter.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop table public.stripe_webhook_events;
