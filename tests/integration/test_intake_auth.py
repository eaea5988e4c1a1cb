"""wasl-intake authentication: bearer tokens and HMAC signatures (age, replay), clients added
and removed with waslctl while intake runs, and the per-client rate limit (429 + Retry-After).
Constant-time comparison is not observable from outside and is not tested here."""

import hashlib
import json
import math
import re
import time
import urllib.parse

from conftest import wait_for
from intake_helpers import (  # noqa: F401  (fixtures)
    HMAC_MAX_AGE_S,
    JSON,
    Client,
    assert_counted,
    assert_error,
    assert_valid_ref,
    default_clients,
    new_secret,
    new_token,
    sign,
    start_intake,
    unique,
)

RATE_LIMITED_PER_S = 5
RATE_BURST_REQUESTS = 20
CLIENT_REFRESH_S = 1
# How long a client change may take to reach intake: a few refresh periods.
CLIENT_CHANGE_WAIT_S = 10


def report_bytes(**extra):
    body = {"channel": "api", "external_id": unique("auth"), "body": "طلب"}
    body.update(extra)
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def test_bearer_token_is_accepted(start_intake):
    it = start_intake()
    resp = it.post("/v1/reports", report_bytes(), content_type=JSON, client="feeder")
    assert resp.status == 201, resp
    assert it.ticket(resp.json["ticket"])["client_id"] == "feeder"


def test_authorization_scheme_is_case_insensitive_and_query_token_is_not_for_reports(
        start_intake):
    it = start_intake()
    tok = it.token("feeder")
    resp = it.post("/v1/reports", report_bytes(), content_type=JSON, token=None,
                   headers={"Authorization": f"bearer {tok}"})
    assert resp.status == 201, resp
    # `token` in the query string is for the SMS get-url only (Kannel cannot send headers).
    resp = it.post("/v1/reports?" + urllib.parse.urlencode({"token": tok}), report_bytes(),
                   content_type=JSON, token=None)
    assert_error(resp, 401, "unauthorized")


def test_hmac_signature_is_accepted(start_intake):
    it = start_intake()
    raw = report_bytes()
    resp = it.signed_post("/v1/reports", raw)
    assert resp.status == 201, resp
    assert_valid_ref(resp.json["ticket"])
    assert it.ticket(resp.json["ticket"])["client_id"] == "signer"


def test_hmac_bad_signature_is_401(start_intake):
    it = start_intake()
    raw = report_bytes()
    before = it.error_count("unauthorized")
    # Signed with another secret.
    resp = it.signed_post("/v1/reports", raw, signature=sign(new_secret(), raw))
    assert_error(resp, 401, "unauthorized")
    # Signed correctly, then the body changed by one byte.
    good = sign(it.clients["signer"].hmac_secret, raw)
    resp = it.signed_post("/v1/reports", raw.replace(b"api", b"web"), signature=good)
    assert_error(resp, 401, "unauthorized")
    # Garbage in the header.
    for bad in ("", "t=abc,v1=00", "v1=" + "0" * 64, f"t={int(time.time())}"):
        resp = it.signed_post("/v1/reports", raw, signature=bad)
        assert_error(resp, 401, "unauthorized")
    assert it.count("tickets") == 0
    assert it.error_count("unauthorized") == before + 6


def test_hmac_unknown_client_is_401(start_intake):
    it = start_intake()
    raw = report_bytes()
    sig = sign(it.clients["signer"].hmac_secret, raw)
    resp = it.post("/v1/reports", raw, token=None, content_type=JSON,
                   headers={"X-Wasl-Signature": sig, "X-Wasl-Client": "nobody"})
    assert_error(resp, 401, "unauthorized")


def test_hmac_timestamp_older_than_300_s_is_401(start_intake):
    it = start_intake()
    raw = report_bytes()
    resp = it.signed_post("/v1/reports", raw, t=time.time() - (HMAC_MAX_AGE_S + 1))
    assert_error(resp, 401, "unauthorized")
    # Equally a timestamp far in the future.
    resp = it.signed_post("/v1/reports", raw, t=time.time() + HMAC_MAX_AGE_S + 60)
    assert_error(resp, 401, "unauthorized")
    # A signature a little old is still fine.
    resp = it.signed_post("/v1/reports", raw, t=time.time() - 60)
    assert resp.status == 201, resp


def test_hmac_replay_is_401(start_intake):
    it = start_intake()
    raw = report_bytes()
    sig = sign(it.clients["signer"].hmac_secret, raw)
    first = it.signed_post("/v1/reports", raw, signature=sig)
    assert first.status == 201, first
    before = it.error_count("unauthorized")
    again = it.signed_post("/v1/reports", raw, signature=sig)
    assert_error(again, 401, "unauthorized")
    assert_counted(it, "unauthorized", before)
    # The same body signed anew (the client's retry) is the idempotent duplicate.
    later = it.signed_post("/v1/reports", raw, t=time.time() + 1)
    assert later.status == 200, later
    assert later.json["ticket"] == first.json["ticket"]


def test_generated_token_is_printed_and_works(start_intake):
    it = start_intake()
    out = it.waslctl("client", "add", "gen-client", "--kind", "api", "--scopes", "reports")
    assert out.returncode == 0, out.stderr
    m = re.search(r"^token: (\S+)$", out.stdout, re.M)
    assert m, f"no `token: ...` line in {out.stdout!r}"
    token = m.group(1)
    listed = it.waslctl("client", "list")
    assert listed.returncode == 0, listed.stderr
    assert "gen-client" in listed.stdout
    assert token not in listed.stdout, "the list must not show tokens"
    # Stored as its SHA-256, never as given.
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert it.scalar("SELECT token_sha256 FROM clients WHERE id = 'gen-client'") == digest

    def accepted():
        r = it.post("/v1/reports", report_bytes(), content_type=JSON, token=token)
        return r if r.status == 201 else None
    wait_for(accepted, CLIENT_CHANGE_WAIT_S, interval=0.2,
             what="a client added while intake runs to be accepted")


def test_client_binding_is_saved_and_checked(start_intake):
    """act_as, role and trusted_ani are stored as given; the database refuses what makes no
    sense (a caller-ID trust on a non-telephony client, an act_as entry that is no agent id)."""
    it = start_intake()
    out = it.waslctl("client", "add", "cti", "--kind", "telephony", "--scopes", "calls,agents",
                     "--act-as", "a.one,b-two", "--role", "agent", "--trusted-ani")
    assert out.returncode == 0, out.stderr
    binding = "SELECT act_as, role, trusted_ani FROM clients WHERE id = 'cti'"
    assert it.rows(binding) == [{"act_as": ["a.one", "b-two"], "role": "agent",
                                 "trusted_ani": True}]
    listed = it.waslctl("client", "list")
    assert re.search(r"^cti\s.*\sagent\s+yes\s+a\.one,b-two$", listed.stdout, re.M), \
        listed.stdout
    # Without the flags, adding it again drops the binding (the command states the whole client).
    out = it.waslctl("client", "add", "cti", "--kind", "telephony", "--scopes", "calls")
    assert out.returncode == 0, out.stderr
    assert it.rows(binding) == [{"act_as": [], "role": None, "trusted_ani": False}]
    for bad in (["--kind", "web_portal", "--scopes", "reports", "--trusted-ani"],
                ["--kind", "api", "--scopes", "agents", "--act-as", "Bad Agent"],
                ["--kind", "api", "--scopes", "agents", "--role", "root"]):
        out = it.waslctl("client", "add", "odd", *bad)
        assert out.returncode != 0, bad
    assert it.scalar("SELECT count(*) FROM clients WHERE id = 'odd'") == 0


def test_removed_client_is_refused(start_intake):
    it = start_intake()
    assert it.post("/v1/reports", report_bytes(), content_type=JSON, client="feeder").status \
        == 201
    out = it.waslctl("client", "remove", "feeder")
    assert out.returncode == 0, out.stderr

    def refused():
        r = it.post("/v1/reports", report_bytes(), content_type=JSON, client="feeder")
        return r if r.status == 401 else None
    resp = wait_for(refused, CLIENT_CHANGE_WAIT_S, interval=0.2,
                    what="a removed client to be refused")
    assert_error(resp, 401, "unauthorized")


def test_adding_an_existing_client_updates_it(start_intake):
    it = start_intake()
    old = it.token("feeder")
    fresh = new_token()
    out = it.waslctl("client", "add", "feeder", "--kind", "api", "--scopes",
                      "reports", "--token", fresh)
    assert out.returncode == 0, out.stderr
    assert it.scalar("SELECT count(*) FROM clients WHERE id = 'feeder'") == 1

    def switched():
        a = it.post("/v1/reports", report_bytes(), content_type=JSON, token=fresh)
        b = it.post("/v1/reports", report_bytes(), content_type=JSON, token=old)
        return (a, b) if a.status == 201 and b.status == 401 else None
    wait_for(switched, CLIENT_CHANGE_WAIT_S, interval=0.2,
             what="the new token accepted and the old one refused")


def test_rate_limit_answers_429_with_retry_after(start_intake):
    clients = default_clients() + [
        Client(f"slow-{unique('r')[-8:]}", "api", "reports", token=new_token(),
               rate=RATE_LIMITED_PER_S)]
    slow = clients[-1].id
    it = start_intake(clients=clients)
    before = it.error_count("rate_limited")
    t0 = time.monotonic()
    results = [it.post("/v1/reports", report_bytes(), content_type=JSON, client=slow)
               for _ in range(RATE_BURST_REQUESTS)]
    elapsed = time.monotonic() - t0
    statuses = [r.status for r in results]
    assert set(statuses) <= {201, 429}, statuses
    limited = [r for r in results if r.status == 429]
    accepted = [r for r in results if r.status == 201]
    assert limited, f"no 429 among {statuses} ({elapsed:.2f}s)"
    assert accepted, statuses
    # Whatever the algorithm (window or bucket), no more than the rate per started second plus
    # one second's burst can pass.
    assert len(accepted) <= RATE_LIMITED_PER_S * (math.floor(elapsed) + 2), (statuses, elapsed)
    for r in limited:
        assert_error(r, 429, "rate_limited")
        retry_after = r.header("Retry-After")
        assert retry_after is not None and retry_after.strip().isdigit(), r.headers
        assert int(retry_after) >= 1
    assert it.count("tickets") == len(accepted), "a limited request must commit nothing"
    wait_for(lambda: it.error_count("rate_limited") >= before + len(limited), 5,
             what="rate_limited counted")
    # Other clients are not limited by this one.
    other = it.post("/v1/reports", report_bytes(), content_type=JSON, client="feeder")
    assert other.status == 201, other
