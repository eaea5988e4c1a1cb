"""The light chaos run (tests/chaos/chaos.py --light) as part of make test: every daemon
killed once, a worker paused past its lease, PostgreSQL restarted, Redis flushed — and nothing
acknowledged is lost, duplicated or stuck."""

import subprocess
import sys

from conftest import REPO

CHAOS_TIMEOUT_S = 420


def test_light_chaos_loses_nothing():
    out = subprocess.run([sys.executable, str(REPO / "tests" / "chaos" / "chaos.py"), "--light"],
                         capture_output=True, text=True, timeout=CHAOS_TIMEOUT_S)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, f"{last}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    fields = dict(kv.split("=") for kv in last.split())
    assert int(fields["acknowledged"]) > 0
    assert fields["lost"] == "0" and fields["duplicated"] == "0" and fields["stuck"] == "0"
