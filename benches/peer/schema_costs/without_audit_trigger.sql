-- What the audit trail costs per event: its three statement triggers switched off, so that a
-- change of stripe_customers leaves no row in stripe_customers_audit. For measuring only (see
-- ../run.sh, PEER_BASELINE_SQL): this takes a guarantee away.
alter table public.stripe_customers disable trigger stripe_customers_audit_insert;
alter table public.stripe_customers disable trigger stripe_customers_audit_update;
alter table public.stripe_customers disable trigger stripe_customers_audit_delete;
