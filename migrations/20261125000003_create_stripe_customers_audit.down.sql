-- Reverts 20261125000003_create_stripe_customers_audit. The trigger goes first (it depends on the
-- function); public.stripe_customers is otherwise left as it was. The trail is lost: back it up
-- first if it matters.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop trigger stripe_customers_audit on public.stripe_customers;
drop function public.stripe_customers_audit_row();
drop table public.stripe_customers_audit;
