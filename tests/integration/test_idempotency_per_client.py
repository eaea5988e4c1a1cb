"""Issue 13, finding 9: an idempotency key belongs to the client that sent it, and a report may
claim a gateway's channel (phone, sms, email) only from a client scoped for that gateway.

Attacks: a second portal reusing another portal's external_id must not land on its ticket; a
reports-only client claiming channel=phone with a call's id must not take over the call's
callback ticket. Email stays global by design (a Message-ID names one message worldwide): the
same message through two mail gateways is one ticket."""

import pytest

from intake_helpers import (  # noqa: F401  (fixtures)
    Client,
    assert_error,
    default_clients,
    new_token,
    start_intake,
    unique,
    unique_saudi_mobile,
)


@pytest.fixture
def it(start_intake):
    return start_intake(clients=default_clients() + [
        Client("portal2", "web_portal", "reports,tickets:read", token=new_token()),
        Client("phone2", "telephony", "calls", token=new_token()),
        Client("smsgw2", "sms_gateway", "sms", token=new_token()),
        Client("mailgw2", "email_gateway", "email", token=new_token()),
        Client("cti-reports", "telephony", "reports,calls", token=new_token()),
    ])


def tickets_of(it, channel, external_id):
    return it.rows("SELECT id, ref, client_id FROM tickets WHERE channel = %s AND external_id = %s"
                   " ORDER BY id", (channel, external_id))


def test_two_portals_with_the_same_external_id_get_two_tickets(it):
    ext = "web-1"
    a = it.report({"channel": "web", "external_id": ext, "body": "بلاغ البوابة الأولى"},
                  client="portal")
    b = it.report({"channel": "web", "external_id": ext, "body": "بلاغ البوابة الثانية"},
                  client="portal2")
    assert (a.status, b.status) == (201, 201), (a, b)
    assert a.json["duplicate"] is False and b.json["duplicate"] is False
    assert a.json["ticket"] != b.json["ticket"]
    rows = tickets_of(it, "web", ext)
    assert [r["client_id"] for r in rows] == ["portal", "portal2"]
    # Each ticket holds its own client's text: nothing accepted was lost or mixed.
    for r, body in zip(rows, ("بلاغ البوابة الأولى", "بلاغ البوابة الثانية")):
        assert [m["body"] for m in it.messages(r["id"])] == [body]
        assert len(it.work(r["id"])) == 1


def test_the_same_client_retrying_gets_the_same_ticket(it):
    report = {"channel": "web", "external_id": unique("web"), "body": "بلاغ يعاد إرساله"}
    first = it.report(report, client="portal2")
    again = it.report(report, client="portal2")
    assert first.status == 201, first
    assert again.status == 200, again
    assert again.json["ticket"] == first.json["ticket"] and again.json["duplicate"] is True
    # Another portal's copy arriving after both is its own ticket, and the retry still finds the
    # first one.
    other = it.report(report, client="portal")
    assert other.status == 201 and other.json["ticket"] != first.json["ticket"], other
    third = it.report(report, client="portal2")
    assert third.status == 200 and third.json["ticket"] == first.json["ticket"], third
    assert len(tickets_of(it, "web", report["external_id"])) == 2


def test_same_external_id_from_two_clients_in_one_batch(it):
    """Both copies may reach one writer batch together: each client still gets its own ticket,
    and every copy gets an answer."""
    from concurrent.futures import ThreadPoolExecutor
    ext = unique("race")
    clients = ["portal", "portal2", "feeder"] * 4

    def send(client):
        return it.report({"channel": "api", "external_id": ext, "body": f"من {client}"},
                         client=client)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        answers = list(pool.map(send, clients))
    assert all(a.status in (200, 201) for a in answers), answers
    by_client = {}
    for client, a in zip(clients, answers):
        by_client.setdefault(client, set()).add(a.json["ticket"])
    assert all(len(refs) == 1 for refs in by_client.values()), by_client
    assert len({next(iter(refs)) for refs in by_client.values()}) == 3
    assert sum(a.status == 201 for a in answers) == 3
    assert len(tickets_of(it, "api", ext)) == 3


def callback_call(it, call_id, caller):
    """A call that waits in a queue and hangs up: the telephony client gets a callback ticket."""
    r = it.post("/v1/calls/events", {"type": "call.started", "call_id": call_id, "seq": 1,
                                     "from": caller, "queue": "general"}, client="phone")
    assert r.status == 200, r
    r = it.post("/v1/calls/events", {"type": "call.ended", "call_id": call_id, "seq": 2,
                                     "cause": "abandoned", "duration_s": 40}, client="phone")
    assert r.status == 201, r
    return r.json["ticket"]


def test_reports_client_cannot_claim_a_call(it):
    call_id = "1701234567.42"  # what an Asterisk uniqueid looks like: guessable
    local, e164 = unique_saudi_mobile()
    ref = callback_call(it, call_id, local)
    before = it.ticket(ref)
    before_msgs = it.messages(before["id"])
    before_events = it.events(before["id"])
    for client in ("portal", "feeder"):  # reports, or reports + tickets:read: no calls scope
        r = it.report({"channel": "phone", "external_id": call_id, "body": "اتصلوا على رقمي",
                       "from": {"phone": "0500000001"}}, client=client)
        assert_error(r, 403, "forbidden", "channel")
    # The same for the gateways' other channels.
    for channel in ("sms", "email"):
        r = it.report({"channel": channel, "external_id": unique(channel), "body": "x"},
                      client="portal")
        assert_error(r, 403, "forbidden", "channel")
    # The call's ticket is untouched: same owner, caller, messages and history; no new ticket.
    after = it.ticket(ref)
    assert (after["client_id"], after["from_phone"], after["updated_at"]) == (
        "phone", e164, before["updated_at"])
    assert it.messages(after["id"]) == before_msgs
    assert it.events(after["id"]) == before_events
    assert [t["ref"] for t in tickets_of(it, "phone", call_id)] == [ref]


def test_a_client_scoped_for_calls_may_report_on_phone_but_only_in_its_own_keys(it):
    call_id = unique("call")
    local, _ = unique_saudi_mobile()
    ref = callback_call(it, call_id, local)
    # A CTI connector with both scopes files a report for a call id of its own: its own ticket.
    r = it.report({"channel": "phone", "external_id": call_id, "body": "ملاحظة من المقسم"},
                  client="cti-reports")
    assert r.status == 201, r
    assert r.json["ticket"] != ref
    assert it.ticket(ref)["client_id"] == "phone"


def test_another_telephony_client_with_the_same_call_id_is_another_call(it):
    call_id = unique("pbx")
    local, e164 = unique_saudi_mobile()
    ref = callback_call(it, call_id, local)
    # A second PBX reuses the id: its events are its own call, they neither see nor change the
    # first call's caller or ticket.
    r = it.post("/v1/calls/events", {"type": "call.ended", "call_id": call_id, "seq": 2,
                                     "cause": "abandoned"}, client="phone2")
    assert r.status == 201, r
    assert r.json["duplicate"] is False and r.json["ticket"] != ref
    theirs = it.ticket(r.json["ticket"])
    assert theirs["client_id"] == "phone2" and theirs["from_phone"] is None
    assert it.ticket(ref)["from_phone"] == e164
    assert it.count("call_events", "call_id = %s", (call_id,)) == 3
    # The first PBX's retry is still a duplicate of its own event.
    r = it.post("/v1/calls/events", {"type": "call.ended", "call_id": call_id, "seq": 2,
                                     "cause": "abandoned"}, client="phone")
    assert r.status == 200 and r.json["duplicate"] is True and r.json["ticket"] == ref, r


def test_sms_ids_are_per_gateway(it):
    sms_id = "1"  # a gateway's counter
    a_local, _ = unique_saudi_mobile()
    b_local, b_e164 = unique_saudi_mobile()
    a = it.post("/v1/sms/inbound", {"from": a_local, "text": "الرسالة الأولى", "id": sms_id},
                client="smsgw")
    b = it.post("/v1/sms/inbound", {"from": b_local, "text": "الرسالة الثانية", "id": sms_id},
                client="smsgw2")
    assert (a.status, b.status) == (201, 201), (a, b)
    assert a.json["ticket"] != b.json["ticket"]
    tb = it.ticket(b.json["ticket"])
    assert tb["from_phone"] == b_e164
    assert [m["body"] for m in it.messages(tb["id"])] == ["الرسالة الثانية"]
    # Each gateway's retry finds its own ticket.
    again = it.post("/v1/sms/inbound", {"from": b_local, "text": "الرسالة الثانية",
                                        "id": sms_id}, client="smsgw2")
    assert again.status == 200 and again.json["ticket"] == b.json["ticket"], again
    assert again.json["duplicate"] is True


RAW_EMAIL = (
    "From: Huda <huda@example.sa>\r\n"
    "To: care@example.gov.sa\r\n"
    "Subject: =?UTF-8?B?2KfYs9iq2YHYs9in2LE=?=\r\n"
    "Message-ID: <{mid}>\r\n"
    "Date: Thu, 03 Dec 2026 07:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "\r\n"
    "متى الجلسة؟\r\n"
)


def test_email_is_global_one_message_through_two_gateways_is_one_ticket(it):
    raw = RAW_EMAIL.format(mid=unique("m") + "@mail.example.sa").encode("utf-8")
    a = it.post("/v1/email/inbound", raw, content_type="message/rfc822", client="mailgw")
    b = it.post("/v1/email/inbound", raw, content_type="message/rfc822", client="mailgw2")
    assert a.status == 201, a
    assert b.status == 200 and b.json["ticket"] == a.json["ticket"], b
    assert b.json["duplicate"] is True
    assert it.count("tickets", "channel = 'email'") == 1
