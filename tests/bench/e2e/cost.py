"""cost.py — what one contact costs PostgreSQL (issue 16, item 1), for tests/bench/e2e/bench.py.

A fixed run (N contacts through the whole pipeline, to the acknowledgement, the stack otherwise
idle) is bracketed by two snapshots of the cumulative statistics:

  pg_stat_user_tables     n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_dead_tup
  pg_stat_user_indexes    idx_scan, idx_tup_read (+ pg_statio_user_indexes: blocks hit/read)
  pg_stat_wal             wal_records, wal_fpi, wal_bytes
  pg_stat_database        xact_commit, xact_rollback (this database)

and the difference is divided by the run's tickets. What the numbers mean:

- Updates are split into HOT (no index touched) and non-HOT (n_tup_upd - n_tup_hot_upd).
- Index entries written are not counted by PostgreSQL; they are derived per index as
  inserts + non-HOT updates of its table: every new tuple version that is not HOT gets an entry
  in every index of the table (PostgreSQL 15 has no summarizing-index exception). For a partial
  index that is an upper bound (a version outside the predicate gets no entry): such rows are
  marked "<=".
- Statistics reach the shared counters only when a backend flushes them (PostgreSQL 15: when it
  goes idle, at most once a second, later under contention). `settle` calls
  pg_stat_force_next_flush() for its own backend and then waits until the tables' counters
  stop moving for two reads in a row before it takes a snapshot; each read starts with
  pg_stat_clear_snapshot() so it never sees a cached copy.
- Commits include the daemons' idle work (sweeps, health checks) and this module's own
  queries: `background` measures the idle rate over a few seconds before the run, and the
  monitoring connection counts its own statements (each one a transaction in autocommit), so
  `commits_net` is the run's own. WAL includes what autovacuum wrote meanwhile.

Everything is plain Python over a psycopg2 connection (the database owner's, autocommit).
"""

import time

# The tables one contact goes through; the per-table and per-index breakdown lists these first.
HOT_TABLES = ["tickets", "ticket_events", "messages", "work", "notifications", "offers",
              "ticket_participants"]
# The queue-like tables whose dead tuples the sustained run samples.
DEAD_TABLES = ["work", "notifications", "offers", "tickets"]

TABLE_COLS = ["n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del", "n_dead_tup", "n_live_tup"]
INDEX_COLS = ["idx_scan", "idx_tup_read", "idx_tup_fetch", "idx_blks_read", "idx_blks_hit"]


class Monitor:
    """The monitoring connection, counting its own transactions (autocommit: one a statement)."""

    def __init__(self, db):
        self.db = db
        self.statements = 0

    def rows(self, sql, params=()):
        with self.db.cursor() as cur:
            cur.execute(sql, params)
            self.statements += 1
            return cur.fetchall()


def read(mon):
    """One snapshot: {"tables": {name: {col: n}}, "indexes": {name: {...}}, "wal": {...},
    "db": {...}, "at": monotonic seconds}."""
    mon.rows("SELECT pg_stat_clear_snapshot()")
    tables = {r[0]: dict(zip(TABLE_COLS, r[1:])) for r in mon.rows(
        "SELECT relname, " + ", ".join(TABLE_COLS) + " FROM pg_stat_user_tables"
        " WHERE schemaname = 'public'")}
    indexes = {}
    for r in mon.rows("""
            SELECT s.relname, s.indexrelname, s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
                   coalesce(io.idx_blks_read, 0), coalesce(io.idx_blks_hit, 0),
                   i.indpred IS NOT NULL, i.indisunique, pg_get_indexdef(s.indexrelid)
            FROM pg_stat_user_indexes s
            JOIN pg_statio_user_indexes io ON io.indexrelid = s.indexrelid
            JOIN pg_index i ON i.indexrelid = s.indexrelid
            WHERE s.schemaname = 'public'"""):
        indexes[r[1]] = dict(zip(INDEX_COLS, r[2:7]), table=r[0], partial=r[7], unique=r[8],
                             definition=r[9])
    (wal_records, wal_fpi, wal_bytes), = mon.rows(
        "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
    (commits, rollbacks), = mon.rows(
        "SELECT xact_commit, xact_rollback FROM pg_stat_database"
        " WHERE datname = current_database()")
    return {"tables": tables, "indexes": indexes,
            "wal": {"wal_records": int(wal_records), "wal_fpi": int(wal_fpi),
                    "wal_bytes": int(wal_bytes)},
            "db": {"xact_commit": commits, "xact_rollback": rollbacks},
            "statements": mon.statements, "at": time.monotonic()}


def _tuple_counters(snap):
    return {t: (v["n_tup_ins"], v["n_tup_upd"], v["n_tup_del"])
            for t, v in snap["tables"].items()}


def settle(mon, limit_s=20.0):
    """A snapshot taken once every backend has flushed its statistics: the tables' counters are
    the same in two reads a second apart (or `limit_s` passed)."""
    mon.rows("SELECT pg_stat_force_next_flush()")
    start = time.monotonic()
    prev = read(mon)
    stable = 0
    while time.monotonic() - start < limit_s:
        time.sleep(1.0)
        cur = read(mon)
        stable = stable + 1 if _tuple_counters(cur) == _tuple_counters(prev) else 0
        prev = cur
        if stable >= 2:
            break
    return prev


def pipeline_idle(mon):
    """True when no work row waits or runs and no notification waits or is being sent."""
    (n,), = mon.rows("""
        SELECT (SELECT count(*) FROM work WHERE state IN ('pending', 'running'))
             + (SELECT count(*) FROM notifications WHERE state IN ('pending', 'sending'))""")
    return n == 0


def diff(before, after, contacts, background=None):
    """Per contact (and in total) from two snapshots; `background` is the idle rate per second
    (from `idle_rate`) subtracted from the commits."""
    n = max(1, contacts)
    per = lambda v: round(v / n, 3)  # noqa: E731
    tables = {}
    for name, a in after["tables"].items():
        b = before["tables"].get(name, {c: 0 for c in TABLE_COLS})
        d = {c: int(a[c] - b[c]) for c in ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd",
                                            "n_tup_del")}
        d["nonhot_upd"] = d["n_tup_upd"] - d["n_tup_hot_upd"]
        if not any(d.values()):
            continue
        d["n_dead_tup_after"] = int(a["n_dead_tup"])
        d["per_contact"] = {k: per(v) for k, v in d.items() if k != "n_dead_tup_after"}
        tables[name] = d
    indexes = {}
    for name, a in after["indexes"].items():
        b = before["indexes"].get(name, {c: 0 for c in INDEX_COLS})
        t = tables.get(a["table"])
        written = (t["n_tup_ins"] + t["nonhot_upd"]) if t else 0
        d = {c: int(a[c] - b[c]) for c in INDEX_COLS}
        if not written and not any(d.values()):
            continue
        d.update(table=a["table"], partial=a["partial"], unique=a["unique"],
                 definition=a["definition"],
                 entries_written=written, entries_bound="<=" if a["partial"] else "=",
                 entries_per_contact=per(written), scans_per_contact=per(d["idx_scan"]),
                 blocks_per_contact=per(d["idx_blks_hit"] + d["idx_blks_read"]))
        indexes[name] = d
    seconds = after["at"] - before["at"]
    own = after["statements"] - before["statements"]
    commits = int(after["db"]["xact_commit"] - before["db"]["xact_commit"])
    bg = round((background or {}).get("commits_per_s", 0.0) * seconds)
    net = max(0, commits - own - bg)
    wal = {k: int(after["wal"][k] - before["wal"][k]) for k in after["wal"]}
    totals = {
        "rows_inserted": sum(t["n_tup_ins"] for t in tables.values()),
        "rows_updated_hot": sum(t["n_tup_hot_upd"] for t in tables.values()),
        "rows_updated_nonhot": sum(t["nonhot_upd"] for t in tables.values()),
        "rows_deleted": sum(t["n_tup_del"] for t in tables.values()),
        "index_entries": sum(i["entries_written"] for i in indexes.values()),
        "index_entries_full": sum(i["entries_written"] for i in indexes.values()
                                  if not i["partial"]),
        "index_entries_partial_bound": sum(i["entries_written"] for i in indexes.values()
                                           if i["partial"]),
        "wal_bytes": wal["wal_bytes"], "wal_records": wal["wal_records"],
        "wal_fpi": wal["wal_fpi"], "commits_net": net,
    }
    return {"contacts": contacts, "seconds": round(seconds, 1),
            "commits_raw": commits, "commits_own_queries": own, "commits_background": bg,
            "total": totals, "per_contact": {k: per(v) for k, v in totals.items()},
            "tables": tables, "indexes": indexes}


def idle_rate(mon, seconds=4.0):
    """The idle stack's own commits per second (daemons' sweeps and checks), settled, and the
    last snapshot (the `before` of a run that starts now)."""
    a = settle(mon)
    time.sleep(seconds)
    b = settle(mon)
    span = b["at"] - a["at"]
    commits = b["db"]["xact_commit"] - a["db"]["xact_commit"] - (b["statements"] - a["statements"])
    return {"seconds": round(span, 1), "commits_per_s": round(max(0, commits) / span, 2),
            "wal_bytes_per_s": round((b["wal"]["wal_bytes"] - a["wal"]["wal_bytes"]) / span,
                                     1)}, b


def dead_tuples(mon):
    """n_dead_tup of the queue-like tables now."""
    mon.rows("SELECT pg_stat_clear_snapshot()")
    return {r[0]: int(r[1]) for r in mon.rows(
        "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE relname = ANY(%s)"
        " AND schemaname = 'public'", (DEAD_TABLES,))}


def table_lines(cost):
    """The per-contact breakdown as (label, value, note) rows for bench.py's table."""
    p = cost["per_contact"]
    version = " ".join(str(cost.get("postgresql", "")).split()[:2])
    rows = [(f"cost of one contact ({cost['contacts']} contacts, idle stack)", version, ""),
            ("  rows inserted / updated HOT / non-HOT / deleted",
             f"{p['rows_inserted']} / {p['rows_updated_hot']} / {p['rows_updated_nonhot']} / "
             f"{p['rows_deleted']}", ""),
            ("  index entries written: full indexes + partial (at most)",
             f"{p['index_entries_full']} + <={p['index_entries_partial_bound']}",
             "inserts + non-HOT updates"),
            ("  WAL bytes / records / full pages", f"{p['wal_bytes']:.0f} / {p['wal_records']} "
             f"/ {p['wal_fpi']}", ""),
            ("  commits", f"{p['commits_net']}", f"raw {cost['commits_raw']}, own "
             f"{cost['commits_own_queries']}, idle {cost['commits_background']}")]
    order = sorted(cost["tables"], key=lambda t: (t not in HOT_TABLES,
                                                  HOT_TABLES.index(t) if t in HOT_TABLES else 0,
                                                  t))
    rows.append(("  per table: ins / upd HOT / upd non-HOT / del per contact", "", ""))
    for t in order:
        c = cost["tables"][t]["per_contact"]
        rows.append((f"    {t}", f"{c['n_tup_ins']} / {c['n_tup_hot_upd']} / "
                     f"{c['nonhot_upd']} / {c['n_tup_del']}", ""))
    rows.append(("  per index: entries / scans / blocks per contact", "", ""))
    for name, i in sorted(cost["indexes"].items(), key=lambda kv: (
            kv[1]["table"] not in HOT_TABLES, kv[1]["table"], kv[0])):
        rows.append((f"    {i['table']}.{name}", f"{i['entries_bound']}{i['entries_per_contact']}"
                     f" / {i['scans_per_contact']} / {i['blocks_per_contact']}",
                     "partial" if i["partial"] else ""))
    return rows
