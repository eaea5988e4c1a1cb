"""Which ticket history events NOTIFY the desk (migration 0026): the pipeline's own events —
`received`, `classified`, `notification.sent`, which every contact gets and no desk view shows —
do not; `routed`, offers and everything else do, once each, at commit."""

import json
import select

import psycopg2

from conftest import PG_OWNER_ROLE, REPO, pg_url_as

SETUP = REPO / "tests" / "sql" / "setup.sql"


def heard(conn, timeout=0.5):
    """The kinds of the wasl_desk notifications delivered within `timeout` s after the last."""
    kinds = []
    while select.select([conn], [], [], timeout) != ([], [], []):
        conn.poll()
        while conn.notifies:
            n = conn.notifies.pop(0)
            if n.channel == "wasl_desk":
                kinds.append(json.loads(n.payload)["k"])
    return kinds


def test_pipeline_events_do_not_notify_the_desk(fresh_db, waslctl):
    migrated = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert migrated.returncode == 0, migrated.stderr
    url = pg_url_as(fresh_db, PG_OWNER_ROLE)
    writer = psycopg2.connect(url)
    listener = psycopg2.connect(url)
    listener.autocommit = True
    try:
        with writer, writer.cursor() as cur:
            cur.execute(SETUP.read_text(encoding="utf-8"))
        with listener.cursor() as cur:
            cur.execute("LISTEN wasl_desk")
        kinds = ["received", "classified", "notification.sent", "routed", "note", "classified"]
        with writer, writer.cursor() as cur:
            cur.execute("SELECT id FROM tickets ORDER BY id LIMIT 1")
            ticket = cur.fetchone()[0]
            for kind in kinds:
                cur.execute("INSERT INTO ticket_events (ticket_id, kind, actor, data)"
                            " VALUES (%s, %s, 'test', '{}')", (ticket, kind))
        assert heard(listener) == ["routed", "note"]
    finally:
        writer.close()
        listener.close()
