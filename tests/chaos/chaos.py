"""The chaos harness (`make chaos`; a light run is part of `make test`).

Starts its own PostgreSQL and Redis, two buses, and two instances of every Wasl daemon that is
built, with CURVE on; sends contacts over every channel (reports, call events, SMS, email) at a
steady rate, retrying like a real gateway (same idempotency key) until it gets a 2xx; meanwhile
kills (-9) a random daemon instance every couple of seconds and restarts it, pauses one stage
worker past its lease and resumes it, restarts PostgreSQL once and flushes Redis once. Then it
drains and checks everything acknowledged against the database. Loopback only, bounded in time.

Last line: acknowledged=<n> tickets=<n> lost=<n> duplicated=<n> stuck=<n> dead=<n>
notify_dupes=<n>; exit 1 unless lost, duplicated and stuck are 0 and every dead row has a reason.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from email.utils import make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import conftest  # noqa: E402  (PgServer, RedisServer, Daemon, ports: the test fixtures' parts)

REPO = conftest.REPO
BIN = conftest.BIN_DIR
# Stage daemons that may exist, with the work stage each one completes.
STAGE_DAEMONS = {"classifier": "classify", "router": "route"}
OPTIONAL_DAEMONS = ["classifier", "router", "notifier", "caselookup"]
LEASE_S = 3
HTTP_TIMEOUT_S = 5


def log(msg):
    print(f"chaos: {msg}", flush=True)


class SmsSink:
    """A Kannel sendsms look-alike on loopback: records every (to, text) it accepts."""

    def __init__(self):
        import http.server
        import urllib.parse
        sink = self
        self.received = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                self.record(q)

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode("utf-8", "replace")
                try:
                    q = {k: [v] for k, v in json.loads(body).items()}
                except ValueError:
                    q = urllib.parse.parse_qs(body)
                self.record(q)

            def record(self, q):
                with sink.lock:
                    sink.received.append(((q.get("to") or [""])[0], (q.get("text") or [""])[0]))
                self.send_response(202)
                self.end_headers()
                self.wfile.write(b"0: Accepted for delivery")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/sendsms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


class MailSink:
    """An SMTP server on loopback (aiosmtpd): records every (recipients, message) it accepts."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        sink = self
        self.received = []
        self.lock = threading.Lock()

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                # A resend differs in Date and Message-ID: compare recipients, subject, text.
                import email
                msg = email.message_from_bytes(envelope.content)
                text = b"".join(p.get_payload(decode=True) or b"" for p in msg.walk()
                                if p.get_content_type() == "text/plain")
                with sink.lock:
                    sink.received.append((tuple(envelope.rcpt_tos), msg.get("Subject"), text))
                return "250 OK"

        port = conftest.free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{port}"

    def stop(self):
        self.controller.stop()


def duplicates(items):
    """How many items were received more than once (each extra copy counts)."""
    seen, dupes = set(), 0
    for it in items:
        dupes += it in seen
        seen.add(it)
    return dupes


class Stack:
    """Everything the harness started."""

    def __init__(self, workdir, optional):
        self.workdir = Path(workdir)
        self.optional = optional
        self.pg = conftest.PgServer()
        self.redis = conftest.RedisServer()
        self.daemons = {}  # name -> Daemon (name like "classifier-1")
        self.http_ports = []
        self.lock = threading.Lock()

    def start(self):
        self.sms = SmsSink()
        try:
            self.mail = MailSink()
        except ImportError:
            self.mail = None
        self.pg.initdb()
        self.pg.start()
        self.pg.create_database("wasl")
        self.redis.start()
        env = self.base_env()
        self.ctl(env, "migrate")
        self.token = "chaos-" + os.urandom(12).hex()
        # The token on stdin, never on a command line (ps shows those to every local user).
        self.ctl(env, "client", "add", "chaos", "--kind", "ops", "--scopes", "*", "--token-file",
                 "-", "--rate", "100000", stdin=self.token + "\n")
        self.keys = self.workdir / "keys"
        self.ctl(env, "keygen", "--dir", self.keys, "bus", "intake", "classifier", "router",
                 "notifier", "caselookup")
        self.bus_ports = [conftest.free_port_range(8), conftest.free_port_range(8)]
        for i, port in enumerate(self.bus_ports, 1):
            self.add(f"bus-{i}", "bus", {"WASL_BUS_PORT": port, "WASL_CURVE_NAME": "bus"})
        for i in (1, 2):
            port = conftest.free_port()
            self.http_ports.append(port)
            self.add(f"intake-{i}", "intake", {"WASL_HTTP_PORT": port, "WASL_HTTP_BIND":
                                               "127.0.0.1", "WASL_CURVE_NAME": "intake"})
        for name in self.optional:
            if (BIN / f"wasl-{name}").exists():
                for i in (1, 2):
                    self.add(f"{name}-{i}", name, {"WASL_CURVE_NAME": name})
        for d in self.daemons.values():
            d.wait_healthy(15)
        log(f"up: {', '.join(sorted(self.daemons))}")

    def base_env(self):
        env = conftest.base_env(self.pg, self.redis)
        env["WASL_LOG_LEVEL"] = "info"
        return env

    def ctl(self, env, *args, stdin=None):
        out = subprocess.run([str(BIN / "waslctl")] + [str(a) for a in args],
                             env=conftest.waslctl_env(env, args), input=stdin,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"waslctl {args[0]}: {out.stdout}{out.stderr}")
        return out.stdout

    def add(self, name, kind, extra):
        env = self.base_env()
        env.update({
            "WASL_ADMIN_BIND": "127.0.0.1", "WASL_ADMIN_PORT": conftest.free_port(),
            "WASL_CURVE_DIR": self.keys,
            "WASL_BUS": ",".join(f"tcp://127.0.0.1:{p}" for p in self.bus_ports),
            "WASL_CLASSIFIER_LEASE_S": LEASE_S, "WASL_CLASSIFIER_SWEEP_MS": 500,
            "WASL_CLASSIFIER_SWEEP_AGE_MS": 1000,
            "WASL_CLASSIFIER_MODEL": REPO / "build" / "model" / "classifier.bin",
            "WASL_NOTIFIER_TEMPLATES": REPO / "deploy" / "templates",
            "WASL_ROUTER_RULES": REPO / "deploy" / "config" / "routing.yaml",
            "WASL_SMS_URL": self.sms.url, "WASL_SMS_MODE": "kannel",
            "WASL_SMTP_URL": self.mail.url if self.mail else "smtp://127.0.0.1:1",
            "WASL_NOTIFIER_LEASE_S": LEASE_S, "WASL_ROUTER_LEASE_S": LEASE_S,
            "WASL_ROUTER_SWEEP_MS": 500, "WASL_ROUTER_SWEEP_AGE_MS": 1000,
            "WASL_NOTIFIER_SWEEP_MS": 500,
            # No quiet hours: a run at Riyadh night must still deliver acknowledgements.
            "WASL_NOTIFIER_QUIET_START_H": 0, "WASL_NOTIFIER_QUIET_END_H": 0,
        })
        env.update({k: str(v) for k, v in extra.items()})
        env = {k: str(v) for k, v in env.items()}
        d = conftest.Daemon(name, BIN / f"wasl-{kind}", env, self.workdir,
                            admin_port=int(env["WASL_ADMIN_PORT"]))
        d.kind = kind
        d.start()
        self.daemons[name] = d

    def restart(self, name):
        d = self.daemons[name]
        d.kill()
        d.start()

    def stop(self):
        for d in self.daemons.values():
            if d.alive():
                d.proc.send_signal(signal.SIGCONT)
                d.kill()
        self.redis.destroy()
        self.pg.destroy()
        self.sms.stop()
        if self.mail:
            self.mail.stop()


class Sender:
    """Contacts at a steady rate over every channel; each retried until a 2xx (or give up at
    the end). Records what was acknowledged."""

    def __init__(self, stack, total, rate):
        self.stack, self.total, self.rate = stack, total, rate
        self.acked = {}  # key -> (channel, ref, status)
        self.gave_up = 0
        self.lock = threading.Lock()
        self.seq = 0

    def post(self, path, body, content_type):
        port = random.choice(self.stack.http_ports)
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {self.stack.token}",
                                              "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, None
        except OSError:
            return 0, None

    def contact(self, n):
        kind = ("report", "report", "report", "sms", "sms", "call", "email")[n % 7]
        uid = f"{os.getpid()}-{n}"
        if kind == "report":
            body = json.dumps({"channel": "web", "external_id": f"r-{uid}",
                               "body": random.choice(TEXTS)}).encode()
            return ("web", f"r-{uid}"), [("/v1/reports", body, "application/json")]
        if kind == "sms":
            phone = f"05{50000000 + n:08d}"[:10]
            body = json.dumps({"from": phone, "text": random.choice(TEXTS),
                               "id": f"s-{uid}"}).encode()
            return ("sms", f"s-{uid}"), [("/v1/sms/inbound", body, "application/json")]
        if kind == "call":
            call = f"c-{uid}"
            events = [{"type": "call.started", "call_id": call, "seq": 1,
                       "from": f"05{60000000 + n:08d}"[:10]},
                      {"type": "call.note", "call_id": call, "seq": 2,
                       "text": random.choice(TEXTS)}]
            return ("phone", call), [("/v1/calls/events", json.dumps(e).encode(),
                                      "application/json") for e in events]
        msgid = make_msgid(idstring=uid, domain="chaos.example")
        raw = (f"From: Citizen {n} <c{n}@chaos.example>\r\nTo: info@court.example\r\n"
               f"Subject: =?UTF-8?B?2KfYs9iq2YHYs9in2LE=?=\r\nMessage-ID: {msgid}\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               f"{random.choice(TEXTS)}\r\n").encode()
        return ("email", msgid.strip("<>")), [("/v1/email/inbound", raw, "message/rfc822")]

    def send_one(self, n, deadline):
        key, requests = self.contact(n)
        ref = status = None
        for path, body, ctype in requests:
            while True:
                code, js = self.post(path, body, ctype)
                if 200 <= code < 300:
                    if js and js.get("ticket"):
                        ref, status = js["ticket"], code
                    break
                if time.monotonic() > deadline:
                    with self.lock:
                        self.gave_up += 1
                    return
                time.sleep(0.2)  # a gateway's retry interval, not a wait for a condition
        if ref:
            with self.lock:
                self.acked[key] = (key[0], ref, status)

    def run(self, seconds_after):
        interval = 1.0 / self.rate
        threads = []
        start = time.monotonic()
        for n in range(self.total):
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=self.send_one, args=(n, time.monotonic() + seconds_after),
                                 daemon=True)
            t.start()
            threads.append(t)
            if len(threads) > 200:
                threads = [t for t in threads if t.is_alive()]
        for t in threads:
            t.join()


TEXTS = [
    "متى موعد الجلسة القادمة لقضيتي رقم ٤٥١٢٣٤٥٦٧٨؟",
    "ما اقدر ادخل معين، رمز التحقق ما يوصل",
    "كم مدة الاعتراض على الحكم الإداري؟",
    "الراتب ما نزل هذا الشهر، الرقم الوظيفي 10234",
    "اتصلت أكثر من عشر مرات ومحد يرد عليّ",
    "وين موقع المحكمة الإدارية في جدة؟",
    "When is the next hearing in my case?",
    "The video hearing link does not open",
]


class Chaos:
    """Kills, a pause past the lease, a PostgreSQL restart, a Redis flush."""

    def __init__(self, stack, light):
        self.stack, self.light = stack, light
        self.stop = threading.Event()
        self.events = []

    def run(self):
        names = sorted(self.stack.daemons)
        order = names[:] if self.light else None
        step = 0
        pg_restarted = redis_flushed = paused = False
        while not self.stop.wait(2.0 if not self.light else 1.5):
            step += 1
            victims = order if order is not None else names
            if order is not None and not order:
                pass
            elif victims:
                name = victims.pop(0) if order is not None else random.choice(victims)
                self.stack.restart(name)
                self.events.append(f"kill -9 {name}")
            if step == 2 and not paused:
                worker = next((n for n in names if n.split("-")[0] in STAGE_DAEMONS), None)
                if worker:
                    d = self.stack.daemons[worker]
                    d.proc.send_signal(signal.SIGSTOP)
                    self.stop.wait(LEASE_S + 2)
                    d.proc.send_signal(signal.SIGCONT)
                    self.events.append(f"SIGSTOP {worker} {LEASE_S + 2}s")
                paused = True
            if step == 3 and not pg_restarted:
                self.stack.pg.stop("fast")
                self.stack.pg.start()
                self.events.append("PostgreSQL restarted")
                pg_restarted = True
            if step == 4 and not redis_flushed:
                self.stack.redis.flush()
                self.events.append("Redis flushed")
                redis_flushed = True


def drain(stack, stages, timeout, notifier):
    """Waits until no work of the served stages (nor, with a notifier, any notification) is
    pending or running."""
    conn = stack.pg.connect()
    deadline = time.monotonic() + timeout
    try:
        while True:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM work WHERE stage = ANY(%s) "
                            "AND state IN ('pending', 'running')", (list(stages),))
                left = cur.fetchone()[0]
                if notifier:
                    cur.execute("SELECT count(*) FROM notifications "
                                "WHERE state IN ('pending', 'sending')")
                    left += cur.fetchone()[0]
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(0.5)
    finally:
        conn.close()


def check(stack, sender, stages, notifier):
    conn = stack.pg.connect()
    cur = conn.cursor()
    acked = sender.acked
    refs = {}
    for key, (_, ref, _) in acked.items():
        refs.setdefault(ref, []).append(key)
    cur.execute("SELECT ref, id FROM tickets")
    ticket_by_ref = dict(cur.fetchall())
    lost = [k for k, (_, ref, _) in acked.items() if ref not in ticket_by_ref]
    # One ticket per contact: count tickets per idempotency key, and double processing.
    cur.execute("SELECT channel, external_id, count(*) FROM tickets"
                " GROUP BY 1, wasl_idem_scope(channel, client_id), 2 HAVING count(*) > 1")
    dup_keys = cur.fetchall()
    cur.execute("SELECT ticket_id, kind, count(*) FROM ticket_events WHERE kind IN "
                "('received', 'classified', 'routed') GROUP BY 1, 2 HAVING count(*) > 1")
    dup_events = cur.fetchall()
    acked_ids = [ticket_by_ref[r] for r in refs if r in ticket_by_ref]
    cur.execute("SELECT count(*) FROM work WHERE ticket_id = ANY(%s) AND stage = ANY(%s) "
                "AND state IN ('pending', 'running')", (acked_ids, list(stages)))
    stuck = cur.fetchone()[0]
    cur.execute("SELECT count(*), count(*) FILTER (WHERE last_error IS NULL OR last_error = '') "
                "FROM work WHERE state = 'dead'")
    dead, dead_without_reason = cur.fetchone()
    if notifier:
        # Notifications of acknowledged tickets still waiting count as stuck too.
        cur.execute("SELECT count(*) FROM notifications WHERE ticket_id = ANY(%s) "
                    "AND state IN ('pending', 'sending')", (acked_ids,))
        stuck += cur.fetchone()[0]
    # What the providers received twice: the same text to the same number or address.
    notify_dupes = duplicates(stack.sms.received)
    if stack.mail:
        notify_dupes += duplicates(stack.mail.received)
    conn.close()
    return {"acknowledged": len(acked), "tickets": len(acked_ids), "lost": len(lost),
            "duplicated": len(dup_keys) + len(dup_events), "stuck": stuck, "dead": dead,
            "dead_without_reason": dead_without_reason, "notify_dupes": notify_dupes,
            "lost_sample": lost[:5], "dup_sample": (dup_keys + dup_events)[:5]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contacts", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=100.0, help="contacts per second")
    ap.add_argument("--light", action="store_true",
                    help="fewer contacts, one kill of each daemon (make test)")
    ap.add_argument("--drain-s", type=float, default=90)
    ap.add_argument("--daemons", default=",".join(OPTIONAL_DAEMONS),
                    help="which daemons besides the buses and intake (those built)")
    args = ap.parse_args()
    if args.light:
        args.contacts, args.rate = min(args.contacts, 900), min(args.rate, 30.0)
    random.seed(1446)
    workdir = tempfile.mkdtemp(prefix="wasl-chaos-")
    optional = [d for d in args.daemons.split(",") if d in OPTIONAL_DAEMONS]
    stack = Stack(workdir, optional)
    result = None
    try:
        stack.start()
        stages = [s for d, s in STAGE_DAEMONS.items()
                  if d in optional and (BIN / f"wasl-{d}").exists()]
        chaos = Chaos(stack, args.light)
        ct = threading.Thread(target=chaos.run, daemon=True)
        ct.start()
        sender = Sender(stack, args.contacts, args.rate)
        log(f"sending {args.contacts} contacts at {args.rate}/s")
        sender.run(seconds_after=60)
        chaos.stop.set()
        ct.join()
        for d in stack.daemons.values():  # everything back up for the drain
            if not d.alive():
                d.start()
        log("chaos: " + "; ".join(chaos.events))
        notifier = "notifier" in optional and (BIN / "wasl-notifier").exists()
        left = drain(stack, stages, args.drain_s, notifier)
        log(f"drained ({left} rows left)")
        result = check(stack, sender, stages, notifier)
        log(f"providers received: {len(stack.sms.received)} SMS, "
            f"{len(stack.mail.received) if stack.mail else 0} e-mails")
        if result["lost_sample"] or result["dup_sample"]:
            log(f"lost: {result['lost_sample']} duplicated: {result['dup_sample']}")
        log(f"gave up (never acknowledged, not counted): {sender.gave_up}")
    finally:
        stack.stop()
    r = result
    print(f"acknowledged={r['acknowledged']} tickets={r['tickets']} lost={r['lost']} "
          f"duplicated={r['duplicated']} stuck={r['stuck']} dead={r['dead']} "
          f"notify_dupes={r['notify_dupes']}", flush=True)
    ok = r["lost"] == 0 and r["duplicated"] == 0 and r["stuck"] == 0 and \
        r["dead_without_reason"] == 0 and r["acknowledged"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
