"""What the case-lookup tests share: made-up identities that pass the checks, and one stack — a
fresh database, a bus, caselookup workers and an intake — that each test module seeds its own
way and configures with its own budgets."""

import signal
import uuid

import msgpack
import zmq

from conftest import BIN_DIR, Daemon, base_env, free_port, free_port_range, wait_for
from intake_helpers import launch_intake


def luhn_ok(d):
    """True for a 10-digit Saudi ID (citizen 1…, resident 2…) whose Luhn sum checks."""
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


def unique_id():
    return valid_id("1" + str(uuid.uuid4().int % 10**8).zfill(8))


def unique_phone():
    return "+9665" + str(uuid.uuid4().int % 10**8).zfill(8)


def unique_case():
    return "45" + str(uuid.uuid4().int % 10**8).zfill(8)


def seed_circuit(postgres):
    """A seed for case_stack: the administrative court in Riyadh and one circuit of it; the
    stack gets {"circuit": its id}."""
    def seed(name, db_url):
        conn = postgres.connect(name)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO courts (code, name_ar, name_en, city_ar, city_en, time_zone)"
                        " VALUES ('RUH-ADM', 'المحكمة الإدارية بالرياض',"
                        " 'Administrative Court in Riyadh', 'الرياض', 'Riyadh', 'Asia/Riyadh')"
                        " RETURNING id")
            court = cur.fetchone()[0]
            cur.execute("INSERT INTO circuits (court_id, name_ar, name_en) VALUES"
                        " (%s, 'الدائرة الإدارية الثالثة', 'Third Administrative Circuit')"
                        " RETURNING id", (court,))
            circuit = cur.fetchone()[0]
        conn.close()
        return {"circuit": circuit}
    return seed


def new_case(postgres, stack):
    """A fresh case in the stack's circuit (so its own lookup budgets) with one party, a
    plaintiff with a national ID and a phone; returns (number, national_id, phone)."""
    number, nid, phone = unique_case(), unique_id(), unique_phone()
    conn = postgres.connect(stack["db"])
    with conn.cursor() as cur:
        cur.execute("INSERT INTO cases (case_number, circuit_id, subject_ar, subject_en, status,"
                    " filed_at) VALUES (%s, %s, 'إلغاء قرار', 'annulment', 'in_hearing',"
                    " now() - interval '9 days') RETURNING id", (number, stack["circuit"]))
        cid = cur.fetchone()[0]
        cur.execute("INSERT INTO case_parties (case_id, role, name_ar, national_id, phone)"
                    " VALUES (%s, 'plaintiff', 'سارة', %s, %s)", (cid, nid, phone))
    conn.close()
    return number, nid, phone


def case_stack(postgres, redis_server, log_dir, db_prefix, clients, worker_env, seed,
               worker_db_url=None, workers=2):
    """Generator for a module fixture: creates a database, starts a bus, an intake with
    `clients`, calls seed(db_name, db_url) -> dict (its keys join the stack), then starts
    `workers` caselookup workers with `worker_env` added (on `worker_db_url(db_url)` when
    given) and yields the stack once they are ready: {"intake", "workers", "db", "db_url",
    "bus", …seed's keys}. Everything is stopped and the database dropped afterwards."""
    name = f"{db_prefix}_{uuid.uuid4().hex[:12]}"
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
        it = launch_intake(postgres, redis_server, db_url, log_dir, clients=clients,
                           bus_daemon=bus)
        started.append(it)
        stack = {"intake": it, "db": name, "db_url": db_url, "bus": bus}
        stack.update(seed(name, db_url))
        stack["workers"] = []
        for _ in range(workers):
            wenv = base_env(postgres, redis_server)
            wenv.update({"WASL_PG_URL": worker_db_url(db_url) if worker_db_url else db_url,
                         "WASL_BUS": bus.endpoint, "WASL_ADMIN_BIND": "127.0.0.1",
                         "WASL_ADMIN_PORT": str(free_port())})
            wenv.update(worker_env)
            w = Daemon("caselookup", BIN_DIR / "wasl-caselookup", wenv, log_dir,
                       admin_port=int(wenv["WASL_ADMIN_PORT"]))
            started.append(w)
            w.start()
            w.wait_healthy()
            stack["workers"].append(w)
        for w in stack["workers"]:
            wait_for(lambda w=w: w.get("/readyz")[0] == 200, 10, what="caselookup ready")
        yield stack
    finally:
        for d in reversed(started):
            (d.close if hasattr(d, "close") else d.kill)()
        if not postgres.running():
            postgres.start()
        postgres.drop_database(name)


def rpc_forwarded(stack):
    for line in stack["bus"].get("/metrics")[1].splitlines():
        if line.startswith('wasl_bus_forwarded_total{stage="rpc"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def bus_batch(stack, requests, together=False):
    """Sends every request to caselookup over the bus (as the router's batch does) and returns
    the replies' outcomes by request id. together: the workers are paused until the bus has
    handed them every request, so each finds its whole share waiting and serves it as one
    batch."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(stack["bus"].endpoint)
    paused = []
    try:
        before = rpc_forwarded(stack)
        if together:
            for w in stack["workers"]:
                w.proc.send_signal(signal.SIGSTOP)
                paused.append(w)
        for q in requests:
            s.send_multipart([b"", msgpack.packb(dict({"type": "case.lookup.request", "v": 1},
                                                      **q))])
        if together:
            wait_for(lambda: rpc_forwarded(stack) >= before + len(requests), 10,
                     what="the bus to hand every request to the paused workers")
            for w in paused:
                w.proc.send_signal(signal.SIGCONT)
            paused = []
        out = {}
        poller = zmq.Poller()
        poller.register(s, zmq.POLLIN)
        while len(out) < len(requests):
            assert poller.poll(10000), f"only {len(out)} of {len(requests)} replies"
            frames = s.recv_multipart()
            rep = msgpack.unpackb(frames[-1], raw=False)
            out[rep["request_id"]] = rep["outcome"]
        return out
    finally:
        for w in paused:
            w.proc.send_signal(signal.SIGCONT)
        s.close()
