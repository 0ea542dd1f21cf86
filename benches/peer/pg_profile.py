#!/usr/bin/env python3
"""Where PostgreSQL's CPU goes while the service is under load, by part of the work.

Record the whole machine with call graphs while a run of benches/peer/run.sh (or any load) is
going, then read the postgres processes' samples:

    perf record -a -g -o /tmp/pg.perf -- sleep 5
    perf script -i /tmp/pg.perf --comm postgres | python3 benches/peer/pg_profile.py

Each sample counts once, for the first part in the list below found on its stack (so the audit
trigger's own index inserts count as the trigger's, not as index inserts). Prints each part's
share of the postgres processes' samples.
"""
import collections
import re
import sys

# (part, a function on the stack that marks it), first match wins.
PARTS = [
    ("audit trigger (plpgsql)", "plpgsql_exec_trigger"),
    ("plpgsql functions called by the statement", "plpgsql_exec_function"),
    ("CHECK constraints", "ExecConstraints"),
    ("jsonb parsing", "jsonb_in"),
    ("index inserts", "ExecInsertIndexTuples"),
    ("heap inserts", "heap_insert"),
    ("commit (WAL flush)", "CommitTransactionCommand"),
    ("executor start", "standard_ExecutorStart"),
    ("executor run, other", "standard_ExecutorRun"),
    ("executor end", "standard_ExecutorEnd"),
    ("sending results", "__send"),
    ("plan cache", "GetCachedPlan"),
    ("portal, other", "PortalRun"),
]
FRAME = re.compile(r"^\s*[0-9a-f]+\s+(\S+?)(?:\+0x[0-9a-f]+)?\s+\(")


def samples(lines):
    """Yields the set of function names on each sample's stack."""
    stack = set()
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = set()
            continue
        match = FRAME.match(line)
        if match:
            stack.add(match.group(1))
    if stack:
        yield stack


def main():
    counts = collections.Counter()
    total = 0
    for stack in samples(sys.stdin):
        total += 1
        part = next((name for name, marker in PARTS if marker in stack), "other")
        counts[part] += 1
    if total == 0:
        sys.exit("pg_profile.py: no samples on stdin (perf script --comm postgres | ...)")
    print(f"{total} samples of postgres processes")
    for part, count in counts.most_common():
        print(f"{100 * count / total:5.1f} %  {part}")


if __name__ == "__main__":
    main()
