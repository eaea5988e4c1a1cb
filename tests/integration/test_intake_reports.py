"""wasl-intake POST /v1/reports as a client sees it: the ticket committed before the 201 (ticket,
first event, message byte-exact, classify work row) and announced on the bus; idempotent by
(client, channel, external_id) even under 50 concurrent copies; every refusal with its code and field,
counted in /metrics."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from intake_helpers import (  # noqa: F401  (fixtures)
    ARABIC_BODY,
    BODY_MAX_BYTES,
    JSON,
    assert_counted,
    assert_error,
    assert_valid_ref,
    intake,
    shared_intake,
    start_intake,
    to_arabic_indic,
    unique,
)

SMALL_JSON_MAX = 4096
CONCURRENT_COPIES = 50
DISTINCT_REPORTS = 200


def run_concurrently(count, fn):
    """Runs fn(i) for i in range(count) on `count` threads released together; the results in
    order of i."""
    barrier = threading.Barrier(count)

    def one(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_report_commits_ticket_event_message_and_work_then_announces_it(intake):
    tap = intake.tap()
    ext = unique("portal")
    report = {
        "channel": "web",
        "external_id": ext,
        "from": {"name": "عبدالله بن سعيد", "phone": "٠٥٥١٢٣٤٥٦٧", "national_id": "1012345678",
                 "email": "Abdullah@Example.SA"},
        "subject": "استفسار عن موعد جلسة",
        "body": ARABIC_BODY,
        "lang": "ar",
        "case_number": to_arabic_indic("4512345678"),
    }
    resp = intake.report(report)
    assert resp.status == 201, resp
    assert resp.header("Content-Type").startswith(JSON)
    assert resp.json["status"] == "received"
    assert resp.json.get("duplicate") in (None, False)
    ref = resp.json["ticket"]
    assert_valid_ref(ref)

    t = intake.ticket(ref)
    assert t["channel"] == "web"
    assert t["external_id"] == ext
    assert t["status"] == "received"
    assert t["from_phone"] == "+966551234567"
    assert t["case_number"] == "4512345678"
    assert t["from_name"] == "عبدالله بن سعيد"
    assert t["subject"] == "استفسار عن موعد جلسة"
    assert t["client_id"] == "portal"

    events = intake.events(t["id"])
    assert [e["kind"] for e in events] == ["received"]

    msgs = intake.messages(t["id"])
    assert len(msgs) == 1
    assert msgs[0]["direction"] == "in"
    assert msgs[0]["channel"] == "web"
    # Byte-exact: the decomposed hamza, the ZWJ, CRLF and trailing spaces all kept.
    assert msgs[0]["body"].encode("utf-8") == ARABIC_BODY.encode("utf-8")
    raw = intake.scalar("SELECT convert_to(body, 'UTF8') FROM messages WHERE id = %s",
                        (msgs[0]["id"],))
    assert bytes(raw) == ARABIC_BODY.encode("utf-8")

    work = intake.work(t["id"])
    assert len(work) == 1
    assert work[0]["stage"] == "classify"
    assert work[0]["state"] == "pending"

    msg = tap.wait(lambda m: m.get("work_id") == work[0]["id"])
    # The nudge names the work row and nothing else: the classifier claims the row and reads
    # the ticket (its text above all) from PostgreSQL.
    assert msg == {"type": "ticket.received", "v": 2, "work_id": work[0]["id"]}


def test_duplicate_returns_the_same_ticket_with_200(intake):
    report = {"channel": "api", "external_id": unique("api"), "body": "بلاغ مكرر"}
    first = intake.report(report)
    assert first.status == 201, first
    second = intake.report(report)
    assert second.status == 200, second
    assert second.json["ticket"] == first.json["ticket"]
    assert second.json["duplicate"] is True
    t = intake.ticket(first.json["ticket"])
    assert intake.count("tickets", "external_id = %s", (report["external_id"],)) == 1
    assert len(intake.messages(t["id"])) == 1
    assert len(intake.events(t["id"])) == 1
    assert len(intake.work(t["id"])) == 1


def test_same_external_id_on_another_channel_is_another_ticket(intake):
    ext = unique("both")
    a = intake.report({"channel": "web", "external_id": ext, "body": "أ"})
    b = intake.report({"channel": "api", "external_id": ext, "body": "ب"})
    assert (a.status, b.status) == (201, 201), (a, b)
    assert a.json["ticket"] != b.json["ticket"]


def test_channel_defaults_to_api(intake):
    resp = intake.report({"external_id": unique("def"), "body": "نص"})
    assert resp.status == 201, resp
    assert intake.ticket(resp.json["ticket"])["channel"] == "api"


def test_fifty_concurrent_copies_make_one_ticket(intake):
    report = {"channel": "web", "external_id": unique("storm"), "body": ARABIC_BODY}
    raw = json.dumps(report, ensure_ascii=False).encode("utf-8")
    results = run_concurrently(CONCURRENT_COPIES, lambda i: intake.post("/v1/reports", raw,
                                                                         content_type=JSON))
    statuses = sorted(r.status for r in results)
    assert statuses == [200] * (CONCURRENT_COPIES - 1) + [201], statuses
    refs = {r.json["ticket"] for r in results}
    assert len(refs) == 1, refs
    assert all(r.json.get("duplicate") is True for r in results if r.status == 200)
    assert intake.count("tickets", "external_id = %s", (report["external_id"],)) == 1
    (ref,) = refs
    t = intake.ticket(ref)
    assert len(intake.work(t["id"])) == 1
    assert len(intake.messages(t["id"])) == 1
    assert len(intake.events(t["id"])) == 1


def test_two_hundred_distinct_concurrent_reports_get_distinct_refs(intake):
    prefix = unique("many")
    results = run_concurrently(
        DISTINCT_REPORTS,
        lambda i: intake.report({"channel": "web", "external_id": f"{prefix}-{i}",
                                 "body": f"بلاغ رقم {i}"}),
    )
    assert [r.status for r in results] == [201] * DISTINCT_REPORTS, \
        sorted({r.status for r in results})
    refs = [r.json["ticket"] for r in results]
    assert len(set(refs)) == DISTINCT_REPORTS
    for ref in refs:
        assert_valid_ref(ref)
    rows = intake.rows("SELECT ref, external_id FROM tickets WHERE external_id LIKE %s",
                       (prefix + "-%",))
    assert {r["ref"]: r["external_id"] for r in rows} == \
        {ref: f"{prefix}-{i}" for i, ref in enumerate(refs)}
    assert intake.count("work w JOIN tickets t ON t.id = w.ticket_id",
                        "t.external_id LIKE %s AND w.stage = 'classify'", (prefix + "-%",)) \
        == DISTINCT_REPORTS


def test_unknown_fields_are_ignored(shared_intake):
    resp = shared_intake.report({"external_id": unique("extra"), "body": "نص",
                                 "priority_hint": "urgent", "nested": {"a": [1, 2, {"b": None}]}})
    assert resp.status == 201, resp
    assert_valid_ref(resp.json["ticket"])


def test_content_type_with_charset_is_json(shared_intake):
    body = json.dumps({"external_id": unique("cs"), "body": "نص"}).encode()
    resp = shared_intake.post("/v1/reports", body, content_type="application/json; charset=utf-8")
    assert resp.status == 201, resp


def test_body_of_exactly_64_kib_is_accepted(shared_intake):
    body = "ع" * (BODY_MAX_BYTES // 2)  # two bytes each in UTF-8
    assert len(body.encode()) == BODY_MAX_BYTES
    resp = shared_intake.report({"external_id": unique("max"), "body": body})
    assert resp.status == 201, resp
    t = shared_intake.ticket(resp.json["ticket"])
    assert shared_intake.messages(t["id"])[0]["body"] == body


ANY = object()
ERROR_CASES = [
    # id, raw body, content type, client (None: no credentials), status, code, field
    ("malformed_json", b'{"external_id": "e1", "body": ', JSON, "portal", 400, "invalid_json",
     ANY),
    ("body_missing", {"external_id": "e2"}, JSON, "portal", 400, "missing_field", "body"),
    ("external_id_missing", {"body": "نص"}, JSON, "portal", 400, "missing_field",
     "external_id"),
    ("body_number", {"external_id": "e3", "body": 42}, JSON, "portal", 400, "invalid_field",
     "body"),
    ("body_empty", {"external_id": "e4", "body": ""}, JSON, "portal", 400, "invalid_field",
     "body"),
    ("external_id_too_long", {"external_id": "e" * 257, "body": "نص"}, JSON, "portal", 400,
     "invalid_field", "external_id"),
    ("channel_not_in_enum", {"channel": "fax", "external_id": "e5", "body": "نص"}, JSON,
     "portal", 400, "invalid_field", "channel"),
    # 32,769 Arabic letters: under 65,536 characters but over 65,536 bytes.
    ("body_over_64_kib", {"external_id": "e6", "body": "ع" * (BODY_MAX_BYTES // 2 + 1)}, JSON,
     "portal", 413, "too_large", "body"),
    ("text_plain", {"external_id": "e7", "body": "نص"}, "text/plain", "portal", 415,
     "unsupported_media_type", ANY),
    ("invalid_utf8_in_string", b'{"external_id": "e8", "body": "\xd8\xb9\xff\xfe"}', JSON,
     "portal", 400, "invalid_utf8", ANY),
    ("overlong_utf8", b'{"external_id": "e9", "body": "\xc0\xaf"}', JSON, "portal", 400,
     "invalid_utf8", ANY),
    ("utf8_encoded_surrogate", b'{"external_id": "e10", "body": "\xed\xa0\x80"}', JSON,
     "portal", 400, "invalid_utf8", ANY),
    ("no_credentials", {"external_id": "e11", "body": "نص"}, JSON, None, 401, "unauthorized",
     ANY),
    ("wrong_token", {"external_id": "e12", "body": "نص"}, JSON, "wrong", 401, "unauthorized",
     ANY),
    ("no_reports_scope", {"external_id": "e13", "body": "نص"}, JSON, "desk", 403, "forbidden",
     ANY),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_refusals_carry_code_and_field_and_are_counted(shared_intake, case):
    _, body, ctype, client, status, code, field = case
    it = shared_intake
    if isinstance(body, dict):
        body = json.dumps(body, ensure_ascii=False).encode("utf-8")
    if client is None:
        kw = {"token": None}
    elif client == "wrong":
        kw = {"token": "not-" + it.token("portal")}
    else:
        kw = {"client": client}
    tickets_before = it.count("tickets")
    before = it.error_count(code)
    resp = it.post("/v1/reports", body, content_type=ctype, **kw)
    if field is ANY:
        assert_error(resp, status, code)
    else:
        assert_error(resp, status, code, field)
    assert_counted(it, code, before)
    assert it.count("tickets") == tickets_before, "a refused report must commit nothing"


def test_request_over_json_max_is_413(start_intake):
    it = start_intake(env={"WASL_INTAKE_JSON_MAX": SMALL_JSON_MAX})
    # The body field itself is small: it is the request as a whole that is too large.
    big = {"external_id": unique("big"), "body": "نص", "padding": "x" * (SMALL_JSON_MAX + 100)}
    before = it.error_count("too_large")
    resp = it.report(big)
    assert_error(resp, 413, "too_large")
    assert resp.error.get("field") in (None, ""), resp
    assert_counted(it, "too_large", before)
    # The same without Content-Length (chunked) is refused just the same.
    raw = json.dumps(big).encode()
    resp = it.post("/v1/reports", raw, content_type=JSON, chunked=True)
    assert_error(resp, 413, "too_large")
    assert it.count("tickets") == 0
    # And a request under the limit still goes through.
    ok = it.report({"external_id": unique("small"), "body": "نص"})
    assert ok.status == 201, ok


def test_errors_do_not_leak_into_later_requests_on_the_same_connection(shared_intake):
    """Keep-alive after a 400: the next request on the connection is parsed on its own."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", shared_intake.port, timeout=10)
    hdrs = {"Content-Type": JSON, "Authorization": f"Bearer {shared_intake.token('portal')}"}
    try:
        conn.request("POST", "/v1/reports", body=b'{"external_id": ', headers=hdrs)
        r1 = conn.getresponse()
        r1.read()
        assert r1.status == 400
        good = json.dumps({"external_id": unique("ka"), "body": "نص"}).encode()
        try:
            conn.request("POST", "/v1/reports", body=good, headers=hdrs)
            r2 = conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            # The server may close after an error; a new connection must then work.
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", shared_intake.port, timeout=10)
            conn.request("POST", "/v1/reports", body=good, headers=hdrs)
            r2 = conn.getresponse()
        payload = json.loads(r2.read())
        assert r2.status == 201, payload
    finally:
        conn.close()
