#!/usr/bin/python3
"""pipeline_ceiling.py — what PostgreSQL alone can carry of the whole pipeline (issue 16, item 2):
pgbench replaying, for each contact, the very statements intake, the classifier, the router and
the notifier run, at the batch sizes they use, with no daemon in between.

    WASL_PG_OWNER_URL=… tests/bench/pipeline_ceiling.py [--clients N] [--seconds S] [--batch B]
    tests/bench/pipeline_ceiling.py --check     (no database: the statements are still in step)

The exact SQL: the statements are not copied here. They are read from the daemons' C sources at
run time (`cc -E`, so that macros such as common/wasl_work.c's CLAIM_SQL are expanded) by the
name of their constant (HOT_PATH below), and their $n parameters are replaced with what the
daemon would bind: the previous step's ids (pgbench \\gset) and the values the daemon computes
(a classification, a routing decision, an SMS provider's answer) as constants of the size the
real ones have. Where a statement is a call of a function of proto/functions/ (wasl_work_*,
wasl_tickets_route, wasl_notifications_*), the function runs as installed.

One pgbench transaction script carries one batch of B contacts (default: the classifier's and
the router's batch, WASL_CLASSIFIER_BATCH / WASL_ROUTER_BATCH, read from their main.c) through
every step, each in its own transaction as in the daemons: intake's create (synchronous commit,
as intake), the classifier's claim, fetch and commit, the router's claim, fetch and commit
(wasl_tickets_route, which enqueues the acknowledgement), the notifier's claims and fetches
(WASL_NOTIFIER_BATCH each) and one wasl_notifications_sent per notifier batch. The stages run
with synchronous_commit off, as the daemons do (WASL_PG_SYNC_COMMIT=false). Several clients run
the script at once, as several daemons and intake's writers do.

Where: a scratch schema (bench_pipe) with copies of tickets, ticket_events, messages, work and
notifications (LIKE … INCLUDING ALL, their foreign keys among each other and their triggers),
first on search_path, so that the functions (which name tables unqualified) work on the copies
and nothing the stack's daemons see changes; dropped afterwards.

Not replayed: the daemons' own CPU (JSON, msgpack, ZeroMQ, the classifier's model, HTTP), the
router's caselookup request (web reports without a verified party ask none), intake's reference
block (one sequence call per 256 references), and the daemons' idle sweeps. The parameters the
daemons build in C (the classification, the routing decision with its explanation, the ack's
parameters) are built here in SQL from the claimed ids: a little server CPU the daemons do not
cost PostgreSQL.

Output: pgbench's lines on stderr; last line
`pipeline_ceiling contacts_per_s=N tps=N batch=B clients=C completed=N tickets=N`; completed is
how many of the scratch tickets got their acknowledgement marked sent (all, or the script is
not carrying the contacts through and the figure means nothing: exit 1).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRATCH = "bench_pipe"
TABLES = ["tickets", "ticket_events", "messages", "work", "notifications"]

# The statements the daemons run for one contact, in order: (source file, constant), or (source
# file, "name(") for a statement written inline in a call: the string literal calling that SQL
# function. --check fails when a constant of these files that names a hot-path table or
# function, or an SQL function they call, is neither replayed nor in NOT_REPLAYED /
# FUNCS_NOT_REPLAYED (with the reason), so a new or renamed statement cannot be missed.
HOT_PATH = [
    ("services/intake/writer.c", "create_sql"),
    ("common/wasl_work.c", "wasl_work_claim("),
    ("services/classifier/worker.c", "fetch_sql"),
    ("services/classifier/worker.c", "commit_sql"),
    ("services/router/route.c", "fetch_sql"),
    ("services/router/route.c", "commit_sql"),
    ("services/notifier/notifier.c", "claim_sql"),
    ("services/notifier/notifier.c", "fetch_sql"),
    ("services/notifier/notifier.c", "sent_sql"),
]
NOT_REPLAYED = {
    ("services/notifier/notifier.c", "fail_sql"): "a failed send only",
    ("services/notifier/notifier.c", "defer_sql"): "quiet hours and rate limits (off in the bench)",
    ("services/notifier/notifier.c", "suppress_sql"): "opt-outs and auto-replies only",
}
# SQL functions the hot-path files call (in any string literal, inline ones too) that the
# replayed statements do not: each with the reason.
FUNCS_NOT_REPLAYED = {
    "wasl_work_claim_stale": "the sweep: claims only what no message nudged",
    "wasl_work_give_back": "a failed batch only",
    "wasl_work_fail": "a failed batch only",
    "wasl_notifications_fail": "a failed send only",
    "wasl_notifications_defer": "quiet hours and rate limits (off in the bench)",
    "wasl_notifications_suppress": "opt-outs and auto-replies only",
    "wasl_notifications_release": "a notifier stopping with claimed rows",
    "wasl_idem_scope": "called inside intake's create (replayed)",
}
# Daemon-side default batch sizes, read from each main.c: (file, variable, fallback).
BATCH_KNOBS = {
    "intake": ("services/intake/main.c", "WASL_INTAKE_BATCH_MAX"),
    "classifier": ("services/classifier/main.c", "WASL_CLASSIFIER_BATCH"),
    "router": ("services/router/main.c", "WASL_ROUTER_BATCH"),
    "notifier": ("services/notifier/main.c", "WASL_NOTIFIER_BATCH"),
}
# Hot-path tables and function families: a statement naming one of them is on the hot path.
HOT_WORDS = re.compile(r"\b(tickets|ticket_events|messages|work|notifications|"
                       r"wasl_work_\w+|wasl_tickets_route|wasl_notifications_\w+)\b")

# What the daemons compute and bind, at the size the real values have (a bench stack's rows).
BODY = ("السلام عليكم، أرجو إفادتي عن موعد الجلسة القادمة في القضية رقم ٤٥١٢٣٤٥٦٧٨ لدى المحكمة "
        "الإدارية بالرياض، فقد تأجلت الجلسة السابقة ولم يصلني إشعار. وشكراً.")
ACK_TEXT = "تم استلام طلبكم رقم 2600012345 (استفسار عن قضية). سنتواصل معكم قريباً."
CLASSIFIED_EVENT = ('{"model": "bench", "category": "case_inquiry", "language": "ar", '
                    '"priority": "normal", "confidence": 0.99, "probabilities": {"complaint": 0.0,'
                    ' "case_inquiry": 1.0, "staff_services": 0.0, "general_inquiry": 0.0, '
                    '"eservice_support": 0.0, "judicial_support": 0.0}, "model_category": '
                    '"case_inquiry", "priority_reason": "model 0.64"}')
ROUTED_EVENT = ('{"rule": "case-status-auto", "input": {"now": 1796322495, "channel": "web", '
                '"category": "case_inquiry", "entities": ["case_number"], "language": "ar", '
                '"priority": "normal", "beneficiary": "public"}, "queue": "case-status", '
                '"sla_s": {"resolution": 259200, "first_response": 14400}, "skills": [], '
                '"priority": "normal", "rule_line": 81, "auto_answer": "not answered", '
                '"priority_from": "normal", "business_hours": false, '
                '"business_time_sla": false}')


def die(msg):
    sys.stderr.write(f"pipeline_ceiling: {msg}\n")
    raise SystemExit(1)


# ---- the statements, from the C sources ----------------------------------------------------

def preprocessed(rel):
    """The file after the C preprocessor (macros expanded), system headers' noise included."""
    pkgs = ("libczmq libzmq msgpack hiredis libpq libmicrohttpd jansson libcurl icu-uc icu-i18n "
            "libsodium gmime-3.0 yaml-0.1 libsystemd")
    if not (REPO / "build" / "gen").is_dir():
        die("build/gen missing: make all first (the sources include its generated headers)")
    flags = subprocess.run(["pkg-config", "--cflags"] + pkgs.split(), capture_output=True,
                           text=True, check=False).stdout.split()
    src = REPO / rel
    r = subprocess.run(["cc", "-E", "-P", "-D_DEFAULT_SOURCE", "-D_POSIX_C_SOURCE=200809L",
                        f"-I{REPO / 'common'}", f"-I{REPO / 'build' / 'gen'}", f"-I{src.parent}",
                        "-DWASL_VERSION=\"bench\"", *flags, str(src)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        die(f"cc -E {rel} failed:\n{r.stderr[-1500:]}")
    return r.stdout


def c_literal(group):
    """The string adjacent C literals `"…" "…"` make."""
    parts = re.findall(r"\"((?:[^\"\\]|\\.)*)\"", group)
    return "".join(bytes(p, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
                   for p in parts)


def c_strings(text):
    """{constant name: its string} for every `static const char *const name = "…" "…";`, and
    {"fn(": the literal} for every literal that calls an SQL function wasl_…(."""
    out = {}
    for m in re.finditer(r"static\s+const\s+char\s*\*\s*const\s+(\w+)\s*=\s*((?:\s*\"(?:[^\"\\]|"
                         r"\\.)*\")+)\s*;", text):
        out[m.group(1)] = c_literal(m.group(2))
    for m in re.finditer(r"(?:\"(?:[^\"\\]|\\.)*\"\s*)+", text):
        sql = c_literal(m.group(0))
        for fn in re.findall(r"\b(wasl_[a-z_]+)\(", sql):
            out.setdefault(fn + "(", sql)
    return out


def sql_functions(text):
    """The wasl_* SQL functions named in the string literals of preprocessed C `text`."""
    names = set()
    for lit in re.findall(r"\"((?:[^\"\\]|\\.)*)\"", text):
        names.update(re.findall(r"\b(wasl_[a-z_]+)\s*\(", lit))
    return names


def statements(funcs=None):
    """{(file, constant): SQL} for HOT_PATH, and every constant of those files; `funcs` (a set)
    gets the SQL functions those files call."""
    every = {}
    for rel in sorted({f for f, _ in HOT_PATH}):
        text = preprocessed(rel)
        for name, sql in c_strings(text).items():
            every[(rel, name)] = sql
        if funcs is not None:
            funcs.update(sql_functions(text))
    missing = [k for k in HOT_PATH if k not in every]
    if missing:
        die(f"hot-path statements not found in the sources: {missing} — a daemon's statement "
            "was renamed or moved: change HOT_PATH (and the script) with it")
    return {k: every[k] for k in HOT_PATH}, every


def called_closure(names):
    """`names` and every wasl_* function their bodies in proto/functions/ call, transitively."""
    bodies = {}
    for f in sorted((REPO / "proto" / "functions").glob("*.sql")):
        text = re.sub(r"--[^\n]*", "", f.read_text())  # the header comments name others
        parts = re.split(r"CREATE OR REPLACE FUNCTION (wasl_\w+)", text)
        for name, body in zip(parts[1::2], parts[2::2]):
            bodies[name] = bodies.get(name, "") + body
    todo, seen = list(names), set(names)
    while todo:
        for fn in re.findall(r"\b(wasl_[a-z_]+)\s*\(", bodies.get(todo.pop(), "")):
            if fn not in seen:
                seen.add(fn)
                todo.append(fn)
    return seen


def check():
    """--check: every constant of the hot-path files that names a hot table or function is
    replayed (HOT_PATH) or listed in NOT_REPLAYED with its reason."""
    funcs = set()
    stmts, every = statements(funcs)
    bad = [f"{f}: {n}" for (f, n), sql in sorted(every.items())
           if not n.endswith("(") and HOT_WORDS.search(sql) and (f, n) not in HOT_PATH
           and (f, n) not in NOT_REPLAYED]
    replayed = called_closure(sql_functions("".join(f'"{v}"' for v in stmts.values())))
    bad += [f"function {f}" for f in sorted(funcs - replayed - set(FUNCS_NOT_REPLAYED))]
    if bad:
        die("statements on the hot path that the pipeline ceiling does not replay:\n  " +
            "\n  ".join(bad) + "\nadd them to HOT_PATH (and the script) or to NOT_REPLAYED")
    print(f"pipeline_ceiling: in step ({len(HOT_PATH)} statements and the functions "
          f"{', '.join(sorted(replayed))} replayed; {len(NOT_REPLAYED)} statements and "
          f"{len(FUNCS_NOT_REPLAYED)} functions left out with a reason)")


def batch_default(service):
    rel, knob = BATCH_KNOBS[service]
    m = re.search(knob + r"\",\s*(\d+)", (REPO / rel).read_text())
    if not m:
        die(f"{knob}'s default not found in {rel}")
    return int(m.group(1))


# ---- the pgbench script --------------------------------------------------------------------

def bind(sql, params):
    """The statement with $1..$n replaced (params[0] for $1…); refuses a missing one."""
    def sub(m):
        i = int(m.group(1))
        if i > len(params):
            die(f"statement has ${i}, only {len(params)} bound — its parameters changed: "
                f"{sql[:120]}…")
        return f"({params[i - 1]})"
    used = {int(x) for x in re.findall(r"\$(\d+)", sql)}
    if used and max(used) < len(params):
        die(f"statement takes {max(used)} parameters, {len(params)} bound: {sql[:120]}…")
    return re.sub(r"\$(\d+)", sub, sql)


def main_statement_at(sql):
    """Where the main statement of `WITH … <main>` starts: the first SELECT/INSERT/UPDATE/DELETE
    at parenthesis depth 0 (outside string literals); 0 when there is no WITH."""
    if not re.match(r"\s*WITH\b", sql, re.I):
        return 0
    depth, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "'":
            i = sql.index("'", i + 1) + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and i > 4:
            m = re.match(r"(SELECT|INSERT|UPDATE|DELETE)\b", sql[i:], re.I)
            if m and not re.match(r"\w", sql[i - 1]):
                return i
        i += 1
    die(f"no main statement in: {sql[:120]}…")


def gathered(sql, ncols, aggs):
    """The statement unchanged, its rows gathered into one row (arrays) for pgbench's \\gset:
    WITH <its CTEs>, bench_out(c1..cn) AS (<its main statement>) SELECT <aggs> FROM bench_out.
    A data-modifying main statement is allowed in a top-level CTE (it has RETURNING)."""
    at = main_statement_at(sql)
    cols = ", ".join(f"c{i}" for i in range(1, ncols + 1))
    head = (sql[:at].rstrip() + ",") if at else "WITH"
    tail = ", ".join(f"{expr} AS {name}" for name, expr in aggs)
    return f"{head} bench_out({cols}) AS ({sql[at:]}) SELECT {tail} FROM bench_out"


def one_line(sql):
    """One line (a pgbench command); refuses a `:name` inside a string literal, which pgbench
    would take for one of its variables."""
    line = re.sub(r"\s+", " ", sql).strip()
    for lit in re.findall(r"'[^']*'", line):
        if re.search(r"(?<!:):[A-Za-z_]", lit):
            die(f"a literal pgbench would read as a variable: {lit}")
    return line


def script(stmts, batch, notifier_batch):
    """The pgbench script: one batch of `batch` contacts through every step."""
    by = lambda f, n: stmts[(f, n)]  # noqa: E731
    owner = "'pipe-' || :client_id"
    lines = ["-- generated by tests/bench/pipeline_ceiling.py from the daemons' sources", ""]

    # intake: one statement creates the batch (ticket, event, message, classify work row).
    contacts = (
        "SELECT jsonb_agg(jsonb_build_object('idx', g, 'ref', lpad(nextval('" + SCRATCH +
        ".ref_seq')::text, 10, '0'), 'channel', 'web', 'external_id', 'pipe-' || "
        "gen_random_uuid()::text, 'client_id', 'bench-pipe', 'subject', 'استفسار عن موعد جلسة',"
        " 'body', '" + BODY + "', 'lang', 'ar', 'from_phone', '+9665' || lpad((g + "
        "(random() * 1e8)::int)::text, 8, '0'))) FROM generate_series(1, " + str(batch) + ") g")
    create = bind(by("services/intake/writer.c", "create_sql"), [contacts])
    lines += ["BEGIN;", "SET LOCAL synchronous_commit = on;",
              one_line(gathered(create, 5, [("cw", "coalesce(array_agg(c5), '{}')")])) +
              " \\gset", "COMMIT;"]

    claim = by("common/wasl_work.c", "wasl_work_claim(")
    # classifier: claim the nudged rows, read their tickets, commit every decision.
    lines.append(one_line(gathered(bind(claim, ["'classify'", owner, "60", ":cw::bigint[]"]), 3,
                                   [("cc", "coalesce(array_agg(c1), '{}')")])) + " \\gset")
    lines.append(one_line(gathered(bind(by("services/classifier/worker.c", "fetch_sql"),
                                        [":cc::bigint[]", owner]), 6,
                                   [("fw", "coalesce(array_agg(c1), '{}')"),
                                    ("ft", "coalesce(array_agg(c2), '{}')")])) + " \\gset")
    decisions = (
        "SELECT jsonb_agg(jsonb_build_object('work_id', w, 'ticket_id', t, 'category', "
        "'case_inquiry', 'confidence', 0.99, 'priority', 'normal', 'language', 'ar', 'entities', "
        "'{\"case_number\": [\"4512345678\"]}'::jsonb, 'model', 'bench', 'event', '" +
        CLASSIFIED_EVENT + "'::jsonb)) FROM unnest(:fw::bigint[], :ft::bigint[]) AS u(w, t)")
    lines.append(one_line(gathered(bind(by("services/classifier/worker.c", "commit_sql"),
                                        [decisions, owner]), 2,
                                   [("rw", "coalesce(array_agg(c2), '{}')")])) + " \\gset")

    # router: claim, read, commit the decisions (wasl_tickets_route enqueues the ack).
    lines.append(one_line(gathered(bind(claim, ["'route'", owner, "60", ":rw::bigint[]"]), 3,
                                   [("rc", "coalesce(array_agg(c1), '{}')")])) + " \\gset")
    lines.append(one_line(gathered(bind(by("services/router/route.c", "fetch_sql"),
                                        [":rc::bigint[]", owner]), 16,
                                   [("gw", "coalesce(array_agg(c1), '{}')"),
                                    ("gt", "coalesce(array_agg(c2), '{}')"),
                                    ("gr", "coalesce(array_agg(c3), '{}')"),
                                    ("gp", "coalesce(array_agg(c14), '{}')")])) + " \\gset")
    routes = (
        "SELECT jsonb_agg(jsonb_build_object('work_id', w, 'ticket_id', t, 'queue', "
        "'case-status', 'priority', 'normal', 'prio_rank', 2, 'skills', '[]'::jsonb, 'rule', "
        "'case-status-auto', 'fr_due', extract(epoch FROM now()) + 14400, 'res_due', "
        "extract(epoch FROM now()) + 259200, 'event', '" + ROUTED_EVENT + "'::jsonb, 'notes', "
        "jsonb_build_array(jsonb_build_object('kind', 'ack', 'channel', 'sms', 'recipient', p,"
        " 'lang', 'ar', 'params', jsonb_build_object('ref', r, 'category_label', "
        "'استفسار عن قضية'))), 'answered', false)) FROM unnest(:gw::bigint[], :gt::bigint[], "
        ":gr::text[], :gp::text[]) AS u(w, t, r, p)")
    lines.append(one_line(gathered(bind(by("services/router/route.c", "commit_sql"),
                                        [routes, owner]), 5,
                                   [("na", "coalesce(array_agg(c2), '{}')")])) + " \\gset")

    # notifier: claim and read in its batches, then one 'sent' for each batch.
    for k in range(0, batch, notifier_batch):
        part = f"(:na::bigint[])[{k + 1}:{k + notifier_batch}]"
        lines.append(one_line(gathered(bind(by("services/notifier/notifier.c", "claim_sql"),
                                            [owner, "60", str(notifier_batch), part]), 1,
                                       [(f"nc{k}", "coalesce(array_agg(c1), '{}')")])) +
                     " \\gset")
        lines.append(one_line(bind(by("services/notifier/notifier.c", "fetch_sql"),
                                   [f":nc{k}::bigint[]", owner])) + ";")
        # one 'sent' for the batch's sends (the notifier marks a batch together)
        sends = (
            f"SELECT coalesce(jsonb_agg(jsonb_build_object('id', i, 'provider_id', 'sink-' || i,"
            f" 'provider_status', 'accepted', 'segments', 2, 'message_id', NULL, 'sender', NULL,"
            f" 'body', '{ACK_TEXT}', 'subject', NULL, 'record', false, 'channel', 'sms')),"
            f" '[]') FROM unnest(:nc{k}::bigint[]) AS i")
        lines.append(one_line(bind(by("services/notifier/notifier.c", "sent_sql"),
                                   [sends, owner])) + ";")
    return "\n".join(lines) + "\n"


# ---- the scratch schema --------------------------------------------------------------------

def psql(url, sql):
    r = subprocess.run([shutil.which("psql") or "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        "-At", "-d", url], input=sql, capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        die(f"psql failed: {r.stderr[-1500:]}")
    return r.stdout


def scratch_sql(url):
    """The copies, their storage parameters, their foreign keys among each other and their
    triggers. The definitions are read from the catalog first (search_path = public: names
    unqualified), so that they resolve to the copies when run with the scratch schema first on
    the path."""
    names = ", ".join(f"'{t}'" for t in TABLES)
    fks = psql(url, "SET search_path = public; SELECT conrelid::regclass::text || '|' || "
               "pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' AND "
               f"connamespace = 'public'::regnamespace AND conrelid::regclass::text IN ({names})"
               " ORDER BY oid;")
    trg = psql(url, "SET search_path = public; SELECT tgrelid::regclass::text || '|' || "
               "pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal AND "
               f"tgrelid::regclass::text IN ({names}) ORDER BY oid;")
    opts = psql(url, "SELECT c.relname || '|' || array_to_string(c.reloptions, ', ') FROM "
                "pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND "
                f"c.reloptions IS NOT NULL AND c.relname IN ({names}) ORDER BY 1;")
    out = [f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE;", f"CREATE SCHEMA {SCRATCH};",
           f"CREATE SEQUENCE {SCRATCH}.ref_seq;"]
    out += [f"CREATE TABLE {SCRATCH}.{t} (LIKE public.{t} INCLUDING ALL);" for t in TABLES]
    # LIKE copies no storage parameters: the tables' fillfactor and autovacuum thresholds (the
    # migrations' ALTER TABLE … SET) shape what an update costs, so the copies get them too.
    for line in opts.splitlines():
        tbl, _, options = line.partition("|")
        out.append(f"ALTER TABLE {SCRATCH}.{tbl} SET ({options});")
    out.append(f"SET search_path = {SCRATCH}, public;")
    for line in fks.splitlines():
        tbl, _, definition = line.partition("|")
        out.append(f"ALTER TABLE {SCRATCH}.{tbl} ADD {definition};")
    for line in trg.splitlines():
        tbl, _, definition = line.partition("|")
        moved = re.sub(rf" ON (public\.)?{tbl} ", f" ON {SCRATCH}.{tbl} ", definition, count=1)
        if moved == definition:
            die(f"cannot move trigger: {definition}")
        out.append(moved + ";")
    return "\n".join(out) + "\n"


def run(url, clients, threads, seconds, batch, notifier_batch):
    stmts, _ = statements()
    text = script(stmts, batch, notifier_batch)
    pgbench = shutil.which("pgbench") or next(iter(sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)), None)
    if not pgbench:
        die("pgbench not found (postgresql package)")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="wasl-pipe-", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        if os.environ.get("BENCH_PIPE_SCRIPT"):
            Path(os.environ["BENCH_PIPE_SCRIPT"]).write_text(text)
        psql(url, scratch_sql(url))
        env = dict(os.environ, PGOPTIONS=f"-c search_path={SCRATCH},public "
                   "-c synchronous_commit=off")
        per_statement = ["-r"] if os.environ.get("BENCH_PIPE_R") else []
        r = subprocess.run([str(pgbench), "-n", *per_statement, "-M", "extended", "-c",
                            str(clients), "-j",
                            str(threads), "-T", str(seconds), "-f", path, url], env=env,
                           capture_output=True, text=True, timeout=seconds + 120, check=False)
        sys.stderr.write(r.stdout + r.stderr)
        m = re.search(r"^tps = ([0-9.]+)", r.stdout, re.M)
        if r.returncode != 0 or not m:
            die("pgbench failed")
        counts = psql(url, f"SELECT (SELECT count(*) FROM {SCRATCH}.tickets), (SELECT count(*)"
                      f" FROM {SCRATCH}.notifications WHERE state = 'sent');").strip()
        tickets, completed = (int(x) for x in counts.split("|"))
    finally:
        os.unlink(path)
        subprocess.run([shutil.which("psql") or "psql", "-X", "-q", "-d", url, "-c",
                        f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE"], capture_output=True,
                       check=False)
    tps = float(m.group(1))
    print(f"pipeline_ceiling contacts_per_s={tps * batch:.0f} tps={tps} batch={batch} "
          f"clients={clients} completed={completed} tickets={tickets}")
    # Transactions cut by the end of -T may leave the last batches half way.
    if completed < tickets - clients * batch:
        die(f"only {completed} of {tickets} contacts got their acknowledgement: the script does "
            "not carry the contacts through")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=0, help="contacts per script (default: the "
                    "classifier's and router's batch)")
    a = ap.parse_args()
    if a.check:
        check()
        return
    url = os.environ.get("WASL_PG_OWNER_URL") or os.environ.get("WASL_PG_URL")
    if not url:
        die("WASL_PG_OWNER_URL (or WASL_PG_URL) must name the database")
    batch = a.batch or min(batch_default("classifier"), batch_default("router"))
    run(url, a.clients, a.threads, a.seconds, batch, batch_default("notifier"))


if __name__ == "__main__":
    main()
