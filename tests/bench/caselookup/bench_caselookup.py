"""Benchmark of wasl-caselookup over the real bus: cached and uncached lookups per second and
latency percentiles, measured by build/bench/caselookup_load (C, closed loop). Run through
tests/bench/caselookup/run.sh (`make bench-caselookup`), which loads the integration fixtures
(PostgreSQL, Redis on free loopback ports) as a plugin."""

import json
import os
import resource
import subprocess
import uuid
from pathlib import Path

from conftest import BIN_DIR, REPO, Daemon, base_env, free_port, free_port_range, wait_for
from intake_helpers import run_waslctl

LOAD = REPO / "build" / "bench" / "caselookup_load"
ECHO = REPO / "build" / "bench" / "caselookup_echo"
# Another build of the worker to compare with (A/B in the same minute), e.g. main's.
WORKER_BIN = os.environ.get("BENCH_WORKER_BIN", str(BIN_DIR / "wasl-caselookup"))
CASES = int(os.environ.get("BENCH_CASES", "4000"))
SECONDS = float(os.environ.get("BENCH_DURATION_S", "10"))
THREADS = int(os.environ.get("BENCH_THREADS", "16"))  # clients: requests in flight
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "2"))  # DEALER sockets (threads) carrying them
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
HOT_SET = 500
GOALS = {"cached": (20000, 2.0), "uncached": (3000, None)}
# BENCH_ECHO=1 (default) first measures the bench's own ceiling: the same load through the same
# bus to stand-in workers that answer at once (tests/bench/caselookup/echo.c).
ECHO_CEILING = os.environ.get("BENCH_ECHO", "1") == "1"


def start_workers(postgres, redis_server, db_url, bus_endpoint, log_dir, cache):
    out = []
    for _ in range(WORKERS):
        env = base_env(postgres, redis_server)
        env.update({"WASL_PG_URL": db_url, "WASL_BUS": bus_endpoint, "WASL_LOG_LEVEL": "warn",
                    "WASL_ADMIN_BIND": "127.0.0.1", "WASL_ADMIN_PORT": str(free_port()),
                    "WASL_CASELOOKUP_CACHE": "true" if cache else "false",
                    "WASL_CASELOOKUP_CASE_MAX_FAILURES": "100000"})
        d = Daemon("caselookup", WORKER_BIN, env, log_dir,
                   admin_port=int(env["WASL_ADMIN_PORT"]))
        d.start()
        d.wait_healthy()
        wait_for(lambda d=d: d.get("/readyz")[0] == 200, 10, what="caselookup ready")
        out.append(d)
    return out


def cpu_s(pid):
    """CPU seconds (user + system) that process `pid` has used; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(ppid):
    """The pids whose parent is `ppid` (PostgreSQL's backends are the postmaster's children)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_snapshot(parts):
    """CPU seconds per part: {name: [pids] or a callable giving them}. The load generator's
    own CPU is measured apart (it is our child: RUSAGE_CHILDREN)."""
    snap = {}
    for name, pids in parts.items():
        snap[name] = {p: cpu_s(p) for p in (pids() if callable(pids) else pids)}
    return snap


def cpu_per_lookup(before, after, lookups):
    """Microseconds of CPU per lookup for each part, from two snapshots (a process that exited
    in between, e.g. a PostgreSQL backend, is missed: backends here live as long as their
    daemon)."""
    out = {}
    for name, pids in after.items():
        used = sum(v - before.get(name, {}).get(p, 0.0) for p, v in pids.items())
        out[name] = round(used / max(lookups, 1) * 1e6, 1)
    return out


def load(endpoint, requests, seconds, threads=THREADS):
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run([str(LOAD), endpoint, str(requests), str(threads), str(seconds),
                          str(SOCKETS)],
                         capture_output=True, text=True, timeout=seconds + 60)
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["load_cpu_s"] = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return out


def measured(parts, endpoint, requests, seconds):
    """load() with each part's CPU per lookup (µs) under "cpu_us"."""
    before = cpu_snapshot(parts)
    r = load(endpoint, requests, seconds)
    cpu = cpu_per_lookup(before, cpu_snapshot(parts), r["requests"])
    cpu["load"] = round(r["load_cpu_s"] / max(r["requests"], 1) * 1e6, 1)
    r["cpu_us"] = cpu
    return r


def test_bench_caselookup(postgres, redis_server, tmp_path):
    name = f"wasl_bench_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    db_url = postgres.url_for(name)
    daemons = []
    try:
        env = base_env(postgres, redis_server)
        env["WASL_PG_URL"] = db_url
        assert run_waslctl(env, "migrate").returncode == 0
        seeded = run_waslctl(env, "seed-cases", str(CASES), "--seed", "11", timeout=600)
        assert seeded.returncode == 0, seeded.stderr
        conn = postgres.connect(name)
        with conn.cursor() as cur:
            cur.execute("SELECT c.case_number, p.national_id FROM cases c JOIN case_parties p"
                        " ON p.case_id = c.id AND p.role = 'plaintiff' ORDER BY c.id")
            parties = cur.fetchall()
        conn.close()
        hot = tmp_path / "hot.tsv"
        hot.write_text("".join(f"{c}\tnational_id\t{n}\n" for c, n in parties[:HOT_SET]))
        cold = tmp_path / "cold.tsv"
        cold.write_text("".join(f"{c}\tnational_id\t{n}\n" for c, n in parties))
        base = free_port_range(8)
        benv = base_env(postgres, redis_server)
        benv.update({"WASL_BUS_BIND": "127.0.0.1", "WASL_BUS_PORT": str(base),
                     "WASL_ADMIN_BIND": "127.0.0.1", "WASL_ADMIN_PORT": str(free_port()),
                     "WASL_LOG_LEVEL": "warn"})
        bus = Daemon("bus", BIN_DIR / "wasl-bus", benv, tmp_path,
                     admin_port=int(benv["WASL_ADMIN_PORT"]))
        bus.start()
        bus.wait_healthy()
        daemons.append(bus)
        endpoint = f"tcp://127.0.0.1:{base}"
        results = {}
        postmaster = int((postgres.data / "postmaster.pid").read_text().split()[0])
        parts = {"bus": [bus.pid], "redis": [redis_server.proc.pid],
                 "postgres": lambda: children(postmaster)}
        if ECHO_CEILING:
            echoes = [Daemon("echo", ECHO, benv, tmp_path, args=[f"tcp://127.0.0.1:{base + 1}"])
                      for _ in range(WORKERS)]
            for e in echoes:
                e.start()
            daemons += echoes
            parts["workers"] = [e.pid for e in echoes]
            results["ceiling"] = measured(parts, endpoint, hot, SECONDS)
            for e in echoes:
                e.stop()
        workers = start_workers(postgres, redis_server, db_url, endpoint, tmp_path, True)
        daemons += workers
        parts["workers"] = [w.pid for w in workers]
        load(endpoint, hot, 2)  # warm the cache
        results["cached"] = measured(parts, endpoint, hot, SECONDS)
        for w in workers:
            w.stop()
        workers = start_workers(postgres, redis_server, db_url, endpoint, tmp_path, False)
        daemons += workers
        parts["workers"] = [w.pid for w in workers]
        results["uncached"] = measured(parts, endpoint, cold, SECONDS)
        conn = postgres.connect(name)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM case_lookup_audit")
            audited = cur.fetchone()[0]
        conn.close()
        print()
        for kind, r in results.items():
            want_rate, want_p99 = GOALS.get(kind, (0, None))
            ok = r["per_s"] >= want_rate and (want_p99 is None or r["p99_ms"] < want_p99)
            print(f"bench caselookup {kind}: {r['per_s']:.0f}/s p50 {r['p50_ms']:.3f} ms "
                  f"p99 {r['p99_ms']:.3f} ms ({r['requests']} lookups, {r['found']} found, "
                  f"{THREADS} clients, {WORKERS} workers) goal >= {want_rate}/s"
                  + (f" p99 < {want_p99} ms" if want_p99 else "")
                  + (" MET" if ok else " NOT MET"))
            print(f"bench caselookup {kind}: CPU µs per lookup "
                  + " ".join(f"{k}={v}" for k, v in r["cpu_us"].items())
                  + f" total={sum(r['cpu_us'].values()):.1f}")
            assert r["errors"] == 0 and r["found"] == r["requests"]
        print(f"bench caselookup: {audited} audit rows written")
    finally:
        for d in reversed(daemons):
            d.kill()
        postgres.drop_database(name)
