-- Reverts 20261125000001_create_stripe_customers: dropping the table also drops its constraints,
-- index, trigger and policies; the trigger function is a separate object.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop table public.stripe_customers;
drop function public.stripe_customers_set_updated_at();
