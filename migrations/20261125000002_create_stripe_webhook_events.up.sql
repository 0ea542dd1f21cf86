-- The ledger: one row per verified Stripe event id, written in the same transaction as the
-- event's effect. Inserting the id is how the service applies each event exactly once: a second
-- delivery (a retry, or a concurrent delivery to another replica) violates the primary key,
-- which the service detects by its name, stripe_webhook_events_pkey.

-- Fail fast rather than queue every query of a live database behind this migration's locks
-- (squawk: require-lock-timeout, require-statement-timeout). `local`: only for sqlx's
-- transaction around this file. Adding these lines changed the file's checksum; the service
-- adopts the old one (store::schema::LEGACY_CHECKSUMS) so deployed databases upgrade cleanly.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table public.stripe_webhook_events (
    id text not null,
    type text not null,
    livemode boolean not null,
    -- The API version the event was rendered with; null for events from accounts without one.
    api_version text,
    -- The event's `created` (1-second resolution, as Stripe sends it).
    stripe_created timestamptz not null,
    received_at timestamptz not null default now(),
    processed_at timestamptz not null default now(),
    outcome text not null,
    -- The snake_case reason of a skipped event (stale_event, missing_email, ...).
    reason text,
    -- The raw event as received, for replay and forensics.
    payload jsonb not null,

    constraint stripe_webhook_events_pkey primary key (id),
    constraint stripe_webhook_events_id_format check (id ~ '^evt_'),
    constraint stripe_webhook_events_outcome_valid
        check (outcome in ('processed', 'ignored', 'skipped')),
    -- A skipped event always says why, and only a skipped one has a reason.
    constraint stripe_webhook_events_reason_iff_skipped
        check ((outcome = 'skipped') = (reason is not null)),
    constraint stripe_webhook_events_payload_is_object
        check (jsonb_typeof(payload) = 'object')
);

comment on table public.stripe_webhook_events is
    'Every verified Stripe webhook event, once, with what stripe-customer-sync did with it.';

-- The one operational access path worth its write cost: by arrival time, for pruning old rows
-- (Stripe retries for at most 3 days, so the dedup window is short) and for "what arrived in the
-- last hour". Arrival order makes it an append-at-the-end index, cheap on the hot insert path.
-- Not (type, stripe_created): the service never reads the ledger by type, and ad hoc questions
-- by type over a pruned ledger are fine as scans.
create index stripe_webhook_events_received_at_idx
    on public.stripe_webhook_events (received_at);

-- Payloads carry customer emails and names: no API role but the backend may read them.
-- Supabase granted anon, authenticated and service_role everything on this new table; take it
-- back, leaving the backend plain DML (no TRUNCATE: emptying the ledger at once would forget
-- which deliveries were already applied).
alter table public.stripe_webhook_events enable row level security;

revoke all on table public.stripe_webhook_events from anon, authenticated, service_role;
grant select, insert, update, delete on table public.stripe_webhook_events to service_role;

-- Documentation only (service_role has BYPASSRLS); also keeps the linter's rls_enabled_no_policy
-- quiet. No policy for anon or authenticated: with RLS on and no grants they read nothing.
create policy stripe_webhook_events_service_role_all
    on public.stripe_webhook_events
    for all
    to service_role
    using (true)
    with check (true);
