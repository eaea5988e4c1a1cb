"""Shared helpers for the wasl-intake black-box tests: start the real daemon with its clients, talk
HTTP to it (bearer or HMAC), read PostgreSQL and the bus, check ticket references (Verhoeff).

Fixtures (import them into a test module: ``from intake_helpers import intake, start_intake``):
    start_intake   factory: start_intake(env=None, bus=None, clients=DEFAULT_CLIENTS) -> Intake,
                   on a fresh migrated database; bus=None points WASL_BUS at an unused port block
    intake         a running intake with DEFAULT_CLIENTS and a running wasl-bus (.bus_daemon)
    shared_intake  one intake per test module (for tables of cheap cases such as error replies)

Everything here uses the standard library plus psycopg2, pyzmq and msgpack (the project's test
rule: real binaries, real PostgreSQL and Redis, loopback only).
"""

import copy
import hashlib
import hmac
import http.client
import json
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import msgpack
import psycopg2
import psycopg2.extras
import pytest
import zmq

from conftest import (
    Daemon,
    base_env,
    binary_path,
    free_port,
    free_port_range,
    wait_for,
    waslctl_env,
)

HTTP_TIMEOUT_S = 15
START_TIMEOUT_S = 15
BUS_PORT_COUNT = 8
# The classify stage is stage 0 of the default list: producers push to base+2, consumers pull
# from base+3 (docs/architecture.md, "The bus").
CLASSIFY_IN_OFFSET = 2
CLASSIFY_OUT_OFFSET = 3
BUS_WAIT_S = 10
HMAC_MAX_AGE_S = 300
BODY_MAX_BYTES = 65536
ERRORS_METRIC = "wasl_intake_http_errors_total"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
RFC822 = "message/rfc822"

# A report body as beneficiaries write it: Arabic with diacritics and tatweel, Arabic-Indic
# digits, a decomposed hamza (alef + U+0654, which NFC would compose), a zero-width joiner, an
# emoji, CRLF and trailing spaces. Stored byte-exact, it survives only an intake that never
# normalizes.
ARABIC_BODY = (
    "السلام عليكم ورحمة الله،\r\n"
    "أرجو الإفادة عن موعد الجلسة القادمة في القضية رقم ٤٥١٢٣٤٥٦٧٨ "
    "لدى المحكمة الإداريـــة بالرياض. "
    "ا\u0654حمد — مُقدِّم الطلب \u200d🙏  \n"
    "وشكراً.  "
)


# ---- ticket references ----------------------------------------------------------------------

_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
_VERHOEFF_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_check_digit(digits):
    """The Verhoeff check digit (an int) to append to the ASCII digit string `digits`."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[(i + 1) % 8][int(ch)]]
    return _VERHOEFF_INV[c]


def verhoeff_valid(digits):
    """True when the last digit of `digits` is the Verhoeff check digit of the others."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


# Known answers (the published example 236 -> 3, and the contract's example reference).
assert verhoeff_check_digit("236") == 3 and verhoeff_valid("2363") and not verhoeff_valid("2364")
assert verhoeff_valid("2600000018")


def make_ref(seq, year=None):
    """A valid reference for 7-digit sequence `seq` in 2-digit `year` (default: this UTC year)."""
    yy = (time.gmtime().tm_year if year is None else year) % 100
    head = f"{yy:02d}{seq:07d}"
    return head + str(verhoeff_check_digit(head))


def assert_valid_ref(ref):
    """A ticket reference: 10 ASCII digits, 2-digit year, Verhoeff check digit last."""
    assert isinstance(ref, str) and len(ref) == 10 and ref.isascii() and ref.isdigit(), ref
    assert verhoeff_valid(ref), f"{ref}: last digit is not the Verhoeff check digit of the rest"
    # The year of issue: allow the year to turn over during the run.
    years = {f"{(time.gmtime().tm_year + d) % 100:02d}" for d in (-1, 0)}
    assert ref[:2] in years, f"{ref}: does not start with the 2-digit year ({years})"


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def to_arabic_indic(s):
    return s.translate(ARABIC_INDIC)


def to_persian(s):
    return s.translate(PERSIAN)


def unique(prefix="x"):
    """A short unique id for external ids, call ids, SMS ids."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def unique_saudi_mobile():
    """A random Saudi mobile number in local form (05XXXXXXXX) and its E.164 form."""
    rest = f"{secrets.randbelow(10 ** 8):08d}"
    return "05" + rest, "+9665" + rest


# ---- clients --------------------------------------------------------------------------------


@dataclass
class Client:
    """One intake client as `waslctl client add` creates it."""
    id: str
    kind: str
    scopes: str
    token: str = None
    hmac_secret: str = None
    rate: int = 100000
    act_as: str = None       # comma-separated agent ids the token may act for
    role: str = None         # agent | supervisor | admin
    trusted_ani: bool = False

    def add_args(self):
        args = ["client", "add", self.id, "--kind", self.kind, "--scopes", self.scopes,
                "--rate", str(self.rate)]
        if self.token:
            args += ["--token", self.token]
        if self.hmac_secret:
            args += ["--hmac-secret", self.hmac_secret]
        if self.act_as:
            args += ["--act-as", self.act_as]
        if self.role:
            args += ["--role", self.role]
        if self.trusted_ani:
            args += ["--trusted-ani"]
        return args


def new_token():
    return secrets.token_hex(32)


def new_secret():
    return secrets.token_hex(32)  # 64 characters: the schema wants at least 32


def default_clients():
    """The clients most tests use, with fresh credentials each time (Redis is shared between
    tests: HMAC replay records and rate counters must not leak from one test into another)."""
    return [
        Client("portal", "web_portal", "reports,tickets:read", token=new_token()),
        Client("feeder", "api", "reports", token=new_token()),
        Client("ops", "ops", "*", token=new_token()),
        Client("phone", "telephony", "calls", token=new_token()),
        Client("smsgw", "sms_gateway", "sms", token=new_token()),
        Client("mailgw", "email_gateway", "email", token=new_token()),
        Client("desk", "agent_desk", "tickets:read:all", token=new_token()),
        Client("signer", "api", "reports", hmac_secret=new_secret()),
    ]


def run_waslctl(env, *args, timeout=60):
    """build/bin/waslctl ARGS with `env` (its WASL_PG_URL as the command's role: see
    conftest.waslctl_env); CompletedProcess (text), not checked."""
    return subprocess.run(
        [str(binary_path("waslctl"))] + [str(a) for a in args], env=waslctl_env(env, args),
        capture_output=True,
        text=True, timeout=timeout, check=False,
    )


# ---- HTTP -----------------------------------------------------------------------------------


class Response:
    """An HTTP answer: .status, .headers (case-insensitive .header(name)), .raw (bytes),
    .json (parsed, or None when not JSON), .elapsed_s."""

    def __init__(self, status, headers, raw, elapsed_s):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.elapsed_s = elapsed_s
        try:
            self.json = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def error(self):
        """The `error` object of an error reply ({} when there is none)."""
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"]
        return {}

    def __repr__(self):
        return f"<HTTP {self.status} {self.raw[:300]!r}>"


def http_request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT_S,
                 chunked=False):
    """One request on a new connection to 127.0.0.1:port; returns a Response. A refused or
    timed-out connection raises OSError."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    try:
        hdrs = dict(headers or {})
        if chunked:
            conn.putrequest(method, path)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            step = 1024
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                try:
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                except (BrokenPipeError, ConnectionResetError):
                    break  # the server may answer 413 and close before reading it all
            else:
                conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return Response(resp.status, resp.getheaders(), raw, time.monotonic() - t0)
    finally:
        conn.close()


def new_nonce():
    return secrets.token_hex(16)


def canonical_request(method, target, body, t, nonce):
    """The bytes an HMAC signature covers (proto/openapi.yaml, "hmac"): the scheme, the method,
    the path and the query exactly as sent on the request line, the timestamp, the nonce and the
    hex SHA-256 of the body, one per line."""
    path, _, query = target.partition("?")
    return "\n".join(["WASL-HMAC-SHA256", method, path, query, str(t), nonce,
                      hashlib.sha256(body).hexdigest()]).encode("utf-8")


def sign(secret, body, t=None, *, method="POST", target="/v1/reports", nonce=None):
    """The X-Wasl-Signature value for `method` on `target` (path?query as sent) with raw `body`
    (bytes) at unix time `t` (default now) and `nonce` (default a fresh random one)."""
    t = int(time.time()) if t is None else int(t)
    nonce = new_nonce() if nonce is None else nonce
    mac = hmac.new(secret.encode(), canonical_request(method, target, body, t, nonce),
                   hashlib.sha256).hexdigest()
    return f"t={t},n={nonce},v1={mac}"


_DEFAULT = object()


class Intake:
    """A running wasl-intake and what a test needs around it.

    .daemon (conftest Daemon: admin port, logs, stop()), .port (public HTTP), .db_url,
    .clients {id: Client}, .bus_endpoint, .bus_daemon (None without a running bus).
    """

    def __init__(self, daemon, port, db_url, clients, bus_endpoint, bus_daemon=None):
        self.daemon = daemon
        self.port = port
        self.db_url = db_url
        self.clients = {c.id: c for c in clients}
        self.bus_endpoint = bus_endpoint
        self.bus_daemon = bus_daemon
        self._conn = None
        self._ctx = None
        self._lock = threading.Lock()

    # -- HTTP --

    def token(self, client_id):
        return self.clients[client_id].token

    def request(self, method, path, body=None, *, content_type=None, client="portal",
                token=_DEFAULT, headers=None, timeout=HTTP_TIMEOUT_S, chunked=False):
        """Sends a request as `client` (its bearer token) unless token= is given (None: no
        credentials). body: bytes, or str (UTF-8), or dict/list (JSON-encoded)."""
        hdrs = {}
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False).encode("utf-8")
            content_type = content_type or JSON
        elif isinstance(body, str):
            body = body.encode("utf-8")
        if content_type:
            hdrs["Content-Type"] = content_type
        tok = self.token(client) if token is _DEFAULT else token
        if tok:
            hdrs["Authorization"] = f"Bearer {tok}"
        hdrs.update(headers or {})
        return http_request(self.port, method, path, body, hdrs, timeout=timeout, chunked=chunked)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def report(self, body=None, client="portal", **fields):
        """POST /v1/reports. Without `body`, a valid Arabic report (fresh external_id) updated
        with `fields`."""
        if body is None:
            body = {"channel": "web", "external_id": unique("web"), "body": ARABIC_BODY}
            body.update(fields)
        return self.post("/v1/reports", body, client=client)

    def signed_post(self, path, raw, client="signer", t=None, signature=None,
                    content_type=JSON, nonce=None):
        """POST raw bytes with an HMAC signature as `client` (no bearer token)."""
        return self.signed_request("POST", path, raw, client=client, t=t, signature=signature,
                                   content_type=content_type, nonce=nonce)

    def signed_request(self, method, path, raw=b"", client="signer", t=None, signature=None,
                       content_type=None, nonce=None):
        """`method` on `path` (with its query, as sent) with raw bytes, HMAC-signed as `client`
        (no bearer token); signature= replaces the computed header."""
        secret = self.clients[client].hmac_secret
        sig = signature if signature is not None else sign(
            secret, raw, t, method=method, target=path, nonce=nonce)
        return self.request(method, path, raw if raw else None, token=None,
                            content_type=content_type,
                            headers={"X-Wasl-Signature": sig, "X-Wasl-Client": client})

    def wait_accepting(self, timeout=START_TIMEOUT_S):
        def accepts():
            if not self.daemon.alive():
                raise AssertionError(f"intake exited ({self.daemon.returncode}):\n"
                                     f"{self.daemon.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False
        wait_for(accepts, timeout, what=f"intake accepting on port {self.port}")

    def waslctl(self, *args):
        """build/bin/waslctl ARGS against this intake's database and Redis."""
        return run_waslctl(dict(self.daemon.env), *args)

    # -- admin --

    def metrics(self):
        return self.daemon.metrics()

    def error_count(self, code, metrics=None):
        """Sum of wasl_intake_http_errors_total over every endpoint for error `code`."""
        m = self.metrics() if metrics is None else metrics
        label = f'code="{code}"'
        return sum(v for k, v in m.items()
                   if k.startswith(ERRORS_METRIC + "{") and label in k)

    def ready_status(self):
        try:
            return self.daemon.get("/readyz", timeout=5)[0]
        except OSError:
            return None

    # -- PostgreSQL --

    def db(self):
        """A shared autocommit connection to the test database (reconnects after an outage)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.db_url, connect_timeout=5)
            self._conn.autocommit = True
        return self._conn

    def reconnect_db(self):
        """Drops the shared connection (after PostgreSQL was restarted)."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def rows(self, sql, args=()):
        """Every row as a dict."""
        with self.db().cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, args)
            return [dict(r) for r in cur.fetchall()]

    def scalar(self, sql, args=()):
        with self.db().cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
            return row[0] if row else None

    def ticket(self, ref):
        """The tickets row of `ref` as a dict (AssertionError when absent)."""
        rows = self.rows("SELECT * FROM tickets WHERE ref = %s", (ref,))
        assert len(rows) == 1, f"expected one ticket {ref}, found {len(rows)}"
        return rows[0]

    def messages(self, ticket_id):
        return self.rows("SELECT * FROM messages WHERE ticket_id = %s ORDER BY id", (ticket_id,))

    def events(self, ticket_id):
        return self.rows("SELECT * FROM ticket_events WHERE ticket_id = %s ORDER BY id",
                         (ticket_id,))

    def work(self, ticket_id):
        return self.rows("SELECT * FROM work WHERE ticket_id = %s ORDER BY id", (ticket_id,))

    def count(self, table, where="TRUE", args=()):
        return self.scalar(f"SELECT count(*) FROM {table} WHERE {where}", args)

    # -- bus --

    def tap(self):
        """A PULL socket on the bus's classify output, connected and with intake's PUSH also
        connected (so nothing intake sends from now on is dropped for want of a peer)."""
        assert self.bus_daemon is not None, "intake was started without a bus"
        with self._lock:
            if self._ctx is None:
                self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        base = self.bus_daemon.base_port
        sock.connect(f"tcp://127.0.0.1:{base + CLASSIFY_OUT_OFFSET}")

        def peers(side):
            return self.bus_daemon.metrics().get(
                f'wasl_bus_peers{{stage="classify",side="{side}"}}', 0)
        wait_for(lambda: peers("out") >= 1 and peers("in") >= 1, BUS_WAIT_S,
                 what="the tap and intake connected to the bus's classify stage")
        return BusTap(sock)

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None
        self.daemon.kill()


class AgentAPI:
    """Intake's agent API as integrations call it since issue 15: the agent paths (/v1/agents…,
    /v1/offers/…, /v1/queues/…, a state change on /v1/tickets/…) go to wasl-desk on the same
    database with the client's bearer token; everything else — reports, the machine read of a
    ticket, the database helpers — is the intake's (`.intake`)."""

    def __init__(self, it, desk_daemon):
        self.intake = it
        self.desk = desk_daemon
        self.desk_port = int(desk_daemon.url.rsplit(":", 1)[1])

    @staticmethod
    def is_agent_path(method, path):
        return (path == "/v1/agents" or path.startswith(("/v1/agents/", "/v1/offers/",
                                                          "/v1/queues/"))
                or (path.startswith("/v1/tickets/") and method != "GET"))

    def request(self, method, path, body=None, **kw):
        if not self.is_agent_path(method, path):
            return self.intake.request(method, path, body, **kw)
        at_desk = copy.copy(self.intake)
        at_desk.port = self.desk_port
        return Intake.request(at_desk, method, path, body, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def __getattr__(self, name):
        return getattr(self.intake, name)


def agent_api(it, start_desk, env=None):
    """An AgentAPI: a wasl-desk started on `it`'s database (clients re-read every second)."""
    full = {"WASL_DESK_CLIENTS_REFRESH_S": "1"}
    full.update(env or {})
    return AgentAPI(it, start_desk(it.db_url, env=full))


class BusTap:
    """Decoded ticket.received messages read from the bus."""

    def __init__(self, sock):
        self.sock = sock
        self.seen = []

    def wait(self, predicate, timeout=BUS_WAIT_S):
        """The first message (a dict, keys as str) for which predicate(msg) is true; messages
        that do not match are kept in .seen. AssertionError after `timeout` s."""
        for msg in self.seen:
            if predicate(msg):
                return msg
        deadline = time.monotonic() + timeout
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not self.sock.poll(left_ms):
                raise AssertionError(f"no matching bus message within {timeout}s; "
                                     f"saw {self.seen[-5:]}")
            msg = msgpack.unpackb(self.sock.recv(), raw=False)
            self.seen.append(msg)
            if predicate(msg):
                return msg


# ---- starting intake ------------------------------------------------------------------------


def unused_bus_endpoint():
    """An endpoint where no bus listens (a free block of ports)."""
    return f"tcp://127.0.0.1:{free_port_range(BUS_PORT_COUNT)}"


def launch_intake(postgres, redis_server, db_url, log_dir, clients=None, env=None,
                  bus_daemon=None, migrate=True):
    """Migrates `db_url`, adds `clients`, starts wasl-intake on free ports and waits until it is
    healthy and accepts connections. Returns an Intake; the caller calls .close()."""
    clients = default_clients() if clients is None else clients
    ctl_env = base_env(postgres, redis_server)
    ctl_env["WASL_PG_URL"] = db_url
    if migrate:
        out = run_waslctl(ctl_env, "migrate")
        assert out.returncode == 0, f"waslctl migrate: {out.stdout}{out.stderr}"
    for c in clients:
        out = run_waslctl(ctl_env, *c.add_args())
        assert out.returncode == 0, f"waslctl {' '.join(c.add_args()[:3])}: {out.stderr}"
    port = free_port()
    admin_port = free_port()
    bus_endpoint = bus_daemon.endpoint if bus_daemon is not None else unused_bus_endpoint()
    full_env = base_env(postgres, redis_server)
    full_env.update({
        "WASL_PG_URL": db_url,
        "WASL_HTTP_BIND": "127.0.0.1",
        "WASL_HTTP_PORT": str(port),
        "WASL_ADMIN_BIND": "127.0.0.1",
        "WASL_ADMIN_PORT": str(admin_port),
        "WASL_BUS": bus_endpoint,
        "WASL_INTAKE_CLIENTS_REFRESH_S": "1",
    })
    full_env.update({k: str(v) for k, v in (env or {}).items()})
    d = Daemon("intake", binary_path("intake"), full_env, log_dir, admin_port=admin_port)
    d.start()
    it = Intake(d, port, db_url, clients, bus_endpoint, bus_daemon)
    try:
        d.wait_healthy(START_TIMEOUT_S)
        it.wait_accepting()
        if migrate:
            # Accepting connections is not knowing the clients: until the first read of the
            # table every request is a 503 (a race a busy machine loses).
            d.wait_log("clients loaded", START_TIMEOUT_S)
    except BaseException:
        it.close()
        raise
    return it


@pytest.fixture
def start_intake(postgres, redis_server, fresh_db, tmp_path):
    """Factory: start_intake(env=None, bus=None, clients=None) -> Intake on `fresh_db`. bus: a
    conftest bus Daemon (with .endpoint and .base_port) or None for an endpoint where nothing
    listens. Each intake is killed at the end of the test."""
    started = []

    def start(env=None, bus=None, clients=None, migrate=True):
        it = launch_intake(postgres, redis_server, fresh_db, tmp_path, clients=clients, env=env,
                           bus_daemon=bus, migrate=migrate)
        started.append(it)
        return it

    yield start
    for it in reversed(started):
        it.close()


@pytest.fixture
def intake(start_intake, bus):
    """A running intake with default_clients() and a running wasl-bus."""
    return start_intake(bus=bus)


@pytest.fixture(scope="module")
def shared_intake(postgres, redis_server, tmp_path_factory):
    """One intake (default clients, no bus) for a whole test module, on its own database."""
    name = f"wasl_m_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    it = launch_intake(postgres, redis_server, postgres.url_for(name),
                       tmp_path_factory.mktemp("intake"))
    try:
        yield it
    finally:
        it.close()
        if not postgres.running():
            postgres.start()
        postgres.drop_database(name)


# ---- assertions -----------------------------------------------------------------------------


def assert_error(resp, status, code, field=_DEFAULT):
    """resp is an error reply {"error": {"code", "field", "message"}} with `status` and `code`;
    field=X also checks error.field (None: absent or null)."""
    assert resp.status == status, f"expected {status} {code}, got {resp}"
    assert resp.json is not None, f"error reply is not JSON: {resp}"
    err = resp.error
    assert err.get("code") == code, f"expected code {code}: {resp}"
    assert isinstance(err.get("message"), str) and err["message"], f"no message: {resp}"
    if field is not _DEFAULT:
        assert err.get("field") == field, f"expected field {field!r}: {resp}"
    ctype = resp.header("Content-Type") or ""
    assert ctype.startswith(JSON), f"error Content-Type is {ctype!r}"


def assert_counted(it, code, before, timeout=5):
    """The errors counter for `code` went from `before` to before + 1."""
    wait_for(lambda: it.error_count(code) >= before + 1, timeout,
             what=f"{ERRORS_METRIC}{{code=\"{code}\"}} to increase from {before}")
    assert it.error_count(code) == before + 1


def form(**fields):
    return urllib.parse.urlencode(fields).encode("ascii")
