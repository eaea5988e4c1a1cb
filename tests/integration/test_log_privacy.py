"""Issue 13, finding 14 (logs): no daemon log shows more than the last two digits of a national ID
or a phone number, whatever key it is logged under (a national ID logged as `caller` used to
show 6 of its 10 digits).

The flows here are the ones that carry personal identifiers through every daemon — case
lookups with a national ID and with a phone over HTTP and through the IVR until the verifier
is locked out, an SMS opt-out (intake logs the number), ordinary SMS, call events and reports
carrying numbers — every daemon at debug level. The test first checks that a masked value is
really logged (so it scans logs that carry the values, and would see them unmasked), that no
identifier key anywhere shows more than two digits, then that no run of 5 or more digits of
any value used appears anywhere in any log, in Latin, Arabic-Indic or Persian digits.

Identifiers reach a log two ways, and each test drives one so that it fails when its masking
is removed: under an identifier key (the SMS opt-out's `phone`: wasl_log's key masking), and
inside free text (a PostgreSQL error quoting the row it refused, under `error`: wasl_log's
text masking, and wasl_pg keeping the DETAIL line out)."""

import json
import re
import urllib.parse
import uuid

import pytest

from conftest import BIN_DIR, Daemon, base_env, free_port, free_port_range, pii_in_text, wait_for
from intake_helpers import Client, default_clients, launch_intake, new_token, to_arabic_indic

MAX_FAILURES = 2
CASE = "4598765437"
WINDOW = 5  # no run of this many digits of a value may appear

# The personal data the flows use. Digits chosen so that their 5-digit windows are unlikely to
# be a port or a pid of this run; each national ID passes the Luhn check (the autouse scan).
PARTY_ID = "1987987982"
PARTY_PHONE = "+966597979871"
HTTP_ID = "1978978977"            # a stranger's national ID, over HTTP
HTTP_PHONE = "+966598989872"      # a stranger's phone, over HTTP (?caller=)
IVR_PHONE = "+966597878973"       # the IVR caller's line
IVR_ANON_ID = "1989898986"        # typed in the IVR by an anonymous caller
SMS_STOP_PHONE = "+966599797974"  # sends STOP
SMS_PHONE = "+966599898975"       # sends an ordinary SMS with an ID in its text
SMS_TEXT_ID = "1979797970"
CALL_PHONE = "+966598787976"      # a call's caller, and a note that quotes an ID
CALL_NOTE_ID = "1988988986"
REPORT_PHONE = "+966597989877"    # a web report's from.phone (sent in Arabic-Indic digits)
REPORT_ID = "1977977979"
REFUSED_PHONE = "+966598979878"   # quoted by a PostgreSQL error intake logs
REFUSED_ID = "1929292926"

PII = [PARTY_ID, PARTY_PHONE, HTTP_ID, HTTP_PHONE, IVR_PHONE, IVR_ANON_ID, SMS_STOP_PHONE,
       SMS_PHONE, SMS_TEXT_ID, CALL_PHONE, CALL_NOTE_ID, REPORT_PHONE, REPORT_ID, REFUSED_PHONE,
       REFUSED_ID]

# The keys wasl_log masks as identifiers (common/wasl_log.c).
SENSITIVE_KEYS = ("phone", "national_id", "from", "to", "caller", "msisdn", "recipient",
                  "employee_id", "verifier", "callee", "ani", "digits")

_FOLD = {**{0x0660 + i: str(i) for i in range(10)}, **{0x06F0 + i: str(i) for i in range(10)}}
_RUN = re.compile(r"[0-9]{%d,}" % WINDOW)


def local(e164):
    """+9665XXXXXXXX -> 05XXXXXXXX, the form people type."""
    return "0" + e164[4:]


def masked(value):
    """What wasl_mask_pii makes of a value: every digit but the last two is '*'."""
    digits = re.sub(r"[^0-9]", "", value)
    return ("+" if value.startswith("+") else "") + "*" * (len(digits) - 2) + digits[-2:]


def leaks(text, values=PII, window=WINDOW):
    """(value, run) for every run of ≥ `window` digits in `text` (any script's digits, folded)
    that contains `window` consecutive digits of one of `values`."""
    found = []
    for run in _RUN.findall(text.translate(_FOLD)):
        for v in values:
            digits = re.sub(r"[^0-9]", "", v)
            if any(digits[i:i + window] in run for i in range(len(digits) - window + 1)):
                found.append((v, run))
    return found


def log_text(path):
    """A log's text without the metadata every line carries (`ts`, `pid`): numbers that are
    not data and could only ever match by chance."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if isinstance(obj, dict):
            obj.pop("ts", None)
            obj.pop("pid", None)
        out.append(json.dumps(obj, ensure_ascii=False))
    return "\n".join(out)


def log_fields(log_dir):
    """Every JSON log line of every daemon, parsed."""
    lines = []
    for path in sorted(log_dir.rglob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                lines.append(obj)
    return lines


def test_leak_finder_finds_windows_in_any_digits():
    assert leaks('{"caller":"1978978977"}') == [(HTTP_ID, "1978978977")]
    assert leaks("id " + to_arabic_indic(HTTP_ID[3:9])) == [(HTTP_ID, HTTP_ID[3:9])]
    assert leaks('{"caller":"' + masked(HTTP_ID) + '"}') == []
    assert leaks('{"phone":"+9665******72"}') == []  # the old mask kept 6: still no window
    assert leaks('{"phone":"+96659898****"}') != []  # 8 digits of the phone: a leak
    assert masked(HTTP_PHONE) == "+**********72" and masked(HTTP_ID) == "********77"


def test_scan_finds_unmasked_and_ignores_masked():
    assert pii_in_text('{"msg":"x","phone":"+966551234567"}') == ["+966551234567"]
    assert pii_in_text('caller 0551234567 said') == ["0551234567"]
    assert pii_in_text('id 1012345672 here') == ["1012345672"]      # Luhn-valid citizen ID
    assert pii_in_text("id " + to_arabic_indic("1012345672")) == ["1012345672"]
    assert pii_in_text('{"phone":"+**********67"}') == []
    assert pii_in_text('{"national_id":"********72"}') == []
    assert pii_in_text('ticket 2600000018 and case 4512345678') == []  # not personal data
    assert pii_in_text('id 1012345673 here') == []  # fails the ID check digit: not an ID
    assert pii_in_text('"db":"wasl_t_0541880505ab"') == []  # inside a name: not a number


@pytest.fixture
def stack(postgres, redis_server, fresh_db, tmp_path):
    """A bus, an intake and one caselookup worker on `fresh_db`, logging at debug level into
    tmp_path (which the autouse scan reads too); one case whose plaintiff is PARTY_ID."""
    started = []
    env = base_env(postgres, redis_server)
    base = free_port_range(8)
    try:
        bus_env = dict(env, WASL_BUS_BIND="127.0.0.1", WASL_BUS_PORT=str(base),
                       WASL_ADMIN_BIND="127.0.0.1", WASL_ADMIN_PORT=str(free_port()))
        bus = Daemon("bus", BIN_DIR / "wasl-bus", bus_env, tmp_path,
                     admin_port=int(bus_env["WASL_ADMIN_PORT"]))
        started.append(bus)
        bus.start()
        bus.wait_healthy()
        bus.endpoint = f"tcp://127.0.0.1:{base}"
        bus.base_port = base
        # Telephony clients trusted for caller ID: only their numbers verify (finding 6).
        clients = default_clients() + [
            Client("caseapi", "api", "cases", token=new_token()),
            Client("telco", "telephony", "cases", token=new_token(), trusted_ani=True),
            Client("pbx", "telephony", "calls", token=new_token(), trusted_ani=True)]
        it = launch_intake(postgres, redis_server, fresh_db, tmp_path, clients=clients,
                           bus_daemon=bus, env={"WASL_LOG_LEVEL": "debug"})
        started.append(it)
        with it.db().cursor() as cur:
            cur.execute("INSERT INTO courts (code, name_ar, name_en, city_ar, city_en) VALUES"
                        " ('lp', 'المحكمة', 'Court', 'الرياض', 'Riyadh') RETURNING id")
            court = cur.fetchone()[0]
            cur.execute("INSERT INTO circuits (court_id, name_ar, name_en) VALUES"
                        " (%s, 'الدائرة الأولى', 'First circuit') RETURNING id", (court,))
            circuit = cur.fetchone()[0]
            cur.execute("INSERT INTO cases (case_number, circuit_id, subject_ar, subject_en,"
                        " status, filed_at) VALUES (%s, %s, 'إلغاء قرار', 'annulment',"
                        " 'in_hearing', now() - interval '30 days') RETURNING id",
                        (CASE, circuit))
            case_id = cur.fetchone()[0]
            cur.execute("INSERT INTO case_parties (case_id, role, name_ar, national_id, phone)"
                        " VALUES (%s, 'plaintiff', 'سارة', %s, %s)",
                        (case_id, PARTY_ID, PARTY_PHONE))
        wenv = dict(env, WASL_PG_URL=fresh_db.replace("postgres@", "wasl_caselookup@"),
                    WASL_BUS=bus.endpoint, WASL_ADMIN_BIND="127.0.0.1",
                    WASL_ADMIN_PORT=str(free_port()), WASL_CASELOOKUP_MAX_FAILURES=str(MAX_FAILURES),
                    WASL_CASELOOKUP_CASE_MAX_FAILURES="1000", WASL_CASELOOKUP_LOCK_S="60",
                    WASL_CASELOOKUP_WINDOW_S="60")
        worker = Daemon("caselookup", BIN_DIR / "wasl-caselookup", wenv, tmp_path,
                        admin_port=int(wenv["WASL_ADMIN_PORT"]))
        started.append(worker)
        worker.start()
        worker.wait_healthy()
        wait_for(lambda: worker.get("/readyz")[0] == 200, 10, what="caselookup ready")
        yield it
    finally:
        for d in reversed(started):
            (d.close if hasattr(d, "close") else d.kill)()


def lookup(it, **query):
    path = f"/v1/cases/{CASE}?" + urllib.parse.urlencode(query)
    return it.get(path, client="telco" if "caller" in query else "caseapi")


def lock_out_over_http(it, **query):
    """Fails lookups with one verifier until it is locked out (429)."""
    for _ in range(MAX_FAILURES + 3):
        r = lookup(it, **query)
        if r.status == 429:
            return
        assert r.status == 404, r
    raise AssertionError(f"never locked out: {query}")


def ivr(it, call, seq, **fields):
    body = {"type": "call.ivr", "call_id": call, "seq": seq, "menu": "case_status"}
    body.update(fields)
    r = it.post("/v1/calls/events", body, client="pbx")
    assert r.status in (200, 201), r
    return r.json


def lock_out_in_the_ivr(it, caller=None):
    """An IVR caller (with a line, or anonymous) types the case and wrong IDs until locked."""
    call = f"lp-{uuid.uuid4().hex[:8]}"
    seq = 1
    for _ in range(MAX_FAILURES + 3):
        fields = {"from": local(caller)} if caller else {}
        step = ivr(it, call, seq, **fields)
        seq += 1
        step = ivr(it, call, seq, digits=to_arabic_indic(CASE))
        seq += 1
        if step["ivr"].get("outcome") == "locked":
            return
        assert step["ivr"]["step"] == "national_id", step
        step = ivr(it, call, seq, digits=to_arabic_indic(IVR_ANON_ID))
        seq += 1
        if step["ivr"].get("outcome") == "locked":
            return
    raise AssertionError("the IVR caller was never locked out")


def test_no_daemon_logs_more_than_two_digits_of_an_identifier(stack, tmp_path):
    it = stack
    # Case lookups that log their verifier: a national ID and a phone over HTTP, a caller's
    # line and an anonymous caller's typed ID in the IVR, each until locked out.
    assert lookup(it, national_id=PARTY_ID).status == 200
    lock_out_over_http(it, national_id=to_arabic_indic(HTTP_ID))
    lock_out_over_http(it, caller=local(HTTP_PHONE))
    lock_out_in_the_ivr(it, caller=IVR_PHONE)
    lock_out_in_the_ivr(it)
    # SMS: an opt-out (logged with its number) and a message quoting an ID.
    r = it.post("/v1/sms/inbound", {"from": local(SMS_STOP_PHONE), "text": "STOP",
                                    "id": uuid.uuid4().hex}, client="smsgw")
    assert r.status == 200 and r.json["status"] == "opted_out", r
    r = it.post("/v1/sms/inbound", {"from": SMS_PHONE, "id": uuid.uuid4().hex,
                                    "text": "هويتي " + to_arabic_indic(SMS_TEXT_ID)},
                client="smsgw")
    assert r.status == 201, r
    # A call with a caller number and a note quoting an ID and the number.
    call = f"lp-{uuid.uuid4().hex[:8]}"
    r = it.post("/v1/calls/events", {"type": "call.started", "call_id": call, "seq": 1,
                                     "from": local(CALL_PHONE)}, client="phone")
    assert r.status == 200, r
    r = it.post("/v1/calls/events", {"type": "call.note", "call_id": call, "seq": 2,
                                     "text": f"هويته {CALL_NOTE_ID} وجواله {local(CALL_PHONE)}"},
                client="phone")
    assert r.status == 201, r
    # A web report with a phone in Arabic-Indic digits and a national ID.
    r = it.report({"channel": "web", "external_id": uuid.uuid4().hex, "body": "استفسار",
                   "from": {"phone": to_arabic_indic(local(REPORT_PHONE)),
                            "national_id": REPORT_ID}})
    assert r.status == 201, r

    # The logs carry a value, masked: the scan below looks where it is. (The lockout line
    # used to carry the verifier under `caller`, 6 of an ID's 10 digits; it now names only the
    # budget — and any line that logs an identifier again is held by the checks below.)
    lines = log_fields(tmp_path)
    logged = {(ln.get("service"), ln.get("msg"), key, ln[key]) for ln in lines
              for key in SENSITIVE_KEYS if isinstance(ln.get(key), str)}
    expected = [("intake: SMS opt-out", "phone", masked(SMS_STOP_PHONE))]
    for msg, key, value in expected:
        assert any(m == msg and k == key and v == value for _, m, k, v in logged), (
            f"no log line {msg!r} with {key}={value!r}; logged: {sorted(logged, key=str)}")

    # Under whatever key an identifier is logged, no more than its last two digits show (the
    # old masks kept the first four of a phone's digits, which showed 6 of an ID's 10).
    wide = [(ln.get("msg"), key, ln[key]) for ln in lines for key in SENSITIVE_KEYS
            if isinstance(ln.get(key), str) and "@" not in ln[key]
            and len(re.findall(r"[0-9]", ln[key].translate(_FOLD))) > 2]
    assert not wide, f"identifiers logged with more than 2 digits: {wide[:10]}"

    # And nowhere, in any daemon's log, 5 digits in a row of any of them.
    found = []
    for path in sorted(list(tmp_path.rglob("*.log")) + list(tmp_path.rglob("*.out"))):
        found += [(path.name, v, run) for v, run in leaks(log_text(path))]
    assert not found, f"personal data in logs: {found[:10]}"


def test_a_database_error_quoting_identifiers_is_logged_masked(stack, tmp_path):
    """The other way identifiers reach a log: a PostgreSQL error that quotes the row it refused
    (a constraint, a trigger, a state-change function raising with its arguments), logged under
    `error`. Its digit runs are masked as free text, and its DETAIL (which quotes whole rows)
    never leaves wasl_pg. A trigger refuses one beneficiary, quoting their ID and phone."""
    it = stack
    with it.db().cursor() as cur:
        cur.execute("""
            CREATE FUNCTION lp_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.from_national_id = %s THEN
                    RAISE EXCEPTION 'beneficiary %% (phone %%) refused', NEW.from_national_id,
                        NEW.from_phone USING DETAIL = 'lp-detail ' || NEW.from_phone;
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER lp_refuse BEFORE INSERT ON tickets
                FOR EACH ROW EXECUTE FUNCTION lp_refuse();""", (REFUSED_ID,))
    r = it.report({"channel": "web", "external_id": uuid.uuid4().hex, "body": "استفسار",
                   "from": {"phone": local(REFUSED_PHONE), "national_id": REFUSED_ID}})
    assert r.status == 503, r

    errors = [ln.get("error", "") for ln in log_fields(tmp_path)
              if ln.get("msg") == "intake: batch not committed"]
    assert errors, "intake did not log the refused batch"
    # The error is there, with the identifiers' last two digits only ...
    assert any("refused" in e and masked(REFUSED_ID) in e and masked(REFUSED_PHONE) in e
               for e in errors), errors
    # ... and neither the values nor the DETAIL line reached any log.
    found, detail = [], []
    for path in sorted(list(tmp_path.rglob("*.log")) + list(tmp_path.rglob("*.out"))):
        text = log_text(path)
        found += [(path.name, v, run) for v, run in leaks(text, [REFUSED_ID, REFUSED_PHONE])]
        detail += [path.name] if "lp-detail" in text else []
    assert not found, f"personal data in logs: {found[:10]}"
    assert not detail, f"a DETAIL line reached the logs: {detail}"
