-- POST /customers no longer holds a transaction (and its per-user lock) open while Stripe
-- answers: a request records that it is calling Stripe for the attempt (a LEASE), commits, calls
-- Stripe with no connection held, then records the result. The lease tells a request on another
-- replica that the attempt is in flight, so it waits for the result instead of calling Stripe
-- too; a lease that runs out unreleased means its holder stopped mid-call (a crash), and the
-- attempt is looked up in Stripe before its key is sent again.
--
-- A creation Stripe refuses (a 4xx other than 429, to the create or to the search after a
-- crash) is permanent for the user's values: the REFUSAL is kept here, shared by every replica,
-- and no new call is made for the user until its back-off passes or the user's email or name
-- differ from the refused ones. Stripe's error type and code are kept (never its message, which
-- can quote the email).
--
-- Only new nullable columns and one with a constant default: no rewrite, a brief lock.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.stripe_customer_creations
    -- The request calling Stripe for this attempt right now, and until when it may.
    add column lease_owner uuid,
    add column lease_until timestamptz,
    -- The last refusal: when, how many in a row for the same values (the back-off doubles),
    -- which call (create or search), Stripe's status, error type and code, and the user's
    -- email and name it was refused for.
    add column refused_at timestamptz,
    add column refusals bigint not null default 0,
    add column refused_step text,
    add column refusal_status bigint,
    add column refusal_type text,
    add column refusal_code text,
    add column refused_email text,
    add column refused_name text;

comment on column public.stripe_customer_creations.lease_until is
    'While in the future, a request is calling Stripe for this attempt (lease_owner); other requests wait for its result. Run out and not released: the call was interrupted.';
comment on column public.stripe_customer_creations.refused_at is
    'Stripe refused this user''s creation (refused_step: create or search): no new call until the back-off passes or the user''s email or name differ from refused_email/refused_name.';
