#!/usr/bin/env bash
# run.sh — `make bench-router`: wasl-router's decisions per second with 500 agents in 20 queues.
#  1. in memory (waslctl route bench): the rules decision and the agent choice, no database;
#  2. end to end (bench.py): a 20 000-ticket backlog routed (decision, history event, SLA,
#     acknowledgement, committed) and offered (agent choice with explanation, committed) by
#     the real daemon on a private PostgreSQL. No stack needed; about half a minute.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
echo "== in memory"
"$REPO/build/bin/waslctl" route bench --agents 500 --queues 20
echo "== end to end (PostgreSQL)"
/usr/bin/python3 "$REPO/tests/bench/router/bench.py"
