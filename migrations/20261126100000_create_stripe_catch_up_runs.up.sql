-- Completed runs of `catch-up` (the command, or serve's background run): where each run's
-- listing of Stripe's Events API started and when. The next run starts shortly before the last
-- completed run's listing did, so a gap of any length (an endpoint disabled or misconfigured for
-- days, events Stripe gave up retrying) is listed again as long as Stripe keeps its events
-- (30 days). A run that failed or was interrupted writes no row: the next one covers its window.
--
-- The ledger index at the end is built in sqlx's per-migration transaction, where CONCURRENTLY
-- cannot run; it is partial over the few thin events, so it holds the ledger's lock for moments.
-- squawk-ignore-file require-concurrent-index-creation

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table public.stripe_catch_up_runs (
    id bigint generated always as identity,
    -- `created[gte]` of the listing: events created at or after it were listed.
    listed_from timestamptz not null,
    -- When the first page was requested: every event created before it (less a margin for
    -- Stripe's listing to catch up) was listed and is now in the ledger.
    listing_started_at timestamptz not null,
    finished_at timestamptz not null default now(),
    -- Customer events Stripe listed, and those of them that were not yet in the ledger.
    events_listed bigint not null,
    events_applied bigint not null,
    -- `serve` (the background run) or `command` (`stripe-customer-sync catch-up`).
    started_by text not null,

    constraint stripe_catch_up_runs_pkey primary key (id),
    constraint stripe_catch_up_runs_window_valid check (listed_from <= listing_started_at),
    constraint stripe_catch_up_runs_counts_valid
        check (events_listed >= 0 and events_applied between 0 and events_listed),
    constraint stripe_catch_up_runs_started_by_valid
        check (started_by in ('serve', 'command'))
);

comment on table public.stripe_catch_up_runs is
    'Completed stripe-customer-sync catch-up runs: the next run lists Stripe''s events from shortly before the last one started.';

-- The one read: the newest run's listing start.
create index stripe_catch_up_runs_listing_started_at_idx
    on public.stripe_catch_up_runs (listing_started_at);

-- Private to the backend, like the ledger. Supabase granted the API roles everything on this
-- new table and its identity sequence; take it back and leave the backend what it uses (insert
-- a run, read the newest, delete old ones; an identity column needs no sequence grant).
alter table public.stripe_catch_up_runs enable row level security;

revoke all on table public.stripe_catch_up_runs from anon, authenticated, service_role;
revoke all on sequence public.stripe_catch_up_runs_id_seq from anon, authenticated, service_role;
grant select, insert, delete on table public.stripe_catch_up_runs to service_role;

-- Documentation only (service_role has BYPASSRLS); keeps the linter's rls_enabled_no_policy
-- quiet. No policy for anon or authenticated: with RLS on and no grants they read nothing.
create policy stripe_catch_up_runs_service_role_all
    on public.stripe_catch_up_runs
    for all
    to service_role
    using (true)
    with check (true);

-- A thin event (v1.customer.*) names the v1 snapshot event it stands for in `snapshot_event`;
-- catch-up lists snapshot events, and one whose thin twin is in the ledger was applied already
-- (from the fetched customer). Partial: only thin events carry the key, so the snapshot events
-- that are most of the ledger cost this index nothing but the predicate's check.
create index stripe_webhook_events_snapshot_event_idx
    on public.stripe_webhook_events ((payload ->> 'snapshot_event'))
    where payload ? 'snapshot_event';
