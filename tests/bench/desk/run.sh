#!/usr/bin/env bash
# run.sh — wasl-desk under people's load (issue 15): BENCH_AGENTS signed-in agents with an event
# stream each, offers committed at BENCH_OFFER_RATE/s, the commit → event latency, the API's
# latency and the desk's RSS. On PostgreSQL and Redis that the integration fixtures start on free
# loopback ports (it does not touch the local stack). `make bench-desk`. Knobs: BENCH_AGENTS
# (500), BENCH_OFFER_RATE (200), BENCH_DURATION_S (20), BENCH_API_CLIENTS (8).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$REPO"
[[ -x build/bin/wasl-desk ]] || { echo "bench: make build/bin/wasl-desk" >&2; exit 1; }
# 500 streams and the clients' sockets: more descriptors than the default 1024.
ulimit -n 8192 2>/dev/null || true
PYTHONPATH=tests/integration exec "${PYTHON:-/usr/bin/python3}" -m pytest -q -s -p conftest \
    --rootdir tests/integration tests/bench/desk/bench_desk.py
