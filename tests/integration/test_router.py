"""wasl-router end to end against real PostgreSQL: the routing decision with its explanation,
offers with a lease to agents (skills, capacity, presence, timeouts), the agent desk on intake,
two routers at once, SLA escalation and overflow on an injected clock across a restart, and
replay of past decisions against another rules file. Tickets are written straight into
PostgreSQL with their route work row (the classifier's output) so that only the router runs."""

import json
import os
import time
from pathlib import Path

import pytest

from conftest import wait_for
from intake_helpers import (Client, agent_api, default_clients, make_ref, new_token,
                            run_waslctl, start_intake, unique)  # noqa: F401 (fixtures)

WAIT_S = 15
DESK = "desk2"
# WASL_TEST_ROUTER=router-vg runs the daemon through a wrapper in build/bin (e.g. valgrind).
ROUTER = os.environ.get("WASL_TEST_ROUTER", "router")
REPO_RULES = Path(__file__).resolve().parents[2] / "deploy" / "config" / "routing.yaml"

RULES = """
version: 1
auto_answer: false
default_queue: general
calendar:
  utc_offset: "+03:00"
  days: [sun, mon, tue, wed, thu, fri, sat]
  open: "00:00"
  close: "24:00"
escalation:
  supervisor_queue: supervisors
  alert_email: supervisors@example.org
  overflow_queue: general
  overflow_after: {overflow}
  offer_timeout: {offer_timeout}
queues:
  case-status:
    sla:
      urgent: {{first_response: 15m, resolution: 4h}}
      default: {{first_response: 4h, resolution: 3d}}
  complaints:
    sla: {{default: {{first_response: 1d, resolution: 5d}}}}
  general:
    sla: {{default: {{first_response: 4h, resolution: 3d}}}}
  empty:
    sla: {{default: {{first_response: 4h, resolution: 3d}}}}
  supervisors:
    sla: {{default: {{first_response: 15m, resolution: 4h}}}}
rules:
  - name: cases
    match: {{category: case_inquiry}}
    queue: case-status
  - name: nobody-home
    match: {{category: staff_services}}
    queue: empty
  - name: complaints
    match: {{category: complaint}}
    queue: complaints
"""


def rules_file(tmp_path, name="routing.yaml", overflow="1h", offer_timeout="30s", text=None):
    path = tmp_path / name
    path.write_text(text or RULES.format(overflow=overflow, offer_timeout=offer_timeout))
    return path


# Every agent these tests make: the desk client acts for them (it sets their presence and
# answers their offers) and, as admin, manages them.
DESK_AGENTS = ["nora", "sami", "offline-omar", "aisha", "badr", "camel", "hala", "reem", "lina",
               "majed", "ok"] + [f"agent{i}" for i in range(8)]
SAMI_APP = "sami-app"


@pytest.fixture
def desk(start_intake, start_desk):
    """An intake, and the desk on its database serving the agent API (intake_helpers.AgentAPI),
    whose client `desk2` may use it: admin, bound to every test agent; and `sami-app`, bound to
    sami alone."""
    clients = default_clients() + [
        Client(DESK, "agent_desk", "agents,tickets:read", token=new_token(),
               act_as=",".join(DESK_AGENTS), role="admin"),
        Client(SAMI_APP, "agent_desk", "agents", token=new_token(), act_as="sami", role="agent")]
    return agent_api(start_intake(clients=clients), start_desk)


_seq = [1000000]


def add_ticket(it, category="case_inquiry", priority="normal", channel="web", language="ar",
               phone="+966551234567", email=None, auto_submitted=None, received_ago_s=0,
               entities=None):
    """Inserts a classified ticket and its route work row; returns (id, ref)."""
    _seq[0] += 1
    ref = make_ref(_seq[0] + int(time.time() * 1000) % 1000000 * 3)
    tid = it.scalar(
        "INSERT INTO tickets (ref, channel, external_id, status, category, confidence, priority,"
        " language, entities, from_phone, from_email, auto_submitted, received_at)"
        " VALUES (%s, %s, %s, 'classified', %s, 0.9, %s, %s, %s, %s, %s, %s,"
        "  now() - make_interval(secs => %s)) RETURNING id",
        (ref, channel, unique("rt"), category, priority, language,
         json.dumps(entities or {}), phone, email, auto_submitted, received_ago_s))
    it.scalar("INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (%s, 'route', %s)"
              " RETURNING id", (tid, f"ticket:{tid}:route"))
    return tid, ref


def start_router(daemon, it, rules, **env):
    full = {"WASL_PG_URL": it.db_url, "WASL_BUS": "", "WASL_ROUTER_RULES": rules,
            "WASL_ROUTER_SWEEP_MS": 100, "WASL_ROUTER_SWEEP_AGE_MS": 0,
            "WASL_ROUTER_DISPATCH_MS": 100, "WASL_ROUTER_TIMERS_MS": 200,
            "WASL_ROUTER_STAFFING_MS": 200,
            "WASL_ROUTER_STATS_MS": 200}
    full.update(env)
    return daemon(ROUTER, env=full, wait=True)


def add_agent(it, agent_id, skills, capacity=None, languages=("ar",), available=True):
    body = {"name": agent_id.title(), "skills": skills, "languages": list(languages)}
    if capacity:
        body["capacity"] = capacity
    r = it.request("PUT", f"/v1/agents/{agent_id}", body, client=DESK)
    assert r.status in (200, 201), r.raw
    if available:
        presence(it, agent_id, "available")


def presence(it, agent_id, state, ttl_s=600):
    r = it.request("PUT", f"/v1/agents/{agent_id}/presence", {"state": state, "ttl_s": ttl_s},
                   client=DESK)
    assert r.status == 200, r.raw
    return r.json


def live_offer(it, tid):
    rows = it.rows("SELECT * FROM offers WHERE ticket_id = %s AND state = 'offered'", (tid,))
    return rows[0] if rows else None


def routed(it, tid):
    t = it.rows("SELECT * FROM tickets WHERE id = %s", (tid,))[0]
    return t if t["status"] != "classified" else None


DISPATCH_ROUNDS = "wasl_router_dispatch_seconds_count"
TIMER_ROUNDS = "wasl_router_timers_seconds_count"


def after_rounds(routers, metric=DISPATCH_ROUNDS):
    """Returns once every router in `routers` has completed two more rounds (dispatch, or timers
    with TIMER_ROUNDS) than when called: the first may have begun before the caller's change,
    the second began after it. An absence asserted then is the router's decision, not a round
    that has not run yet (a round that fails is not counted, so a failing router times out)."""
    routers = routers if isinstance(routers, list) else [routers]
    start = [r.metrics().get(metric, 0) for r in routers]
    wait_for(lambda: all(r.metrics().get(metric, 0) >= n + 2 for r, n in zip(routers, start)),
             WAIT_S, what=f"two more rounds ({metric})")


def test_decision_persisted_with_explanation_and_ack(desk, daemon, tmp_path):
    router = start_router(daemon, desk, rules_file(tmp_path))
    tid, ref = add_ticket(desk, priority="urgent", entities={"case_number": ["4512345678"]})
    quiet, _ = add_ticket(desk, category="complaint", auto_submitted="auto-replied",
                          received_ago_s=60)
    t = wait_for(lambda: routed(desk, tid), WAIT_S, what="ticket routed")
    assert t["status"] == "routed" and t["queue"] == "case-status"
    assert t["prio_rank"] == 0 and t["route_rule"] == "cases"
    due_s = (t["first_response_due"] - t["routed_at"]).total_seconds()
    assert abs(due_s - 900) < 2, due_s  # urgent case-status: 15 minutes
    assert t["waiting_since"] == t["received_at"]
    ev = [e for e in desk.events(tid) if e["kind"] == "routed"]
    assert len(ev) == 1
    d = ev[0]["data"]
    assert d["rule"] == "cases" and d["queue"] == "case-status"
    assert d["input"]["entities"] == ["case_number"] and d["input"]["category"] == "case_inquiry"
    assert d["sla_s"] == {"first_response": 900, "resolution": 14400}
    assert d["auto_answer"] == "not asked"
    # Its route row was completed: a finished work row is deleted (migration 0027).
    assert desk.count("work", "ticket_id = %s", (tid,)) == 0
    ack = desk.rows("SELECT * FROM notifications WHERE ticket_id = %s", (tid,))
    assert len(ack) == 1
    assert ack[0]["template"] == "ack" and ack[0]["kind"] == "ack"
    assert ack[0]["channel"] == "sms" and ack[0]["recipient"] == "+966551234567"
    assert ack[0]["dedupe_key"] == f"ticket:{tid}:ack" and ack[0]["lang"] == "ar"
    assert ack[0]["params"]["ref"] == ref and ack[0]["params"]["category_label"]
    # An auto-reply is routed but never acknowledged.
    wait_for(lambda: routed(desk, quiet), WAIT_S, what="auto-submitted ticket routed")
    assert desk.count("notifications", "ticket_id = %s", (quiet,)) == 0
    out = desk.waslctl("route", "explain", ref)
    assert out.returncode == 0, out.stderr
    assert "rule cases" in out.stdout and "case-status" in out.stdout
    assert router.alive()


def test_offers_skills_capacity_accept_resolve(desk, daemon, tmp_path):
    add_agent(desk, "nora", {"case-status": 5}, capacity={"web": 1})
    add_agent(desk, "sami", {"complaints": 5}, capacity={"web": 2})
    add_agent(desk, "offline-omar", {"case-status": 9}, available=False)
    router = start_router(daemon, desk, rules_file(tmp_path))
    t1, ref1 = add_ticket(desk, received_ago_s=30)
    t2, ref2 = add_ticket(desk, received_ago_s=10)
    o1 = wait_for(lambda: live_offer(desk, t1), WAIT_S, what="offer of the older ticket")
    assert o1["agent_id"] == "nora"  # skills: only nora serves case-status; omar is offline
    wait_for(lambda: routed(desk, t2), WAIT_S, what="second ticket routed")
    after_rounds(router)
    assert live_offer(desk, t2) is None  # nora's web capacity is 1 (the offer counts)
    ev = [e for e in desk.events(t1) if e["kind"] == "offered"][0]["data"]
    why = {c["agent"]: c.get("excluded") for c in ev["candidates"]}
    assert why["offline-omar"] == "offline" and why["nora"] is None and "sami" not in why
    r = desk.request("GET", "/v1/agents/nora/offers", client=DESK)
    assert r.status == 200 and r.json["offers"][0]["ticket"] == ref1
    r = desk.post(f"/v1/offers/{o1['id']}/accept", {"agent": "sami"}, client=DESK)
    assert r.status == 403 and r.json["error"]["code"] == "not_your_offer"
    r = desk.post(f"/v1/offers/{o1['id']}/accept", {"agent": "nora"}, client=DESK)
    assert r.status == 200, r.raw
    t = desk.ticket(ref1)
    assert t["status"] == "assigned" and t["assignee"] == "nora" and t["first_response_at"]
    r = desk.post(f"/v1/offers/{o1['id']}/accept", {"agent": "nora"}, client=DESK)
    assert r.status == 409 and r.json["error"]["code"] == "offer_closed"
    r = desk.post(f"/v1/tickets/{ref1}/notes", {"agent": "nora", "text": "called back"},
                  client=DESK)
    assert r.status == 200
    r = desk.post(f"/v1/tickets/{ref1}/resolve", {"agent": "sami", "resolution": "x"},
                  client=SAMI_APP)
    assert r.status == 403  # only the assignee (or a supervisor) resolves an assigned ticket
    r = desk.post(f"/v1/tickets/{ref1}/resolve",
                  {"agent": "nora", "resolution": "موعد الجلسة ١٢/١٢"}, client=DESK)
    assert r.status == 200, r.raw
    t = desk.ticket(ref1)
    assert t["status"] == "resolved" and t["resolved_at"]
    notes = {n["template"]: n for n in desk.rows(
        "SELECT * FROM notifications WHERE ticket_id = %s", (t1,))}
    assert notes["resolved"]["dedupe_key"] == f"ticket:{t1}:resolved:1"
    assert notes["resolved"]["params"]["resolution"] == "موعد الجلسة ١٢/١٢"
    assert notes["survey"]["dedupe_key"] == f"ticket:{t1}:survey:1"
    kinds = [e["kind"] for e in desk.events(t1)]
    assert kinds[-4:] == ["offered", "offer.accepted", "note", "resolved"]
    # Wrap-up: nora gets no offer until it ends (30 s by default).
    nora = desk.rows("SELECT * FROM agents WHERE id = 'nora'")[0]
    assert nora["wrapup_until"] is not None
    after_rounds(router)
    assert live_offer(desk, t2) is None
    desk.scalar("UPDATE agents SET wrapup_until = now(), idle_since = now() WHERE id = 'nora'"
                " RETURNING id")
    assert wait_for(lambda: live_offer(desk, t2), WAIT_S)["agent_id"] == "nora"
    # Reopen: routed again, same place in line.
    r = desk.post(f"/v1/tickets/{ref1}/reopen", {"agent": "nora", "reason": "not solved"},
                  client=DESK)
    assert r.status == 200, r.raw
    t = wait_for(lambda: desk.ticket(ref1)["status"] == "routed" and desk.ticket(ref1), WAIT_S)
    assert t["reopen_count"] == 1 and t["waiting_since"] == t["received_at"]
    # Queue view, in offer order.
    r = desk.get("/v1/queues/case-status/tickets", client=DESK)
    assert r.status == 200 and {x["ticket"] for x in r.json["tickets"]} == {ref1, ref2}


def test_offer_timeout_goes_to_next_agent_and_presence_expiry(desk, daemon, tmp_path):
    add_agent(desk, "aisha", {"case-status": 5})
    time.sleep(0.05)
    add_agent(desk, "badr", {"case-status": 5})  # idle for less time than aisha
    router = start_router(daemon, desk, rules_file(tmp_path, offer_timeout="1s"))
    tid, _ = add_ticket(desk)
    first = wait_for(lambda: live_offer(desk, tid), WAIT_S, what="first offer")
    assert first["agent_id"] == "aisha"  # longest idle among equals
    second = wait_for(lambda: (o := live_offer(desk, tid)) and o["id"] != first["id"] and o,
                      WAIT_S, what="second offer")
    assert second["agent_id"] == "badr"
    assert desk.scalar("SELECT state FROM offers WHERE id = %s", (first["id"],)) == "expired"
    assert desk.scalar("SELECT presence FROM agents WHERE id = 'aisha'") == "away"
    kinds = [e["kind"] for e in desk.events(tid)]
    assert "offer.expired" in kinds
    # A rejection goes on too (back to nobody: aisha is away, badr declined).
    r = desk.post(f"/v1/offers/{second['id']}/reject", {"agent": "badr", "reason": "busy"},
                  client=DESK)
    assert r.status == 200, r.raw
    after_rounds(router)
    assert live_offer(desk, tid) is None
    ref = desk.scalar("SELECT ref FROM tickets WHERE id = %s", (tid,))
    out = desk.waslctl("route", "explain", ref)
    assert out.returncode == 0, out.stderr
    assert "offer.expired" in out.stdout and "offer.rejected" in out.stdout
    now = out.stdout.split("now: waiting for an offer")[1]
    assert "aisha" in now and "away" in now and "declined this ticket" in now, out.stdout
    # Presence expiry: the heartbeat stops → offline, the live offer is withdrawn.
    add_agent(desk, "camel", {"case-status": 1})
    third = wait_for(lambda: live_offer(desk, tid), WAIT_S, what="offer to camel")
    assert third["agent_id"] == "camel"
    desk.scalar("UPDATE agents SET presence_until = now() - interval '1 second'"
                " WHERE id = 'camel' RETURNING id")
    wait_for(lambda: desk.scalar("SELECT presence FROM agents WHERE id = 'camel'") == "offline",
             WAIT_S, what="camel offline")
    assert desk.scalar("SELECT state FROM offers WHERE id = %s", (third["id"],)) == "withdrawn"
    after_rounds(router)
    assert live_offer(desk, tid) is None  # never offered to an offline agent


def test_two_routers_never_offer_one_ticket_twice(desk, daemon, tmp_path):
    rules = rules_file(tmp_path)
    for i in range(8):
        add_agent(desk, f"agent{i}", {"case-status": 1 + i % 3}, capacity={"web": 2})
    tids = [add_ticket(desk, received_ago_s=i)[0] for i in range(40)]
    routers = [start_router(daemon, desk, rules), start_router(daemon, desk, rules)]
    wait_for(lambda: desk.count("offers") >= 16, WAIT_S, what="16 offers")
    after_rounds(routers)
    assert desk.count("offers") == 16  # 8 agents × capacity 2, each ticket once
    assert desk.scalar("SELECT count(DISTINCT ticket_id) FROM offers") == 16
    assert desk.scalar("SELECT max(n) FROM (SELECT count(*) n FROM offers"
                       " GROUP BY agent_id) x") == 2
    assert desk.scalar("SELECT count(DISTINCT offered_by) FROM offers") >= 1
    # The oldest tickets were offered first.
    offered = {r["ticket_id"] for r in desk.rows("SELECT ticket_id FROM offers")}
    assert offered == set(tids[-16:])


def test_escalation_on_injected_clock_survives_restart(desk, daemon, tmp_path):
    rules = rules_file(tmp_path)
    router = start_router(daemon, desk, rules)
    tid, ref = add_ticket(desk, priority="high", phone=None, email="x@example.org")
    wait_for(lambda: routed(desk, tid), WAIT_S, what="ticket routed")
    after_rounds(router, TIMER_ROUNDS)
    assert desk.ticket(ref)["escalated_at"] is None
    router.stop()
    # Restarted 5 hours later (first response due after 4 h): the timer is in PostgreSQL.
    later = start_router(daemon, desk, rules, WASL_ROUTER_CLOCK_OFFSET_S=5 * 3600)
    t = wait_for(lambda: desk.ticket(ref)["escalated_at"] and desk.ticket(ref), WAIT_S,
                 what="escalation")
    assert t["queue"] == "supervisors" and t["priority"] == "urgent" and t["prio_rank"] == 0
    ev = [e for e in desk.events(tid) if e["kind"] == "escalated"][0]["data"]
    assert ev["breach"] == "first_response" and ev["from"] == "case-status"
    alert = desk.rows("SELECT * FROM notifications WHERE ticket_id = %s AND kind = 'alert'",
                      (tid,))
    assert len(alert) == 1
    assert alert[0]["recipient"] == "supervisors@example.org" and alert[0]["channel"] == "email"
    assert alert[0]["template"] == "sla_alert"
    assert alert[0]["dedupe_key"] == f"ticket:{tid}:sla:case-status"
    assert set(alert[0]["params"]) == {"ref", "queue", "priority", "due"}
    after_rounds(later, TIMER_ROUNDS)
    assert desk.count("notifications", "kind = 'alert'") == 1  # once


def test_overflow_when_no_agent_present(desk, daemon, tmp_path):
    start_router(daemon, desk, rules_file(tmp_path, overflow="1s"))
    tid, ref = add_ticket(desk, category="staff_services")
    t = wait_for(lambda: desk.ticket(ref)["overflowed_at"] and desk.ticket(ref), WAIT_S,
                 what="overflow")
    assert t["queue"] == "general"
    ev = [e for e in desk.events(tid) if e["kind"] == "overflowed"][0]["data"]
    assert ev["from"] == "empty" and ev["to"] == "general"


def test_order_priority_deadline_age(desk, daemon, tmp_path):
    start_router(daemon, desk, rules_file(tmp_path))
    old_normal, _ = add_ticket(desk, received_ago_s=3000)
    new_urgent, _ = add_ticket(desk, priority="urgent", received_ago_s=5)
    mid_normal, _ = add_ticket(desk, received_ago_s=1000)
    for tid in (old_normal, new_urgent, mid_normal):
        wait_for(lambda: routed(desk, tid), WAIT_S)
    # Same priority and SLA: the deadline is set at routing, the older place wins on ties.
    r = desk.get("/v1/queues/case-status/tickets", client=DESK)
    order = [x["ticket"] for x in r.json["tickets"]]
    refs = {desk.scalar("SELECT ref FROM tickets WHERE id = %s", (t,)): t
            for t in (old_normal, new_urgent, mid_normal)}
    assert refs[order[0]] == new_urgent
    add_agent(desk, "hala", {"case-status": 3}, capacity={"web": 1})
    assert wait_for(lambda: live_offer(desk, new_urgent), WAIT_S)["agent_id"] == "hala"


def test_replay_shows_the_difference(desk, daemon, tmp_path):
    router = start_router(daemon, desk, rules_file(tmp_path))
    tids = [add_ticket(desk, category=c)[0] for c in ("case_inquiry", "complaint", "complaint")]
    for tid in tids:
        wait_for(lambda: routed(desk, tid), WAIT_S)
    router.stop()
    alt = RULES.format(overflow="1h", offer_timeout="30s").replace(
        "match: {category: complaint}\n    queue: complaints",
        "match: {category: complaint}\n    queue: general\n    priority: high")
    alt_path = rules_file(tmp_path, name="alt.yaml", text=alt)
    before = desk.rows("SELECT id, queue, priority FROM tickets ORDER BY id")
    out = desk.waslctl("route", "replay", "--since", "2000-01-01", "--config", str(alt_path))
    assert out.returncode == 0, out.stderr
    assert "3 tickets" in out.stdout and "2 would change" in out.stdout, out.stdout
    assert "queue complaints → general" in out.stdout
    assert desk.rows("SELECT id, queue, priority FROM tickets ORDER BY id") == before
    same = desk.waslctl("route", "replay", "--since", "2000-01-01", "--config",
                        str(rules_file(tmp_path)))
    assert "0 would change" in same.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - name: x\n    queue: [\n")
    out = desk.waslctl("route", "replay", "--since", "2000-01-01", "--config", str(bad))
    assert out.returncode == 2 and "bad.yaml:" in out.stderr


def test_bad_rules_file_refused_with_line(daemon, fresh_db, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.format(overflow="1h", offer_timeout="30s").replace(
        "queue: complaints\n", "queue: nowhere\n"))
    d = daemon("router", env={"WASL_PG_URL": fresh_db, "WASL_BUS": "",
                              "WASL_ROUTER_RULES": bad}, admin=False)
    d.proc.wait(10)
    assert d.returncode == 2
    assert "bad.yaml:" in d.log_text() and "nowhere" in d.log_text()


def test_waslctl_agent_add_list_remove(desk):
    out = desk.waslctl("agent", "add", "fahad", "--name", "Fahad", "--skills",
                       "case-status:7,general", "--languages", "ar,en", "--capacity",
                       "phone:1,email:4")
    assert out.returncode == 0 and "added" in out.stdout, out.stderr
    a = desk.rows("SELECT * FROM agents WHERE id = 'fahad'")[0]
    assert a["skills"] == {"case-status": 7, "general": 5} and a["languages"] == ["ar", "en"]
    out = desk.waslctl("agent", "list")
    assert "fahad" in out.stdout
    assert desk.waslctl("agent", "add", "fahad", "--name", "F", "--skills", "x:99").returncode == 2
    assert desk.waslctl("agent", "remove", "fahad").returncode == 0
    assert desk.scalar("SELECT enabled FROM agents WHERE id = 'fahad'") is False
    assert desk.waslctl("agent", "remove", "fahad").returncode == 1


ROUTE_IN_OFFSET = 4   # stage "route" is index 1: producers push to base+4
NOTIFY_OUT_OFFSET = 7  # stage "notify" is index 2: consumers pull from base+7


def test_bus_nudge_routes_and_requests_the_ack(desk, daemon, tmp_path, bus):
    import msgpack
    import zmq
    ctx = zmq.Context()
    try:
        notify = ctx.socket(zmq.PULL)
        notify.connect(f"tcp://127.0.0.1:{bus.base_port + NOTIFY_OUT_OFFSET}")
        push = ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{bus.base_port + ROUTE_IN_OFFSET}")
        router = start_router(daemon, desk, rules_file(tmp_path), WASL_BUS=bus.endpoint,
                              WASL_ROUTER_SWEEP_MS=600000)
        wait_for(lambda: bus.metrics().get('wasl_bus_peers{stage="route",side="out"}') == 1
                 and bus.metrics().get('wasl_bus_peers{stage="notify",side="out"}') == 1, 10,
                 what="router and tap on the bus")
        # The sweep runs once at start, before the loop's first dispatch round (and not again
        # for 10 minutes): make the ticket after that round, so only the nudge can route it.
        wait_for(lambda: router.metrics().get(DISPATCH_ROUNDS, 0) >= 1, WAIT_S,
                 what="the first loop (sweep, then dispatch)")
        tid, ref = add_ticket(desk, category="complaint")
        wid = desk.scalar("SELECT id FROM work WHERE ticket_id = %s", (tid,))
        push.send(msgpack.packb({"type": "nope", "v": 1}))
        push.send(msgpack.packb({"type": "ticket.classified", "v": 2, "work_id": wid}))
        t = wait_for(lambda: routed(desk, tid), WAIT_S, what="routed by the nudge")
        assert t["queue"] == "complaints"
        assert notify.poll(WAIT_S * 1000)
        msg = msgpack.unpackb(notify.recv(), raw=False)
        # The outbox row, nothing else: the notifier reads the rest from it.
        ack = desk.scalar("SELECT id FROM notifications WHERE ticket_id = %s AND kind = 'ack'"
                          " AND channel = 'sms'", (tid,))
        assert msg == {"type": "notify.requested", "v": 2, "notification_id": ack}
        assert router.metrics().get("wasl_router_bad_messages_total") == 1
        wait_for(lambda: router.metrics().get('wasl_router_queue_depth{queue="complaints"}') == 1,
                 WAIT_S, what="queue depth gauge")
    finally:
        ctx.destroy(linger=0)


def test_callback_keeps_its_place_and_sighup_reload(desk, daemon, tmp_path):
    import signal
    rules = rules_file(tmp_path)
    router = start_router(daemon, desk, rules)
    tid, ref = add_ticket(desk, channel="phone")
    # The abandoned call began 20 minutes before its callback ticket was made.
    desk.scalar("INSERT INTO call_events (call_id, seq, event, ticket_id, received_at) VALUES"
                " ('c-1', 0, 'start', NULL, now() - interval '20 minutes'),"
                " ('c-1', 1, 'end', %s, now()) RETURNING 1", (tid,))
    t = wait_for(lambda: routed(desk, tid), WAIT_S, what="callback routed")
    assert (t["received_at"] - t["waiting_since"]).total_seconds() > 1100
    # A bad file on SIGHUP is refused and the current rules stay.
    rules.write_text("version: 1\nqueues: [\n")
    router.proc.send_signal(signal.SIGHUP)
    router.wait_log("reload refused")
    assert router.alive()
    tid2, _ = add_ticket(desk, category="complaint")
    assert wait_for(lambda: routed(desk, tid2), WAIT_S)["queue"] == "complaints"


@pytest.fixture(scope="module")
def model(tmp_path_factory, postgres, redis_server):
    """A classifier model trained on the project's training data."""
    import subprocess
    from conftest import REPO, base_env, binary_path
    path = tmp_path_factory.mktemp("model") / "model.bin"
    out = subprocess.run([str(binary_path("waslctl")), "classifier", "train",
                          str(REPO / "data" / "classifier" / "train.tsv"), "-o", str(path),
                          "--version", "rt-1"], capture_output=True, text=True, timeout=300,
                         env=base_env(postgres, redis_server))
    assert out.returncode == 0, out.stderr
    return path


def test_report_flows_from_intake_through_classifier_to_an_agent(desk, daemon, model, tmp_path):
    daemon("classifier", env={"WASL_PG_URL": desk.db_url, "WASL_CLASSIFIER_MODEL": model,
                              "WASL_BUS": "", "WASL_CLASSIFIER_SWEEP_MS": 100,
                              "WASL_CLASSIFIER_SWEEP_AGE_MS": 0}, wait=True)
    start_router(daemon, desk, str(REPO_RULES))
    add_agent(desk, "reem", {"case-status": 4})
    r = desk.report(body={"channel": "web", "external_id": unique("chain"),
                          "body": "متى موعد الجلسة القادمة لقضيتي رقم ٤٥١٢٣٤٥٦٧٨؟",
                          "from": {"phone": "0551234567"}})
    assert r.status == 201, r.raw
    ref = r.json["ticket"]
    tid = desk.ticket(ref)["id"]
    offer = wait_for(lambda: live_offer(desk, tid), WAIT_S, what="offer to reem")
    t = desk.ticket(ref)
    assert t["queue"] == "case-status" and t["route_rule"] in ("case-status-auto", "case-status")
    assert offer["agent_id"] == "reem"
    routed_ev = [e for e in desk.events(tid) if e["kind"] == "routed"][0]["data"]
    assert routed_ev["rule"] == "case-status-auto"
    # No caselookup in this test and no case data: the inquiry goes to an agent, saying why.
    assert routed_ev["auto_answer"].startswith("not answered")
    assert desk.count("notifications", "ticket_id = %s AND template = 'ack'", (tid,)) == 1


def test_agent_api_refuses_bad_input(desk):
    def err(r):
        return r.status, (r.json or {}).get("error", {}).get("code")
    assert err(desk.request("PUT", "/v1/agents/Bad_Id", {"name": "x"}, client=DESK)) == (
        400, "invalid_agent")
    assert err(desk.request("PUT", "/v1/agents/ok", {"name": "x", "skills": {}},
                            client=DESK)) == (400, "invalid_skills")
    assert err(desk.request("PUT", "/v1/agents/ok", {"name": "x", "skills": {"general": 11}},
                            client=DESK)) == (400, "invalid_skills")
    assert err(desk.request("PUT", "/v1/agents/ok", {"name": "x", "skills": {"general": 1},
                                                     "capacity": {"fax": 1}},
                            client=DESK)) == (400, "invalid_capacity")
    assert err(desk.request("PUT", "/v1/agents/ok", {"name": "x", "skills": {"general": 1},
                                                     "languages": ["fr"]},
                            client=DESK)) == (400, "invalid_languages")
    r = desk.request("PUT", "/v1/agents/ok", {"name": "Ok", "skills": {"general": 2}},
                     client=DESK)
    assert r.status == 201 and r.json["presence"] == "offline"
    assert desk.request("PUT", "/v1/agents/ok", {"name": "Ok", "skills": {"general": 3}},
                        client=DESK).status == 200
    assert err(desk.request("PUT", "/v1/agents/ok/presence", {"state": "asleep"},
                            client=DESK)) == (400, "invalid_state")
    assert err(desk.request("PUT", "/v1/agents/ok/presence", {"state": "available",
                                                              "ttl_s": 5},
                            client=DESK))[0] == 400
    assert err(desk.request("PUT", "/v1/agents/nobody/presence", {"state": "available"},
                            client=DESK)) == (404, "not_found")
    assert err(desk.post("/v1/offers/abc/accept", {"agent": "ok"}, client=DESK)) == (
        400, "invalid_offer")
    assert err(desk.post("/v1/offers/99999/accept", {"agent": "ok"}, client=DESK)) == (
        404, "not_found")
    assert err(desk.post("/v1/offers/1/accept", {}, client=DESK))[0] == 400
    assert err(desk.post("/v1/tickets/123/resolve", {"agent": "ok", "resolution": "x"},
                         client=DESK)) == (400, "invalid_reference")
    ref = make_ref(42)
    assert err(desk.post(f"/v1/tickets/{ref}/resolve", {"agent": "ok", "resolution": "x"},
                         client=DESK)) == (404, "not_found")
    assert err(desk.post(f"/v1/tickets/{ref}/resolve", {"agent": "ghost", "resolution": "x"},
                         client=DESK))[0] == 404
    assert err(desk.post(f"/v1/tickets/{ref}/fly", {"agent": "ok"}, client=DESK))[0] == 404
    assert desk.get("/v1/queues/general/tickets", client="portal").status == 403
    assert desk.get("/v1/agents", client=DESK).json["agents"][0]["id"] == "ok"
    assert desk.request("DELETE", "/v1/agents/ok", client=DESK).status == 200
    assert desk.request("DELETE", "/v1/agents/ok", client=DESK).status == 404
    # The ticket view is still there for tickets:read.
    assert desk.get(f"/v1/tickets/{ref}", client="portal").status == 404


def test_blocked_head_of_line_does_not_starve_the_rest(desk, daemon, tmp_path):
    add_agent(desk, "lina", {"case-status": 5}, capacity={"web": 1, "phone": 0})
    router = start_router(daemon, desk, rules_file(tmp_path), WASL_ROUTER_DISPATCH_MAX=1)
    call, _ = add_ticket(desk, channel="phone", priority="urgent", received_ago_s=100)
    web, _ = add_ticket(desk, channel="web", priority="low", received_ago_s=1)
    assert wait_for(lambda: live_offer(desk, web), WAIT_S)["agent_id"] == "lina"
    after_rounds(router)
    assert live_offer(desk, call) is None


def test_agents_all_at_capacity_is_a_quiet_round(desk, daemon, tmp_path):
    """Every available agent full on every channel: nobody can take anything, and the round
    says so without failing (an empty list of what can be taken was once sent as "{", which
    PostgreSQL refuses: every round failed and the router reported itself not ready)."""
    add_agent(desk, "hala", {"case-status": 3},
              capacity={c: 0 for c in ("web", "api", "email", "sms", "phone")})
    router = start_router(daemon, desk, rules_file(tmp_path))
    tid, _ = add_ticket(desk)
    wait_for(lambda: routed(desk, tid), WAIT_S, what="ticket routed")
    after_rounds(router)
    assert live_offer(desk, tid) is None
    assert router.get("/readyz")[0] == 200


def test_resolution_breach_escalates_an_assigned_ticket(desk, daemon, tmp_path):
    rules = rules_file(tmp_path)
    add_agent(desk, "majed", {"complaints": 5})
    router = start_router(daemon, desk, rules)
    tid, ref = add_ticket(desk, category="complaint", priority="low")
    offer = wait_for(lambda: live_offer(desk, tid), WAIT_S)
    assert desk.post(f"/v1/offers/{offer['id']}/accept", {"agent": "majed"},
                     client=DESK).status == 200
    router.stop()
    start_router(daemon, desk, rules, WASL_ROUTER_CLOCK_OFFSET_S=6 * 86400)  # past 5 d
    t = wait_for(lambda: desk.ticket(ref)["escalated_at"] and desk.ticket(ref), WAIT_S)
    assert t["queue"] == "supervisors" and t["priority"] == "normal"  # one step up from low
    assert t["status"] == "assigned" and t["assignee"] == "majed"  # the work stays with majed
    ev = [e for e in desk.events(tid) if e["kind"] == "escalated"][0]["data"]
    assert ev["breach"] == "resolution"


def _luhn_id(prefix):
    """A Luhn-valid national ID starting with the 9 digits of `prefix` (as caselookup checks)."""
    for last in "0123456789":
        d = prefix + last
        s = 0
        for i, ch in enumerate(d):
            v = int(ch) * (2 if i % 2 == 0 else 1)
            s += v // 10 + v % 10
        if s % 10 == 0:
            return d
    raise AssertionError(prefix)


def test_auto_answer_backlog_asks_caselookup_once_per_ticket(desk, daemon, tmp_path, bus,
                                                             postgres, redis_server):
    """A backlog of 200 case inquiries routed with caselookup on the bus: the router asks for a
    whole batch at once, every ticket gets its auto-answer outcome (the parties' answered at
    their phone on file, the strangers' not, saying why; every ticket routed alike) and caselookup audits exactly one lookup per
    ticket: none asked twice, none forgotten."""
    from conftest import base_env
    env = base_env(postgres, redis_server)
    env["WASL_PG_URL"] = desk.db_url
    seeded = run_waslctl(env, "seed-cases", "3", "--seed", "11")
    assert seeded.returncode == 0, seeded.stderr
    case, party = desk.rows(
        "SELECT c.case_number, p.national_id FROM cases c JOIN case_parties p"
        " ON p.case_id = c.id WHERE p.national_id IS NOT NULL AND p.phone IS NOT NULL"
        " ORDER BY c.id, p.id LIMIT 1")[0] \
        .values()
    daemon("caselookup", env={"WASL_PG_URL": desk.db_url.replace("postgres@", "wasl_caselookup@"),
                              "WASL_BUS": bus.endpoint, "WASL_CASELOOKUP_CASE_MAX_FAILURES": 1000},
           wait=True)
    n_party, n_stranger = 160, 40
    tickets = {}
    base = int(time.time() * 1000) % 10**6
    for i in range(n_party + n_stranger):
        nid = party if i < n_party else _luhn_id(f"19{(base * 100 + i) % 10**7:07d}")
        _seq[0] += 1
        ref = make_ref(_seq[0] + base * 3)
        tid = desk.scalar(
            "INSERT INTO tickets (ref, channel, external_id, status, category, confidence,"
            " priority, language, case_number, from_national_id, from_phone, entities)"
            " VALUES (%s, 'api', %s, 'classified', 'case_inquiry', 0.9, 'normal', 'ar', %s, %s,"
            " %s, %s) RETURNING id",
            (ref, unique("aa"), case, nid, f"+9665{(base + i) % 10**8:08d}",
             json.dumps({"case_number": [case]})))
        desk.scalar("INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (%s, 'route', %s)"
                    " RETURNING id", (tid, f"ticket:{tid}:route"))
        tickets[tid] = i < n_party
    rules = tmp_path / "routing.yaml"
    rules.write_text(REPO_RULES.read_text(encoding="utf-8").replace(
        "\nauto_answer: false", "\nauto_answer: true", 1), encoding="utf-8")
    router = start_router(daemon, desk, str(rules), WASL_BUS=bus.endpoint,
                          WASL_ROUTER_AUTO_ANSWER="true")
    ids = list(tickets)
    wait_for(lambda: desk.count("tickets", "id = ANY(%s) AND status IN ('resolved', 'routed')",
                                (ids,)) == len(ids), 60, what="every inquiry routed or answered")
    rows = desk.rows("SELECT t.id, t.status, t.queue, e.data->>'auto_answer' AS why,"
                     " (SELECT count(*) FROM ticket_events a WHERE a.ticket_id = t.id"
                     "  AND a.kind = 'auto_answered') AS answered"
                     " FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id"
                     "  AND e.kind = 'routed' WHERE t.id = ANY(%s)", (ids,))
    assert len(rows) == len(ids)
    for r in rows:
        if tickets[r["id"]]:
            # Answered to the party's phone on file; the ticket itself routed like the rest.
            assert (r["status"], r["why"], r["answered"]) == \
                ("routed", "answered to the party's contact on file", 1), r
        else:
            assert r["status"] == "routed" and r["answered"] == 0, r
            assert r["why"] == "not answered: not verified as a party of this case", r
    assert desk.count("notifications", "ticket_id = ANY(%s) AND kind = 'case_answer'",
                      (ids,)) == n_party
    # One audit row per ticket, each for its own request: nobody asked twice.
    audit = desk.rows("SELECT count(*) AS n, count(DISTINCT request_id) AS ids"
                      " FROM case_lookup_audit WHERE request_id LIKE 'router-%%'")[0]
    assert (audit["n"], audit["ids"]) == (len(ids), len(ids))
    m = router.metrics()
    assert m.get("wasl_router_auto_answered_total") == n_party
    assert m.get("wasl_router_auto_answer_declined_total") == n_stranger
    assert not m.get("wasl_rpc_retries_total") and not m.get("wasl_rpc_failures_total")


def add_backlog(it, n, status="classified", queue=None, channel="web"):
    """n tickets in one statement (refs 9xxxxxxxxx): classified with their route work rows, or
    already waiting (status 'routed') in `queue`. Returns their ids."""
    base = 9000000000 + int(time.time() * 1000) % 100000000 * 10
    rows = it.rows(
        "WITH t AS (INSERT INTO tickets (ref, channel, external_id, status, category, confidence,"
        "  priority, language, from_phone, queue, prio_rank, first_response_due, resolution_due,"
        "  waiting_since)"
        " SELECT (%s + g)::text, %s, %s || g, %s, 'case_inquiry', 0.9, 'normal', 'ar',"
        "  '+966551234567', %s, CASE WHEN %s = 'routed' THEN 2 END,"
        "  CASE WHEN %s = 'routed' THEN now() + interval '1 day' END,"
        "  CASE WHEN %s = 'routed' THEN now() + interval '3 days' END,"
        "  CASE WHEN %s = 'routed' THEN now() END"
        " FROM generate_series(1, %s) g RETURNING id, status)"
        " INSERT INTO work (ticket_id, stage, dedupe_key, state)"
        " SELECT id, 'route', 'ticket:' || id || ':route',"
        "  CASE WHEN status = 'routed' THEN 'done' ELSE 'pending' END FROM t RETURNING ticket_id",
        (base, channel, unique("bl"), status, queue, status, status, status, status, n))
    return [r["ticket_id"] for r in rows]


def test_two_routers_share_a_backlog_each_ticket_routed_once(desk, daemon, tmp_path):
    """Two routers started on an empty ledger, then a backlog at once: both sweep it (SKIP
    LOCKED), every ticket is routed exactly once (one 'routed' event, one acknowledgement),
    and the routers' counts add up to the backlog."""
    rules = rules_file(tmp_path)
    routers = [start_router(daemon, desk, rules, WASL_ROUTER_BATCH=16) for _ in range(2)]
    tids = add_backlog(desk, 400)
    wait_for(lambda: desk.count("work", "stage = 'route' AND state <> 'done'") == 0, WAIT_S,
             what="backlog routed")
    events = desk.rows("SELECT ticket_id, count(*) AS n FROM ticket_events WHERE kind = 'routed'"
                       " AND ticket_id = ANY(%s) GROUP BY ticket_id", (tids,))
    assert len(events) == len(tids) and {e["n"] for e in events} == {1}
    assert desk.scalar("SELECT count(*) FROM notifications WHERE ticket_id = ANY(%s)"
                       " AND kind = 'ack'", (tids,)) == len(tids)
    counts = [int(r.metrics().get("wasl_router_routed_total", 0)) for r in routers]
    assert sum(counts) == len(tids), counts
    assert all(r.alive() for r in routers)



def test_decision_ack_and_offer_in_one_commit(desk, daemon, tmp_path):
    """A router that has caught up (a batch short of WASL_ROUTER_BATCH) commits the batch's
    decisions, their acknowledgements and the offers they make possible in one transaction: the
    'routed' event, the ack, the offer and its 'offered' event carry one transaction start
    time. The periodic dispatch round
    is a minute away, so only the batch's own commit can have made the offer."""
    add_agent(desk, "reem", {"case-status": 5}, capacity={"web": 1})
    router = start_router(daemon, desk, rules_file(tmp_path), WASL_ROUTER_DISPATCH_MS=60000)
    wait_for(lambda: router.metrics().get("wasl_router_dispatch_seconds_count", 0) >= 1, WAIT_S,
             what="the router's first dispatch round")
    tid, _ = add_ticket(desk)
    offer = wait_for(lambda: live_offer(desk, tid), WAIT_S, what="offer made")
    assert offer["agent_id"] == "reem"
    # now() is the transaction's start: one instant for every row written in one transaction
    # (the offer's savepoint included), another for a dispatch round of its own.
    starts = desk.rows(
        "SELECT kind AS what, at FROM ticket_events WHERE ticket_id = %s"
        "  AND kind IN ('routed', 'offered')"
        " UNION ALL SELECT 'ack', next_attempt_at FROM notifications WHERE ticket_id = %s"
        " UNION ALL SELECT 'offer', offered_at FROM offers WHERE ticket_id = %s",
        (tid, tid, tid))
    assert sorted(r["what"] for r in starts) == ["ack", "offer", "offered", "routed"], starts
    assert len({r["at"] for r in starts}) == 1, starts
    assert int(router.metrics().get("wasl_router_offers_made_total", 0)) == 1
    assert router.alive()


def test_lost_lease_commits_no_decision_ack_or_offer(desk, daemon, tmp_path, bus):
    """The fence holds the whole commit: caselookup is silent (nobody serves it on the bus), so
    the first attempt's lookup (700 ms, one retry) outlives its 1 s lease, and that commit
    writes nothing for the ticket — no 'routed' event, no acknowledgement, no offer, though an
    agent is free. The next claim (caselookup not asked again for 10 s) commits the decision,
    the ack and the offer together, once."""
    add_agent(desk, "lina", {"case-status": 5}, capacity={"api": 1})
    tid = desk.scalar(
        "INSERT INTO tickets (ref, channel, external_id, status, category, confidence, priority,"
        " language, case_number, from_national_id, from_phone, entities)"
        " VALUES (%s, 'api', %s, 'classified', 'case_inquiry', 0.9, 'normal', 'ar',"
        " '4512345678', '1012345678', '+966551234567', %s) RETURNING id",
        (make_ref(int(time.time() * 1000) % 10**6 * 7 + 5), unique("ll"),
         json.dumps({"case_number": ["4512345678"]})))
    desk.scalar("INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (%s, 'route', %s)"
                " RETURNING id", (tid, f"ticket:{tid}:route"))
    rules = tmp_path / "routing.yaml"
    rules.write_text(REPO_RULES.read_text(encoding="utf-8").replace(
        "\nauto_answer: false", "\nauto_answer: true", 1), encoding="utf-8")
    router = start_router(daemon, desk, str(rules), WASL_BUS=bus.endpoint,
                          WASL_ROUTER_AUTO_ANSWER="true", WASL_ROUTER_LEASE_S=1,
                          WASL_ROUTER_DISPATCH_MS=60000)
    offer = wait_for(lambda: live_offer(desk, tid), WAIT_S, what="offer made")
    assert offer["agent_id"] == "lina"
    assert router.metrics().get("wasl_router_lease_lost_total", 0) >= 1
    kinds = [e["kind"] for e in desk.events(tid)]
    assert kinds.count("routed") == 1 and kinds.count("offered") == 1, kinds
    assert desk.count("notifications", "ticket_id = %s AND kind = 'ack'", (tid,)) == 1
    assert desk.count("offers", "ticket_id = %s", (tid,)) == 1
    starts = desk.rows(
        "SELECT at FROM ticket_events WHERE ticket_id = %s AND kind IN ('routed', 'offered')"
        " UNION ALL SELECT next_attempt_at FROM notifications WHERE ticket_id = %s"
        " UNION ALL SELECT offered_at FROM offers WHERE ticket_id = %s", (tid, tid, tid))
    assert len(starts) == 4 and len({r["at"] for r in starts}) == 1, starts
    assert router.alive()
