#!/usr/bin/env bash
# Side by side in one run: stripe-customer-sync against the leading peer,
# @supabase/stripe-sync-engine 0.48.5 (Node, behind a minimal node:http server, app/server.js),
# on the same PostgreSQL cluster, with the same signed events (80 % customer.created of new
# customers, 20 % customer.updated of 50,000 seeded ones, ~2 KB pretty-printed as Stripe sends
# them), driven by the same load generator (wrk, one thread, keep-alive) at each concurrency,
# the two systems taking turns.
#
#   bash benches/peer/run.sh [BIN] [SECONDS=20] [CONCURRENCIES="1 16 32"] [REPS=3]
#
# or `cargo bench --bench peer` (PEER_SECONDS, PEER_CONCURRENCY, PEER_REPS), which builds the
# release binary first. BIN is the release binary of stripe-customer-sync; without it (or with
# "-") the script runs `cargo build --release` and takes target/release/stripe-customer-sync.
#
# Runs as root (PostgreSQL's initdb and server run as the `postgres` OS user, via runuser).
# Needs node + npm (the peer and the official `stripe` library that signs the events are
# installed from the npm registry with `npm ci`, from app/package-lock.json), wrk (installed
# with apt-get when missing) and the PostgreSQL server binaries. Everything happens in a fresh
# temporary directory, removed at the end, with a cluster of its own on a free port; set
# PEER_WORK_DIR to a directory to keep (and reuse) its cluster, seeds and node_modules instead.
#
# Before each run it waits for a quiet machine (< 0.25 cores busy for 3 s, at most
# PEER_QUIET_MAX_WAIT=120 s) and writes back the page cache (`sync`); CPU is read from /proc (cpu.py): PostgreSQL's (postmaster and
# backends) and the service process's, per event. Prints one JSON line per run and, at the end,
# a table of medians over the repetitions: events/s, p50/p99 ms, non-2xx, PostgreSQL CPU ms and
# service CPU ms per event, WAL KB per event, and ours / peer; and the checkpoints that completed
# during a system's runs at that level, summed (each ends by flushing the data files, which
# stalls commits for a few hundred ms: the tail latency follows them). Quote ratios from one
# run, never absolute figures across runs.
#
# PEER_BASELINE="<release binary of stripe-customer-sync> …" (the previous commit's, say) adds
# one system per binary, `base1`, `base2`, …, each on a database of its own seeded alike,
# taking its turn after the other two: the table then also gives ours / base1, …, measured in
# the same run.
#
# PEER_BASELINE_SQL="<file.sql or -> …", one word per PEER_BASELINE binary, applies that SQL to
# the baseline's database once it is seeded (`-`: none). With the measured binary given again as
# the baseline, it measures what a part of the schema costs: benches/peer/schema_costs/ holds the
# variants (`without_audit_trigger.sql`, `without_checks.sql`, `without_either.sql`).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${1:--}; SECS=${2:-20}; CONCS=${3:-"1 16 32"}; REPS=${4:-3}
QUIET_MAX=${PEER_QUIET_MAX_WAIT:-120}

[ "$(id -u)" = 0 ] || { echo "run.sh: run it as root (PostgreSQL runs as the postgres user)"; exit 1; }
for tool in node npm python3 psql runuser; do
  command -v $tool >/dev/null || { echo "run.sh: $tool is missing"; exit 1; }
done
if [ "$BIN" = - ]; then
  (cd "$REPO" && cargo build --release) || exit 1
  BIN=$REPO/target/release/stripe-customer-sync
fi
BIN=$(realpath "$BIN")
[ -x "$BIN" ] || { echo "run.sh: no binary at $BIN"; exit 1; }
BASES=(); SYSTEMS="peer ours"
for b in ${PEER_BASELINE:-}; do
  b=$(realpath "$b"); [ -x "$b" ] || { echo "run.sh: no baseline binary at $b"; exit 1; }
  BASES+=("$b"); SYSTEMS="$SYSTEMS base${#BASES[@]}"
done
BASE_SQL=()
for f in ${PEER_BASELINE_SQL:-}; do
  [ "$f" = - ] || { f=$(realpath "$f") && [ -f "$f" ]; } || { echo "run.sh: no SQL file $f"; exit 1; }
  BASE_SQL+=("$f")
done
[ ${#BASE_SQL[@]} = 0 ] || [ ${#BASE_SQL[@]} = ${#BASES[@]} ] \
  || { echo "run.sh: PEER_BASELINE_SQL needs one word per PEER_BASELINE binary"; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } || exit 1

if [ -n "${PEER_WORK_DIR:-}" ]; then
  P=$(mkdir -p "$PEER_WORK_DIR" && realpath "$PEER_WORK_DIR"); KEEP=1
else
  P=$(mktemp -d /tmp/peer-bench.XXXXXX); KEEP=0
fi
R=$P/run; A=$P/app
export PEER_RUN_DIR=$R
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PGPORT=${PEER_PG_PORT:-$(free_port)}; PEER_PORT=${PEER_PEER_PORT:-$(free_port)}; OURS_PORT=${PEER_OURS_PORT:-$(free_port)}
PEER=; OURS=; BASEPIDS=(); BASEPORTS=()
cleanup() {
  [ -n "$PEER" ] && kill $PEER 2>/dev/null
  [ -n "$OURS" ] && kill $OURS 2>/dev/null
  for pid in "${BASEPIDS[@]}"; do kill $pid 2>/dev/null; done
  wait 2>/dev/null
  # A run's events (hundreds of MB) are removed after it; a run that failed leaves them here.
  rm -f "$R"/events_*.bin
  [ -f $P/pgdata/postmaster.pid ] && runuser -u postgres -- $PGBIN/pg_ctl -D $P/pgdata -m fast -w stop >/dev/null 2>&1
  if [ $KEEP = 0 ]; then rm -rf "$P"; else echo "work directory kept: $P"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p $R $A && cp -r "$HERE"/app/. $A/ && cp "$HERE/cpu.py" $P/
[ -d $A/node_modules/@supabase/stripe-sync-engine ] || (cd $A && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || exit 1
chmod 755 $P
chown postgres $P $R
if [ ! -f $P/pgdata/PG_VERSION ]; then
  mkdir -p $P/pgdata && chown postgres $P/pgdata && chmod 700 $P/pgdata
  runuser -u postgres -- $PGBIN/initdb -D $P/pgdata -U postgres --auth=trust >/dev/null || exit 1
fi
runuser -u postgres -- $PGBIN/pg_ctl -D $P/pgdata -l $R/pg.log -w \
  -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$R" start >/dev/null || exit 1
PSQL="psql -X -q -At -h 127.0.0.1 -p $PGPORT -U postgres"
# Checkpoints completed so far; each ends by flushing the data files, which stalls commits.
CHECKPOINTS='select checkpoints_timed + checkpoints_req from pg_stat_bgwriter'
export DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/peer WEBHOOK_SECRET=whsec_test_peer_benchmark_secret
OURS_URL=postgres://postgres@127.0.0.1:$PGPORT/ours
if ! $PSQL -d peer -c 'select 1 from stripe.customers limit 1' >/dev/null 2>&1 || [ ! -f $R/seed_ids.json ]; then
  $PSQL -c 'drop database if exists peer' -c 'drop database if exists ours' >/dev/null 2>&1
  for n in 1 2 3 4 5 6; do $PSQL -c "drop database if exists base$n" >/dev/null 2>&1; done
  $PSQL -c 'create database peer' >/dev/null && (cd $A && node migrate.js >/dev/null && node seed.js 50000) || exit 1
fi
# $1: database, $2: binary. The same 50,000 customers, as rows the service would have written
# an hour ago.
seed_ours() {
  local url=postgres://postgres@127.0.0.1:$PGPORT/$1
  if $PSQL -d "$1" -c 'select 1 from public.stripe_customers limit 1' >/dev/null 2>&1; then
    # A kept work directory: bring its schema up to this binary's.
    DATABASE_URL=$url "$2" migrate >/dev/null || { echo "migrate failed"; exit 1; }
    return 0
  fi
  $PSQL -c "create database $1" >/dev/null
  DATABASE_URL=$url "$2" migrate --supabase-shim >/dev/null 2>&1 \
    || DATABASE_URL=$url "$2" migrate >/dev/null || { echo "migrate failed"; exit 1; }
  python3 - $R/seed_ids.json <<'PY' | $PSQL -d "$1"
import json,sys,time
ids=json.load(open(sys.argv[1])); t=int(time.time())-3600
print("insert into public.stripe_customers(stripe_customer_id,customer_email,customer_name,customer_metadata) values")
print(",\n".join("('%s','seed%d@example.com','Seed','{\"stripe\":{},\"sync\":{\"status\":\"unlinked\",\"last_event_created\":%d,\"last_event_type\":\"customer.created\",\"error\":\"missing_user_id\"}}')"%(c,i,t) for i,c in enumerate(ids))+";")
PY
  $PSQL -d "$1" -c 'vacuum analyze' -c checkpoint >/dev/null
}
seed_ours ours "$BIN"
for i in "${!BASES[@]}"; do
  seed_ours base$((i + 1)) "${BASES[$i]}"
  sql=${BASE_SQL[$i]:--}
  if [ "$sql" != - ]; then
    $PSQL -v ON_ERROR_STOP=1 -d base$((i + 1)) -f "$sql" >/dev/null || { echo "run.sh: $sql failed"; exit 1; }
    echo "base$((i + 1)): schema changed by $sql"
  fi
done
sed 's#"/webhook"#"/webhooks/stripe"#' $A/wrk_webhook.lua > $A/wrk_ours.lua
(cd $A && PORT=$PEER_PORT exec node server.js > $R/peer.log 2>&1) & PEER=$!
STRIPE_WEBHOOK_SECRET=$WEBHOOK_SECRET LISTEN_ADDR=127.0.0.1:$OURS_PORT \
  DATABASE_URL=$OURS_URL RUST_LOG=info LOG_FORMAT=json \
  "$BIN" serve --skip-migrations > $R/ours.log 2>&1 & OURS=$!
for i in "${!BASES[@]}"; do
  n=$((i + 1)); BASEPORTS[$i]=$(free_port)
  STRIPE_WEBHOOK_SECRET=$WEBHOOK_SECRET LISTEN_ADDR=127.0.0.1:${BASEPORTS[$i]} \
    DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/base$n RUST_LOG=info LOG_FORMAT=json \
    "${BASES[$i]}" serve --skip-migrations > $R/base$n.log 2>&1 & BASEPIDS[$i]=$!
done
sleep 2
NODEPID=$(pgrep -P $PEER node || echo $PEER)
kill -0 $PEER 2>/dev/null || { echo "the peer did not start:"; cat $R/peer.log; exit 1; }
kill -0 $OURS 2>/dev/null || { echo "stripe-customer-sync did not start:"; cat $R/ours.log; exit 1; }
for i in "${!BASES[@]}"; do
  kill -0 ${BASEPIDS[$i]} 2>/dev/null || { echo "base$((i + 1)) did not start:"; cat $R/base$((i + 1)).log; exit 1; }
  echo "base$((i + 1)): ${BASES[$i]}"
done
echo "binary: $BIN; PostgreSQL $($PSQL -c 'show server_version'), port $PGPORT; work directory $P"
: > $R/side.jsonl
for rep in $(seq 1 $REPS); do for c in $CONCS; do for sys in $SYSTEMS; do
  python3 $P/cpu.py quiet 0.25 3 $QUIET_MAX >/dev/null 2>&1
  tag=${sys}_c${c}_r${rep}_$RANDOM
  n=$(( SECS * (c == 1 ? 3000 : 8000) ))
  (cd $A && node gen_run.js $tag $n >/dev/null)
  # Write back every dirty page first: the run's own events file (~2 KB per event) and what
  # the previous run left in the page cache. Otherwise the kernel flushes them during this
  # run, in bursts that stall every commit's WAL flush, and one system's leftovers land in
  # the other's tail.
  sync
  if [ $sys = peer ]; then url=http://127.0.0.1:$PEER_PORT/webhook; lua=$A/wrk_webhook.lua; spid=$NODEPID
  elif [ $sys = ours ]; then url=http://127.0.0.1:$OURS_PORT/webhooks/stripe; lua=$A/wrk_ours.lua; spid=$OURS
  else i=$(( ${sys#base} - 1 )); url=http://127.0.0.1:${BASEPORTS[$i]}/webhooks/stripe; lua=$A/wrk_ours.lua; spid=${BASEPIDS[$i]}; fi
  python3 $P/cpu.py snap $spid $P/pgdata > $R/a.json
  wal0=$($PSQL -c 'select pg_current_wal_lsn()'); ck0=$($PSQL -c "$CHECKPOINTS")
  wrk -t1 -c$c -d${SECS}s --timeout 10s -s $lua $url -- $R/events_${tag}.bin > $R/wrk_${tag}.txt 2>&1
  python3 $P/cpu.py snap $spid $P/pgdata > $R/b.json
  wal=$($PSQL -c "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal0')::bigint")
  sleep 1
  ck=$(( $($PSQL -c "$CHECKPOINTS") - ck0 ))
  W=$(sed -n 's/^WRKJSON //p' $R/wrk_${tag}.txt); CPU=$(python3 $P/cpu.py diff $R/a.json $R/b.json)
  [ -n "$W" ] || { echo "wrk printed no result:"; cat $R/wrk_${tag}.txt; exit 1; }
  echo "{\"sys\":\"$sys\",\"c\":$c,\"rep\":$rep,\"wrk\":$W,\"cpu\":$CPU,\"wal_bytes\":$wal,\"checkpoints\":$ck}" | tee -a $R/side.jsonl
  rm -f $R/events_${tag}.bin
done; done; done
python3 - $R/side.jsonl <<'PY'
import json,sys,statistics as st
rows=[json.loads(l) for l in open(sys.argv[1])]
reps=max(r['rep'] for r in rows)
print(f"\nmedians of {reps} run(s) per system and level")
print("\n| senders | system | events/s | p50 ms | p99 ms | non-2xx | PG CPU ms/event | service CPU ms/event | WAL KB/event | checkpoints |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in sorted({r['c'] for r in rows}):
  for s in ['peer','ours']+sorted({r['sys'] for r in rows if r['sys'].startswith('base')}):
    rs=[r for r in rows if r['c']==c and r['sys']==s]
    if not rs: continue
    med=lambda f: st.median(f(r) for r in rs)
    print(f"| {c} | {s} | {med(lambda r:r['wrk']['rps']):.0f} | {med(lambda r:r['wrk']['lat_p50_ms']):.2f} | {med(lambda r:r['wrk']['lat_p99_ms']):.2f} | {sum(r['wrk']['non2xx'] for r in rs)} | {med(lambda r:r['cpu']['pg_cpu_s']*1000/max(r['wrk']['requests'],1)):.3f} | {med(lambda r:r['cpu']['server_cpu_s']*1000/max(r['wrk']['requests'],1)):.3f} | {med(lambda r:r['wal_bytes']/1024/max(r['wrk']['requests'],1)):.1f} | {sum(r['checkpoints'] for r in rs)} |")
  o=[r['wrk']['rps'] for r in rows if r['c']==c and r['sys']=='ours']; p=[r['wrk']['rps'] for r in rows if r['c']==c and r['sys']=='peer']
  def med_of(s, f):
    v=[f(r) for r in rows if r['c']==c and r['sys']==s]
    return st.median(v) if v else None
  def ratio(a, b):
    rps=(med_of(a, lambda r:r['wrk']['rps']), med_of(b, lambda r:r['wrk']['rps']))
    if None in rps: return
    pg=(med_of(a, lambda r:r['cpu']['pg_cpu_s']/max(r['wrk']['requests'],1)), med_of(b, lambda r:r['cpu']['pg_cpu_s']/max(r['wrk']['requests'],1)))
    wal=(med_of(a, lambda r:r['wal_bytes']/max(r['wrk']['requests'],1)), med_of(b, lambda r:r['wal_bytes']/max(r['wrk']['requests'],1)))
    print(f"|   | {a} / {b} | {rps[0]/rps[1]:.2f}× | | | | {pg[0]/max(pg[1],1e-12):.2f}× | | {wal[0]/max(wal[1],1e-12):.2f}× | |")
  ratio('ours','peer')
  for b in sorted({r['sys'] for r in rows if r['sys'].startswith('base')}): ratio('ours', b)
PY
