-- Subscriptions are no longer kept; the tiers they set stay where they were written.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop table public.stripe_subscriptions;
