"""caselookup's group commit of the audit (issue 16): the lookups that arrive together are
audited by one commit, one row each with its own outcome, and nothing is answered before that
commit — with PostgreSQL gone a lookup gets `error`, never the case, even when the case itself
is in the Redis cache. (A resend answered once: test_caselookup.py,
test_resent_lookup_is_answered_once.)"""

import uuid

import msgpack
import pytest
import zmq

from case_helpers import bus_batch, case_stack, new_case, seed_circuit, unique_id
from conftest import parse_metrics, wait_for
from intake_helpers import default_clients

# Fields of a found reply that carry the case: none may be in an answer the audit did not cover.
CASE_FIELDS = ("case_number", "court", "circuit", "status", "status_ar", "hearing_utc",
               "hearing_text_ar", "speech_ar", "speech_en", "updates", "contact_phone",
               "contact_email")


@pytest.fixture(scope="module")
def stack(postgres, redis_server, tmp_path_factory):
    """A bus, two caselookup workers (budgets out of the way) and an intake."""
    yield from case_stack(postgres, redis_server, tmp_path_factory.mktemp("caselookup_audit"),
                          "wasl_a", default_clients(), {
                              "WASL_CASELOOKUP_CASE_MAX_FAILURES": "1000",
                              "WASL_CASELOOKUP_CACHE_TTL_S": "300"},
                          seed_circuit(postgres))


def request(number, verifier, tag):
    return {"request_id": f"{tag}-{uuid.uuid4().hex[:12]}", "case_number": number,
            "verifier_kind": "national_id", "verifier": verifier, "channel": "api",
            "client": "router"}


def rows(postgres, stack, ids):
    """{request_id: (outcome, reason, xmin)} of the audit rows of `ids` (asserting one each)."""
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT request_id, outcome, reason, xmin::text FROM case_lookup_audit"
                    " WHERE request_id = ANY(%s)", (list(ids),))
        got = cur.fetchall()
    conn.close()
    out = {}
    for rid, outcome, reason, xmin in got:
        assert rid not in out, f"two audit rows for {rid}"
        out[rid] = (outcome, reason, xmin)
    return out


def ask(stack, q, timeout_ms=3000):
    """One request over the bus; the decoded reply, or None when none came in time."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(stack["bus"].endpoint)
    try:
        s.send_multipart([b"", msgpack.packb(dict({"type": "case.lookup.request", "v": 1},
                                                  **q))])
        if not s.poll(timeout_ms):
            return None
        return msgpack.unpackb(s.recv_multipart()[-1], raw=False)
    finally:
        s.close()


def worker_metric(stack, name):
    return sum(parse_metrics(w.get("/metrics")[1]).get(name, 0) for w in stack["workers"]
               if w.alive())


def test_a_batch_is_audited_one_row_each_by_one_commit_per_worker(stack, postgres):
    """Party lookups, strangers' and malformed ones arrive together (the workers paused until
    the bus handed them all over): each request gets its own outcome, exactly one audit row
    with that outcome and reason, and the rows of a worker's share went in with one commit
    (one transaction id per worker, not one per lookup)."""
    number, nid, _ = new_case(postgres, stack)
    party = [request(number, nid, "party") for _ in range(8)]
    strangers = [request(number, unique_id(), "stranger") for _ in range(8)]
    malformed = [request("12", nid, "bad") for _ in range(4)]
    everything = party + strangers + malformed
    replies = bus_batch(stack, everything, together=True)
    want = {q["request_id"]: ("found", None) for q in party}
    want.update({q["request_id"]: ("denied", "not_party") for q in strangers})
    want.update({q["request_id"]: ("denied", "bad_request") for q in malformed})
    assert replies == {rid: outcome for rid, (outcome, _) in want.items()}
    audited = rows(postgres, stack, want)
    assert {rid: (o, r) for rid, (o, r, _) in audited.items()} == want
    commits = {xmin for (_, _, xmin) in audited.values()}
    assert len(commits) <= len(stack["workers"]), commits


def party_lookup(postgres, stack, number, nid):
    """One lookup as the party: None unless found, else whether it was served from the Redis
    cache (as audited)."""
    q = request(number, nid, "party")
    rep = ask(stack, q)
    if not rep or rep["outcome"] != "found":
        return None
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT cached FROM case_lookup_audit WHERE request_id = %s",
                    (q["request_id"],))
        (cached,) = cur.fetchone()
    conn.close()
    return cached


def test_no_answer_before_the_audit_commits(stack, postgres):
    """The case is in the Redis cache, so the worker could answer without PostgreSQL; but with
    PostgreSQL stopped the audit cannot commit, and the party gets `error` with nothing of the
    case — not the case unaudited. Once PostgreSQL is back the party is answered, and
    audited."""
    number, nid, _ = new_case(postgres, stack)
    # The first lookup caches the case (the insert's change notice may evict it once).
    wait_for(lambda: party_lookup(postgres, stack, number, nid), 10,
             what="the case served from the cache")
    failed_before = worker_metric(stack, "wasl_caselookup_audit_failures_total")
    postgres.stop()
    try:
        q = request(number, nid, "no-audit")
        rep = ask(stack, q)
        # error, or nothing at all (the client's timeout): never the case.
        if rep is not None:
            assert rep["outcome"] == "error", rep
            assert not any(rep.get(f) for f in CASE_FIELDS), rep
        assert worker_metric(stack, "wasl_caselookup_audit_failures_total") > failed_before
    finally:
        postgres.start()
    for w in stack["workers"]:
        wait_for(lambda w=w: w.get("/readyz")[0] == 200, 15, what="caselookup ready again")
    assert rows(postgres, stack, [q["request_id"]]) == {}
    # A new request each try: one answered `error` while the workers reconnect is audited and
    # kept for its resends like any answer.
    wait_for(lambda: party_lookup(postgres, stack, number, nid) is not None, 15,
             what="a found answer once PostgreSQL is back")
