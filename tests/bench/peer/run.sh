#!/usr/bin/env bash
# run.sh — `make bench-peer` (issue 16, item 5): Request Tracker 5 and Wasl on the same generated
# mails, one process per mail (rt-mailgate, wasl-mailgate), one loop and four. Installs RT's
# Debian packages when missing (tests/bench/peer/install.sh), then runs bench_peer.py with the
# integration fixtures as a plugin (Wasl's PostgreSQL, Redis, bus and intake on free loopback
# ports; RT's own PostgreSQL cluster and server on free ports too). Not part of make test.
# Knobs: BENCH_MAILS (600), BENCH_PEER_LOOPS (4), BENCH_PEER_RT_MAILS, BENCH_PEER_KEEP.
# Results in var/bench/peer.json; the last line is
#   wasl_mails_s=… wasl_mails_s_4=… rt_mails_s=… rt_mails_s_4=… ratio=…
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$REPO"
for b in build/bin/wasl-mailgate build/bin/wasl-intake build/bench/peer_feed; do
    [[ -x $b ]] || { echo "bench-peer: make $b" >&2; exit 1; }
done
tests/bench/peer/install.sh
rm -f var/bench/peer.json
# RT takes minutes for 600 mails: the fixtures' per-test watchdog gets two hours.
WASL_TEST_TIMEOUT=${WASL_TEST_TIMEOUT:-7200} PYTHONPATH=tests/integration \
    "${PYTHON:-/usr/bin/python3}" -m pytest -q -s -p conftest \
    --rootdir tests/integration tests/bench/peer/bench_peer.py
"${PYTHON:-/usr/bin/python3}" - <<'PY'
import json
s = json.load(open("var/bench/peer.json"))
print(f"wasl_mails_s={s['wasl_mails_s']} wasl_mails_s_4={s['wasl_mails_s_4']} "
      f"rt_mails_s={s['rt_mails_s']} rt_mails_s_4={s['rt_mails_s_4']} ratio={s['ratio']}")
PY
