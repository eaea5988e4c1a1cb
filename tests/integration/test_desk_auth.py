"""wasl-desk as a black box over HTTP: people sign in (one answer for every wrong credential),
throttling per account and per address, the session cookie's flags, CSRF, sign out (one and
everywhere) and stolen-cookie replay, idle and absolute expiry, the console's security headers,
one agent acting on another's offer, and the live stream: an offer the router commits reaches
the agent's page without polling. docs/desk.md is the design."""

import hashlib
import json
import queue
import threading
import time

import psycopg2
import pytest
import requests

from conftest import wait_for
from intake_helpers import make_ref, unique

PASSWORDS = {"hala": "كلمة سر هالة 2026", "amal": "amal-password-2026",
             "sara": "sara supervises 2026"}
ROLES = {"hala": "agent", "amal": "agent", "sara": "supervisor"}
CSP = ("default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
EVENT_WAIT_S = 10

RULES = """
version: 1
auto_answer: false
default_queue: general
calendar:
  utc_offset: "+03:00"
  days: [sun, mon, tue, wed, thu, fri, sat]
  open: "00:00"
  close: "24:00"
escalation:
  supervisor_queue: general
  alert_email: supervisors@example.org
  overflow_queue: general
  overflow_after: 1h
  offer_timeout: 60s
queues:
  general:
    sla: {default: {first_response: 4h, resolution: 3d}}
rules:
  - name: all
    match: {category: case_inquiry}
    queue: general
"""


class Desk:
    """A desk and its database: people sign in through .session()."""

    def __init__(self, daemon, db_url):
        self.daemon = daemon
        self.url = daemon.url
        self.db_url = db_url

    def session(self, agent=None):
        s = Person(self.url)
        if agent:
            r = s.login(agent, PASSWORDS[agent])
            assert r.status_code == 200, r.text
        return s

    def scalar(self, sql, args=()):
        conn = psycopg2.connect(self.db_url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchone()[0] if cur.description else None
        finally:
            conn.close()


class Person:
    """One browser: a cookie jar and the CSRF token of its session."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()
        self.csrf = None

    def login(self, agent, password):
        r = self.http.post(self.url + "/v1/login", json={"agent": agent, "password": password},
                           timeout=15)
        if r.status_code == 200:
            self.csrf = r.json()["csrf"]
        return r

    def call(self, method, path, body=None, csrf=True, headers=None):
        h = dict(headers or {})
        if csrf and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        return self.http.request(method, self.url + path, json=body, headers=h, timeout=15)

    def cookie(self):
        return self.http.cookies.get("wasl_sid")


@pytest.fixture
def desk_db(fresh_db, waslctl, redis_server, tmp_path):
    """A migrated database with hala and amal (agents of queue general) and sara (supervisor),
    each with a password; the desk's throttle counters of earlier tests cleared."""
    env = {"WASL_PG_URL": fresh_db}
    assert waslctl("migrate", env=env).returncode == 0
    for agent, pw in PASSWORDS.items():
        f = tmp_path / f"{agent}.pw"
        f.write_text(pw + "\n")
        out = waslctl("agent", "add", agent, "--name", agent.title(), "--skills", "general",
                      "--role", ROLES[agent], "--password-file", f, env=env)
        assert out.returncode == 0, out.stderr
    # An agent without a password: cannot sign in, and says so the same way.
    assert waslctl("agent", "add", "nopw", "--name", "No Password", "--skills", "general",
                   env=env).returncode == 0
    r = redis_server.client()
    for key in r.scan_iter("wasl:desk:lf:*"):
        r.delete(key)
    return fresh_db


@pytest.fixture
def desk(desk_db, start_desk):
    return Desk(start_desk(desk_db), desk_db)


# ---- signing in ---------------------------------------------------------------------------


def test_login_and_one_answer_for_every_wrong_credential(desk):
    hala = desk.session()
    r = hala.login("hala", PASSWORDS["hala"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["agent"] == "hala" and body["role"] == "agent" and body["name"] == "Hala"
    assert len(body["csrf"]) == 43
    me = hala.call("GET", "/v1/me")
    assert me.status_code == 200
    assert me.json()["csrf"] == body["csrf"] and me.json()["queues"] == ["general"]
    assert me.headers["Cache-Control"] == "no-store"
    answers = []
    for agent, pw in [("hala", "wrong password 1"), ("nobody", "whatever-password"),
                      ("nopw", "whatever-password"), ("hala", PASSWORDS["hala"] + " ")]:
        r = desk.session().login(agent, pw)
        answers.append((r.status_code, r.json(), "Set-Cookie" in r.headers))
    assert all(a == (401, {"error": {"code": "invalid_credentials", "field": None,
                                     "message": "wrong agent or password"}}, False)
               for a in answers), answers
    # The token is stored nowhere: not in the log, not as a Redis key.
    token = hala.cookie()
    assert token and token not in desk.daemon.log_text()
    assert PASSWORDS["hala"] not in desk.daemon.log_text()


@pytest.mark.parametrize("body,field", [
    ({"password": "x" * 12}, "agent"),
    ({"agent": "hala"}, "password"),
    ({"agent": "Hala Admin", "password": "x" * 12}, "agent"),
    ({"agent": "hala", "password": "x" * 129}, "password"),
    ({"agent": 7, "password": "x" * 12}, "agent"),
])
def test_login_fields_are_checked(desk, body, field):
    r = requests.post(desk.url + "/v1/login", json=body, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


def test_cookie_flags(desk, desk_db, start_desk):
    r = desk.session().login("hala", PASSWORDS["hala"])
    cookie = r.headers["Set-Cookie"]
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0].startswith("wasl_sid=") and len(parts[0]) == len("wasl_sid=") + 43
    assert {"Path=/", "HttpOnly", "SameSite=Strict"} <= set(parts)
    assert "Secure" not in parts  # WASL_DESK_COOKIE_SECURE=0 here, for plain http
    secure = start_desk(desk_db, env={"WASL_DESK_COOKIE_SECURE": "1"})
    r = requests.post(secure.url + "/v1/login",
                      json={"agent": "hala", "password": PASSWORDS["hala"]}, timeout=15)
    assert r.status_code == 200
    assert "Secure" in [p.strip() for p in r.headers["Set-Cookie"].split(";")]


def test_throttle_per_account_before_the_password_is_checked(desk_db, start_desk):
    desk = Desk(start_desk(desk_db, env={"WASL_DESK_LOGIN_ACCOUNT_MAX": "3",
                                         "WASL_DESK_LOGIN_WINDOW_S": "120"}), desk_db)
    for _ in range(3):
        assert desk.session().login("hala", "not her password").status_code == 401
    # Past the limit even the right password is refused, without being checked.
    r = desk.session().login("hala", PASSWORDS["hala"])
    assert r.status_code == 429 and r.json()["error"]["code"] == "throttled"
    assert 0 < int(r.headers["Retry-After"]) <= 120
    # Another account from the same address may still sign in.
    assert desk.session().login("amal", PASSWORDS["amal"]).status_code == 200


def test_throttle_per_address(desk_db, start_desk):
    desk = Desk(start_desk(desk_db, env={"WASL_DESK_LOGIN_ADDR_MAX": "4",
                                         "WASL_DESK_LOGIN_WINDOW_S": "60"}), desk_db)
    for agent in ["ghost1", "ghost2", "ghost3", "hala"]:
        assert desk.session().login(agent, "guessing-1234").status_code == 401
    r = desk.session().login("amal", PASSWORDS["amal"])
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 60


# ---- CSRF, sign out, expiry ---------------------------------------------------------------


def test_state_changes_need_the_csrf_token_and_our_origin(desk):
    hala = desk.session("hala")
    body = {"presence": "available", "ttl_s": 60}
    r = hala.call("PUT", "/v1/me/presence", body, csrf=False)
    assert r.status_code == 403 and r.json()["error"] == {
        "code": "csrf", "field": "X-CSRF-Token",
        "message": "a state change needs the session's CSRF token in X-CSRF-Token"}
    r = hala.call("PUT", "/v1/me/presence", body, csrf=False,
                  headers={"X-CSRF-Token": hala.csrf[:-1] + ("A" if hala.csrf[-1] != "A" else "B")})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    # Another session's token is not this one's.
    other = desk.session("hala")
    r = hala.call("PUT", "/v1/me/presence", body, csrf=False,
                  headers={"X-CSRF-Token": other.csrf})
    assert r.status_code == 403
    r = hala.call("PUT", "/v1/me/presence", body, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["field"] == "Origin"
    assert desk.scalar("SELECT presence FROM agents WHERE id = 'hala'") == "offline"
    r = hala.call("POST", "/v1/logout", csrf=False)
    assert r.status_code == 403
    assert hala.call("GET", "/v1/me").status_code == 200  # not signed out by a forged request
    ok = hala.call("PUT", "/v1/me/presence", body, headers={"Origin": desk.url})
    assert ok.status_code == 200 and ok.json()["presence"] == "available"
    assert desk.scalar("SELECT presence FROM agents WHERE id = 'hala'") == "available"


def test_logout_then_replaying_the_old_cookie_is_refused(desk):
    hala = desk.session("hala")
    laptop = desk.session("hala")
    stolen = hala.cookie()
    r = hala.call("POST", "/v1/logout")
    assert r.status_code == 204
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    replay = requests.get(desk.url + "/v1/me", cookies={"wasl_sid": stolen}, timeout=10)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "unauthenticated"
    assert laptop.call("GET", "/v1/me").status_code == 200  # her other session lives on
    assert requests.get(desk.url + "/v1/me", timeout=10).status_code == 401
    assert requests.get(desk.url + "/v1/me", cookies={"wasl_sid": "x' OR '1'='1"},
                        timeout=10).status_code == 401


def test_logout_everywhere(desk):
    phone, laptop = desk.session("hala"), desk.session("hala")
    amal = desk.session("amal")
    assert laptop.call("POST", "/v1/logout/all").status_code == 204
    assert phone.call("GET", "/v1/me").status_code == 401
    assert laptop.call("GET", "/v1/me").status_code == 401
    assert amal.call("GET", "/v1/me").status_code == 200


def test_idle_expiry_refreshed_by_use(desk_db, start_desk, redis_server):
    desk = Desk(start_desk(desk_db, env={"WASL_DESK_IDLE_S": "1"}), desk_db)
    hala = desk.session("hala")
    key = "wasl:desk:s:" + hashlib.sha256(hala.cookie().encode()).hexdigest()
    r = redis_server.client()
    # Used every 0.4 s for 1.6 s: each use refreshes the one-second idle timeout.
    end = time.monotonic() + 1.6
    while time.monotonic() < end:
        assert hala.call("GET", "/v1/me").status_code == 200
        time.sleep(0.4)
    # Left alone (a request would refresh it: watch Redis instead) it ends.
    assert r.exists(key)
    wait_for(lambda: not r.exists(key), 5, what="idle session ended")
    assert hala.call("GET", "/v1/me").status_code == 401


def test_absolute_expiry_whatever_the_use(desk_db, start_desk):
    desk = Desk(start_desk(desk_db, env={"WASL_DESK_IDLE_S": "60", "WASL_DESK_ABSOLUTE_S": "2"}),
                desk_db)
    hala = desk.session("hala")
    start = time.monotonic()
    assert hala.call("GET", "/v1/me").status_code == 200
    wait_for(lambda: hala.call("GET", "/v1/me").status_code == 401, 6,
             what="session past its absolute limit")
    assert time.monotonic() - start >= 1.5


# ---- the console's headers ----------------------------------------------------------------


def test_console_headers_and_files(desk_db, start_desk, tmp_path):
    www = tmp_path / "www"
    (www / "vendor").mkdir(parents=True)
    (www / "index.html").write_text("<!doctype html><html lang=\"ar\" dir=\"rtl\"></html>")
    (www / "vendor" / "lib.js").write_text("export const x = 1;\n")
    (www / ".secret").write_text("no")
    desk = start_desk(desk_db, www=www)
    for path, ctype in [("/", "text/html"), ("/index.html", "text/html"),
                        ("/vendor/lib.js", "text/javascript")]:
        r = requests.get(desk.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(ctype), path
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
    for path in ["/.secret", "/nope.js", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/vendor/%2e%2e/%2e%2e/index.html", "/vendor", "/www/index.html"]:
        r = requests.get(desk.url + path, timeout=10)
        assert r.status_code == 404, path
        assert r.headers["Content-Security-Policy"] == CSP
    api = requests.get(desk.url + "/v1/me", timeout=10)
    assert api.headers["Content-Security-Policy"] == CSP and api.headers["Cache-Control"] == "no-store"
    # No console at all: the API still runs, / is a 404.
    bare = start_desk(desk_db, www=tmp_path / "missing")
    assert requests.get(bare.url + "/", timeout=10).status_code == 404
    assert requests.post(bare.url + "/v1/login", json={"agent": "hala", "password":
                         PASSWORDS["hala"]}, timeout=15).status_code == 200


# ---- offers and presence ------------------------------------------------------------------


def make_offer(desk, agent):
    """A routed ticket offered to `agent` (as the router's function does it); (offer id, ref)."""
    ref = make_ref(int(time.time() * 1000) % 10 ** 7)
    tid = desk.scalar(
        "INSERT INTO tickets (ref, channel, external_id, status, queue, priority, prio_rank,"
        " language, category, subject, waiting_since, first_response_due)"
        " VALUES (%s, 'web', %s, 'routed', 'general', 'high', 1, 'ar', 'case_inquiry',"
        " 'موعد الجلسة', now(), now() + interval '4 hours') RETURNING id", (ref, unique("dk")))
    offer = desk.scalar(
        "SELECT offer_id FROM wasl_offers_make(%s::jsonb, 'router-test', 60)",
        (json.dumps([{"ticket_id": tid, "agent": agent, "channel": "web", "explain": {}}]),))
    return offer, ref


def test_an_agent_cannot_answer_another_agents_offer(desk):
    offer, ref = make_offer(desk, "amal")
    hala = desk.session("hala")
    for action in ("accept", "reject"):
        r = hala.call("POST", f"/v1/offers/{offer}/{action}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_offer", r.text
    assert desk.scalar("SELECT state FROM offers WHERE id = %s", (offer,)) == "offered"
    assert desk.scalar("SELECT assignee FROM tickets WHERE ref = %s", (ref,)) is None
    # Not even a supervisor answers for her: they transfer instead.
    sara = desk.session("sara")
    assert sara.call("POST", f"/v1/offers/{offer}/accept").status_code == 403
    assert hala.call("GET", "/v1/me/offers").json()["offers"] == []
    amal = desk.session("amal")
    mine = amal.call("GET", "/v1/me/offers").json()["offers"]
    assert [o["offer"] for o in mine] == [offer] and mine[0]["ticket"] == ref
    assert mine[0]["queue"] == "general" and mine[0]["priority"] == "high"
    assert mine[0]["category_label"]["en"] and mine[0]["priority_label"]["ar"]
    r = amal.call("POST", f"/v1/offers/{offer}/accept")
    assert r.status_code == 200 and r.json()["ticket"] == ref, r.text
    assert desk.scalar("SELECT assignee FROM tickets WHERE ref = %s", (ref,)) == "amal"
    again = amal.call("POST", f"/v1/offers/{offer}/reject")
    assert again.status_code == 409 and again.json()["error"]["code"] == "offer_closed"
    assert amal.call("POST", "/v1/offers/999999999/accept").status_code == 404
    assert amal.call("POST", "/v1/offers/12ab/accept").status_code in (400, 404)
    assert amal.call("POST", "/v1/offers/0/accept").status_code == 400
    assert amal.call("POST", f"/v1/offers/{offer}/steal").status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"presence": "asleep"}, "presence"),
    ({"presence": "available", "ttl_s": 5}, "ttl_s"),
    ({"presence": "available", "ttl_s": "90"}, "ttl_s"),
    ({}, "presence"),
])
def test_presence_fields_are_checked(desk, body, field):
    hala = desk.session("hala")
    r = hala.call("PUT", "/v1/me/presence", body)
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


# ---- live events --------------------------------------------------------------------------


class Stream:
    """An open GET /v1/events read on a thread: (event, data, monotonic time) into a queue."""

    def __init__(self, person):
        self.events = queue.Queue()
        self.resp = person.http.get(person.url + "/v1/events", stream=True, timeout=(5, 60))
        assert self.resp.status_code == 200, self.resp.text
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        event, data = None, None
        try:
            for line in self.resp.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and event:
                    self.events.put((event, data, time.monotonic()))
                    event, data = None, None
        except Exception:  # the stream ended: the test has what it read
            pass
        self.events.put(("end", None, time.monotonic()))

    def next(self, want, timeout=EVENT_WAIT_S, pred=lambda d: True):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {want} event; saw {seen}"
            event, data, at = self.events.get(timeout=left)
            if event == want and pred(data):
                return data, at
            seen.append((event, data))

    def close(self):
        self.resp.close()


def test_router_offer_reaches_the_agents_stream_without_polling(desk, daemon, tmp_path):
    hala, amal, sara = desk.session("hala"), desk.session("amal"), desk.session("sara")
    streams = {name: Stream(p) for name, p in (("hala", hala), ("amal", amal), ("sara", sara))}
    try:
        r = hala.call("PUT", "/v1/me/presence", {"presence": "available", "ttl_s": 600})
        assert r.status_code == 200
        for name in ("hala", "sara"):  # her own and the supervisor's
            streams[name].next("presence", pred=lambda d: d["agent"] == "hala" and
                               d["presence"] == "available")
        rules = tmp_path / "routing.yaml"
        rules.write_text(RULES)
        daemon("router", env={"WASL_PG_URL": desk.db_url, "WASL_BUS": "",
                              "WASL_ROUTER_RULES": rules, "WASL_ROUTER_SWEEP_MS": 100,
                              "WASL_ROUTER_SWEEP_AGE_MS": 0, "WASL_ROUTER_DISPATCH_MS": 100},
               wait=True)
        ref = make_ref(int(time.time() * 1000) % 10 ** 7 + 1)
        tid = desk.scalar(
            "INSERT INTO tickets (ref, channel, external_id, status, category, confidence,"
            " priority, language, from_phone, subject) VALUES (%s, 'web', %s, 'classified',"
            " 'case_inquiry', 0.9, 'urgent', 'ar', '+966551234567', 'متى الجلسة؟')"
            " RETURNING id", (ref, unique("sse")))
        desk.scalar("INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (%s, 'route', %s)",
                    (tid, f"ticket:{tid}:route"))
        card, got_at = streams["hala"].next("offer", pred=lambda d: d["ticket"] == ref)
        assert card["queue"] == "general" and card["priority"] == "urgent"
        assert card["channel"] == "web" and card["language"] == "ar"
        assert card["expires_at"].endswith("Z") and card["first_response_due"]
        assert card["subject"] == "متى الجلسة؟"
        offered = desk.scalar("SELECT state FROM offers WHERE id = %s", (card["offer"],))
        assert offered == "offered"
        # Neither amal nor the supervisor gets hala's offer card (a supervisor's console shows
        # its own offers only: it could not accept hala's). Proof of absence: a later event,
        # amal's presence, reached both streams after it would have.
        assert amal.call("PUT", "/v1/me/presence",
                         {"presence": "busy", "ttl_s": 60}).status_code == 200
        for name in ("amal", "sara"):
            leaked = []
            while True:
                event, data, _ = streams[name].events.get(timeout=EVENT_WAIT_S)
                if event == "presence" and data.get("agent") == "amal":
                    break
                leaked.append((event, data))
            assert not [e for e in leaked if e[0].startswith("offer")], (name, leaked)
        # Accepting closes the offer on the page.
        assert hala.call("POST", f"/v1/offers/{card['offer']}/accept").status_code == 200
        closed, _ = streams["hala"].next("offer.closed",
                                         pred=lambda d: d["offer"] == card["offer"])
        assert closed["state"] == "accepted"
        # Signing out ends the stream.
        assert hala.call("POST", "/v1/logout").status_code == 204
        streams["hala"].next("end")
    finally:
        for s in streams.values():
            s.close()


def test_rolled_back_change_sends_nothing_and_streams_are_capped(desk_db, start_desk):
    desk = Desk(start_desk(desk_db, env={"WASL_DESK_STREAMS_PER_AGENT": "2"}), desk_db)
    hala = desk.session("hala")
    first, second = Stream(hala), Stream(hala)
    try:
        third = hala.http.get(desk.url + "/v1/events", stream=True, timeout=10)
        assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_streams"
        conn = psycopg2.connect(desk.db_url)
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM wasl_agents_set_presence('hala', 'away', 60, 't')")
        conn.rollback()
        conn.close()
        r = hala.call("PUT", "/v1/me/presence", {"presence": "busy", "ttl_s": 60})
        assert r.status_code == 200
        data, _ = first.next("presence", pred=lambda d: d["agent"] == "hala")
        assert data["presence"] == "busy"  # the rolled-back 'away' never came
        second.next("presence", pred=lambda d: d["presence"] == "busy")
    finally:
        first.close()
        second.close()


def test_sigterm_with_open_streams_and_a_lost_listen_connection(desk, postgres):
    """The LISTEN connection dropped: streams get `resync` once it is back. SIGTERM with open
    streams: every stream ends, the desk exits 0 (libmicrohttpd must not stop while connections
    are suspended)."""
    hala, sara = desk.session("hala"), desk.session("sara")
    streams = [Stream(hala), Stream(hala), Stream(sara)]
    try:
        conn = psycopg2.connect(desk.db_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE query LIKE 'LISTEN wasl_desk%%' AND pid <> pg_backend_pid()")
            assert cur.fetchone() is not None
        conn.close()
        for s in streams:
            s.next("resync")
        assert hala.call("PUT", "/v1/me/presence",
                         {"presence": "busy", "ttl_s": 60}).status_code == 200
        streams[0].next("presence", pred=lambda d: d["presence"] == "busy")
        assert desk.daemon.stop() == 0, desk.daemon.log_tail()
        for s in streams:
            s.next("end")
        assert "desk: stopped" in desk.daemon.log_text()
    finally:
        for s in streams:
            s.close()


def test_seed_demo_people_sign_in(desk, waslctl, tmp_path):
    """`waslctl seed-demo --accounts F` writes four people with fresh passwords (mode 600), each
    of whom signs in with their role; a second run gives new passwords and ends the sessions."""
    accounts = tmp_path / "demo_accounts"
    out = waslctl("seed-demo", "--accounts", accounts, env={"WASL_PG_URL": desk.db_url})
    assert out.returncode == 0, out.stderr
    assert accounts.stat().st_mode & 0o777 == 0o600
    rows = [l.split(None, 3) for l in accounts.read_text().splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("nora", "agent"), ("khalid", "agent"),
                                            ("sara", "supervisor"), ("admin", "admin")]
    assert rows[0][2] not in out.stdout + out.stderr  # printed to the file only
    people = {}
    for agent, role, password, _ in rows:
        p = desk.session()
        r = p.login(agent, password)
        assert r.status_code == 200 and r.json()["role"] == role, r.text
        people[agent] = (p, password)
    me = people["nora"][0].call("GET", "/v1/me").json()
    assert "case-status" in me["queues"] and me["name"] == "نورة العتيبي"
    again = waslctl("seed-demo", "--accounts", accounts, env={"WASL_PG_URL": desk.db_url})
    assert again.returncode == 0, again.stderr
    assert people["nora"][0].call("GET", "/v1/me").status_code == 401
    assert desk.session().login("nora", people["nora"][1]).status_code == 401


def test_streams_end_when_their_session_ends_elsewhere(desk_db, start_desk, waslctl, tmp_path):
    """Signed out on another desk instance, or a new password set with waslctl: the streams
    this instance holds for those sessions end at its next ping (1 s here)."""
    a = Desk(start_desk(desk_db, env={"WASL_DESK_PING_S": "1"}), desk_db)
    b = Desk(start_desk(desk_db), desk_db)
    hala, amal = a.session("hala"), a.session("amal")
    streams = {"hala": Stream(hala), "amal": Stream(amal)}
    try:
        r = requests.post(b.url + "/v1/logout", cookies={"wasl_sid": hala.cookie()},
                          headers={"X-CSRF-Token": hala.csrf}, timeout=10)
        assert r.status_code == 204
        streams["hala"].next("end", timeout=5)
        assert streams["amal"].events.empty()  # hers lives on
        pw = tmp_path / "new.pw"
        pw.write_text("a brand new password 2026\n")
        out = waslctl("agent", "passwd", "amal", "--password-file", pw,
                      env={"WASL_PG_URL": desk_db})
        assert out.returncode == 0, out.stderr
        streams["amal"].next("end", timeout=5)
    finally:
        for s in streams.values():
            s.close()


def test_throttle_behind_a_trusted_proxy_and_a_forged_header(desk_db, start_desk):
    """Behind a proxy the operator trusts, each client's X-Forwarded-For address has its own
    count; without that trust the header is ignored, so rotating it escapes nothing."""
    env = {"WASL_DESK_LOGIN_ADDR_MAX": "3", "WASL_DESK_LOGIN_WINDOW_S": "60"}
    proxied = start_desk(desk_db, env=dict(env, WASL_DESK_TRUSTED_PROXIES="127.0.0.1"))

    def login(url, agent, pw, xff):
        return requests.post(url + "/v1/login", json={"agent": agent, "password": pw},
                             headers={"X-Forwarded-For": xff}, timeout=15)

    for agent in ("ghost1", "ghost2", "ghost3"):
        assert login(proxied.url, agent, "guessing-1234", "203.0.113.7").status_code == 401
    assert login(proxied.url, "amal", PASSWORDS["amal"], "203.0.113.7").status_code == 429
    assert login(proxied.url, "amal", PASSWORDS["amal"], "203.0.113.8").status_code == 200
    # A client cannot hide behind a forged entry on the left of its proxy's.
    assert login(proxied.url, "amal", PASSWORDS["amal"],
                 "198.51.100.1, 203.0.113.7").status_code == 429
    direct = start_desk(desk_db, env=env)
    for i, agent in enumerate(("ghost4", "ghost5", "ghost6")):
        assert login(direct.url, agent, "guessing-1234", f"192.0.2.{i}").status_code == 401
    assert login(direct.url, "hala", PASSWORDS["hala"], "192.0.2.99").status_code == 429
