"""The agent API's authorization and idempotency, attacked from outside (issue 13, findings 3,
17 and 18), on wasl-desk since issue 15: a token bound to one agent tries to act as another —
accept or reject its offer, set it offline, delete it, transfer, resolve, reopen or annotate its
ticket, read its offers and queue — and every attempt is a 403 naming the field while the
database (rows and history) stays exactly as it was; a supervisor reassigns and forces offline;
an agent does its own work; an action retried with its Idempotency-Key — including after the
answer was lost while the commit went through — happens once and answers the same; typed
Arabic-Indic numbers count. Intake answers 404 on every old agent path and changes nothing.
Tickets and offers are written straight into PostgreSQL, so only intake (for the clients and
the database helpers) and the desk run. A person's side (sessions, CSRF, naming another agent)
is in test_desk_tokens.py."""

import json
import threading
import time

import psycopg2
import pytest

from conftest import wait_for
from intake_helpers import (Client, agent_api, assert_error, default_clients, make_ref,
                            new_token, start_intake, unique)  # noqa: F401 (fixtures)

ADMIN, SUPER, APP_A, APP_B, BLANKET = "desk-admin", "desk-super", "app-aisha", "app-badr", "legacy"
# aisha serves case-status, badr complaints; nobody else is bound to either.
AISHA, BADR = "aisha", "badr"


def desk_clients():
    return default_clients() + [
        Client(ADMIN, "ops", "agents", token=new_token(), role="admin"),
        Client(SUPER, "agent_desk", "agents", token=new_token(), role="supervisor"),
        Client(APP_A, "agent_desk", "agents", token=new_token(), act_as=AISHA, role="agent"),
        Client(APP_B, "agent_desk", "agents", token=new_token(), act_as=BADR, role="agent"),
        # The old blanket token: the agents scope and no binding acts for nobody.
        Client(BLANKET, "agent_desk", "agents", token=new_token()),
    ]


_seq = [3000000]


def add_ticket(it, queue, status="routed", assignee=None):
    _seq[0] += 1
    ref = make_ref(_seq[0] + int(time.time() * 1000) % 1000000 * 3)
    tid = it.scalar(
        "INSERT INTO tickets (ref, channel, external_id, status, category, priority, language,"
        " queue, assignee, from_phone, waiting_since, resolved_at)"
        " VALUES (%s, 'web', %s, %s, 'case_inquiry', 'normal', 'ar', %s, %s, '+966551234567',"
        "  now(), CASE WHEN %s IN ('resolved', 'closed') THEN now() END) RETURNING id",
        (ref, unique("az"), status, queue, assignee, status))
    return tid, ref


def add_offer(it, tid, agent):
    return it.scalar("INSERT INTO offers (ticket_id, agent_id, channel, offered_by, expires_at)"
                     " VALUES (%s, %s, 'web', 'test', now() + interval '10 minutes')"
                     " RETURNING id", (tid, agent))


def snapshot(it):
    """Everything an agent action can change: rows and history."""
    return {
        "tickets": it.rows("SELECT id, status, queue, assignee, resolution, reopen_count,"
                           " resolved_at FROM tickets ORDER BY id"),
        "ticket_events": it.rows("SELECT id, kind, actor FROM ticket_events ORDER BY id"),
        "offers": it.rows("SELECT id, state, reason FROM offers ORDER BY id"),
        "agents": it.rows("SELECT id, name, skills, enabled, presence, presence_until,"
                          " wrapup_s, wrapup_until FROM agents ORDER BY id"),
        "agent_events": it.rows("SELECT id, kind FROM agent_events ORDER BY id"),
        "notifications": it.count("notifications"),
        "work": it.count("work"),
    }


@pytest.fixture
def desk(start_intake, start_desk):
    it = agent_api(start_intake(clients=desk_clients()), start_desk)
    for agent, queue in ((AISHA, "case-status"), (BADR, "complaints")):
        r = it.request("PUT", f"/v1/agents/{agent}", {"name": agent.title(),
                                                      "skills": {queue: 3}}, client=ADMIN)
        assert r.status == 201, r.raw
    for agent, app in ((AISHA, APP_A), (BADR, APP_B)):
        r = it.request("PUT", f"/v1/agents/{agent}/presence", {"state": "available",
                                                               "ttl_s": 600}, client=app)
        assert r.status == 200, r.raw
    return it


def test_token_bound_to_a_cannot_act_as_b(desk):
    b_ticket, b_ref = add_ticket(desk, "complaints", "assigned", assignee=BADR)
    waiting, w_ref = add_ticket(desk, "complaints")
    offer = add_offer(desk, waiting, BADR)
    done, done_ref = add_ticket(desk, "complaints", "resolved", assignee=BADR)
    before = snapshot(desk)

    def refused(method, path, body, code, field, client=APP_A):
        r = desk.request(method, path, body, client=client)
        assert_error(r, 403, code, field)

    # Offers: in B's name (not bound), or in A's name on B's offer.
    for action in ("accept", "reject"):
        refused("POST", f"/v1/offers/{offer}/{action}", {"agent": BADR}, "not_bound", "agent")
        refused("POST", f"/v1/offers/{offer}/{action}", {"agent": AISHA}, "not_your_offer",
                "agent")
    # B's presence, B itself.
    for state in ("offline", "available", "away"):
        refused("PUT", f"/v1/agents/{BADR}/presence", {"state": state}, "not_bound", "id")
    refused("DELETE", f"/v1/agents/{BADR}", None, "admin_only", "role")
    refused("PUT", f"/v1/agents/{BADR}", {"name": "B", "skills": {"case-status": 9}},
            "admin_only", "role")
    refused("PUT", f"/v1/agents/{AISHA}", {"name": "A", "skills": {"complaints": 9}},
            "admin_only", "role")  # not even its own skills
    # B's tickets, in A's name (A does not serve complaints) and in B's name.
    actions = [("notes", {"text": "x"}), ("transfer", {"queue": "case-status"}),
               ("resolve", {"resolution": "x"})]
    for ref in (b_ref, w_ref):
        for action, body in actions:
            refused("POST", f"/v1/tickets/{ref}/{action}", dict(body, agent=AISHA),
                    "not_your_ticket", "agent")
            refused("POST", f"/v1/tickets/{ref}/{action}", dict(body, agent=BADR),
                    "not_bound", "agent")
    refused("POST", f"/v1/tickets/{done_ref}/reopen", {"agent": AISHA}, "not_your_ticket", "agent")
    refused("POST", f"/v1/tickets/{done_ref}/reopen", {"agent": BADR}, "not_bound", "agent")
    # Reads: B's offers and queue; the roster shows A alone.
    refused("GET", f"/v1/agents/{BADR}/offers", None, "not_bound", "id")
    refused("GET", f"/v1/agents/{BADR}", None, "not_bound", "id")
    refused("GET", "/v1/queues/complaints/tickets", None, "not_a_member", "queue")
    r = desk.get("/v1/agents", client=APP_A)
    assert r.status == 200 and [a["id"] for a in r.json["agents"]] == [AISHA]
    # The blanket token (scope agents, no binding) acts for nobody.
    refused("POST", f"/v1/offers/{offer}/accept", {"agent": BADR}, "not_bound", "agent",
            client=BLANKET)
    refused("POST", f"/v1/tickets/{b_ref}/notes", {"agent": BADR, "text": "x"}, "not_bound",
            "agent", client=BLANKET)
    refused("PUT", f"/v1/agents/{BADR}/presence", {"state": "offline"}, "not_bound", "id",
            client=BLANKET)
    refused("GET", "/v1/queues/complaints/tickets", None, "not_a_member", "queue",
            client=BLANKET)
    assert desk.get("/v1/agents", client=BLANKET).json["agents"] == []
    # Not one row, not one history event changed.
    assert snapshot(desk) == before


def test_agent_does_its_own_work(desk):
    tid, ref = add_ticket(desk, "complaints")
    offer = add_offer(desk, tid, BADR)
    r = desk.get(f"/v1/agents/{BADR}/offers", client=APP_B)
    assert r.status == 200 and [o["ticket"] for o in r.json["offers"]] == [ref]
    assert desk.get("/v1/queues/complaints/tickets", client=APP_B).status == 200
    r = desk.post(f"/v1/offers/{offer}/accept", {"agent": BADR}, client=APP_B)
    assert r.status == 200 and r.json["assignee"] == BADR, r.raw
    assert desk.post(f"/v1/tickets/{ref}/notes", {"agent": BADR, "text": "called"},
                     client=APP_B).status == 200
    assert desk.post(f"/v1/tickets/{ref}/resolve", {"agent": BADR, "resolution": "done"},
                     client=APP_B).status == 200
    assert desk.post(f"/v1/tickets/{ref}/reopen", {"agent": BADR}, client=APP_B).status == 200
    # An unassigned ticket of A's queue: any member notes, resolves or transfers it.
    _, q_ref = add_ticket(desk, "case-status")
    assert desk.post(f"/v1/tickets/{q_ref}/notes", {"agent": AISHA, "text": "seen"},
                     client=APP_A).status == 200
    assert desk.post(f"/v1/tickets/{q_ref}/transfer", {"agent": AISHA, "queue": "complaints"},
                     client=APP_A).status == 200
    assert desk.ticket(q_ref)["queue"] == "complaints"
    r = desk.request("PUT", f"/v1/agents/{AISHA}/presence", {"state": "offline"}, client=APP_A)
    assert r.status == 200 and r.json["presence"] == "offline"
    kinds = [e["kind"] for e in desk.events(tid)]
    assert kinds == ["offer.accepted", "note", "resolved", "reopened"]
    assert {e["actor"] for e in desk.events(tid)} == {BADR}


def test_supervisor_reassigns_and_forces_offline_admin_manages(desk):
    tid, ref = add_ticket(desk, "complaints", "assigned", assignee=BADR)
    waiting, _ = add_ticket(desk, "complaints")
    offer = add_offer(desk, waiting, BADR)
    # A supervisor does not answer someone else's offer, nor set someone available.
    before = snapshot(desk)
    assert_error(desk.post(f"/v1/offers/{offer}/accept", {"agent": BADR}, client=SUPER), 403,
                 "not_your_offer", "agent")
    assert_error(desk.request("PUT", f"/v1/agents/{BADR}/presence", {"state": "available"},
                              client=SUPER), 403, "offline_only", "state")
    assert_error(desk.request("DELETE", f"/v1/agents/{BADR}", client=SUPER), 403, "admin_only",
                 "role")
    assert snapshot(desk) == before
    # It reassigns B's ticket to another queue and forces B offline (B's live offer goes).
    r = desk.post(f"/v1/tickets/{ref}/transfer", {"agent": BADR, "queue": "case-status",
                                                  "reason": "rebalance"}, client=SUPER)
    assert r.status == 200, r.raw
    t = desk.ticket(ref)
    assert (t["queue"], t["status"], t["assignee"]) == ("case-status", "routed", None)
    ev = [e for e in desk.events(tid) if e["kind"] == "transferred"][0]
    assert ev["data"]["client"] == SUPER  # the history says through which client
    r = desk.request("PUT", f"/v1/agents/{BADR}/presence", {"state": "offline"}, client=SUPER)
    assert r.status == 200 and r.json["presence"] == "offline", r.raw
    assert desk.scalar("SELECT state FROM offers WHERE id = %s", (offer,)) == "withdrawn"
    ev = desk.rows("SELECT data FROM agent_events WHERE agent_id = %s AND kind = 'presence'"
                   " ORDER BY id DESC LIMIT 1", (BADR,))[0]["data"]
    assert ev["to"] == "offline" and ev["client"] == SUPER  # who forced it is on record
    assert desk.get("/v1/queues/complaints/tickets", client=SUPER).status == 200
    assert {a["id"] for a in desk.get("/v1/agents", client=SUPER).json["agents"]} == {AISHA,
                                                                                       BADR}
    # Only the admin manages the roster.
    assert desk.request("DELETE", f"/v1/agents/{BADR}", client=ADMIN).status == 200
    assert desk.scalar("SELECT enabled FROM agents WHERE id = %s", (BADR,)) is False


def note_count(it, tid):
    return it.count("ticket_events", "ticket_id = %s AND kind = 'note'", (tid,))


def test_note_with_idempotency_key_happens_once(desk):
    tid, ref = add_ticket(desk, "case-status")
    key = {"Idempotency-Key": "note-" + unique("k")}
    path = f"/v1/tickets/{ref}/notes"
    first = desk.post(path, {"agent": AISHA, "text": "اتصلت بالمستفيد"}, client=APP_A,
                      headers=key)
    again = desk.post(path, {"agent": AISHA, "text": "اتصلت بالمستفيد"}, client=APP_A,
                      headers=key)
    assert first.status == again.status == 200 and first.raw == again.raw, (first, again)
    assert note_count(desk, tid) == 1
    # The same key for another request is refused; nothing is added.
    assert_error(desk.post(path, {"agent": AISHA, "text": "something else"}, client=APP_A,
                           headers=key), 422, "idempotency_key_reused", "Idempotency-Key")
    # Keys belong to their client: the supervisor's "same" key is its own.
    assert desk.post(path, {"agent": AISHA, "text": "اتصلت بالمستفيد"}, client=SUPER,
                     headers=key).status == 200
    assert note_count(desk, tid) == 2
    # Bounded length and charset.
    for bad in ("x" * 129, "مفتاح", "a b", "a/b"):
        r = desk.post(path, {"agent": AISHA, "text": "x"}, client=APP_A,
                      headers={"Idempotency-Key": bad.encode().decode("latin-1")})
        assert_error(r, 400, "invalid_idempotency_key", "Idempotency-Key")
    assert note_count(desk, tid) == 2
    # A refusal does not consume the key: once allowed, the same key works.
    _, other_ref = add_ticket(desk, "complaints")
    k2 = {"Idempotency-Key": unique("k2")}
    assert_error(desk.post(f"/v1/tickets/{other_ref}/resolve", {"agent": AISHA,
                                                                "resolution": "x"},
                           client=APP_A, headers=k2), 403, "not_your_ticket", "agent")
    assert desk.post(f"/v1/tickets/{other_ref}/resolve", {"agent": BADR, "resolution": "x"},
                     client=APP_B, headers=k2).status == 200


def test_retry_after_a_lost_answer_returns_the_committed_note(start_intake, start_desk):
    """The race of finding 17, on the desk: the ticket row is locked, so the note's transaction
    waits and the client gives up (its answer is lost); the lock goes, the note commits anyway.
    The client's retry with the same key gets the committed reply — and no second note."""
    it = agent_api(start_intake(clients=desk_clients()), start_desk)
    it.scalar("INSERT INTO agents (id, name, skills) VALUES (%s, 'A', '{\"case-status\": 3}')"
              " RETURNING id", (AISHA,))
    tid, ref = add_ticket(it, "case-status", "assigned", assignee=AISHA)
    assert it.get(f"/v1/agents/{AISHA}", client=APP_A).status == 200
    key = {"Idempotency-Key": unique("race")}
    body = {"agent": AISHA, "text": "سأعاود الاتصال"}
    lock = psycopg2.connect(it.db_url)
    try:
        cur = lock.cursor()
        cur.execute("SELECT 1 FROM tickets WHERE id = %s FOR UPDATE", (tid,))
        with pytest.raises(OSError):  # the client's timeout: the answer never arrives
            it.post(f"/v1/tickets/{ref}/notes", body, client=APP_A, headers=key, timeout=1.0)
        assert note_count(it, tid) == 0
    finally:
        lock.rollback()
        lock.close()
    wait_for(lambda: note_count(it, tid) == 1, 10, what="the note committed after the timeout")
    retry = it.post(f"/v1/tickets/{ref}/notes", body, client=APP_A, headers=key)
    assert retry.status == 200, retry
    assert retry.json == {"ticket": ref, "done": "note"}
    assert note_count(it, tid) == 1


def test_offer_accept_retried_with_key_answers_the_same(desk):
    tid, ref = add_ticket(desk, "case-status")
    offer = add_offer(desk, tid, AISHA)
    key = {"Idempotency-Key": unique("acc")}
    first = desk.post(f"/v1/offers/{offer}/accept", {"agent": AISHA}, client=APP_A, headers=key)
    again = desk.post(f"/v1/offers/{offer}/accept", {"agent": AISHA}, client=APP_A, headers=key)
    assert first.status == 200 and again.raw == first.raw, (first, again)
    # Without the key the retry is judged afresh: the offer is closed.
    assert_error(desk.post(f"/v1/offers/{offer}/accept", {"agent": AISHA}, client=APP_A), 409,
                 "offer_closed")
    assert desk.count("ticket_events", "ticket_id = %s AND kind = 'offer.accepted'",
                      (tid,)) == 1


def test_numbers_typed_in_arabic_indic_digits(desk):
    r = desk.request("PUT", "/v1/agents/huda", {"name": "Huda", "skills": {"case-status": "٥"},
                                                "capacity": {"web": "٢", "phone": "١"},
                                                "wrapup_s": "٣٠"}, client=ADMIN)
    assert r.status == 201, r.raw
    assert r.json["wrapup_s"] == 30 and r.json["skills"] == {"case-status": 5}
    row = desk.rows("SELECT wrapup_s, skills, capacity FROM agents WHERE id = 'huda'")[0]
    assert row["wrapup_s"] == 30
    assert row["skills"] == {"case-status": 5} and row["capacity"] == {"web": 2, "phone": 1}
    r = desk.request("PUT", "/v1/agents/huda", {"name": "Huda", "skills": {"case-status": 1},
                                                "wrapup_s": "۴۵"}, client=ADMIN)  # Persian
    assert r.status == 200 and r.json["wrapup_s"] == 45, r.raw
    assert_error(desk.request("PUT", "/v1/agents/huda", {"name": "Huda",
                                                         "skills": {"case-status": "٥x"}},
                              client=ADMIN), 400, "invalid_skills", "skills")
    assert desk.scalar("SELECT wrapup_s FROM agents WHERE id = 'huda'") == 45


def test_put_keeps_what_the_document_leaves_out(desk):
    """One upsert rule for the desk and waslctl (wasl_agents_save): a field the document leaves
    out keeps its value, or takes the default for a new agent. A PUT without "capacity" used to
    reset it to the default, and one without "languages" stored none."""
    r = desk.request("PUT", "/v1/agents/lina", {"name": "Lina", "skills": {"case-status": 2}},
                     client=ADMIN)
    assert r.status == 201, r.raw
    assert r.json["languages"] == ["ar"] and r.json["wrapup_s"] == 30, r.raw
    assert r.json["capacity"] == {"phone": 1, "email": 3, "sms": 3, "web": 3, "api": 3}
    r = desk.request("PUT", "/v1/agents/lina", {"name": "Lina", "skills": {"case-status": 2},
                                                "languages": ["ar", "en"], "wrapup_s": 90,
                                                "capacity": {"web": 7, "phone": 0}},
                     client=ADMIN)
    assert r.status == 200, r.raw
    r = desk.request("PUT", "/v1/agents/lina", {"name": "Lina K.", "skills": {"complaints": 4}},
                     client=ADMIN)
    assert r.status == 200, r.raw
    assert r.json["name"] == "Lina K." and r.json["skills"] == {"complaints": 4}
    assert r.json["capacity"] == {"web": 7, "phone": 0}, r.raw
    assert r.json["languages"] == ["ar", "en"] and r.json["wrapup_s"] == 90, r.raw


def test_intake_answers_404_on_every_old_agent_path(desk):
    """The agent API left intake: with a valid agents-scoped token (and an admin's) every old
    path and method is a 404 there, and nothing changes; the machines' ticket read stays."""
    it = desk.intake
    tid, ref = add_ticket(desk, "complaints", "assigned", assignee=BADR)
    offer = add_offer(desk, tid, BADR)
    before = snapshot(desk)
    calls = [("GET", "/v1/agents", None), ("GET", f"/v1/agents/{BADR}", None),
             ("PUT", f"/v1/agents/{BADR}", {"name": "B", "skills": {"complaints": 1}}),
             ("DELETE", f"/v1/agents/{BADR}", None),
             ("PUT", f"/v1/agents/{BADR}/presence", {"state": "offline"}),
             ("GET", f"/v1/agents/{BADR}/offers", None),
             ("POST", f"/v1/offers/{offer}/accept", {"agent": BADR}),
             ("POST", f"/v1/offers/{offer}/reject", {"agent": BADR}),
             ("GET", "/v1/queues/complaints/tickets", None)]
    calls += [("POST", f"/v1/tickets/{ref}/{action}", dict(body, agent=BADR))
              for action, body in (("notes", {"text": "x"}), ("transfer", {"queue": "x"}),
                                   ("resolve", {"resolution": "x"}), ("reopen", {}))]
    for client in (APP_B, ADMIN):
        for method, path, body in calls:
            r = it.request(method, path, body, client=client)
            assert_error(r, 404, "not_found")
            assert "wasl-desk" in r.error["message"], r
    assert snapshot(desk) == before
    # The same calls are served by the desk; intake keeps the machines' read of a ticket.
    assert desk.get(f"/v1/agents/{BADR}/offers", client=APP_B).status == 200
    assert it.get(f"/v1/tickets/{ref}", client="ops").status == 200
