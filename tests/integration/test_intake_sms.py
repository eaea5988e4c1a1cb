"""wasl-intake inbound SMS: Kannel get-url (token in the query), post-url (form) and JSON;
threading into the sender's ticket active in the last 72 hours; idempotent by the SMS id; UCS-2
text converted to UTF-8."""

import urllib.parse

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

THREAD_WINDOW_H = 72
TEXT1 = "أرغب في معرفة حالة القضية رقم ٤٥١٢٣٤٥٦٧٨ وشكراً"
TEXT2 = "وصلتني رسالة بموعد الجلسة، هل يمكن تأجيلها؟"


@pytest.fixture
def it(start_intake):
    return start_intake()


def kannel_get(it, token=None, **params):
    """GET /v1/sms/inbound as Kannel's get-url does it: everything in the query, no headers."""
    params = {"token": token or it.token("smsgw"), **params}
    return it.get("/v1/sms/inbound?" + urllib.parse.urlencode(params), token=None)


def sms_tickets(it, e164):
    return it.rows("SELECT * FROM tickets WHERE from_phone = %s ORDER BY id", (e164,))


def test_kannel_get_opens_then_threads_then_dedupes(it):
    local, e164 = unique_saudi_mobile()
    id1, id2 = unique("k"), unique("k")
    r = kannel_get(it, **{"from": local}, to="1900", text=TEXT1, id=id1)
    assert r.status == 201, r
    assert r.json["status"] == "received"
    ref = r.json["ticket"]
    assert_valid_ref(ref)
    t = it.ticket(ref)
    assert t["channel"] == "sms"
    assert t["external_id"] == id1
    assert t["from_phone"] == e164
    assert t["client_id"] == "smsgw"
    assert [w["stage"] for w in it.work(t["id"])] == ["classify"]

    # Another SMS from the same number (in +966 form this time), within 72 h: same ticket.
    r = kannel_get(it, **{"from": e164}, to="1900", text=TEXT2, id=id2)
    assert r.status == 200, r
    assert r.json["status"] == "threaded"
    assert r.json["ticket"] == ref
    msgs = it.messages(t["id"])
    assert [(m["channel"], m["external_id"], m["body"]) for m in msgs] == \
        [("sms", id1, TEXT1), ("sms", id2, TEXT2)]
    assert len(sms_tickets(it, e164)) == 1

    # The gateway delivers the second one again.
    r = kannel_get(it, **{"from": e164}, to="1900", text=TEXT2, id=id2)
    assert r.status == 200, r
    assert r.json["duplicate"] is True
    assert r.json["ticket"] == ref
    assert len(it.messages(t["id"])) == 2
    # And the first one again.
    r = kannel_get(it, **{"from": local}, to="1900", text=TEXT1, id=id1)
    assert r.status == 200, r
    assert r.json["duplicate"] is True
    assert r.json["ticket"] == ref
    assert len(it.messages(t["id"])) == 2
    assert len(sms_tickets(it, e164)) == 1


def test_post_form_variant(it):
    local, e164 = unique_saudi_mobile()
    sms_id = unique("f")
    r = it.post("/v1/sms/inbound", form(**{"from": local}, to="1900", text=TEXT1, id=sms_id),
                content_type=FORM, client="smsgw")
    assert r.status == 201, r
    t = it.ticket(r.json["ticket"])
    assert (t["channel"], t["external_id"], t["from_phone"]) == ("sms", sms_id, e164)
    assert it.messages(t["id"])[0]["body"] == TEXT1
    r = it.post("/v1/sms/inbound", form(**{"from": local}, to="1900", text=TEXT1, id=sms_id),
                content_type=FORM, client="smsgw")
    assert r.status == 200 and r.json["duplicate"] is True, r


def test_post_json_variant(it):
    local, e164 = unique_saudi_mobile()
    sms_id = unique("j")
    r = it.post("/v1/sms/inbound", {"from": local, "to": "1900", "text": TEXT1, "id": sms_id},
                client="smsgw")
    assert r.status == 201, r
    t = it.ticket(r.json["ticket"])
    assert (t["channel"], t["external_id"], t["from_phone"]) == ("sms", sms_id, e164)
    assert it.messages(t["id"])[0]["body"] == TEXT1


def test_older_than_72_hours_opens_a_new_ticket(it):
    local, e164 = unique_saudi_mobile()
    first = kannel_get(it, **{"from": local}, to="1900", text=TEXT1, id=unique("o"))
    assert first.status == 201, first
    it.db().cursor().execute(
        "UPDATE tickets SET updated_at = now() - interval '73 hours' WHERE ref = %s",
        (first.json["ticket"],))
    second = kannel_get(it, **{"from": local}, to="1900", text=TEXT2, id=unique("o"))
    assert second.status == 201, second
    assert second.json["status"] == "received"
    assert second.json["ticket"] != first.json["ticket"]
    assert_valid_ref(second.json["ticket"])
    assert len(sms_tickets(it, e164)) == 2


def test_within_72_hours_threads(it):
    local, e164 = unique_saudi_mobile()
    first = kannel_get(it, **{"from": local}, to="1900", text=TEXT1, id=unique("w"))
    assert first.status == 201, first
    it.db().cursor().execute(
        "UPDATE tickets SET updated_at = now() - interval '71 hours' WHERE ref = %s",
        (first.json["ticket"],))
    second = kannel_get(it, **{"from": local}, to="1900", text=TEXT2, id=unique("w"))
    assert second.status == 200, second
    assert second.json["status"] == "threaded"
    assert second.json["ticket"] == first.json["ticket"]


def test_ucs2_text_is_stored_as_utf8(it):
    local, e164 = unique_saudi_mobile()
    # What Kannel hands over for a UCS-2 SMS: the UTF-16BE bytes, URL-encoded.
    text = urllib.parse.quote_from_bytes(TEXT1.encode("utf-16-be"), safe="")
    query = urllib.parse.urlencode({"token": it.token("smsgw"), "from": local, "to": "1900",
                                    "id": unique("u"), "charset": "UTF-16BE", "coding": "2"})
    r = it.get(f"/v1/sms/inbound?{query}&text={text}", token=None)
    assert r.status == 201, r
    t = it.ticket(r.json["ticket"])
    body = it.messages(t["id"])[0]["body"]
    assert body == TEXT1
    raw = it.scalar("SELECT convert_to(body, 'UTF8') FROM messages WHERE ticket_id = %s",
                    (t["id"],))
    assert bytes(raw) == TEXT1.encode("utf-8")


def test_sms_refusals(it):
    local, _ = unique_saudi_mobile()
    r = kannel_get(it, token="wrong-" + it.token("smsgw"), **{"from": local}, text=TEXT1,
                   id=unique("x"))
    assert_error(r, 401, "unauthorized")
    r = it.get("/v1/sms/inbound?" + urllib.parse.urlencode(
        {"from": local, "text": TEXT1, "id": unique("x")}), token=None)
    assert_error(r, 401, "unauthorized")
    # A token without the sms scope.
    r = kannel_get(it, token=it.token("portal"), **{"from": local}, text=TEXT1, id=unique("x"))
    assert r.status in (401, 403), r
    r = kannel_get(it, **{"from": local}, text=TEXT1)
    assert_error(r, 400, "missing_field", "id")
    r = kannel_get(it, **{"from": local}, id=unique("x"))
    assert_error(r, 400, "missing_field", "text")
    r = kannel_get(it, text=TEXT1, id=unique("x"))
    assert_error(r, 400, "missing_field", "from")
    r = it.post("/v1/sms/inbound", "from=1&text=2&id=3", content_type="text/plain",
                client="smsgw")
    assert_error(r, 415, "unsupported_media_type")
    assert it.count("tickets") == 0
