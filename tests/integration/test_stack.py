"""Black-box tests of deploy/stack.sh: `up` / status / `down`, and `run` stopped with Ctrl-C."""

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import (
    REPO,
    _register_cleanup,
    _unregister_cleanup,
    free_port,
    free_port_range,
    http_get,
    port_is_free,
    wait_for,
)

DAEMONS = ["bus", "intake", "classifier", "router", "notifier", "caselookup", "desk"]
REQUIRED_VARS = [
    "WASL_HTTP_URL", "WASL_DESK_URL", "WASL_PG_URL", "WASL_REDIS_URL", "WASL_DEV_TOKEN", "WASL_BUS",
    "WASL_CURVE_DIR", "WASL_STATUS_TARGETS",
]
BUS_PORT_COUNT = 8
STACK_CMD_TIMEOUT_S = 120  # `up` includes initdb on a 2-core machine
RUN_HEALTHY_TIMEOUT_S = 90
SIGINT_EXIT_TIMEOUT_S = 20


def pid_alive(pid):
    """True when pid is a live process (a zombie counts as gone: only its parent can reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def parse_env_file(path):
    """The `export K='V'` lines of stack.env as a dict."""
    out = {}
    for line in Path(path).read_text().splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "export" and len(words) == 2 and "=" in words[1], line
        key, _, value = words[1].partition("=")
        out[key] = value
    return out


class Stack:
    """One stack under a private WASL_VAR with private ports: .var, .env (the script's
    environment), .ports (every port the stack may bind), .admin_ports {name: port}."""

    def __init__(self):
        self.var = Path(tempfile.mkdtemp(prefix="wasl-stack-", dir="/tmp"))
        self.var.chmod(0o755)  # PostgreSQL (run as postgres) must traverse it
        bus_base = free_port_range(BUS_PORT_COUNT)
        taken = set(range(bus_base, bus_base + BUS_PORT_COUNT))

        def unique_port():
            while True:
                port = free_port()
                if port not in taken:
                    taken.add(port)
                    return port

        self.admin_ports = {name: unique_port() for name in DAEMONS}
        self.pg_port, self.redis_port, self.http_port, self.desk_port = (
            unique_port() for _ in range(4))
        self.ports = sorted(taken)
        # The caller's WASL_* settings would override ours: leave them out.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WASL_")}
        self.env.update(
            WASL_VAR=str(self.var),
            WASL_PG_PORT=str(self.pg_port),
            WASL_REDIS_PORT=str(self.redis_port),
            WASL_HTTP_PORT=str(self.http_port),
            WASL_DESK_PORT=str(self.desk_port),
            WASL_BUS_PORT=str(bus_base),
        )
        for name, port in self.admin_ports.items():
            self.env[f"WASL_{name.upper()}_ADMIN_PORT"] = str(port)

    def sh(self, command, timeout=STACK_CMD_TIMEOUT_S):
        """Runs deploy/stack.sh COMMAND; CompletedProcess with stdout+stderr in .stdout."""
        return subprocess.run(
            [str(REPO / "deploy" / "stack.sh"), command], env=self.env, cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=timeout, check=False,
        )

    def stack_env(self):
        return parse_env_file(self.var / "stack.env")

    def client_env(self):
        """The environment a client of the stack gets: ours plus stack.env."""
        env = dict(self.env)
        env.update(self.stack_env())
        return env

    def status(self):
        return subprocess.run(
            [str(REPO / "build" / "bin" / "waslctl"), "status"], env=self.client_env(),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False,
        )

    def pids(self):
        """{label: pid} from var/run/*.pid and PostgreSQL's postmaster.pid."""
        out = {}
        for pidfile in sorted((self.var / "run").glob("*.pid")):
            text = pidfile.read_text().split()
            if text:
                out[pidfile.stem] = int(text[0])
        data = Path(self.stack_env().get("WASL_PG_DATA", self.var / "pg"))
        postmaster = data / "postmaster.pid"
        if postmaster.exists():
            out["postgres"] = int(postmaster.read_text().split()[0])
        return out

    def destroy(self):
        self.sh("down", timeout=60)
        shutil.rmtree(self.var, ignore_errors=True)


def assert_gone(pids, ports):
    """Every pid is gone and every port is free (allowing a moment for the kernel)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = {k: p for k, p in pids.items() if pid_alive(p)}
        busy = [p for p in ports if not port_is_free(p)]
        if not alive and not busy:
            return
        time.sleep(0.1)
    assert not alive, f"stack processes still alive: {alive}"
    assert not busy, f"ports still bound: {busy}"


@pytest.fixture
def stack(bin_dir):
    """A stack configuration on private ports and a private WASL_VAR; torn down afterwards."""
    for binary in ("wasl-bus", "waslctl"):
        if not (bin_dir / binary).exists():
            pytest.fail(f"{bin_dir / binary} not built: run make", pytrace=False)
    s = Stack()
    _register_cleanup(("stack", id(s)), s.destroy)
    yield s
    s.destroy()
    _unregister_cleanup(("stack", id(s)))


def test_up_status_down(stack):
    up = stack.sh("up")
    assert up.returncode == 0, up.stdout

    env = stack.stack_env()
    for name in REQUIRED_VARS:
        assert env.get(name), f"stack.env lacks {name}:\n{env}"
    assert f"bus=http://127.0.0.1:{stack.admin_ports['bus']}" in env["WASL_STATUS_TARGETS"]
    assert env["WASL_BUS"] == f"tcp://127.0.0.1:{stack.env['WASL_BUS_PORT']}"
    assert f":{stack.pg_port}/" in env["WASL_PG_URL"]
    assert f":{stack.redis_port}" in env["WASL_REDIS_URL"]
    token_file = stack.var / "dev_token"
    assert token_file.read_text().strip() == env["WASL_DEV_TOKEN"]
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert stack.sh("env").stdout == (stack.var / "stack.env").read_text()

    status = stack.status()
    assert status.returncode == 0, status.stdout + status.stderr
    bus_lines = [line for line in status.stdout.splitlines() if "bus" in line]
    assert bus_lines, status.stdout
    assert not any(w in bus_lines[0].lower() for w in ("down", "unhealthy", "fail", "error"))
    # The desk: its row in the status, its URL in stack.env and in what `up` printed.
    desk_line = next(line for line in status.stdout.splitlines() if line.startswith("desk"))
    assert " ok " in desk_line and "ready" in desk_line, status.stdout
    assert env["WASL_DESK_URL"] == f"http://127.0.0.1:{stack.desk_port}"
    assert f"the desk: {env['WASL_DESK_URL']}" in up.stdout
    demo = stack.var / "demo_accounts"
    assert demo.stat().st_mode & 0o777 == 0o600
    assert [l.split()[0] for l in demo.read_text().splitlines()[2:]] == [
        "nora", "khalid", "sara", "admin"]

    code, body = http_get(f"http://127.0.0.1:{stack.admin_ports['bus']}/metrics")
    assert code == 200
    assert any(line.startswith("wasl_") for line in body.splitlines()), body[:500]

    again = stack.sh("up")
    assert again.returncode == 0, again.stdout
    assert "already up" in again.stdout
    assert stack.stack_env()["WASL_DEV_TOKEN"] == env["WASL_DEV_TOKEN"]

    pids = stack.pids()
    assert {"bus", "redis", "postgres"} <= set(pids), pids
    down = stack.sh("down")
    assert down.returncode == 0, down.stdout
    assert_gone(pids, stack.ports)

    down_again = stack.sh("down")
    assert down_again.returncode == 0, down_again.stdout


def test_stack_pipeline_runs_on_bus_nudges_not_sweeps(stack):
    """Every hop of the local stack goes over the bus, with CURVE and heartbeats, well after
    start: the sweeps are told to wait ten minutes, so a report routed within seconds was
    carried by the nudges. (Regression: libzmq's own proxy stopped forwarding a few seconds
    after start, and the sweeps hid it behind a two-second delay per hop.)"""
    stack.env["WASL_CLASSIFIER_SWEEP_AGE_MS"] = "600000"
    stack.env["WASL_ROUTER_SWEEP_AGE_MS"] = "600000"
    up = stack.sh("up")
    assert up.returncode == 0, up.stdout
    env = stack.stack_env()
    assert env["WASL_CURVE_DIR"], "make up runs CURVE"
    url = env["WASL_HTTP_URL"] + "/v1/reports"
    headers = {"Authorization": "Bearer " + env["WASL_DEV_TOKEN"],
               "Content-Type": "application/json"}
    import psycopg2
    import urllib.request
    db = psycopg2.connect(env["WASL_PG_URL"])
    db.autocommit = True
    try:
        # Three reports, the last one after several heartbeat intervals (2 s) of the bus.
        for i, pause in enumerate((0, 3, 4)):
            time.sleep(pause)  # the bus's idle time is the condition under test
            body = json.dumps({"external_id": f"stack-nudge-{i}", "body": "متى موعد الجلسة؟",
                               "from": {"phone": "0551234567"}}).encode()
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                ref = json.loads(resp.read())["ticket"]
            with db.cursor() as cur:
                routed = wait_for(lambda: (cur.execute(
                    "SELECT routed_at IS NOT NULL FROM tickets WHERE ref = %s", (ref,)),
                    cur.fetchone()[0])[1] or None, 10, what=f"report {i} routed")
            assert routed
    finally:
        db.close()
    assert stack.sh("down").returncode == 0


def test_run_foreground_stops_on_sigint(stack):
    output = stack.var / "run.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [str(REPO / "deploy" / "stack.sh"), "run"], env=stack.env, cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # the SIGINT below goes to the script alone
            # A signal ignored when bash starts cannot be trapped: make sure SIGINT is not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def kill_group():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    _register_cleanup(("run", proc.pid), kill_group)
    try:

        def healthy():
            if proc.poll() is not None:
                raise AssertionError(f"stack.sh run exited {proc.returncode}:\n"
                                     f"{output.read_text()}")
            return (stack.var / "stack.env").exists() and stack.status().returncode == 0

        wait_for(healthy, RUN_HEALTHY_TIMEOUT_S, interval=0.5, what="the foreground stack")
        pids = stack.pids()
        assert {"bus", "redis", "postgres"} <= set(pids), pids

        os.kill(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(SIGINT_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"stack.sh run still running {SIGINT_EXIT_TIMEOUT_S}s after SIGINT:\n"
                        f"{output.read_text()}")
        text = output.read_text()
        assert code == 0, text
        assert_gone(pids, stack.ports)
        # Daemon output reaches the terminal, each line prefixed with the daemon's name.
        assert any(line.startswith("bus ") for line in text.splitlines()), text
    finally:
        kill_group()
        _unregister_cleanup(("run", proc.pid))


def test_dev_token_never_on_a_command_line(stack):
    """`stack.sh up` hands the dev token to `waslctl client add` on stdin: no command line the
    stack runs — waslctl's, the daemons', PostgreSQL's, Redis's — contains it (command lines
    are world-readable in ps and /proc/*/cmdline). Every execve is recorded with strace -f, and
    the token still works afterwards."""
    token = "devtok-" + secrets.token_hex(16)
    stack.env["WASL_DEV_TOKEN"] = token
    trace = stack.var / "execve.trace"
    # strace stays attached to the daemons `up` leaves running; it ends with `down`.
    tracer = subprocess.Popen(
        ["strace", "-f", "--seccomp-bpf", "-q", "-e", "trace=execve", "-e", "signal=none",
         "-s", "65536", "-o", str(trace), str(REPO / "deploy" / "stack.sh"), "up"],
        env=stack.env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=open(stack.var / "up.out", "wb"),
        stderr=subprocess.STDOUT)
    _register_cleanup(("strace", tracer.pid), tracer.kill)
    try:
        def up_exit_code():
            text = trace.read_text() if trace.exists() else ""
            first = text.split(None, 1)[0] if text else None
            # strace pads the pid column ("%-5d "): a 4-digit pid is followed by two spaces.
            m = first and re.search(rf"^{first}\s+\+\+\+ exited with (\d+) \+\+\+$", text,
                                    re.M)
            if tracer.poll() is not None and not m:
                raise AssertionError(f"strace ended ({tracer.returncode}):\n{text[-3000:]}")
            return m and int(m.group(1)) + 1  # +1: an exit code 0 must be truthy
        try:
            code = wait_for(up_exit_code, STACK_CMD_TIMEOUT_S, interval=0.2,
                            what="stack.sh up under strace")
        except TimeoutError:
            code = None
        assert code == 1, ((stack.var / "up.out").read_text() + "\n---\n" +
                           trace.read_text()[:2000] + "\n...\n" + trace.read_text()[-3000:])
        import urllib.request
        # The agent API is the desk's (issue 15); it reads the clients table intake reads.
        req = urllib.request.Request(stack.stack_env()["WASL_DESK_URL"] + "/v1/agents",
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200  # the dev client got its token (and the admin role)
        assert stack.sh("down").returncode == 0
        tracer.wait(30)
    finally:
        if tracer.poll() is None:
            tracer.terminate()  # detaches from whatever is left
            tracer.wait(10)
        _unregister_cleanup(("strace", tracer.pid))
    execs = [line for line in trace.read_text().splitlines() if " execve(" in line]
    # The trace saw what matters: the dev client being added and every daemon starting.
    assert any('"client", "add", "dev"' in line for line in execs), "\n".join(execs)
    for name in DAEMONS:
        assert any(f'/wasl-{name}"' in line for line in execs), name
    leaked = [line for line in execs if token in line]
    assert not leaked, leaked
