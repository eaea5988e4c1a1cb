"""wasl-caselookup end to end: seeded cases, two workers behind a real bus, intake's
GET /v1/cases/{number} and the IVR's case_status menu — verification, identical denials,
lockout and its expiry, the append-only audit, cache invalidation, a worker dying mid-request."""

import json
import signal
import time
import urllib.parse
import uuid

import psycopg2
import pytest

from conftest import REPO, BIN_DIR, Daemon, base_env, free_port, free_port_range, parse_metrics, wait_for
from intake_helpers import Client, default_clients, launch_intake, new_token, run_waslctl, \
    to_arabic_indic

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


def luhn_ok(d):
    s = 0
    for i, ch in enumerate(d):
        v = int(ch)
        if i % 2 == 0:
            v *= 2
            v = v // 10 + v % 10
        s += v
    return len(d) == 10 and d[0] in "12" and s % 10 == 0


def valid_id(prefix):
    """A Luhn-valid ID starting with the 9 digits of `prefix`."""
    for last in "0123456789":
        if luhn_ok(prefix + last):
            return prefix + last
    raise AssertionError(prefix)


def unique_phone():
    return "+9665" + str(uuid.uuid4().int % 10**8).zfill(8)


def unique_id():
    return valid_id("1" + str(uuid.uuid4().int % 10**8).zfill(8))


@pytest.fixture(scope="module")
def stack(postgres, redis_server, tmp_path_factory):
    """A database with seeded and hand-made cases, a bus, two caselookup workers connected as
    the wasl_caselookup role, and an intake with a `cases` client and a telephony client."""
    log_dir = tmp_path_factory.mktemp("caselookup")
    name = f"wasl_m_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    db_url = postgres.url_for(name)
    started = []
    try:
        base = free_port_range(8)
        env = base_env(postgres, redis_server)
        env.update({"WASL_BUS_BIND": "127.0.0.1", "WASL_BUS_PORT": str(base),
                    "WASL_ADMIN_BIND": "127.0.0.1", "WASL_ADMIN_PORT": str(free_port())})
        bus = Daemon("bus", BIN_DIR / "wasl-bus", env, log_dir,
                     admin_port=int(env["WASL_ADMIN_PORT"]))
        started.append(bus)
        bus.start()
        bus.wait_healthy()
        bus.endpoint = f"tcp://127.0.0.1:{base}"
        clients = default_clients() + [
            Client("caseapi", "api", "cases", token=new_token()),
            Client("pbx", "telephony", "calls", token=new_token()),
        ]
        it = launch_intake(postgres, redis_server, db_url, log_dir, clients=clients,
                           bus_daemon=bus)
        started.append(it)
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
        role_url = db_url.replace("postgres@", "wasl_caselookup@")
        workers = []
        for i in range(2):
            wenv = base_env(postgres, redis_server)
            wenv.update({"WASL_PG_URL": role_url, "WASL_BUS": bus.endpoint,
                         "WASL_ADMIN_BIND": "127.0.0.1", "WASL_ADMIN_PORT": str(free_port()),
                         "WASL_CASELOOKUP_LOCK_S": str(LOCK_S),
                         "WASL_CASELOOKUP_WINDOW_S": "60",
                         "WASL_CASELOOKUP_MAX_FAILURES": str(MAX_FAILURES),
                         "WASL_CASELOOKUP_CASE_MAX_FAILURES": "1000",
                         "WASL_CASELOOKUP_CACHE_TTL_S": "60"})
            w = Daemon("caselookup", BIN_DIR / "wasl-caselookup", wenv, log_dir,
                       admin_port=int(wenv["WASL_ADMIN_PORT"]))
            started.append(w)
            w.start()
            w.wait_healthy()
            workers.append(w)
        for w in workers:
            wait_for(lambda w=w: w.get("/readyz")[0] == 200, 10, what="caselookup ready")
        yield {"intake": it, "workers": workers, "db": name, "db_url": db_url,
               "role_url": role_url, "seed": seeded, "bus": bus}
    finally:
        for d in reversed(started):
            (d.close if hasattr(d, "close") else d.kill)()
        if not postgres.running():
            postgres.start()
        postgres.drop_database(name)


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
    r = lookup(stack, to_arabic_indic(number), caller=phone)
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
    r = lookup(stack, number, **query)
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

def test_lockout_and_expiry(stack):
    caller = unique_phone()
    for _ in range(MAX_FAILURES):
        r = lookup(stack, CASE, caller=caller)
        assert r.status == 404, r.raw
    before = metric_sum(stack, "wasl_caselookup_lockouts_total")
    r = lookup(stack, CASE, caller=caller)
    assert r.status == 429, r.raw
    assert r.json["error"]["code"] == "locked"
    assert 1 <= int(r.header("Retry-After")) <= LOCK_S
    assert before >= 1
    time.sleep(LOCK_S + 1)
    r = lookup(stack, CASE, caller=caller)
    assert r.status == 404, r.raw   # unlocked again; still not this caller's case


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
        lookup(stack, OTHER_CASE, caller=caller)
    assert lookup(stack, OTHER_CASE, caller=caller).status == 429
    rows = audit_rows(postgres, stack, "verifier_masked = %s OR caller_masked LIKE %s",
                      (nid[0] + "*******" + nid[-2:], caller[:5] + "%" + caller[-2:]))
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


def test_router_auto_answers_a_verified_party_and_routes_the_rest(stack, postgres, redis_server,
                                                                   tmp_path):
    """With auto-answer on, a case inquiry from a party of the case is answered by caselookup
    (a case_answer notification, the ticket resolved as self-service); a non-party's inquiry
    goes to the case-status queue with an ordinary acknowledgement."""
    rules = tmp_path / "routing.yaml"
    text = (REPO / "deploy" / "config" / "routing.yaml").read_text(encoding="utf-8")
    rules.write_text(text.replace("\nauto_answer: false", "\nauto_answer: true", 1),
                     encoding="utf-8")
    conn = postgres.connect(stack["db"])
    tickets = {}
    with conn.cursor() as cur:
        for ref, nid, phone in (("2699999991", PLAINTIFF_ID, PLAINTIFF_PHONE),
                                ("2699999992", STRANGER_ID, STRANGER_PHONE)):
            # As the classifier leaves it: the case number among the entities.
            cur.execute("INSERT INTO tickets (ref, channel, external_id, status, category,"
                        " priority, language, case_number, from_national_id, from_phone,"
                        " entities) VALUES (%s, 'api', %s, 'classified', 'case_inquiry',"
                        " 'normal', 'ar', %s, %s, %s, %s) RETURNING id",
                        (ref, f"auto-{ref}", CASE, nid, phone,
                         json.dumps({"case_number": [CASE]})))
            tid = cur.fetchone()[0]
            cur.execute("INSERT INTO work (ticket_id, stage, dedupe_key) VALUES (%s, 'route', %s)",
                        (tid, f"ticket:{tid}:route"))
            tickets[ref] = tid
    renv = base_env(postgres, redis_server)
    renv.update({"WASL_PG_URL": stack["db_url"], "WASL_BUS": stack["bus"].endpoint,
                 "WASL_ROUTER_RULES": str(rules), "WASL_ROUTER_AUTO_ANSWER": "true",
                 "WASL_ROUTER_SWEEP_MS": "100", "WASL_ROUTER_SWEEP_AGE_MS": "0",
                 "WASL_ADMIN_BIND": "127.0.0.1", "WASL_ADMIN_PORT": str(free_port())})
    router = Daemon("router", BIN_DIR / "wasl-router", renv, tmp_path,
                    admin_port=int(renv["WASL_ADMIN_PORT"]))
    router.start()
    try:
        router.wait_healthy()

        def status(tid):
            with conn.cursor() as cur:
                cur.execute("SELECT status, queue FROM tickets WHERE id = %s", (tid,))
                return cur.fetchone()
        wait_for(lambda: status(tickets["2699999991"])[0] == "resolved", 20,
                 what="the party's inquiry answered")
        wait_for(lambda: status(tickets["2699999992"])[0] == "routed", 20,
                 what="the stranger's inquiry routed")
        with conn.cursor() as cur:
            cur.execute("SELECT kind, params->>'answer' FROM notifications WHERE ticket_id = %s",
                        (tickets["2699999991"],))
            kind, answer = cur.fetchone()
            assert kind == "case_answer"
            assert "الدائرة الإدارية الثالثة" in answer
            cur.execute("SELECT count(*) FROM ticket_events WHERE ticket_id = %s AND kind ="
                        " 'auto_answered'", (tickets["2699999991"],))
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT kind FROM notifications WHERE ticket_id = %s",
                        (tickets["2699999992"],))
            assert [r[0] for r in cur.fetchall()] == ["ack"]
            cur.execute("SELECT data->>'auto_answer' FROM ticket_events WHERE ticket_id = %s"
                        " AND kind = 'routed'", (tickets["2699999992"],))
            assert "not verified" in cur.fetchone()[0]
        assert status(tickets["2699999992"])[1] == "case-status"
        # The stranger's answer is not in any notification.
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM notifications WHERE params::text LIKE %s"
                        " AND ticket_id = %s", ("%الدائرة%", tickets["2699999992"]))
            assert cur.fetchone()[0] == 0
    finally:
        router.kill()
        conn.close()
