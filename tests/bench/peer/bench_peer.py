"""make bench-peer (issue 16, item 5): Request Tracker 5 and Wasl, side by side, on the same mails.

Request Tracker 5 runs from Debian's packages (installed by run.sh) with its own PostgreSQL
cluster on a free loopback port (a temporary directory under var/bench/peer), its database made
by rt-setup-database-5, one queue, and its standalone server (rt-server) on a free port. Wasl is
wasl-intake and wasl-bus as the integration fixtures start them (its own PostgreSQL and Redis on
free ports). Both PostgreSQL clusters run with the fixtures' settings (fsync off, asynchronous
commit): neither side is measured against the other's disk.

BENCH_MAILS (600) realistic mails — Arabic and English, plain and quoted-printable and base64,
multipart/alternative with HTML, multipart/mixed with an attachment, each with its Message-ID —
are generated once, in two sets that differ only in their Message-IDs (a for one loop, b for
four: Wasl is idempotent by Message-ID, and a second pass of the same mails would measure its
duplicate path). Each set goes through `rt-mailgate --action correspond` and through
`wasl-mailgate`, one process per mail as an MTA's pipe transport runs them (build/bench/peer_feed,
so no interpreter's spawn cost is in either figure), with one loop and with four in parallel.
Every mail must have arrived — RT tickets created from those Message-IDs, Wasl messages with
them — and every process must have exited 0: a rate of mails that were not stored is no rate.

Prints a table (rate, median and p99 per mail) and last the line
`wasl_mails_s=… wasl_mails_s_4=… rt_mails_s=… rt_mails_s_4=… ratio=…` (ratio: the smaller of
the one-loop and four-loop ratios); writes var/bench/peer.json. Knobs: BENCH_MAILS (600),
BENCH_PEER_LOOPS (4), BENCH_PEER_RT_MAILS (BENCH_MAILS: fewer keeps RT's part short — its rate
is steady after a few dozen mails), BENCH_PEER_KEEP=1 keeps RT's directory, BENCH_PEER_MAILGATE
(build/bin/wasl-mailgate: another build's, to compare two)."""

import email.policy
import email.utils
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import psycopg2

from conftest import REPO, _pg_bindir, free_port, wait_for
from intake_helpers import start_intake  # noqa: F401  (fixture)

MAILS = int(os.environ.get("BENCH_MAILS", "600"))
RT_MAILS = min(MAILS, int(os.environ.get("BENCH_PEER_RT_MAILS", str(MAILS))))
LOOPS = int(os.environ.get("BENCH_PEER_LOOPS", "4"))
KEEP = os.environ.get("BENCH_PEER_KEEP") == "1"
OUT = REPO / "var" / "bench"
FEED = REPO / "build" / "bench" / "peer_feed"
RT_QUEUE = "wasl-bench"
RT_SERVER = "/usr/share/request-tracker5/libexec/rt-server"
RT_START_TIMEOUT_S = 120
GOAL_RATIO = 100
GOAL_MAILS_S_4 = 300

# ---- the mails ------------------------------------------------------------------------------

FIRST = ["نورة", "محمد", "عبدالله", "سارة", "فهد", "ريم", "خالد", "هند", "Omar", "Lina",
         "Yousef", "Maha", "James", "Anna", "Tariq", "Dana"]
LAST = ["القحطاني", "العتيبي", "الشمري", "الدوسري", "الغامدي", "Haddad", "Saleh", "Smith",
        "Nasser", "Khan"]
DOMAINS = ["gmail.example", "outlook.example", "mail.example.sa", "yahoo.example"]
SUBJECTS_AR = ["استفسار عن موعد الجلسة", "طلب تحديث بيانات القضية", "شكوى بخصوص تأخر الحكم",
               "طلب نسخة من الحكم", "الاستعلام عن حالة الطلب", "تأجيل الموعد"]
SUBJECTS_EN = ["Question about my hearing date", "Request for a copy of the judgment",
               "Update my contact details", "Complaint: no answer for two weeks",
               "Status of application", "Power of attorney documents"]
BODY_AR = ("السلام عليكم ورحمة الله وبركاته،\n\nأرجو التكرم بإفادتي عن موعد الجلسة القادمة في "
           "القضية المذكورة، حيث لم يصلني أي إشعار حتى الآن. رقم الجوال للتواصل موجود في "
           "الملف.\n\nوتقبلوا فائق الاحترام،\n")
BODY_EN = ("Hello,\n\nI am writing about my case. I have not received any notice about the next "
           "hearing and the portal shows no update since last month. Could you tell me what "
           "happens next and whether I need to bring any documents?\n\nKind regards,\n")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 24 + b"\n%%EOF\n"


def make_mail(i, rng):
    """One realistic mail (bytes without its Message-ID line, and the chosen kind)."""
    arabic = rng.random() < 0.6
    first, last = rng.choice(FIRST), rng.choice(LAST)
    addr = f"user{rng.randrange(400)}@{rng.choice(DOMAINS)}"
    subject = rng.choice(SUBJECTS_AR if arabic else SUBJECTS_EN) + f" ({1000 + i})"
    body = (BODY_AR if arabic else BODY_EN) + f"{first} {last}\n"
    msg = EmailMessage(policy=email.policy.SMTP.clone(linesep="\n"))
    msg["From"] = email.utils.formataddr((f"{first} {last}", addr))
    msg["To"] = "court@wasl-bench.invalid"
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(
        email.utils.localtime().replace(microsecond=0))
    kind = ["plain", "plain", "alternative", "mixed"][i % 4]
    cte = "base64" if i % 3 == 0 else "quoted-printable"
    msg.set_content(body, charset="utf-8", cte=cte)
    if kind in ("alternative", "mixed"):
        html = "<html><body dir='%s'><p>%s</p></body></html>" % (
            "rtl" if arabic else "ltr", body.replace("\n\n", "</p><p>"))
        msg.add_alternative(html, subtype="html", charset="utf-8")
    if kind == "mixed":
        msg.add_attachment(PDF, maintype="application", subtype="pdf",
                           filename="وثيقة.pdf" if arabic else "document.pdf")
    return msg, kind


def generate(directory, n):
    """n mails in two sets (a, b) differing only in their Message-IDs. Returns
    {"a": [(path, message_id)], "b": [...]} and the kinds' counts."""
    rng = random.Random(16)
    sets = {"a": [], "b": []}
    kinds = {}
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        msg, kind = make_mail(i, rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        for s in sets:
            mid = f"bench{i:05d}.{s}.{rng.randrange(1 << 30):08x}@mail.wasl-bench.invalid"
            if "Message-ID" in msg:
                del msg["Message-ID"]
            msg["Message-ID"] = f"<{mid}>"
            path = directory / f"{s}-{i:05d}.eml"
            path.write_bytes(msg.as_bytes())
            sets[s].append((path, mid))
    return sets, kinds


# ---- Request Tracker 5 ----------------------------------------------------------------------

RT_SITE = """Set($rtname, 'wasl-bench');
Set($Organization, 'wasl-bench.invalid');
Set($CorrespondAddress, 'rt@wasl-bench.invalid');
Set($CommentAddress, 'rt-comment@wasl-bench.invalid');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {web_port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{web_port}');
Set($DatabaseType, 'Pg');
Set($DatabaseHost, '127.0.0.1');
Set($DatabasePort, '{pg_port}');
Set($DatabaseUser, 'rt_user');
Set($DatabasePassword, 'rt bench');
Set($DatabaseName, 'rt5');
Set($DatabaseAdmin, 'postgres');
Set($LogToSyslog, undef);
Set($LogToFile, undef);
Set($LogToSTDERR, 'error');
# Its autoreplies are composed and handed to a file, not to an MTA (none runs here).
Set($MailCommand, 'testfile');
Set($Timezone, 'UTC');
1;
"""
# The queue, and the rights a stranger's mail needs to open or answer a ticket in it (RT's
# mail gateway answers 200 and stores nothing without them).
RT_DATA = """@Queues = ({ Name => '%s', Description => 'make bench-peer' });
@ACL = map { { GroupDomain => 'SystemInternal', GroupType => 'Everyone', Queue => '%s',
               Right => $_ } } qw(CreateTicket ReplyToTicket);
1;
""" % (RT_QUEUE, RT_QUEUE)


class RequestTracker:
    """RT 5 on its own PostgreSQL cluster under var/bench/peer/rt-*, served by rt-server."""

    def __init__(self):
        parent = OUT / "peer"
        parent.mkdir(parents=True, exist_ok=True)
        for p in (OUT.parent, OUT, parent):
            p.chmod(0o755)  # postgres traverses to its data directory
        self.base = Path(tempfile.mkdtemp(prefix="rt-", dir=parent))
        self.base.chmod(0o755)
        self.pgdir = self.base / "pg"
        self.pgdir.mkdir()
        shutil.chown(self.pgdir, "postgres", "postgres")
        self.pg_port, self.web_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.web_port}/"
        (self.base / "site.d").mkdir()
        (self.base / "site.d" / "bench.pm").write_text(
            RT_SITE.format(web_port=self.web_port, pg_port=self.pg_port))
        (self.base / "RT_SiteConfig.pm").write_text("1;\n")
        (self.base / "queue.pl").write_text(RT_DATA)
        self.env = dict(os.environ, RT_SITE_CONFIG=str(self.base / "RT_SiteConfig.pm"),
                        RT_SITE_CONFIG_DIR=str(self.base / "site.d"))
        self.server = None
        self.bindir = _pg_bindir()

    def _pg(self, *args):
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bindir / args[0]),
                        *args[1:]], check=True, capture_output=True, timeout=120)

    def _rt(self, *args):
        res = subprocess.run(list(args), env=self.env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{args[0]}: {res.stdout}{res.stderr}"

    def start(self):
        data = self.pgdir / "data"
        self._pg("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8")
        self._pg("pg_ctl", "-D", data, "-l", self.pgdir / "log", "-w", "-t", "30", "-o",
                 f"-k {self.pgdir} -p {self.pg_port} -c listen_addresses=127.0.0.1 "
                 "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")
        # Trust authentication: the DBA password is asked for, and not checked.
        self._rt("rt-setup-database-5", "--action", "init", "--dba", "postgres",
                 "--dba-password", "trust")
        self._rt("rt-setup-database-5", "--action", "insert", "--datafile",
                 str(self.base / "queue.pl"))
        log = open(self.base / "server.log", "wb")
        self.server = subprocess.Popen([RT_SERVER, "--port", str(self.web_port)], env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        log.close()

        def up():
            try:
                out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                      self.url], capture_output=True, text=True, timeout=10)
                return out.stdout == "200"
            except subprocess.TimeoutExpired:
                return False
        wait_for(up, RT_START_TIMEOUT_S, interval=0.5, what="rt-server")

    def command(self):
        return ["rt-mailgate", "--url", self.url, "--queue", RT_QUEUE, "--action", "correspond"]

    def stored(self, mids):
        """(tickets created by these Message-IDs, transactions carrying them)."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="postgres",
                                dbname="rt5")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(DISTINCT tr.objectid) FILTER (WHERE tr.type = 'Create'),"
                    "       count(DISTINCT tr.id)"
                    "  FROM attachments a JOIN transactions tr ON tr.id = a.transactionid"
                    " WHERE tr.objecttype = 'RT::Ticket' AND a.parent = 0"
                    "   AND trim(both '<>' from a.messageid) = ANY(%s)", (list(mids),))
                return cur.fetchone()
        finally:
            conn.close()

    def stop(self):
        if self.server and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bindir / "pg_ctl"), "-D",
                        str(self.pgdir / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        if not KEEP:
            shutil.rmtree(self.base, ignore_errors=True)


# ---- Wasl -----------------------------------------------------------------------------------


def wasl_stored(it, mids):
    """(tickets, messages) of Wasl carrying these Message-IDs."""
    conn = psycopg2.connect(it.db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(DISTINCT ticket_id), count(*) FROM messages"
                        " WHERE trim(both '<>' from message_id) = ANY(%s)", (list(mids),))
            return cur.fetchone()
    finally:
        conn.close()


# ---- running and measuring ------------------------------------------------------------------


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def feed(name, mails, loops, command, env, workdir):
    """Runs command once per mail, `loops` at a time. Returns the row of the table."""
    tag = f"{name}-{loops}"
    lst, out, err = (workdir / f"{tag}.list", workdir / f"{tag}.out", workdir / f"{tag}.err")
    lst.write_text("".join(f"{p}\n" for p, _ in mails))
    res = subprocess.run([str(FEED), str(loops), str(lst), str(out), str(err), "--", *command],
                         env=env, capture_output=True, text=True, timeout=7200)
    assert res.returncode == 0, res.stderr
    rows = out.read_text().split("\n")
    wall = float(next(r for r in rows if r.startswith("wall ")).split()[1])
    per = [r.split() for r in rows if r and not r.startswith("wall ")]
    codes = [int(c) for _, c, _ in per]
    ms = [float(m) for _, _, m in per]
    failed = sum(1 for c in codes if c != 0)
    errtail = err.read_text(errors="replace")[-2000:] if failed else ""
    return {"system": name, "loops": loops, "mails": len(per), "exit_nonzero": failed,
            "wall_s": round(wall, 3), "mails_s": round(len(per) / wall, 2),
            "p50_ms": round(pct(ms, 50), 1), "p99_ms": round(pct(ms, 99), 1),
            "max_ms": round(max(ms), 1), "stderr_tail": errtail}


def check_stored(row, stored, mails):
    tickets, carried = stored
    row["stored_tickets"], row["stored_messages"] = tickets, carried
    assert row["exit_nonzero"] == 0, f"{row['system']}: exit codes not 0:\n{row['stderr_tail']}"
    assert tickets == len(mails) and carried == len(mails), \
        f"{row['system']} x{row['loops']}: {len(mails)} mails, {tickets} tickets, " \
        f"{carried} messages stored"


def test_bench_peer(start_intake, bus, tmp_path):
    assert FEED.exists(), "make build/bench/peer_feed"
    work = OUT / "peer"
    sets, kinds = generate(work / "mails", MAILS)
    it = start_intake(bus=bus)
    mailgate = os.environ.get("BENCH_PEER_MAILGATE", str(REPO / "build/bin/wasl-mailgate"))
    wasl_cmd = [mailgate, "--url",
                f"http://127.0.0.1:{it.port}"]
    wasl_env = dict(os.environ, WASL_TOKEN=it.token("mailgw"))
    rt = RequestTracker()
    rows = []
    try:
        t0 = time.time()
        rt.start()
        print(f"\nRT 5 up in {time.time() - t0:.0f} s ({rt.url}); Wasl intake on {it.port}; "
              f"{MAILS} mails {kinds}", flush=True)
        for loops, s in ((1, "a"), (LOOPS, "b")):
            rt_mails = sets[s][:RT_MAILS]
            row = feed("rt", rt_mails, loops, rt.command(), dict(os.environ), work)
            check_stored(row, rt.stored(m for _, m in rt_mails), rt_mails)
            rows.append(row)
            row = feed("wasl", sets[s], loops, wasl_cmd, wasl_env, work)
            check_stored(row, wasl_stored(it, [m for _, m in sets[s]]), sets[s])
            rows.append(row)
            for r in rows[-2:]:
                print(f"  {r['system']:5} x{loops}: {r['mails_s']:8.2f} mails/s  "
                      f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
                      f"({r['mails']} mails, all stored)", flush=True)
    finally:
        rt.stop()
    report(rows, kinds)


def report(rows, kinds):
    by = {(r["system"], r["loops"]): r for r in rows}
    w1, w4 = by[("wasl", 1)]["mails_s"], by[("wasl", LOOPS)]["mails_s"]
    r1, r4 = by[("rt", 1)]["mails_s"], by[("rt", LOOPS)]["mails_s"]
    ratio = min(w1 / r1, w4 / r4)
    print("\n  system  loops   mails/s    p50 ms    p99 ms   mails  stored")
    for r in rows:
        print(f"  {r['system']:6} {r['loops']:5} {r['mails_s']:9.2f} {r['p50_ms']:9.1f} "
              f"{r['p99_ms']:9.1f} {r['mails']:7} {r['stored_tickets']:7}")
    print(f"  ratio wasl/rt: {w1 / r1:.0f}x with one loop, {w4 / r4:.0f}x with {LOOPS} "
          f"(goal {GOAL_RATIO}x; wasl x{LOOPS} goal {GOAL_MAILS_S_4}/s); shared 2-core machine")
    summary = {"mails": MAILS, "rt_mails": RT_MAILS, "loops": LOOPS, "kinds": kinds,
               "rows": [{k: v for k, v in r.items() if k != "stderr_tail"} for r in rows],
               "wasl_mails_s": w1, "wasl_mails_s_4": w4, "rt_mails_s": r1, "rt_mails_s_4": r4,
               "ratio": round(ratio, 1), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime())}
    (OUT / "peer.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"wasl_mails_s={w1} wasl_mails_s_4={w4} rt_mails_s={r1} rt_mails_s_4={r4} "
          f"ratio={ratio:.1f}")
