"""Graceful stop under load: SIGTERM drains. intake answers every accepted contact (and every
2xx is in PostgreSQL); a stage worker leaves no row running under its name.

Work pending at the moment of SIGTERM is made certain, not hoped for: the test holds a lock
on `tickets` so that intake's writer (or the classifier's commit) is blocked in PostgreSQL,
checks that it is (a backend waiting on the lock, unanswered requests, claimed rows), sends
SIGTERM, checks the daemon is draining and still holds that work, then lets the lock go: the
drain must finish it — committed and answered, nothing given back — and exit 0."""

import signal
import threading

import psycopg2

from conftest import REPO, base_env, binary_path, wait_for
from intake_helpers import start_intake, unique  # noqa: F401 (fixture)

MODEL = REPO / "build" / "model" / "classifier.bin"


def hold_tickets_lock(db_url):
    """A connection whose open transaction blocks every write to `tickets` (reads go on)."""
    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("LOCK TABLE tickets IN EXCLUSIVE MODE")
    return conn


def signal_pending(pid, sig):
    """True while `sig` sent to the process is still pending (not yet handled)."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return bool(int(fields["ShdPnd"], 16) & (1 << (sig - 1)))


def waiting_on_a_lock(it):
    """How many other backends of the test database wait for a lock."""
    return it.rows("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                   " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")


def test_intake_sigterm_answers_the_requests_blocked_in_its_writer(start_intake):
    it = start_intake(env={"WASL_INTAKE_DEADLINE_MS": 60000})
    lock = hold_tickets_lock(it.db_url)
    answered = {}

    def client(n):
        answered[n] = it.report(body={"channel": "api", "external_id": unique(f"p{n}"),
                                      "body": "متى موعد الجلسة القادمة؟"})

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    try:
        for t in threads:
            t.start()
        # In flight: the writers' INSERT waits for the lock; no client has its answer.
        wait_for(lambda: waiting_on_a_lock(it), 10, what="intake's writer blocked on tickets")
        assert not answered
        it.daemon.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "intake: draining" in it.daemon.log_text(), 10, what="intake draining")
        # Draining, still alive, the requests still held: this is the work pending at SIGTERM.
        assert it.daemon.alive() and not answered and waiting_on_a_lock(it)
    finally:
        lock.rollback()
        lock.close()
    assert it.daemon.proc.wait(15) == 0
    for t in threads:
        t.join(10)
    assert sorted(answered) == list(range(6))
    assert all(r.status == 201 for r in answered.values()), [r.status for r in answered.values()]
    refs = {r.json["ticket"] for r in answered.values()}
    stored = {row["ref"] for row in it.rows("SELECT ref FROM tickets")}
    assert refs == stored


def test_intake_sigterm_under_load_loses_nothing(start_intake):
    it = start_intake()
    answered = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = it.report(body={"channel": "api", "external_id": unique(f"g{n}-{i}"),
                                    "body": "متى موعد الجلسة القادمة؟"})
            except OSError:
                return  # the port closed after the drain: a real client retries elsewhere
            with lock:
                answered.append(r)
            if r.status >= 500:
                return  # intake is going away: a real client retries elsewhere

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(answered) >= 200, 20, what="load running")
    assert it.daemon.stop(signal.SIGTERM, timeout=15) == 0
    stop.set()
    for t in threads:
        t.join(20)
    ok = [r for r in answered if r.status in (200, 201)]
    assert len(ok) >= 200
    refs = {r.json["ticket"] for r in ok}
    stored = {row["ref"] for row in it.rows("SELECT ref FROM tickets")}
    assert refs <= stored, f"acknowledged but not stored: {sorted(refs - stored)[:5]}"
    # Every answer was a 2xx or a clear refusal (503 while draining): nothing else.
    assert all(r.status in (200, 201, 503) for r in answered)


HELD = "stage = 'classify' AND owner IS NOT NULL AND lease_until > now()"


def test_classifier_sigterm_under_load_leaves_nothing_running(start_intake, daemon):
    it = start_intake()
    for i in range(300):
        it.report(body={"channel": "api", "external_id": unique(f"w{i}"),
                        "body": f"ابي اعرف وش صار على قضيتي {i}"})
    # The classifier's commit updates tickets: held here, its claimed batch stays in flight.
    lock = hold_tickets_lock(it.db_url)
    try:
        cls = daemon("classifier", env={"WASL_PG_URL": it.db_url, "WASL_BUS": "",
                                        "WASL_CLASSIFIER_MODEL": MODEL,
                                        "WASL_CLASSIFIER_SWEEP_MS": 50,
                                        "WASL_CLASSIFIER_SWEEP_AGE_MS": 0,
                                        "WASL_CLASSIFIER_LEASE_S": 60,
                                        "WASL_CLASSIFIER_BATCH": 16}, wait=True)
        wait_for(lambda: waiting_on_a_lock(it), 10, what="the classifier's commit blocked")
        # A claimed row is pending under its owner's live lease (migration 0027).
        claimed = {r["ticket_id"] for r in it.rows(f"SELECT ticket_id FROM work WHERE {HELD}")}
        assert len(claimed) == 16
        cls.proc.send_signal(signal.SIGTERM)
        # The handler has run (the stop flag is set); the loop only sees it after the batch.
        wait_for(lambda: not signal_pending(cls.pid, signal.SIGTERM), 10, what="SIGTERM handled")
        # Still alive with its batch claimed and its commit waiting: pending at SIGTERM.
        assert cls.alive() and waiting_on_a_lock(it)
        assert it.count("ticket_events", "kind = 'classified'") == 0
    finally:
        lock.rollback()
        lock.close()
    assert cls.proc.wait(15) == 0
    assert it.count("work", HELD) == 0
    # A finished row is deleted: the tickets whose classify row is gone are the ones done.
    done = {r["id"] for r in it.rows("SELECT id FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM"
                                    " work w WHERE w.ticket_id = t.id AND w.stage = 'classify')")}
    # The batch in flight at SIGTERM was finished (committed), not given back.
    assert claimed <= done, f"claimed at SIGTERM but not done: {sorted(claimed - done)[:5]}"
    classified = {r["ticket_id"] for r in it.rows("SELECT ticket_id FROM ticket_events"
                                                 " WHERE kind = 'classified'")}
    assert classified == done
    assert it.count("work", "stage = 'classify'") + len(done) == 300
    assert it.count("work", "stage = 'route'") == len(done)
