"""The log scan itself can fail: it finds what it must find and ignores masked forms."""

from conftest import pii_in_text
from intake_helpers import start_intake  # noqa: F401 (fixture)


def test_scan_finds_unmasked_and_ignores_masked():
    assert pii_in_text('{"msg":"x","phone":"+966551234567"}') == ["+966551234567"]
    assert pii_in_text('caller 0551234567 said') == ["0551234567"]
    assert pii_in_text('id 1012345672 here') == ["1012345672"]      # Luhn-valid citizen ID
    assert pii_in_text('{"phone":"+9665******67"}') == []
    assert pii_in_text('{"national_id":"1*******72"}') == []
    assert pii_in_text('ticket 2600000018 and case 4512345678') == []  # not personal data
    assert pii_in_text('id 1012345673 here') == []  # fails the ID check digit: not an ID
    assert pii_in_text('"db":"wasl_t_0541880505ab"') == []  # inside a name: not a number


def test_intake_logs_mask_the_caller(daemon, bus, start_intake):
    it = start_intake(bus=bus, env={"WASL_LOG_LEVEL": "debug"})
    r = it.post("/v1/calls/events", {"type": "call.started", "call_id": "privacy-1", "seq": 1,
                                     "from": "0551234567"}, client="phone")
    assert r.status in (200, 201)
    r = it.post("/v1/calls/events", {"type": "call.note", "call_id": "privacy-1", "seq": 2,
                                     "text": "المتصل هويته 1012345672 وجواله 0551234567"}, client="phone")
    assert r.status == 201
    # The autouse scan (conftest._no_pii_in_logs) checks intake's log after this test.
