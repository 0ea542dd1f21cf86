-- Reverts 20261126000003_customers_record_their_mode: rows forget their mode again.
set local lock_timeout = '5s';
set local statement_timeout = '300s';

update public.stripe_customers
   set customer_metadata = customer_metadata #- '{sync,livemode}'
 where (customer_metadata -> 'sync') ? 'livemode';
