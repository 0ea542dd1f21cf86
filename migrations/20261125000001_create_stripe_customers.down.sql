-- Reverts 20261125000001_create_stripe_customers: dropping the table also drops its constraints,
-- index, trigger and policies; the trigger function is a separate object.
drop table public.stripe_customers;
drop function public.stripe_customers_set_updated_at();
