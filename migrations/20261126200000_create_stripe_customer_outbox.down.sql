-- Reverts 20261126200000_create_stripe_customer_outbox: the triggers first (they depend on the
-- functions), then the functions and the table (its sequence, index and policy go with it).
-- Changes still queued are lost: nothing is pushed to Stripe after this.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop trigger stripe_customer_outbox_email_changed on auth.users;
-- Attached only where public.profiles existed (by the up migration or a later `migrate`).
drop trigger if exists stripe_customer_outbox_profile_changed on public.profiles;
drop function public.stripe_customer_outbox_watch_profiles();
drop function public.stripe_customer_outbox_profile_changed();
drop function public.stripe_customer_outbox_user_changed();
drop function public.stripe_customer_outbox_enqueue(uuid);
drop table public.stripe_customer_outbox;
