"""The supervisor's wallboard of wasl-desk over HTTP: supervisors only (an agent gets 403 and
nothing changes), its counts follow a ticket from routed to accepted to resolved (and the day's
abandoned calls and survey replies), a debounced `wallboard` event reaches the supervisors'
streams only, one agent's work view, and force-offline withdrawing the agent's offers.
docs/desk.md, "Wallboard"."""


import json

import pytest

from intake_helpers import unique
from test_desk_auth import Desk, Stream, make_offer, desk_db  # noqa: F401 (fixture)


@pytest.fixture
def desk(desk_db, start_desk):  # noqa: F811
    return Desk(start_desk(desk_db), desk_db)


def board(person):
    r = person.call("GET", "/v1/wallboard")
    assert r.status_code == 200, r.text
    return r.json()


def queue_of(b, name="general"):
    return next(q for q in b["queues"] if q["queue"] == name)


def agent_of(b, agent):
    return next(a for a in b["agents"] if a["agent"] == agent)


def test_agents_get_403_and_change_nothing(desk):
    hala = desk.session("hala")
    amal = desk.session("amal")
    assert amal.call("PUT", "/v1/me/presence", {"presence": "available",
                                                "ttl_s": 600}).status_code == 200
    offer, _ = make_offer(desk, "amal")
    r = hala.call("GET", "/v1/wallboard")
    assert r.status_code == 403 and r.json()["error"]["code"] == "supervisors_only", r.text
    r = hala.call("GET", "/v1/agents/amal/tickets")
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_bound", r.text
    r = hala.call("POST", "/v1/agents/amal/force-offline")
    assert r.status_code == 403, r.text
    r = hala.call("POST", "/v1/agents/hala/force-offline")
    assert r.status_code == 403, r.text
    assert desk.scalar("SELECT state FROM offers WHERE id = %s", (offer,)) == "offered"
    assert desk.scalar("SELECT presence FROM agents WHERE id = 'amal'") == "available"
    # Her own work she may see; a supervisor anyone's; nobody's is 404.
    mine = amal.call("GET", "/v1/agents/amal/tickets")
    assert mine.status_code == 200 and [t["offer"] for t in mine.json()["tickets"]] == [offer]
    sara = desk.session("sara")
    assert sara.call("GET", "/v1/agents/amal/tickets").json() == mine.json()
    assert sara.call("GET", "/v1/agents/ghost/tickets").status_code == 404
    assert sara.call("GET", "/v1/agents/Bad%20Id/tickets").status_code == 400
    # The agent API's read of amal's offers (moved from intake): a supervisor may.
    assert sara.call("GET", "/v1/agents/amal/offers").status_code == 200
    assert sara.call("GET", "/v1/agents/amal/nothing").status_code == 404
    # Without the CSRF token a supervisor's force-offline is refused too.
    assert sara.call("POST", "/v1/agents/amal/force-offline", csrf=False).status_code == 403
    assert desk.scalar("SELECT presence FROM agents WHERE id = 'amal'") == "available"


def abandoned_calls(desk):
    """Calls' ends as intake records them (tests/integration/test_intake_calls.py checks that
    intake marks an end by call_abandoned's rule): three calls of queue general marked
    abandoned — one of them with a second marked end, still one call — one marked for another
    queue, and one unmarked end naming general."""
    calls = [  # (event, data, the abandoned_queue of a marked end or None)
        [("call.ivr", {"queue": "general"}, None),
         ("call.ended", {"cause": "abandoned"}, "general")],
        [("call.ended", {}, "general")],
        [("call.ended", {}, "general"), ("call.ended", {}, "general")],
        [("call.ended", {}, "elsewhere")],
        [("call.ended", {"queue": "general", "cause": "normal"}, None)],
    ]
    for events in calls:
        call = unique("call")
        for seq, (event, data, queue) in enumerate(events, 1):
            desk.scalar("INSERT INTO call_events (call_id, seq, event, data, client_id,"
                        " abandoned, abandoned_queue)"
                        " VALUES (%s, %s, %s, %s, 'phone', %s, %s) RETURNING seq",
                        (call, seq, event, json.dumps(data), queue is not None, queue))


def test_counts_follow_a_ticket_and_the_event_reaches_supervisors_only(desk):
    sara, hala, amal = desk.session("sara"), desk.session("hala"), desk.session("amal")
    streams = {"sara": Stream(sara), "hala": Stream(hala)}
    try:
        before = queue_of(board(sara))
        assert board(sara)["day"]["tz"] == "Asia/Riyadh"
        offer, ref = make_offer(desk, "amal")
        streams["sara"].next("wallboard")
        routed = queue_of(board(sara))
        assert routed["waiting"] == before["waiting"] + 1
        assert routed["oldest_wait_s"] is not None and routed["oldest_wait_s"] >= 0
        assert agent_of(board(sara), "amal")["offers"] == 1
        assert amal.call("POST", f"/v1/offers/{offer}/accept").status_code == 200
        streams["sara"].next("wallboard")
        accepted = queue_of(board(sara))
        assert accepted["waiting"] == before["waiting"]
        assert accepted["in_service"] == before["in_service"] + 1
        sla = accepted["sla_first_response"]
        assert sla["met"] == before["sla_first_response"]["met"] + 1 and sla["percent"] == 100
        assert agent_of(board(sara), "amal")["in_service"] == 1
        desk.scalar("SELECT status FROM wasl_tickets_resolve(%s, 'amal', 'answered', 'test',"
                    " 'referred')", (ref,))
        streams["sara"].next("wallboard")
        resolved = queue_of(board(sara))
        assert resolved["in_service"] == before["in_service"]
        # Today's wrap-up codes of the queue (the dispositions supervisors count).
        assert resolved["wrapup"] == {**before["wrapup"],
                                      "referred": before["wrapup"].get("referred", 0) + 1}
        assert resolved["sla_first_response"]["met"] == sla["met"]
        # The day's survey replies and abandoned calls of the queue.
        tid = desk.scalar("SELECT id FROM tickets WHERE ref = %s", (ref,))
        desk.scalar("INSERT INTO csat (ticket_id, score, channel) VALUES (%s, 4, 'sms')", (tid,))
        abandoned_calls(desk)
        later = queue_of(board(sara))
        assert later["csat"] == {"responses": 1, "average": "4.00"}
        # Three calls of the queue were marked abandoned.
        assert later["abandoned_calls"] == before["abandoned_calls"] + 3
        # The agent's stream never carried a wallboard event.
        assert hala.call("PUT", "/v1/me/presence", {"presence": "busy",
                                                    "ttl_s": 60}).status_code == 200
        streams["hala"].next("presence", pred=lambda d: d["agent"] == "hala")
        seen = []
        while not streams["hala"].events.empty():
            seen.append(streams["hala"].events.get_nowait()[0])
        assert "wallboard" not in seen, seen
    finally:
        for s in streams.values():
            s.close()


def test_wallboard_events_are_debounced_to_one_a_second(desk):
    sara = desk.session("sara")
    stream = Stream(sara)
    try:
        make_offer(desk, "hala")
        _, first = stream.next("wallboard")
        for _ in range(5):
            make_offer(desk, "hala")
        _, second = stream.next("wallboard")
        assert second - first >= 0.9
    finally:
        stream.close()


def test_force_offline_withdraws_the_agents_offers(desk):
    amal, sara = desk.session("amal"), desk.session("sara")
    assert amal.call("PUT", "/v1/me/presence", {"presence": "available",
                                                "ttl_s": 600}).status_code == 200
    assert agent_of(board(sara), "amal")["presence"] == "available"
    offer, ref = make_offer(desk, "amal")
    r = sara.call("POST", "/v1/agents/amal/force-offline")
    assert r.status_code == 200, r.text
    assert r.json() == {"agent": "amal", "presence": "offline", "was": "available", "by": "sara"}
    assert desk.scalar("SELECT state FROM offers WHERE id = %s", (offer,)) == "withdrawn"
    assert desk.scalar("SELECT status FROM tickets WHERE ref = %s", (ref,)) == "routed"
    assert amal.call("GET", "/v1/me/offers").json()["offers"] == []
    after = agent_of(board(sara), "amal")
    assert after["presence"] == "offline" and after["offers"] == 0
    assert after["in_state_s"] is not None and after["in_state_s"] < 60
    client = desk.scalar("SELECT data->>'client' FROM agent_events WHERE agent_id = 'amal'"
                         " ORDER BY id DESC LIMIT 1")
    assert client == "desk:force-offline:sara"
    assert sara.call("POST", "/v1/agents/ghost/force-offline").status_code == 404


def test_report_wrapup_counts_as_the_wallboard_does(desk, waslctl):
    """`waslctl report wrapup` and the wallboard's `wrapup` read wasl_tickets_wrapup: the same
    count per queue and code; bad arguments are a usage error."""
    sara = desk.session("sara")
    for code in ("referred", "referred", "duplicate"):
        _, ref = make_offer(desk, "amal")
        desk.scalar("SELECT status FROM wasl_tickets_resolve(%s, 'amal', 'x', 'test', %s)",
                    (ref, code))
    board_codes = queue_of(board(sara))["wrapup"]
    assert board_codes.get("referred", 0) >= 2 and board_codes.get("duplicate", 0) >= 1
    out = waslctl("report", "wrapup", "--days", "1", env={"WASL_PG_URL": desk.db_url})
    assert out.returncode == 0, out.stderr
    rows = {tuple(line.split()[:2]): int(line.split()[2]) for line in out.stdout.splitlines()[1:]}
    for code, n in board_codes.items():
        assert rows[("general", code)] == n, (code, rows)
    assert rows[("general", "(all)")] >= sum(board_codes.values())
    assert waslctl("report", "wrapup", "--days", "0",
                   env={"WASL_PG_URL": desk.db_url}).returncode == 2
