"""wasl-intake when its dependencies fail: PostgreSQL down or too slow → 503 + Retry-After
within the deadline, nothing acknowledged, recovery without a restart, /readyz following along;
the bus absent → reports still committed (the work row is the truth); SIGTERM → exit 0."""

import json
import signal
import time

import psycopg2

from conftest import wait_for
from intake_helpers import (  # noqa: F401  (fixtures)
    JSON,
    assert_error,
    assert_valid_ref,
    start_intake,
    unique,
)

DEADLINE_MS = 1500
DEFAULT_DEADLINE_MS = 3000
# The contract: the 503 comes within WASL_INTAKE_DEADLINE_MS plus a second.
ANSWER_SLACK_S = 1.0
RECOVERY_WAIT_S = 20
READY_WAIT_S = 20
BUS_DOWN_REPORTS = 10


def raw_report(ext):
    return json.dumps({"channel": "api", "external_id": ext, "body": "بلاغ أثناء العطل"},
                      ensure_ascii=False).encode("utf-8")


def assert_unavailable(resp, deadline_ms):
    assert_error(resp, 503, "unavailable")
    retry_after = resp.header("Retry-After")
    assert retry_after is not None and retry_after.strip().isdigit(), resp.headers
    assert int(retry_after) >= 1
    assert resp.elapsed_s <= deadline_ms / 1000 + ANSWER_SLACK_S, \
        f"503 took {resp.elapsed_s:.2f}s (deadline {deadline_ms} ms)"


def test_postgres_down_503_then_recovers_without_restart(start_intake, postgres):
    it = start_intake(env={"WASL_INTAKE_DEADLINE_MS": DEADLINE_MS})
    warm = it.post("/v1/reports", raw_report(unique("warm")), content_type=JSON)
    assert warm.status == 201, warm
    assert it.ready_status() == 200
    pid = it.daemon.pid

    it.reconnect_db()
    postgres.stop()
    before = it.error_count("unavailable")
    ext = unique("outage")
    raw = raw_report(ext)
    resp = it.post("/v1/reports", raw, content_type=JSON)
    assert_unavailable(resp, DEADLINE_MS)
    # Again: a second attempt during the outage is just as quick and just as honest.
    resp = it.post("/v1/reports", raw, content_type=JSON)
    assert_unavailable(resp, DEADLINE_MS)
    assert it.error_count("unavailable") >= before + 2
    wait_for(lambda: it.ready_status() == 503, READY_WAIT_S, interval=0.2,
             what="/readyz 503 while PostgreSQL is down")
    assert it.daemon.get("/healthz")[0] == 200, "alive even when not ready"

    postgres.start()

    def retried():
        r = it.post("/v1/reports", raw, content_type=JSON)
        assert r.status in (201, 503), r  # nothing else while it reconnects
        return r if r.status == 201 else None
    resp = wait_for(retried, RECOVERY_WAIT_S, interval=0.25,
                    what="the retried report to be accepted after PostgreSQL came back")
    assert_valid_ref(resp.json["ticket"])
    assert it.daemon.alive() and it.daemon.pid == pid, "recovered without a restart"
    assert it.count("tickets", "external_id = %s", (ext,)) == 1
    wait_for(lambda: it.ready_status() == 200, READY_WAIT_S, interval=0.2,
             what="/readyz 200 after PostgreSQL came back")


def test_postgres_slower_than_deadline_is_503_and_retry_is_idempotent(start_intake, postgres):
    it = start_intake(env={"WASL_INTAKE_DEADLINE_MS": DEADLINE_MS})
    assert it.post("/v1/reports", raw_report(unique("warm")), content_type=JSON).status == 201
    blocker = psycopg2.connect(it.db_url)
    try:
        with blocker.cursor() as cur:
            # Every write to tickets now waits for this transaction.
            cur.execute("LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
        ext = unique("slow")
        raw = raw_report(ext)
        resp = it.post("/v1/reports", raw, content_type=JSON)
        assert_unavailable(resp, DEADLINE_MS)
        assert resp.elapsed_s >= DEADLINE_MS / 1000 * 0.9, \
            f"answered 503 after {resp.elapsed_s:.2f}s, before the deadline"
    finally:
        blocker.rollback()
        blocker.close()

    def retried():
        r = it.post("/v1/reports", raw, content_type=JSON)
        assert r.status in (200, 201, 503), r
        return r if r.status in (200, 201) else None
    resp = wait_for(retried, RECOVERY_WAIT_S, interval=0.25, what="the retry to be accepted")
    # Whether the late transaction was cancelled (201) or committed after all (200, duplicate),
    # there is exactly one ticket.
    assert it.count("tickets", "external_id = %s", (ext,)) == 1
    assert resp.json["ticket"] == it.scalar("SELECT ref FROM tickets WHERE external_id = %s",
                                            (ext,))
    after = it.post("/v1/reports", raw_report(unique("after")), content_type=JSON)
    assert after.status == 201, after


def test_reports_are_committed_with_no_bus(start_intake):
    it = start_intake(bus=None)  # WASL_BUS points at ports where nothing listens
    refs = []
    for _ in range(BUS_DOWN_REPORTS):
        r = it.post("/v1/reports", raw_report(unique("nobus")), content_type=JSON)
        assert r.status == 201, r
        # A send to an absent bus must not wait: well under the default 3 s deadline.
        assert r.elapsed_s < DEFAULT_DEADLINE_MS / 1000, f"a missing bus slowed a report: {r}"
        refs.append(r.json["ticket"])
    for ref in refs:
        t = it.ticket(ref)
        work = it.work(t["id"])
        assert [(w["stage"], w["state"]) for w in work] == [("classify", "pending")]
    assert it.ready_status() == 200, "the bus is not needed to be ready"


def test_sigterm_while_idle_exits_0(start_intake):
    it = start_intake()
    assert it.post("/v1/reports", raw_report(unique("before")), content_type=JSON).status == 201
    t0 = time.monotonic()
    assert it.daemon.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 10
    lines = it.daemon.log_lines(strict=True)
    assert lines and all(line.get("service") == "wasl-intake" for line in lines)
