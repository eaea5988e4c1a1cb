"""Attacks on case lookups (issue 13, findings 5, 6, 7 and the Redis half of 14), each shown to
fail against the real daemons: parallel guesses overrunning the failure budgets, one ID guessed
through several channels and caller lines, a stranger locking a case against its parties, a
phone number used as a verifier by a client that cannot vouch for it, IVR replays and
sessions borrowed by another client, and Redis holding hashes that enumeration reverses."""

import concurrent.futures
import hashlib
import subprocess
import urllib.parse
import uuid

import msgpack
import pytest
import redis

from case_helpers import (bus_batch, case_stack, new_case, seed_circuit, unique_id,
                          unique_phone)
from conftest import BIN_DIR, base_env, free_port, wait_for
from intake_helpers import Client, default_clients, new_token

MAX_FAILURES = 5        # per verifier
LINE_MAX = 10           # per trusted caller line
CASE_MAX = 20           # per case
LOCK_S = 6
PARALLEL = 60           # guesses fired at once over HTTP
BATCH = 128             # guesses sent at once over the bus (a router batch's size)


@pytest.fixture(scope="module")
def stack(postgres, redis_server, tmp_path_factory):
    """A bus, two caselookup workers with production-like budgets (and a short lock), an
    intake with API, trusted and untrusted telephony clients."""
    clients = default_clients() + [
        Client("caseapi", "api", "cases", token=new_token()),
        Client("telco", "telephony", "cases", token=new_token(), trusted_ani=True),
        Client("telco2", "telephony", "cases", token=new_token()),
        Client("pbx", "telephony", "calls", token=new_token(), trusted_ani=True),
        Client("pbx2", "telephony", "calls", token=new_token()),
        Client("pbx3", "telephony", "calls", token=new_token(), trusted_ani=True),
    ]

    yield from case_stack(postgres, redis_server, tmp_path_factory.mktemp("caselookup_security"),
                          "wasl_s", clients, {
                              "WASL_CASELOOKUP_LOCK_S": str(LOCK_S),
                              "WASL_CASELOOKUP_WINDOW_S": "120",
                              "WASL_CASELOOKUP_MAX_FAILURES": str(MAX_FAILURES),
                              "WASL_CASELOOKUP_LINE_MAX_FAILURES": str(LINE_MAX),
                              "WASL_CASELOOKUP_CASE_MAX_FAILURES": str(CASE_MAX)},
                          seed_circuit(postgres))


def lookup(stack, number, client="caseapi", **query):
    q = urllib.parse.urlencode(query)
    return stack["intake"].get(f"/v1/cases/{number}?{q}", client=client)


def ivr(stack, call, seq, client="pbx", **fields):
    body = {"type": "call.ivr", "call_id": call, "seq": seq, "menu": "case_status"}
    body.update(fields)
    r = stack["intake"].post("/v1/calls/events", body, client=client)
    assert r.status in (200, 201), r.raw
    return r.json


def audit_count(postgres, stack, where, args):
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM case_lookup_audit WHERE {where}", args)
        n = cur.fetchone()[0]
    conn.close()
    return n


# ---- finding 5: budgets counted and checked atomically ------------------------------------

def test_parallel_http_guesses_get_at_most_the_case_budget(stack, postgres):
    """60 wrong IDs fired at one case at once: only CASE_MAX of them reach a verification
    decision (404); every other one is refused as locked (429)."""
    number, nid, _ = new_case(postgres, stack)
    guesses = [unique_id() for _ in range(PARALLEL)]
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        statuses = list(pool.map(lambda g: lookup(stack, number, national_id=g).status, guesses))
    assert set(statuses) <= {404, 429}, statuses
    assert statuses.count(404) == CASE_MAX, statuses
    # The audit agrees: CASE_MAX denials, the rest locked.
    assert audit_count(postgres, stack, "case_number = %s AND outcome = 'denied'",
                       (number,)) == CASE_MAX
    # The case is locked now, even for its party's ID (see the bound below).
    assert lookup(stack, number, national_id=nid).status == 429


def test_a_batch_of_guesses_gets_at_most_the_case_budget(stack, postgres):
    """A router-sized batch of 128 wrong IDs for one case, sent in one go: before the fix the
    locks were read for the whole batch before any failure was counted (128 decisions)."""
    number, _, _ = new_case(postgres, stack)
    reqs = [{"request_id": f"batch-{i}", "case_number": number, "verifier_kind": "national_id",
             "verifier": unique_id(), "channel": "api", "client": "router"}
            for i in range(BATCH)]
    outcomes = list(bus_batch(stack, reqs, together=True).values())
    assert set(outcomes) <= {"denied", "locked"}, outcomes
    assert outcomes.count("denied") == CASE_MAX, outcomes


def test_one_budget_per_verifier_across_channels_and_lines(stack, postgres):
    """One wrong ID tried through HTTP, the IVR from ever-changing caller lines (trusted and
    not), and the router's path, each time against a different case: the ID's budget is one,
    so the attempt after MAX_FAILURES is refused wherever it comes from."""
    guess = unique_id()
    cases = [new_case(postgres, stack)[0] for _ in range(MAX_FAILURES + 2)]
    # 1-2: HTTP.
    for number in cases[:2]:
        assert lookup(stack, number, national_id=guess).status == 404
    # 3-4: the IVR, a new caller number each call (a changing ANI used to buy a new budget).
    for i, number in enumerate(cases[2:4]):
        call = f"sec-{uuid.uuid4().hex[:8]}"
        client = "pbx" if i == 0 else "pbx2"
        ivr(stack, call, 1, client=client, **{"from": unique_phone()})
        step = ivr(stack, call, 2, client=client, digits=number)
        assert step["ivr"]["step"] == "national_id", step
        done = ivr(stack, call, 3, client=client, digits=guess)
        assert done["ivr"]["outcome"] == "denied", done
    # 5: the router's path (its client, no caller line).
    out = bus_batch(stack, [{"request_id": "router-1", "case_number": cases[4],
                             "verifier_kind": "national_id", "verifier": guess,
                             "channel": "api", "client": "router"}])
    assert out == {"router-1": "denied"}
    # 6: spent, whatever the channel.
    assert lookup(stack, cases[5], national_id=guess).status == 429
    call = f"sec-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, client="pbx2", **{"from": unique_phone()})
    ivr(stack, call, 2, client="pbx2", digits=cases[6])
    assert ivr(stack, call, 3, client="pbx2", digits=guess)["ivr"]["outcome"] == "locked"


def test_a_trusted_line_has_its_own_budget(stack, postgres):
    """One caller line trying a new ID (and a new case) each time is stopped by the line's
    budget, though no ID and no case reached its own."""
    phone = unique_phone()
    outcomes = []
    for _ in range(LINE_MAX + 2):
        number, _, _ = new_case(postgres, stack)
        call = f"line-{uuid.uuid4().hex[:8]}"
        ivr(stack, call, 1, **{"from": phone})
        step = ivr(stack, call, 2, digits=number)
        if step["ivr"]["step"] != "national_id":
            outcomes.append(step["ivr"]["outcome"])
            continue
        outcomes.append(ivr(stack, call, 3, digits=unique_id())["ivr"]["outcome"])
    assert outcomes[-1] == "locked", outcomes
    assert outcomes.count("denied") <= LINE_MAX, outcomes


def test_a_stranger_cannot_lock_a_case_against_its_parties_for_long(stack, postgres):
    """A stranger spends the case's budget. The party's own phone through a trusted telephony
    client still gets the case at once; by national ID they wait at most LOCK_S."""
    number, nid, phone = new_case(postgres, stack)
    for _ in range(CASE_MAX):
        assert lookup(stack, number, national_id=unique_id()).status == 404
    assert lookup(stack, number, national_id=unique_id()).status == 429
    held = lookup(stack, number, national_id=nid)
    assert held.status == 429
    assert int(held.header("Retry-After")) <= LOCK_S
    # The network-given number of a party is not a guess: the case lock does not hold it.
    r = lookup(stack, number, client="telco", caller=phone)
    assert r.status == 200, r.raw
    call = f"party-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, **{"from": phone})
    assert ivr(stack, call, 2, digits=number)["ivr"]["outcome"] == "found"
    # By ID: refused while locked (each refusal counts nothing), served once the lock lapses.
    wait_for(lambda: lookup(stack, number, national_id=nid).status == 200, LOCK_S + 10,
             interval=0.5, what="the case lock to lapse")


# ---- finding 6: a phone verifies only from a client trusted for caller ID ------------------

def test_phone_from_an_untrusted_client_gets_the_strangers_answer(stack, postgres):
    number, _, phone = new_case(postgres, stack)
    for client in ("caseapi", "telco2"):
        party = lookup(stack, number, client=client, caller=phone)
        stranger = lookup(stack, number, client=client, caller=unique_phone())
        assert party.status == stranger.status == 404, party.raw
        assert party.raw == stranger.raw
        assert party.header("Content-Type") == stranger.header("Content-Type")
    # Nothing was asked of caselookup on those clients' say-so.
    assert audit_count(postgres, stack, "case_number = %s", (number,)) == 0
    found = lookup(stack, number, client="telco", caller=phone)
    assert found.status == 200 and found.json["case_number"] == number


def test_ivr_phone_from_an_untrusted_client_does_not_verify(stack, postgres):
    number, nid, phone = new_case(postgres, stack)
    call = f"u-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, client="pbx2", **{"from": phone})
    step = ivr(stack, call, 2, client="pbx2", digits=number)
    assert step["ivr"]["step"] == "national_id", step       # the phone was not enough
    assert "الدائرة" not in step["speech"]["ar"]
    assert ivr(stack, call, 3, client="pbx2", digits=nid)["ivr"]["outcome"] == "found"
    # The same phone from the trusted PBX verifies.
    call = f"t-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, **{"from": phone})
    assert ivr(stack, call, 2, digits=number)["ivr"]["outcome"] == "found"


# ---- finding 7: IVR replay and sessions ----------------------------------------------------

def test_ivr_replay_asks_caselookup_again_and_is_audited(stack, postgres):
    number, _, phone = new_case(postgres, stack)
    call = f"r-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, **{"from": phone})
    first = ivr(stack, call, 2, digits=number)
    assert first["ivr"]["outcome"] == "found"
    audited = "call_id = %s AND outcome = 'found'"
    assert audit_count(postgres, stack, audited, (call,)) == 1
    again = ivr(stack, call, 2, digits=number)
    assert again["duplicate"] is True and again["speech"] == first["speech"]
    assert audit_count(postgres, stack, audited, (call,)) == 2   # asked again, audited again
    # A replay is decided on today's truth, not a stored answer: once the party is gone,
    # replaying the same event discloses nothing.
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("DELETE FROM case_parties WHERE phone = %s", (phone,))
    conn.close()
    wait_for(lambda: ivr(stack, call, 2, digits=number)["ivr"]["outcome"] != "found", 5,
             what="the replay to be decided again")
    # An older event discloses nothing and moves nothing.
    old = ivr(stack, call, 1, **{"from": phone})
    assert old["ivr"]["outcome"] is None and "الدائرة" not in old["speech"]["ar"]


def test_another_client_replaying_the_call_id_gets_nothing(stack, postgres):
    number, _, phone = new_case(postgres, stack)
    call = f"x-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, **{"from": phone})
    assert ivr(stack, call, 2, digits=number)["ivr"]["outcome"] == "found"
    # Another trusted PBX first (it could use a caller number it found in the session), then
    # an untrusted one.
    for client in ("pbx3", "pbx2"):
        for seq, fields in ((2, {"digits": number}), (3, {}), (4, {"digits": number})):
            other = ivr(stack, call, seq, client=client, **fields)
            assert other["ivr"]["outcome"] != "found", (client, other)
            assert "الدائرة" not in other["speech"]["ar"], (client, other)
            assert "Circuit" not in other["speech"]["en"]
        # Its own session asks it for the national ID: the first client's caller number is
        # not its to use.
        assert other["ivr"]["step"] == "national_id", (client, other)


def test_ivr_sessions_keep_no_phone_and_expire_in_minutes(stack, postgres, redis_server):
    number, _, phone = new_case(postgres, stack)
    call = f"k-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, **{"from": "0" + phone[4:]})   # the national form
    assert ivr(stack, call, 2, digits=number)["ivr"]["outcome"] == "found"
    r = redis_server.client()
    keys = [k for k in r.scan_iter(match="*") if call in k]
    assert any(k.startswith("wasl:ivr:pbx:") for k in keys), keys
    assert any(k.startswith("wasl:call:pbx:") for k in keys), keys
    for k in keys:
        values = " ".join(r.hgetall(k).values())
        assert phone[4:] not in values, (k, values)       # neither +9665… nor 05…
        assert 0 < r.ttl(k) <= 3600, (k, r.ttl(k))
        if k.startswith("wasl:ivr:"):
            assert r.ttl(k) <= 600


# ---- finding 14: keyed hashes in Redis -----------------------------------------------------

def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_no_redis_key_or_value_holds_a_bare_hash_of_an_id_or_phone(stack, postgres,
                                                                     redis_server):
    number, nid, phone = new_case(postgres, stack)
    wrong_id, wrong_phone = unique_id(), unique_phone()
    assert lookup(stack, number, national_id=nid).status == 200       # cached with verifiers
    assert lookup(stack, number, national_id=wrong_id).status == 404  # budget keys
    assert lookup(stack, number, client="telco", caller=wrong_phone).status == 404
    call = f"h-{uuid.uuid4().hex[:8]}"
    ivr(stack, call, 1, **{"from": phone})
    assert ivr(stack, call, 2, digits=number)["ivr"]["outcome"] == "found"
    # Raw bytes: some values are msgpack (caselookup's stored answers for resends).
    r = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    texts = []
    for k in r.scan_iter(match="*"):
        texts.append(k)
        kind = r.type(k)
        if kind == b"string":
            texts.append(r.get(k) or b"")
        elif kind == b"hash":
            texts.extend(r.hgetall(k).values())
    blob = b"\n".join(texts).decode("latin-1")
    assert f"wasl:case:{number}" in blob   # the lookups did write to this Redis
    for value in (nid, wrong_id, phone, wrong_phone):
        assert value not in blob
        for kind in ("national_id", "caller_phone", "caller", "line"):
            digest = sha(f"{kind}:{value}")
            assert digest[:32] not in blob, (kind, value)
        assert sha(value)[:32] not in blob


def test_a_request_carrying_an_id_is_fingerprinted_with_the_key(stack, postgres, redis_server):
    """caselookup fingerprints each request (dedup of resends, the audit's request_sha256): the
    request carries the national ID, so a bare SHA-256 of it would give the ID back to whoever
    hashes the request with every possible ID."""
    number, nid, phone = new_case(postgres, stack)
    # As the router asks for an automatic answer: the reply carries the party's phone on file.
    q = {"request_id": f"fp-{uuid.uuid4().hex[:8]}", "case_number": number,
         "verifier_kind": "national_id", "verifier": nid, "channel": "api", "client": "router",
         "contact": True}
    body = msgpack.packb(dict({"type": "case.lookup.request", "v": 1}, **q))
    assert bus_batch(stack, [q]) == {q["request_id"]: "found"}
    # A resend is answered from the kept answer (sealed in Redis, opened for it).
    assert bus_batch(stack, [q]) == {q["request_id"]: "found"}
    assert audit_count(postgres, stack, "request_id = %s", (q["request_id"],)) == 1
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT request_sha256 FROM case_lookup_audit WHERE request_id = %s",
                    (q["request_id"],))
        (fp,) = cur.fetchone()
    conn.close()
    assert len(fp) == 64 and fp != hashlib.sha256(body).hexdigest()
    r = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    blob = b"\n".join(r.get(k) or b"" for k in r.scan_iter(match="*") if r.type(k) == b"string")
    assert hashlib.sha256(body).hexdigest().encode() not in blob
    # The kept answer holds the party's phone on file: sealed, it is not readable.
    assert phone[1:].encode() not in blob and phone[4:].encode() not in blob


@pytest.mark.parametrize("daemon_name", ["caselookup", "intake", "notifier"])
def test_a_missing_pii_key_is_a_startup_error(postgres, redis_server, daemon_name):
    env = base_env(postgres, redis_server)
    del env["WASL_PII_KEY"]
    env["WASL_ADMIN_PORT"] = str(free_port())
    out = subprocess.run([str(BIN_DIR / f"wasl-{daemon_name}")], env=env, capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 2, out.stderr
    assert "WASL_PII_KEY_FILE" in out.stderr
    env["WASL_PII_KEY"] = "too-short"
    out = subprocess.run([str(BIN_DIR / f"wasl-{daemon_name}")], env=env, capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 2 and "WASL_PII_KEY" in out.stderr, out.stderr
