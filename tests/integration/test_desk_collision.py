"""The desk's collision warning over HTTP: "another agent is viewing / replying to this ticket",
live. The open page beats PUT /v1/tickets/{ref}/viewing; the set lives in Redis; a change is
announced on the desk's NOTIFY channel and every desk instance sends `event: viewers` to the
streams of the agents on the ticket (and of those who just left), each without itself. Only who
may read the ticket may join; a heartbeat that changes nothing announces nothing; a page gone
without a DELETE lapses after WASL_DESK_VIEWING_TTL_S. docs/desk.md, "Collision"."""

import pytest

from conftest import wait_for
from test_desk_auth import Desk, Stream, desk_db  # noqa: F401 (fixture)
from test_desk_tickets import assign, new_ticket


@pytest.fixture
def desk(desk_db, start_desk):  # noqa: F811
    return Desk(start_desk(desk_db), desk_db)


def view(person, ref, state="viewing"):
    r = person.call("PUT", f"/v1/tickets/{ref}/viewing", {"state": state})
    assert r.status_code == 200, r.text
    return r.json()["viewers"]


def names(viewers):
    return [(v["agent"], v["name"], v["state"]) for v in viewers]


def next_viewers(stream, ref, want):
    """The next `viewers` event of `ref` on the stream, which must name exactly `want`
    ([(agent, name, state)]); an event of `ref` naming anything else before it fails."""
    data, _ = stream.next("viewers", pred=lambda d: d["ref"] == ref)
    assert names(data["viewers"]) == want, f"viewers of {ref}: expected {want}, got {data}"
    return data


def test_two_agents_see_each_other_live(desk):
    ref = new_ticket(desk)  # unassigned, of queue general: hala and amal both may read it
    hala, amal, sara = desk.session("hala"), desk.session("amal"), desk.session("sara")
    sh, sa = Stream(hala), Stream(amal)
    try:
        assert view(hala, ref) == []
        next_viewers(sh, ref, [])
        # amal opens it: both hear of the other, never of themselves.
        assert names(view(amal, ref)) == [("hala", "Hala", "viewing")]
        next_viewers(sh, ref, [("amal", "Amal", "viewing")])
        next_viewers(sa, ref, [("hala", "Hala", "viewing")])
        # The ticket view names the others too.
        t = hala.call("GET", f"/v1/tickets/{ref}").json()
        assert t["viewers"] == [{"agent": "amal", "name": "Amal", "state": "viewing"}]
        # A beat that changes nothing is not announced: the next event hala hears is sara's.
        assert names(view(amal, ref)) == [("hala", "Hala", "viewing")]
        assert len(view(sara, ref)) == 2
        next_viewers(sh, ref, [("amal", "Amal", "viewing"), ("sara", "Sara", "viewing")])
        # amal writes a reply: hala sees "replying".
        view(amal, ref, "replying")
        next_viewers(sh, ref, [("amal", "Amal", "replying"), ("sara", "Sara", "viewing")])
        for _ in ("sara joined", "amal replying"):
            next_viewers(sa, ref, [("hala", "Hala", "viewing"), ("sara", "Sara", "viewing")])
        # amal leaves, then sara: hala's last event names nobody; amal heard that she left.
        assert amal.call("DELETE", f"/v1/tickets/{ref}/viewing").status_code == 204
        next_viewers(sh, ref, [("sara", "Sara", "viewing")])
        next_viewers(sa, ref, [("hala", "Hala", "viewing"), ("sara", "Sara", "viewing")])
        assert sara.call("DELETE", f"/v1/tickets/{ref}/viewing").status_code == 204
        next_viewers(sh, ref, [])
        assert hala.call("GET", f"/v1/tickets/{ref}").json()["viewers"] == []
        # Leaving twice is fine and announces nothing more.
        assert amal.call("DELETE", f"/v1/tickets/{ref}/viewing").status_code == 204
    finally:
        sh.close()
        sa.close()
    # SIGTERM with viewers kept: a clean exit (and, in a sanitizer build, no leak).
    view(hala, ref, "replying")
    assert desk.daemon.stop() == 0


def test_across_two_desk_instances(desk_db, start_desk):  # noqa: F811
    one = Desk(start_desk(desk_db), desk_db)
    two = Desk(start_desk(desk_db), desk_db)
    ref = new_ticket(one)
    hala, amal = one.session("hala"), two.session("amal")
    sh, sa = Stream(hala), Stream(amal)
    try:
        view(hala, ref)
        view(amal, ref, "replying")
        next_viewers(sh, ref, [])
        next_viewers(sh, ref, [("amal", "Amal", "replying")])
        next_viewers(sa, ref, [("hala", "Hala", "viewing")])
    finally:
        sh.close()
        sa.close()


def test_only_who_may_read_the_ticket_joins_or_hears(desk):
    ref = new_ticket(desk)
    hala = assign(desk, ref, "hala")  # now hala's: amal (same queue) may not read it
    amal, sara = desk.session("amal"), desk.session("sara")
    sa = Stream(amal)
    try:
        r = amal.call("PUT", f"/v1/tickets/{ref}/viewing", {"state": "viewing"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_ticket", r.text
        view(hala, ref)
        assert names(view(sara, ref)) == [("hala", "Hala", "viewing")]
        # amal's stream carries her own presence event, and no viewers event before it.
        assert amal.call("PUT", "/v1/me/presence", {"presence": "busy",
                                                    "ttl_s": 60}).status_code == 200
        sa.next("presence", pred=lambda d: d["agent"] == "amal")
        seen = []
        while not sa.events.empty():
            seen.append(sa.events.get_nowait()[0])
        assert "viewers" not in seen, seen
        assert hala.call("GET", f"/v1/tickets/{ref}").json()["viewers"] == [
            {"agent": "sara", "name": "Sara", "state": "viewing"}]
    finally:
        sa.close()
    # Unknown tickets, bad references, bad states, no CSRF token.
    assert hala.call("PUT", "/v1/tickets/2512345678/viewing",
                     {"state": "viewing"}).status_code == 404
    assert hala.call("PUT", "/v1/tickets/12ab/viewing", {"state": "viewing"}).status_code == 400
    assert hala.call("PUT", f"/v1/tickets/{ref}/watching",
                     {"state": "viewing"}).status_code == 404
    for body in ({}, {"state": "typing"}, {"state": 1}, {"state": None}, {"state": "Viewing"}):
        r = hala.call("PUT", f"/v1/tickets/{ref}/viewing", body)
        assert r.status_code == 400 and r.json()["error"]["field"] == "state", (body, r.text)
    for method in ("PUT", "DELETE"):
        r = sara.call(method, f"/v1/tickets/{ref}/viewing", {"state": "replying"}, csrf=False)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", r.text
    assert desk.session().call("PUT", f"/v1/tickets/{ref}/viewing",
                               {"state": "viewing"}).status_code == 401
    # Neither refused request changed sara's entry.
    assert hala.call("GET", f"/v1/tickets/{ref}").json()["viewers"] == [
        {"agent": "sara", "name": "Sara", "state": "viewing"}]


def test_losing_the_right_to_read_takes_you_off(desk):
    ref = new_ticket(desk)
    amal, hala = desk.session("amal"), desk.session("hala")
    sh = Stream(hala)
    try:
        view(amal, ref)
        assign(desk, ref, "hala")
        view(hala, ref)
        next_viewers(sh, ref, [("amal", "Amal", "viewing")])
        # amal's next beat is refused, and that takes her off the ticket.
        r = amal.call("PUT", f"/v1/tickets/{ref}/viewing", {"state": "viewing"})
        assert r.status_code == 403, r.text
        next_viewers(sh, ref, [])
    finally:
        sh.close()


def test_a_lapsed_heartbeat_disappears_on_the_next_read(desk_db, start_desk):  # noqa: F811
    d = Desk(start_desk(desk_db, env={"WASL_DESK_VIEWING_TTL_S": "2"}), desk_db)
    ref = new_ticket(d)
    hala, amal = d.session("hala"), d.session("amal")
    sh = Stream(hala)
    try:
        view(hala, ref)
        view(amal, ref)

        def naming(want):
            return lambda d: d["ref"] == ref and names(d["viewers"]) == want
        # (With a 2 s TTL on a loaded machine hala's own entry may lapse and come back between
        # the two: wait for the event naming amal rather than for an exact sequence.)
        sh.next("viewers", pred=naming([("amal", "Amal", "viewing")]))
        # amal's page is gone without a DELETE; hala's page goes on beating.
        wait_for(lambda: view(hala, ref) == [], 10, what="amal's entry lapsing")
        sh.next("viewers", pred=naming([]))
        assert hala.call("GET", f"/v1/tickets/{ref}").json()["viewers"] == []
    finally:
        sh.close()


def test_viewers_per_ticket_are_bounded(desk_db, start_desk):  # noqa: F811
    d = Desk(start_desk(desk_db, env={"WASL_DESK_VIEWERS_MAX": "2"}), desk_db)
    ref = new_ticket(d)
    hala, amal, sara = d.session("hala"), d.session("amal"), d.session("sara")
    view(hala, ref)
    view(amal, ref)
    r = sara.call("PUT", f"/v1/tickets/{ref}/viewing", {"state": "viewing"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "too_many_viewers", r.text
    # Those already on it go on beating; when one leaves there is room.
    assert names(view(amal, ref, "replying")) == [("hala", "Hala", "viewing")]
    assert amal.call("DELETE", f"/v1/tickets/{ref}/viewing").status_code == 204
    assert names(view(sara, ref)) == [("hala", "Hala", "viewing")]
