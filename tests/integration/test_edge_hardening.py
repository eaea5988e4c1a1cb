"""Issue 13, the edge's findings, each attacked from outside:

- 2: request bodies are not read before the caller is authenticated (a refusal comes back while
  the body has not even been sent), and the bytes of bodies in flight are bounded across the
  server (503 + Retry-After past WASL_INTAKE_INFLIGHT_MAX), with nothing accepted lost;
- 11: a slow or absent caselookup does not hold the HTTP threads: reports answer while case
  lookups wait;
- 13: an HMAC signature covers method, path, query, timestamp, a nonce and the body; the nonce,
  not the timestamp, is what a replay repeats; out-of-range timestamps are refused.
"""

import json
import select
import socket
import threading
import time

import zmq

from conftest import wait_for
from intake_helpers import (  # noqa: F401  (fixtures)
    JSON,
    RFC822,
    Client,
    assert_error,
    default_clients,
    new_nonce,
    new_secret,
    sign,
    start_intake,
    unique,
)

BIG_BODY_BYTES = 10 * 1024 * 1024 - 4096   # under the 10 MiB email limit
SMALL_BUDGET = 256 * 1024                  # WASL_INTAKE_INFLIGHT_MAX for the budget tests
HELD_BODY_BYTES = 100 * 1024               # each held report reserves this much
READ_TIMEOUT_S = 15
# The bus's request/reply worker side is base + 1 (docs/architecture.md, "The bus").
RPC_WORKER_OFFSET = 1
CASE_LOOKUPS = 12
SLOW_HTTP_THREADS = 2


def signing_clients():
    return default_clients() + [
        Client("rsigner", "api", "reports,tickets:read", hmac_secret=new_secret()),
    ]


def report_bytes(pad=0):
    body = {"channel": "api", "external_id": unique("edge"), "body": "طلب"}
    if pad:
        body["padding"] = "x" * pad
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


# ---- raw HTTP: headers now, the body later (or never) ---------------------------------------


def open_request(port, method, path, headers, content_length=None):
    """Sends the request line and headers only; returns the connected socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    return s


def read_response(s, timeout=READ_TIMEOUT_S):
    """(status, headers dict lower-cased, body bytes) read until the server closes."""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            piece = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not piece:
            break
        data += piece
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def answered_without_body(s, timeout=READ_TIMEOUT_S):
    """True when the server answers while we have not sent a single byte of the body."""
    readable, _, _ = select.select([s], [], [], timeout)
    return bool(readable)


def upload(port, path, headers, body, step=256 * 1024):
    """Sends headers and then `body` piece by piece, stopping as soon as the server answers.
    Returns (status, bytes of the body sent)."""
    s = open_request(port, "POST", path, headers, len(body))
    sent = 0
    try:
        while sent < len(body):
            if select.select([s], [], [], 0)[0]:
                break
            s.sendall(body[sent:sent + step])
            sent += step
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, _, _ = read_response(s)
    return status, min(sent, len(body))


# ---- finding 2: authenticate on the headers -------------------------------------------------


def test_unauthenticated_bodies_are_refused_before_a_byte_is_read(start_intake):
    it = start_intake(clients=signing_clients())
    before = it.metrics().get("wasl_intake_refused_before_body_total", 0)
    now = int(time.time())
    fresh_sig = f"t={now},n={new_nonce()},v1={'0' * 64}"
    cases = [
        ("no credentials", {}),
        ("unknown bearer", {"Authorization": "Bearer " + "f" * 64}),
        ("bad scheme", {"Authorization": "Basic abc"}),
        ("stale signature", {"X-Wasl-Signature": f"t={now - 3600},n={new_nonce()},v1={'0' * 64}",
                             "X-Wasl-Client": "mailgw"}),
        ("signer unknown", {"X-Wasl-Signature": fresh_sig, "X-Wasl-Client": "nobody"}),
        ("no nonce", {"X-Wasl-Signature": f"t={now},v1={'0' * 64}"}),
        ("wrong scope", {"Authorization": "Bearer " + it.token("portal")}),
    ]
    for what, hdrs in cases:
        hdrs = dict(hdrs, **{"Content-Type": RFC822})
        s = open_request(it.port, "POST", "/v1/email/inbound", hdrs, BIG_BODY_BYTES)
        assert answered_without_body(s), f"{what}: intake waited for the body"
        status, _, body = read_response(s)
        expect = 403 if what == "wrong scope" else 401
        assert status == expect, f"{what}: {status} {body[:200]!r}"
        assert json.loads(body)["error"]["code"] in ("unauthorized", "forbidden")
    after = it.metrics().get("wasl_intake_refused_before_body_total", 0)
    assert after == before + len(cases)
    assert it.count("tickets") == 0
    # A good signature still needs (and gets) its body.
    raw = report_bytes()
    ok = it.signed_post("/v1/reports", raw, client="rsigner")
    assert ok.status == 201, ok


def test_flood_of_unauthenticated_10_mib_posts_is_refused_unread(start_intake):
    it = start_intake()
    body = b"x" * BIG_BODY_BYTES
    results = []

    def one():
        results.append(upload(it.port, "/v1/email/inbound", {"Content-Type": RFC822}, body))

    threads = [threading.Thread(target=one) for _ in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 25
    assert all(status == 401 for status, _ in results), results
    # Each was answered on its headers: none had to send its whole body.
    assert all(sent < len(body) for _, sent in results), results
    # Nothing like the bodies was read: each was answered on its headers.
    assert it.metrics().get("wasl_intake_inflight_body_bytes", 0) == 0
    assert it.daemon.alive()
    assert it.report().status == 201


# ---- finding 2: the in-flight budget --------------------------------------------------------


def test_inflight_budget_refuses_with_503_and_loses_nothing_accepted(start_intake):
    it = start_intake(env={"WASL_INTAKE_INFLIGHT_MAX": SMALL_BUDGET})
    auth = {"Authorization": "Bearer " + it.token("feeder"), "Content-Type": JSON}
    bodies = [report_bytes(pad=HELD_BODY_BYTES - 200) for _ in range(2)]
    # Two requests declare ~100 KiB each and hold it (their bodies are not sent yet).
    held = [open_request(it.port, "POST", "/v1/reports", auth, len(b)) for b in bodies]
    wait_for(lambda: it.metrics().get("wasl_intake_inflight_body_bytes", 0)
             >= 2 * (HELD_BODY_BYTES - 200), 10, what="two reservations")
    refused_before = it.metrics().get("wasl_intake_inflight_refused_total", 0)
    # A third one declaring as much does not fit: 503 + Retry-After, before its body.
    third = report_bytes(pad=HELD_BODY_BYTES - 200)
    s = open_request(it.port, "POST", "/v1/reports", auth, len(third))
    assert answered_without_body(s)
    status, hdrs, raw = read_response(s)
    assert status == 503, raw
    assert json.loads(raw)["error"]["code"] == "busy"
    assert int(hdrs.get("retry-after", "0")) > 0
    # So does a chunked body, charged as it arrives.
    chunked = it.post("/v1/reports", report_bytes(pad=HELD_BODY_BYTES), content_type=JSON,
                      client="feeder", chunked=True)
    assert_error(chunked, 503, "busy")
    assert it.metrics().get("wasl_intake_inflight_refused_total", 0) == refused_before + 2
    # The held requests finish and are accepted: nothing accepted is lost.
    refs = []
    for s, b in zip(held, bodies):
        s.sendall(b)
        status, _, raw = read_response(s)
        assert status == 201, raw
        refs.append(json.loads(raw)["ticket"])
    assert it.count("tickets") == 2
    for ref in refs:
        assert it.ticket(ref)["client_id"] == "feeder"
    # Their reservations were given back: the refused request now goes through.
    wait_for(lambda: it.metrics().get("wasl_intake_inflight_body_bytes", 0) == 0, 10,
             what="the budget to be released")
    again = it.post("/v1/reports", third, content_type=JSON, client="feeder")
    assert again.status == 201, again


# ---- finding 11: slow dependencies off the HTTP threads -------------------------------------


def test_reports_answer_while_case_lookups_wait_on_a_silent_caselookup(start_intake, bus):
    """A caselookup worker that takes every request and never answers: the lookups wait their
    full retries, and reports still answer at once."""
    it = start_intake(bus=bus, env={"WASL_INTAKE_THREADS": SLOW_HTTP_THREADS})
    ctx = zmq.Context()
    worker = ctx.socket(zmq.DEALER)
    worker.setsockopt(zmq.LINGER, 0)
    worker.connect(f"tcp://127.0.0.1:{bus.base_port + RPC_WORKER_OFFSET}")
    received = []
    stop = threading.Event()

    def swallow():
        while not stop.is_set():
            if worker.poll(50):
                received.append(worker.recv_multipart())

    sink = threading.Thread(target=swallow, daemon=True)
    sink.start()
    done_at = []
    lock = threading.Lock()

    def lookup():
        r = it.get("/v1/cases/4451234567?national_id=1012345678", client="ops", timeout=30)
        with lock:
            done_at.append((time.monotonic(), r.status))

    try:
        lookups = [threading.Thread(target=lookup) for _ in range(CASE_LOOKUPS)]
        for t in lookups:
            t.start()
        # Lookups are pending at caselookup: more of them than there are HTTP threads.
        wait_for(lambda: len(received) >= SLOW_HTTP_THREADS, 10,
                 what="case lookups to reach the silent worker")
        assert not done_at, "a lookup finished before the report was sent"
        t0 = time.monotonic()
        rep = it.report()
        t_report = time.monotonic()
        assert rep.status == 201, rep
        for t in lookups:
            t.join(60)
        assert len(done_at) == CASE_LOOKUPS
        # The report answered while every lookup was still waiting on caselookup.
        first_lookup_done = min(t for t, _ in done_at)
        assert t_report < first_lookup_done, (t_report - t0, first_lookup_done - t0)
        assert all(status == 503 for _, status in done_at), done_at
    finally:
        stop.set()
        sink.join(5)
        worker.close()
        ctx.term()


# ---- finding 13: the canonical signed request -----------------------------------------------


def test_two_signed_gets_in_the_same_second_both_pass(start_intake):
    it = start_intake(clients=signing_clients())
    made = it.signed_post("/v1/reports", report_bytes(), client="rsigner")
    assert made.status == 201, made
    path = f"/v1/tickets/{made.json['ticket']}"
    t = int(time.time())
    first = it.signed_request("GET", path, client="rsigner", t=t)
    second = it.signed_request("GET", path, client="rsigner", t=t)
    assert first.status == 200, first
    assert second.status == 200, second


def test_a_replayed_nonce_is_refused_whatever_it_signs(start_intake):
    it = start_intake(clients=signing_clients())
    nonce = new_nonce()
    first = it.signed_post("/v1/reports", report_bytes(), client="rsigner", nonce=nonce)
    assert first.status == 201, first
    # The same request again, and a new body with a new timestamp but the same nonce.
    again = it.signed_post("/v1/reports", report_bytes(), client="rsigner", nonce=nonce,
                           t=time.time() + 1)
    assert_error(again, 401, "unauthorized")
    assert "replay" in again.error["message"]
    assert it.count("tickets") == 1


def test_a_signature_moved_to_another_method_path_or_query_is_refused(start_intake):
    it = start_intake(clients=signing_clients())
    made = it.signed_post("/v1/reports", report_bytes(), client="rsigner")
    other = it.signed_post("/v1/reports", report_bytes(), client="rsigner")
    assert made.status == 201 and other.status == 201
    secret = it.clients["rsigner"].hmac_secret
    a = f"/v1/tickets/{made.json['ticket']}"
    b = f"/v1/tickets/{other.json['ticket']}"
    moves = [
        ("GET", a, "GET", b),                      # another path
        ("GET", a + "?x=1", "GET", a + "?x=2"),    # another query
        ("GET", a + "?x=1", "GET", a),             # the query dropped
        ("POST", "/v1/reports", "GET", a),         # another method and path
    ]
    for signed_method, signed_target, sent_method, sent_target in moves:
        sig = sign(secret, b"", method=signed_method, target=signed_target)
        r = it.signed_request(sent_method, sent_target, client="rsigner", signature=sig)
        assert_error(r, 401, "unauthorized")
    # The same signature where it was made for still works (it was never used).
    sig = sign(secret, b"", method="GET", target=a + "?x=1")
    assert it.signed_request("GET", a + "?x=1", client="rsigner", signature=sig).status == 200


def test_out_of_range_and_garbage_timestamps_are_401(start_intake):
    it = start_intake(clients=signing_clients())
    raw = report_bytes()
    secret = it.clients["rsigner"].hmac_secret
    nonce = new_nonce()
    for t in ("-9223372036854775808", "9223372036854775807", "-1", "99999999999999999999",
              "1e9", "0x10", " 12", "", "+1700000000"):
        # A MAC computed over the bad value: only the timestamp check can refuse it.
        good = sign(secret, raw, 0, nonce=nonce).split(",v1=")[1]
        r = it.signed_post("/v1/reports", raw, client="rsigner",
                           signature=f"t={t},n={nonce},v1={good}")
        assert_error(r, 401, "unauthorized")
    for bad_nonce in ("short", "x" * 65, "has space", "semi;colon", ""):
        sig = sign(secret, raw, nonce="placeholder0").replace("placeholder0", bad_nonce)
        assert_error(it.signed_post("/v1/reports", raw, client="rsigner", signature=sig), 401,
                     "unauthorized")
    assert it.daemon.alive()
    assert it.count("tickets") == 0
    assert it.signed_post("/v1/reports", raw, client="rsigner").status == 201


# ---- inputs the HTTP fuzzer found slow (tests/fuzz/corpus/http/slow_*) ----------------------


def test_unknown_transfer_encodings_are_closed_at_once(start_intake):
    """fuzz_http spent seconds per run on `Transfer-Encoding: chunkee`: libmicrohttpd waits for
    the end of a body it cannot frame until the connection times out (30 s). Intake refuses any
    transfer coding but chunked on the headers (400 naming the header) and keeps serving."""
    it = start_intake()
    for te in ("chunkee", "gzip", "chunked, gzip", "identity"):
        s = open_request(it.port, "POST", "/v1/reports",
                         {"Authorization": "Bearer " + it.token("ops"), "Content-Type": JSON,
                          "Transfer-Encoding": te})
        assert answered_without_body(s), te
        status, _, raw = read_response(s, timeout=READ_TIMEOUT_S)
        # An answer, not a connection left to time out.
        assert status == 400, (te, status, raw)
        err = json.loads(raw)["error"]
        assert err["field"] == "Transfer-Encoding", err
        assert it.count("tickets") == 0
    assert it.daemon.alive()
    assert it.report().status == 201
