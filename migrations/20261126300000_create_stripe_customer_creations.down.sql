-- Reverts 20261126300000_create_stripe_customer_creations: the table takes its constraints and
-- policy with it. Customers already created stay linked in public.stripe_customers; only the
-- record of interrupted attempts is lost (revert when no creation is in flight).
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop table public.stripe_customer_creations;
