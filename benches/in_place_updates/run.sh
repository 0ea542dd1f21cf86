#!/usr/bin/env bash
# Updates of customers that keep their email and user (most customer.updated events), at the
# table's fill factor (90, migration 20261126500000) against PostgreSQL's default (100), in one
# run on one throwaway cluster:
#
#   bash benches/in_place_updates/run.sh [BIN] [ROWS=500000] [SECONDS=10] [REPS=2]
#
# It migrates a database with the service's own migrations (`BIN migrate --supabase-shim`),
# fills stripe_customers with ROWS rows of the shape the service writes, then for each fill
# factor in turn rewrites the table at it (VACUUM FULL), and REPS times: CHECKPOINT, pgbench
# (one client) rewriting the metadata of random rows through the real triggers. Prints per
# run updates/s, WAL per update and the share of heap-only updates, then the medians and the
# ratio 90 / 100. BIN defaults to target/release/stripe-customer-sync (built when missing).
# Runs as root (PostgreSQL runs as the postgres user, via runuser).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${1:--}; ROWS=${2:-500000}; SECS=${3:-10}; REPS=${4:-2}

. "$HERE/../throwaway_cluster.sh" in-place-updates
if [ "$BIN" = - ]; then
  BIN=$REPO/target/release/stripe-customer-sync
  [ -x "$BIN" ] || (cd "$REPO" && cargo build --release) || exit 1
fi
BIN=$(realpath "$BIN")
Q="psql -X -q -At -h 127.0.0.1 -p $PORT -U postgres -d bench"
psql -X -q -h 127.0.0.1 -p $PORT -U postgres -c 'create database bench' || exit 1
DATABASE_URL=postgres://postgres@127.0.0.1:$PORT/bench "$BIN" migrate --supabase-shim >/dev/null || exit 1

# Rows as the service writes them: Stripe's metadata and the sync block.
$Q <<SQL || exit 1
insert into public.stripe_customers
    (stripe_customer_id, customer_email, customer_name, default_payment_method, customer_metadata)
select 'cus_bench' || g, 'customer' || g || '@example.com', 'Customer ' || g, 'pm_bench' || g,
       jsonb_build_object(
           'stripe', jsonb_build_object('plan', 'pro', 'crm_id', 'crm_' || g),
           'sync', jsonb_build_object('status', 'unlinked', 'livemode', false,
                                      'last_event_id', 'evt_seed' || g,
                                      'last_event_type', 'customer.created',
                                      'last_event_created', 1732500000,
                                      'synced_at', '2026-11-25T10:00:00Z',
                                      'error', 'missing_user_id'))
from generate_series(1, $ROWS) g;
SQL
cat > $W/update.sql <<SQL
\set k random(1, $ROWS)
update public.stripe_customers
   set customer_metadata = jsonb_set(customer_metadata, '{sync,last_event_id}',
                                     to_jsonb('evt_bench' || :k || '_' || :client_id))
 where stripe_customer_id = 'cus_bench' || :k;
SQL

: > $W/runs
for ff in 100 90; do
  $Q -c "alter table public.stripe_customers set (fillfactor = $ff)" \
     -c 'vacuum full public.stripe_customers' -c 'analyze public.stripe_customers' || exit 1
  for rep in $(seq 1 $REPS); do
    $Q -c checkpoint
    hot0=$($Q -c "select n_tup_hot_upd from pg_stat_user_tables where relname = 'stripe_customers'")
    lsn0=$($Q -c 'select pg_current_wal_lsn()')
    tps=$($PGBIN/pgbench -n -h 127.0.0.1 -p $PORT -U postgres -c 1 -T $SECS -f $W/update.sql bench 2>&1 \
          | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    lsn1=$($Q -c 'select pg_current_wal_lsn()')
    sleep 1.2 # pgbench's backend reports its counts as it exits; give that a moment
    hot1=$($Q -c "select n_tup_hot_upd from pg_stat_user_tables where relname = 'stripe_customers'")
    python3 - "$ff" "$tps" "$SECS" "$($Q -c "select pg_wal_lsn_diff('$lsn1', '$lsn0')")" "$hot0" "$hot1" <<'PY' | tee -a $W/runs
import sys
ff, tps, secs, wal, hot0, hot1 = sys.argv[1:]
updates = float(tps) * float(secs)
print(f"fillfactor={ff} updates/s={float(tps):.0f} wal_kb/update={float(wal) / updates / 1024:.1f} "
      f"heap_only={100 * (int(hot1) - int(hot0)) / updates:.0f}%")
PY
  done
done
python3 - $W/runs <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = dict(kv.split("=") for kv in line.split())
    runs.setdefault(f["fillfactor"], []).append(f)
med = lambda ff, key: statistics.median(float(r[key].rstrip("%")) for r in runs[ff])
for ff in ("100", "90"):
    print(f"median fillfactor {ff}: {med(ff, 'updates/s'):.0f} updates/s, "
          f"{med(ff, 'wal_kb/update'):.1f} KB WAL per update, {med(ff, 'heap_only'):.0f} % heap-only")
print(f"90 / 100: {med('90', 'updates/s') / med('100', 'updates/s'):.2f}x updates/s, "
      f"{med('90', 'wal_kb/update') / med('100', 'wal_kb/update'):.2f}x WAL per update")
PY
