#!/usr/bin/env bash
# What the ledger and the audit trail write, in bytes, before and after the migrations that
# make them cost what they must (from 20261205000001 on): WAL and table sizes for the same work.
#
#   bash benches/ledger_bytes/run.sh [BINARY] [CUSTOMERS] [SINCE]
#
# BINARY (default target/debug/stripe-customer-sync) migrates two databases of a throwaway
# cluster: `before` (reverted to the last migration older than SINCE, default 20261205000001;
# 20261205700000 measures the audit trail's backward deltas alone) and `after` (every migration). Each then does the same work in
# SQL, shaped as the service's statements are: CUSTOMERS customers inserted, 5 updates of each
# (a new email and sync block, as a customer.updated does), a 2 KB customer event recorded per
# change, and as many invoice.paid events recorded `ignored` (with their payload before; without
# after, as the service now records them). Bytes are deterministic: run it anywhere.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$ROOT/target/debug/stripe-customer-sync}
N=${2:-2000}
SINCE=${3:-20261205000001}
. "$HERE/../throwaway_cluster.sh" ledger_bytes
PSQL="$PGBIN/psql -X -q -v ON_ERROR_STOP=1 -h $W -p $PORT -U postgres"
URL="postgres://postgres@localhost:$PORT"

for db in before after; do
  $PSQL -d postgres -c "create database $db"
  DATABASE_URL="$URL/$db?host=$W" "$BIN" migrate --supabase-shim >/dev/null 2>&1
done
while [ "$($PSQL -d before -At -c "select count(*) from _sqlx_migrations where version >= $SINCE")" -gt 0 ]; do
  DATABASE_URL="$URL/before?host=$W" "$BIN" migrate --revert >/dev/null 2>&1
done

EVENT=$(cat "$ROOT/fixtures/2026-09-30.endive/02_customer.updated.json")
INVOICE=$(cat "$ROOT/fixtures/edge/invoice.paid.json")
# The same event with a longer metadata note: 2.6 KB, over the size at which PostgreSQL
# compresses a row (about 2 KB).
BIG_EVENT=$(python3 -c "import json,sys; e=json.load(open(sys.argv[1])); e['data']['object']['metadata']['note']='a note Stripe keeps for the customer; '*26; print(json.dumps(e))" "$ROOT/fixtures/2026-09-30.endive/02_customer.updated.json")

# Runs $2 (SQL) in database $1 after a checkpoint; prints the WAL it wrote, in bytes.
wal_of() {
  $PSQL -d "$1" -At -v event="$EVENT" -v big_event="$BIG_EVENT" -v invoice="$INVOICE" -v n="$N" <<SQL
checkpoint;
select pg_current_wal_insert_lsn() as start \gset
$2
select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'start');
SQL
}

CUSTOMERS="
do \$\$
declare i int;
begin
  for i in 1..$N loop
    insert into public.stripe_customers (stripe_customer_id, customer_email, customer_name, customer_metadata)
    values ('cus_Bench' || i, 'user' || i || '@example.com', 'Customer ' || i,
            jsonb_build_object('stripe', jsonb_build_object('user_id', gen_random_uuid()::text, 'plan', 'pro'),
                               'sync', jsonb_build_object('status', 'unlinked', 'livemode', false,
                                   'last_event_id', 'evt_C' || i, 'last_event_type', 'customer.created',
                                   'last_event_created', 1733000000 + i, 'synced_at', '2026-12-05T10:00:00Z',
                                   'error', 'unknown_user')));
  end loop;
end \$\$;"
UPDATES="
do \$\$
declare i int; r int;
begin
  for r in 1..5 loop
    for i in 1..$N loop
      update public.stripe_customers
         set customer_email = 'user' || i || '.' || r || '@example.com',
             customer_metadata = jsonb_set(customer_metadata, '{sync}',
                 customer_metadata -> 'sync' || jsonb_build_object('last_event_id', 'evt_U' || r || '_' || i,
                     'last_event_type', 'customer.updated', 'last_event_created', 1733100000 + r * 10000 + i))
       where stripe_customer_id = 'cus_Bench' || i;
    end loop;
  end loop;
end \$\$;"
recorded() { # $1: payload expression (or null)
  echo "insert into public.stripe_webhook_events (id, type, livemode, api_version, stripe_created, payload, outcome, reason)
        select 'evt_' || \$3 || g, \$4, false, '2026-09-30.endive', now(), $1, \$5, \$6
          from generate_series(1, $N * 6) g;"
}
PROCESSED="prepare p(jsonb, text, text, text, text, text) as $(recorded "jsonb_set(\$1, '{id}', to_jsonb('evt_' || \$3 || g))");
execute p(:'event', 'x', 'P', 'customer.updated', 'processed', null);"
BIG_PROCESSED="prepare p(jsonb, text, text, text, text, text) as $(recorded "jsonb_set(\$1, '{id}', to_jsonb('evt_' || \$3 || g))");
execute p(:'big_event', 'x', 'B', 'customer.updated', 'processed', null);"
IGNORED_BEFORE="prepare p(jsonb, text, text, text, text, text) as $(recorded "jsonb_set(\$1, '{id}', to_jsonb('evt_' || \$3 || g))");
execute p(:'invoice', 'x', 'I', 'invoice.paid', 'ignored', null);"
IGNORED_AFTER="prepare p(jsonb, text, text, text, text, text) as $(recorded "null::jsonb");
execute p(:'invoice', 'x', 'I', 'invoice.paid', 'ignored', null);"

printf '%-44s %14s %14s %8s\n' "work ($N customers, 6 changes each)" "before (bytes)" "after (bytes)" "after/before"
row() {
  printf '%-44s %14s %14s %8.2f\n' "$1" "$2" "$3" "$(python3 -c "print($3 / $2)")"
}
b=$(wal_of before "$CUSTOMERS"); a=$(wal_of after "$CUSTOMERS"); row "WAL: customer inserts (+ audit)" "$b" "$a"
b=$(wal_of before "$UPDATES"); a=$(wal_of after "$UPDATES"); row "WAL: customer updates (+ audit)" "$b" "$a"
b=$(wal_of before "$PROCESSED"); a=$(wal_of after "$PROCESSED"); row "WAL: processed events recorded (1.6 KB)" "$b" "$a"
b=$(wal_of before "$BIG_PROCESSED"); a=$(wal_of after "$BIG_PROCESSED"); row "WAL: processed events recorded (2.6 KB)" "$b" "$a"
b=$(wal_of before "$IGNORED_BEFORE"); a=$(wal_of after "$IGNORED_AFTER"); row "WAL: ignored events recorded" "$b" "$a"
for rel in stripe_customers_audit stripe_webhook_events; do
  b=$($PSQL -d before -At -c "select pg_total_relation_size('public.$rel')")
  a=$($PSQL -d after -At -c "select pg_total_relation_size('public.$rel')")
  row "size: $rel" "$b" "$a"
done
echo "payload compression after: $($PSQL -d after -At -c "select coalesce(attcompression::text, '') from pg_attribute where attrelid = 'public.stripe_webhook_events'::regclass and attname = 'payload'") (l = lz4, p or empty = pglz)"
