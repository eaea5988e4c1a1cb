"""wasl-desk's tickets over HTTP: "my work" in the router's order with SLA deadlines, the ticket
view (fields, the beneficiary's text, notifications, history), and note, transfer and resolve
through the wasl_tickets_* functions — an agent reads and acts on its own tickets and the
unassigned tickets of its queues, a supervisor on all, anyone else gets 403 and nothing changes.
docs/desk.md, "Tickets", is the design."""

import json

import pytest

from conftest import free_port, wait_for
from intake_helpers import make_ref, unique
from test_desk_auth import desk, desk_db  # noqa: F401 (fixtures)

ARABIC_TEXT = 'أرجو إفادتي بموعد الجلسة <b>القادمة</b> <script>x()</script>'
_seq = [0]


def new_ticket(desk, priority="normal", rank=2, due_h=4, phone="+966501234567"):
    """A routed, unassigned ticket of queue general with one inbound SMS; its reference."""
    _seq[0] += 1
    ref = make_ref(9000000 + (hash(unique()) % 900000) + _seq[0])
    tid = desk.scalar(
        "INSERT INTO tickets (ref, channel, external_id, status, queue, priority, prio_rank,"
        " language, category, subject, from_phone, waiting_since, first_response_due,"
        " resolution_due)"
        " VALUES (%s, 'sms', %s, 'routed', 'general', %s, %s, 'ar', 'case_inquiry', NULL, %s,"
        " now(), now() + make_interval(hours => %s), now() + interval '3 days') RETURNING id",
        (ref, unique("tk"), priority, rank, phone, due_h))
    desk.scalar("INSERT INTO messages (ticket_id, direction, channel, sender, body)"
                " VALUES (%s, 'in', 'sms', %s, %s)", (tid, phone, ARABIC_TEXT))
    desk.scalar("INSERT INTO ticket_events (ticket_id, kind, actor, data)"
                " VALUES (%s, 'routed', 'router', %s)",
                (tid, json.dumps({"queue": "general", "rule": "all"})))
    return ref


def assign(desk, ref, agent):
    """Offered to `agent` as the router does it, and accepted through the desk."""
    tid = desk.scalar("SELECT id FROM tickets WHERE ref = %s", (ref,))
    offer = desk.scalar(
        "SELECT offer_id FROM wasl_offers_make(%s::jsonb, 'router-test', 60)",
        (json.dumps([{"ticket_id": tid, "agent": agent, "channel": "sms", "explain": {}}]),))
    person = desk.session(agent)
    r = person.call("POST", f"/v1/offers/{offer}/accept")
    assert r.status_code == 200, r.text
    return person


def snapshot(desk, ref):
    """What an action could change: status, assignee, queue, events, notifications."""
    return (desk.scalar("SELECT status || '/' || coalesce(assignee, '-') || '/' || queue"
                        "  FROM tickets WHERE ref = %s", (ref,)),
            desk.scalar("SELECT count(*) FROM ticket_events e JOIN tickets t"
                        "    ON t.id = e.ticket_id WHERE t.ref = %s", (ref,)),
            desk.scalar("SELECT count(*) FROM notifications n JOIN tickets t"
                        "    ON t.id = n.ticket_id WHERE t.ref = %s", (ref,)))


def test_my_work_in_the_routers_order_with_sla_deadlines(desk):
    late = new_ticket(desk, due_h=8)
    soon = new_ticket(desk, due_h=1)
    urgent = new_ticket(desk, priority="urgent", rank=0, due_h=2)
    other = new_ticket(desk)
    hala = assign(desk, late, "hala")
    for ref in (soon, urgent):
        assign(desk, ref, "hala")
    assign(desk, other, "amal")
    r = hala.call("GET", "/v1/me/tickets")
    assert r.status_code == 200, r.text
    mine = r.json()["tickets"]
    assert [t["ticket"] for t in mine] == [urgent, soon, late]
    first = mine[1]
    assert first["status"] == "assigned" and first["priority"] == "normal"
    assert first["first_response_due"].endswith("Z") and first["resolution_due"]
    assert 3000 < first["first_response_left_s"] <= 3600
    assert mine[2]["first_response_left_s"] > 7 * 3600
    assert desk.session().call("GET", "/v1/me/tickets").status_code == 401


def test_the_ticket_view(desk):
    ref = new_ticket(desk)
    hala = assign(desk, ref, "hala")
    r = hala.call("GET", f"/v1/tickets/{ref}")
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["ticket"] == ref and t["assignee"] == "hala" and t["status"] == "assigned"
    assert t["category"] == "case_inquiry" and t["from_phone"] == "+966501234567"
    assert [m["text"] for m in t["messages"]] == [ARABIC_TEXT]
    kinds = [e["kind"] for e in t["history"]]
    assert kinds[0] == "routed" and t["history"][0]["data"]["rule"] == "all"
    assert "offered" in kinds or "accepted" in kinds or "assigned" in kinds, kinds
    assert t["notifications"] == []
    # The entities' national IDs come masked (the classification block shows them), the
    # priority in words.
    desk.scalar("UPDATE tickets SET entities = %s WHERE ref = %s RETURNING 1",
                (json.dumps({"national_id": ["1012345678"], "case_number": ["4512345678"]}), ref))
    t = hala.call("GET", f"/v1/tickets/{ref}").json()
    assert t["entities"] == {"national_id": ["********78"], "case_number": ["4512345678"]}, t
    assert t["priority_label"] == {"ar": "عادية", "en": "normal"}, t["priority_label"]
    assert hala.call("GET", f"/v1/tickets/{make_ref(9999999)}").status_code == 404
    # A mistyped reference (its check digit wrong) is intake's 400, not a lookup.
    r = hala.call("GET", "/v1/tickets/2512345678")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_reference", r.text
    assert hala.call("GET", "/v1/tickets/12ab").status_code == 400
    assert hala.call("GET", f"/v1/tickets/{ref}/x").status_code == 404


def test_who_may_read_and_act(desk):
    ref = new_ticket(desk)
    # Unassigned: every member of its queue sees it.
    amal = desk.session("amal")
    assert amal.call("GET", f"/v1/tickets/{ref}").status_code == 200
    hala = assign(desk, ref, "hala")
    before = snapshot(desk, ref)
    # Assigned to hala: amal (same queue) neither reads nor acts; nothing changes.
    r = amal.call("GET", f"/v1/tickets/{ref}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket", r.text
    for action, body in (("notes", {"text": "x"}), ("transfer", {"queue": "general"}),
                         ("resolve", {"wrapup": "answered", "resolution": "x"})):
        r = amal.call("POST", f"/v1/tickets/{ref}/{action}", body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket", r.text
    assert snapshot(desk, ref) == before
    assert ref not in [t["ticket"] for t in amal.call("GET", "/v1/me/tickets").json()["tickets"]]
    # The supervisor reads everything; the assignee too.
    assert desk.session("sara").call("GET", f"/v1/tickets/{ref}").status_code == 200
    assert hala.call("GET", f"/v1/tickets/{ref}").status_code == 200
    # Without the CSRF token nothing happens either.
    assert hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "x"},
                     csrf=False).status_code == 403
    assert snapshot(desk, ref) == before


def test_note_transfer_resolve(desk):
    ref = new_ticket(desk)
    hala = assign(desk, ref, "hala")
    r = hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "اتصلت بالمستفيد"})
    assert r.status_code == 200 and r.json() == {"ticket": ref, "done": "note"}, r.text
    history = hala.call("GET", f"/v1/tickets/{ref}").json()["history"]
    assert history[-1]["kind"] == "note" and history[-1]["actor"] == "hala"
    assert history[-1]["data"]["text"] == "اتصلت بالمستفيد"
    for body, field in (({}, "text"), ({"text": "  "}, "text"), ({"text": 5}, "text")):
        r = hala.call("POST", f"/v1/tickets/{ref}/notes", body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
    for wrong in ("steal", "note", ""):
        assert hala.call("POST", f"/v1/tickets/{ref}/{wrong}", {}).status_code == 404
    # Resolve: a configured wrap-up code, then the update and the survey as today.
    before = snapshot(desk, ref)
    for code in (None, "made_up", ""):
        r = hala.call("POST", f"/v1/tickets/{ref}/resolve", {"wrapup": code})
        assert r.status_code == 400 and r.json()["error"]["field"] == "wrapup", r.text
    assert snapshot(desk, ref) == before
    r = hala.call("POST", f"/v1/tickets/{ref}/resolve",
                  {"wrapup": "case_status_given", "resolution": "موعد الجلسة ١٥ رجب"})
    assert r.status_code == 200, r.text
    t = hala.call("GET", f"/v1/tickets/{ref}").json()
    assert t["status"] == "resolved" and t["resolution"] == "موعد الجلسة ١٥ رجب"
    assert [(n["kind"], n["channel"], n["template"]) for n in t["notifications"]] == [
        ("update", "sms", "resolved"), ("survey", "sms", "survey")]
    # The wrap-up code in its column and the 'resolved' event; no note any more (0022).
    assert t["wrapup_code"] == "case_status_given"
    assert t["history"][-1]["kind"] == "resolved"
    assert t["history"][-1]["data"]["wrapup"] == "case_status_given"
    assert not [e for e in t["history"] if e["kind"] == "note"
                and e["data"]["text"].startswith("wrapup:")]
    assert desk.scalar("SELECT wrapup_code FROM tickets WHERE ref = %s",
                       (ref,)) == "case_status_given"
    r = hala.call("POST", f"/v1/tickets/{ref}/resolve", {"wrapup": "answered"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "wrong_state", r.text
    # Transfer: waiting again in the other queue, no longer hala's.
    other = new_ticket(desk)
    assign(desk, other, "hala")
    r = hala.call("POST", f"/v1/tickets/{other}/transfer", {"queue": "nowhere"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_queue"
    r = hala.call("POST", f"/v1/tickets/{other}/transfer", {"queue": "general", "reason": "r"})
    assert r.status_code == 200, r.text
    assert snapshot(desk, other)[0] == "routed/-/general"
    assert hala.call("GET", "/v1/me/tickets").json()["tickets"] == []


def test_migrate_replaces_the_four_argument_resolve(waslctl, fresh_db):
    """Before 0022 wasl_tickets_resolve had four parameters: a database migrated then keeps
    one function, the new one, which still answers a four-argument call (intake's)."""
    import psycopg2
    env = {"WASL_PG_URL": fresh_db}
    assert waslctl("migrate", env=env).returncode == 0
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        # The database as the previous functions left it: the old signature beside the new.
        cur.execute("CREATE FUNCTION wasl_tickets_resolve(p_ref text, p_agent text,"
                    " p_resolution text, p_client text) RETURNS TABLE (status text, done bigint)"
                    " LANGUAGE sql AS 'SELECT NULL::text, NULL::bigint WHERE false'")
        again = waslctl("migrate", env=env)
        assert again.returncode == 0, again.stderr
        assert "NOTICE" not in again.stderr, again.stderr
        cur.execute("SELECT pg_get_function_identity_arguments(oid) FROM pg_proc"
                    " WHERE proname = 'wasl_tickets_resolve'")
        assert [r[0] for r in cur.fetchall()] == [
            "p_ref text, p_agent text, p_resolution text, p_client text, p_wrapup text"]
        cur.execute("SELECT count(*) FROM wasl_tickets_resolve('0000000000', 'a', 'r', 'c')")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_wrapup_codes_are_configured(desk_db, start_desk):
    from test_desk_auth import Desk
    d = Desk(start_desk(desk_db, env={"WASL_DESK_WRAPUP_CODES": "done,spam"}), desk_db)
    ref = new_ticket(d)
    hala = assign(d, ref, "hala")
    assert hala.call("POST", f"/v1/tickets/{ref}/resolve",
                     {"wrapup": "answered"}).status_code == 400
    assert hala.call("POST", f"/v1/tickets/{ref}/resolve", {"wrapup": "spam"}).status_code == 200


@pytest.mark.parametrize("codes", ["done,Not Ok", "done,-x", ",", "a" * 65])
def test_wrapup_codes_out_of_shape_refuse_the_start(desk_db, daemon, codes):
    """The codes must fit tickets.wrapup_code's CHECK (0022): refused at start, not with a
    503 at the first resolve."""
    d = daemon("desk", env={"WASL_PG_URL": desk_db, "WASL_DESK_PORT": free_port(),
                            "WASL_DESK_WRAPUP_CODES": codes}, wait=False)
    assert d.proc.wait(timeout=20) != 0
    log = d.log_path.read_text() + d.out_path.read_text()
    assert "wrap-up code refused" in log or "no wrap-up codes" in log


# ---- replies ----------------------------------------------------------------------------------


@pytest.fixture
def sms_sink():
    from test_notifier import KannelSink
    s = KannelSink()
    yield s
    s.close()


def start_sms_notifier(daemon, db_url, sink):
    """The notifier on the desk's database, SMS to the Kannel-like sink, sweeping fast."""
    from test_notifier import TEMPLATES
    return daemon("notifier", env={
        "WASL_PG_URL": db_url, "WASL_BUS": "", "WASL_NOTIFIER_TEMPLATES": TEMPLATES,
        "WASL_NOTIFIER_SWEEP_MS": 100, "WASL_NOTIFIER_LEASE_S": 5, "WASL_SMS_URL": sink.url,
        "WASL_SMS_USER": "wasl", "WASL_SMS_PASSWORD": "s3cret", "WASL_SMS_TIMEOUT_MS": 1000,
        "WASL_SMS_DLR_URL": "http://127.0.0.1:9/v1/sms/dlr", "WASL_SMTP_URL": "smtp://127.0.0.1:9",
        "WASL_MAIL_FROM": "noreply@bog.test", "WASL_MAIL_DOMAIN": "bog.test",
        "WASL_NOTIFIER_QUIET_START_H": 0, "WASL_NOTIFIER_QUIET_END_H": 0,
        "WASL_NOTIFIER_RCPT_MAX": 0, "WASL_NOTIFIER_TICKET_MAX": 0}, wait=True)


def test_canned_replies_are_served(desk):
    hala = desk.session("hala")
    r = hala.call("GET", "/v1/replies")
    assert r.status_code == 200, r.text
    replies = r.json()["replies"]
    assert len(replies) >= 5
    ids = [x["id"] for x in replies]
    assert ids == sorted(ids) and "received_under_review" in ids
    for x in replies:
        assert x["title"]["ar"] and x["title"]["en"] and "{ref}" in x["text"]["ar"]
    assert r.json()["wrapup_codes"][:2] == ["answered", "information_given"]
    assert desk.session().call("GET", "/v1/replies").status_code == 401


@pytest.mark.parametrize("body,bad", [
    ('{"id": "x", "title": {"ar": "أ", "en": "a"}, "text": {"ar": "{name}", "en": "b"}}', "x"),
    ('{"id": "other", "title": {"ar": "أ", "en": "a"}, "text": {"ar": "ب", "en": "b"}}', "y"),
    ('{"id": "z", "title": {"ar": "أ"}, "text": {"ar": "ب", "en": "b"}}', "z"),
    ('not json', "w"),
])
def test_a_malformed_canned_reply_refuses_the_start(desk_db, daemon, tmp_path, body, bad):
    (tmp_path / f"{bad}.json").write_text(body)
    d = daemon("desk", env={"WASL_PG_URL": desk_db, "WASL_DESK_PORT": free_port(),
                            "WASL_DESK_REPLIES": tmp_path}, wait=False)
    assert d.proc.wait(timeout=20) != 0
    assert "canned replies refused" in d.log_path.read_text() + d.out_path.read_text()


def test_reply_sends_one_sms_even_posted_twice(desk, daemon, sms_sink):
    phone = "+9665" + unique("")[-8:].translate(str.maketrans("abcdef", "123456"))
    ref = new_ticket(desk, phone=phone)
    hala = assign(desk, ref, "hala")
    amal = desk.session("amal")
    before = snapshot(desk, ref)
    r = amal.call("POST", f"/v1/tickets/{ref}/reply", {"text": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket", r.text
    assert snapshot(desk, ref) == before
    key = {"Idempotency-Key": unique("dbl")}
    first = hala.call("POST", f"/v1/tickets/{ref}/reply", {"reply_id": "received_under_review"},
                      headers=key)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False and ref in first.json()["text"]
    again = hala.call("POST", f"/v1/tickets/{ref}/reply", {"reply_id": "received_under_review"},
                      headers=key)
    assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    # Without a key, the same text from the same agent is the same reply (a double click).
    for _ in range(2):
        r = hala.call("POST", f"/v1/tickets/{ref}/reply", {"text": "نرجو تزويدنا برقم القضية"})
        assert r.status_code == 200, r.text
    for body in ({}, {"text": "a", "reply_id": "working_hours"}, {"reply_id": "nope"},
                 {"text": " "}):
        assert hala.call("POST", f"/v1/tickets/{ref}/reply", body).status_code == 400, body
    assert hala.call("POST", f"/v1/tickets/{ref}/reply", {"text": "x"},
                     headers={"Idempotency-Key": "a b"}).status_code == 400
    t = hala.call("GET", f"/v1/tickets/{ref}").json()
    assert [n["template"] for n in t["notifications"]] == ["reply", "reply"]
    assert [e["kind"] for e in t["history"]].count("replied") == 2
    start_sms_notifier(daemon, desk.db_url, sms_sink)
    wait_for(lambda: all(n["state"] == "sent" for n in hala.call(
        "GET", f"/v1/tickets/{ref}").json()["notifications"]), 20, what="replies sent")
    sent = [q["text"] for q in sms_sink.to(phone)]
    assert len(sent) == 2, sent
    canned = [s for s in sent if "قيد الدراسة" in s]
    assert len(canned) == 1 and ref in canned[0]
    assert len([s for s in sent if "نرجو تزويدنا برقم القضية" in s]) == 1
    # Resolving sends the update and the survey as it always has.
    r = hala.call("POST", f"/v1/tickets/{ref}/resolve", {"wrapup": "answered",
                                                          "resolution": "تمت الإفادة"})
    assert r.status_code == 200, r.text
    wait_for(lambda: len(sms_sink.to(phone)) == 4, 20, what="update and survey sent")
    assert any("تمت الإفادة" in q["text"] for q in sms_sink.to(phone))
    r = hala.call("POST", f"/v1/tickets/{ref}/reply", {"text": "late"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "wrong_state"


def test_reply_needs_a_contact(desk):
    ref = new_ticket(desk, phone=None)
    hala = assign(desk, ref, "hala")
    r = hala.call("POST", f"/v1/tickets/{ref}/reply", {"text": "x"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_contact", r.text
    assert snapshot(desk, ref)[2] == 0


# ---- a supervisor reassigns ---------------------------------------------------------------


def test_an_agent_cannot_reassign(desk):
    """Agent amal moving hala's ticket to herself: 403 supervisors_only, nothing changed (not
    even a bad body is looked at)."""
    ref = new_ticket(desk)
    assign(desk, ref, "hala")
    amal = desk.session("amal")
    before = snapshot(desk, ref)
    for body in ({"agent": "amal"}, {"agent": "hala"}, {}, {"agent": 5}):
        r = amal.call("POST", f"/v1/tickets/{ref}/assign", body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "supervisors_only", r.text
    assert snapshot(desk, ref) == before
    # Nor the assignee herself.
    hala = desk.session("hala")
    r = hala.call("POST", f"/v1/tickets/{ref}/assign", {"agent": "amal"})
    assert r.status_code == 403 and snapshot(desk, ref) == before


def test_a_supervisor_moves_a_ticket_and_the_new_assignees_page_hears_it(desk):
    """sara moves hala's ticket to amal: amal's stream gets `work` (her "my work" refetches),
    hala's gets `work` too (kind unassigned),
    the ticket is in amal's work and out of hala's, the history says who, from whom and why."""
    from test_desk_auth import Stream
    ref = new_ticket(desk)
    assign(desk, ref, "hala")
    sara, amal, hala = desk.session("sara"), desk.session("amal"), desk.session("hala")
    stream, hala_stream = Stream(amal), Stream(hala)
    try:
        before = snapshot(desk, ref)
        # The body is checked: each field named, nothing changed.
        for body, code, field in (({}, 400, "agent"), ({"agent": "Bad Id"}, 400, "agent"),
                                  ({"agent": "amal", "reason": 7}, 400, "reason"),
                                  ({"agent": "ghost"}, 404, "agent")):
            r = sara.call("POST", f"/v1/tickets/{ref}/assign", body)
            assert r.status_code == code and r.json()["error"]["field"] == field, r.text
        r = sara.call("POST", f"/v1/tickets/{make_ref(9999999)}/assign", {"agent": "amal"})
        assert r.status_code == 404 and r.json()["error"]["field"] == "ref", r.text
        assert sara.call("POST", f"/v1/tickets/{ref}/assign", {"agent": "amal"},
                         csrf=False).status_code == 403
        assert snapshot(desk, ref) == before
        r = sara.call("POST", f"/v1/tickets/{ref}/assign",
                      {"agent": "amal", "reason": "hala is off sick"})
        assert r.status_code == 200, r.text
        assert r.json() == {"ticket": ref, "done": "assign", "agent": "amal", "from": "hala",
                            "by": "sara"}
        stream.next("work", pred=lambda d: d.get("kind") == "assigned")
        # hala's page hears that it was taken away (her "my work" drops it).
        hala_stream.next("work", pred=lambda d: d.get("kind") == "unassigned")
        assert [t["ticket"] for t in amal.call("GET", "/v1/me/tickets").json()["tickets"]] \
            == [ref]
        assert hala.call("GET", "/v1/me/tickets").json()["tickets"] == []
        assert snapshot(desk, ref)[0] == "assigned/amal/general"
        last = amal.call("GET", f"/v1/tickets/{ref}").json()["history"][-1]
        assert last["kind"] == "assigned" and last["actor"] == "sara"
        assert last["data"] == {"agent": "amal", "by": "sara", "from": "hala",
                                "reason": "hala is off sick", "client": "desk"}
        # hala can no longer act on it.
        assert hala.call("POST", f"/v1/tickets/{ref}/notes",
                         {"text": "x"}).status_code == 403
        # A disabled agent is 409 naming agent; a resolved ticket 409 wrong_state.
        desk.scalar("UPDATE agents SET enabled = false WHERE id = 'hala' RETURNING id")
        try:
            r = sara.call("POST", f"/v1/tickets/{ref}/assign", {"agent": "hala"})
            assert r.status_code == 409 and r.json()["error"] == {
                "code": "agent_disabled", "field": "agent",
                "message": "agent hala is disabled"}, r.text
        finally:
            desk.scalar("UPDATE agents SET enabled = true WHERE id = 'hala' RETURNING id")
        assert amal.call("POST", f"/v1/tickets/{ref}/resolve",
                         {"wrapup": "answered"}).status_code == 200
        r = sara.call("POST", f"/v1/tickets/{ref}/assign", {"agent": "hala"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "wrong_state", r.text
    finally:
        stream.close()
        hala_stream.close()


def test_queues_are_those_a_transfer_accepts(desk):
    """GET /v1/queues: what enabled agents serve, sorted; a transfer to each is accepted and
    to anything else refused (the picker offers only what works)."""
    hala = desk.session("hala")
    r = hala.call("GET", "/v1/queues")
    assert r.status_code == 200, r.text
    queues = r.json()["queues"]
    assert queues == sorted(queues) and "general" in queues
    assert queues == sorted(set(desk.scalar(
        "SELECT array_agg(DISTINCT k) FROM agents, jsonb_object_keys(skills) k WHERE enabled")))
    assert desk.session().call("GET", "/v1/queues").status_code == 401
