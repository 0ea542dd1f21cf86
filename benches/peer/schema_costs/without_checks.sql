-- What the CHECK constraints cost per event: every one of stripe_customers, the ledger and the
-- audit trail dropped. PostgreSQL reads and prepares each table's CHECK expressions again at
-- every statement that writes the table. For measuring only (see ../run.sh, PEER_BASELINE_SQL):
-- this takes guarantees away.
do $$
declare
    c record;
begin
    for c in select conrelid::regclass as tab, conname
               from pg_catalog.pg_constraint
              where contype = 'c'
                and conrelid in ('public.stripe_customers'::regclass,
                                 'public.stripe_webhook_events'::regclass,
                                 'public.stripe_customers_audit'::regclass)
    loop
        execute format('alter table %s drop constraint %I', c.tab, c.conname);
    end loop;
end;
$$;
