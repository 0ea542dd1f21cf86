-- Reverts 20261126000002_ledger_records_failures_and_deletions. The old constraints know no
-- `failed` outcome and no reason on an ignored event: failed events are deleted (re-apply them
-- first with `stripe-customer-sync reapply-failed`, or back the ledger up, if they matter) and
-- `other_mode` reasons are dropped.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop function public.stripe_customers_may_record_deletion(text);
drop function public.stripe_customers_may_insert(text);
drop index public.stripe_webhook_events_failed_idx;
drop index public.stripe_webhook_events_deleted_customer_id_idx;

delete from public.stripe_webhook_events where outcome = 'failed';
update public.stripe_webhook_events set reason = null where outcome = 'ignored';

alter table public.stripe_webhook_events
    drop constraint stripe_webhook_events_error_iff_failed,
    drop constraint stripe_webhook_events_reason_matches_outcome,
    add constraint stripe_webhook_events_reason_iff_skipped
        check ((outcome = 'skipped') = (reason is not null)),
    drop constraint stripe_webhook_events_outcome_valid,
    add constraint stripe_webhook_events_outcome_valid
        check (outcome in ('processed', 'ignored', 'skipped'));

alter table public.stripe_webhook_events
    drop column deleted_customer_id,
    drop column payload_sanitized,
    drop column error;
