"""Least privilege in PostgreSQL (issue 13, finding 8): each daemon connects as its own role,
which can do only what proto/grants.sql lists. The attack: a compromised daemon tries to rewrite
or wipe the append-only history and audit — UPDATE, DELETE, TRUNCATE, ALTER TABLE, DISABLE
TRIGGER, DROP — and every attempt is refused with nothing lost."""

import psycopg2
import pytest

from conftest import DAEMON_PG_ROLES, PG_CTL_ROLE, PG_OWNER_ROLE, pg_url_as
from intake_helpers import start_intake  # noqa: F401  (fixture)

# Every role a process of Wasl connects as, but the owner (migrations only).
SERVICE_ROLES = sorted(DAEMON_PG_ROLES.values()) + [PG_CTL_ROLE, "wasl_desk"]

# Append-only tables, a column to try to rewrite, and their guard triggers.
APPEND_ONLY = {
    "ticket_events": ("kind", ["ticket_events_append_only", "ticket_events_no_truncate"]),
    "agent_events": ("kind", ["agent_events_append_only", "agent_events_no_truncate"]),
    "case_lookup_audit": ("outcome", ["case_lookup_audit_append_only",
                                      "case_lookup_audit_no_truncate"]),
    # Rows never deleted; only intake may set ticket_id (linking a call to its ticket).
    "call_events": ("event", ["call_events_no_delete", "call_events_no_truncate"]),
}


def attacks(table, column, triggers):
    """What a compromised daemon would try on an append-only table."""
    out = [
        f"UPDATE {table} SET {column} = {column}",
        f"DELETE FROM {table}",
        f"TRUNCATE {table}",
        f"TRUNCATE {table} CASCADE",
        f"ALTER TABLE {table} DISABLE TRIGGER ALL",
        f"ALTER TABLE {table} DISABLE TRIGGER USER",
        f"ALTER TABLE {table} ADD COLUMN forged text",
        f"ALTER TABLE {table} OWNER TO CURRENT_USER",
        f"DROP TABLE {table} CASCADE",
        f"CREATE RULE forge AS ON INSERT TO {table} DO INSTEAD NOTHING",
        f"CREATE TRIGGER forge BEFORE INSERT ON {table} FOR EACH ROW "
        "EXECUTE FUNCTION wasl_append_only()",
        "SET session_replication_role = replica",  # would skip every trigger
    ]
    for trig in triggers:
        out.append(f"ALTER TABLE {table} DISABLE TRIGGER {trig}")
        out.append(f"DROP TRIGGER {trig} ON {table}")
    return out


def connect_as(db_url, role):
    conn = psycopg2.connect(pg_url_as(db_url, role), connect_timeout=5)
    conn.autocommit = True
    return conn


def counts(conn):
    with conn.cursor() as cur:
        out = {}
        for table in APPEND_ONLY:
            cur.execute(f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text))"
                        f" FROM {table} t")
            out[table] = cur.fetchone()
        return out


@pytest.fixture
def history_db(waslctl, fresh_db, postgres):
    """fresh_db migrated (as the owner), with one row in every append-only table."""
    out = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert out.returncode == 0, out.stderr
    conn = psycopg2.connect(fresh_db)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("INSERT INTO tickets (ref, channel, external_id) VALUES ('2600000018', 'api',"
                    " 'priv-1') RETURNING id")
        tid = cur.fetchone()[0]
        cur.execute("INSERT INTO ticket_events (ticket_id, kind, actor) VALUES (%s, 'received',"
                    " 'intake')", (tid,))
        cur.execute("INSERT INTO agent_events (agent_id, kind, actor) VALUES ('a1', 'presence',"
                    " 'a1')")
        cur.execute("INSERT INTO case_lookup_audit (request_id, case_number, verifier_kind,"
                    " verifier_masked, channel, client, outcome, worker) VALUES ('r1',"
                    " '4512345678', 'national_id', '******5678', 'web', 'portal', 'denied', 'w')")
        cur.execute("INSERT INTO call_events (call_id, seq, event, ticket_id) VALUES ('c1', 0,"
                    " 'start', %s)", (tid,))
    yield fresh_db, conn
    conn.close()


@pytest.mark.parametrize("role", SERVICE_ROLES)
def test_no_service_role_can_rewrite_or_wipe_append_only_tables(history_db, role):
    db_url, owner_view = history_db
    before = counts(owner_view)
    assert all(n == 1 for n, _ in before.values()), before
    conn = connect_as(db_url, role)
    allowed = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == role
            for table, (column, triggers) in APPEND_ONLY.items():
                for sql in attacks(table, column, triggers):
                    try:
                        cur.execute(sql)
                        allowed.append(sql)
                    except psycopg2.Error as exc:
                        assert exc.pgcode in ("42501", "42P01"), f"{role}: {sql}: {exc}"
    finally:
        conn.close()
    assert not allowed, f"{role} was allowed: {allowed}"
    assert counts(owner_view) == before


def test_even_the_owner_cannot_rewrite_history_without_first_disabling_its_guards(history_db):
    """The triggers hold for the owner too (only the owner could drop them: no daemon is it)."""
    db_url, owner_view = history_db
    before = counts(owner_view)
    conn = connect_as(db_url, PG_OWNER_ROLE)
    try:
        with conn.cursor() as cur:
            for table, (column, _) in APPEND_ONLY.items():
                ops = [f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE"]
                if table != "call_events":
                    ops.append(f"UPDATE {table} SET {column} = {column}")
                for sql in ops:
                    with pytest.raises(psycopg2.Error, match="append-only"):
                        cur.execute(sql)
    finally:
        conn.close()
    assert counts(owner_view) == before


def test_service_roles_own_nothing_and_truncate_nothing(history_db):
    _, conn = history_db
    with conn.cursor() as cur:
        cur.execute("SELECT r.rolname, c.relname FROM pg_class c JOIN pg_roles r"
                    " ON r.oid = c.relowner WHERE r.rolname = ANY(%s)", (SERVICE_ROLES,))
        assert cur.fetchall() == []
        cur.execute("SELECT r, c.relname FROM pg_class c, unnest(%s::text[]) r"
                    " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
                    " AND (has_table_privilege(r, c.oid, 'TRUNCATE')"
                    "   OR has_table_privilege(r, c.oid, 'REFERENCES')"
                    "   OR has_table_privilege(r, c.oid, 'TRIGGER'))", (SERVICE_ROLES,))
        assert cur.fetchall() == []
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) AND (rolsuper OR"
                    " rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication)",
                    (SERVICE_ROLES + [PG_OWNER_ROLE],))
        assert cur.fetchall() == []
        for table in APPEND_ONLY:
            for priv in ("UPDATE", "DELETE"):
                cur.execute("SELECT r FROM unnest(%s::text[]) r"
                            " WHERE has_table_privilege(r, %s, %s)",
                            (SERVICE_ROLES, table, priv))
                assert cur.fetchall() == [], f"{priv} on {table}"


# A role reading what is none of its business: (role, statement).
FOREIGN_READS = [
    ("wasl_classifier", "SELECT hmac_secret FROM clients"),
    ("wasl_router", "SELECT token_sha256 FROM clients"),
    ("wasl_notifier", "SELECT national_id FROM case_parties"),
    ("wasl_intake", "SELECT national_id FROM case_parties"),
    ("wasl_caselookup", "SELECT from_national_id FROM tickets"),
    ("wasl_caselookup", "SELECT body FROM messages"),
    ("wasl_ctl", "SELECT national_id FROM case_parties"),
    ("wasl_desk", "SELECT hmac_secret FROM clients"),
    ("wasl_classifier", "UPDATE tickets SET assignee = 'x'"),
    ("wasl_notifier", "UPDATE tickets SET status = 'closed'"),
    ("wasl_intake", "INSERT INTO clients (id, name, kind, scopes, token_sha256) VALUES ('evil',"
                    " 'e', 'ops', '{*}', repeat('a', 64))"),
    ("wasl_intake", "SELECT * FROM schema_migrations"),
    # State-change functions (proto/functions/) are EXECUTE-granted to their callers only.
    ("wasl_notifier", "SELECT wasl_agents_remove('a1', 'evil')"),
    ("wasl_classifier", "SELECT * FROM wasl_offers_accept(1, 'a1', 'evil')"),
    ("wasl_caselookup", "SELECT * FROM wasl_offers_withdraw(NULL, 'a1', 'x', 'evil')"),
    ("wasl_router", "SELECT wasl_agents_save('a1', 'A', NULL, NULL, NULL, NULL, 'evil')"),
    # Desk passwords (0020): only waslctl and the desk read or write them.
    ("wasl_intake", "SELECT password_hash FROM agents"),
    ("wasl_router", "SELECT password_hash FROM agents"),
    ("wasl_intake", "UPDATE agents SET password_hash = NULL"),
    ("wasl_router", "UPDATE agents SET role = 'admin'"),
    ("wasl_intake", "SELECT wasl_agents_set_password('a1', NULL, 'admin', 'evil')"),
]


@pytest.mark.parametrize("role,sql", FOREIGN_READS)
def test_roles_reach_only_what_their_daemon_uses(history_db, role, sql):
    db_url, _ = history_db
    conn = connect_as(db_url, role)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(sql)
    finally:
        conn.close()


def test_grants_are_the_state_a_hand_made_grant_goes_at_the_next_migrate(history_db, waslctl):
    """grants.sql revokes before it grants: a privilege added by hand does not survive."""
    db_url, conn = history_db
    with conn.cursor() as cur:
        cur.execute("GRANT DELETE, TRUNCATE ON ticket_events, clients TO wasl_router")
        cur.execute("SELECT has_table_privilege('wasl_router', 'clients', 'DELETE')")
        assert cur.fetchone()[0] is True
    out = waslctl("migrate", env={"WASL_PG_URL": db_url})
    assert out.returncode == 0, out.stderr
    with conn.cursor() as cur:
        for table in ("ticket_events", "clients"):
            for priv in ("DELETE", "TRUNCATE"):
                cur.execute("SELECT has_table_privilege('wasl_router', %s, %s)", (table, priv))
                assert cur.fetchone()[0] is False, (table, priv)


def test_daemons_connect_as_their_own_roles(start_intake, postgres):
    """The suite's daemons run on their roles: intake commits a report as wasl_intake."""
    it = start_intake()
    resp = it.report()
    assert resp.status == 201, resp
    dbname = it.db_url.rsplit("/", 1)[1]
    conn = postgres.connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s"
                        " AND pid <> pg_backend_pid()", (dbname,))
            users = {r[0] for r in cur.fetchall()}
    finally:
        conn.close()
    assert users == {"wasl_intake"}, users


def test_state_functions_are_not_public(history_db, waslctl):
    """PostgreSQL gives EXECUTE to PUBLIC on a new function; grants.sql takes it back from
    every state-change function, on every migrate (a hand-made grant goes too)."""
    db_url, conn = history_db
    family = r"^wasl_(offers|agents|work|notifications|tickets)_"
    public_sql = ("SELECT p.proname FROM pg_proc p, aclexplode(coalesce(p.proacl,"
                  " acldefault('f', p.proowner))) a WHERE p.pronamespace = 'public'::regnamespace"
                  " AND p.proname ~ %s AND a.grantee = 0 ORDER BY 1")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_proc WHERE proname ~ %s", (family,))
        assert cur.fetchone()[0] >= 8
        cur.execute(public_sql, (family,))
        assert cur.fetchall() == []
        cur.execute("GRANT EXECUTE ON FUNCTION wasl_agents_remove TO PUBLIC, wasl_notifier")
        cur.execute(public_sql, (family,))
        assert cur.fetchall() == [("wasl_agents_remove",)]
    out = waslctl("migrate", env={"WASL_PG_URL": db_url})
    assert out.returncode == 0, out.stderr
    with conn.cursor() as cur:
        cur.execute(public_sql, (family,))
        assert cur.fetchall() == []
        cur.execute("SELECT has_function_privilege('wasl_notifier', 'wasl_agents_remove(text,"
                    " text)', 'EXECUTE'), has_function_privilege('wasl_ctl',"
                    " 'wasl_agents_remove(text, text)', 'EXECUTE')")
        assert cur.fetchone() == (False, True)
