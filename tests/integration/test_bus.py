"""wasl-bus as its clients see it: stages deliver every message once and spread them, the
request/reply pair routes replies back, metrics count, bad configuration exits 2, SIGTERM stops."""

import signal
import subprocess

import pytest
import zmq

from conftest import binary_path, free_port, free_port_range, wait_for

STAGES = ["classify", "route", "notify"]


def stage_port(base, stage, side):
    """The bus's port arithmetic (docs/architecture.md, "The bus")."""
    i = STAGES.index(stage)
    return base + 2 + 2 * i + (1 if side == "out" else 0)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def peers(bus, stage, side):
    return bus.metrics().get(f'wasl_bus_peers{{stage="{stage}",side="{side}"}}', 0)


def test_two_producers_three_consumers_every_message_once_and_spread(bus, ctx):
    base = bus.base_port
    consumers = []
    for _ in range(3):
        s = ctx.socket(zmq.PULL)
        s.connect(f"tcp://127.0.0.1:{stage_port(base, 'classify', 'out')}")
        consumers.append(s)
    producers = []
    for _ in range(2):
        s = ctx.socket(zmq.PUSH)
        s.connect(f"tcp://127.0.0.1:{stage_port(base, 'classify', 'in')}")
        producers.append(s)
    # The bus reports peers once their handshake is done: then round-robin includes them all.
    wait_for(lambda: peers(bus, "classify", "out") == 3 and peers(bus, "classify", "in") == 2,
             10, what="3 consumers and 2 producers connected")

    total = 600
    for i in range(total):
        producers[i % 2].send(f"{i}".encode())

    received = [[] for _ in consumers]
    poller = zmq.Poller()
    for s in consumers:
        poller.register(s, zmq.POLLIN)
    got = 0
    while got < total:
        events = dict(poller.poll(5000))
        assert events, f"only {got} of {total} messages arrived"
        for idx, s in enumerate(consumers):
            while s in events:
                try:
                    received[idx].append(int(s.recv(zmq.NOBLOCK)))
                    got += 1
                except zmq.Again:
                    break
    everything = sorted(m for r in received for m in r)
    assert everything == list(range(total)), "every message exactly once"
    for idx, r in enumerate(received):
        # Round-robin over three connected consumers: each gets its third.
        assert len(r) == total // 3, f"consumer {idx} got {len(r)} of {total}"
    # Nothing extra is waiting.
    assert not dict(poller.poll(100))

    m = wait_for(lambda: (lambda mm: mm if mm.get('wasl_bus_forwarded_total{stage="classify"}')
                          == total else None)(bus.metrics()), 5, what="forwarded count")
    assert m['wasl_bus_received_total{stage="classify"}'] == total
    assert m['wasl_bus_forwarded_total{stage="route"}'] == 0


def test_stages_are_separate(bus, ctx):
    base = bus.base_port
    route_out = ctx.socket(zmq.PULL)
    route_out.connect(f"tcp://127.0.0.1:{stage_port(base, 'route', 'out')}")
    notify_out = ctx.socket(zmq.PULL)
    notify_out.connect(f"tcp://127.0.0.1:{stage_port(base, 'notify', 'out')}")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{stage_port(base, 'notify', 'in')}")
    wait_for(lambda: peers(bus, "notify", "out") == 1 and peers(bus, "route", "out") == 1, 10,
             what="consumers connected")
    push.send(b"for-notify")
    assert notify_out.poll(5000)
    assert notify_out.recv() == b"for-notify"
    assert not route_out.poll(200)


def test_request_reply_routes_each_reply_to_its_client(bus, ctx):
    base = bus.base_port
    workers = []
    for _ in range(2):
        w = ctx.socket(zmq.REP)
        w.connect(f"tcp://127.0.0.1:{base + 1}")
        workers.append(w)
    clients = []
    for _ in range(3):
        c = ctx.socket(zmq.REQ)
        c.connect(f"tcp://127.0.0.1:{base}")
        clients.append(c)
    wait_for(lambda: peers(bus, "rpc", "out") == 2 and peers(bus, "rpc", "in") == 3, 10,
             what="rpc peers connected")
    for i, c in enumerate(clients):
        c.send(f"question {i}".encode())
    served = [0, 0]
    poller = zmq.Poller()
    for w in workers:
        poller.register(w, zmq.POLLIN)
    answered = 0
    while answered < len(clients):
        events = dict(poller.poll(5000))
        assert events, "a request was lost"
        for idx, w in enumerate(workers):
            if w in events:
                q = w.recv()
                w.send(b"answer to " + q)
                served[idx] += 1
                answered += 1
    for i, c in enumerate(clients):
        assert c.poll(5000)
        assert c.recv() == f"answer to question {i}".encode()
    assert all(served), f"both workers should serve: {served}"


def test_oversized_frame_is_dropped_not_forwarded(daemon, ctx):
    base = free_port_range(8)
    bus = daemon("bus", env={"WASL_BUS_PORT": base, "WASL_ZMQ_MAXMSGSIZE": 4096}, wait=True)
    out = ctx.socket(zmq.PULL)
    out.connect(f"tcp://127.0.0.1:{base + 3}")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{base + 2}")
    wait_for(lambda: peers(bus, "classify", "out") == 1 and peers(bus, "classify", "in") == 1,
             10, what="peers")
    push.send(b"x" * 8192)
    assert not out.poll(300), "an oversized frame must not be forwarded"
    # The bus is still healthy and keeps serving well-behaved peers.
    push2 = ctx.socket(zmq.PUSH)
    push2.connect(f"tcp://127.0.0.1:{base + 2}")
    push2.send(b"small")
    assert out.poll(5000)
    assert out.recv() == b"small"
    assert bus.alive()


def test_help_and_bad_configuration(bin_dir):
    binary = binary_path("bus")
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for var in ("WASL_BUS_PORT", "WASL_BUS_STAGES", "WASL_ADMIN_PORT", "WASL_CURVE_DIR",
                "WASL_LOG_LEVEL"):
        assert var in out.stdout
    for var, value in (("WASL_BUS_PORT", "seventy"), ("WASL_ADMIN_PORT", "70000"),
                       ("WASL_LOG_LEVEL", "loud")):
        bad = subprocess.run([str(binary)], env={var: value, "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=10)
        assert bad.returncode == 2, (var, bad.stderr)
        assert var in bad.stderr


def test_port_in_use_fails_cleanly(daemon):
    base = free_port_range(8)
    first = daemon("bus", env={"WASL_BUS_PORT": base}, wait=True)
    second = daemon("bus", env={"WASL_BUS_PORT": base})
    assert second.proc.wait(10) == 1
    assert any("cannot bind" in line.get("msg", "") for line in second.log_lines())
    assert first.alive()


def test_sigterm_stops_cleanly_with_json_logs(bus):
    assert bus.stop(signal.SIGTERM, timeout=10) == 0
    lines = bus.log_lines(strict=True)
    msgs = [line["msg"] for line in lines]
    assert "bus: started" in msgs and "bus: stopped" in msgs
    assert all(line["service"] == "wasl-bus" for line in lines)


def test_stages_keep_forwarding_across_heartbeat_intervals(bus, ctx):
    """The bus forwards with its own loop (libzmq 4.3.4's proxy gave up with EAGAIN a few
    seconds after start in the local stack; test_stack.py has that regression end to end).
    With peers that send heartbeats every 50 ms, a message sent every 300 ms for 4 s must each
    get through promptly, on a pipeline stage and on the request/reply pair, and be counted."""
    base = bus.base_port
    ctx.setsockopt(zmq.HEARTBEAT_IVL, 50)
    pull = ctx.socket(zmq.PULL)
    pull.connect(f"tcp://127.0.0.1:{stage_port(base, 'route', 'out')}")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{stage_port(base, 'route', 'in')}")
    worker = ctx.socket(zmq.DEALER)
    worker.connect(f"tcp://127.0.0.1:{base + 1}")
    client = ctx.socket(zmq.REQ)
    client.connect(f"tcp://127.0.0.1:{base}")
    wait_for(lambda: peers(bus, "route", "out") == 1 and peers(bus, "route", "in") == 1
             and peers(bus, "rpc", "out") == 1 and peers(bus, "rpc", "in") == 1,
             10, what="peers connected")
    for i in range(14):
        push.send(f"m{i}".encode())
        assert pull.poll(2000), f"message {i} (at {i * 0.3:.1f} s) was not forwarded"
        assert pull.recv() == f"m{i}".encode()
        client.send(f"q{i}".encode())
        assert worker.poll(2000), f"request {i} was not forwarded"
        envelope = worker.recv_multipart()
        assert envelope[-1] == f"q{i}".encode()
        worker.send_multipart(envelope[:-1] + [f"a{i}".encode()])
        assert client.poll(2000), f"reply {i} did not come back"
        assert client.recv() == f"a{i}".encode()
        # Not a wait for something to happen: the time between messages is what lets the
        # heartbeats run (the bug needed one between two messages).
        pull.poll(300)
    m = bus.metrics()
    assert m['wasl_bus_forwarded_total{stage="route"}'] == 14
    assert m['wasl_bus_forwarded_total{stage="rpc"}'] == 28
