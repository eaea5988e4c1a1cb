#!/usr/bin/python3
"""bench.py — `make bench`: Wasl end to end on one machine, against its ceilings.

Brings up its own local stack (deploy/stack.sh with WASL_VAR=var/bench/stack, its own ports,
a fresh database) with an SMS gateway sink (build/bench/sms_sink) so that every report's
acknowledgement really goes out, then:

  0. the cost of one contact (BENCH_COST_N=2000 at BENCH_COST_RATE=1000/s, first, on the idle
     stack): rows inserted and updated (HOT, non-HOT) per table, index entries per index, WAL
     bytes and commits per contact, from the statistics views settled before and after
     (tests/bench/e2e/cost.py says how; var/bench/cost-<UTC>.json). `make bench-cost`
     (BENCH_ONLY=cost) runs this alone on free ports, in under a minute;
  1. latency at each offered rate of BENCH_LAT_RATES (250,500,1000; BENCH_LAT_S=20 each): from
     the ticket's commit (the 2xx follows it; `tickets.created_at`) to routed
     (`tickets.routed_at`) and to the acknowledgement sent (the ack notification's `sent_at`),
     p50/p99/max;
  2. saturation (BENCH_SAT_S=20, wrk unpaced): accepted tickets/s;
  3. sustained (BENCH_SUSTAIN_RATE=5000 offered for BENCH_SUSTAIN_S=60): accepted/s, tickets
     carried all the way to the acknowledgement per second (e2e_tps), per-stage throughput,
     every daemon's RSS (idle, and the most under load), n_dead_tup of work, notifications,
     offers and tickets every BENCH_DEAD_EVERY_S=3 s (the most, and the curve in the json), and
     after the drain (bounded by BENCH_DRAIN_S=300) what was lost: acknowledged contacts
     without a ticket, or dead work;
  4. ceilings: the pipeline's own (tests/bench/pipeline_ceiling.py: pgbench replaying the SQL
     intake, the classifier, the router and the notifier run for each contact, at their batch
     sizes — pg_pipeline_ceiling_contacts_s), pgbench with intake's durable insert alone
     (tests/bench/pg_ceiling.sh, one ticket per commit and 32 per commit), redis-benchmark, raw
     ZeroMQ through a wasl-bus (with CURVE);
  5. the per-service benches (BENCH_SERVICES=1): classifier, router, caselookup, intake, desk;
  6. the scaling proof (BENCH_SCALING=1): 1, 2 and 3 classifiers, then routers, on a backlog of
     BENCH_SCALE_N tickets — per-instance counts and throughput — and a run where one of three
     is killed halfway: every ticket still done, none twice.

Output: a table on stdout, var/bench/bench-<UTC>.json (and latest.json), var/bench/latency.png
(the CDF at the highest rate), latency-rates.png (p50/p99 per offered rate) and throughput.png
(gnuplot), a progress line on stderr; the last line is exactly
`e2e_tps=<n> p99_ms_at_1k=<n> pg_ceiling_rows_s=<n> ratio=<n> lost=<n>` where p99_ms_at_1k is
commit → acknowledgement sent at 1,000/s offered, pg_ceiling_rows_s is the pipeline's ceiling in
contacts per second (pg_pipeline_ceiling_contacts_s; the name is kept for the line's readers)
and ratio is e2e_tps over it. Everything runs on this machine: load generator, PostgreSQL, Redis,
bus and daemons. BENCH_PORTS=free takes free ports instead of the fixed ones.
"""

import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg2

import cost as costmod

REPO = Path(__file__).resolve().parents[3]
BIN = REPO / "build" / "bin"
TOOLS = REPO / "build" / "bench"
OUT = REPO / "var" / "bench"
STACK_VAR = OUT / ("stack-cost" if os.environ.get("BENCH_ONLY") == "cost" else "stack")


def knob(name, default):
    return type(default)(os.environ.get(name, default))


# Latency at these offered rates (item 4 of issue 16), BENCH_LAT_S each.
LAT_RATES = [int(x) for x in os.environ.get("BENCH_LAT_RATES", "250,500,1000").split(",") if x]
LAT_S = knob("BENCH_LAT_S", 20)
SAT_S = knob("BENCH_SAT_S", 20)
SUSTAIN_RATE = knob("BENCH_SUSTAIN_RATE", 5000)
SUSTAIN_S = knob("BENCH_SUSTAIN_S", 60)
DRAIN_S = knob("BENCH_DRAIN_S", 300)
CONNECTIONS = knob("BENCH_CONNECTIONS", 64)
THREADS = knob("BENCH_THREADS", 2)
SERVICES = knob("BENCH_SERVICES", 1)
SCALING = knob("BENCH_SCALING", 1)
SCALE_POST_S = knob("BENCH_SCALE_POST_S", 3)
PG_CEILING_S = knob("BENCH_PG_S", 15)
PIPE_CLIENTS = knob("BENCH_PIPE_CLIENTS", 4)
PYTHON = sys.executable or "/usr/bin/python3"

COST_N = knob("BENCH_COST_N", 2000)
COST_RATE = knob("BENCH_COST_RATE", 1000)
DEAD_EVERY_S = knob("BENCH_DEAD_EVERY_S", 3)
# BENCH_ONLY=cost: only the cost of one contact (make bench-cost), on free ports (below).
ONLY = os.environ.get("BENCH_ONLY", "")

PORTS = {"pg": 54420, "redis": 63890, "http": 8180, "bus": 7200, "sink": 8190, "bus2": 7300}
ADMIN = {"bus": 9200, "intake": 9201, "classifier": 9202, "router": 9203, "notifier": 9204,
         "caselookup": 9205}


def free_port(count=1):
    """A port (the first of `count` free in a row) free on 127.0.0.1 a moment ago."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count <= 65535 and all(port_free(base + i) for i in range(count)):
            return base
    raise SystemExit("bench: no block of free ports")


def use_free_ports():
    """The fixed ports are for the one `make bench` on the machine; BENCH_PORTS=free (make
    bench-cost) takes free ones so that several worktrees can measure at once."""
    PORTS.update({k: free_port(8 if k == "bus" else 1) for k in PORTS})
    ADMIN.update({k: free_port() for k in ADMIN})
DAEMONS = list(ADMIN)
STAGE_EVENTS = ["received", "classified", "routed", "notification.sent"]


# ---- output ------------------------------------------------------------------------------

class Progress:
    """One line on stderr, rewritten in place on a terminal, every 5 s otherwise."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, text, force=False):
        now = time.monotonic()
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()
        elif force or now - self.last >= 5:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
            self.last = now

    def done(self, text):
        if self.tty:
            sys.stderr.write("\r\033[K")
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


PROGRESS = Progress()


def say(text):
    PROGRESS.done("bench: " + text)


# ---- the stack ---------------------------------------------------------------------------

def stack_environment():
    env = dict(os.environ)
    env.update({
        "WASL_VAR": str(STACK_VAR), "WASL_PG_PORT": str(PORTS["pg"]),
        "WASL_REDIS_PORT": str(PORTS["redis"]), "WASL_HTTP_PORT": str(PORTS["http"]),
        "WASL_BUS_PORT": str(PORTS["bus"]), "WASL_LOG_LEVEL": "warn",
        # Every report gets its acknowledgement now: no quiet hours, no per-recipient limits.
        "WASL_NOTIFIER_QUIET_START_H": "0", "WASL_NOTIFIER_QUIET_END_H": "0",
        "WASL_NOTIFIER_RCPT_MAX": "0", "WASL_NOTIFIER_TICKET_MAX": "0",
        "WASL_SMS_MODE": "webhook", "WASL_SMS_URL": f"http://127.0.0.1:{PORTS['sink']}/sms",
    })
    for name, port in ADMIN.items():
        env[f"WASL_{name.upper()}_ADMIN_PORT"] = str(port)
    # The desk is not measured; its ports must only not collide with a `make run` nearby.
    env["WASL_DESK_PORT"], env["WASL_DESK_ADMIN_PORT"] = str(free_port()), str(free_port())
    return env


def read_stack_env():
    out = {}
    for line in (STACK_VAR / "stack.env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            out[key] = shlex.split(value)[0] if value else ""
    return out


def stack(cmd, env, timeout=180):
    r = subprocess.run([str(REPO / "deploy" / "stack.sh"), cmd], env=env, capture_output=True,
                       text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"bench: deploy/stack.sh {cmd} failed")


def pid_of(name):
    try:
        return int((STACK_VAR / "run" / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def metrics(port):
    """{series: value} from a daemon's /metrics (series with labels as written)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def metric_sum(m, prefix):
    return sum(v for k, v in m.items() if k == prefix or k.startswith(prefix + "{"))


# ---- load --------------------------------------------------------------------------------

def wrk(env, token, run_id, rate, seconds, connections=CONNECTIONS, watch=None):
    """POSTs reports with wrk (tests/bench/intake/post.lua, a different beneficiary each) for
    `seconds` at `rate`/s (0: as fast as it goes); returns post.lua's result fields. `watch`
    is called about every second while it runs."""
    wenv = dict(env, WASL_BENCH_TOKEN=token, WASL_BENCH_RUN=run_id, WASL_BENCH_RATE=str(rate),
                WASL_BENCH_THREADS=str(THREADS), WASL_BENCH_CONNECTIONS=str(connections),
                WASL_BENCH_UNIQUE_PHONES="1")
    p = subprocess.Popen(["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s",
                          "--timeout", "10s", "-s", str(REPO / "tests/bench/intake/post.lua"),
                          env["WASL_HTTP_URL"]], env=wenv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    start = time.monotonic()
    while p.poll() is None:
        if watch:
            watch(time.monotonic() - start)
        try:
            p.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() - start > seconds + 60:
            p.kill()
            raise SystemExit("bench: wrk did not finish")
    out = p.stdout.read()
    line = next((l for l in out.splitlines() if l.startswith("wasl:")), None)
    if not line:
        raise SystemExit("bench: no result from wrk:\n" + out)
    fields = dict(kv.split("=", 1) for kv in line[len("wasl: "):].split())
    return {k: (float(v) if re.fullmatch(r"[0-9.]+", v) else v) for k, v in fields.items()}


def pipeline_counts():
    c, r, n = metrics(ADMIN["classifier"]), metrics(ADMIN["router"]), metrics(ADMIN["notifier"])
    return {"classified": metric_sum(c, "wasl_classifier_classified_total"),
            "routed": metric_sum(r, "wasl_router_routed_total"),
            "acked": metric_sum(n, "wasl_notifier_sent_total")}


class Sampler:
    """The progress line and the daemons' RSS, about once a second."""

    def __init__(self, phase):
        self.phase = phase
        self.rss_max = {}

    def __call__(self, elapsed):
        for name in DAEMONS:
            pid = pid_of(name)
            v = rss_mib(pid) if pid else None
            if v is not None:
                self.rss_max[name] = max(self.rss_max.get(name, 0.0), v)
        c = pipeline_counts()
        PROGRESS.show(f"bench: {self.phase} {elapsed:5.0f}s  classified {c['classified']:.0f}  "
                      f"routed {c['routed']:.0f}  acks sent {c['acked']:.0f}")


def run_rows(db, run_id, sql_tail, params=()):
    with db.cursor() as cur:
        cur.execute(sql_tail, (f"bench-{run_id}-%",) + tuple(params))
        return cur.fetchall()


def run_tickets(db, run_id):
    """Tickets of the run in the database: wrk counts only the answers it waited for, and the
    requests still in flight when it stopped were committed too."""
    (n,), = run_rows(db, run_id, "SELECT count(*) FROM tickets WHERE external_id LIKE %s")
    return n


def drain(db, run_id, sampler, limit_s):
    """Waits until every ticket of the run has its acknowledgement sent (or `limit_s`)."""
    accepted = run_tickets(db, run_id)
    start = time.monotonic()
    while True:
        (done,), = run_rows(db, run_id, "SELECT count(*) FROM tickets t JOIN notifications n"
                            " ON n.ticket_id = t.id AND n.kind = 'ack' AND n.state = 'sent'"
                            " WHERE t.external_id LIKE %s")
        elapsed = time.monotonic() - start
        sampler(elapsed)
        if done >= accepted or elapsed > limit_s:
            return accepted, done, elapsed
        time.sleep(1)


def latency(db, run_id):
    """Commit → routed and commit → acknowledgement sent, in ms, over the run's tickets."""
    rows = run_rows(db, run_id, """
        SELECT count(*), count(t.routed_at), count(n.sent_at),
          percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
            extract(epoch FROM t.routed_at - t.created_at) * 1000),
          max(extract(epoch FROM t.routed_at - t.created_at) * 1000),
          percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
            extract(epoch FROM n.sent_at - t.created_at) * 1000),
          max(extract(epoch FROM n.sent_at - t.created_at) * 1000),
          extract(epoch FROM max(n.sent_at) - min(t.created_at))
        FROM tickets t LEFT JOIN notifications n ON n.ticket_id = t.id AND n.kind = 'ack'
        WHERE t.external_id LIKE %s""")[0]
    n, routed, sent, rp, rmax, sp, smax, span = rows
    r = lambda v: round(float(v), 2) if v is not None else None  # noqa: E731
    return {"tickets": n, "routed": routed, "acked": sent,
            "routed_p50_ms": r(rp[0]) if rp else None, "routed_p99_ms": r(rp[1]) if rp else None,
            "routed_max_ms": r(rmax), "ack_p50_ms": r(sp[0]) if sp else None,
            "ack_p99_ms": r(sp[1]) if sp else None, "ack_max_ms": r(smax),
            "span_s": r(span)}


def stage_rates(db, run_id):
    """Per pipeline step: how many of the run's tickets passed it, and at what rate."""
    rows = run_rows(db, run_id, """
        SELECT e.kind, count(*), extract(epoch FROM max(e.at) - min(e.at))
        FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
        WHERE t.external_id LIKE %s AND e.kind = ANY(%s) GROUP BY e.kind""", (STAGE_EVENTS,))
    return {k: {"count": n, "per_s": round(n / s, 1) if s else None} for k, n, s in rows}


def losses(db, run_id, accepted):
    (tickets,), = run_rows(db, run_id, "SELECT count(*) FROM tickets WHERE external_id LIKE %s")
    (dead,), = run_rows(db, run_id, """
        SELECT (SELECT count(*) FROM work w JOIN tickets t ON t.id = w.ticket_id
                WHERE t.external_id LIKE %s AND w.state = 'dead')
             + (SELECT count(*) FROM notifications n JOIN tickets t ON t.id = n.ticket_id
                WHERE t.external_id LIKE %s AND n.state IN ('dead', 'failed'))""",
                        (f"bench-{run_id}-%",))
    return {"accepted": int(accepted), "tickets": tickets,
            "missing": max(0, int(accepted) - tickets), "dead": dead,
            "lost": max(0, int(accepted) - tickets) + dead}


def per_second(db, run_id):
    """Events per second over the run (the throughput plot)."""
    return run_rows(db, run_id, """
        SELECT floor(extract(epoch FROM e.at - (SELECT min(t0.created_at) FROM tickets t0
                                                 WHERE t0.external_id LIKE %s)))::int AS s,
               e.kind, count(*)
        FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
        WHERE t.external_id LIKE %s AND e.kind = ANY(%s) GROUP BY 1, 2 ORDER BY 1""",
                    (f"bench-{run_id}-%", STAGE_EVENTS))


def latency_cdf(db, run_id):
    rows = run_rows(db, run_id, """
        SELECT extract(epoch FROM t.routed_at - t.created_at) * 1000,
               extract(epoch FROM n.sent_at - t.created_at) * 1000
        FROM tickets t JOIN notifications n ON n.ticket_id = t.id AND n.kind = 'ack'
        WHERE t.external_id LIKE %s AND n.sent_at IS NOT NULL AND t.routed_at IS NOT NULL""")
    routed = sorted(float(a) for a, _ in rows)
    acked = sorted(float(b) for _, b in rows)
    return routed, acked


def measure_cost(db, env, token, stamp):
    """Item 1 of issue 16: BENCH_COST_N contacts at BENCH_COST_RATE/s through the idle stack to
    the acknowledgement, the statistics settled before and after (tests/bench/e2e/cost.py)."""
    mon = costmod.Monitor(db)
    PROGRESS.show("bench: cost: the idle stack's own commits …", force=True)
    background, before = costmod.idle_rate(mon)
    run_id = f"cost-{stamp}"
    s = Sampler("cost")
    # wrk's paced schedule ramps up over its first second: one second more than N/rate makes it
    # about N (2,000-2,900 measured); the figures are divided by the run's tickets in the db.
    seconds = max(1, -(-COST_N // COST_RATE)) + 1
    load = wrk(env, token, run_id, COST_RATE, seconds, watch=s)
    accepted, done, _ = drain(db, run_id, s, DRAIN_S)  # accepted: the run's tickets in the db
    start = time.monotonic()
    while not costmod.pipeline_idle(mon) and time.monotonic() - start < DRAIN_S:
        time.sleep(0.5)
    after = costmod.settle(mon)
    # Counted again once idle: a request wrk stopped waiting for was committed all the same.
    accepted = run_tickets(db, run_id)
    out = costmod.diff(before, after, accepted, background)
    out.update(rate=COST_RATE, acked=done, http=load, background=background,
               losses=losses(db, run_id, load["s201"] + load["s200"]))
    return out


class DeadTuples:
    """n_dead_tup of work, notifications, offers and tickets every BENCH_DEAD_EVERY_S seconds
    (wraps the sustained run's Sampler)."""

    def __init__(self, db, inner):
        self.mon = costmod.Monitor(db)
        self.inner = inner
        self.curve = []
        self.t0 = time.monotonic()
        self.last = -DEAD_EVERY_S

    def __call__(self, elapsed):
        self.inner(elapsed)
        now = time.monotonic() - self.t0
        if now - self.last >= DEAD_EVERY_S:
            self.last = now
            self.curve.append({"s": round(now, 1), **costmod.dead_tuples(self.mon)})

    @property
    def rss_max(self):
        return self.inner.rss_max

    def summary(self):
        tables = costmod.DEAD_TABLES
        return {"every_s": DEAD_EVERY_S,
                "max": {t: max((c.get(t, 0) for c in self.curve), default=0) for t in tables},
                "curve": self.curve}


# ---- ceilings ----------------------------------------------------------------------------

def pg_ceiling(env, clients, batch):
    r = subprocess.run([str(REPO / "tests/bench/pg_ceiling.sh"), str(clients), str(THREADS),
                        str(PG_CEILING_S), str(batch)], env=env, capture_output=True, text=True,
                       timeout=PG_CEILING_S + 120, check=False)
    m = re.search(r"tickets_per_s=(\d+) tps=([0-9.]+)", r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit("bench: pg_ceiling.sh failed:\n" + r.stderr[-2000:])
    return {"clients": clients, "tickets_per_transaction": batch,
            "tickets_per_s": int(m.group(1)), "tps": float(m.group(2))}


def pipeline_ceiling(env):
    """pg_pipeline_ceiling_contacts_s: tests/bench/pipeline_ceiling.py (pgbench replaying the
    daemons' own statements for each contact at their batch sizes, on scratch copies)."""
    r = subprocess.run([PYTHON, str(REPO / "tests/bench/pipeline_ceiling.py"), "--clients",
                        str(PIPE_CLIENTS), "--threads", str(THREADS), "--seconds",
                        str(PG_CEILING_S)], env=env, capture_output=True, text=True,
                       timeout=PG_CEILING_S + 300, check=False)
    m = re.search(r"contacts_per_s=(\d+) tps=([0-9.]+) batch=(\d+) clients=(\d+) "
                  r"completed=(\d+) tickets=(\d+)", r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit("bench: pipeline_ceiling.py failed:\n" + r.stderr[-2000:])
    contacts, tps, batch, clients, completed, tickets = m.groups()
    return {"contacts_per_s": int(contacts), "tps": float(tps), "batch": int(batch),
            "clients": int(clients), "completed": int(completed), "tickets": int(tickets),
            "note": f"{clients} clients, {batch} contacts per script"}


def redis_ceiling(env):
    r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(PORTS["redis"]), "-q",
                        "-n", "200000", "-c", "50", "-t", "set,get,incr"], capture_output=True,
                       text=True, timeout=120, check=False)
    out = {}
    for m in re.finditer(r"([A-Z]+): ([0-9.]+) requests per second", r.stdout.replace("\r", "\n")):
        out[m.group(1).lower() + "_per_s"] = float(m.group(2))
    return out


def zmq_ceiling(env):
    """Raw messages through a second wasl-bus (no daemon on it), CURVE as the stack runs."""
    # The tool pushes and pulls as waslctl: this bus admits that key on every socket.
    allow = ";".join(f"{stage}=waslctl>waslctl" for stage in ("rpc", "classify", "route",
                                                             "notify"))
    benv = dict(env, WASL_BUS_PORT=str(PORTS["bus2"]), WASL_ADMIN_PORT="9299",
                WASL_CURVE_NAME="bus", WASL_LOG_LEVEL="warn", WASL_BUS_ALLOW=allow)
    bus = subprocess.Popen([str(BIN / "wasl-bus")], env=benv, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # bind; the tool's warm-up message waits for both handshakes anyway
        cenv = dict(env, WASL_CURVE_NAME="waslctl", WASL_LOG_LEVEL="warn")
        r = subprocess.run([str(TOOLS / "zmq_ceiling"), f"tcp://127.0.0.1:{PORTS['bus2']}",
                            "classify", "500000", "64"], env=cenv, capture_output=True,
                           text=True, timeout=120, check=False)
        return json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {
            "error": r.stderr.strip()}
    finally:
        bus.terminate()
        bus.wait(timeout=10)


# ---- per-service benches -----------------------------------------------------------------

def service_benches(env):
    out = {}
    runs = [("classifier", ["tests/bench/classifier/run.sh"]),
            ("router", ["tests/bench/router/run.sh"]),
            ("caselookup", ["tests/bench/caselookup/run.sh"]),
            ("intake", ["tests/bench/intake/run.sh"]),
            ("desk", ["tests/bench/desk/run.sh"])]
    for name, cmd in runs:
        PROGRESS.show(f"bench: per-service bench {name} …", force=True)
        t0 = time.monotonic()
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
                           check=False)
        # The figures: key=value lines, or caselookup's "bench caselookup …" lines.
        lines = [l for l in r.stdout.splitlines()
                 if re.search(r"\w=\S", l) or l.startswith(("bench caselookup", "bench desk"))]
        out[name] = {"exit": r.returncode, "seconds": round(time.monotonic() - t0, 1),
                     "result": lines[-3:]}
    return out


# ---- scaling -----------------------------------------------------------------------------

class Instances:
    """Extra daemon processes the bench starts itself (admin ports 9210+), on the stack's env."""

    def __init__(self, env):
        self.env = env
        self.procs = []
        self.next_port = 9250

    def start(self, name, extra):
        while not port_free(self.next_port):
            self.next_port += 1
        port = self.next_port
        self.next_port += 1
        # Its own database role, as deploy/stack.sh starts it (stack.env's WASL_PG_URL is the
        # operator's, wasl_ctl, which may not call the stages' functions).
        pg_url = self.env.get(f"WASL_{name.upper()}_PG_URL",
                              f"postgresql://wasl_{name}@127.0.0.1:{PORTS['pg']}/wasl")
        env = dict(self.env, WASL_ADMIN_PORT=str(port), WASL_CURVE_NAME=name, WASL_PG_URL=pg_url,
                   **extra)
        log = open(STACK_VAR / "log" / f"{name}-{port}.log", "ab")
        p = subprocess.Popen([str(BIN / f"wasl-{name}")], env=env, stdout=log, stderr=log)
        p.admin_port = port
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def stop_stack_daemon(name):
    pid = pid_of(name)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(150):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)


def scaling(db, env, token, inst):
    """1, 2, 3 classifiers, then routers, each on a fresh backlog; then 3 with one killed."""
    stage_cfg = {
        "classifier": ("classified", "wasl_classifier_classified_total",
                       {"WASL_CLASSIFIER_SWEEP_AGE_MS": "0", "WASL_CLASSIFIER_LEASE_S": "5"}),
        "router": ("routed", "wasl_router_routed_total",
                   {"WASL_ROUTER_SWEEP_AGE_MS": "0", "WASL_ROUTER_LEASE_S": "5"}),
    }
    for d in ("notifier", "router", "classifier"):
        stop_stack_daemon(d)
    results = {}
    upstream = None  # the router runs need classified tickets: one classifier feeds them
    for stage, (event, counter, extra) in stage_cfg.items():
        results[stage] = []
        if stage == "router":
            upstream = inst.start("classifier", {})
            # The classifier runs left their tickets waiting for a router: route them first,
            # so that each router run below measures its own backlog only.
            sweeper = inst.start("router", extra)
            start = time.monotonic()
            while time.monotonic() - start < DRAIN_S:
                with db.cursor() as cur:
                    cur.execute("SELECT count(*) FROM work WHERE stage = 'route'"
                                " AND state IN ('pending', 'running')")
                    left = cur.fetchone()[0]
                PROGRESS.show(f"bench: scaling: routing what the classifier runs left ({left})")
                if left == 0:
                    break
                time.sleep(0.5)
            sweeper.terminate()
            sweeper.wait(timeout=15)
            inst.procs = [p for p in inst.procs if p is not sweeper]
        for k, kill_one in ((1, False), (2, False), (3, False), (3, True)):
            run_id = f"scale-{stage}-{k}{'k' if kill_one else ''}-{int(time.time())}"
            wrk(env, token, run_id, 0, SCALE_POST_S)
            accepted = run_tickets(db, run_id)
            if stage == "router":  # wait until the backlog is classified, with no router up
                wait_count(db, run_id, "classified", accepted, 120)
            workers = [inst.start(stage, extra) for _ in range(k)]
            t0 = time.monotonic()
            killed = None
            while True:
                done = event_count(db, run_id, event)
                PROGRESS.show(f"bench: scaling {stage} x{k}{' (one killed)' if kill_one else ''}"
                              f"  {done}/{accepted}")
                if kill_one and killed is None and done >= accepted // 2:
                    killed = workers[0]
                    killed_count = metric_sum(metrics(killed.admin_port), counter)
                    killed.kill()
                if done >= accepted or time.monotonic() - t0 > 120:
                    break
                time.sleep(0.05)
            seconds = time.monotonic() - t0
            per = []
            for w in workers:
                per.append(int(killed_count) if w is killed else
                           int(metric_sum(metrics(w.admin_port), counter)))
            (twice,), = run_rows(db, run_id, """
                SELECT count(*) FROM (SELECT e.ticket_id FROM tickets t
                  JOIN ticket_events e ON e.ticket_id = t.id
                  WHERE t.external_id LIKE %s AND e.kind = %s
                  GROUP BY e.ticket_id HAVING count(*) > 1) x""", (event,))
            results[stage].append({
                "instances": k, "one_killed": kill_one, "tickets": accepted, "done": done,
                "seconds": round(seconds, 2), "per_s": round(done / seconds, 1),
                "per_instance": per, "done_twice": twice, "missing": max(0, accepted - done)})
            for w in workers:
                if w.poll() is None:
                    w.terminate()
                    w.wait(timeout=15)
            inst.procs = [p for p in inst.procs if p not in workers]
        if upstream:
            upstream.terminate()
            upstream.wait(timeout=15)
            inst.procs = [p for p in inst.procs if p is not upstream]
    return results


def event_count(db, run_id, kind):
    (n,), = run_rows(db, run_id, "SELECT count(*) FROM tickets t JOIN ticket_events e ON"
                     " e.ticket_id = t.id WHERE t.external_id LIKE %s AND e.kind = %s", (kind,))
    return n


def wait_count(db, run_id, kind, n, limit_s):
    start = time.monotonic()
    while event_count(db, run_id, kind) < n and time.monotonic() - start < limit_s:
        time.sleep(0.2)


# ---- plots -------------------------------------------------------------------------------

def plot_rates(lat_rates):
    """latency-rates.png: p50 and p99 of commit → routed and → acknowledgement per offered rate."""
    with open(OUT / "latency-rates.dat", "w") as f:
        for rate, x in sorted(lat_rates.items(), key=lambda kv: int(kv[0])):
            v = x["latency"]
            f.write(f"{rate} " + " ".join(str(v[k] if v[k] is not None else "NaN") for k in (
                "routed_p50_ms", "routed_p99_ms", "ack_p50_ms", "ack_p99_ms")) + "\n")
    script = f"""set terminal pngcairo size 900,520 font ",10"
set output "{OUT / 'latency-rates.png'}"
set title "Wasl end to end: ticket commit (2xx) to routed and to acknowledgement sent"
set xlabel "offered contacts per second"; set ylabel "milliseconds"; set logscale y; set grid
set key left top; set xtics ({", ".join(lat_rates)})
plot "{OUT / 'latency-rates.dat'}" using 1:2 with linespoints lw 2 title "routed p50", \\
     "" using 1:3 with linespoints lw 2 title "routed p99", \\
     "" using 1:4 with linespoints lw 2 title "ack p50", \\
     "" using 1:5 with linespoints lw 2 title "ack p99"
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)
    return str(OUT / "latency-rates.png")


def plots(cdf, rates, lat_rates, cdf_rate):
    if not shutil.which("gnuplot"):
        say("gnuplot not found: no plots (apt-get install gnuplot-nox)")
        return []
    made = [plot_rates(lat_rates)] if lat_rates else []
    routed, acked = cdf
    if acked:
        with open(OUT / "latency.dat", "w") as f:
            n = len(acked)
            for i in range(0, 1001):
                q = i / 1000
                idx = min(n - 1, int(q * (n - 1)))
                f.write(f"{q * 100:.1f} {routed[idx]:.3f} {acked[idx]:.3f}\n")
        script = f"""set terminal pngcairo size 900,520 font ",10"
set output "{OUT / 'latency.png'}"
set title "Wasl end to end at {cdf_rate}/s offered: ticket commit (2xx) to ..."
set xlabel "percentile"; set ylabel "milliseconds"; set logscale y; set grid
set key left top
plot "{OUT / 'latency.dat'}" using 1:2 with lines lw 2 title "routed", \\
     "" using 1:3 with lines lw 2 title "acknowledgement sent"
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=False)
        made.append(str(OUT / "latency.png"))
    if rates:
        series = {}
        for s, kind, n in rates:
            series.setdefault(s, {})[kind] = n
        with open(OUT / "throughput.dat", "w") as f:
            for s in sorted(series):
                f.write(f"{s} " + " ".join(str(series[s].get(k, 0)) for k in STAGE_EVENTS) + "\n")
        script = f"""set terminal pngcairo size 900,520 font ",10"
set output "{OUT / 'throughput.png'}"
set title "Sustained run ({SUSTAIN_RATE}/s offered for {SUSTAIN_S} s): tickets per second"
set xlabel "seconds since the first ticket"; set ylabel "per second"; set grid
plot for [i=2:5] "{OUT / 'throughput.dat'}" using 1:i with lines lw 2 \\
     title word("received classified routed ack-sent", i-1)
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=False)
        made.append(str(OUT / "throughput.png"))
    return made


# ---- main --------------------------------------------------------------------------------

def main():
    for tool in ("sms_sink", "zmq_ceiling"):
        if not (TOOLS / tool).exists():
            raise SystemExit(f"bench: {TOOLS / tool} missing (make bench builds it)")
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk not found (deploy/deps.sh)")
    if ONLY not in ("", "cost"):
        raise SystemExit("bench: BENCH_ONLY is empty (everything) or cost")
    if ONLY == "cost" or os.environ.get("BENCH_PORTS") == "free":
        use_free_ports()
    OUT.mkdir(parents=True, exist_ok=True)
    env = stack_environment()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report = {"started": stamp, "cpus": os.cpu_count(),
              "knobs": {"lat_rates": LAT_RATES, "lat_s": LAT_S, "sat_s": SAT_S,
                        "sustain_rate": SUSTAIN_RATE, "sustain_s": SUSTAIN_S,
                        "connections": CONNECTIONS, "threads": THREADS, "cost_n": COST_N,
                        "cost_rate": COST_RATE}}
    say(f"fresh stack under {STACK_VAR} (ports {PORTS['pg']}, {PORTS['redis']}, "
        f"{PORTS['http']}, {PORTS['bus']}..)")
    stack("down", env, timeout=120)
    shutil.rmtree(STACK_VAR, ignore_errors=True)
    sink = subprocess.Popen([str(TOOLS / "sms_sink"), str(PORTS["sink"])],
                            stdout=subprocess.PIPE, text=True)
    inst = None
    t_start = time.monotonic()
    try:
        stack("up", env)
        env.update(read_stack_env())
        token = os.urandom(32).hex()
        # Its own client: bench-intake (run among the per-service benches) re-keys "bench".
        subprocess.run([str(BIN / "waslctl"), "client", "add", "bench-e2e", "--kind", "api",
                        "--scopes", "reports", "--rate", "1000000", "--token-file", "-"],
                       env=env, check=True, capture_output=True, input=token.encode())
        # The bench reads every table (work, notifications…): as the owner, not as wasl_ctl.
        db = psycopg2.connect(env.get("WASL_PG_OWNER_URL", env["WASL_PG_URL"]))
        db.autocommit = True
        wait_token(env, token)
        inst = Instances(env)
        report["postgresql"] = costmod.Monitor(db).rows("SELECT version()")[0][0]

        time.sleep(2)  # idle: what each daemon holds with nothing to do
        report["rss_idle_mib"] = {d: round(rss_mib(pid_of(d)) or 0, 1) for d in DAEMONS}

        # 0. the cost of one contact, on the idle stack before anything else ran
        report["cost"] = measure_cost(db, env, token, stamp)
        write_cost(report, stamp)
        if ONLY == "cost":
            return
        run_load(db, env, token, stamp, report)
        ceilings(db, env, report)

        # 5. per-service benches, 6. scaling
        if SERVICES:
            report["services"] = service_benches(env)
        if SCALING:
            report["scaling"] = scaling(db, env, token, inst)
        sink_stats = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{PORTS['sink']}/stats", timeout=5).read())
        report["sms_sink"] = sink_stats
        db.close()
    finally:
        if inst:
            inst.stop_all()
        sink.terminate()
        sink.wait(timeout=10)
        if not knob("BENCH_KEEP", 0):
            stack("down", env, timeout=120)
    finish(report, stamp, time.monotonic() - t_start)


def write_cost(report, stamp):
    """var/bench/cost-<UTC>.json and cost-latest.json, and the breakdown on stdout."""
    c = dict(report["cost"], started=stamp, postgresql=report["postgresql"])
    path = OUT / f"cost-{stamp}.json"
    path.write_text(json.dumps(c, indent=2, ensure_ascii=False, default=float))
    (OUT / "cost-latest.json").write_text(path.read_text())
    if ONLY == "cost":
        print_rows(costmod.table_lines(c))
        p = c["per_contact"]
        print(f"json: {path}")
        print(f"cost contacts={c['contacts']} rows_ins={p['rows_inserted']} "
              f"rows_upd_hot={p['rows_updated_hot']} rows_upd_nonhot={p['rows_updated_nonhot']} "
              f"index_entries={p['index_entries']} wal_bytes={p['wal_bytes']:.0f} "
              f"commits={p['commits_net']}")


def run_load(db, env, token, stamp, report):
    """1. latency at each of BENCH_LAT_RATES offered, 2. saturation, 3. sustained."""
    report["latency_rates"] = {}
    for rate in LAT_RATES:
        run_id = f"lat{rate}-{stamp}"
        s = Sampler(f"{rate}/s")
        load = wrk(env, token, run_id, rate, LAT_S, watch=s)
        accepted = load["s201"] + load["s200"]
        drain(db, run_id, s, DRAIN_S)
        report["latency_rates"][str(rate)] = {
            "offered_per_s": rate, "seconds": LAT_S, "http": load,
            "latency": latency(db, run_id), "losses": losses(db, run_id, accepted),
            "rss_max_mib": s.rss_max}
        if rate == LAT_RATES[-1]:
            report["cdf"] = latency_cdf(db, run_id)
    # The 1,000/s run (else the highest rate) is the one the last line and the CDF plot show.
    key = "1000" if "1000" in report["latency_rates"] else str(LAT_RATES[-1])
    report["fixed_rate"] = report["latency_rates"][key]

    run_sat = f"sat-{stamp}"
    s = Sampler("saturation")
    load = wrk(env, token, run_sat, 0, SAT_S, watch=s)
    accepted = load["s201"] + load["s200"]
    _, _, drained = drain(db, run_sat, s, DRAIN_S)
    report["saturation"] = {"seconds": SAT_S, "http": load,
                            "accepted_per_s": load["created_per_s"],
                            "drain_s": round(drained, 1), "losses": losses(db, run_sat, accepted),
                            "rss_max_mib": s.rss_max}

    run_sus = f"sus-{stamp}"
    s = DeadTuples(db, Sampler(f"sustained {SUSTAIN_RATE}/s"))
    load = wrk(env, token, run_sus, SUSTAIN_RATE, SUSTAIN_S, watch=s)
    accepted = load["s201"] + load["s200"]
    _, done, drained = drain(db, run_sus, s, DRAIN_S)
    in_db = run_tickets(db, run_sus)  # the requests in flight when wrk stopped count too
    lat = latency(db, run_sus)
    e2e_tps = round(lat["acked"] / lat["span_s"], 1) if lat["span_s"] else 0.0
    report["sustained"] = {"offered_per_s": SUSTAIN_RATE, "seconds": SUSTAIN_S,
                           "http": load, "accepted_per_s": load["created_per_s"],
                           "e2e_tps": e2e_tps, "latency": lat,
                           "drain_s": round(drained, 1), "unfinished": int(in_db - done),
                           "stages": stage_rates(db, run_sus),
                           "losses": losses(db, run_sus, accepted),
                           "dead_tuples": s.summary(), "rss_max_mib": s.rss_max}
    report["rates"] = per_second(db, run_sus)


def ceilings(db, env, report):
    """4. the ceilings, the pipeline idle: the pipeline's own (pgbench replaying the daemons'
    SQL for one contact), intake's insert alone, Redis, raw ZeroMQ."""
    PROGRESS.show("bench: ceilings: pgbench, the pipeline's SQL …", force=True)
    pipe = pipeline_ceiling(env)
    PROGRESS.show("bench: ceilings: pgbench, intake's insert …", force=True)
    pg1 = pg_ceiling(env, CONNECTIONS, 1)
    pg32 = pg_ceiling(env, 4, 32)
    PROGRESS.show("bench: ceilings: redis-benchmark, ZeroMQ …", force=True)
    report["ceilings"] = {"pipeline": pipe, "pgbench_single": pg1, "pgbench_batched": pg32,
                          "redis": redis_ceiling(env), "zmq_bus": zmq_ceiling(env)}
    intake_best = max(pg1["tickets_per_s"], pg32["tickets_per_s"])
    report["ceilings"]["intake_only_tickets_s"] = intake_best
    ceiling = pipe.get("contacts_per_s") or 0
    report["ceilings"]["pg_pipeline_ceiling_contacts_s"] = ceiling
    e2e_tps = report["sustained"]["e2e_tps"]
    report["ratios"] = {
        "e2e_over_pipeline": round(e2e_tps / ceiling, 3) if ceiling else None,
        "e2e_over_intake_only": round(e2e_tps / intake_best, 3) if intake_best else None,
        "accepted_over_intake_only": round(report["saturation"]["accepted_per_s"] /
                                           intake_best, 3) if intake_best else None,
        "zmq_over_e2e": round(report["ceilings"]["zmq_bus"].get("msgs_per_s", 0) /
                              e2e_tps, 1) if e2e_tps else None,
    }


def finish(report, stamp, seconds):
    """The plots, the json, the table and the last line."""
    if ONLY == "cost":
        return
    report["seconds"] = round(seconds)
    report["plots"] = plots(report.pop("cdf", ([], [])), report.pop("rates", []),
                            report["latency_rates"], LAT_RATES[-1])
    lost = sum(x["losses"]["lost"] for x in report["latency_rates"].values())
    lost += report["saturation"]["losses"]["lost"] + report["sustained"]["losses"]["lost"]
    p99_1k = report["fixed_rate"]["latency"]["ack_p99_ms"] or 0.0
    e2e_tps = report["sustained"]["e2e_tps"]
    ceiling = report["ceilings"]["pg_pipeline_ceiling_contacts_s"]
    ratio = report["ratios"]["e2e_over_pipeline"] or 0.0
    report["summary"] = {"e2e_tps": e2e_tps, "p99_ms_at_1k": p99_1k,
                         "pg_ceiling_rows_s": ceiling, "ratio": ratio, "lost": lost}
    path = OUT / f"bench-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=float))
    (OUT / "latest.json").write_text(path.read_text())
    table(report, path)
    print(f"e2e_tps={e2e_tps:.0f} p99_ms_at_1k={p99_1k:.1f} pg_ceiling_rows_s={ceiling:.0f} "
          f"ratio={ratio:.3f} lost={lost}")


def wait_token(env, token):
    """intake reloads its clients every few seconds: wait until the bench token is taken."""
    deadline = time.monotonic() + 30
    body = json.dumps({"external_id": f"bench-probe-{time.time()}", "body": "probe"}).encode()
    while time.monotonic() < deadline:
        req = urllib.request.Request(env["WASL_HTTP_URL"] + "/v1/reports", data=body,
                                     method="POST", headers={
                                         "Authorization": "Bearer " + token,
                                         "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status in (200, 201):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("bench: intake does not accept the bench token")


def print_rows(rows):
    width = max(len(a) for a, _, _ in rows)
    for a, b, c2 in rows:
        print(f"{a:<{width}}  {b:<28} {c2}".rstrip())


def table(r, path):
    sat, sus, c = r["saturation"], r["sustained"], r["ceilings"]
    rows = [("end to end: ticket commit (2xx) → routed, → acknowledgement sent (ms)", "", "")]
    for rate, x in r["latency_rates"].items():
        lat = x["latency"]
        goal = {"500": ", goal ack p99 < 100", "1000": ", goal ack p99 < 250"}.get(rate, "")
        rows.append((f"  at {rate}/s offered: → routed p50/p99, → ack p50/p99",
                     f"{lat['routed_p50_ms']} / {lat['routed_p99_ms']}, {lat['ack_p50_ms']} / "
                     f"{lat['ack_p99_ms']}", f"{lat['tickets']} tickets, HTTP p99 "
                     f"{x['http']['p99_ms']} ms{goal}"))
    dead = sus["dead_tuples"]["max"]
    rows += [
        ("  saturation: accepted tickets/s", f"{sat['accepted_per_s']:.0f}", ""),
        (f"  sustained {sus['offered_per_s']}/s offered: accepted/s",
         f"{sus['accepted_per_s']:.0f}", ""),
        ("  sustained: carried to the ack, per s (e2e_tps)", f"{sus['e2e_tps']:.0f}",
         "goal >= 3000"),
        ("  sustained: ack p50/p99 ms", f"{sus['latency']['ack_p50_ms']} / "
         f"{sus['latency']['ack_p99_ms']}", ""),
        ("  sustained: drain after the load (s), unfinished",
         f"{sus['drain_s']}, {sus['unfinished']}", ""),
        ("  sustained: most n_dead_tup work / notifications / offers / tickets",
         " / ".join(str(dead.get(t, 0)) for t in ("work", "notifications", "offers",
                                                  "tickets")), "json: dead_tuples.curve"),
        ("  lost (all runs)", f"{r['summary']['lost']}", "goal 0"),
        ("per stage, sustained run (tickets/s)", "", ""),
    ]
    for k in STAGE_EVENTS:
        v = sus["stages"].get(k, {})
        rows.append((f"  {k}", f"{v.get('per_s')}", f"{v.get('count')} tickets"))
    rows.append(("RSS MiB: idle / most under load", "", "goal idle < 32"))
    for d in DAEMONS:
        most = max(x["rss_max_mib"].get(d, 0)
                   for x in (sat, sus, *r["latency_rates"].values()))
        rows.append((f"  {d}", f"{r['rss_idle_mib'].get(d)} / {most:.1f}", ""))
    pipe = c["pipeline"]
    rows += [
        ("ceilings", "", ""),
        ("  pgbench, the pipeline's SQL per contact (contacts/s)",
         f"{c['pg_pipeline_ceiling_contacts_s']}", pipe.get("note", "") +
         ", e2e goal >= 0.6 of it"),
        ("  pgbench, 1 ticket per commit (tickets/s)", f"{c['pgbench_single']['tickets_per_s']}",
         f"{c['pgbench_single']['clients']} clients"),
        ("  pgbench, 32 tickets per commit (tickets/s)",
         f"{c['pgbench_batched']['tickets_per_s']}", f"{c['pgbench_batched']['clients']} clients"),
        ("  redis-benchmark SET/GET/INCR per s",
         " / ".join(f"{c['redis'].get(k, 0):.0f}" for k in ("set_per_s", "get_per_s",
                                                             "incr_per_s")), ""),
        ("  ZeroMQ through wasl-bus, CURVE (msgs/s)", f"{c['zmq_bus'].get('msgs_per_s')}",
         "64-byte messages"),
        ("  ratios: e2e/pipeline, e2e/intake-only, accepted/intake-only, zmq/e2e",
         f"{r['ratios']['e2e_over_pipeline']}, {r['ratios']['e2e_over_intake_only']}, "
         f"{r['ratios']['accepted_over_intake_only']}, {r['ratios']['zmq_over_e2e']}", ""),
    ]
    rows += costmod.table_lines(dict(r["cost"], postgresql=r.get("postgresql", "")))
    for stage, runs in r.get("scaling", {}).items():
        rows.append((f"scaling: {stage}", "", ""))
        for x in runs:
            rows.append((f"  x{x['instances']}{' one killed' if x['one_killed'] else ''}: "
                         f"{x['tickets']} tickets", f"{x['per_s']}/s",
                         f"per instance {x['per_instance']}, twice {x['done_twice']}, "
                         f"missing {x['missing']}"))
    for name, v in r.get("services", {}).items():
        # The desk's figures are three lines (commit → event, API, RSS): all of them.
        shown = v["result"] if name == "desk" else v["result"][-1:]
        for i, line in enumerate(shown or [""]):
            rows.append((f"service bench: {name} (exit {v['exit']})" if i == 0 else "",
                         line[:110], ""))
    print(f"== Wasl bench {r['started']} ({r['cpus']} CPUs, everything on this machine)")
    print_rows(rows)
    print(f"json: {path}; plots: {', '.join(r['plots']) or 'none'}")


if __name__ == "__main__":
    main()
