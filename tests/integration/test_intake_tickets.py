"""wasl-intake GET /v1/tickets/{ref}: status and history, the reference typed any common way
(Arabic-Indic or Persian digits, dashes, spaces), check-digit errors, unknown references, scope,
and no personal data in the answer."""

import json
import urllib.parse

import pytest

from intake_helpers import (  # noqa: F401  (fixtures)
    ARABIC_BODY,
    Client,
    default_clients,
    new_token,
    assert_counted,
    assert_error,
    make_ref,
    start_intake,
    to_arabic_indic,
    to_persian,
    unique,
    unique_saudi_mobile,
)

NATIONAL_ID = "1098765432"
UNUSED_SEQ = 7654321


@pytest.fixture
def it(start_intake):
    return start_intake(clients=default_clients() + [
        Client("portal2", "web_portal", "reports,tickets:read", token=new_token())])


@pytest.fixture
def report(it):
    """A report with personal data; returns (ref, the values that must never come back)."""
    local, e164 = unique_saudi_mobile()
    subject = "شكوى بخصوص تأخر صرف المستحقات"
    r = it.report({
        "channel": "web", "external_id": unique("tk"), "subject": subject, "body": ARABIC_BODY,
        "from": {"name": "نورة القحطاني", "phone": local, "national_id": NATIONAL_ID,
                 "email": "noura.q@example.sa"},
    })
    assert r.status == 201, r
    secrets_ = [local, e164, e164.lstrip("+"), local[1:], NATIONAL_ID, "noura.q@example.sa",
                "نورة", "القحطاني", subject, "السلام عليكم", "٤٥١٢٣٤٥٦٧٨", "4512345678"]
    return r.json["ticket"], secrets_


def get_ticket(it, typed, client="portal", **kw):
    return it.get("/v1/tickets/" + urllib.parse.quote(typed, safe=""), client=client, **kw)


def test_ticket_status_and_history(it, report):
    ref, _ = report
    r = get_ticket(it, ref)
    assert r.status == 200, r
    view = r.json
    assert view["ticket"] == ref
    assert view["status"] == "received"
    assert view["channel"] == "web"
    kinds = [h["kind"] for h in view["history"]]
    assert "received" in kinds
    first = view["history"][kinds.index("received")]
    assert first.get("at") and first.get("actor")
    row = it.ticket(ref)
    assert len(view["history"]) == len(it.events(row["id"]))


def test_no_personal_data_in_the_answer(it, report):
    ref, never = report
    r = get_ticket(it, ref)
    assert r.status == 200, r
    text = r.raw.decode("utf-8")
    # Also look at the JSON with its \\u escapes undone, in case the server escapes non-ASCII.
    decoded = json.dumps(r.json, ensure_ascii=False)
    for value in never:
        assert value not in text and value not in decoded, f"{value!r} is in {text}"


@pytest.mark.parametrize("style", ["arabic_indic_dashes", "persian", "spaces", "arabic_spaces"])
def test_reference_typed_with_other_digits_and_separators(it, report, style):
    ref, _ = report
    typed = {
        "arabic_indic_dashes": to_arabic_indic(f"{ref[:2]}-{ref[2:6]}-{ref[6:]}"),
        "persian": to_persian(ref),
        "spaces": f"{ref[:5]} {ref[5:]}",
        "arabic_spaces": to_arabic_indic(f"{ref[:3]} {ref[3:6]} {ref[6:]}"),
    }[style]
    r = get_ticket(it, typed)
    assert r.status == 200, r
    assert r.json["ticket"] == ref


def test_wrong_check_digit_is_400(it, report):
    ref, _ = report
    wrong = ref[:9] + str((int(ref[9]) + 1) % 10)
    before = it.error_count("invalid_reference")
    r = get_ticket(it, wrong)
    assert_error(r, 400, "invalid_reference")
    assert_counted(it, "invalid_reference", before)
    # Typed in Arabic-Indic digits too.
    r = get_ticket(it, to_arabic_indic(wrong))
    assert_error(r, 400, "invalid_reference")
    # A transposition of two adjacent digits is caught by Verhoeff.
    swapped = ref[:3] + ref[4] + ref[3] + ref[5:]
    if swapped != ref:
        r = get_ticket(it, swapped)
        assert_error(r, 400, "invalid_reference")


def test_malformed_reference_is_400(it):
    for typed in ("12345", "abcdefghij", "26000000180"):
        r = get_ticket(it, typed)
        assert r.status == 400, (typed, r)


def test_unknown_valid_reference_is_404(it):
    ref = make_ref(UNUSED_SEQ)
    assert it.count("tickets", "ref = %s", (ref,)) == 0
    r = get_ticket(it, ref)
    assert_error(r, 404, "not_found")


def test_ticket_read_needs_credentials_and_scope(it, report):
    ref, _ = report
    r = get_ticket(it, ref, token=None)
    assert_error(r, 401, "unauthorized")
    r = get_ticket(it, ref, client="feeder")  # scope `reports` only
    assert_error(r, 403, "forbidden")
    r = get_ticket(it, ref, client="desk")  # `tickets:read:all`
    assert r.status == 200, r
    r = get_ticket(it, ref, client="ops")  # `*`
    assert r.status == 200, r


def test_tickets_read_reads_only_the_clients_own_tickets(it, report):
    """Issue 13, finding 16: references are sequential, so `tickets:read` alone must not open
    every ticket. Another client's ticket answers exactly as a reference nobody holds."""
    ref, never = report  # filed by "portal"
    assert get_ticket(it, ref, client="portal").status == 200
    theirs = get_ticket(it, ref, client="portal2")
    assert_error(theirs, 404, "not_found", "ref")
    # A reference nobody holds, near the attacked one (references are sequential).
    seq = int(ref[2:9])
    nobody = next(make_ref(s, year=int(ref[:2])) for s in range(seq + 1000, seq + 2000)
                  if it.count("tickets", "ref = %s", (make_ref(s, year=int(ref[:2])),)) == 0)
    unknown = get_ticket(it, nobody, client="portal2")
    assert_error(unknown, 404, "not_found", "ref")
    assert theirs.raw == unknown.raw
    def headers(r):
        return sorted((k.lower(), v) for k, v in r.headers if k.lower() != "date")
    assert headers(theirs) == headers(unknown)
    text = theirs.raw.decode("utf-8")
    assert ref not in text and all(v not in text for v in never)
    # Its own ticket it reads; a client scoped wider reads every ticket.
    own = it.report({"channel": "web", "external_id": unique("p2"), "body": ARABIC_BODY},
                    client="portal2")
    assert own.status == 201, own
    assert get_ticket(it, own.json["ticket"], client="portal2").status == 200
    assert get_ticket(it, own.json["ticket"], client="portal").status == 404
    for wider in ("desk", "ops"):  # tickets:read:all, *
        assert get_ticket(it, ref, client=wider).status == 200
        assert get_ticket(it, own.json["ticket"], client=wider).status == 200


def test_no_personal_data_in_the_logs(it, report):
    """wasl_log masks phone numbers, national IDs and e-mail addresses, and no text is logged:
    even at debug level (the fixtures' WASL_LOG_LEVEL) the log holds none of them."""
    ref, never = report
    assert get_ticket(it, ref).status == 200
    log = it.daemon.log_text()
    assert log.strip(), "intake logged nothing at debug level"
    for value in never:
        assert value not in log, f"{value!r} is in intake's log"
