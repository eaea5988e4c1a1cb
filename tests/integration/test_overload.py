"""Overload: with the router stopped, intake keeps accepting and classifying goes on; the work
piles up in PostgreSQL, not in memory; a router started later drains the backlog."""

from conftest import REPO, wait_for
from intake_helpers import start_intake, unique  # noqa: F401 (fixture)

MODEL = REPO / "build" / "model" / "classifier.bin"
RULES = REPO / "deploy" / "config" / "routing.yaml"
BACKLOG = 1500
RSS_GROWTH_MAX_KIB = 64 * 1024  # what intake may grow by while the backlog piles up


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_router_down_intake_keeps_accepting_then_backlog_drains(start_intake, daemon):
    it = start_intake()
    daemon("classifier", env={"WASL_PG_URL": it.db_url, "WASL_BUS": "",
                              "WASL_CLASSIFIER_MODEL": MODEL, "WASL_CLASSIFIER_SWEEP_MS": 100,
                              "WASL_CLASSIFIER_SWEEP_AGE_MS": 0}, wait=True)
    before = rss_kib(it.daemon.pid)
    for i in range(BACKLOG):
        r = it.report(body={"channel": "api", "external_id": unique(f"o{i}"),
                            "body": "ما اقدر ادخل معين، رمز التحقق ما يوصل"})
        assert r.status == 201, r
    growth = rss_kib(it.daemon.pid) - before
    assert growth < RSS_GROWTH_MAX_KIB, f"intake grew by {growth} KiB"
    wait_for(lambda: it.count("work", "stage = 'route' AND state = 'pending'") == BACKLOG, 60,
             what="classified, waiting for a router")
    daemon("router", env={"WASL_PG_URL": it.db_url, "WASL_BUS": "", "WASL_ROUTER_RULES": RULES,
                          "WASL_ROUTER_SWEEP_MS": 100, "WASL_ROUTER_SWEEP_AGE_MS": 0},
           wait=True)
    # A finished work row is deleted: the backlog is routed when its route rows are gone and
    # every ticket has its one 'routed' event.
    wait_for(lambda: it.count("work", "stage = 'route'") == 0, 120, what="the backlog routed")
    assert it.count("ticket_events", "kind = 'routed'") == BACKLOG
    assert it.count("tickets", "queue IS NULL") == 0
