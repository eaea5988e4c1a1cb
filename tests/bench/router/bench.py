"""bench.py — routing throughput of wasl-router against a private PostgreSQL: 500 agents in
20 queues, a backlog of classified tickets. Measures routing decisions/s (rules → queue,
priority, SLA, history event, acknowledgement, committed) and offer decisions/s (agent choice
with skills, capacity, presence, explanation, committed), each from the router's start until
the last row is done. Prints one key=value summary line last."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from conftest import PgServer, free_port  # noqa: E402

AGENTS = int(os.environ.get("BENCH_AGENTS", 500))
QUEUES = int(os.environ.get("BENCH_QUEUES", 20))
TICKETS = int(os.environ.get("BENCH_TICKETS", 20000))
CAPACITY = 50  # per agent, web: 500 × 50 ≥ the backlog, so every ticket gets an offer
TIMEOUT_S = 300
CATEGORIES = ["case_inquiry", "eservice_support", "judicial_support", "staff_services",
              "complaint", "general_inquiry"]
CHANNELS = ["web", "api", "email", "sms"]


def rules_text():
    queues = "\n".join(f"  q{i:02d}:\n    sla:\n      urgent: {{first_response: 15m, "
                       f"resolution: 4h}}\n      default: {{first_response: 4h, resolution: 3d}}"
                       for i in range(QUEUES))
    rules, i = [], 0
    for cat in CATEGORIES:
        for ch in CHANNELS:
            if i >= QUEUES - 1:
                break
            rules.append(f"  - name: r{i:02d}\n    match: {{category: {cat}, channel: {ch}}}\n"
                         f"    queue: q{i:02d}")
            i += 1
    return (f"version: 1\ndefault_queue: q{QUEUES - 1:02d}\n"
            "escalation:\n  supervisor_queue: q00\n  alert_email: sup@example.org\n"
            "  overflow_queue: q00\n  overflow_after: 1d\n  offer_timeout: 10m\n"
            f"queues:\n{queues}\nrules:\n" + "\n".join(rules) + "\n")


def main():
    pg = PgServer()
    work = Path(tempfile.mkdtemp(prefix="wasl-bench-router-"))
    router = None
    try:
        pg.initdb()
        pg.start()
        pg.create_database("wasl")
        url = pg.url_for("wasl")
        env = dict(os.environ, WASL_PG_URL=url, WASL_LOG_LEVEL="warn")
        subprocess.run([str(REPO / "build/bin/waslctl"), "migrate"], env=env, check=True,
                       capture_output=True)
        (work / "routing.yaml").write_text(rules_text())
        db = pg.connect("wasl")
        cur = db.cursor()
        # Agents: each serves 3 of the 20 queues at levels 1..9, Arabic (some English too).
        cur.execute(
            "INSERT INTO agents (id, name, skills, languages, capacity, presence, presence_until,"
            " idle_since)"
            " SELECT 'a' || g, 'Agent ' || g,"
            "  jsonb_build_object('q' || lpad((g %% %s)::text, 2, '0'), 1 + g %% 9,"
            "    'q' || lpad(((g + 7) %% %s)::text, 2, '0'), 1 + (g * 7) %% 9,"
            "    'q' || lpad(((g + 13) %% %s)::text, 2, '0'), 1 + (g * 5) %% 9),"
            "  CASE WHEN g %% 4 = 0 THEN '{ar,en}'::text[] ELSE '{ar}' END,"
            "  jsonb_build_object('web', %s, 'api', %s, 'email', %s, 'sms', %s, 'phone', 1),"
            "  'available', now() + interval '1 hour', now() - g * interval '1 second'"
            " FROM generate_series(1, %s) g",
            (QUEUES, QUEUES, QUEUES, CAPACITY, CAPACITY, CAPACITY, CAPACITY, AGENTS))
        cur.execute(
            "WITH t AS (INSERT INTO tickets (ref, channel, external_id, status, category,"
            "  confidence, priority, language, entities, from_phone, received_at)"
            " SELECT lpad(g::text, 10, '0'), (ARRAY['web','api','email','sms'])[1 + g %% 4],"
            "  'bench-' || g, 'classified',"
            "  (ARRAY['case_inquiry','eservice_support','judicial_support','staff_services',"
            "   'complaint','general_inquiry'])[1 + (g / 4) %% 6], 0.9,"
            "  (ARRAY['urgent','high','normal','normal','low'])[1 + g %% 5], 'ar', '{}',"
            "  '+9665' || lpad((g %% 100000000)::text, 8, '0'), now() - g * interval '1 second'"
            " FROM generate_series(1, %s) g RETURNING id)"
            " INSERT INTO work (ticket_id, stage, dedupe_key)"
            " SELECT id, 'route', 'ticket:' || id || ':route' FROM t", (TICKETS,))
        renv = dict(env, WASL_BUS="", WASL_ROUTER_RULES=str(work / "routing.yaml"),
                    WASL_ROUTER_BATCH="1024", WASL_ROUTER_SWEEP_MS="50",
                    WASL_ROUTER_SWEEP_AGE_MS="0", WASL_ROUTER_DISPATCH_MS="20",
                    WASL_ROUTER_DISPATCH_MAX="2000", WASL_ROUTER_TIMERS_MS="5000",
                    WASL_ROUTER_STATS_MS="60000", WASL_ADMIN_BIND="127.0.0.1",
                    WASL_ADMIN_PORT=str(free_port()))
        t0 = time.monotonic()
        router = subprocess.Popen([str(REPO / "build/bin/wasl-router")], env=renv,
                                  stderr=open(work / "router.log", "w"))
        routed_s = offered_s = None
        while time.monotonic() - t0 < TIMEOUT_S:
            # A finished work row is deleted (migration 0027): done = the rows gone.
            cur.execute("SELECT %s - count(*) FROM work WHERE state = 'pending'", (TICKETS,))
            done = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM offers")
            offers = cur.fetchone()[0]
            now = time.monotonic() - t0
            if routed_s is None and done >= TICKETS:
                routed_s = now
            if offered_s is None and offers >= TICKETS:
                offered_s = now
            if routed_s and offered_s:
                break
            if router.poll() is not None:
                sys.exit(f"router exited: {(work / 'router.log').read_text()[-2000:]}")
            time.sleep(0.05)
        cur.execute("SELECT count(*) FROM offers")
        offers = cur.fetchone()[0]
        cur.execute("SELECT max(n) FROM (SELECT agent_id, channel, count(*) AS n FROM offers"
                    " GROUP BY agent_id, channel) x")
        max_load = cur.fetchone()[0]
        cur.execute("SELECT count(DISTINCT queue) FROM tickets")
        nqueues = cur.fetchone()[0]
        if not routed_s or not offered_s:
            sys.exit(f"timeout: routed={routed_s} offers={offers}")
        print(f"agents={AGENTS} queues={nqueues} tickets={TICKETS} offers={offers}"
              f" max_offers_per_agent_channel={max_load} (capacity {CAPACITY})")
        import urllib.request
        m = urllib.request.urlopen(f"http://127.0.0.1:{renv['WASL_ADMIN_PORT']}/metrics").read()
        for line in m.decode().splitlines():
            if line.startswith(("wasl_router_batch_seconds_sum", "wasl_router_batch_seconds_count",
                                "wasl_router_dispatch_seconds_sum",
                                "wasl_router_dispatch_seconds_count")):
                print(line)
        print(f"route_decisions_per_s={TICKETS / routed_s:.0f} route_s={routed_s:.2f}"
              f" offer_decisions_per_s={TICKETS / offered_s:.0f} offer_s={offered_s:.2f}")
    finally:
        if router and router.poll() is None:
            router.terminate()
            router.wait(10)
        pg.destroy()


if __name__ == "__main__":
    main()
