-- Reverts 20261126500000_customers_leave_room_for_in_place_updates: pages fill up again
-- (fill factor 100, PostgreSQL's default).
set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customers reset (fillfactor);
