"""Shared fixtures for Wasl's integration tests: real PostgreSQL, Redis and daemons on loopback.

Run with Debian's interpreter: ``make integration`` (/usr/bin/python3 -m pytest).

Fixtures and helpers (each documented below):
    repo, bin_dir                 paths of the checkout and of build/bin
    free_port(), free_port_range(n)   importable helpers: ``from conftest import free_port``
    postgres (session)            private PostgreSQL cluster: .url .port .connect() .stop() .start()
    fresh_db                      URL of a new, empty database, dropped after the test
    redis_server (session)        a private Redis: .url .port .client() .flush() .stop() .start()
    daemon                        factory: daemon("bus", env={...}) -> Daemon (killed at test end)
    bus                           a running wasl-bus on free ports (Daemon with .endpoint)
    waslctl                       runs build/bin/waslctl with the fixture URLs in its environment

Least privilege (docs/architecture.md, "Database roles"): the cluster gets Wasl's roles from
proto/roles.sql when it starts, every database is owned by `wasl`, and whatever URL a test gives
as the superuser is turned into the right role's: each daemon connects as its own
(``wasl_intake``…, see DAEMON_PG_ROLES), ``waslctl migrate``/``seed-cases`` as the owner ``wasl``
and waslctl's other commands as ``wasl_ctl`` (pg_url_as, waslctl_pg_role). Tests' own psycopg2
connections stay superuser.

PostgreSQL refuses to run as root: as root the cluster is initdb'd and run as ``postgres`` through
runuser, in a /tmp directory that user owns. Missing server binaries fail the run (never skip).

A watchdog ends a hung run: after WASL_TEST_TIMEOUT seconds (default 600) in one test it dumps
every thread's stack, kills every process the fixtures started and exits with status 1.
"""

import faulthandler
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg2
import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = REPO / "build" / "bin"

PII_KEY = secrets.token_hex(32)
TEST_TIMEOUT_S = float(os.environ.get("WASL_TEST_TIMEOUT", "600"))
# Time left for fixture teardown between tests and at the end of the session.
TEARDOWN_TIMEOUT_S = 120
LOG_TAIL_LINES = 40
IS_ROOT = os.geteuid() == 0

# Cleanup callbacks for every process the fixtures started; the watchdog runs them before exiting.
_cleanups = {}
_cleanups_lock = threading.Lock()
# The session servers that exist, by fixture name, so each test's teardown can check on them.
_session_servers = {}


def _register_cleanup(key, fn):
    with _cleanups_lock:
        _cleanups[key] = fn


def _unregister_cleanup(key):
    with _cleanups_lock:
        _cleanups.pop(key, None)


def _run_cleanups():
    with _cleanups_lock:
        fns = list(_cleanups.values())
    for fn in fns:
        try:
            fn()
        except Exception as exc:  # best effort: we are on the way out
            print(f"watchdog: cleanup failed: {exc}", file=sys.stderr)


# ---- helpers ---------------------------------------------------------------------------------


def free_port():
    """Returns a TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    """True when nothing listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_range(count):
    """Returns a base port such that base..base+count-1 are all free on 127.0.0.1 (for the bus,
    which binds a block of ports from WASL_BUS_PORT)."""
    for _ in range(200):
        base = free_port()
        if base + count <= 65535 and all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports found")


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value (returned) or timeout seconds pass
    (raises TimeoutError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(url, timeout=2.0, headers=None):
    """GET url; returns (status, body text). HTTP errors are returned, not raised; a refused or
    timed-out connection raises OSError."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def parse_metrics(text):
    """Parses Prometheus text exposition into {"name{labels}": float} (labels exactly as written;
    "name" alone when there are none). Comments and blank lines are skipped."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            # Label values may hold spaces or braces inside quotes: find the closing brace.
            i, in_quotes = line.index("{"), False
            while i < len(line):
                c = line[i]
                if c == "\\" and in_quotes:
                    i += 2
                    continue
                if c == '"':
                    in_quotes = not in_quotes
                elif c == "}" and not in_quotes:
                    break
                i += 1
            key, rest = line[: i + 1], line[i + 1 :]
        else:
            key, _, rest = line.partition(" ")
        fields = rest.split()
        if not fields:
            raise ValueError(f"metric line without a value: {line!r}")
        out[key] = float(fields[0])  # float() understands +Inf, -Inf and NaN
    return out


def tail(path, lines=LOG_TAIL_LINES):
    """The last `lines` lines of a text file ("" when it does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except FileNotFoundError:
        return ""


def _require(binary, hint):
    """Absolute path of `binary` (a path or a name on PATH); fails the run when missing."""
    path = binary if os.path.isabs(binary) else shutil.which(binary)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{binary} not found: {hint}", pytrace=False)
    return path


def _pg_bindir():
    """Directory of initdb/pg_ctl: WASL_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("WASL_PG_BINDIR"):
        return Path(os.environ["WASL_PG_BINDIR"])
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = _require("initdb", "install postgresql (deploy/deps.sh)")
    return Path(initdb).parent


def _private_tmpdir(prefix, owner=None):
    """A new directory under /tmp (mode 755 so `postgres` can traverse it), chowned to `owner`
    (a user name) when given and we are root."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    if owner and IS_ROOT:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


# ---- database roles ---------------------------------------------------------------------------

# The PostgreSQL role each daemon connects as (proto/roles.sql, proto/grants.sql).
DAEMON_PG_ROLES = {
    "intake": "wasl_intake", "classifier": "wasl_classifier", "router": "wasl_router",
    "notifier": "wasl_notifier", "caselookup": "wasl_caselookup", "desk": "wasl_desk",
}
PG_OWNER_ROLE = "wasl"
PG_CTL_ROLE = "wasl_ctl"
# waslctl commands that change the schema or the case replica run as the owner.
WASLCTL_OWNER_COMMANDS = ("migrate", "seed-cases")
_PG_URL_USER = re.compile(r"^(postgres(?:ql)?://)([^@/]*)@")
# Users a test URL may carry that pg_url_as rewrites: the fixtures' superuser and our roles.
_REWRITABLE_USERS = {"postgres", PG_OWNER_ROLE, PG_CTL_ROLE, *DAEMON_PG_ROLES.values()}


def pg_url_as(url, role):
    """`url` with its user replaced by `role`, when its user is the fixtures' superuser or one
    of Wasl's roles (any other URL — a test's deliberately odd one — comes back unchanged)."""
    m = _PG_URL_USER.match(url or "")
    if not m or m.group(2) not in _REWRITABLE_USERS:
        return url
    return f"{m.group(1)}{role}@{url[m.end():]}"


def waslctl_pg_role(args):
    """The role a waslctl command line connects as: the owner for migrate and seed-cases, the
    operator role for the rest."""
    first = next((str(a) for a in args if not str(a).startswith("-")), "")
    return PG_OWNER_ROLE if first in WASLCTL_OWNER_COMMANDS else PG_CTL_ROLE


def waslctl_env(env, args):
    """`env` for running waslctl `args`, its WASL_PG_URL turned into the command's role."""
    env = dict(env)
    if "WASL_PG_URL" in env:
        env["WASL_PG_URL"] = pg_url_as(env["WASL_PG_URL"], waslctl_pg_role(args))
    return env


def daemon_env(binary, env):
    """`env` for starting `binary` (a build/bin path), its WASL_PG_URL turned into the daemon's
    own role when it has one (a URL naming the superuser is never what a daemon gets)."""
    role = DAEMON_PG_ROLES.get(Path(binary).name.removeprefix("wasl-"))
    env = dict(env)
    if role and env.get("WASL_PG_URL", "").startswith(("postgres://postgres@",
                                                        "postgresql://postgres@")):
        env["WASL_PG_URL"] = pg_url_as(env["WASL_PG_URL"], role)
    return env


# ---- watchdog --------------------------------------------------------------------------------


class _Watchdog:
    """Ends the run when one test (or the teardown after it) takes too long. A thread notices the
    hang even while the main thread is blocked in a system call; faulthandler's own timer, armed a
    little later, covers a main thread stuck while holding the GIL."""

    def __init__(self):
        self._timer = None

    def arm(self, seconds, what):
        self.cancel()
        self._timer = threading.Timer(seconds, self._fire, args=(seconds, what))
        self._timer.daemon = True
        self._timer.start()
        faulthandler.dump_traceback_later(seconds + 30, exit=True)

    def cancel(self):
        if self._timer:
            self._timer.cancel()
            self._timer = None
        faulthandler.cancel_dump_traceback_later()

    @staticmethod
    def _fire(seconds, what):
        # pytest is capturing fd 2 into a file we are about to abandon: give it back first.
        capman = None
        if _pytest_config is not None:
            capman = _pytest_config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            try:
                capman.suspend_global_capture(in_=False)
            except Exception:  # capture state unknown: write wherever stderr goes
                pass
        print(f"\nwatchdog: {what} still running after {seconds:.0f}s; stacks:", file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        _run_cleanups()
        sys.stderr.flush()
        os._exit(1)


_watchdog = _Watchdog()
_pytest_config = None


def pytest_configure(config):
    global _pytest_config
    _pytest_config = config


@pytest.fixture(autouse=True)
def _test_watchdog(request):
    """Arms the watchdog for each test (WASL_TEST_TIMEOUT s), then re-arms it for the teardown."""
    _watchdog.arm(TEST_TIMEOUT_S, request.node.nodeid)
    yield
    _watchdog.arm(TEARDOWN_TIMEOUT_S, f"teardown after {request.node.nodeid}")


def pytest_sessionfinish(session, exitstatus):
    _watchdog.cancel()


# ---- paths -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def repo():
    """Path of the repository checkout."""
    return REPO


@pytest.fixture(scope="session")
def bin_dir():
    """Path of build/bin (the binaries that `make all` builds)."""
    return BIN_DIR


# ---- PostgreSQL ------------------------------------------------------------------------------


class PgServer:
    """A private PostgreSQL cluster on 127.0.0.1:port, unix socket in its own directory.

    Attributes: .port, .url (postgresql://postgres@127.0.0.1:PORT/wasl, superuser, trust auth),
    .base (its directory), .data, .log_path. Methods: .url_for(dbname), .connect(dbname="wasl",
    autocommit=True) -> psycopg2 connection, .stop(mode="fast"), .start(), .running().
    """

    def __init__(self):
        self.bindir = _pg_bindir()
        for tool in ("initdb", "pg_ctl", "postgres"):
            _require(str(self.bindir / tool), "install postgresql (deploy/deps.sh)")
        if IS_ROOT:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root needs the 'postgres' user", pytrace=False)
            _require("runuser", "install util-linux")
        self.base = _private_tmpdir("wasl-pg-", owner="postgres")
        self.data = self.base / "data"
        self.log_path = self.base / "postgres.log"
        self.port = free_port()
        self.url = self.url_for("wasl")
        self._running = False

    def url_for(self, dbname):
        """URL of database `dbname` on this cluster, as the superuser."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _as_owner(self, args, check=True, timeout=60):
        cmd = [str(a) for a in args]
        if IS_ROOT:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        res = subprocess.run(
            cmd, cwd=self.base, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}{res.stderr}\n"
                f"{tail(self.log_path)}"
            )
        return res

    def initdb(self):
        self._as_owner(
            [self.bindir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8"]
        )

    def start(self):
        """Starts the server (same port and data as before) and waits until it accepts
        connections. Raises RuntimeError with the server log on failure."""
        # Test speed over durability: this cluster is thrown away.
        opts = (
            f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_owner(
            [self.bindir / "pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "30",
             "-o", opts, "start"]
        )
        self._running = True
        wait_for(self._accepts, 30, what=f"postgres on port {self.port}")
        self.create_roles()

    def create_roles(self):
        """Applies proto/roles.sql (idempotent) as the superuser, as a DBA would."""
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute((REPO / "proto" / "roles.sql").read_text(encoding="utf-8"))
        finally:
            conn.close()

    def _accepts(self):
        try:
            psycopg2.connect(self.url_for("postgres"), connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def stop(self, mode="fast"):
        """Stops the server (mode: smart|fast|immediate); a no-op when already stopped."""
        if self.running():
            self._as_owner(
                [self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"],
                check=False,
            )
        self._running = False

    def running(self):
        """True when the postmaster is up."""
        if not (self.data / "postmaster.pid").exists():
            return False
        res = self._as_owner([self.bindir / "pg_ctl", "-D", self.data, "status"], check=False)
        return res.returncode == 0

    def connect(self, dbname="wasl", autocommit=True):
        """A new psycopg2 connection to `dbname` as the superuser; the caller closes it."""
        conn = psycopg2.connect(self.url_for(dbname), connect_timeout=5)
        conn.autocommit = autocommit
        return conn

    def create_database(self, dbname):
        """CREATE DATABASE dbname, owned by Wasl's owner role `wasl` (which runs migrate)."""
        # Not `with conn:`: since psycopg2 2.9 that opens a transaction even in autocommit.
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{dbname}" OWNER {PG_OWNER_ROLE}')
        finally:
            conn.close()

    def drop_database(self, dbname):
        """DROP DATABASE dbname, disconnecting its sessions; no error when absent."""
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        finally:
            conn.close()

    def destroy(self):
        """Immediate stop and removal of the cluster's directory."""
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """Session-wide private PostgreSQL (see PgServer) with an empty database `wasl`.

    A test may .stop() it (to check 503 behaviour); it is started again after that test."""
    pg = PgServer()
    _register_cleanup("postgres", pg.destroy)
    try:
        pg.initdb()
        pg.start()
        pg.create_database("wasl")
        _session_servers["postgres"] = pg
        yield pg
    finally:
        _session_servers.pop("postgres", None)
        pg.destroy()
        _unregister_cleanup("postgres")


# Personal data that must never reach a log line unmasked: Saudi mobile numbers in any common
# form, and citizens' national IDs (10 digits from 1 with a valid Luhn check digit).
# A number standing alone: not inside a longer run of letters and digits (a database name such
# as wasl_t_0541880505ab or a hex token is not a phone number).
_PHONE_IN_LOG = re.compile(r"(?<![0-9A-Za-z*])(?:\+?966|00966|0)5[0-9]{8}(?![0-9A-Za-z])")
_ID_IN_LOG = re.compile(r"(?<![0-9A-Za-z*])1[0-9]{9}(?![0-9A-Za-z])")


def _luhn_ok(digits):
    total = 0
    for i, ch in enumerate(digits):
        v = int(ch) * (2 if i % 2 == 0 else 1)
        total += v // 10 + v % 10
    return total % 10 == 0


# Arabic-Indic and Persian digits read as the digits they are.
_FOLD_DIGITS = {**{0x0660 + i: str(i) for i in range(10)}, **{0x06F0 + i: str(i) for i in range(10)}}


def pii_in_text(text):
    """The unmasked phone numbers and national IDs in `text` (a list of strings), written in
    Latin, Arabic-Indic or Persian digits (returned in Latin digits)."""
    text = text.translate(_FOLD_DIGITS)
    found = _PHONE_IN_LOG.findall(text)
    found += [m for m in _ID_IN_LOG.findall(text) if _luhn_ok(m)]
    return found


@pytest.fixture(autouse=True)
def _no_pii_in_logs(request, tmp_path):
    """After every test, every daemon log it produced (*.log under its tmp_path) must be free of
    unmasked phone numbers and national IDs."""
    yield
    leaks = []
    for log in tmp_path.rglob("*.log"):
        for lineno, line in enumerate(log.read_text(encoding="utf-8", errors="replace")
                                      .splitlines(), 1):
            for hit in pii_in_text(line):
                leaks.append(f"{log.name}:{lineno}: {hit}")
    if leaks:
        pytest.fail("personal data in logs: " + "; ".join(leaks[:10]), pytrace=False)


@pytest.fixture(autouse=True)
def _restart_stopped_servers():
    """After each test, starts again a session server that the test stopped, so that one test's
    outage does not leak into the next."""
    yield
    for server in list(_session_servers.values()):
        if not server.running():
            server.start()


@pytest.fixture
def fresh_db(postgres):
    """URL (str) of a new, empty, uniquely named database on the session cluster; dropped after
    the test. Daemons get it via env={"WASL_PG_URL": fresh_db}."""
    name = f"wasl_t_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    yield postgres.url_for(name)
    if not postgres.running():
        postgres.start()
    postgres.drop_database(name)


# ---- Redis -----------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on 127.0.0.1:port, no persistence.

    Attributes: .port, .url (redis://127.0.0.1:PORT/0), .log_path. Methods: .client() -> redis.Redis
    (decode_responses=True), .flush(), .stop(), .start(), .running()."""

    def __init__(self):
        self.binary = _require("redis-server", "install redis-server (deploy/deps.sh)")
        self.base = _private_tmpdir("wasl-redis-")
        self.log_path = self.base / "redis.log"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        """Starts the server and waits until it answers PING."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.base), "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

        def pong():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{tail(self.log_path)}")
            try:
                return self.client().ping()
            except redis.exceptions.ConnectionError:
                return False

        wait_for(pong, 10, what=f"redis on port {self.port}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stops the server (SIGTERM, then SIGKILL after 10 s); a no-op when stopped."""
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self):
        """A new redis-py client for this server (strings decoded as UTF-8)."""
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def flush(self):
        """Empties every database."""
        self.client().flushall()

    def destroy(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    """Session-wide private Redis (see RedisServer). Call .flush() where a test needs it empty."""
    server = RedisServer()
    _register_cleanup("redis", server.destroy)
    try:
        server.start()
        _session_servers["redis_server"] = server
        yield server
    finally:
        _session_servers.pop("redis_server", None)
        server.destroy()
        _unregister_cleanup("redis")


# ---- daemons ---------------------------------------------------------------------------------


def binary_path(name):
    """build/bin path for a daemon short name ("bus" -> wasl-bus) or a binary name."""
    for candidate in (BIN_DIR / name, BIN_DIR / f"wasl-{name}"):
        if candidate.exists():
            return candidate
    pytest.fail(f"{BIN_DIR}/{name} (or wasl-{name}) not built: run make", pytrace=False)


def base_env(postgres, redis_server):
    """The clean environment every started binary gets: PATH, a UTF-8 locale, the fixture URLs,
    debug logging. Nothing else leaks in from the caller's environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "WASL_PG_URL": postgres.url,
        "WASL_REDIS_URL": redis_server.url,
        "WASL_LOG_LEVEL": "debug",
        # The secret keying the hashes of IDs and phones in Redis: the daemons refuse to start
        # without one. Fresh per test session, as a deployment generates its own.
        "WASL_PII_KEY": PII_KEY,
    }
    for keep in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


class Daemon:
    """One running binary from build/bin.

    Attributes: .name, .binary, .env (what it was started with), .proc (Popen), .pid,
    .admin_port (None when started with admin=False), .admin_url, .log_path (its stderr),
    .out_path (its stdout), .returncode (None while running).
    """

    def __init__(self, name, binary, env, log_dir, admin_port=None, args=()):
        self.name = name
        self.binary = Path(binary)
        self.env = daemon_env(binary, env)
        self.args = list(args)
        self.admin_port = admin_port
        self.admin_url = f"http://127.0.0.1:{admin_port}" if admin_port else None
        stem = f"{name}-{uuid.uuid4().hex[:6]}"
        self.log_path = Path(log_dir) / f"{stem}.log"
        self.out_path = Path(log_dir) / f"{stem}.out"
        self.proc = None

    def start(self):
        """Starts the process (returns self; does not wait for health)."""
        with open(self.log_path, "ab") as err, open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.binary)] + self.args, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, cwd=self.log_path.parent,
            )
        _register_cleanup(("daemon", id(self)), self.kill)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    def alive(self):
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def get(self, path, timeout=2.0):
        """GET a path on the admin port; returns (status, body)."""
        assert self.admin_url, f"{self.name} was started without an admin port"
        return http_get(self.admin_url + path, timeout=timeout)

    def wait_healthy(self, timeout=10):
        """Polls GET /healthz until 200 (returns self). Raises AssertionError with the log tail
        when the process dies first or timeout seconds pass."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if not self.alive():
                raise AssertionError(
                    f"{self.name} exited with {self.returncode} before it was healthy; log:\n"
                    f"{self.log_tail()}"
                )
            try:
                status, body = self.get("/healthz", timeout=1)
                if status == 200:
                    return self
                last = f"HTTP {status}: {body.strip()[:200]}"
            except OSError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name} not healthy after {timeout}s ({last}); log:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def metrics(self):
        """GET /metrics parsed into {"name{labels}": float}; asserts the answer is 200."""
        status, body = self.get("/metrics")
        assert status == 200, f"{self.name} /metrics answered {status}: {body[:200]}"
        return parse_metrics(body)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends `sig` and waits up to `timeout` s; returns the exit code (negative: killed by a
        signal). A process still running then is SIGKILLed and AssertionError is raised."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not exit within {timeout}s of signal {sig}; log:\n"
                f"{self.log_tail()}"
            ) from None
        _unregister_cleanup(("daemon", id(self)))
        return code

    def kill(self):
        """SIGKILL (if still running) and reap."""
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        _unregister_cleanup(("daemon", id(self)))

    def log_text(self):
        """Everything written to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines=LOG_TAIL_LINES):
        return tail(self.log_path, lines)

    def log_lines(self, strict=False):
        """stderr parsed as JSON lines (list of dicts). Lines that are not JSON objects are
        skipped, or raise ValueError when strict."""
        out = []
        for line in self.log_text().splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                out.append(obj)
            elif strict:
                raise ValueError(f"{self.name}: log line is not a JSON object: {line!r}")
        return out

    def wait_log(self, predicate, timeout=10):
        """Waits until a JSON log line satisfies predicate(dict) (a str matches the "msg" field
        substring); returns that line. Raises AssertionError with the log tail on timeout."""
        if isinstance(predicate, str):
            text = predicate
            predicate = lambda line: text in str(line.get("msg", ""))  # noqa: E731
        try:
            return wait_for(
                lambda: next((l for l in self.log_lines() if predicate(l)), None),
                timeout, what=f"{self.name} log line",
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; log:\n{self.log_tail()}") from None

    def __repr__(self):
        return f"<Daemon {self.name} pid={self.pid} admin={self.admin_port}>"


@pytest.fixture
def daemon(postgres, redis_server, tmp_path):
    """Factory: daemon(name, env=None, admin=True, args=(), wait=False) -> Daemon, started.

    name: a short name ("bus", "intake") or a binary name in build/bin. env: merged over the
    clean base environment (PATH, LANG, TZ, WASL_PG_URL, WASL_REDIS_URL, WASL_LOG_LEVEL=debug).
    admin=True sets WASL_ADMIN_BIND=127.0.0.1 and WASL_ADMIN_PORT to a free port (unless env sets
    it). wait=True also waits for /healthz. Every daemon is SIGKILLed at the end of the test.
    """
    started = []

    def start(name, env=None, admin=True, args=(), wait=False):
        full_env = base_env(postgres, redis_server)
        port = None
        if admin:
            full_env["WASL_ADMIN_BIND"] = "127.0.0.1"
            full_env["WASL_ADMIN_PORT"] = str(free_port())
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        if admin and full_env["WASL_ADMIN_PORT"].isdigit():  # a test may pass a bad one
            port = int(full_env["WASL_ADMIN_PORT"])
        d = Daemon(name, binary_path(name), full_env, tmp_path, admin_port=port, args=args)
        started.append(d)
        d.start()
        if wait:
            d.wait_healthy()
        return d

    yield start
    for d in reversed(started):
        d.kill()


@pytest.fixture
def bus(daemon):
    """A healthy wasl-bus on a free block of ports (no CURVE). Extra attributes: .base_port and
    .endpoint ("tcp://127.0.0.1:BASE", what clients get as WASL_BUS)."""
    base = free_port_range(8)
    d = daemon("bus", env={"WASL_BUS_BIND": "127.0.0.1", "WASL_BUS_PORT": base}, wait=True)
    d.base_port = base
    d.endpoint = f"tcp://127.0.0.1:{base}"
    return d


@pytest.fixture
def waslctl(postgres, redis_server):
    """Runs build/bin/waslctl: waslctl("migrate", env={...}, timeout=60) -> CompletedProcess
    (text, stdout and stderr captured, not checked). env merges over the daemons' base env."""

    def run(*args, env=None, timeout=60, check=False):
        full_env = base_env(postgres, redis_server)
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        return subprocess.run(
            [str(binary_path("waslctl"))] + [str(a) for a in args],
            env=waslctl_env(full_env, args),
            capture_output=True, text=True, timeout=timeout, check=check,
        )

    return run


@pytest.fixture
def start_desk(daemon):
    """Factory: start_desk(db_url, env=None, www=None) -> Daemon (healthy and ready), a wasl-desk
    on a free port of a migrated database (as the role wasl_desk), plain http (the cookie without
    Secure) unless env says otherwise. Extra attribute: .url ("http://127.0.0.1:PORT")."""

    def start(db_url, env=None, www=None):
        port = free_port()
        full = {"WASL_PG_URL": db_url, "WASL_DESK_BIND": "127.0.0.1", "WASL_DESK_PORT": port,
                "WASL_DESK_COOKIE_SECURE": "0",
                "WASL_DESK_WWW": str(www or REPO / "services" / "desk" / "www"),
                "WASL_DESK_REPLIES": str(REPO / "deploy" / "templates" / "replies")}
        full.update(env or {})
        d = daemon("desk", env=full, wait=True)
        wait_for(lambda: d.get("/readyz")[0] == 200, 10, what="desk ready")
        d.url = f"http://127.0.0.1:{port}"
        return d

    return start
