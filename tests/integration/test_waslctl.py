"""waslctl: migrate (versioned, idempotent, transactional), keygen, status and version."""

import os
import stat

from conftest import free_port


def tables(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in cur.fetchall()}


def test_migrate_twice_is_a_noop(waslctl, fresh_db, postgres):
    first = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert first.returncode == 0, first.stderr
    assert "applied 0001_core" in first.stdout
    import psycopg2
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    assert {"tickets", "ticket_events", "messages", "work", "notifications",
            "schema_migrations"} <= tables(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        before = cur.fetchall()
    second = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert second.returncode == 0, second.stderr
    assert "applied" not in second.stdout
    assert "up to date" in second.stdout
    with conn.cursor() as cur:
        cur.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        assert cur.fetchall() == before
    conn.close()


def test_migrate_refuses_an_edited_migration(waslctl, fresh_db):
    assert waslctl("migrate", env={"WASL_PG_URL": fresh_db}).returncode == 0
    import psycopg2
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("UPDATE schema_migrations SET sha256 = 'x' WHERE version = 1")
    out = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert out.returncode == 1
    assert "changed after it was applied" in out.stderr
    conn.close()


def test_migrate_failure_applies_nothing(waslctl, fresh_db):
    """A migration that fails leaves no half-applied schema: one transaction."""
    import psycopg2
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        # A conflicting object makes 0001 fail midway (after its function was created).
        cur.execute("CREATE TABLE messages (id int)")
    out = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert out.returncode == 1
    assert "0001_core failed" in out.stderr
    assert tables(conn) == {"messages"}
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_proc WHERE proname = 'wasl_append_only'")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_migrate_unreachable_database(waslctl):
    out = waslctl("migrate", env={"WASL_PG_URL": f"postgresql://x@127.0.0.1:{free_port()}/x"})
    assert out.returncode == 1
    assert "cannot connect" in out.stderr


def test_schema_guards(waslctl, fresh_db):
    """History is append-only; a dead work row must say why."""
    import psycopg2
    assert waslctl("migrate", env={"WASL_PG_URL": fresh_db}).returncode == 0
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO tickets (ref, channel, external_id) VALUES ('2600000018', 'api', "
                "'e1') RETURNING id")
    tid = cur.fetchone()[0]
    cur.execute("INSERT INTO ticket_events (ticket_id, kind, actor) VALUES (%s, 'received', "
                "'intake')", (tid,))
    for sql in ("UPDATE ticket_events SET kind = 'x'", "DELETE FROM ticket_events",
                "TRUNCATE ticket_events CASCADE"):
        try:
            cur.execute(sql)
            raise AssertionError(f"{sql} was allowed")
        except psycopg2.Error as exc:
            assert "append-only" in str(exc)
    try:
        cur.execute("INSERT INTO work (ticket_id, stage, state, dedupe_key) VALUES (%s, "
                    "'classify', 'dead', 'k1')", (tid,))
        raise AssertionError("a dead work row without a reason was allowed")
    except psycopg2.errors.CheckViolation:
        pass
    try:
        cur.execute("INSERT INTO tickets (ref, channel, external_id) VALUES ('2600000026', "
                    "'api', 'e1')")
        raise AssertionError("a duplicate (channel, external_id) was allowed")
    except psycopg2.errors.UniqueViolation:
        pass
    conn.close()


def test_keygen_layout_and_permissions(waslctl, tmp_path):
    keys = tmp_path / "keys"
    out = waslctl("keygen", "--dir", keys, "bus", "intake")
    assert out.returncode == 0, out.stderr
    for name in ("bus", "intake"):
        secret = keys / f"{name}.secret"
        public = keys / "public" / f"{name}.pub"
        assert "secret-key" in secret.read_text()
        assert "secret-key" not in public.read_text()
        assert "public-key" in public.read_text()
        assert stat.S_IMODE(os.stat(secret).st_mode) & 0o077 == 0
    before = (keys / "bus.secret").read_text()
    again = waslctl("keygen", "--dir", keys, "bus")
    assert again.returncode == 0 and "exists" in again.stdout
    assert (keys / "bus.secret").read_text() == before, "keygen never overwrites a key"
    assert waslctl("keygen", "--dir", keys, "../evil").returncode == 2
    assert waslctl("keygen", "--dir", keys).returncode == 2


def test_curve_bus_with_keygen_keys(waslctl, daemon, tmp_path):
    """The bus with WASL_CURVE_DIR: a daemon key from keygen is admitted, a stranger's is not
    (which role may use which socket: test_bus_roles.py)."""
    import zmq
    from conftest import free_port_range, wait_for
    keys = tmp_path / "keys"
    assert waslctl("keygen", "--dir", keys, "bus", "intake", "classifier").returncode == 0
    base = free_port_range(8)
    bus = daemon("bus", env={"WASL_BUS_PORT": base, "WASL_CURVE_DIR": keys}, wait=True)

    def load(path):
        txt = path.read_text()
        pub = txt.split('public-key = "')[1].split('"')[0]
        sec = txt.split('secret-key = "')[1].split('"')[0] if "secret-key" in txt else None
        return pub.encode(), sec.encode() if sec else None

    server_pub, _ = load(keys / "public" / "bus.pub")
    ctx = zmq.Context()
    try:
        def client(pub, sec, kind):
            s = ctx.socket(kind)
            s.curve_serverkey = server_pub
            s.curve_publickey = pub
            s.curve_secretkey = sec
            return s
        ipub, isec = load(keys / "intake.secret")
        cpub, csec = load(keys / "classifier.secret")
        out = client(cpub, csec, zmq.PULL)
        out.connect(f"tcp://127.0.0.1:{base + 3}")
        push = client(ipub, isec, zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{base + 2}")
        push.send(b"sealed")
        assert out.poll(5000) and out.recv() == b"sealed"

        spub, ssec = zmq.curve_keypair()
        stranger = client(spub, ssec, zmq.PUSH)
        stranger.connect(f"tcp://127.0.0.1:{base + 2}")
        try:
            stranger.send(b"intruder", flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # no pipe: the handshake was refused, as it should be
        wait_for(lambda: bus.metrics().get(
            'wasl_bus_auth_failures_total{stage="classify",side="in"}', 0) >= 1, 10,
            what="the stranger refused")
        assert not out.poll(300)
    finally:
        ctx.destroy(linger=0)


def test_status_reports_each_daemon(waslctl, bus):
    ok = waslctl("status", env={"WASL_STATUS_TARGETS": f"bus={bus.admin_url}"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    line = next(l for l in ok.stdout.splitlines() if l.startswith("bus"))
    assert " ok " in line and "ready" in line
    dead = f"http://127.0.0.1:{free_port()}"
    bad = waslctl("status", env={"WASL_STATUS_TARGETS": f"bus={bus.admin_url},intake={dead}"})
    assert bad.returncode == 1
    assert any(l.startswith("intake") and "down" in l for l in bad.stdout.splitlines())
    assert waslctl("status", env={"WASL_STATUS_TARGETS": "nonsense"}).returncode == 2


def test_version_lists_messages_and_schema(waslctl):
    from conftest import REPO
    latest = max(int(p.name[:4]) for p in (REPO / "proto" / "migrations").glob("*.sql"))
    out = waslctl("version")
    assert out.returncode == 0
    # Every message of the model, at the version the model gives it.
    import re
    model = (REPO / "proto" / "wasl.proto").read_text()
    messages = re.findall(r"^message (\S+) v(\d+) ", model, re.M)
    assert messages
    for name, version in messages:
        assert f"{name}/v{version}" in out.stdout, (name, version, out.stdout)
    assert f"schema version {latest} " in out.stdout


def test_agent_passwd_sets_an_argon2id_hash_and_ends_sessions(waslctl, fresh_db, redis_server,
                                                               tmp_path):
    """`agent passwd` reads the password from a file (never argv), refuses a short one, stores
    only an Argon2id hash with the role, and ends the agent's desk sessions in Redis."""
    import psycopg2
    import secrets
    env = {"WASL_PG_URL": fresh_db}
    # Redis is shared by the whole run: names of our own, so that sessions other tests left
    # (the desk's tests sign hala in) cannot be counted here.
    agent, other = "pw-" + secrets.token_hex(4), "pw-" + secrets.token_hex(4)
    assert waslctl("migrate", env=env).returncode == 0
    added = waslctl("agent", "add", agent, "--name", "Hala", "--skills", "general", env=env)
    assert added.returncode == 0, added.stderr
    short = tmp_path / "short"
    short.write_text("short-1\n")
    refused = waslctl("agent", "passwd", agent, "--password-file", short, env=env)
    assert refused.returncode == 2 and "shorter than 10" in refused.stderr
    # A live session of the agent (as the desk makes them) and another agent's.
    r = redis_server.client()
    r.hset("wasl:desk:s:" + "a" * 64, mapping={"agent": agent})
    r.sadd("wasl:desk:a:" + agent, "wasl:desk:s:" + "a" * 64)
    r.hset("wasl:desk:s:" + "b" * 64, mapping={"agent": other})
    r.sadd("wasl:desk:a:" + other, "wasl:desk:s:" + "b" * 64)
    good = tmp_path / "good"
    good.write_text("كلمة سر طويلة 2026\n")
    ok = waslctl("agent", "passwd", agent, "--password-file", good, "--role", "supervisor",
                 env=env)
    assert ok.returncode == 0, ok.stderr
    assert f"1 desk session(s) of {agent} ended" in ok.stdout
    assert not r.exists("wasl:desk:s:" + "a" * 64)
    assert r.exists("wasl:desk:s:" + "b" * 64)
    conn = psycopg2.connect(fresh_db)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT password_hash, role, password_changed_at IS NOT NULL FROM agents"
                    " WHERE id = %s", (agent,))
        pw_hash, role, changed = cur.fetchone()
    conn.close()
    assert pw_hash.startswith("$argon2id$") and "2026" not in pw_hash
    assert role == "supervisor" and changed
    assert waslctl("agent", "passwd", "nobody", "--password-file", good,
                   env=env).returncode == 1
    assert waslctl("agent", "passwd", agent, "--role", "root", "--password-file", good,
                   env=env).returncode == 2
    r.delete("wasl:desk:s:" + "b" * 64, "wasl:desk:a:" + other)


def test_migrate_installs_the_state_functions_and_says_which(waslctl, fresh_db):
    """The functions of proto/functions/ are applied on every migrate; the set's hash is
    printed and wasl_functions_version() returns the same."""
    import psycopg2
    env = {"WASL_PG_URL": fresh_db}
    first = waslctl("migrate", env=env)
    assert first.returncode == 0, first.stderr
    line = [ln for ln in first.stdout.splitlines() if ln.startswith("state functions ")]
    assert len(line) == 1, first.stdout
    printed = line[0].split()[-1]
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT wasl_functions_version()")
        assert cur.fetchone()[0].startswith(printed) and len(printed) == 12
        # A function dropped by hand comes back at the next migrate (they are state).
        cur.execute("DROP FUNCTION wasl_agents_remove(text, text)")
    again = waslctl("migrate", env=env)
    assert again.returncode == 0, again.stderr
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_proc WHERE proname = 'wasl_agents_remove'")
        assert cur.fetchone()[0] == 1
    conn.close()


def test_agent_add_keeps_what_the_command_leaves_out(waslctl, fresh_db):
    """`agent add` on an existing agent is wasl_agents_save, the desk's rule: an option left
    out keeps its value (it used to reset languages to ar and the wrap-up to 30 s)."""
    import psycopg2
    env = {"WASL_PG_URL": fresh_db}
    assert waslctl("migrate", env=env).returncode == 0
    first = waslctl("agent", "add", "nora", "--name", "Nora", "--skills", "general:4",
                    "--languages", "ar,en", "--capacity", "web:6,phone:0", "--wrapup", "90",
                    env=env)
    assert first.returncode == 0 and "added" in first.stdout, first.stderr
    again = waslctl("agent", "add", "nora", "--name", "Nora A.", "--skills", "complaints",
                    env=env)
    assert again.returncode == 0 and "updated" in again.stdout, again.stderr
    conn = psycopg2.connect(fresh_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, skills, languages, capacity, wrapup_s FROM agents"
                        " WHERE id = 'nora'")
            assert cur.fetchone() == ("Nora A.", {"complaints": 5}, ["ar", "en"],
                                      {"web": 6, "phone": 0}, 90)
    finally:
        conn.close()
    bad = waslctl("agent", "add", "nora", "--name", "N", "--skills", "general", "--wrapup",
                  "", env=env)
    assert bad.returncode != 0
