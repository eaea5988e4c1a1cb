#!/usr/bin/env bash
# run.sh — `make bench-router`: wasl-router's decisions per second with 500 agents in 20 queues.
#  1. in memory (waslctl route bench): the rules decision and the agent choice, no database;
#  2. end to end (bench.py): a 20 000-ticket backlog routed (decision, history event, SLA,
#     acknowledgement, committed) and offered (agent choice with explanation, committed) by
#     the real daemon on a private PostgreSQL. No stack needed; about half a minute;
#  3. a backlog (backlog.py): 16 000 classified tickets routed by 1, 2 and 3 routers while
#     100 000 wait in queues nobody serves — rate, per-instance counts, every ticket once.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
echo "== in memory"
"$REPO/build/bin/waslctl" route bench --agents 500 --queues 20
echo "== end to end (PostgreSQL)"
/usr/bin/python3 "$REPO/tests/bench/router/bench.py"
echo "== a backlog, 1, 2 and 3 routers (PostgreSQL, 100 000 tickets already waiting)"
/usr/bin/python3 "$REPO/tests/bench/router/backlog.py"
