#!/usr/bin/env bash
# pg_ceiling.sh — what PostgreSQL alone can commit of the rows intake writes per ticket (tickets
# + ticket_events + messages + work, with their indexes, checks and foreign keys; synchronous
# commit on), with pgbench: the ceiling every Wasl throughput figure is compared with.
# The tables are scratch copies (schema bench_pg, dropped afterwards), so nothing real changes.
#
#   WASL_PG_URL=... tests/bench/pg_ceiling.sh CLIENTS THREADS SECONDS BATCH
#
# It makes a scratch schema, so it connects as the owner: WASL_PG_OWNER_URL when set (stack.env
# has it), else WASL_PG_URL.
#
# BATCH tickets per transaction (1: one ticket per commit; intake's writers commit a queue of
# them at once). Last line: `pg_ceiling tickets_per_s=N tps=N batch=B clients=C`.
set -euo pipefail
CLIENTS=${1:?clients} THREADS=${2:?threads} SECONDS_RUN=${3:?seconds} BATCH=${4:?batch}
: "${WASL_PG_URL:?WASL_PG_URL}"
WASL_PG_URL=${WASL_PG_OWNER_URL:-$WASL_PG_URL}
PGBENCH=$(command -v pgbench || ls -1 /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)
[[ -x $PGBENCH ]] || { echo "pg_ceiling: pgbench not found (postgresql package)" >&2; exit 1; }
PSQL=$(dirname "$PGBENCH")/psql
[[ -x $PSQL ]] || PSQL=$(command -v psql)

SCRATCH=bench_pg
psql_q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$WASL_PG_URL" "$@"; }
SCRIPT=$(mktemp /tmp/wasl-pg-ceiling.XXXXXX.sql)
cleanup() {
    psql_q -c "DROP SCHEMA IF EXISTS $SCRATCH CASCADE" >/dev/null 2>&1 || true
    rm -f "$SCRIPT"
}
trap cleanup EXIT
cleanup
psql_q <<SQL
CREATE SCHEMA $SCRATCH;
CREATE TABLE $SCRATCH.tickets (LIKE public.tickets INCLUDING ALL);
CREATE TABLE $SCRATCH.ticket_events (LIKE public.ticket_events INCLUDING ALL,
    FOREIGN KEY (ticket_id) REFERENCES $SCRATCH.tickets (id));
CREATE TABLE $SCRATCH.messages (LIKE public.messages INCLUDING ALL,
    FOREIGN KEY (ticket_id) REFERENCES $SCRATCH.tickets (id));
CREATE TABLE $SCRATCH.work (LIKE public.work INCLUDING ALL,
    FOREIGN KEY (ticket_id) REFERENCES $SCRATCH.tickets (id));
CREATE SEQUENCE $SCRATCH.ref_seq;
SQL

BODY="السلام عليكم، أرجو إفادتي عن موعد الجلسة القادمة في القضية رقم ٤٥١٢٣٤٥٦٧٨ لدى المحكمة الإدارية بالرياض، فقد تأجلت الجلسة السابقة ولم يصلني إشعار. وشكراً."
# One statement = one transaction, one round trip. (No colons in the text: pgbench would take
# `:name` for one of its variables.)
cat >"$SCRIPT" <<SQL
WITH t AS (
    INSERT INTO $SCRATCH.tickets (ref, channel, external_id, subject, lang_declared, from_phone,
                                  client_id)
    SELECT lpad(nextval('$SCRATCH.ref_seq')::text, 10, '0'), 'web',
           'pgb-' || gen_random_uuid()::text, 'استفسار عن موعد جلسة', 'ar', '+966551234567', 'bench'
    FROM generate_series(1, $BATCH)
    RETURNING id, external_id),
e AS (INSERT INTO $SCRATCH.ticket_events (ticket_id, kind, actor)
      SELECT id, 'received', 'intake' FROM t),
m AS (INSERT INTO $SCRATCH.messages (ticket_id, direction, channel, external_id, subject, body)
      SELECT id, 'in', 'web', external_id, 'استفسار عن موعد جلسة', '$BODY' FROM t)
INSERT INTO $SCRATCH.work (ticket_id, stage, dedupe_key)
SELECT id, 'classify', concat_ws(chr(58), 'ticket', id, 'classify', 1) FROM t;
SQL

OUT=$(PGOPTIONS="-c synchronous_commit=on" timeout $((SECONDS_RUN + 30)) "$PGBENCH" -n -M prepared \
    -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_RUN" -f "$SCRIPT" "$WASL_PG_URL" 2>&1) ||
    { echo "$OUT" >&2; echo "pg_ceiling: pgbench failed" >&2; exit 1; }
echo "$OUT" >&2
TPS=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$OUT" | tail -n 1)
[[ -n $TPS ]] || { echo "pg_ceiling: no tps in pgbench's output" >&2; exit 1; }
echo "pg_ceiling tickets_per_s=$(awk -v t="$TPS" -v b="$BATCH" 'BEGIN { printf "%.0f", t * b }') tps=$TPS batch=$BATCH clients=$CLIENTS"
