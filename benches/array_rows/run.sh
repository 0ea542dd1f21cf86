#!/usr/bin/env bash
# Rows out of bound arrays, the two ways a batch statement can make them, in one run on one
# throwaway cluster (see src/store/customers/write/mod.rs):
#
#   bash benches/array_rows/run.sh [SECONDS=5] [REPS=3]
#
# A prepared select over ten arrays (text and uuid, as a batch binds them), with one element
# each and with eight (one array of 1.5 KB elements, as payloads are): `unnest(a, b, …)` of
# all ten, against `unnest(a) with ordinality` and the nine others read by subscript. pgbench,
# one client, the two shapes taking turns REPS times; prints each run's mean latency, then per
# size the medians and the ratio subscript / unnest. Runs as root (PostgreSQL runs as the
# postgres user, via runuser).
set -u
SECS=${1:-5}; REPS=${2:-3}

. "$(cd "$(dirname "$0")" && pwd)/../throwaway_cluster.sh" array-rows

# The ten arrays' types, in order; every column is read, so that no shape skips work.
TYPES=(text text uuid text text text text text text uuid)
USE="sum(length(c0) + length(c1) + length(c3) + length(c6) + length(c8)), count(c2), count(c9)"
UNNEST_ARGS=""; SUBSCRIPTS=""
for i in "${!TYPES[@]}"; do
  UNNEST_ARGS+="${UNNEST_ARGS:+, }(:v$i)::${TYPES[$i]}[]"
  [ $i -gt 0 ] && SUBSCRIPTS+=", ((:v$i)::${TYPES[$i]}[])[n] as c$i"
done
echo "select $USE from unnest($UNNEST_ARGS) as i(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9);" > $W/unnest.sql
echo "select $USE from (select c0$SUBSCRIPTS from unnest((:v0)::text[]) with ordinality as u(c0, n)) s;" > $W/subscript.sql

# pgbench -D arguments binding arrays of $1 elements; array 6 holds 1.5 KB elements.
arrays() {
  python3 - "$1" <<'PY'
import sys
n = int(sys.argv[1])
uuid = '00000000-0000-0000-0000-000000000001'
values = ['a', 'b', uuid, 'e', 'n', 'p', 'x' * 1500, 'x', 'y', uuid]
print(' '.join(f"-D v{i}={{{','.join([v] * n)}}}" for i, v in enumerate(values)))
PY
}

for size in 1 8; do
  ARGS=$(arrays $size)
  for rep in $(seq 1 $REPS); do
    for shape in unnest subscript; do
      # shellcheck disable=SC2086 # ARGS is a list of -D arguments
      ms=$($PGBIN/pgbench -h 127.0.0.1 -p $PORT -U postgres -n -M prepared -T $SECS $ARGS \
             -f $W/$shape.sql postgres 2>&1 | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
      [ -n "$ms" ] || { echo "run.sh: pgbench failed"; exit 1; }
      echo "elements=$size rep=$rep shape=$shape ms_per_statement=$ms" | tee -a $W/runs.txt
    done
  done
done

python3 - $W/runs.txt <<'PY'
import statistics, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = dict(kv.split('=') for kv in line.split())
    runs[(int(f['elements']), f['shape'])].append(float(f['ms_per_statement']))
print('\n| elements | unnest of all ten, ms | one unnest + subscripts, ms | subscript / unnest |')
print('| ---: | ---: | ---: | ---: |')
for size in sorted({k[0] for k in runs}):
    u = statistics.median(runs[(size, 'unnest')]); s = statistics.median(runs[(size, 'subscript')])
    print(f'| {size} | {u:.3f} | {s:.3f} | {s / u:.2f}× |')
PY
