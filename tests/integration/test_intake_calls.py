"""wasl-intake telephony: /v1/calls/events (idempotent by (call_id, seq), out of order) and the
generic /v1/cti form (JSON and form-encoded). A call yields one ticket (channel phone,
external_id = call_id) when it carries a note or an IVR report, or ends abandoned in a queue."""

import pytest

from intake_helpers import (  # noqa: F401  (fixtures)
    FORM,
    assert_error,
    assert_valid_ref,
    form,
    start_intake,
    unique,
    unique_saudi_mobile,
)

TS = "2026-11-28T09:00:00Z"


@pytest.fixture
def it(start_intake):
    return start_intake()


def event(it, **fields):
    return it.post("/v1/calls/events", fields, client="phone")


def started(it, call_id, seq=1, caller="0551234567"):
    return event(it, type="call.started", call_id=call_id, seq=seq, **{"from": caller},
                 to="1900", ts=TS)


def call_tickets(it, call_id):
    return it.rows("SELECT * FROM tickets WHERE channel = 'phone' AND external_id = %s",
                   (call_id,))


def assert_recorded(resp, call_id, seq, duplicate=False):
    assert resp.json is not None, resp
    assert resp.json["call_id"] == call_id
    assert resp.json["seq"] == seq
    assert resp.json["duplicate"] is duplicate


def test_note_creates_the_ticket_and_later_notes_join_it(it):
    call = unique("call")
    local, e164 = unique_saudi_mobile()
    r = started(it, call, caller=local)
    assert r.status == 200, r
    assert_recorded(r, call, 1)
    assert r.json.get("ticket") is None
    assert call_tickets(it, call) == []

    note1 = "المتصل يسأل عن موعد الجلسة في القضية ٤٥١٢٣٤٥٦٧٨"
    r = event(it, type="call.note", call_id=call, seq=2, text=note1, agent="agent-7", ts=TS)
    assert r.status == 201, r
    assert_recorded(r, call, 2)
    ref = r.json["ticket"]
    assert_valid_ref(ref)
    t = it.ticket(ref)
    assert t["channel"] == "phone"
    assert t["external_id"] == call
    assert t["from_phone"] == e164
    assert [e["kind"] for e in it.events(t["id"])][:1] == ["received"]
    assert [w["stage"] for w in it.work(t["id"])] == ["classify"]

    note2 = "أفاد بأنه سيرسل المستندات عبر البريد"
    r = event(it, type="call.note", call_id=call, seq=3, text=note2, agent="agent-7", ts=TS)
    assert r.status == 200, r
    assert_recorded(r, call, 3)
    assert r.json["ticket"] == ref
    assert [m["body"] for m in it.messages(t["id"])] == [note1, note2]
    assert len(call_tickets(it, call)) == 1

    # The same (call_id, seq) again: recorded once.
    r = event(it, type="call.note", call_id=call, seq=3, text=note2, agent="agent-7", ts=TS)
    assert r.status == 200, r
    assert_recorded(r, call, 3, duplicate=True)
    assert r.json["ticket"] == ref
    assert len(it.messages(t["id"])) == 2
    assert it.count("call_events", "call_id = %s", (call,)) == 3


def test_duplicate_started_is_recorded_once(it):
    call = unique("call")
    assert started(it, call).status == 200
    r = started(it, call)
    assert r.status == 200, r
    assert_recorded(r, call, 1, duplicate=True)
    assert it.count("call_events", "call_id = %s", (call,)) == 1


def test_abandoned_end_before_start_yields_one_callback_ticket(it):
    call = unique("call")
    local, e164 = unique_saudi_mobile()
    ended = event(it, type="call.ended", call_id=call, seq=3, cause="abandoned",
                  queue="case-status", duration_s=41, ts=TS)
    assert ended.status in (200, 201), ended
    assert_recorded(ended, call, 3)
    start = started(it, call, caller=local)
    assert start.status in (200, 201), start
    assert_recorded(start, call, 1)
    # Exactly one of the two events created the ticket; both end up pointing at it.
    assert sorted([ended.status, start.status]) == [200, 201], (ended, start)
    rows = call_tickets(it, call)
    assert len(rows) == 1, rows
    ref = rows[0]["ref"]
    assert_valid_ref(ref)
    assert start.json["ticket"] == ref
    assert (ended.json.get("ticket") or ref) == ref
    # A callback needs the number to call back, whichever event came first.
    assert rows[0]["from_phone"] == e164
    # Replaying both changes nothing.
    assert event(it, type="call.ended", call_id=call, seq=3, cause="abandoned",
                 queue="case-status", duration_s=41, ts=TS).json["duplicate"] is True
    assert started(it, call, caller=local).json["duplicate"] is True
    assert len(call_tickets(it, call)) == 1
    assert len(it.work(rows[0]["id"])) == 1


def test_abandoned_after_start_yields_a_callback_ticket(it):
    call = unique("call")
    local, e164 = unique_saudi_mobile()
    assert started(it, call, caller=local).status == 200
    r = event(it, type="call.ivr", call_id=call, seq=2, menu="queue:case-status", ts=TS)
    assert r.status == 200, r
    r = event(it, type="call.ended", call_id=call, seq=3, cause="abandoned", queue="case-status",
              duration_s=95, ts=TS)
    assert r.status == 201, r
    t = it.ticket(r.json["ticket"])
    assert t["external_id"] == call and t["from_phone"] == e164


def test_ivr_report_creates_a_ticket(it):
    call = unique("call")
    local, e164 = unique_saudi_mobile()
    assert started(it, call, caller=local).status == 200
    r = event(it, type="call.ivr", call_id=call, seq=2, menu="report", digits="٤٥١٢٣٤٥٦٧٨",
              ts=TS)
    assert r.status == 201, r
    assert_recorded(r, call, 2)
    t = it.ticket(r.json["ticket"])
    assert t["channel"] == "phone" and t["external_id"] == call
    assert t["from_phone"] == e164
    # The call then ends normally: still one ticket, no second one.
    r = event(it, type="call.ended", call_id=call, seq=3, cause="normal", duration_s=200, ts=TS)
    assert r.status == 200, r
    assert r.json["ticket"] == t["ref"]
    assert len(call_tickets(it, call)) == 1


def test_answered_call_without_note_creates_no_ticket(it):
    call = unique("call")
    assert started(it, call).status == 200
    r = event(it, type="call.ended", call_id=call, seq=2, cause="normal", duration_s=180, ts=TS)
    assert r.status == 200, r
    assert_recorded(r, call, 2)
    assert r.json.get("ticket") is None
    assert call_tickets(it, call) == []
    assert it.count("call_events", "call_id = %s", (call,)) == 2


@pytest.mark.parametrize("case", [
    ("missing_call_id", {"type": "call.started", "seq": 1}, "missing_field", "call_id"),
    ("missing_seq", {"type": "call.started", "call_id": "c1"}, "missing_field", "seq"),
    ("negative_seq", {"type": "call.started", "call_id": "c1", "seq": -1}, "invalid_field",
     "seq"),
    ("unknown_type", {"type": "call.exploded", "call_id": "c1", "seq": 1}, "invalid_field",
     "type"),
], ids=lambda c: c[0])
def test_invalid_call_events_are_400(it, case):
    _, body, code, field = case
    r = it.post("/v1/calls/events", body, client="phone")
    assert_error(r, 400, code, field)
    assert it.count("call_events") == 0


def test_calls_need_the_calls_scope(it):
    r = it.post("/v1/calls/events", {"type": "call.started", "call_id": unique("c"), "seq": 1},
                client="portal")
    assert_error(r, 403, "forbidden")


# ---- /v1/cti ---------------------------------------------------------------------------------


def cti(it, encoding, **fields):
    if encoding == "json":
        return it.post("/v1/cti", fields, client="phone")
    return it.post("/v1/cti", form(**fields), content_type=FORM, client="phone")


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_cti_unanswered_hangup_after_queue_yields_callback_and_repeat_is_duplicate(it, encoding):
    call = unique("cti")
    local, e164 = unique_saudi_mobile()
    r = cti(it, encoding, event="newCall", callId=call, **{"from": local}, to="1900",
            direction="inbound", queue="case-status")
    assert r.status == 200, r
    assert_recorded(r, call, 1)
    r = cti(it, encoding, event="hangup", callId=call, cause="no_answer")
    assert r.status == 201, r
    assert_recorded(r, call, 3)
    ref = r.json["ticket"]
    assert_valid_ref(ref)
    t = it.ticket(ref)
    assert t["channel"] == "phone" and t["external_id"] == call
    assert t["from_phone"] == e164
    again = cti(it, encoding, event="hangup", callId=call, cause="no_answer")
    assert again.status == 200, again
    assert_recorded(again, call, 3, duplicate=True)
    assert again.json["ticket"] == ref
    assert len(call_tickets(it, call)) == 1


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_cti_answered_call_yields_no_ticket(it, encoding):
    call = unique("cti")
    r = cti(it, encoding, event="newCall", callId=call, **{"from": "0551234567"}, to="1900",
            direction="in", queue="case-status")
    assert r.status == 200, r
    r = cti(it, encoding, event="answer", callId=call, user="agent-3", answeringNumber="201")
    assert r.status == 200, r
    assert_recorded(r, call, 2)
    r = cti(it, encoding, event="hangup", callId=call, cause="normal")
    assert r.status == 200, r
    assert_recorded(r, call, 3)
    assert r.json.get("ticket") is None
    assert call_tickets(it, call) == []


def test_cti_refusals(it):
    r = it.post("/v1/cti", b"event=newCall&callId=x", content_type="text/plain", client="phone")
    assert_error(r, 415, "unsupported_media_type")
    r = it.post("/v1/cti", form(event="explode", callId="x"), content_type=FORM, client="phone")
    assert_error(r, 400, "invalid_field", "event")
    r = it.post("/v1/cti", form(event="newCall"), content_type=FORM, client="phone")
    assert_error(r, 400, "missing_field", "callId")


def end_marks(it, call):
    """Each recorded event of the call in seq order: (event, abandoned mark, its queue)."""
    return [(r["event"], r["a"], r["q"]) for r in it.rows(
        "SELECT event, abandoned AS a, abandoned_queue AS q FROM call_events"
        " WHERE call_id = %s ORDER BY seq", (call,))]


def test_an_abandoned_end_is_marked_with_the_calls_last_queue(it):
    """call_abandoned's decision is stored on the end's row, with the queue the call last
    named: the desk's wallboard counts these marks (one home for the rule)."""
    # The native form, cause "abandoned", the queue from an earlier event: marked.
    a = unique("call")
    assert started(it, a).status == 200
    assert event(it, type="call.ivr", call_id=a, seq=2, menu="queue:general", queue="general",
                 ts=TS).status == 200
    assert event(it, type="call.ended", call_id=a, seq=3, cause="abandoned",
                 ts=TS).status == 201
    assert end_marks(it, a) == [("call.started", False, None), ("call.ivr", False, None),
                                ("call.ended", True, "general")]
    # The native form, not answered but another cause: that form says abandoned when it is.
    b = unique("call")
    assert event(it, type="call.ivr", call_id=b, seq=1, menu="queue:general", queue="general",
                 ts=TS).status == 200
    assert event(it, type="call.ended", call_id=b, seq=2, cause="no_answer",
                 ts=TS).status == 200
    assert end_marks(it, b)[-1] == ("call.ended", False, None)
    for encoding in ("json", "form"):
        # The CTI form: a queue, nobody answered, any cause (or none): marked.
        c = unique("cti")
        assert cti(it, encoding, event="newCall", callId=c, queue="general",
                   **{"from": "0551234567"}).status == 200
        assert cti(it, encoding, event="hangup", callId=c).status == 201
        assert end_marks(it, c)[-1] == ("call.ended", True, "general")
        # The CTI form, answered: not.
        d = unique("cti")
        assert cti(it, encoding, event="newCall", callId=d, queue="general").status == 200
        assert cti(it, encoding, event="answer", callId=d, user="hala").status == 200
        assert cti(it, encoding, event="hangup", callId=d, cause="normal").status == 200
        assert end_marks(it, d)[-1] == ("call.ended", False, None)
