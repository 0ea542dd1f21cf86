-- Reverts 20261205100000_customer_creations_lease_and_refusal: the leases and refusals go; a
-- creation in flight is then treated by the older code as any unfinished attempt.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customer_creations
    drop column lease_owner,
    drop column lease_until,
    drop column refused_at,
    drop column refusals,
    drop column refused_step,
    drop column refusal_status,
    drop column refusal_type,
    drop column refusal_code,
    drop column refused_email,
    drop column refused_name;
