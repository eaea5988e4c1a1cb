"""The state-change functions of proto/functions/, tested with expected output (as pg_regress
does): each tests/sql/<family>.sql runs through psql against a fresh database that `waslctl
migrate` set up (tests/sql/setup.sql first), and its output must equal
tests/sql/expected/<family>.out. A difference fails the test and shows the diff.

The cases print only stable values (booleans, counts, states, references; times relative to
wasl_now() via the wasl.clock_offset_s setting). After changing a function on purpose, look at
the diff, then regenerate with WASL_SQL_ACCEPT=1 (it rewrites the expected file) and review it
in the commit.
"""

import difflib
import os
import shutil
import subprocess

import pytest

from conftest import PG_OWNER_ROLE, REPO, pg_url_as

SQL_DIR = REPO / "tests" / "sql"
FAMILIES = sorted(p.stem for p in SQL_DIR.glob("*.sql") if p.stem != "setup")


def psql(url, sql_path, echo):
    """Runs one file as pg_regress does (stdin, errors interleaved), returns its output."""
    exe = shutil.which("psql")
    assert exe, "psql not found (install postgresql-client)"
    args = [exe, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=terse", "-d", url] + (["-a"] if echo else [])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PGTZ": "UTC",
           "PGDATESTYLE": "ISO", "PGOPTIONS": "-c client_min_messages=warning"}
    with open(sql_path, "rb") as stdin:
        res = subprocess.run(args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=env, timeout=120, check=False)
    return res.returncode, res.stdout.decode("utf-8")


@pytest.mark.parametrize("family", FAMILIES)
def test_family(family, fresh_db, waslctl):
    migrated = waslctl("migrate", env={"WASL_PG_URL": fresh_db})
    assert migrated.returncode == 0, migrated.stderr
    url = pg_url_as(fresh_db, PG_OWNER_ROLE)
    rc, out = psql(url, SQL_DIR / "setup.sql", echo=False)
    assert rc == 0 and "ERROR" not in out, out
    rc, out = psql(url, SQL_DIR / f"{family}.sql", echo=True)
    assert rc == 0, out
    expected_path = SQL_DIR / "expected" / f"{family}.out"
    if os.environ.get("WASL_SQL_ACCEPT") == "1":
        expected_path.write_text(out, encoding="utf-8")
    expected = expected_path.read_text(encoding="utf-8") if expected_path.exists() else ""
    if out != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), out.splitlines(keepends=True),
            fromfile=f"tests/sql/expected/{family}.out", tofile=f"{family} (this run)"))
        pytest.fail(f"{family}: output differs from the expected\n{diff}", pytrace=False)


def test_every_family_has_expected_output():
    """A new tests/sql/<family>.sql comes with its expected output."""
    missing = [f for f in FAMILIES if not (SQL_DIR / "expected" / f"{f}.out").exists()]
    assert not missing, f"no tests/sql/expected/<family>.out for {missing}"
    assert FAMILIES, "no tests/sql/*.sql found"
