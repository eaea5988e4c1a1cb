"""wasl-classifier end to end: intake commits a report, the classifier claims its work row,
classifies it, commits the decision fenced on its lease, and passes the ticket to the router
stage — through the bus, or by the sweep alone when no message arrives."""

import signal
import subprocess
from pathlib import Path

import msgpack
import pytest
import zmq

from conftest import REPO, base_env, binary_path, free_port, wait_for
from intake_helpers import intake, start_intake, unique  # noqa: F401 (fixtures)

TRAIN = REPO / "data" / "classifier" / "train.tsv"
ROUTE_OUT_OFFSET = 5  # stage "route" is index 1: producers push to base+4, consumers pull base+5
CLASSIFY_IN_OFFSET = 2
WAIT_S = 20


@pytest.fixture(scope="module")
def model(tmp_path_factory, postgres, redis_server):
    """A model trained on the project's training data."""
    path = tmp_path_factory.mktemp("model") / "model.bin"
    out = subprocess.run([str(binary_path("waslctl")), "classifier", "train", str(TRAIN), "-o",
                          str(path), "--version", "it-1"], capture_output=True, text=True,
                         timeout=300, env=base_env(postgres, redis_server))
    assert out.returncode == 0, out.stderr
    return path


def start_classifier(daemon, it, model, bus=None, **env):
    full = {"WASL_PG_URL": it.db_url, "WASL_CLASSIFIER_MODEL": model,
            "WASL_BUS": bus.endpoint if bus else "", "WASL_CLASSIFIER_SWEEP_MS": 200,
            "WASL_CLASSIFIER_SWEEP_AGE_MS": 500}
    full.update(env)
    return daemon("classifier", env=full, wait=True)


def report(it, text):
    """POSTs a report with this text; returns the response."""
    return it.report(body={"channel": "web", "external_id": unique("cls"), "body": text})


def classified(it, ref):
    t = it.ticket(ref)
    return t if t and t["status"] == "classified" else None


def test_report_is_classified_and_passed_to_the_router(intake, daemon, model, bus):
    ctx = zmq.Context()
    try:
        route = ctx.socket(zmq.PULL)
        route.connect(f"tcp://127.0.0.1:{bus.base_port + ROUTE_OUT_OFFSET}")
        cls = start_classifier(daemon, intake, model, bus=bus, WASL_CLASSIFIER_SWEEP_MS=600000)
        wait_for(lambda: bus.metrics().get('wasl_bus_peers{stage="classify",side="out"}') == 1
                 and bus.metrics().get('wasl_bus_peers{stage="route",side="out"}') == 1, 10,
                 what="classifier and tap on the bus")
        r = report(intake, "السلام عليكم، متى موعد الجلسة القادمة لقضيتي رقم ٤٥١٢٣٤٥٦٧٨؟ "
                               "وجوالي ٠٥٥١٢٣٤٥٦٧")
        assert r.status == 201
        ref = r.json["ticket"]
        # The sweep is off: only the bus nudge can have brought the ticket here.
        t = wait_for(lambda: classified(intake, ref), WAIT_S, what="ticket classified")
        assert t["category"] == "case_inquiry"
        assert t["language"] == "ar"
        assert t["priority"] in ("urgent", "high", "normal", "low")
        assert 0 < t["confidence"] <= 1
        assert t["model_version"] == "it-1"
        assert t["entities"]["case_number"] == ["4512345678"]
        assert t["entities"]["phone"] == ["+966551234567"]
        events = [e for e in intake.events(t["id"]) if e["kind"] == "classified"]
        assert len(events) == 1
        assert events[0]["actor"] == "classifier"
        assert events[0]["data"]["priority_reason"]
        # The classify row was completed (a finished row is deleted: migration 0027), the
        # route row waits for a router.
        work = {w["stage"]: w for w in intake.work(t["id"])}
        assert set(work) == {"route"}
        assert work["route"]["state"] == "pending" and work["route"]["owner"] is None
        assert route.poll(WAIT_S * 1000)
        msg = msgpack.unpackb(route.recv(), raw=False)
        # The route row, nothing else: the router reads the decision from PostgreSQL.
        assert msg == {"type": "ticket.classified", "v": 2, "work_id": work["route"]["id"]}
        assert cls.stop() == 0
    finally:
        ctx.destroy(linger=0)


def test_sweep_classifies_without_the_bus(start_intake, daemon, model):
    it = start_intake()  # no bus at all: the work rows are the truth
    refs = [report(it, f"ابي اعرف وش صار على قضيتي رقم {4512345600 + i}").json["ticket"]
            for i in range(20)]
    start_classifier(daemon, it, model)
    for ref in refs:
        wait_for(lambda: classified(it, ref), WAIT_S, what=f"{ref} classified by the sweep")
    assert it.count("work", "stage = 'route'") == 20
    assert it.count("ticket_events", "kind = 'classified'") == 20


def test_two_classifiers_never_classify_a_ticket_twice(start_intake, daemon, model, bus):
    it = start_intake(bus=bus)
    start_classifier(daemon, it, model, bus=bus)
    start_classifier(daemon, it, model, bus=bus)
    refs = [report(it, f"الراتب ما نزل هذا الشهر {i}").json["ticket"] for i in range(150)]
    wait_for(lambda: it.count("tickets", "status = 'classified'") == len(refs), WAIT_S * 2,
             what="all classified")
    assert it.count("ticket_events", "kind = 'classified'") == len(refs)
    assert it.count("work", "stage = 'route'") == len(refs)
    assert it.count("work", "stage = 'classify' AND state <> 'done'") == 0


def test_hot_reload_loses_nothing(start_intake, daemon, model, bus, tmp_path):
    it = start_intake(bus=bus)
    live = tmp_path / "live.bin"
    live.write_bytes(Path(model).read_bytes())
    cls = start_classifier(daemon, it, live, bus=bus)
    # A second model with another version, swapped in under load.
    out = subprocess.run([str(binary_path("waslctl")), "classifier", "train", str(TRAIN), "-o",
                          str(tmp_path / "next.bin"), "--version", "it-2", "--epochs", "4"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    refs = []
    for i in range(120):
        refs.append(report(it, f"ما اقدر ادخل معين، رمز التحقق ما يوصل {i}").json["ticket"])
        if i == 40:
            (tmp_path / "next.bin").replace(live)
            cls.proc.send_signal(signal.SIGHUP)
        if i % 30 == 0:
            cls.proc.send_signal(signal.SIGHUP)  # reloading the same file is harmless
    wait_for(lambda: it.count("tickets", "status = 'classified'") == len(refs), WAIT_S * 2,
             what="all classified across reloads")
    versions = {r["model_version"] for r in it.rows("SELECT model_version FROM tickets")}
    assert "it-2" in versions
    assert cls.metrics().get('wasl_classifier_model_info{version="it-2"}') == 1
    assert cls.alive()


def test_a_broken_model_file_keeps_the_old_model(start_intake, daemon, model, tmp_path):
    it = start_intake()
    live = tmp_path / "live.bin"
    live.write_bytes(Path(model).read_bytes())
    cls = start_classifier(daemon, it, live)
    live.write_bytes(b"garbage")
    cls.proc.send_signal(signal.SIGHUP)
    cls.wait_log(lambda l: "reload failed" in l.get("msg", ""))
    ref = report(it, "وين موقع المحكمة الإدارية في جدة؟").json["ticket"]
    wait_for(lambda: classified(it, ref), WAIT_S, what="classified with the old model")
    assert it.ticket(ref)["model_version"] == "it-1"


def test_garbage_on_the_bus_is_logged_and_dropped(intake, daemon, model, bus):
    cls = start_classifier(daemon, intake, model, bus=bus)
    ctx = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{bus.base_port + CLASSIFY_IN_OFFSET}")
        for junk in (b"", b"\xff" * 50, msgpack.packb({"type": "ticket.received", "v": 1}),
                     msgpack.packb({"type": "nope", "v": 1}), msgpack.packb([1, 2, 3])):
            push.send(junk)
        wait_for(lambda: cls.metrics().get("wasl_classifier_bad_messages_total", 0) >= 5, WAIT_S,
                 what="bad messages counted")
    finally:
        ctx.destroy(linger=0)
    assert cls.alive()
    # Still working.
    ref = report(intake, "كم مدة الاعتراض على الحكم؟").json["ticket"]
    wait_for(lambda: classified(intake, ref), WAIT_S, what="classified after garbage")


def test_poison_text_is_classified_without_a_crash(start_intake, daemon, model):
    it = start_intake()
    cls = start_classifier(daemon, it, model)
    ref = report(it, "ا" * 32768).json["ticket"]
    t = wait_for(lambda: classified(it, ref), WAIT_S, what="poison classified")
    assert t["category"]
    assert cls.alive()


def test_missing_model_fails_at_start(daemon, tmp_path):
    d = daemon("classifier", env={"WASL_CLASSIFIER_MODEL": tmp_path / "none.bin", "WASL_BUS": ""})
    assert d.proc.wait(10) == 1
    assert any("cannot load the model" in l.get("msg", "") for l in d.log_lines())


def test_eval_reports_languages_and_urgent_recall(tmp_path):
    """`classifier eval`'s issue-17 figures on a tiny file with known answers: the model is
    trained on the same rows (a linear SVM memorizes this few), urgent comes from the cue rules,
    and the one conflicting pair of identical texts costs exactly half of "mixed"."""
    header = "id\tcategory\tpriority\tlang\tchannel\ttext\n"
    rows = [
        ("case_inquiry", "urgent", "en", "my hearing is tomorrow and I need the video link"),
        ("eservice_support", "urgent", "ar", "جلستي اليوم والرابط ما يفتح"),
        ("staff_services", "normal", "ar", "ابي شهادة تعريف بالراتب للبنك"),
        ("general_inquiry", "low", "en", "what are the working hours of the board"),
        ("judicial_support", "low", "ar", "كيف ارفع دعوى على جهة حكومية"),
        ("complaint", "normal", "en", "the clerk was rude, the reply comes tomorrow they said"),
        ("case_inquiry", "normal", "mixed", "ابي اعرف status حق my case"),
        ("complaint", "normal", "mixed", "ابي اعرف status حق my case"),
    ]
    tsv = tmp_path / "tiny.tsv"
    tsv.write_text(header + "".join(f"t{i}-{k}\t{c}\t{p}\t{l}\tweb\t{t}\n" for k in range(3)
                                    for i, (c, p, l, t) in enumerate(rows)), encoding="utf-8")
    model = tmp_path / "tiny.bin"
    ctl = str(binary_path("waslctl"))
    out = subprocess.run([ctl, "classifier", "train", str(tsv), "-o", str(model), "--folds", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([ctl, "classifier", "eval", str(tsv), "--model", str(model)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "lang_ar macro_f1=1.0000 n=9" in text
    assert "lang_en macro_f1=1.0000 n=9" in text
    assert "lang_mixed macro_f1=0.3333 n=6" in text  # one of the two labels of one text
    assert "urgent_recall=1.0000 (6 of 6)" in text
    assert "normal_low_raised=0.1667 (3 of 18)" in text  # "tomorrow" in the complaint
    assert text.splitlines()[-1].startswith("macro_f1=")
