#!/usr/bin/env bash
# run.sh — wasl-intake throughput and latency on the local stack, against the raw PostgreSQL
# ceiling for the same rows. `make bench-intake` runs it after `make up`.
#
#   1. saturation: wrk -t2 -c64 -d15s POST /v1/reports → accepted tickets (201) per second
#   2. latency at a fixed offered rate (2,000/s, paced in post.lua's delay()) → p50/p99
#   3. pgbench, same number of clients, 15 s: the transaction intake commits per ticket
#      (tests/bench/pg_ceiling.sh: tickets + ticket_events + messages + work, synchronous_commit
#      on, in scratch copies of those tables) → tps; ratio = intake / pgbench
#
# Needs var/stack.env (sourced when WASL_HTTP_URL is not set), wrk and pgbench. Loopback only;
# takes about a minute. Knobs: BENCH_DURATION_S (15), BENCH_THREADS (2), BENCH_CONNECTIONS (64),
# BENCH_RATE (2000). The bench client's token is kept in var/bench_token (mode 600).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HERE=$REPO/tests/bench/intake
if [[ -z ${WASL_HTTP_URL:-} ]]; then
    ENV_FILE=${WASL_VAR:-$REPO/var}/stack.env
    [[ -s $ENV_FILE ]] || { echo "bench: no $ENV_FILE: run make up first" >&2; exit 1; }
    # shellcheck disable=SC1090
    . "$ENV_FILE"
fi
VAR=${WASL_VAR:-$REPO/var}
WASLCTL=$REPO/build/bin/waslctl

DURATION_S=${BENCH_DURATION_S:-15}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
RATE=${BENCH_RATE:-2000}
CLIENT_ID=bench
CLIENT_WAIT_S=30
# Each step is bounded: its own duration plus this much for start-up and the final answers.
STEP_SLACK_S=20

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
[[ -x $WASLCTL ]] || die "$WASLCTL not built (make)"
[[ $WASL_HTTP_URL == http://127.0.0.1:* ]] || die "WASL_HTTP_URL is not loopback: $WASL_HTTP_URL"

# ---- the bench client -------------------------------------------------------------------------

TOKEN_FILE=$VAR/bench_token
if ! "$WASLCTL" client list 2>/dev/null | grep -qw -- "$CLIENT_ID" || [[ ! -s $TOKEN_FILE ]]; then
    (umask 077 && od -An -N 32 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
    say "adding client $CLIENT_ID (scope reports)"
    "$WASLCTL" client add "$CLIENT_ID" --kind api --scopes reports --rate 1000000 \
        --token-file "$TOKEN_FILE" >/dev/null
fi
TOKEN=$(cat "$TOKEN_FILE")
RUN_ID=$(od -An -N 6 -tx1 /dev/urandom | tr -d ' \n')

# intake reloads its clients every WASL_INTAKE_CLIENTS_REFRESH_S: wait until the token works.
probe() {
    curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST "$WASL_HTTP_URL/v1/reports" \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data "{\"external_id\":\"bench-probe-$RUN_ID-$1\",\"body\":\"probe\"}" || true
}
deadline=$((SECONDS + CLIENT_WAIT_S))
n=0
until [[ $(probe $n) =~ ^20[01]$ ]]; do
    n=$((n + 1))
    ((SECONDS < deadline)) || die "intake at $WASL_HTTP_URL does not accept the bench token"
    sleep 0.5
done

# ---- 1 and 2: wrk ---------------------------------------------------------------------------

run_wrk() { # $1 = offered rate (0 = saturation); wrk's report to stderr, the `wasl:` line out
    local out
    out=$(WASL_BENCH_TOKEN=$TOKEN WASL_BENCH_RUN="$RUN_ID-$1" WASL_BENCH_RATE=$1 \
        WASL_BENCH_THREADS=$THREADS WASL_BENCH_CONNECTIONS=$CONNECTIONS \
        timeout $((DURATION_S + STEP_SLACK_S)) wrk -t"$THREADS" -c"$CONNECTIONS" \
        -d"${DURATION_S}s" --timeout 10s -s "$HERE/post.lua" "$WASL_HTTP_URL") ||
        die "wrk failed: $out"
    grep -v '^wasl:' <<<"$out" >&2
    grep '^wasl:' <<<"$out" || die "no result line from post.lua"
}
field() { # $1 = line, $2 = key → value
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"
}

say "saturation: wrk -t$THREADS -c$CONNECTIONS -d${DURATION_S}s"
SAT=$(run_wrk 0)
say "latency at $RATE/s offered"
LAT=$(run_wrk "$RATE")

# ---- 3: pgbench -----------------------------------------------------------------------------

say "pgbench -c$CONNECTIONS -j$THREADS -T$DURATION_S, one ticket per transaction (tests/bench/pg_ceiling.sh)"
PG_LINE=$("$REPO/tests/bench/pg_ceiling.sh" "$CONNECTIONS" "$THREADS" "$DURATION_S" 1 | tail -n 1)
PG_TPS=$(field "$PG_LINE" tickets_per_s)
[[ -n $PG_TPS ]] || die "no figure from pg_ceiling.sh"

# ---- summary --------------------------------------------------------------------------------

INTAKE=$(field "$SAT" created_per_s)
P50=$(field "$LAT" p50_ms)
P99=$(field "$LAT" p99_ms)
ACHIEVED=$(field "$LAT" created_per_s)
RATIO=$(awk -v a="$INTAKE" -v b="$PG_TPS" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
SAT_BAD=$(($(field "$SAT" s4xx) + $(field "$SAT" s5xx) + $(field "$SAT" s503) + $(field "$SAT" s429)))
LAT_BAD=$(($(field "$LAT" s4xx) + $(field "$LAT" s5xx) + $(field "$LAT" s503) + $(field "$LAT" s429)))
echo
echo "== wasl-intake bench ($(date -u +%FT%TZ), $(nproc) CPUs, -t$THREADS -c$CONNECTIONS, ${DURATION_S}s each)"
echo "saturation: $SAT"
echo "paced:      $LAT"
echo "refused (non-2xx): saturation=$SAT_BAD paced=$LAT_BAD; achieved at offered $RATE/s: $ACHIEVED/s"
echo "intake_tickets_per_s=$INTAKE p50_ms=$P50 p99_ms=$P99 at_offered=$RATE pg_tps=$PG_TPS ratio=$RATIO"
