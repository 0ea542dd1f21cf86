#!/usr/bin/env bash
# The ledger's size at steady state under LEDGER_RETENTION: DAYS simulated days of PER_DAY
# events each (a 1.6 KB customer event, processed), and after each day the retention's own
# batched delete (the statement of src/store/ledger_retention.rs, 1,000 rows a batch) of rows
# older than KEEP days, then a plain VACUUM as autovacuum would run. Prints the ledger's size
# after each day: it stops growing once KEEP days are held.
#
#   bash benches/ledger_retention/run.sh [BINARY] [DAYS] [PER_DAY] [KEEP]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$ROOT/target/debug/stripe-customer-sync}
DAYS=${2:-10}
PER_DAY=${3:-100000}
KEEP=${4:-3}
. "$HERE/../throwaway_cluster.sh" ledger_retention
PSQL="$PGBIN/psql -X -q -v ON_ERROR_STOP=1 -h $W -p $PORT -U postgres -d postgres"
DATABASE_URL="postgres://postgres@localhost:$PORT/postgres?host=$W" "$BIN" migrate --supabase-shim >/dev/null 2>&1
EVENT=$(cat "$ROOT/fixtures/2026-09-30.endive/02_customer.updated.json")
# The retention's statement, with the day's "now" in place of now().
DELETE="delete from public.stripe_webhook_events e
         where e.id in (select x.id from public.stripe_webhook_events x
                         where x.received_at < :'now'::timestamptz - make_interval(days => $KEEP)
                           and x.outcome <> 'failed' and x.deleted_customer_id is null
                         order by x.received_at limit 1000 for update skip locked)"
printf '%4s %12s %12s %14s\n' day events rows "ledger bytes"
for day in $(seq 1 "$DAYS"); do
  now=$(python3 -c "import datetime; print((datetime.datetime(2026,1,1,tzinfo=datetime.timezone.utc)+datetime.timedelta(days=$day)).isoformat())")
  $PSQL -v event="$EVENT" -v now="$now" <<SQL
insert into public.stripe_webhook_events (id, type, livemode, api_version, stripe_created,
                                          received_at, payload, outcome)
select 'evt_D${day}_' || g, 'customer.updated', false, '2026-09-30.endive', :'now',
       :'now'::timestamptz + make_interval(secs => g * 86400.0 / $PER_DAY),
       jsonb_set(:'event'::jsonb, '{id}', to_jsonb('evt_D${day}_' || g)), 'processed'
  from generate_series(1, $PER_DAY) g;
SQL
  while :; do
    removed=$($PSQL -At -v now="$now" <<SQL
with d as ($DELETE returning 1) select count(*) from d;
SQL
)
    [ "$removed" -lt 1000 ] && break
  done
  $PSQL -c "vacuum public.stripe_webhook_events"
  rows=$($PSQL -At -c "select count(*) from public.stripe_webhook_events")
  size=$($PSQL -At -c "select pg_total_relation_size('public.stripe_webhook_events')")
  printf '%4s %12s %12s %14s\n' "$day" "$((day * PER_DAY))" "$rows" "$size"
done
