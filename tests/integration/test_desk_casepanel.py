"""The desk's case panel: GET /v1/tickets/{ref}/case asks wasl-caselookup (over a real bus, a
real worker) about the ticket's case for the agent, only when the ticket carries a verified
party (a case number and the sender's national ID); caselookup audits the lookup naming the
agent (channel "desk", client the agent, the ticket). No party, or no right to read the ticket:
no lookup and no audit row. caselookup gone: "unavailable", and the desk stays up.
docs/desk.md, "Case panel"."""

import pytest

from conftest import wait_for
from test_desk_auth import Desk, desk_db  # noqa: F401 (fixture)
from test_desk_tickets import assign, new_ticket
from browser import browser  # noqa: F401 (fixture)

CASE = "4512345670"
PARTY_ID = "1000000008"
STRANGER_ID = "1000000024"


@pytest.fixture
def stack(desk_db, bus, daemon, start_desk):  # noqa: F811
    """A case with one party, a caselookup worker behind the bus, and a desk asking it."""
    conn_desk = Desk.__new__(Desk)  # only its .scalar, before the desk starts
    conn_desk.db_url = desk_db
    conn_desk.scalar("INSERT INTO courts (code, name_ar, name_en, city_ar, city_en)"
                     " VALUES ('BG-RYD', 'المحكمة الإدارية بالرياض', 'Riyadh Administrative"
                     " Court', 'الرياض', 'Riyadh')")
    circuit = conn_desk.scalar(
        "INSERT INTO circuits (court_id, name_ar, name_en) SELECT id, 'الدائرة الإدارية الثالثة',"
        " 'Third Administrative Circuit' FROM courts WHERE code = 'BG-RYD' RETURNING id")
    cid = conn_desk.scalar(
        "INSERT INTO cases (case_number, circuit_id, subject_ar, subject_en, status, filed_at)"
        " VALUES (%s, %s, 'إلغاء قرار إداري', 'annulment', 'in_hearing',"
        " now() - interval '90 days') RETURNING id", (CASE, circuit))
    conn_desk.scalar("INSERT INTO case_parties (case_id, role, name_ar, national_id)"
                     " VALUES (%s, 'plaintiff', 'سارة العتيبي', %s)", (cid, PARTY_ID))
    conn_desk.scalar("INSERT INTO case_hearings (case_id, starts_at, kind_ar, kind_en)"
                     " VALUES (%s, date_trunc('day', now()) + interval '12 days 6 hours',"
                     " 'جلسة النطق بالحكم', 'pronouncement of judgment')", (cid,))
    worker = daemon("caselookup", env={"WASL_PG_URL": desk_db, "WASL_BUS": bus.endpoint},
                    wait=True)
    wait_for(lambda: worker.get("/readyz")[0] == 200, 10, what="caselookup ready")
    desk = Desk(start_desk(desk_db, env={"WASL_DESK_BUS": bus.endpoint}), desk_db)
    desk.worker = worker
    return desk


def ticket_with(desk, case_number, national_id):
    ref = new_ticket(desk)
    desk.scalar("UPDATE tickets SET case_number = %s, from_national_id = %s WHERE ref = %s",
                (case_number, national_id, ref))
    return ref


def audit(desk, ref):
    return desk.scalar(
        "SELECT coalesce(json_agg(json_build_object('channel', channel, 'client', client,"
        " 'outcome', outcome, 'ticket', ticket_ref, 'case', case_number,"
        " 'verifier', verifier_masked) ORDER BY id), '[]')"
        " FROM case_lookup_audit WHERE ticket_ref = %s", (ref,))


def panel(person, ref):
    r = person.call("GET", f"/v1/tickets/{ref}/case")
    return r.status_code, r.json()


def test_a_verified_party_shows_the_case_and_the_audit_names_the_agent(stack):
    ref = ticket_with(stack, CASE, PARTY_ID)
    hala = assign(stack, ref, "hala")
    status, body = panel(hala, ref)
    assert status == 200, body
    assert body["state"] == "ok", body
    case = body["case"]
    assert case["case_number"] == CASE
    assert case["circuit"] and "الدائرة الإدارية الثالثة" in case["circuit"]
    assert case["status"] == "in_hearing"
    assert case["next_hearing"]["utc"].endswith("Z")
    assert case["next_hearing"]["hijri"]["year"] > 1440
    rows = audit(stack, ref)
    assert len(rows) == 1, rows
    assert rows[0]["channel"] == "desk" and rows[0]["client"] == "hala", rows
    assert rows[0]["outcome"] == "found" and rows[0]["case"] == CASE
    assert PARTY_ID not in rows[0]["verifier"]  # masked, never in clear


def test_someone_elses_case_is_not_found_and_audited(stack):
    ref = ticket_with(stack, CASE, STRANGER_ID)
    hala = assign(stack, ref, "hala")
    status, body = panel(hala, ref)
    assert (status, body) == (200, {"state": "not_found"})
    rows = audit(stack, ref)
    assert [(r["client"], r["outcome"]) for r in rows] == [("hala", "denied")]
    # SIGTERM after lookups: the pooled clients close with the desk, a clean exit.
    assert stack.daemon.stop() == 0


@pytest.mark.parametrize("number, nid", [(None, None), (CASE, None), (None, PARTY_ID),
                                         (CASE, "3000000000"), ("12345", PARTY_ID)])
def test_without_a_verified_party_nothing_is_asked(stack, number, nid):
    ref = ticket_with(stack, number, nid)
    hala = assign(stack, ref, "hala")
    assert panel(hala, ref) == (200, {"state": "no_party"})
    assert audit(stack, ref) == []


def test_an_agent_who_may_not_read_the_ticket_gets_403_and_no_lookup(stack):
    ref = ticket_with(stack, CASE, PARTY_ID)
    assign(stack, ref, "amal")
    hala = stack.session("hala")
    status, body = panel(hala, ref)
    assert status == 403, body
    assert audit(stack, ref) == []
    # An unknown ticket: 404, nothing asked; a malformed reference: 400.
    assert hala.call("GET", "/v1/tickets/0000000000/case").status_code in (400, 404)
    assert hala.call("GET", f"/v1/tickets/{ref}/cases").status_code == 404


def test_caselookup_down_is_unavailable_and_the_desk_stays_up(stack):
    ref = ticket_with(stack, CASE, PARTY_ID)
    hala = assign(stack, ref, "hala")
    stack.worker.kill()
    assert panel(hala, ref) == (200, {"state": "unavailable"})
    assert audit(stack, ref) == []
    assert hala.call("GET", f"/v1/tickets/{ref}").status_code == 200
    assert stack.daemon.get("/healthz")[0] == 200


def test_no_bus_configured_is_unavailable_at_once(desk_db, start_desk):  # noqa: F811
    desk = Desk(start_desk(desk_db), desk_db)
    ref = ticket_with(desk, CASE, PARTY_ID)
    hala = assign(desk, ref, "hala")
    assert panel(hala, ref) == (200, {"state": "unavailable"})
    assert audit(desk, ref) == []


def test_the_console_shows_the_panel_in_hijri_and_gregorian(stack, browser):  # noqa: F811
    """casepanel.js: the opened ticket's case — the number in an LTR isolate, the circuit, the
    next hearing in Umm al-Qura Hijri then Gregorian (Arabic-Indic digits by default); a
    ticket without a party says so. No script error or CSP violation."""
    from test_desk_auth import PASSWORDS
    from test_desk_browser import by_id, page_errors, sign_in
    from selenium.webdriver.common.by import By

    ref = ticket_with(stack, CASE, PARTY_ID)
    other = ticket_with(stack, None, None)
    assign(stack, ref, "hala")
    assign(stack, other, "hala")
    b = browser()
    sign_in(b, stack, PASSWORDS["hala"], agent="hala")

    def open_ticket(r):
        sel = f'#mywork-list [data-ticket="{r}"]'
        b.wait(lambda d: b.driver.find_elements(By.CSS_SELECTOR, sel), what="the ticket")
        b.driver.find_element(By.CSS_SELECTOR, sel).click()
        b.wait(lambda d: by_id(b, "tk-ref").text == r, what="the ticket panel")

    open_ticket(ref)
    b.wait(lambda d: by_id(b, "tk-case-facts").is_displayed(), what="the case panel")
    num = by_id(b, "tk-case-number")
    assert num.tag_name == "bdi" and num.get_attribute("dir") == "ltr" and num.text == CASE
    assert by_id(b, "tk-case-circuit").text == "الدائرة الإدارية الثالثة"
    hijri, greg = by_id(b, "tk-case-hijri").text, by_id(b, "tk-case-gregorian").text
    assert "١٤٤" in hijri and "٢٠٢" not in hijri, hijri  # an Umm al-Qura year, not 202x
    assert "٢٠٢" in greg, greg
    open_ticket(other)
    b.wait(lambda d: by_id(b, "tk-case-state").text.startswith("لا يُستعلم عن القضية"),
           what="the panel saying there is no verified party")
    assert not by_id(b, "tk-case-facts").is_displayed()
    assert page_errors(b) == []
