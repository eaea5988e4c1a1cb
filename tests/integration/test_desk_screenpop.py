"""The desk's screen pop (docs/desk.md, "Screen pop"): a call that rings for agent A at intake
(call.ringing, the CTI form's ringing, or the first call.answered naming A) reaches A's event
stream as `event: call` with the caller's number, queue, IVR path and open and recent tickets —
and nobody else's stream; GET /v1/me/calls shows it after a reload; POST
/v1/calls/{call_id}/ticket makes the call's ticket once, assigned to A, still classified, never
offered, and a later call.note from the PBX joins it. Hostile input is refused naming the
field, and changes nothing."""

import pytest

from conftest import wait_for
from intake_helpers import FORM, form, make_ref, start_intake, unique, unique_saudi_mobile  # noqa: F401
from test_desk_auth import PASSWORDS, RULES, ROLES, Desk, Stream

WAIT_S = 20
TS = "2026-12-03T09:00:00Z"


@pytest.fixture
def stack(start_intake, start_desk, tmp_path):
    """Intake (the PBX's edge) and the desk on one database; hala and amal (agents of queue
    general) and sara (supervisor) can sign in."""
    it = start_intake()
    for agent, pw in PASSWORDS.items():
        f = tmp_path / f"{agent}.pw"
        f.write_text(pw + "\n")
        out = it.waslctl("agent", "add", agent, "--name", agent.title(), "--skills", "general",
                         "--role", ROLES[agent], "--password-file", f)
        assert out.returncode == 0, out.stderr
    desk = Desk(start_desk(it.db_url), it.db_url)
    return it, desk


def call_event(it, **fields):
    return it.post("/v1/calls/events", fields, client="phone")


def ring(it, call, agent="hala", seq=3, **more):
    return call_event(it, type="call.ringing", call_id=call, seq=seq, agent=agent, ts=TS, **more)


def open_ticket(desk, phone, subject, status="routed", category="case_inquiry", queue="general"):
    """A ticket of the caller's (by SMS), as intake and the router leave it; its reference."""
    ref = make_ref(int(desk.scalar("SELECT nextval('ticket_ref_seq')")))
    desk.scalar("INSERT INTO tickets (ref, channel, external_id, status, queue, category,"
                " subject, from_phone) VALUES (%s, 'sms', %s, %s, %s, %s, %s, %s)",
                (ref, unique("sms"), status, queue, category, subject, phone))
    return ref


def no_event(stream, kind, person, agent):
    """Proof of absence without sleeping: an event of `agent`'s own, caused now, reached the
    stream; nothing of `kind` came before it."""
    assert person.call("PUT", "/v1/me/presence", {"presence": "busy", "ttl_s": 60}).status_code \
        == 200
    seen = []
    while not (seen and seen[-1][0] == "presence" and seen[-1][1]["agent"] == agent):
        seen.append(stream.events.get(timeout=WAIT_S))  # everything up to it, none skipped
        assert seen[-1][0] != "end", seen
    assert not [e for e in seen if e[0] == kind], seen


def test_a_ring_pops_on_the_agents_stream_only(stack):
    it, desk = stack
    local, e164 = unique_saudi_mobile()
    # A ticket of a queue hala does not serve (staff HR): listed, but nothing of it shown.
    hidden = open_ticket(desk, e164, "إجازة مرضية سرية", category="hr_admin", queue="hr")
    mine = open_ticket(desk, e164, "موعد الجلسة <b>القادمة</b>")
    old = open_ticket(desk, e164, "old", status="resolved")
    desk.scalar("UPDATE tickets SET updated_at = now() - interval '40 days' WHERE ref = %s",
                (old,))
    hala, amal, sara = desk.session("hala"), desk.session("amal"), desk.session("sara")
    streams = {n: Stream(p) for n, p in (("hala", hala), ("amal", amal), ("sara", sara))}
    try:
        call = unique("call")
        assert call_event(it, type="call.started", call_id=call, seq=1, to="1900", ts=TS,
                          **{"from": local}).status == 200
        assert call_event(it, type="call.ivr", call_id=call, seq=2, menu="main",
                          ts=TS).status == 200
        assert call_event(it, type="call.ivr", call_id=call, seq=4, menu="queue:cases",
                          ts=TS).status == 200
        r = ring(it, call, seq=5)
        assert r.status == 200 and r.json.get("ticket") is None, r
        pop, _ = streams["hala"].next("call", timeout=WAIT_S, pred=lambda d: d["call_id"] == call)
        assert pop["from"] == e164 and pop["agent"] == "hala"
        assert pop["queue"] == "cases"
        assert pop["ivr"] == ["main", "queue:cases"]
        assert pop["ticket"] is None and pop["tickets_days"] == 30
        # The old resolved one is out; the other queue's is listed without what it holds.
        assert [t["ticket"] for t in pop["tickets"]] == [mine, hidden]
        t, h = pop["tickets"]
        assert h == {"ticket": hidden, "status": "routed", "channel": "sms", "open": True,
                     "updated_at": h["updated_at"], "readable": False}
        assert t["status"] == "routed" and t["open"] is True and t["readable"] is True
        assert "in_queue" not in t and t["assignee"] is None
        assert t["subject"] == "موعد الجلسة <b>القادمة</b>"
        assert t["category_label"]["en"] and t["category_label"]["ar"]
        assert t["updated_at"].endswith("Z")
        # Not amal's, not even the supervisor's.
        no_event(streams["amal"], "call", amal, "amal")
        no_event(streams["sara"], "call", sara, "sara")
        # A reloaded page asks: hala's call is there, amal has none.
        calls = hala.call("GET", "/v1/me/calls").json()["calls"]
        assert [c["call_id"] for c in calls] == [call] and calls[0]["ivr"] == pop["ivr"]
        assert calls[0]["tickets"] == pop["tickets"]
        # The supervisor's ticket view lists both in full; hala's lists the hidden one bare.
        seen = {o["ticket"]: o for o in sara.call("GET", f"/v1/tickets/{mine}").json()[
            "other_tickets"]}
        assert seen[hidden]["readable"] is True and seen[hidden]["subject"] == "إجازة مرضية سرية"
        seen = {o["ticket"]: o for o in hala.call("GET", f"/v1/tickets/{mine}").json()[
            "other_tickets"]}
        assert seen[hidden]["readable"] is False and "subject" not in seen[hidden]
        assert amal.call("GET", "/v1/me/calls").json()["calls"] == []
        # The call ends: no longer in the list.
        assert call_event(it, type="call.ended", call_id=call, seq=9, cause="normal",
                          duration_s=30, ts=TS).status == 200
        assert hala.call("GET", "/v1/me/calls").json()["calls"] == []
        # A PBX that never rings: the first answer naming an agent pops.
        other = unique("call")
        assert call_event(it, type="call.started", call_id=other, seq=1, ts=TS,
                          **{"from": local}).status == 200
        assert call_event(it, type="call.answered", call_id=other, seq=2, agent="hala",
                          ts=TS).status == 200
        pop, _ = streams["hala"].next("call", pred=lambda d: d["call_id"] == other)
        assert pop["event"] == "call.answered" and pop["from"] == e164
    finally:
        for s in streams.values():
            s.close()


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_the_cti_forms_ringing_pops(stack, encoding):
    it, desk = stack
    local, e164 = unique_saudi_mobile()
    hala = desk.session("hala")
    stream = Stream(hala)
    try:
        call = unique("cti")

        def cti(**f):
            if encoding == "json":
                return it.post("/v1/cti", f, client="phone")
            return it.post("/v1/cti", form(**f), content_type=FORM, client="phone")

        assert cti(event="newCall", callId=call, queue="case-status",
                   **{"from": local}).status == 200
        r = cti(event="ringing", callId=call, user="hala")
        assert r.status == 200, r
        pop, _ = stream.next("call", pred=lambda d: d["call_id"] == call)
        assert pop["from"] == e164 and pop["queue"] == "case-status" and pop["ivr"] == []
        # The same ring again is a duplicate; another agent's ring has its own place.
        assert cti(event="ringing", callId=call, user="hala").json["duplicate"] is True
        assert cti(event="alerting", callId=call, user="amal").json["duplicate"] is False
        r = cti(event="ringing", callId=call)
        assert r.status == 400 and r.json["error"]["field"] == "user", r
    finally:
        stream.close()


def start_routing(daemon, it, tmp_path):
    """The classifier and the router (every ticket to queue general), sweeping fast."""
    from test_desk_browser import MODEL
    rules = tmp_path / "routing.yaml"
    rules.write_text(RULES)
    daemon("classifier", env={"WASL_PG_URL": it.db_url, "WASL_CLASSIFIER_MODEL": MODEL,
                              "WASL_BUS": "", "WASL_CLASSIFIER_SWEEP_MS": 100,
                              "WASL_CLASSIFIER_SWEEP_AGE_MS": 0}, wait=True)
    daemon("router", env={"WASL_PG_URL": it.db_url, "WASL_BUS": "", "WASL_ROUTER_RULES": rules,
                          "WASL_ROUTER_AUTO_ANSWER": "false", "WASL_ROUTER_SWEEP_MS": 100,
                          "WASL_ROUTER_SWEEP_AGE_MS": 0, "WASL_ROUTER_DISPATCH_MS": 100},
           wait=True)


def call_state(it, call):
    return (it.count("tickets", "external_id = %s", (call,)),
            it.count("ticket_events e JOIN tickets t ON t.id = e.ticket_id",
                     "t.external_id = %s", (call,)))


def test_new_ticket_once_assigned_classified_never_offered(stack, daemon, tmp_path):
    it, desk = stack
    local, e164 = unique_saudi_mobile()
    hala, amal, sara = desk.session("hala"), desk.session("amal"), desk.session("sara")
    # amal is available in the ticket's queue: the router would offer it to her if it could.
    assert amal.call("PUT", "/v1/me/presence",
                     {"presence": "available", "ttl_s": 600}).status_code == 200
    start_routing(daemon, it, tmp_path)
    call = unique("call")
    assert call_event(it, type="call.started", call_id=call, seq=1, ts=TS,
                      **{"from": local}).status == 200
    assert ring(it, call, seq=2).status == 200
    # amal was not rung and is no supervisor: 403, nothing made.
    r = amal.call("POST", f"/v1/calls/{call}/ticket", {})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_call", r.text
    assert call_state(it, call) == (0, 0)
    text = "يسأل عن موعد الجلسة القادمة في قضيته"
    r = hala.call("POST", f"/v1/calls/{call}/ticket", {"text": text})
    assert r.status_code == 201, r.text
    ref = r.json()["ticket"]
    assert r.json() == {"call_id": call, "ticket": ref, "created": True, "assignee": "hala"}
    again = hala.call("POST", f"/v1/calls/{call}/ticket", {"subject": "x", "text": "y"})
    assert again.status_code == 200 and again.json()["ticket"] == ref
    assert again.json()["created"] is False
    boss = sara.call("POST", f"/v1/calls/{call}/ticket", {})
    assert boss.status_code == 200 and boss.json()["ticket"] == ref
    t = it.ticket(ref)
    assert (t["status"], t["assignee"], t["channel"], t["external_id"], t["from_phone"]) == \
        ("assigned", "hala", "phone", call, e164)
    kinds = [e["kind"] for e in it.events(t["id"])]
    assert kinds[:2] == ["received", "assigned"], kinds
    assert it.events(t["id"])[0]["actor"] == "desk:hala"
    # Still classified, then routed — and offered to nobody.
    wait_for(lambda: "routed" in [e["kind"] for e in it.events(t["id"])], WAIT_S,
             what="classified and routed")
    t = it.ticket(ref)
    assert t["category"] and t["priority"], t
    assert "classified" in [e["kind"] for e in it.events(t["id"])]
    assert (t["status"], t["assignee"]) == ("assigned", "hala")
    assert it.count("offers", "ticket_id = %s", (t["id"],)) == 0
    assert ref in [x["ticket"] for x in hala.call("GET", "/v1/me/tickets").json()["tickets"]]
    # The PBX's later note joins it: one ticket for the call.
    r = call_event(it, type="call.note", call_id=call, seq=3, text="سيرسل المستندات",
                   agent="hala", ts=TS)
    assert r.status == 200 and r.json["ticket"] == ref, r
    assert [m["body"] for m in it.messages(t["id"])] == [text, "سيرسل المستندات"]
    assert it.count("tickets", "external_id = %s", (call,)) == 1
    # The pop now names the call's ticket.
    calls = hala.call("GET", "/v1/me/calls").json()["calls"]
    assert calls[0]["call_id"] == call and calls[0]["ticket"] == ref
    # The ticket view lists the caller's other tickets by the same phone identity.
    other = open_ticket(desk, e164, "another")
    view = hala.call("GET", f"/v1/tickets/{ref}").json()
    assert [o["ticket"] for o in view["other_tickets"]] == [other]


def test_hostile_input_is_refused_naming_the_field(stack):
    it, desk = stack
    call = unique("call")
    for fields, code, field in (
            ({"agent": None}, "missing_field", "agent"),
            ({"agent": "Hala"}, "invalid_field", "agent"),
            ({"agent": "hala'; DROP TABLE tickets; --"}, "invalid_field", "agent"),
            ({"agent": "a" * 65}, "invalid_field", "agent"),
            ({"menu": "m" * 5000}, "invalid_field", "menu"),
            ({"queue": 5}, "invalid_field", "queue")):
        body = {"type": "call.ringing", "call_id": call, "seq": 1, "agent": "hala"}
        body.update(fields)
        body = {k: v for k, v in body.items() if v is not None}
        r = it.post("/v1/calls/events", body, client="phone")
        assert r.status == 400, (fields, r)
        assert (r.json["error"]["code"], r.json["error"]["field"]) == (code, field), r
    assert it.count("call_events", "call_id = %s", (call,)) == 0
    hala = desk.session("hala")
    assert ring(it, call, seq=1).status == 200
    for path, body, status, field in (
            (f"/v1/calls/{unique('nocall')}/ticket", {}, 404, "call_id"),
            (f"/v1/calls/{call}/ticket", {"subject": 5}, 400, "subject"),
            (f"/v1/calls/{call}/ticket", {"text": "x" * 4001}, 400, "text"),
            (f"/v1/calls/{call}/ticket", {"text": "   "}, 400, "text"),
            (f"/v1/calls/{'c' * 129}/ticket", {}, 400, "call_id"),
            (f"/v1/calls/{call}/tickets", {}, 404, None)):
        r = hala.call("POST", path, body)
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["error"].get("field") == field, r.text
    r = hala.call("POST", f"/v1/calls/{call}/ticket", {}, csrf=False)
    assert r.status_code == 403, r.text
    r = hala.call("POST", f"/v1/calls/{call}/ticket", ["not", "an", "object"])
    assert r.status_code == 400, r.text
    assert call_state(it, call) == (0, 0)
    assert desk.session().call("GET", "/v1/me/calls").status_code == 401
