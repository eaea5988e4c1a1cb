"""wasl-mailgate's exit codes against fake intake servers (Python's http.server on loopback).

Only the gateway is under test here: what it sends, and how it maps each answer to the sysexits
code an MTA acts on (0 delivered, 65 bounce, 75 retry later, 64 usage). The real intake is
exercised by the stack tests.
"""

import json
import os
import socket
import subprocess
import threading
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
