"""wasl-mailgate's exit codes against fake intake servers (Python's http.server on loopback).

Only the gateway is under test here: what it sends, and how it maps each answer to the sysexits
code an MTA acts on (0 delivered, 65 bounce, 75 retry later, 64 usage). The real intake is
exercised by the stack tests.
"""

import json
import os
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import binary_path

EX_OK, EX_USAGE, EX_DATAERR, EX_TEMPFAIL = 0, 64, 65, 75
RUN_TIMEOUT_S = 60
TOKEN = "wasl-test-token-0123456789abcdef"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "email" / "11-reply-ticket.eml"


class FakeIntake:
    """An HTTP server on 127.0.0.1 answering every request with (status, JSON body) and keeping
    what it received: .requests is a list of {"method", "path", "headers", "body"}."""

    def __init__(self, status, body):
        self.status, self.body, self.requests = status, body, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                outer.requests.append({"method": "POST", "path": self.path,
                                       "headers": dict(self.headers), "body": data})
                payload = json.dumps(outer.body).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_intake():
    """Factory: fake_intake(status, body) -> a running FakeIntake, closed after the test."""
    servers = []

    def start(status, body=None):
        s = FakeIntake(status, body if body is not None else {})
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def mailgate(args=(), stdin=b"", env=None):
    """Runs build/bin/wasl-mailgate with a clean environment; returns the CompletedProcess."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for keep in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if keep in os.environ:
            full_env[keep] = os.environ[keep]
    full_env.update(env or {})
    return subprocess.run([str(binary_path("mailgate"))] + list(args), input=stdin,
                          env=full_env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)


def error_body(code, message):
    return {"error": {"code": code, "field": "message", "message": message}}


def test_created_delivers_the_raw_message(fake_intake):
    intake = fake_intake(201, {"ticket": {"ref": "2600000018"}})
    raw = SAMPLE.read_bytes()
    res = mailgate(["--url", intake.url + "/"], stdin=raw, env={"WASL_TOKEN": TOKEN})
    assert res.returncode == EX_OK, res.stderr
    assert res.stderr == b""
    assert len(intake.requests) == 1
    req = intake.requests[0]
    assert req["path"] == "/v1/email/inbound"
    assert req["headers"]["Content-Type"] == "message/rfc822"
    assert req["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert req["body"] == raw  # byte for byte, Arabic and all


def test_url_and_token_from_the_environment_and_a_token_file(fake_intake, tmp_path):
    intake = fake_intake(200)
    token_file = tmp_path / "mailgate.token"
    token_file.write_text(TOKEN + "\n")
    res = mailgate(["--token-file", str(token_file)], stdin=b"Subject: x\n\nhi\n",
                   env={"WASL_HTTP_URL": intake.url, "WASL_TOKEN": "overridden"})
    assert res.returncode == EX_OK, res.stderr
    assert intake.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_rejected_message_bounces_with_the_reason(fake_intake):
    intake = fake_intake(400, error_body("invalid_field", "not an RFC 5322 message"))
    res = mailgate(["--url", intake.url, "--token", TOKEN], stdin=b"garbage")
    assert res.returncode == EX_DATAERR
    line = res.stderr.decode()
    assert line.count("\n") == 1
    assert "HTTP 400" in line and "not an RFC 5322 message" in line
    assert TOKEN not in line


@pytest.mark.parametrize("status", [401, 403])
def test_credential_problems_are_temporary(fake_intake, status):
    intake = fake_intake(status, error_body("unauthorized", "bad token"))
    res = mailgate(["--url", intake.url, "--token", "wrong"], stdin=b"Subject: x\n\nhi\n")
    assert res.returncode == EX_TEMPFAIL
    assert f"HTTP {status}" in res.stderr.decode() and "bad token" in res.stderr.decode()


@pytest.mark.parametrize("status,code", [(503, EX_TEMPFAIL), (500, EX_TEMPFAIL),
                                         (429, EX_TEMPFAIL), (404, EX_DATAERR),
                                         (413, EX_DATAERR)])
def test_status_mapping(fake_intake, status, code):
    intake = fake_intake(status, error_body("x", "answer"))
    res = mailgate(["--url", intake.url], stdin=b"Subject: x\n\nhi\n")
    assert res.returncode == code, res.stderr
    assert f"HTTP {status}" in res.stderr.decode()


def test_unreachable_intake_is_temporary():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = mailgate(["--url", f"http://127.0.0.1:{port}"], stdin=b"Subject: x\n\nhi\n")
    assert res.returncode == EX_TEMPFAIL
    assert "unreachable" in res.stderr.decode()


def test_too_large_or_empty_is_rejected_without_a_request(fake_intake):
    intake = fake_intake(201)
    res = mailgate(["--url", intake.url], stdin=b"Subject: x\n\n" + b"a" * 200,
                   env={"WASL_MAILGATE_MAX_BYTES": "100"})
    assert res.returncode == EX_DATAERR
    assert "larger than 100 bytes" in res.stderr.decode()
    res = mailgate(["--url", intake.url], stdin=b"")
    assert res.returncode == EX_DATAERR
    assert intake.requests == []


@pytest.mark.parametrize("args,env", [
    (["--bogus"], {}),
    (["--url"], {}),
    (["--url", "ftp://127.0.0.1/"], {}),
    (["--token", "has space"], {}),
    (["--token-file", "/nonexistent/token"], {}),
    ([], {"WASL_MAILGATE_MAX_BYTES": "lots"}),
    (["--url", "http://user:pw@127.0.0.1:8080/"], {}),
    (["--url", "http://127.0.0.1:99999/"], {}),
    ([], {"WASL_MAILGATE_TIMEOUT_MS": "0"}),
])
def test_usage_errors(args, env):
    res = mailgate(args, stdin=b"Subject: x\n\nhi\n", env=env)
    assert res.returncode == EX_USAGE
    assert res.stderr.decode().startswith("wasl-mailgate: ")


def test_help_documents_postfix_and_exit_codes():
    res = mailgate(["--help"])
    assert res.returncode == EX_OK
    text = res.stdout.decode()
    assert "pipe flags=" in text and "75" in text and "401" in text


# ---- the HTTP client itself (services/mailgate/http.c), against hand-written answers ----------


class RawIntake:
    """A loopback server that accepts connections and gives each to handler(conn) on a thread:
    it writes whatever bytes, in whatever pieces, the test wants. .received: the request bytes
    the handler read (what read_request returned)."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.handler, self.received, self.conns = handler, [], []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            self.handler(self, conn)
        except OSError:
            pass

    def read_request(self, conn):
        """Reads one request (head and Content-Length body) and keeps it."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.received.append(head + b"\r\n\r\n" + body)
        return head, body

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def raw_intake():
    servers = []

    def start(handler):
        s = RawIntake(handler)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def dribble(conn, data, piece=3):
    """Sends data a few bytes at a time, each its own segment: the client's reads come short."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(data), piece):
        conn.sendall(data[i:i + piece])
        time.sleep(0.0005)


def chunked(body, sizes=(5, 1, 17)):
    out, i, k = b"", 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        out += b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n"
        i, k = i + n, k + 1
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


def test_request_is_plain_http_1_1_with_length_and_token(raw_intake):
    def handler(srv, conn):
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    srv = raw_intake(handler)
    raw = SAMPLE.read_bytes()
    res = mailgate(["--url", srv.url + "/base//"], stdin=raw, env={"WASL_TOKEN": TOKEN})
    assert res.returncode == EX_OK, res.stderr
    head, _, body = srv.received[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /base/v1/email/inbound HTTP/1.1"
    port = srv.url.rsplit(":", 1)[1]
    assert f"Host: 127.0.0.1:{port}".encode() in lines
    assert f"Content-Length: {len(raw)}".encode() in lines
    assert f"Authorization: Bearer {TOKEN}".encode() in lines
    assert body == raw


def test_chunked_answer_in_short_reads_is_decoded(raw_intake):
    err = json.dumps(error_body("invalid_field", "no From header: rejected")).encode()

    def handler(srv, conn):
        srv.read_request(conn)
        dribble(conn, b"HTTP/1.1 422 Unprocessable\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: application/json\r\n\r\n" + chunked(err))
        time.sleep(2)  # keep the connection open: the last chunk, not the close, ends it
    srv = raw_intake(handler)
    t0 = time.monotonic()
    res = mailgate(["--url", srv.url], stdin=b"Subject: x\n\nhi\n")
    assert res.returncode == EX_DATAERR, res.stderr
    assert "HTTP 422: no From header: rejected (invalid_field)" in res.stderr.decode()
    assert time.monotonic() - t0 < 1.5


def test_5xx_with_a_body_up_to_the_close_is_temporary(raw_intake):
    def handler(srv, conn):
        srv.read_request(conn)
        dribble(conn, b"HTTP/1.0 503 Service Unavailable\r\n\r\nPostgreSQL is down\nmore\n")
        conn.close()
    srv = raw_intake(handler)
    res = mailgate(["--url", srv.url], stdin=b"Subject: x\n\nhi\n")
    assert res.returncode == EX_TEMPFAIL
    assert "HTTP 503: PostgreSQL is down (temporary failure" in res.stderr.decode()


def test_early_answer_while_sending_is_reported_not_the_broken_pipe(raw_intake):
    def handler(srv, conn):
        conn.recv(1024)
        body = json.dumps(error_body("too_large", "message too large")).encode()
        conn.sendall(b"HTTP/1.1 413 Too Large\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body)
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.5)
        conn.close()  # unread bytes: the client's send fails with a reset
    srv = raw_intake(handler)
    # More than loopback's socket buffers hold: the send fails while the answer waits.
    res = mailgate(["--url", srv.url], stdin=b"Subject: x\n\n" + b"a" * (48 << 20),
                   env={"WASL_MAILGATE_MAX_BYTES": str(64 << 20)})
    assert res.returncode == EX_DATAERR, res.stderr
    assert "HTTP 413: message too large" in res.stderr.decode()


def test_slow_intake_times_out_as_temporary(raw_intake):
    gate = threading.Event()

    def handler(srv, conn):
        srv.read_request(conn)
        gate.wait(30)  # never answers within the client's timeout
    srv = raw_intake(handler)
    t0 = time.monotonic()
    res = mailgate(["--url", srv.url], stdin=b"Subject: x\n\nhi\n",
                   env={"WASL_MAILGATE_TIMEOUT_MS": "700"})
    gate.set()
    assert res.returncode == EX_TEMPFAIL
    assert "timed out" in res.stderr.decode()
    assert 0.6 < time.monotonic() - t0 < 4


@pytest.mark.parametrize("answer,why", [
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000, "header is longer than 16384"),
    (b"SMTP/1.0 250 OK\r\n\r\n", "not an HTTP answer"),
    (b"HTTP/1.1 201 Crea", "closed before a complete answer"),
    (b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "broken chunked"),
])
def test_broken_answers_are_temporary(raw_intake, answer, why):
    def handler(srv, conn):
        srv.read_request(conn)
        conn.sendall(answer)
        time.sleep(0.3)  # the client decides on what it got, not on the close
        conn.close()
    srv = raw_intake(handler)
    res = mailgate(["--url", srv.url], stdin=b"Subject: x\n\nhi\n")
    assert res.returncode == EX_TEMPFAIL, res.stderr
    assert "unreachable" in res.stderr.decode() and why in res.stderr.decode(), res.stderr


def test_https_goes_through_libcurl_loaded_at_run_time():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = mailgate(["--url", f"https://127.0.0.1:{port}"], stdin=b"Subject: x\n\nhi\n",
                   env={"LD_DEBUG": "libs"})
    assert res.returncode == EX_TEMPFAIL
    err = res.stderr.decode()
    assert "libcurl.so.4" in err  # loaded for https, and only then
    assert "Could not connect" in err or "Couldn't connect" in err, err


def test_http_loads_no_libcurl(raw_intake):
    def handler(srv, conn):
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    srv = raw_intake(handler)
    res = mailgate(["--url", srv.url], stdin=b"Subject: x\n\nhi\n", env={"LD_DEBUG": "libs"})
    assert res.returncode == EX_OK
    assert "libcurl" not in res.stderr.decode()
