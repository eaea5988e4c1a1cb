"""Size limits at the edge beyond the body: huge headers and URLs are refused, and intake keeps
serving."""

import socket

from intake_helpers import start_intake  # noqa: F401 (fixture)


def raw_request(port, data, timeout=10):
    """Sends raw bytes; returns the status line (or "" when the server closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close while we still send: that is a refusal too
        try:
            reply = s.recv(4096)
        except OSError:
            reply = b""
    return reply.split(b"\r\n", 1)[0].decode("latin-1")


def test_header_flood_and_huge_url_are_refused(start_intake):
    it = start_intake()
    flood = (b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200_000 +
             b"\r\nContent-Length: 2\r\n\r\n{}")
    status = raw_request(it.port, flood)
    assert status == "" or " 4" in status, status   # 431/413/400, or the connection closed
    many = b"GET /v1/tickets/2600000018 HTTP/1.1\r\nHost: x\r\n" + \
        b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)) + b"\r\n"
    status = raw_request(it.port, many)
    assert status == "" or " 4" in status, status
    url = b"GET /v1/tickets/" + b"9" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status = raw_request(it.port, url)
    assert status == "" or " 4" in status, status
    assert it.daemon.alive()
    # Still serving ordinary requests.
    r = it.report()
    assert r.status == 201
