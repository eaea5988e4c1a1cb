"""wasl-desk's two kinds of principal (docs/desk.md, "Security"): a person by the session cookie,
an integration by `Authorization: Bearer` of a client of the clients table with the `agents`
scope — the table intake reads. A token needs no CSRF token (a browser never sends the header on
its own) and acts only for the agents or role it is bound to; a person acts only as themself
whatever the body says; a cookie from a foreign Origin without CSRF is still refused; a wrong
token is intake's 401; a token is rate limited as on intake."""

import json

import pytest
import requests

from conftest import wait_for
from intake_helpers import Client, new_token, unique
from test_desk_auth import Desk, desk, desk_db  # noqa: F401 (fixtures)
from test_desk_tickets import new_ticket, snapshot

APP_HALA, SUPER, NO_SCOPE, SLOW = "app-hala", "app-super", "app-noscope", "app-slow"


@pytest.fixture
def tokens(desk_db, waslctl):
    """Clients of the desk's database: bound to hala; a supervisor; one without the agents
    scope; one allowed 3 requests a second. Their tokens by id."""
    clients = [Client(APP_HALA, "agent_desk", "agents", token=new_token(), act_as="hala",
                      role="agent"),
               Client(SUPER, "agent_desk", "agents", token=new_token(), role="supervisor"),
               Client(NO_SCOPE, "agent_desk", "tickets:read:all", token=new_token()),
               Client(SLOW, "agent_desk", "agents", token=new_token(), act_as="hala",
                      role="agent", rate=3)]
    for c in clients:
        out = waslctl(*c.add_args(), env={"WASL_PG_URL": desk_db})
        assert out.returncode == 0, out.stderr
    return {c.id: c.token for c in clients}


def call(desk, method, path, body=None, token=None, headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    return requests.request(method, desk.url + path, json=body, headers=h, timeout=15)


def offer_to(desk, ref, agent):
    tid = desk.scalar("SELECT id FROM tickets WHERE ref = %s", (ref,))
    return desk.scalar(
        "SELECT offer_id FROM wasl_offers_make(%s::jsonb, 'router-test', 60)",
        (json.dumps([{"ticket_id": tid, "agent": agent, "channel": "sms", "explain": {}}]),))


def error_of(r, status, code, field="-"):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, r.text
    if field != "-":
        assert err["field"] == field, r.text


def test_a_token_acts_for_its_agent_without_csrf(tokens, desk):
    ref = new_ticket(desk)
    offer = offer_to(desk, ref, "hala")
    # No cookie, no CSRF token: the bearer header is the credential.
    r = call(desk, "POST", f"/v1/offers/{offer}/accept", {"agent": "hala"}, tokens[APP_HALA])
    assert r.status_code == 200 and r.json()["assignee"] == "hala", r.text
    r = call(desk, "POST", f"/v1/tickets/{ref}/notes", {"agent": "hala", "text": "called"},
             tokens[APP_HALA])
    assert r.status_code == 200, r.text
    # The history says through which client, as intake's did.
    data = desk.scalar("SELECT data FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id"
                       " WHERE t.ref = %s AND e.kind = 'note' ORDER BY e.id DESC LIMIT 1", (ref,))
    assert data.get("client") == APP_HALA, data
    # A token names its agent: without one it is a 400 naming it; amal is not its agent.
    error_of(call(desk, "POST", f"/v1/tickets/{ref}/notes", {"text": "x"}, tokens[APP_HALA]),
             400, "missing_field", "agent")
    error_of(call(desk, "POST", f"/v1/tickets/{ref}/notes", {"agent": "Amal!", "text": "x"},
                  tokens[APP_HALA]), 400, "invalid_agent", "agent")
    before = snapshot(desk, ref)
    error_of(call(desk, "POST", f"/v1/tickets/{ref}/notes", {"agent": "amal", "text": "x"},
                  tokens[APP_HALA]), 403, "not_bound", "agent")
    assert snapshot(desk, ref) == before


def test_wrong_tokens_and_scopes(tokens, desk):
    ref = new_ticket(desk)
    before = snapshot(desk, ref)
    path, body = f"/v1/tickets/{ref}/notes", {"agent": "hala", "text": "x"}
    for authorization in ("Bearer " + new_token(), "Bearer ", "Basic aGFsYTp4", "hala"):
        r = call(desk, "POST", path, body, headers={"Authorization": authorization})
        error_of(r, 401, "unauthorized", None)
        assert r.headers["Content-Type"].startswith("application/json")
    error_of(call(desk, "POST", path, body, tokens[NO_SCOPE]), 403, "forbidden")
    # Endpoints for people stay for people.
    for method, p in (("GET", "/v1/me"), ("GET", "/v1/events"), ("POST", "/v1/logout")):
        error_of(call(desk, method, p, None, tokens[SUPER]), 403, "people_only", "Authorization")
    assert snapshot(desk, ref) == before


def test_an_authorization_header_ignores_the_cookie(tokens, desk):
    """With an Authorization header the cookie counts for nothing: a bad token next to a good
    session is a 401, not the session's work."""
    hala = desk.session("hala")
    ref = new_ticket(desk)
    r = hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "x"},
                  headers={"Authorization": "Bearer " + new_token()})
    error_of(r, 401, "unauthorized")


def test_a_person_acts_only_as_themself(tokens, desk):
    ref = new_ticket(desk)
    offer = offer_to(desk, ref, "amal")
    hala, sara = desk.session("hala"), desk.session("sara")
    before = snapshot(desk, ref)
    # Naming another agent in the body, even a supervisor: 403 naming agent, nothing changes.
    error_of(hala.call("POST", f"/v1/offers/{offer}/accept", {"agent": "amal"}), 403,
             "not_yourself", "agent")
    error_of(hala.call("POST", f"/v1/tickets/{ref}/notes", {"agent": "amal", "text": "x"}), 403,
             "not_yourself", "agent")
    error_of(sara.call("POST", f"/v1/tickets/{ref}/notes", {"agent": "hala", "text": "x"}), 403,
             "not_yourself", "agent")
    assert snapshot(desk, ref) == before
    # Naming themself is the same as naming no one.
    r = hala.call("POST", f"/v1/tickets/{ref}/notes", {"agent": "hala", "text": "seen"})
    assert r.status_code == 200, r.text


def test_a_cookie_from_another_origin_without_csrf_is_refused(tokens, desk):
    hala = desk.session("hala")
    ref = new_ticket(desk)
    before = snapshot(desk, ref)
    error_of(hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "x"}, csrf=False,
                       headers={"Origin": "https://evil.example"}), 403, "csrf", "Origin")
    error_of(hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "x"}, csrf=False), 403,
             "csrf", "X-CSRF-Token")
    assert snapshot(desk, ref) == before


def test_a_token_is_rate_limited(tokens, desk):
    """rate 3/s: within one second the fourth request is a 429 with Retry-After: 1 (the budget
    is the client's on every edge: the same Redis key as intake's)."""
    def burst():
        return [call(desk, "POST", "/v1/offers/999999/accept", {"agent": "hala"}, tokens[SLOW])
                for _ in range(6)]
    answers = wait_for(lambda: (b := burst()) and any(r.status_code == 429 for r in b) and b, 10,
                       what="a 429 in a burst")
    limited = [r for r in answers if r.status_code == 429]
    error_of(limited[0], 429, "rate_limited")
    assert limited[0].headers["Retry-After"] == "1"
    assert {r.status_code for r in answers} <= {404, 429}


def test_a_token_cannot_reassign(tokens, desk):
    """POST /v1/tickets/{ref}/assign is a person's act (a supervisor signed in): a token —
    even one bound to the supervisor role — gets 403 supervisors_only and nothing changes."""
    ref = new_ticket(desk)
    offer_to(desk, ref, "hala")
    before = snapshot(desk, ref)
    for token in (tokens[APP_HALA], tokens[SUPER]):
        error_of(call(desk, "POST", f"/v1/tickets/{ref}/assign", {"agent": "amal"}, token),
                 403, "supervisors_only")
    assert snapshot(desk, ref) == before


def test_idempotency_key_for_people_and_tokens(tokens, desk):
    """One mechanism for both principals: a person's retried note with its key happens once and
    answers the same; a token's "same" key is its own (keys belong to their principal)."""
    ref = new_ticket(desk)
    hala = desk.session("hala")
    key = {"Idempotency-Key": unique("pk")}

    def notes():
        return desk.scalar("SELECT count(*) FROM ticket_events e JOIN tickets t"
                           " ON t.id = e.ticket_id WHERE t.ref = %s AND e.kind = 'note'", (ref,))
    first = hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "called"}, headers=key)
    again = hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "called"}, headers=key)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert notes() == 1
    error_of(hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "other"}, headers=key), 422,
             "idempotency_key_reused", "Idempotency-Key")
    r = call(desk, "POST", f"/v1/tickets/{ref}/notes", {"agent": "hala", "text": "called"},
             tokens[APP_HALA], headers=key)
    assert r.status_code == 200, r.text
    assert notes() == 2
    error_of(hala.call("POST", f"/v1/tickets/{ref}/notes", {"text": "x"},
                       headers={"Idempotency-Key": "a b"}), 400, "invalid_idempotency_key",
             "Idempotency-Key")
