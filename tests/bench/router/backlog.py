"""backlog.py — wasl-router working a backlog, alone and side by side (make bench-router).

Shaped like the end-to-end bench's scaling rows (tests/bench/e2e/bench.py, scaling): a private
PostgreSQL whose queues already hold BENCH_WAITING routed tickets nobody took (the earlier
phases of a bench, or a day without agents), the shipped rules file, the router's defaults
except a sweep age of 0 and a 5 s lease, as the scaling rows run it. For each instance count
in BENCH_INSTANCES a fresh backlog of BENCH_BACKLOG classified tickets (web reports about a
case, as tests/bench/intake/post.lua posts them) is routed by that many routers started
together; prints the rate, each instance's count, the batch/dispatch/timers histograms, and
how many tickets have no 'routed' event and how many have more than one (both must be 0).
No bus: the routers find the rows by sweeping (a router started late finds its backlog so too).
Prints one key=value line per instance count."""

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from conftest import PgServer, free_port  # noqa: E402

WAITING = int(os.environ.get("BENCH_WAITING", 200000))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", 16000))
INSTANCES = [int(k) for k in os.environ.get("BENCH_INSTANCES", "1,2,3").split(",")]
AGENTS = int(os.environ.get("BENCH_AGENTS", 3))  # the demo people: present, no capacity left
TIMEOUT_S = int(os.environ.get("BENCH_TIMEOUT_S", 240))
SLOW_MS = int(os.environ.get("BENCH_SLOW_MS", 100))  # statements logged and summed per run
EXTRA = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_ROUTER_ENV", "").split() if kv)

TICKETS_SQL = """
WITH t AS (
  INSERT INTO tickets (ref, channel, external_id, status, category, confidence, priority,
                       language, entities, from_phone, received_at, queue, prio_rank,
                       first_response_due, resolution_due, waiting_since, routed_at)
  SELECT lpad((%(base)s + g)::text, 10, '0'), 'web', %(run)s || '-' || g, %(status)s,
         (ARRAY['case_inquiry', 'case_inquiry', 'general_inquiry', 'eservice_support',
                'complaint'])[1 + g %% 5], 0.9,
         (ARRAY['normal', 'normal', 'high', 'low', 'urgent'])[1 + (g / 5) %% 5], 'ar',
         CASE WHEN g %% 5 < 2 THEN '{"case_number": ["4512345678"]}'::jsonb ELSE '{}' END,
         '+9665' || lpad((g %% 100000000)::text, 8, '0'), now() - interval '1 minute',
         CASE WHEN %(status)s = 'routed' THEN
           (ARRAY['case-status', 'general', 'eservices-support', 'complaints'])[1 + g %% 4]
         END,
         CASE WHEN %(status)s = 'routed' THEN 2 END,
         CASE WHEN %(status)s = 'routed' THEN now() + interval '4 hours' END,
         CASE WHEN %(status)s = 'routed' THEN now() + interval '3 days' END,
         CASE WHEN %(status)s = 'routed' THEN now() - interval '1 minute' END,
         CASE WHEN %(status)s = 'routed' THEN now() - interval '1 minute' END
    FROM generate_series(1, %(n)s) g
  RETURNING id, status)
INSERT INTO work (ticket_id, stage, dedupe_key, state)
SELECT id, 'route', 'ticket:' || id || ':route',
       CASE WHEN status = 'routed' THEN 'done' ELSE 'pending' END FROM t
"""


def slow_statements(log, offset):
    """The statements slower than SLOW_MS in this run, by total time (PostgreSQL's log)."""
    total = {}
    with open(log, errors="replace") as f:
        f.seek(offset)
        for line in f:
            m = re.search(r"duration: ([0-9.]+) ms +(?:statement|execute [^:]*): (.{0,90})", line)
            if m:
                t, n = total.get(m[2], (0.0, 0))
                total[m[2]] = (t + float(m[1]), n + 1)
    for sql, (t, n) in sorted(total.items(), key=lambda x: -x[1][0])[:6]:
        print(f"  slow: {t / 1000:7.2f} s in {n:4d} x {sql}", flush=True)


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line.split(" ")[0]:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


def start_router(env, work, i):
    port = free_port()
    renv = dict(env, WASL_BUS="", WASL_ROUTER_RULES=str(REPO / "deploy/config/routing.yaml"),
                WASL_ROUTER_SWEEP_AGE_MS="0", WASL_ROUTER_LEASE_S="5",
                WASL_ADMIN_BIND="127.0.0.1", WASL_ADMIN_PORT=str(port), **EXTRA)
    p = subprocess.Popen([str(REPO / "build/bin/wasl-router")], env=renv,
                         stderr=open(work / f"router-{i}.log", "a"))
    p.admin_port = port
    return p


def wait_ready(p):
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{p.admin_port}/metrics", timeout=1)
            return
        except OSError:
            time.sleep(0.05)


def one_run(cur, env, work, k, base):
    run = f"backlog-{k}-{int(time.time())}"
    cur.execute(TICKETS_SQL, {"base": base, "run": run, "status": "classified", "n": BACKLOG})
    routers = [start_router(env, work, i) for i in range(k)]
    t0 = time.monotonic()
    done = 0
    while time.monotonic() - t0 < TIMEOUT_S:
        # Progress from the routers' counters: a poll that read the tickets table took 160 ms
        # of the two cores every 50 ms, and the work ledger's count (pending + running) half
        # that. The database says the last word once the counters are all there.
        try:
            done = sum(int(metrics(p.admin_port).get("wasl_router_routed_total", 0))
                       for p in routers)
        except OSError:
            done = 0
        if done >= BACKLOG:
            cur.execute("SELECT count(*) FROM work WHERE stage = 'route'"
                        " AND state IN ('pending', 'running')")
            if cur.fetchone()[0] == 0:
                break
        for p in routers:
            if p.poll() is not None:
                sys.exit(f"router exited: {(work / 'router-0.log').read_text()[-2000:]}")
        time.sleep(0.25)
    seconds = time.monotonic() - t0
    per, hist = [], {}
    for p in routers:
        m = metrics(p.admin_port)
        per.append(int(m.get("wasl_router_routed_total", 0)))
        for h in ("batch", "dispatch", "timers"):
            for part in ("sum", "count"):
                key = f"wasl_router_{h}_seconds_{part}"
                hist[key] = hist.get(key, 0) + m.get(key, 0)
    for p in routers:
        p.terminate()
    for p in routers:
        p.wait(15)
    cur.execute("SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1) FROM ("
                " SELECT (SELECT count(*) FROM ticket_events e WHERE e.ticket_id = t.id"
                "   AND e.kind = 'routed') AS n FROM tickets t WHERE t.external_id LIKE %s) x",
                (run + "-%",))
    missing, twice = cur.fetchone()
    means = " ".join(f"{h}_mean_ms={1000 * hist[f'wasl_router_{h}_seconds_sum'] / c:.1f}"
                     f" {h}_rounds={c:.0f}"
                     for h in ("batch", "dispatch", "timers")
                     if (c := hist[f"wasl_router_{h}_seconds_count"]))
    print(f"instances={k} tickets={BACKLOG} done={done} seconds={seconds:.2f}"
          f" per_s={done / seconds:.0f} per_instance={','.join(map(str, per))}"
          f" missing={missing} routed_twice={twice} {means}", flush=True)


def main():
    pg = PgServer()
    work = Path(tempfile.mkdtemp(prefix="wasl-bench-router-backlog-"))
    try:
        pg.initdb()
        pg.start()
        pg.create_database("wasl")
        env = dict(os.environ, WASL_PG_URL=pg.url_for("wasl"), WASL_LOG_LEVEL="warn")
        subprocess.run([str(REPO / "build/bin/waslctl"), "migrate"], env=env, check=True,
                       capture_output=True)
        db = pg.connect("wasl")
        cur = db.cursor()
        # Agents present (a heartbeat an hour long) but with no capacity on the web: every
        # ticket waits, as in a bench stack whose demo agents take nothing.
        cur.execute(
            "INSERT INTO agents (id, name, skills, languages, capacity, presence, presence_until,"
            " idle_since) SELECT 'a' || g, 'Agent ' || g, '{\"general\": 5}', '{ar}',"
            " '{\"web\": 0, \"phone\": 1}', 'available', now() + interval '1 hour', now()"
            " FROM generate_series(1, %s) g", (AGENTS,))
        if WAITING:
            cur.execute(TICKETS_SQL, {"base": 0, "run": "waiting", "status": "routed",
                                      "n": WAITING})
            cur.execute("SELECT wasl_tickets_mark_staffing()")  # as a running stack has them
        cur.execute("VACUUM ANALYZE")
        cur.execute("ALTER SYSTEM SET log_min_duration_statement = %s", (SLOW_MS,))
        cur.execute("SELECT pg_reload_conf()")
        print(f"waiting={WAITING} backlog={BACKLOG} agents={AGENTS}"
              f" router_env={' '.join(f'{k}={v}' for k, v in EXTRA.items()) or 'defaults'}",
              flush=True)
        base = WAITING
        for k in INSTANCES:
            base += BACKLOG
            log_from = Path(pg.base, "postgres.log").stat().st_size
            one_run(cur, env, work, k, base)
            slow_statements(Path(pg.base, "postgres.log"), log_from)
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
