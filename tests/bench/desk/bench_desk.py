"""Benchmark of wasl-desk (issue 15): BENCH_AGENTS (500) signed-in agents with an open event
stream each; offers committed at BENCH_OFFER_RATE (200/s) for BENCH_DURATION_S (20 s), each to
one of the agents, as the router commits them (wasl_offers_make in batches, as the role
wasl_router); the time from each batch's COMMIT returning to its offer arriving on its agent's
stream (p50/p99/max); the desk API's latency under that load (GET /v1/me/offers and PUT
/v1/me/presence from BENCH_API_CLIENTS concurrent people); the desk's RSS with every stream open.
Goals: event p99 < 500 ms, API p99 < 50 ms. Results in var/bench/desk.json.

Run through tests/bench/desk/run.sh (`make bench-desk`), which loads the integration fixtures
(PostgreSQL and Redis on free loopback ports) as a plugin. The load runs in one asyncio loop:
raw sockets for the streams (no thread per stream), psycopg2 on a thread for the commits."""

import asyncio
import json
import os
import re
import time
import uuid

import psycopg2
import requests

from conftest import REPO, pg_url_as
from intake_helpers import make_ref

AGENTS = int(os.environ.get("BENCH_AGENTS", "500"))
RATE = float(os.environ.get("BENCH_OFFER_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_DURATION_S", "20"))
API_CLIENTS = int(os.environ.get("BENCH_API_CLIENTS", "8"))
BATCH_MS = 50  # the router commits its offers in rounds; 10 offers a round at 200/s
PASSWORD = "bench password 2026"
GOAL_EVENT_P99_MS = 500
GOAL_API_P99_MS = 50


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def seed(db_url, waslctl, tmp_path):
    """AGENTS agents of queue general with one password (hashed once by waslctl, copied by SQL:
    500 Argon2id hashes would take a minute and measure nothing of the desk)."""
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    out = waslctl("agent", "add", "bench0", "--name", "Bench 0", "--skills", "general",
                  "--role", "agent", "--password-file", pw, env={"WASL_PG_URL": db_url})
    assert out.returncode == 0, out.stderr
    conn = psycopg2.connect(db_url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO agents (id, name, skills, password_hash, role)"
                    " SELECT 'bench' || n, 'Bench ' || n, '{\"general\": 5}',"
                    "        (SELECT password_hash FROM agents WHERE id = 'bench0'), 'agent'"
                    "   FROM generate_series(1, %s) n", (AGENTS - 1,))
    conn.close()
    return [f"bench{i}" for i in range(AGENTS)]


def sign_in(url, agents):
    """Cookie and CSRF token of each agent (the logins run two Argon2id at a time)."""
    out = {}
    s = requests.Session()
    for a in agents:
        r = s.post(url + "/v1/login", json={"agent": a, "password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
        out[a] = (r.cookies["wasl_sid"], r.json()["csrf"])
    return out


async def stream(port, agent, cookie, opened, received, stop):
    """One page's EventSource: records (offer id → arrival time) for its offer events."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write((f"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Cookie: wasl_sid={cookie}\r\nAccept: text/event-stream\r\n\r\n").encode())
    await writer.drain()
    status = await reader.readline()
    assert b" 200 " in status, (agent, status)
    opened.append(agent)
    event = None
    while not stop.is_set():
        try:
            line = await asyncio.wait_for(reader.readline(), 1.0)
        except asyncio.TimeoutError:
            continue
        if not line:
            break
        line = line.strip()
        if line.startswith(b"event: "):
            event = line[7:]
        elif line.startswith(b"data: ") and event == b"offer":
            now = time.monotonic()
            m = re.search(rb'"offer":(\d+)', line)
            if m:
                received[int(m.group(1))] = now
    writer.close()


def produce(db_url, agents, committed, duration):
    """Offers at RATE, a batch every BATCH_MS, as the router commits them."""
    conn = psycopg2.connect(pg_url_as(db_url, "wasl_router"))
    owner = psycopg2.connect(db_url)
    per_batch = max(1, int(RATE * BATCH_MS / 1000))
    n = 0
    start = time.monotonic()
    seq = int(time.time()) % 1000000
    while time.monotonic() - start < duration:
        with owner, owner.cursor() as cur:
            tickets = []
            for _ in range(per_batch):
                seq += 1
                cur.execute(
                    "INSERT INTO tickets (ref, channel, external_id, status, queue, priority,"
                    " prio_rank, language, category, waiting_since, first_response_due)"
                    " VALUES (%s, 'web', %s, 'routed', 'general', 'normal', 2, 'ar',"
                    " 'case_inquiry', now(), now() + interval '4 hours') RETURNING id",
                    (make_ref(seq), uuid.uuid4().hex))
                tickets.append(cur.fetchone()[0])
        offers = [{"ticket_id": t, "agent": agents[(n + i) % len(agents)], "channel": "web",
                   "explain": {}} for i, t in enumerate(tickets)]
        n += len(tickets)
        with conn.cursor() as cur:
            cur.execute("SELECT offer_id FROM wasl_offers_make(%s::jsonb, 'bench', 300)",
                        (json.dumps(offers),))
            ids = [r[0] for r in cur.fetchall()]
        conn.commit()
        at = time.monotonic()
        for i in ids:
            committed[i] = at
        next_at = start + (n / RATE)
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    conn.close()
    owner.close()


def api_load(url, sessions, duration, latencies):
    s = requests.Session()
    agents = list(sessions)
    end = time.monotonic() + duration
    i = 0
    while time.monotonic() < end:
        a = agents[i % len(agents)]
        cookie, csrf = sessions[a]
        t0 = time.monotonic()
        if i % 2:
            r = s.get(url + "/v1/me/offers", cookies={"wasl_sid": cookie}, timeout=10)
        else:
            r = s.put(url + "/v1/me/presence", json={"presence": "available", "ttl_s": 600},
                      cookies={"wasl_sid": cookie}, headers={"X-CSRF-Token": csrf}, timeout=10)
        latencies.append((time.monotonic() - t0) * 1000)
        assert r.status_code == 200, r.text
        i += 1


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


async def run(desk, db_url, sessions):
    port = int(desk.url.rsplit(":", 1)[1])
    opened, received, committed, api_ms = [], {}, {}, []
    stop = asyncio.Event()
    rss_before = rss_kib(desk.pid)
    tasks = [asyncio.create_task(stream(port, a, c, opened, received, stop))
             for a, (c, _) in sessions.items()]
    while len(opened) < len(sessions):
        await asyncio.sleep(0.1)
    rss_streams = rss_kib(desk.pid)
    loop = asyncio.get_running_loop()
    api_people = dict(list(sessions.items())[:API_CLIENTS * 4])
    api = [loop.run_in_executor(None, api_load, desk.url,
                                dict(list(api_people.items())[k::API_CLIENTS]),
                                SECONDS, api_ms) for k in range(API_CLIENTS)]
    await loop.run_in_executor(None, produce, db_url, list(sessions), committed, SECONDS)
    await asyncio.gather(*api)
    deadline = time.monotonic() + 5
    while len(received) < len(committed) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    rss_end = rss_kib(desk.pid)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = [(received[o] - committed[o]) * 1000 for o in committed if o in received]
    return {
        "agents": len(sessions), "streams": len(opened), "offers": len(committed),
        "offers_received": len(lat), "rate_per_s": RATE, "seconds": SECONDS,
        "event_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else None},
        "api_ms": {"n": len(api_ms), "p50": pct(api_ms, 50), "p99": pct(api_ms, 99),
                   "max": max(api_ms) if api_ms else None},
        "rss_kib": {"before_streams": rss_before, "with_streams": rss_streams, "end": rss_end},
    }


def test_bench_desk(fresh_db, waslctl, start_desk, tmp_path):
    assert waslctl("migrate", env={"WASL_PG_URL": fresh_db}).returncode == 0
    agents = seed(fresh_db, waslctl, tmp_path)
    desk = start_desk(fresh_db, env={"WASL_LOG_LEVEL": "warn",
                                     "WASL_DESK_LOGIN_ADDR_MAX": "100000"})
    t0 = time.monotonic()
    sessions = sign_in(desk.url, agents)
    login_s = time.monotonic() - t0
    result = asyncio.run(run(desk, fresh_db, sessions))
    result["login_per_s"] = len(agents) / login_s
    out = REPO / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "desk.json").write_text(json.dumps(result, indent=2) + "\n")
    e, a, r = result["event_ms"], result["api_ms"], result["rss_kib"]
    print()
    print(f"bench desk: {result['streams']} streams, {result['offers']} offers at "
          f"{RATE:.0f}/s, {result['offers_received']} received")
    print(f"bench desk: commit → event p50 {e['p50']:.1f} ms p99 {e['p99']:.1f} ms "
          f"max {e['max']:.1f} ms (goal p99 < {GOAL_EVENT_P99_MS})")
    print(f"bench desk: API p50 {a['p50']:.1f} ms p99 {a['p99']:.1f} ms over {a['n']} requests "
          f"(goal p99 < {GOAL_API_P99_MS})")
    print(f"bench desk: RSS {r['before_streams']} KiB → {r['with_streams']} KiB with "
          f"{result['streams']} streams → {r['end']} KiB at the end; "
          f"{result['login_per_s']:.1f} sign-ins/s")
    assert result["offers_received"] == result["offers"]
