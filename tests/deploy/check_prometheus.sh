#!/usr/bin/env bash
# check_prometheus.sh — deploy/prometheus: config and rules valid, every alert proven by a test.
#
#   bash tests/deploy/check_prometheus.sh   # exit 0 and a summary, or 1 naming each problem
#
# promtool (Debian package prometheus) checks prometheus.yml and alerts.yml, then runs
# alerts_test.yml, where each alert must fire on a synthetic bad series and stay silent on a
# healthy one. Every alert in alerts.yml must appear there with both an expected firing
# (exp_labels) and an expected silence (exp_alerts: []).
set -euo pipefail
cd "$(dirname "$0")/../.."
PROM=deploy/prometheus
PROMTOOL=${PROMTOOL:-promtool}

command -v "$PROMTOOL" >/dev/null || { echo "check_prometheus: promtool missing (apt-get install prometheus)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
run() {
    if ! "$@" >"$tmp/out" 2>&1; then
        echo "check_prometheus: $* failed:" >&2
        cat "$tmp/out" >&2
        fail=1
    fi
}
run "$PROMTOOL" check config "$PROM/prometheus.yml"
run "$PROMTOOL" check rules "$PROM/alerts.yml"
run "$PROMTOOL" test rules "$PROM/alerts_test.yml"

# Every alert has a test that fires it and one that expects silence.
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$PROM/alerts.yml")
n=0
for a in $alerts; do
    n=$((n + 1))
    block=$(awk -v a="$a" '/alertname:/ { on = ($2 == a) } on' "$PROM/alerts_test.yml")
    grep -q 'exp_labels:' <<<"$block" || { echo "check_prometheus: no test fires $a" >&2; fail=1; }
    grep -q 'exp_alerts: \[\]' <<<"$block" || { echo "check_prometheus: no test keeps $a silent" >&2; fail=1; }
done
[ "$n" -gt 0 ] || { echo "check_prometheus: no alert in $PROM/alerts.yml" >&2; fail=1; }
[ "$fail" -eq 0 ] || exit 1
echo "check_prometheus: config, $n alert rules and their tests pass ($("$PROMTOOL" --version 2>&1 | sed -n '1s/.*version \([0-9.]*\).*/\1/p'))"
