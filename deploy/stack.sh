#!/usr/bin/env bash
# stack.sh — the local Wasl stack: PostgreSQL, Redis, wasl-bus and every built daemon under var/.
#
# Usage: deploy/stack.sh run|up|down|env
#   run   everything in the foreground, daemon output prefixed with its name; Ctrl-C stops it all
#   up    the same in the background (pids in var/run, logs in var/log), then waits until
#         `waslctl status` reports every daemon healthy; a no-op when the stack is already up
#   down  stops the daemons, Redis and PostgreSQL and checks that none is left; exit 0 when idle
#   env   prints var/stack.env (sourceable: `. var/stack.env`)
#
# State lives in ${WASL_VAR:-<repo>/var}: pg/ (the cluster, initdb'd once), redis/, log/, run/
# (pid files, the PostgreSQL socket in run/pg), keys/ (CURVE keys), dev_token, stack.env,
# demo_accounts (the desk's demo people, `waslctl seed-demo`, made once).
#
# PostgreSQL roles (docs/architecture.md, "Database roles"): the superuser creates them from
# proto/roles.sql on every start (idempotent); `wasl` owns the database and runs the migrations
# (WASL_PG_OWNER_URL), each daemon connects as its own role (WASL_<NAME>_PG_URL, default
# postgresql://wasl_<name>@…) and WASL_PG_URL in stack.env is the operator's (wasl_ctl).
#
# Configuration: every WASL_* variable already in the environment wins over the default here,
# and the daemons inherit the environment, so e.g. a notifier setting reaches the notifier.
# Ports: WASL_PG_PORT 54320, WASL_REDIS_PORT 63790, WASL_HTTP_PORT 8080, WASL_DESK_PORT 8090
# (the desk, for people and the agent API: WASL_DESK_URL, printed at start), WASL_BUS_PORT 7100
# (uses 7100..7107), and one admin port per daemon, WASL_<NAME>_ADMIN_PORT (WASL_BUS_ADMIN_PORT
# 9100, WASL_INTAKE_ADMIN_PORT 9101, ... WASL_DESK_ADMIN_PORT 9106), handed to each daemon
# as its WASL_ADMIN_PORT. Other knobs: WASL_UP_TIMEOUT (s, default 30), WASL_STOP_TIMEOUT (s,
# default 10), WASL_PG_BINDIR (default: newest /usr/lib/postgresql/*/bin).
#
# PostgreSQL refuses to run as root, so as root the cluster is owned by and run as `postgres`.
# That user must be able to reach var/; when it cannot (say the repo is under /root, mode 700),
# the cluster, its socket and its log go to /var/tmp/wasl-pg-<checksum of the var path> instead
# (WASL_PG_DATA in stack.env says where). Everything binds to 127.0.0.1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$REPO/build/bin
WASLCTL=$BIN/waslctl

# Daemons in start order (stop order is the reverse) and their default admin ports.
DAEMONS=(bus intake classifier router notifier caselookup desk)
declare -A ADMIN_PORT_DEFAULT=(
    [bus]=9100 [intake]=9101 [classifier]=9102 [router]=9103 [notifier]=9104 [caselookup]=9105
    [desk]=9106
)
KEY_NAMES=(bus intake classifier router notifier caselookup desk waslctl)

UP_TIMEOUT_S=${WASL_UP_TIMEOUT:-30}
STOP_TIMEOUT_S=${WASL_STOP_TIMEOUT:-10}
LOG_TAIL_LINES=30

say() { printf 'stack: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ---- paths and configuration ---------------------------------------------------------------

VAR=${WASL_VAR:-$REPO/var}
# var/ must be searchable by postgres even under a umask of 077.
if [[ ! -d $VAR ]]; then
    mkdir -p "$VAR"
    chmod 755 "$VAR"
fi
VAR=$(cd "$VAR" && pwd)
RUN=$VAR/run
LOG=$VAR/log

binname() { if [[ $1 == waslctl ]]; then echo waslctl; else echo "wasl-$1"; fi; }

# The postgres binaries: WASL_PG_BINDIR, else the newest Debian cluster version, else PATH.
pg_bindir() {
    if [[ -n ${WASL_PG_BINDIR:-} ]]; then
        echo "$WASL_PG_BINDIR"
        return
    fi
    local dirs=(/usr/lib/postgresql/*/bin)
    if [[ -x ${dirs[0]}/initdb ]]; then
        printf '%s\n' "${dirs[@]}" | sort -V | tail -n 1
        return
    fi
    local initdb
    initdb=$(command -v initdb) || die "PostgreSQL not found (run deploy/deps.sh)"
    dirname "$initdb"
}
PG_BIN=$(pg_bindir)

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves. cd / so the
# tools do not complain about a working directory that postgres may not read.
as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Where the cluster lives (see the header): var/ when postgres can reach it, else /var/tmp.
if ((EUID == 0)) && ! id postgres >/dev/null 2>&1; then
    die "running as root needs the 'postgres' user (install postgresql: deploy/deps.sh)"
fi
if ((EUID != 0)) || as_pg test -x "$VAR"; then
    PG_HOME=""
    PG_DATA=$VAR/pg
    PG_SOCK=$RUN/pg
    PG_LOG=$LOG/postgres.log
else
    PG_HOME=/var/tmp/wasl-pg-$(printf '%s' "$VAR" | cksum | cut -d ' ' -f 1)
    PG_DATA=$PG_HOME/data
    PG_SOCK=$PG_HOME/sock
    PG_LOG=$PG_HOME/postgres.log
fi
# pg_ctl hands -o to a shell; unix socket paths are limited to 107 bytes.
[[ $PG_SOCK != *"'"* ]] || die "the var path must not contain a single quote: $VAR"
((${#PG_SOCK} <= 90)) || die "socket path too long ($PG_SOCK): set WASL_VAR to a shorter path"

export WASL_VAR=$VAR
export WASL_PG_PORT=${WASL_PG_PORT:-54320}
export WASL_REDIS_PORT=${WASL_REDIS_PORT:-63790}
export WASL_HTTP_PORT=${WASL_HTTP_PORT:-8080}
export WASL_BUS_PORT=${WASL_BUS_PORT:-7100}
export WASL_BUS_BIND=${WASL_BUS_BIND:-127.0.0.1}
export WASL_ADMIN_BIND=${WASL_ADMIN_BIND:-127.0.0.1}
export WASL_HTTP_BIND=${WASL_HTTP_BIND:-127.0.0.1}
export WASL_DESK_PORT=${WASL_DESK_PORT:-8090}
export WASL_DESK_BIND=${WASL_DESK_BIND:-127.0.0.1}
export WASL_DESK_WWW=${WASL_DESK_WWW:-$REPO/services/desk/www}
export WASL_DESK_REPLIES=${WASL_DESK_REPLIES:-$REPO/deploy/templates/replies}
# Plain http on localhost: a Secure cookie would never come back (docs/desk.md).
export WASL_DESK_COOKIE_SECURE=${WASL_DESK_COOKIE_SECURE:-0}
export WASL_LOG_LEVEL=${WASL_LOG_LEVEL:-info}
export WASL_CLASSIFIER_MODEL=${WASL_CLASSIFIER_MODEL:-$REPO/build/model/classifier.bin}
export WASL_ROUTER_RULES=${WASL_ROUTER_RULES:-$REPO/deploy/config/routing.yaml}
export WASL_NOTIFIER_TEMPLATES=${WASL_NOTIFIER_TEMPLATES:-$REPO/deploy/templates}
export WASL_PG_OWNER_URL=${WASL_PG_OWNER_URL:-postgresql://wasl@127.0.0.1:$WASL_PG_PORT/wasl}
# waslctl's operator commands; each daemon gets its own role's URL when started (pg_url).
export WASL_PG_URL=${WASL_PG_URL:-postgresql://wasl_ctl@127.0.0.1:$WASL_PG_PORT/wasl}
export WASL_REDIS_URL=${WASL_REDIS_URL:-redis://127.0.0.1:$WASL_REDIS_PORT/0}
export WASL_BUS=${WASL_BUS:-tcp://127.0.0.1:$WASL_BUS_PORT}
export WASL_HTTP_URL=${WASL_HTTP_URL:-http://127.0.0.1:$WASL_HTTP_PORT}
export WASL_DESK_URL=${WASL_DESK_URL:-http://127.0.0.1:$WASL_DESK_PORT}
# The desk's case panel asks caselookup over the same bus (docs/desk.md, "Case panel").
export WASL_DESK_BUS=${WASL_DESK_BUS-$WASL_BUS}
# No colon: an explicitly empty WASL_CURVE_DIR means "no CURVE" and must stay empty.
export WASL_CURVE_DIR=${WASL_CURVE_DIR-$VAR/keys}
# waslctl's own identity; each daemon gets its short name when started.
export WASL_CURVE_NAME=waslctl

# The PostgreSQL URL of daemon $1: WASL_<NAME>_PG_URL, else its own role on the local cluster
# (the bus uses no database: it keeps the operator's URL, which it ignores).
pg_url() {
    local var
    if [[ $1 == bus ]]; then
        echo "$WASL_PG_URL"
        return
    fi
    var="WASL_${1^^}_PG_URL"
    echo "${!var:-postgresql://wasl_$1@127.0.0.1:$WASL_PG_PORT/wasl}"
}

admin_port() {
    local var
    var="WASL_${1^^}_ADMIN_PORT"
    echo "${!var:-${ADMIN_PORT_DEFAULT[$1]}}"
}

# The daemons that exist in build/bin, in start order.
built_daemons() {
    local name
    for name in "${DAEMONS[@]}"; do
        [[ -x $BIN/$(binname "$name") ]] && echo "$name"
    done
    return 0
}
mapfile -t BUILT < <(built_daemons)

status_targets() {
    local name targets=()
    for name in "${BUILT[@]}"; do
        targets+=("$name=http://127.0.0.1:$(admin_port "$name")")
    done
    local IFS=,
    echo "${targets[*]}"
}
export WASL_STATUS_TARGETS=${WASL_STATUS_TARGETS:-$(status_targets)}

# ---- processes -------------------------------------------------------------------------------

# True when pid $1 is a live (not zombie) process whose command line mentions $2: a stale pid
# file must never make us signal an unrelated process that reused the pid.
pid_alive() {
    local pid=$1 pattern=$2 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    [[ $state != Z* ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

pidfile_pid() {
    if [[ -r $1 ]]; then head -n 1 "$1" 2>/dev/null || true; fi
}

# Sends SIGTERM to every "pid:pattern" given, waits up to STOP_TIMEOUT_S for all of them,
# then SIGKILLs the rest and waits for them to be gone.
stop_pids() {
    local item pid pattern left deadline
    for item in "$@"; do
        pid=${item%%:*} pattern=${item#*:}
        if pid_alive "$pid" "$pattern"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while :; do
        left=()
        for item in "$@"; do
            pid=${item%%:*} pattern=${item#*:}
            if pid_alive "$pid" "$pattern"; then left+=("$item"); fi
        done
        ((${#left[@]} > 0)) || return 0
        ((SECONDS < deadline)) || break
        sleep 0.2
    done
    for item in "${left[@]}"; do
        say "pid ${item%%:*} (${item#*:}) ignored SIGTERM for ${STOP_TIMEOUT_S}s: SIGKILL"
        kill -KILL "${item%%:*}" 2>/dev/null || true
    done
    deadline=$((SECONDS + 5))
    for item in "${left[@]}"; do
        while pid_alive "${item%%:*}" "${item#*:}" && ((SECONDS < deadline)); do sleep 0.1; done
    done
}

daemon_pid() { pidfile_pid "$RUN/$1.pid"; }
daemon_running() { pid_alive "$(daemon_pid "$1")" "$(binname "$1")"; }
redis_running() { pid_alive "$(pidfile_pid "$RUN/redis.pid")" redis-server; }
pg_running() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

stop_daemons() {
    local i name items=()
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[i]}
        [[ -e $RUN/$name.pid ]] || continue
        items+=("$(daemon_pid "$name"):$(binname "$name")")
    done
    if ((${#items[@]} > 0)); then stop_pids "${items[@]}"; fi
    for name in "${DAEMONS[@]}"; do rm -f "$RUN/$name.pid"; done
}

stop_redis() {
    [[ -e $RUN/redis.pid ]] || return 0
    stop_pids "$(pidfile_pid "$RUN/redis.pid"):redis-server"
    rm -f "$RUN/redis.pid"
}

stop_pg() {
    [[ -e $PG_DATA/postmaster.pid ]] || return 0
    local pid
    pid=$(pidfile_pid "$PG_DATA/postmaster.pid")
    if pg_running; then
        # fast = roll back sessions and checkpoint; immediate only if that hangs.
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT_S" stop >/dev/null 2>&1 ||
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 5 stop >/dev/null 2>&1 || true
    fi
    # A postmaster that did not go (or a pid file left by a crash) gets the same treatment.
    stop_pids "$pid:postgres"
}

stop_all() {
    stop_daemons
    stop_redis
    stop_pg
}

# ---- starting --------------------------------------------------------------------------------

log_tail() {
    [[ -s $1 ]] || return 0
    say "last lines of $1:"
    tail -n "$LOG_TAIL_LINES" "$1" >&2
}

make_dirs() {
    mkdir -p "$RUN" "$LOG" "$VAR/redis"
    if [[ -n $PG_HOME ]]; then
        if [[ -e $PG_HOME ]]; then
            [[ $(stat -c %U "$PG_HOME") == postgres ]] || die "$PG_HOME is not owned by postgres"
        else
            install -d -m 700 -o postgres -g postgres "$PG_HOME"
        fi
        say "postgres cannot reach $VAR: the cluster lives in $PG_HOME"
    fi
    mkdir -p "$PG_DATA" "$PG_SOCK"
    touch "$PG_LOG"
    if ((EUID == 0)); then
        chown postgres:postgres "$PG_DATA" "$PG_SOCK" "$PG_LOG"
    fi
    chmod 700 "$PG_DATA"
}

# A random token for the local intake, made once and kept (mode 600) so clients can rely on it.
dev_token() {
    local file=$VAR/dev_token
    if [[ ! -s $file ]]; then
        (umask 077 && od -An -N 24 -tx1 /dev/urandom | tr -d ' \n' >"$file")
    fi
    chmod 600 "$file"
    cat "$file"
}

# The secret that keys the hashes of national IDs and phones in Redis (WASL_PII_KEY_FILE):
# made once (mode 600) and kept, so hashes stay stable across restarts.
pii_key() {
    local file=$VAR/pii.key
    if [[ ! -s $file ]]; then
        (umask 077 && od -An -N 32 -tx1 /dev/urandom | tr -d ' \n' >"$file")
    fi
    chmod 600 "$file"
    echo "$file"
}

# Writes var/stack.env: `export K='V'` lines for the shell and for tests (shlex-parsable).
write_env() {
    local file=$VAR/stack.env name
    local names=(WASL_VAR WASL_HTTP_URL WASL_DESK_URL WASL_PG_URL WASL_PG_OWNER_URL WASL_REDIS_URL
        WASL_DEV_TOKEN WASL_BUS
        WASL_CURVE_DIR WASL_STATUS_TARGETS WASL_PG_PORT WASL_REDIS_PORT WASL_HTTP_PORT
        WASL_DESK_PORT WASL_BUS_PORT)
    (
        umask 077 # it holds the dev token
        {
            echo "# Written by deploy/stack.sh; source it to talk to the local stack."
            for name in "${names[@]}"; do
                printf "export %s='%s'\n" "$name" "${!name//\'/\'\\\'\'}"
            done
            printf "export WASL_PG_DATA='%s'\n" "$PG_DATA"
        } >"$file.tmp"
    )
    mv "$file.tmp" "$file"
}

start_pg() {
    if [[ ! -s $PG_DATA/PG_VERSION ]]; then
        say "initdb $PG_DATA"
        # trust on loopback only (listen_addresses below): a local development cluster.
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$LOG/initdb.log" 2>&1 || {
            log_tail "$LOG/initdb.log"
            die "initdb failed"
        }
    fi
    if pg_running; then
        say "postgres already running"
    else
        say "postgres on 127.0.0.1:$WASL_PG_PORT"
        # autovacuum_naptime 5 s (default 1 min): the queue tables' per-table thresholds
        # (migration 0024) are only looked at this often.
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 30 \
            -o "-k '$PG_SOCK' -p $WASL_PG_PORT -c listen_addresses=127.0.0.1" \
            -o "-c autovacuum_naptime=5s" start >/dev/null || {
            log_tail "$PG_LOG"
            die "postgres did not start"
        }
    fi
    local psql=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$WASL_PG_PORT" -U postgres -d postgres
        -v ON_ERROR_STOP=1 -At)
    # The roles, as a DBA would make them (idempotent); no passwords: trust on loopback.
    "${psql[@]}" -f "$REPO/proto/roles.sql" >/dev/null
    if [[ $("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'wasl'") != 1 ]]; then
        "${psql[@]}" -c "CREATE DATABASE wasl OWNER wasl"
    fi
}

# $1 = run|up. In run mode Redis stays our child and prints to the terminal.
start_redis() {
    if redis_running; then
        say "redis already running"
        return
    fi
    say "redis on 127.0.0.1:$WASL_REDIS_PORT"
    local args=(--port "$WASL_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
        --dir "$VAR/redis")
    if [[ $1 == run ]]; then
        redis-server "${args[@]}" --daemonize no > >(prefix redis) 2>&1 &
        echo $! >"$RUN/redis.pid"
    else
        redis-server "${args[@]}" --daemonize yes --pidfile "$RUN/redis.pid" \
            --logfile "$LOG/redis.log"
    fi
    local deadline=$((SECONDS + 10))
    until [[ $(redis-cli -h 127.0.0.1 -p "$WASL_REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
        if ((SECONDS >= deadline)); then
            log_tail "$LOG/redis.log"
            die "redis did not answer on port $WASL_REDIS_PORT"
        fi
        sleep 0.1
    done
}

# Keys and migrations need waslctl; without it the stack runs without CURVE and schema.
prepare() {
    if [[ ! -x $WASLCTL ]]; then
        say "warning: $WASLCTL not built: no CURVE keys, no migrations (run make)"
        WASL_CURVE_DIR=""
        return
    fi
    if [[ -n $WASL_CURVE_DIR ]]; then
        if [[ ! -d $WASL_CURVE_DIR ]]; then
            mkdir -p "$WASL_CURVE_DIR"
            chmod 700 "$WASL_CURVE_DIR"
        fi
        "$WASLCTL" keygen --dir "$WASL_CURVE_DIR" "${KEY_NAMES[@]}" >/dev/null
    fi
    say "waslctl migrate"
    WASL_PG_URL=$WASL_PG_OWNER_URL "$WASLCTL" migrate
    # The dev client: every scope and the admin role (it manages agents and supervises; only an
    # agent's own client answers its offers), with the token from var/dev_token
    # (WASL_DEV_TOKEN) on stdin: an argument would show in ps and /proc/*/cmdline.
    "$WASLCTL" client add dev --kind ops --scopes '*' --role admin --token-file - \
        --name "local development" >/dev/null <<<"$WASL_DEV_TOKEN"
    # People to sign in to the desk with, once: their passwords in var/demo_accounts (mode 600).
    if [[ -x $BIN/wasl-desk && ! -s $VAR/demo_accounts ]]; then
        "$WASLCTL" seed-demo --accounts "$VAR/demo_accounts" >/dev/null ||
            say "warning: waslctl seed-demo failed: no demo people on the desk"
    fi
}

# Prefixes each line with a daemon's name; ignores Ctrl-C so the daemon's last words still show.
prefix() {
    trap '' INT
    exec sed -u "s/^/$(printf '%-10s' "$1")| /"
}

# $1 = name, $2 = run|up. Starts one daemon unless it is already running.
start_daemon() {
    local name=$1 mode=$2 bin
    bin=$BIN/$(binname "$name")
    if daemon_running "$name"; then
        say "$name already running"
        return
    fi
    say "$name (admin 127.0.0.1:$(admin_port "$name"))"
    if [[ $mode == run ]]; then
        WASL_ADMIN_PORT=$(admin_port "$name") WASL_CURVE_NAME=$name WASL_PG_URL=$(pg_url "$name") \
            "$bin" </dev/null > >(prefix "$name") 2>&1 &
    else
        # setsid: detached from this terminal, so its Ctrl-C and hangup do not reach it.
        WASL_ADMIN_PORT=$(admin_port "$name") WASL_CURVE_NAME=$name WASL_PG_URL=$(pg_url "$name") \
            setsid "$bin" </dev/null >>"$LOG/$name.log" 2>&1 &
    fi
    echo $! >"$RUN/$name.pid"
}

# Exit 0 when every status target answers /healthz; the output (the table) goes to $1.
status_check() {
    if [[ -x $WASLCTL ]]; then
        "$WASLCTL" status >"$1" 2>&1
        return
    fi
    local target ok=0 IFS=,
    : >"$1"
    for target in $WASL_STATUS_TARGETS; do
        if curl -fsS -m 2 -o /dev/null "${target#*=}/healthz" 2>/dev/null; then
            echo "${target%%=*} healthy" >>"$1"
        else
            echo "${target%%=*} DOWN" >>"$1"
            ok=1
        fi
    done
    return "$ok"
}

# Polls status for up to UP_TIMEOUT_S. On failure shows the logs of the daemons that are not
# healthy and returns 1.
wait_healthy() {
    local out=$RUN/status.out deadline=$((SECONDS + UP_TIMEOUT_S)) name
    [[ -n $WASL_STATUS_TARGETS ]] || {
        say "no daemon built yet: nothing to wait for"
        return 0
    }
    local dead
    until status_check "$out"; do
        # A daemon that already exited will not become healthy: no need to wait for it.
        dead=0
        for name in "${BUILT[@]}"; do daemon_running "$name" || dead=1; done
        if ((SECONDS >= deadline || dead)); then
            cat "$out" >&2
            say "not healthy after $((SECONDS - deadline + UP_TIMEOUT_S))s"
            for name in "${BUILT[@]}"; do
                if ! curl -fsS -m 2 -o /dev/null \
                    "http://127.0.0.1:$(admin_port "$name")/healthz" 2>/dev/null; then
                    daemon_running "$name" || say "$name is not running"
                    log_tail "$LOG/$name.log"
                fi
            done
            return 1
        fi
        sleep 0.5
    done
    cat "$out"
}

start_stack() {
    local mode=$1 name
    make_dirs
    WASL_DEV_TOKEN=${WASL_DEV_TOKEN:-$(dev_token)}
    export WASL_DEV_TOKEN
    if [[ -z ${WASL_PII_KEY:-} ]]; then
        WASL_PII_KEY_FILE=${WASL_PII_KEY_FILE:-$(pii_key)}
        export WASL_PII_KEY_FILE
    fi
    start_pg
    start_redis "$mode"
    prepare
    write_env
    for name in "${BUILT[@]}"; do start_daemon "$name" "$mode"; done
}

stack_up_already() {
    local name
    pg_running && redis_running || return 1
    for name in "${BUILT[@]}"; do daemon_running "$name" || return 1; done
    [[ -s $VAR/stack.env ]]
}

anything_running() {
    local name
    pg_running && return 0
    redis_running && return 0
    for name in "${DAEMONS[@]}"; do daemon_running "$name" && return 0; done
    return 1
}

# ---- commands --------------------------------------------------------------------------------

cmd_up() {
    if stack_up_already; then
        say "already up (deploy/stack.sh down to stop it)"
        status_check "$RUN/status.out" && cat "$RUN/status.out" && return 0
        cat "$RUN/status.out" >&2
        die "running but not healthy; see $LOG"
    fi
    start_stack up
    if ! wait_healthy; then
        die "stack not healthy; logs in $LOG, stop it with deploy/stack.sh down"
    fi
    say "up; environment in $VAR/stack.env"
    desk_hint
}

# Where people sign in (when the desk is built), and how they get a password.
desk_hint() {
    [[ " ${BUILT[*]} " == *" desk "* ]] || return 0
    say "the desk: $WASL_DESK_URL (demo people and their passwords: $VAR/demo_accounts;" \
        "others: build/bin/waslctl agent passwd ID)"
}

RUN_STOPPING=0
run_cleanup() {
    ((RUN_STOPPING == 0)) || return 0
    RUN_STOPPING=1
    trap '' INT TERM # a second Ctrl-C must not cut the shutdown short
    say "stopping"
    stop_all
    wait 2>/dev/null || true # reap our children and the log prefixers
    say "stopped"
}

cmd_run() {
    if anything_running; then
        die "a stack is already running on $VAR (deploy/stack.sh down first)"
    fi
    trap 'run_cleanup' EXIT
    trap 'run_cleanup; exit 0' INT TERM
    start_stack run
    wait_healthy || say "warning: not healthy yet; the stack keeps running"
    say "running; Ctrl-C stops everything"
    desk_hint
    local name pid reported=()
    while :; do
        # sleep in the background: `wait` returns as soon as a signal arrives.
        sleep 1 &
        wait $! || true
        for name in "${BUILT[@]}"; do
            pid=$(daemon_pid "$name")
            [[ -n $pid && " ${reported[*]} " != *" $name "* ]] || continue
            if ! pid_alive "$pid" "$(binname "$name")"; then
                local code=0
                wait "$pid" 2>/dev/null || code=$?
                say "$name exited (status $code)"
                reported+=("$name")
            fi
        done
    done
}

cmd_down() {
    if ! anything_running; then
        # Still sweep stale pid files so the next `up` starts clean.
        rm -f "$RUN"/*.pid 2>/dev/null || true
        say "nothing running"
        return 0
    fi
    stop_all
    local name
    for name in "${DAEMONS[@]}"; do
        ! daemon_running "$name" || die "$name still running"
    done
    ! redis_running || die "redis still running"
    ! pg_running || die "postgres still running"
    say "down"
}

cmd_env() {
    [[ -s $VAR/stack.env ]] || die "no $VAR/stack.env yet (deploy/stack.sh up)"
    cat "$VAR/stack.env"
}

case ${1:-} in
run) cmd_run ;;
up) cmd_up ;;
down) cmd_down ;;
env) cmd_env ;;
*)
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
