"""wasl-caselookup end to end: seeded cases, two workers behind a real bus, intake's
GET /v1/cases/{number} and the IVR's case_status menu — verification, identical denials,
lockout and its expiry, the append-only audit, cache invalidation, a worker dying mid-request."""

import email
import email.policy
import json
import signal
import urllib.parse
import uuid

import psycopg2
import pytest

from case_helpers import case_stack, luhn_ok, unique_id, unique_phone
from conftest import REPO, base_env, free_port, parse_metrics, wait_for
from intake_helpers import Client, default_clients, new_token, run_waslctl, to_arabic_indic

LOCK_S = 3
MAX_FAILURES = 5

# A case written by hand, so the truth table knows exactly who its parties are.
CASE = "4512345670"
OTHER_CASE = "4612345679"
PLAINTIFF_ID = "1000000008"   # passes the Luhn check
LAWYER_ID = "1000000016"
STRANGER_ID = "1000000024"
PLAINTIFF_PHONE = "+966551230001"
STRANGER_PHONE = "+966551239999"


@pytest.fixture(scope="module")
def stack(postgres, redis_server, tmp_path_factory):
    """A database with seeded and hand-made cases, a bus, two caselookup workers connected as
    the wasl_caselookup role, and an intake with a `cases` client and a telephony client."""
    clients = default_clients() + [
        Client("caseapi", "api", "cases", token=new_token()),
        # Telephony clients trusted for caller ID: their caller numbers verify.
        Client("pbx", "telephony", "calls", token=new_token(), trusted_ani=True),
        Client("telco", "telephony", "cases", token=new_token(), trusted_ani=True),
        # The same kinds without that trust: a phone from them never verifies.
        Client("pbx2", "telephony", "calls", token=new_token()),
    ]

    def seed(name, db_url):
        ctl_env = base_env(postgres, redis_server)
        ctl_env["WASL_PG_URL"] = db_url
        seeded = run_waslctl(ctl_env, "seed-cases", "40", "--seed", "7")
        assert seeded.returncode == 0, seeded.stderr
        conn = postgres.connect(name)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM circuits WHERE name_ar = 'الدائرة الإدارية الثالثة' "
                        "ORDER BY id LIMIT 1")
            circuit = cur.fetchone()[0]
            for number in (CASE, OTHER_CASE):
                cur.execute("INSERT INTO cases (case_number, circuit_id, subject_ar, subject_en,"
                            " status, filed_at) VALUES (%s, %s, 'إلغاء قرار إداري',"
                            " 'annulment', 'in_hearing', now() - interval '90 days')"
                            " RETURNING id", (number, circuit))
                cid = cur.fetchone()[0]
                if number == CASE:
                    cur.execute("INSERT INTO case_parties (case_id, role, name_ar, national_id,"
                                " phone) VALUES (%s, 'plaintiff', 'سارة العتيبي', %s, %s),"
                                " (%s, 'representative', 'المحامي فهد', %s, NULL),"
                                " (%s, 'defendant', 'وزارة التعليم', NULL, NULL)",
                                (cid, PLAINTIFF_ID, PLAINTIFF_PHONE, cid, LAWYER_ID, cid))
                else:
                    cur.execute("INSERT INTO case_parties (case_id, role, name_ar, national_id,"
                                " phone) VALUES (%s, 'plaintiff', 'خالد', %s, %s)",
                                (cid, STRANGER_ID, STRANGER_PHONE))
                cur.execute("INSERT INTO case_hearings (case_id, starts_at, kind_ar, kind_en)"
                            " VALUES (%s, now() - interval '30 days', 'جلسة مرافعة', 'pleading'),"
                            " (%s, date_trunc('day', now()) + interval '12 days 6 hours 30 minutes',"
                            " 'جلسة النطق بالحكم', 'pronouncement of judgment')", (cid, cid))
                cur.execute("INSERT INTO case_updates (case_id, at, text_ar, text_en) VALUES"
                            " (%s, now() - interval '80 days', 'تم قيد الدعوى', 'Registered'),"
                            " (%s, now() - interval '20 days', 'تم تأجيل الجلسة', 'Adjourned'),"
                            " (%s, now() - interval '10 days', 'قدمت الجهة مذكرتها', 'Reply filed'),"
                            " (%s, now() - interval '5 days', 'حجزت القضية للحكم', 'Reserved')",
                            (cid, cid, cid, cid))
        conn.close()
        return {"seed": seeded, "role_url": role_url(db_url)}

    def role_url(db_url):
        return db_url.replace("postgres@", "wasl_caselookup@")

    yield from case_stack(postgres, redis_server, tmp_path_factory.mktemp("caselookup"),
                          "wasl_m", clients, {
                              "WASL_CASELOOKUP_LOCK_S": str(LOCK_S),
                              "WASL_CASELOOKUP_WINDOW_S": "60",
                              "WASL_CASELOOKUP_MAX_FAILURES": str(MAX_FAILURES),
                              "WASL_CASELOOKUP_CASE_MAX_FAILURES": "1000",
                              "WASL_CASELOOKUP_CACHE_TTL_S": "60"},
                          seed, worker_db_url=role_url)


def lookup(stack, number, client="caseapi", **query):
    q = urllib.parse.urlencode(query)
    path = f"/v1/cases/{urllib.parse.quote(number)}" + (f"?{q}" if q else "")
    return stack["intake"].get(path, client=client)


def audit_rows(postgres, stack, where="TRUE", args=()):
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute(f"SELECT outcome, reason, verifier_kind, verifier_masked, channel, client,"
                    f" call_id, case_number FROM case_lookup_audit WHERE {where} ORDER BY id", args)
        rows = cur.fetchall()
    conn.close()
    return rows




def metric_sum(stack, name, match=""):
    total = 0.0
    for w in stack["workers"]:
        if not w.alive():
            continue
        for line in w.get("/metrics")[1].splitlines():
            if line.startswith(name) and match in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


# ---- seed -----------------------------------------------------------------------------------

def test_seed_prints_three_parties_to_try(stack, postgres):
    out = stack["seed"]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout
    assert "100%" in out.stderr  # the progress bar reached its end
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        for line in lines:
            number, nid, phone = line.split("\t")
            assert len(number) == 10 and number[:2] in ("44", "45", "46", "47")
            assert luhn_ok(nid), nid
            assert phone.startswith("+9665") and len(phone) == 13
            cur.execute("SELECT count(*) FROM case_parties p JOIN cases c ON c.id = p.case_id"
                        " WHERE c.case_number = %s AND p.national_id = %s AND p.phone = %s",
                        (number, nid, phone))
            assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(DISTINCT co.city_ar) FROM cases c JOIN circuits ci"
                    " ON ci.id = c.circuit_id JOIN courts co ON co.id = ci.court_id")
        assert cur.fetchone()[0] >= 3
        cur.execute("SELECT bool_or(starts_at < now()), bool_or(starts_at > now())"
                    " FROM case_hearings")
        assert cur.fetchone() == (True, True)
    conn.close()
    # Each printed party can look their case up.
    number, nid, phone = lines[0].split("\t")
    r = lookup(stack, number, national_id=nid)
    assert r.status == 200, r.raw
    r = lookup(stack, to_arabic_indic(number), client="telco", caller=phone)
    assert r.status == 200, r.raw


# ---- verification -----------------------------------------------------------------------

@pytest.mark.parametrize("number,query,status", [
    (CASE, {"national_id": PLAINTIFF_ID}, 200),
    (CASE, {"national_id": LAWYER_ID}, 200),             # any party may ask
    (CASE, {"caller": PLAINTIFF_PHONE}, 200),
    (CASE, {"caller": "0551230001"}, 200),                # national form, normalized
    (CASE, {"national_id": to_arabic_indic(PLAINTIFF_ID)}, 200),
    (to_arabic_indic(CASE), {"national_id": PLAINTIFF_ID}, 200),
    (CASE, {"national_id": STRANGER_ID}, 404),            # a party of another case
    (CASE, {"caller": STRANGER_PHONE}, 404),
    (OTHER_CASE, {"national_id": PLAINTIFF_ID}, 404),
    ("4799999990", {"national_id": PLAINTIFF_ID}, 404),   # no such case
    ("12345", {"national_id": PLAINTIFF_ID}, 400),
    (CASE, {}, 400),
    (CASE, {"national_id": PLAINTIFF_ID, "caller": PLAINTIFF_PHONE}, 400),
    (CASE, {"national_id": "12"}, 400),
])
def test_verification_truth_table(stack, number, query, status):
    # A phone verifies only from a telephony client trusted for caller ID (test_phone_* below).
    r = lookup(stack, number, client="telco" if "caller" in query else "caseapi", **query)
    assert r.status == status, r.raw


def test_scope_required(stack):
    r = lookup(stack, CASE, client="portal", national_id=PLAINTIFF_ID)
    assert r.status == 403, r.raw


def test_not_found_and_not_yours_are_identical(stack):
    nid = unique_id()
    not_yours = lookup(stack, CASE, national_id=nid)
    no_case = lookup(stack, "4799999990", national_id=nid)
    assert not_yours.status == no_case.status == 404
    assert not_yours.raw == no_case.raw
    assert not_yours.header("Content-Type") == no_case.header("Content-Type")


def test_found_reply(stack):
    r = lookup(stack, CASE, national_id=PLAINTIFF_ID)
    assert r.status == 200, r.raw
    b = r.json
    assert b["case_number"] == CASE
    assert b["circuit"] == "الدائرة الإدارية الثالثة"
    assert b["status"] == "in_hearing" and b["status_ar"] == "منظورة"
    nh = b["next_hearing"]
    assert nh["utc"].endswith("Z") and nh["local"].endswith("+03:00")
    assert nh["local"][11:16] == "09:30"   # 06:30 UTC in Riyadh
    assert 1447 <= nh["hijri"]["year"] <= 1449
    assert 1 <= nh["hijri"]["month"] <= 12 and nh["hijri"]["month_name_ar"]
    assert nh["hijri"]["month_name_ar"] in nh["text_ar"]
    assert "AH" in nh["text_en"]
    assert len(b["updates"]) == 3 and b["updates"][0] == "حجزت القضية للحكم"
    assert "الدائرة الإدارية الثالثة" in b["speech_ar"]
    assert "جلسة النطق بالحكم" in b["speech_ar"]
    assert "Reserved" in b["speech_en"] and "Third Administrative Circuit" in b["speech_en"]
    # Arabic-Indic digits by default in Arabic text; none of the raw IDs leak into speech.
    assert "٩:٣٠" in nh["text_ar"]
    assert PLAINTIFF_ID not in r.raw.decode()


# ---- lockout ----------------------------------------------------------------------------

def lock_keys(redis):
    return {k: redis.ttl(k) for k in redis.scan_iter("wasl:cl:lock:*")}


def test_lockout_and_expiry(stack, redis_server):
    """The lock is a Redis key with a TTL of LOCK_S; instead of waiting LOCK_S seconds, the
    test checks that TTL and then lets the keys this lockout set expire now."""
    import redis as redis_py
    redis = redis_py.Redis.from_url(redis_server.url, socket_timeout=5)
    caller = unique_phone()
    locks_before = lock_keys(redis)
    for _ in range(MAX_FAILURES):
        r = lookup(stack, CASE, client="telco", caller=caller)
        assert r.status == 404, r.raw
    before = metric_sum(stack, "wasl_caselookup_lockouts_total")
    r = lookup(stack, CASE, client="telco", caller=caller)
    assert r.status == 429, r.raw
    assert r.json["error"]["code"] == "locked"
    assert 1 <= int(r.header("Retry-After")) <= LOCK_S
    assert before >= 1
    ours = {k: ttl for k, ttl in lock_keys(redis).items() if k not in locks_before}
    assert ours, "the lockout set no lock key"
    # Each lock ends by itself after LOCK_S: a lock without a TTL (-1) would never lift.
    assert all(1 <= ttl <= LOCK_S for ttl in ours.values()), ours
    r = lookup(stack, CASE, client="telco", caller=caller)
    assert r.status == 429, r.raw   # still locked until the keys expire
    for k in ours:
        redis.pexpire(k, 1)   # the clock jumps to the end of the lock
    wait_for(lambda: not any(redis.exists(k) for k in ours), 5, what="the lock keys expired")
    r = lookup(stack, CASE, client="telco", caller=caller)
    assert r.status == 404, r.raw   # unlocked again; still not this caller's case
    redis.close()


def test_locked_caller_gets_nothing_even_with_the_right_verifier(stack):
    # The IVR's caller (its phone line) is the lockout identity even when the ID is given.
    phone = unique_phone()
    call = f"lock-{uuid.uuid4().hex[:8]}"
    it = stack["intake"]
    seq = 1
    for _ in range(MAX_FAILURES):
        r = it.post("/v1/calls/events", {"type": "call.ivr", "call_id": call, "seq": seq,
                                         "menu": "case_status", "from": phone}, client="pbx")
        seq += 1
        r = it.post("/v1/calls/events", {"type": "call.ivr", "call_id": call, "seq": seq,
                                         "menu": "case_status", "digits": CASE}, client="pbx")
        seq += 1
        assert r.json["ivr"]["step"] == "national_id", r.raw
        r = it.post("/v1/calls/events", {"type": "call.ivr", "call_id": call, "seq": seq,
                                         "menu": "case_status", "digits": unique_id()},
                    client="pbx")
        seq += 1
        if r.json["ivr"]["outcome"] == "locked":
            break
    # The caller starts over from the menu: whatever they type, the answer is the lockout.
    r = it.post("/v1/calls/events", {"type": "call.ivr", "call_id": call, "seq": seq,
                                     "menu": "case_status"}, client="pbx")
    seq += 1
    assert r.json["ivr"]["step"] == "case_number", r.raw
    r = it.post("/v1/calls/events", {"type": "call.ivr", "call_id": call, "seq": seq,
                                     "menu": "case_status", "digits": CASE}, client="pbx")
    seq += 1
    if r.json["ivr"]["step"] == "national_id":
        r = it.post("/v1/calls/events", {"type": "call.ivr", "call_id": call, "seq": seq,
                                         "menu": "case_status", "digits": PLAINTIFF_ID},
                    client="pbx")
    assert r.json["ivr"]["outcome"] == "locked", r.raw
    assert "إيقاف" in r.json["speech"]["ar"]


# ---- audit ------------------------------------------------------------------------------

def test_audit_row_for_every_outcome(stack, postgres):
    nid = unique_id()
    caller = unique_phone()
    assert lookup(stack, CASE, national_id=PLAINTIFF_ID).status == 200
    assert lookup(stack, CASE, national_id=nid).status == 404
    for _ in range(MAX_FAILURES):
        lookup(stack, OTHER_CASE, client="telco", caller=caller)
    assert lookup(stack, OTHER_CASE, client="telco", caller=caller).status == 429
    # Masked as in the logs (wasl_mask_pii): the last two digits only.
    rows = audit_rows(postgres, stack, "verifier_masked = %s OR caller_masked = %s",
                      ("*" * 8 + nid[-2:], "+" + "*" * 10 + caller[-2:]))
    outcomes = [r[0] for r in rows]
    assert "denied" in outcomes and "locked" in outcomes
    found = audit_rows(postgres, stack, "outcome = 'found' AND case_number = %s", (CASE,))
    assert found and found[-1][4] == "api" and found[-1][5] == "caseapi"
    # Nothing in the audit is a verifier in clear.
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM case_lookup_audit WHERE verifier_masked ~ '^[0-9]{10}$'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT reason, count(*) FROM case_lookup_audit WHERE outcome = 'denied'"
                    " GROUP BY reason")
        reasons = dict(cur.fetchall())
    conn.close()
    assert {"no_case", "not_party"} <= set(reasons)


def test_audit_is_append_only_for_the_service_role(stack, postgres):
    lookup(stack, CASE, national_id=PLAINTIFF_ID)
    conn = psycopg2.connect(stack["role_url"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM case_lookup_audit")
        assert cur.fetchone()[0] > 0
        for sql in ("UPDATE case_lookup_audit SET outcome = 'found'",
                    "DELETE FROM case_lookup_audit",
                    "TRUNCATE case_lookup_audit",
                    "UPDATE cases SET status = 'closed'",
                    "INSERT INTO case_parties (case_id, role, name_ar) VALUES (1, 'plaintiff', 'x')"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(sql)
    conn.close()
    # The trigger holds for every role, the owner included.
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        for sql in ("UPDATE case_lookup_audit SET outcome = 'found'",
                    "DELETE FROM case_lookup_audit"):
            with pytest.raises(psycopg2.Error) as exc:
                cur.execute(sql)
            assert "append-only" in str(exc.value)
    conn.close()


# ---- cache ------------------------------------------------------------------------------

def test_cache_hits_and_invalidation_on_change(stack, postgres):
    assert lookup(stack, OTHER_CASE, national_id=STRANGER_ID).status == 200
    hits = metric_sum(stack, "wasl_caselookup_cache_hits_total")
    for _ in range(4):
        r = lookup(stack, OTHER_CASE, national_id=STRANGER_ID)
        assert r.status == 200 and r.json["status"] == "in_hearing"
    assert metric_sum(stack, "wasl_caselookup_cache_hits_total") >= hits + 3
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("UPDATE cases SET status = 'adjourned' WHERE case_number = %s", (OTHER_CASE,))
    conn.close()
    wait_for(lambda: lookup(stack, OTHER_CASE, national_id=STRANGER_ID).json["status"]
             == "adjourned", 5, what="the change to be seen")
    # A new party is seen at once too (the cached verifiers are dropped).
    newcomer = unique_id()
    assert lookup(stack, OTHER_CASE, national_id=newcomer).status == 404
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("INSERT INTO case_parties (case_id, role, name_ar, national_id)"
                    " SELECT id, 'representative', 'وكيل', %s FROM cases WHERE case_number = %s",
                    (newcomer, OTHER_CASE))
    conn.close()
    wait_for(lambda: lookup(stack, OTHER_CASE, national_id=newcomer).status == 200, 5,
             what="the new party to be verified")
    text = stack["workers"][0].get("/metrics")[1]
    for name in ("wasl_caselookup_lookups_total{outcome=\"found\"}",
                 "wasl_caselookup_cache_hit_ratio", "wasl_caselookup_latency_seconds_bucket"):
        assert name in text, name


# ---- IVR --------------------------------------------------------------------------------

def ivr(it, call, seq, **fields):
    body = {"type": "call.ivr", "call_id": call, "seq": seq, "menu": "case_status"}
    body.update(fields)
    r = it.post("/v1/calls/events", body, client="pbx")
    assert r.status in (200, 201), r.raw
    return r.json


def test_ivr_registered_phone(stack):
    it = stack["intake"]
    call = f"ivr-{uuid.uuid4().hex[:8]}"
    r = it.post("/v1/calls/events", {"type": "call.started", "call_id": call, "seq": 1,
                                     "from": "0551230001"}, client="pbx")
    assert r.status in (200, 201)
    a = ivr(it, call, 2, **{"from": "0551230001"})
    assert a["ivr"]["step"] == "case_number" and a["ivr"]["expect_digits"]
    assert "رقم القضية" in a["speech"]["ar"]
    b = ivr(it, call, 3, digits=to_arabic_indic(CASE))
    assert b["ivr"]["outcome"] == "found", b
    assert "الدائرة الإدارية الثالثة" in b["speech"]["ar"]
    assert "next hearing" in b["speech"]["en"]
    # The PBX retried seq 3: same answer, nothing moves.
    again = ivr(it, call, 3, digits=to_arabic_indic(CASE))
    assert again["speech"] == b["speech"] and again["duplicate"] is True


def test_ivr_unregistered_phone_asks_for_the_id(stack):
    it = stack["intake"]
    call = f"ivr-{uuid.uuid4().hex[:8]}"
    a = ivr(it, call, 1, **{"from": unique_phone()})
    assert a["ivr"]["step"] == "case_number"
    b = ivr(it, call, 2, digits="123")   # too short: asked again
    assert b["ivr"]["step"] == "case_number" and "غير مكتمل" in b["speech"]["ar"]
    c = ivr(it, call, 3, digits=CASE)
    assert c["ivr"]["step"] == "national_id", c
    d = ivr(it, call, 4, digits=to_arabic_indic(LAWYER_ID))
    assert d["ivr"]["outcome"] == "found", d
    assert d["ivr"]["step"] == "done"
    # The typed ID is kept in the call's events only masked.
    conn = psycopg2.connect(stack["db_url"])
    with conn.cursor() as cur:
        cur.execute("SELECT data->>'digits' FROM call_events WHERE call_id = %s AND seq = 4",
                    (call,))
        stored = cur.fetchone()[0]
    conn.close()
    assert LAWYER_ID not in stored and to_arabic_indic(LAWYER_ID) not in stored
    assert "*" in stored


def test_ivr_anonymous_caller_wrong_id(stack):
    it = stack["intake"]
    call = f"ivr-{uuid.uuid4().hex[:8]}"
    ivr(it, call, 1)
    c = ivr(it, call, 2, digits=CASE)
    assert c["ivr"]["step"] == "national_id"
    d = ivr(it, call, 3, digits=unique_id())
    assert d["ivr"]["outcome"] == "denied"
    assert "لا يمكننا" in d["speech"]["ar"]


# ---- resilience -------------------------------------------------------------------------

def test_worker_stopped_mid_request_then_killed(stack):
    """One worker hangs (SIGSTOP) with requests in hand: the client's retry reaches the other,
    every lookup succeeds; then the hung worker is killed and lookups still succeed."""
    workers = stack["workers"]
    victim = workers[0]
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(4):
            r = lookup(stack, CASE, national_id=PLAINTIFF_ID)
            assert r.status == 200, r.raw
    finally:
        victim.kill()
    for _ in range(4):
        r = lookup(stack, CASE, national_id=PLAINTIFF_ID)
        assert r.status == 200, r.raw
    m = stack["intake"].metrics()
    assert "wasl_rpc_retries_total" in m


ATTACKER_EMAIL = "attacker@evil.test"
LAWYER_EMAIL = "lawyer@firm.test"
CIRCUIT = "الدائرة الإدارية الثالثة"


def _start_router_and_notifier(stack, postgres, redis_server, daemon, tmp_path):
    """A router with auto-answer on (the shipped rules, auto_answer: true) and a notifier that
    sends to an SMS sink and a real SMTP server; returns (router, sms sink, mail sink)."""
    from test_notifier import KannelSink, MailSink, TEMPLATES
    from aiosmtpd.controller import Controller
    rules = tmp_path / "routing.yaml"
    text = (REPO / "deploy" / "config" / "routing.yaml").read_text(encoding="utf-8")
    rules.write_text(text.replace("\nauto_answer: false", "\nauto_answer: true", 1),
                     encoding="utf-8")
    sms = KannelSink()
    mail = MailSink()
    smtp_port = free_port()
    ctl = Controller(mail, hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    router = daemon("router", env={
        "WASL_PG_URL": stack["db_url"], "WASL_BUS": stack["bus"].endpoint,
        "WASL_ROUTER_RULES": str(rules), "WASL_ROUTER_AUTO_ANSWER": "true",
        "WASL_ROUTER_SWEEP_MS": "100", "WASL_ROUTER_SWEEP_AGE_MS": "0"}, wait=True)
    daemon("notifier", env={
        "WASL_PG_URL": stack["db_url"], "WASL_BUS": "", "WASL_NOTIFIER_TEMPLATES": TEMPLATES,
        "WASL_NOTIFIER_SWEEP_MS": 100, "WASL_SMS_URL": sms.url, "WASL_SMS_USER": "wasl",
        "WASL_SMS_PASSWORD": "s3cret", "WASL_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "WASL_MAIL_FROM": "ديوان المظالم <noreply@bog.test>", "WASL_MAIL_DOMAIN": "bog.test",
        "WASL_NOTIFIER_QUIET_START_H": 0, "WASL_NOTIFIER_QUIET_END_H": 0,
        "WASL_NOTIFIER_RCPT_MAX": 0, "WASL_NOTIFIER_TICKET_MAX": 0}, wait=True)
    return router, sms, mail, ctl


def _inquiry(stack, nid, email=None, phone=None, call=None):
    """A web report through intake naming a case and an ID, then left as the classifier leaves
    a case inquiry (category, case number, a route work row) so that only the router runs.
    call=(client, ani) makes it a call's ticket as intake records one (the phone channel, the
    PBX client, the caller's number) — before the work row exists, so the router never sees
    it half made. Returns (ref, ticket id)."""
    it = stack["intake"]
    who = {"national_id": nid} if nid else {}
    if email:
        who["email"] = email
    if phone:
        who["phone"] = phone
    r = it.report(body={"channel": "web", "external_id": f"aa-{uuid.uuid4().hex}",
                        "body": f"متى الجلسة القادمة في القضية رقم {CASE}؟", "from": who})
    assert r.status == 201, r.raw
    ref = r.json["ticket"]
    conn = psycopg2.connect(stack["db_url"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("UPDATE tickets SET status = 'classified', category = 'case_inquiry',"
                    " priority = 'normal', language = 'ar', case_number = %s, entities = %s"
                    " WHERE ref = %s RETURNING id", (CASE, json.dumps({"case_number": [CASE]}),
                                                      ref))
        tid = cur.fetchone()[0]
        if call:
            cur.execute("UPDATE tickets SET channel = 'phone', client_id = %s, from_phone = %s"
                        " WHERE id = %s", (call[0], call[1], tid))
        cur.execute("INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (%s, 'route', %s)",
                    (tid, f"ticket:{tid}:route"))
    conn.close()
    return ref, tid


def _db_rows(stack, sql, args=()):
    conn = psycopg2.connect(stack["db_url"])
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def _view(stack, ref):
    """GET /v1/tickets/{ref} as its submitter, minus what differs between any two tickets."""
    r = stack["intake"].get(f"/v1/tickets/{ref}", client="portal")
    assert r.status == 200, r.raw
    doc = r.json
    for k in ("ticket", "created_at", "updated_at"):
        assert k in doc
        doc.pop(k)
    for e in doc["history"]:
        e.pop("at")
    return doc


def test_auto_answer_goes_only_to_the_contact_on_file(stack, postgres, redis_server, daemon,
                                                      tmp_path):
    """Finding 4 (a), (c): a web report carrying a party's national ID, a case number and the
    submitter's own e-mail. The answer goes to the party's phone on file (SMS) — never to the
    typed address, which gets only the ordinary acknowledgement, with no case data — and the
    audit row names the ticket and the masked recipient. A party with only an e-mail on file is
    answered there; a party with no contact on file is not answered at all (routed)."""
    conn = psycopg2.connect(stack["db_url"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("UPDATE case_parties SET email = %s WHERE national_id = %s",
                    (LAWYER_EMAIL, LAWYER_ID))
    conn.close()
    router, sms, mail, ctl = _start_router_and_notifier(stack, postgres, redis_server, daemon,
                                                        tmp_path)
    try:
        ref_p, tid_p = _inquiry(stack, PLAINTIFF_ID, email=ATTACKER_EMAIL)
        ref_l, tid_l = _inquiry(stack, LAWYER_ID, email=ATTACKER_EMAIL)
        ref_s, tid_s = _inquiry(stack, unique_id(), email=ATTACKER_EMAIL)

        def sent(tid):
            return _db_rows(stack, "SELECT kind, channel, recipient, state FROM notifications"
                            " WHERE ticket_id = %s ORDER BY kind", (tid,))
        wait_for(lambda: all(r[3] == "sent" for r in sent(tid_p)) and len(sent(tid_p)) == 2,
                 30, what="the party's answer and the submitter's ack sent")
        wait_for(lambda: len(sent(tid_l)) == 2 and all(r[3] == "sent" for r in sent(tid_l)),
                 30, what="the lawyer's answer by e-mail and the ack sent")
        wait_for(lambda: len(sent(tid_s)) == 1 and sent(tid_s)[0][3] == "sent", 30,
                 what="the stranger's ack sent")
        assert [r[:3] for r in sent(tid_p)] == [("ack", "email", ATTACKER_EMAIL),
                                                ("case_answer", "sms", PLAINTIFF_PHONE)]
        assert [r[:3] for r in sent(tid_l)] == [("ack", "email", ATTACKER_EMAIL),
                                                ("case_answer", "email", LAWYER_EMAIL)]
        assert [r[:3] for r in sent(tid_s)] == [("ack", "email", ATTACKER_EMAIL)]
        # What reached the wire: the answer at the party's phone and the lawyer's address …
        [answer_sms] = sms.to(PLAINTIFF_PHONE)
        assert CIRCUIT in answer_sms["text"] and ref_p in answer_sms["text"]
        wait_for(lambda: any(LAWYER_EMAIL in m[1] for m in mail.messages), 10,
                 what="the lawyer's answer delivered")
        # … and nothing about the case at the address the submitter typed: three plain acks.
        to_attacker = [m for m in mail.messages if ATTACKER_EMAIL in m[1]]
        wait_for(lambda: len([m for m in mail.messages if ATTACKER_EMAIL in m[1]]) == 3, 10,
                 what="three acks at the typed address")
        for _, _, content in to_attacker:
            text = email.message_from_bytes(content, policy=email.policy.default)
            body = "".join(p.get_content() for p in text.walk()
                           if p.get_content_maintype() == "text")
            assert CIRCUIT not in body and "جلسة" not in body, body
        # The audit names the ticket and where the answer went, masked.
        rows = dict((r[0], r[1:]) for r in _db_rows(
            stack, "SELECT ticket_ref, outcome, recipient_kind, recipient_masked FROM"
            " case_lookup_audit WHERE ticket_ref = ANY(%s)", ([ref_p, ref_l, ref_s],)))
        assert rows[ref_p][:2] == ("found", "sms")
        assert rows[ref_p][2] != PLAINTIFF_PHONE and rows[ref_p][2].endswith(PLAINTIFF_PHONE[-2:])
        assert rows[ref_l][:2] == ("found", "email")
        assert rows[ref_l][2] != LAWYER_EMAIL
        assert rows[ref_s] == ("denied", None, None)
        # The internal record, for the agent who takes the ticket.
        [(detail,)] = _db_rows(stack, "SELECT data FROM ticket_events WHERE ticket_id = %s AND"
                               " kind = 'auto_answered'", (tid_p,))
        assert detail["channel"] == "sms" and detail["recipient"] != PLAINTIFF_PHONE
    finally:
        ctl.stop()
        sms.close()


def test_ticket_view_is_the_same_answered_or_not(stack, postgres, redis_server, daemon,
                                                 tmp_path):
    """Finding 4 (b): the submitter's view of a ticket whose typed ID belongs to a party (an
    answer went to the party's phone) and of one whose ID does not are identical — status,
    queue, fields, history — once both are routed: the ticket is no oracle."""
    router, sms, mail, ctl = _start_router_and_notifier(stack, postgres, redis_server, daemon,
                                                        tmp_path)
    try:
        ref_p, tid_p = _inquiry(stack, PLAINTIFF_ID, phone=unique_phone())
        ref_s, tid_s = _inquiry(stack, unique_id(), phone=unique_phone())

        def routed(tid):
            rows = _db_rows(stack, "SELECT count(*) FROM ticket_events WHERE ticket_id = %s"
                            " AND kind = 'routed'", (tid,))
            return rows[0][0] == 1
        wait_for(lambda: routed(tid_p) and routed(tid_s), 30, what="both inquiries routed")
        assert _db_rows(stack, "SELECT count(*) FROM ticket_events WHERE ticket_id = %s AND"
                        " kind = 'auto_answered'", (tid_p,))[0][0] == 1, "the party was answered"
        wait_for(lambda: sms.to(PLAINTIFF_PHONE), 30, what="the answer at the phone on file")

        def all_sent(tid, n):
            rows = _db_rows(stack, "SELECT state FROM notifications WHERE ticket_id = %s", (tid,))
            return len(rows) == n and all(r[0] == "sent" for r in rows)
        wait_for(lambda: all_sent(tid_p, 2) and all_sent(tid_s, 1), 30,
                 what="answer and acks sent")
        answered, not_answered = _view(stack, ref_p), _view(stack, ref_s)
        assert answered == not_answered
        assert answered["status"] == "routed" and answered["queue"] == "case-status"
    finally:
        ctl.stop()
        sms.close()


def test_a_phone_verifies_an_auto_answer_only_from_a_trusted_caller_line(
        stack, postgres, redis_server, daemon, tmp_path):
    """Findings 4 and 6: a web report that types a party's phone (and no ID) is never looked up
    — a typed phone is self-declared — whereas the same phone on a phone-channel ticket opened
    by a telephony client trusted for caller ID verifies, and the answer goes to the phone on
    file. The untrusted PBX's ticket is treated like the web report."""
    router, sms, mail, ctl = _start_router_and_notifier(stack, postgres, redis_server, daemon,
                                                        tmp_path)
    try:
        typed_ref, typed = _inquiry(stack, None, phone=PLAINTIFF_PHONE)
        trusted_ref, trusted = _inquiry(stack, None, phone=unique_phone(),
                                        call=("pbx", PLAINTIFF_PHONE))
        untrusted_ref, untrusted = _inquiry(stack, None, phone=unique_phone(),
                                            call=("pbx2", PLAINTIFF_PHONE))

        def reason(tid):
            rows = _db_rows(stack, "SELECT data->>'auto_answer' FROM ticket_events WHERE"
                            " ticket_id = %s AND kind = 'routed'", (tid,))
            return rows[0][0] if rows else None
        wait_for(lambda: all(reason(t) for t in (typed, trusted, untrusted)), 30,
                 what="the three inquiries routed")
        for tid in (typed, untrusted):
            assert reason(tid) == "not answered: no national ID or trusted caller line to " \
                "verify", reason(tid)
        answered = _db_rows(stack, "SELECT ticket_id FROM ticket_events WHERE kind ="
                            " 'auto_answered' AND ticket_id = ANY(%s)",
                            ([typed, trusted, untrusted],))
        assert answered == [(trusted,)]
        audited = _db_rows(stack, "SELECT ticket_ref, outcome FROM case_lookup_audit WHERE"
                           " ticket_ref = ANY(%s)", ([typed_ref, trusted_ref, untrusted_ref],))
        assert audited == [(trusted_ref, "found")]
        wait_for(lambda: any(trusted_ref in m["text"] for m in sms.to(PLAINTIFF_PHONE)), 30,
                 what="the answer at the phone on file")
    finally:
        ctl.stop()
        sms.close()


def _both_workers(stack):
    """Restarts a worker an earlier test killed: a resend should be able to reach another."""
    for w in stack["workers"]:
        if not w.alive():
            w.start()
            w.wait_healthy()
            wait_for(lambda w=w: w.get("/readyz")[0] == 200, 10, what="caselookup ready")


def test_resent_lookup_is_answered_once(stack, postgres):
    """Finding 15: a worker slower than the client's timeout (its audit commit waits on a lock)
    makes intake's rpc client resend; the resend reaches a worker that waits for the first
    one's answer instead of looking up again. The client gets the ordinary answer, the failure
    is counted once and one audit row is written."""
    _both_workers(stack)
    stranger = unique_id()
    denied_before = metric_sum(stack, "wasl_caselookup_lookups_total", 'outcome="denied"')
    replayed_before = metric_sum(stack, "wasl_caselookup_resends_answered_total")
    retries_before = stack["intake"].metrics().get("wasl_rpc_retries_total", 0)
    rows_before = _db_rows(stack, "SELECT count(*) FROM case_lookup_audit")[0][0]
    lock = psycopg2.connect(stack["db_url"])
    result = {}
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE case_lookup_audit IN EXCLUSIVE MODE")
        import threading
        t = threading.Thread(target=lambda: result.update(
            r=lookup(stack, CASE, national_id=stranger)))
        t.start()
        wait_for(lambda: stack["intake"].metrics().get("wasl_rpc_retries_total", 0)
                 > retries_before, 10, what="intake resent the lookup")
    finally:
        lock.rollback()  # the slow worker's commit goes through now
        lock.close()
    t.join(10)
    assert not t.is_alive()
    assert result["r"].status == 404, result["r"].raw
    wait_for(lambda: metric_sum(stack, "wasl_caselookup_lookups_total", 'outcome="denied"')
             - denied_before >= 1, 10, what="the lookup counted")
    assert _db_rows(stack, "SELECT count(*) FROM case_lookup_audit")[0][0] - rows_before == 1
    assert metric_sum(stack, "wasl_caselookup_lookups_total", 'outcome="denied"') \
        - denied_before == 1
    assert metric_sum(stack, "wasl_caselookup_resends_answered_total") - replayed_before >= 1


def test_resend_taken_over_from_a_stopped_worker(stack, redis_server):
    """Finding 15, the other half: the worker holding a request is stopped (SIGSTOP) while its
    audit commit waits. Its liveness key expires, so the resend is not left waiting for an
    answer that will never come: the other worker takes the request over and the client gets
    its answer in time. The stopped worker's audit row went in (its statement was already at
    the server); the taker's is refused by the unique request hash: one row."""
    import threading
    import redis as redis_py
    _both_workers(stack)
    stranger = unique_id()
    r = redis_py.Redis.from_url(redis_server.url, socket_timeout=5)
    rows_before = _db_rows(stack, "SELECT count(*) FROM case_lookup_audit")[0][0]
    by_pid = {w.proc.pid: w for w in stack["workers"] if w.alive()}
    assert len(by_pid) == 2
    lock = psycopg2.connect(stack["db_url"])
    result, victim = {}, None
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE case_lookup_audit IN EXCLUSIVE MODE")
        t = threading.Thread(target=lambda: result.update(
            r=lookup(stack, CASE, national_id=stranger)))
        t.start()

        def holder():
            for key in r.scan_iter(match="wasl:cl:req:*", count=1000):
                v = r.get(key)
                if v and v[64:65] == b"P":
                    # "caselookup@host:pid:nonce"
                    return int(v[65:].decode().rsplit(":", 2)[1])
            return None
        pid = wait_for(holder, 10, what="a worker claiming the request")
        victim = by_pid[pid]
        victim.proc.send_signal(signal.SIGSTOP)
    finally:
        lock.rollback()
        lock.close()
    try:
        t.join(10)
        assert not t.is_alive()
        assert result["r"].status == 404, result["r"].raw
        wait_for(lambda: _db_rows(stack, "SELECT count(*) FROM case_lookup_audit")[0][0]
                 > rows_before, 10, what="the audit row")
        [taker] = [w for p, w in by_pid.items() if p != pid]
        wait_for(lambda: parse_metrics(taker.get("/metrics")[1]).get(
            "wasl_caselookup_audit_duplicates_total", 0) >= 1, 10,
            what="the taker's audit row refused as a duplicate")
        assert _db_rows(stack, "SELECT count(*) FROM case_lookup_audit")[0][0] - rows_before == 1
    finally:
        victim.proc.send_signal(signal.SIGCONT)
