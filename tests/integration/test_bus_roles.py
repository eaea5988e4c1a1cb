"""The bus admits on each socket only the roles that belong there (issue 13, finding 12): with
CURVE on, a key that is in public/ but of the wrong role — here the router's — cannot register
as a caselookup worker (it would receive national IDs) nor as a classify consumer; it receives
nothing, the refusal is counted in wasl_bus_auth_failures_total, and what was sent waits for the
rightful peer: nothing is lost."""

import zmq

from conftest import free_port_range, wait_for

ROLES = ("bus", "intake", "classifier", "router", "notifier", "caselookup")


def load(path):
    """(public, secret or None) of a zcert file, as bytes for pyzmq."""
    txt = path.read_text()
    pub = txt.split('public-key = "')[1].split('"')[0]
    sec = txt.split('secret-key = "')[1].split('"')[0] if "secret-key" in txt else None
    return pub.encode(), sec.encode() if sec else None


def auth_failures(bus, stage, side):
    return bus.metrics().get(f'wasl_bus_auth_failures_total{{stage="{stage}",side="{side}"}}', 0)


def start_bus(waslctl, daemon, tmp_path, env=None):
    keys = tmp_path / "keys"
    out = waslctl("keygen", "--dir", keys, *ROLES)
    assert out.returncode == 0, out.stderr
    base = free_port_range(8)
    bus = daemon("bus", env={"WASL_BUS_PORT": base, "WASL_CURVE_DIR": keys, **(env or {})},
                 wait=True)
    return bus, keys, base


class Peers:
    """CURVE sockets as one role or another, closed at the end."""

    def __init__(self, keys):
        self.keys = keys
        self.server_pub, _ = load(keys / "public" / "bus.pub")
        self.ctx = zmq.Context()

    def socket(self, role, kind, endpoint):
        pub, sec = load(self.keys / f"{role}.secret")
        s = self.ctx.socket(kind)
        s.curve_serverkey = self.server_pub
        s.curve_publickey = pub
        s.curve_secretkey = sec
        s.linger = 0
        s.connect(endpoint)
        return s

    def close(self):
        self.ctx.destroy(linger=0)


def test_a_router_key_cannot_be_a_caselookup_worker(waslctl, daemon, tmp_path):
    bus, keys, base = start_bus(waslctl, daemon, tmp_path)
    peers = Peers(keys)
    try:
        impostor = peers.socket("router", zmq.DEALER, f"tcp://127.0.0.1:{base + 1}")
        wait_for(lambda: auth_failures(bus, "rpc", "out") >= 1, 10,
                 what="the impostor worker refused")
        client = peers.socket("intake", zmq.DEALER, f"tcp://127.0.0.1:{base}")
        client.send_multipart([b"", b"lookup national_id=1012345678"])
        assert not impostor.poll(1000), "a router key received a case lookup request"
        # The request waited in the bus for a rightful worker: nothing lost.
        worker = peers.socket("caselookup", zmq.DEALER, f"tcp://127.0.0.1:{base + 1}")
        assert worker.poll(5000), "the caselookup worker got nothing"
        frames = worker.recv_multipart()
        assert frames[-1] == b"lookup national_id=1012345678"
        worker.send_multipart(frames[:-1] + [b"answer"])
        assert client.poll(5000) and client.recv_multipart()[-1] == b"answer"
        assert not impostor.poll(200)
        metrics = bus.metrics()
        assert metrics.get('wasl_bus_peers{stage="rpc",side="out"}') == 1
    finally:
        peers.close()


def test_each_stage_admits_only_its_producers_and_consumers(waslctl, daemon, tmp_path):
    bus, keys, base = start_bus(waslctl, daemon, tmp_path)
    peers = Peers(keys)
    try:
        # intake may feed classify but not consume it; the router may not feed it.
        thief = peers.socket("intake", zmq.PULL, f"tcp://127.0.0.1:{base + 3}")
        forger = peers.socket("router", zmq.PUSH, f"tcp://127.0.0.1:{base + 2}")
        wait_for(lambda: auth_failures(bus, "classify", "out") >= 1
                 and auth_failures(bus, "classify", "in") >= 1, 10,
                 what="the wrong roles refused on classify")
        try:
            forger.send(b"forged", flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # no pipe: the handshake was refused
        producer = peers.socket("intake", zmq.PUSH, f"tcp://127.0.0.1:{base + 2}")
        producer.send(b"ticket.received 1")
        assert not thief.poll(1000), "intake's key consumed the classify stage"
        consumer = peers.socket("classifier", zmq.PULL, f"tcp://127.0.0.1:{base + 3}")
        assert consumer.poll(5000) and consumer.recv() == b"ticket.received 1"
        assert not consumer.poll(500), "the router's forged message went through"
        # The next stages, one key each way.
        route_in = peers.socket("classifier", zmq.PUSH, f"tcp://127.0.0.1:{base + 4}")
        route_out = peers.socket("router", zmq.PULL, f"tcp://127.0.0.1:{base + 5}")
        route_in.send(b"ticket.classified 1")
        assert route_out.poll(5000) and route_out.recv() == b"ticket.classified 1"
        notify_in = peers.socket("router", zmq.PUSH, f"tcp://127.0.0.1:{base + 6}")
        notify_out = peers.socket("notifier", zmq.PULL, f"tcp://127.0.0.1:{base + 7}")
        notify_in.send(b"notify.requested 1")
        assert notify_out.poll(5000) and notify_out.recv() == b"notify.requested 1"
    finally:
        peers.close()


def test_allow_lists_are_configuration_and_checked(waslctl, daemon, tmp_path, bin_dir):
    """WASL_BUS_ALLOW can move a role (a second worker kind), and a stage left out of it stops
    the bus with exit 2 naming the variable rather than admitting everybody there."""
    import subprocess
    keys = tmp_path / "keys"
    assert waslctl("keygen", "--dir", keys, *ROLES).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "WASL_CURVE_DIR": str(keys),
           "WASL_BUS_ALLOW": "rpc=intake>caselookup;classify=intake>classifier"}
    out = subprocess.run([str(bin_dir / "wasl-bus")], env=env, capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 2, out.stderr
    assert "WASL_BUS_ALLOW" in out.stderr
    allow = ("rpc=intake>caselookup,router;classify=intake>classifier;"
             "route=classifier>router;notify=router>notifier")
    bus, keys, base = start_bus(waslctl, daemon, tmp_path, env={"WASL_BUS_ALLOW": allow})
    peers = Peers(keys)
    try:
        worker = peers.socket("router", zmq.DEALER, f"tcp://127.0.0.1:{base + 1}")
        client = peers.socket("intake", zmq.DEALER, f"tcp://127.0.0.1:{base}")
        client.send_multipart([b"", b"ping"])
        assert worker.poll(5000) and worker.recv_multipart()[-1] == b"ping"
        assert auth_failures(bus, "rpc", "out") == 0
    finally:
        peers.close()
