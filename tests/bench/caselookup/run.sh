#!/usr/bin/env bash
# run.sh — wasl-caselookup throughput and latency, cached and uncached, over a real bus with two
# workers, on PostgreSQL and Redis that the integration fixtures start on free loopback ports
# (it does not touch the local stack). `make bench-caselookup` builds the load generator first.
# Knobs: BENCH_CASES (4000), BENCH_DURATION_S (10), BENCH_THREADS (16 clients: requests in
# flight), BENCH_SOCKETS (2 DEALERs carrying them), BENCH_WORKERS (2), BENCH_ECHO (1: first the
# ceiling of the bench and the bus alone, against stand-in workers that answer at once).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$REPO"
[[ -x build/bench/caselookup_load && -x build/bench/caselookup_echo ]] || {
    echo "bench: make build/bench/caselookup_load build/bench/caselookup_echo" >&2
    exit 1
}
PYTHONPATH=tests/integration exec "${PYTHON:-/usr/bin/python3}" -m pytest -q -s -p conftest \
    --rootdir tests/integration tests/bench/caselookup/bench_caselookup.py
