"""Runs the cmocka suites of the PostgreSQL and Redis helpers against the fixtures' real servers.

The binaries come from the plain unit build (build/test/, made by `make unit-valgrind` or
`make build/test/test_pg build/test/test_redis build/test/test_work build/test/test_session
build/test/test_clients`); this
test builds nothing. Without a server URL
the suites skip every test, so a run here must show each test passed and none skipped.
"""

import os
import re
import subprocess

import pytest

from conftest import REPO

TEST_BIN_DIR = REPO / "build" / "test"
# A suite sleeps a few reconnect intervals (0.5 s each); minutes mean it hangs.
SUITE_TIMEOUT_S = 300

RUN_RE = re.compile(r"^\[ RUN      \] (\S+)$", re.M)
OK_RE = re.compile(r"^\[       OK \] (\S+)$", re.M)
PASSED_RE = re.compile(r"^\[  PASSED  \] (\d+) test\(s\)\.$", re.M)


def run_suite(name, env_extra):
    binary = TEST_BIN_DIR / name
    if not binary.exists():
        pytest.fail(f"{binary} not built: run `make {binary.relative_to(REPO)}`", pytrace=False)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }
    env.update(env_extra)
    res = subprocess.run(
        [str(binary)], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=SUITE_TIMEOUT_S, check=False,
    )
    report = f"{name} exited {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr (tail)\n" + \
        "\n".join(res.stderr.splitlines()[-40:])
    assert res.returncode == 0, report
    # cmocka writes progress to stdout and the summary (and failures) to stderr.
    ran = RUN_RE.findall(res.stdout)
    passed = OK_RE.findall(res.stdout)
    assert ran, report
    assert passed == ran, report
    summary = PASSED_RE.search(res.stderr)
    assert summary and int(summary.group(1)) == len(ran), report
    for word in ("SKIPPED", "FAILED"):
        assert f"[  {word}  ]" not in res.stdout + res.stderr, report
    return ran


def test_pg_helper_suite(fresh_db):
    ran = run_suite("test_pg", {"WASL_TEST_PG_URL": fresh_db})
    assert "test_prepared_statement_survives_reconnect" in ran
    assert "test_batch_failure_commits_none" in ran


def test_work_ledger_suite(fresh_db, waslctl):
    """wasl_work (claim, complete, fail, dead, run, give back) on a migrated database: it calls
    the functions of proto/functions/work.sql."""
    migrated = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert migrated.returncode == 0, migrated.stderr
    ran = run_suite("test_work", {"WASL_TEST_PG_URL": fresh_db})
    for name in ("test_claim_stale_min_age_and_expired_lease",
                 "test_complete_is_fenced_on_owner_and_lease", "test_dead_after_max_attempts",
                 "test_run_ids_and_give_back"):
        assert name in ran


def test_redis_helper_suite(redis_server):
    ran = run_suite("test_redis", {"WASL_TEST_REDIS_URL": redis_server.url})
    assert "test_reconnect_after_client_kill" in ran
    assert "test_db_selection" in ran


def test_session_suite(redis_server):
    """wasl_session (desk sign-in: sessions, expiry, sign out everywhere, throttling) against the
    real Redis."""
    ran = run_suite("test_session", {"WASL_TEST_REDIS_URL": redis_server.url})
    for name in ("test_create_get_round_trip", "test_idle_refresh_and_absolute_limit",
                 "test_delete_one_and_all", "test_throttle_per_account_and_address"):
        assert name in ran


def test_clients_suite(fresh_db, redis_server, waslctl):
    """wasl_clients (the clients table intake and the desk share): loaded from a migrated
    database with and without secrets, and the per-second rate limit in the real Redis."""
    migrated = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert migrated.returncode == 0, migrated.stderr
    ran = run_suite("test_clients", {"WASL_TEST_PG_URL": fresh_db,
                                     "WASL_TEST_REDIS_URL": redis_server.url})
    for name in ("test_load_from_the_table", "test_rate_limit", "test_bearer_finds_its_client_only"):
        assert name in ran
