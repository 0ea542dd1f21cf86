-- The profile push, coalesced (DESIGN.md "Profile changes reach Stripe"): at most one call to
-- Stripe per user per PROFILE_PUSH_MIN_INTERVAL, the latest values always pushed last; and an
-- edit ends the back-off after a failed push only when the values to push changed.
--
-- Before, every edit made the row due at once and reset its back-off (attempts, last_error):
-- 200 edits in 5 s made 45 calls to Stripe, and any profile save (an avatar, say) retried a push
-- Stripe had refused. Now the worker decides both, from what it records here:
--
--   last_call_at    when the last call to Stripe for the user ended; the next waits the interval;
--   failed_values   a digest of the values whose push failed last (never the values themselves);
--   backoff_until   until when those values wait; other values are pushed at once.
--
-- The trigger keeps only making the row due: the worker reads the latest values, and pushes,
-- or puts the row back until the back-off ends when they are the ones that failed.
--
-- New nullable columns only, and a function replaced: brief locks, no rewrite.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customer_outbox
    add column last_call_at timestamptz,
    add column failed_values text,
    add column backoff_until timestamptz;

comment on column public.stripe_customer_outbox.last_call_at is
    'When the last call to Stripe for this user ended: the next one waits PROFILE_PUSH_MIN_INTERVAL after it.';
comment on column public.stripe_customer_outbox.failed_values is
    'A digest of the values whose push failed last: they wait for backoff_until; other values are pushed at once.';

-- As before, minus the reset of attempts and last_error: an edit does not end a back-off by
-- itself (the worker ends it when the values to push changed).
create or replace function public.stripe_customer_outbox_enqueue(target_user uuid)
    returns void
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    if not exists (select 1 from public.stripe_customers c where c.user_id = target_user) then
        return;
    end if;
    insert into public.stripe_customer_outbox as o (user_id)
    values (target_user)
    on conflict (user_id) do update
        set version = pg_catalog.nextval('public.stripe_customer_outbox_version_seq'),
            changed_at = pg_catalog.now(),
            -- a change after a completed push starts a new wait
            queued_at = case when o.next_attempt_at is null then pg_catalog.now()
                             else o.queued_at end,
            next_attempt_at = pg_catalog.now();
    perform pg_catalog.pg_notify('stripe_customer_outbox', '');
end;
$$;
