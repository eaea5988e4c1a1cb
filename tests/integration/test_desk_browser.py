"""The desk console in a real browser (headless Debian chromium, tests/integration/browser.py)
against the real stack: intake, classifier, router and wasl-desk on PostgreSQL and Redis.

An agent signs in on the Arabic page (document.dir == "rtl"), says they are available (the
page's own PUT /v1/me/presence), a report posted to intake is classified and routed, and the
offer appears on the open page from the event stream without a reload; the reference is inside
an isolate, the beneficiary's subject (an XSS payload in Arabic and English) is text; the agent
accepts with the keyboard shortcut and the ticket is theirs in PostgreSQL. Then the English
switch, the digits preference and signing out. Screenshots of every step land in
build/test-artifacts/ (`make test-desk` runs this file alone)."""

import json
import re
import secrets
import time

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.keys import Keys

from browser import browser  # noqa: F401 (fixture)
from conftest import REPO, wait_for
from intake_helpers import make_ref, start_intake, unique  # noqa: F401 (fixture)
from test_desk_auth import desk_db  # noqa: F401 (fixture)

WAIT_S = 20
WWW = REPO / "services" / "desk" / "www"
RULES = REPO / "deploy" / "config" / "routing.yaml"
MODEL = REPO / "build" / "model" / "classifier.bin"  # `make all` builds it, as make test does
AGENT = "reem"
AGENT_NAME = "ريم العتيبي"
# A beneficiary's subject with markup in it, Arabic and English: it must read as text.
XSS = ('<img src=x onerror="window.__xss=1"> استفسار <script>window.__xss=2</script>'
       ' about my case <b>bold</b>')
ARABIC_DIGITS = re.compile("[٠-٩]")
LATIN_DIGITS = re.compile("[0-9]")


def add_agent_with_password(it, tmp_path, agent=AGENT, name=AGENT_NAME):
    """An agent of case-status who can sign in; returns the password."""
    out = it.waslctl("agent", "add", agent, "--name", name, "--skills", "case-status:5",
                     "--languages", "ar,en")
    assert out.returncode == 0, out.stderr
    password = "pw-" + secrets.token_urlsafe(12)
    pw_file = tmp_path / f"{agent}.pw"
    pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    out = it.waslctl("agent", "passwd", agent, "--password-file", pw_file)
    assert out.returncode == 0, out.stderr
    return password


def start_routing(daemon, it):
    """The classifier and the router on the test database, sweeping fast (no bus)."""
    assert MODEL.exists(), f"{MODEL} missing: run make"
    daemon("classifier", env={"WASL_PG_URL": it.db_url, "WASL_CLASSIFIER_MODEL": MODEL,
                              "WASL_BUS": "", "WASL_CLASSIFIER_SWEEP_MS": 100,
                              "WASL_CLASSIFIER_SWEEP_AGE_MS": 0}, wait=True)
    daemon("router", env={"WASL_PG_URL": it.db_url, "WASL_BUS": "", "WASL_ROUTER_RULES": RULES,
                          "WASL_ROUTER_AUTO_ANSWER": "false", "WASL_ROUTER_SWEEP_MS": 100,
                          "WASL_ROUTER_SWEEP_AGE_MS": 0, "WASL_ROUTER_DISPATCH_MS": 100,
                          "WASL_ROUTER_TIMERS_MS": 200}, wait=True)


def by_id(b, element_id):
    return b.driver.find_element(By.ID, element_id)


def sign_in(b, desk, password, agent=AGENT):
    b.open(desk.url + "/")
    b.wait(lambda d: by_id(b, "login-agent").is_displayed(), what="the sign-in form")
    by_id(b, "login-agent").send_keys(agent)
    by_id(b, "login-password").send_keys(password)
    by_id(b, "login-submit").click()
    b.wait(lambda d: by_id(b, "desk-view").is_displayed(), what="the desk after signing in")


def offer_cards(b):
    return b.driver.find_elements(By.CSS_SELECTOR, "#offers .offer:not(.closed)")


def page_errors(b):
    """Script errors, CSP violations and failed loads in the console; a 401 is the API saying
    "not signed in" (the page asks /v1/me on load), which the page handles."""
    return [e["message"] for e in b.console_errors() if "status of 401" not in e["message"]]


def test_report_reaches_the_open_page_as_an_offer_and_is_accepted(start_intake, start_desk, daemon,
                                                                   browser, tmp_path):
    it = start_intake()
    password = add_agent_with_password(it, tmp_path)
    start_routing(daemon, it)
    desk = start_desk(it.db_url, www=WWW)  # plain http: the cookie without Secure
    b = browser()

    sign_in(b, desk, password)
    assert b.js("return document.dir") == "rtl"
    assert b.js("return document.documentElement.lang") == "ar"
    assert by_id(b, "who-name").text == AGENT_NAME
    # The page's own presence call: available, in PostgreSQL, with the time in state shown.
    b.driver.find_element(By.CSS_SELECTOR, '[data-presence="available"]').click()
    wait_for(lambda: it.scalar("SELECT presence FROM agents WHERE id = %s", (AGENT,))
             == "available", WAIT_S, what="reem available")
    b.wait(lambda d: by_id(b, "presence-time").text, what="time in state")
    # Hijri first (the calendar asked for explicitly: "هـ" is the Hijri era), then Gregorian.
    assert "هـ" in by_id(b, "today").text, by_id(b, "today").text
    # Arabic-Indic digits by default.
    assert ARABIC_DIGITS.search(by_id(b, "presence-time").text)
    # Nothing the router has not offered yet; the stream is open.
    b.wait(lambda d: b.js("return document.body.dataset.live") == "1", what="the event stream")
    assert offer_cards(b) == []
    b.js("window.__sameDocument = 'yes'")  # gone if the page reloads
    b.screenshot("signed-in")

    r = it.report(body={"channel": "web", "external_id": unique("desk"), "subject": XSS,
                        "body": "متى موعد الجلسة القادمة لقضيتي رقم ٤٥١٢٣٤٥٦٧٨؟",
                        "from": {"phone": "0551234567"}})
    assert r.status == 201, r.raw
    ref = r.json["ticket"]
    card = b.wait(lambda d: (offer_cards(b) or [None])[0], what="the offer card")
    assert b.js("return window.__sameDocument") == "yes", "the page reloaded"
    offer = it.rows("SELECT * FROM offers WHERE agent_id = %s AND state = 'offered'", (AGENT,))
    assert len(offer) == 1 and card.get_attribute("data-offer") == str(offer[0]["id"])

    # The reference in an isolate, left to right; the countdown running in Arabic digits.
    ref_el = card.find_element(By.CSS_SELECTOR, ".ref")
    assert ref_el.tag_name == "bdi" and ref_el.get_attribute("dir") == "ltr"
    assert ref_el.text == ref
    countdown = card.find_element(By.CSS_SELECTOR, ".countdown")
    assert countdown.tag_name == "bdi"
    b.wait(lambda d: ARABIC_DIGITS.search(countdown.text), what="the countdown")
    assert card.find_element(By.CSS_SELECTOR, ".sla-hijri").text
    # The category and priority in words (wasl_domain's, in Arabic), not codes.
    for cls in (".category", ".priority"):
        word = card.find_element(By.CSS_SELECTOR, cls).text
        assert word and not re.search("[A-Za-z_]", word), f"{cls}: {word!r}"
    # The subject is the beneficiary's text, shown as text: no element made of it, nothing ran.
    subject = card.find_element(By.CSS_SELECTOR, ".subject")
    assert subject.text.strip() == XSS.strip()
    assert subject.find_elements(By.CSS_SELECTOR, "*") == []
    assert b.js("return window.__xss === undefined")
    b.screenshot("offer")

    # "a" accepts the first offer (by physical key, as with an Arabic layout).
    ActionChains(b.driver).send_keys("a").perform()
    t = wait_for(lambda: (lambda t: t if t["status"] == "assigned" else None)(it.ticket(ref)),
                 WAIT_S, what="the ticket assigned")
    assert t["assignee"] == AGENT
    assert it.scalar("SELECT state FROM offers WHERE id = %s", (offer[0]["id"],)) == "accepted"
    b.wait(lambda d: offer_cards(b) == [], what="the card closed")
    assert by_id(b, "notice").find_element(By.TAG_NAME, "bdi").text == ref
    b.screenshot("accepted")
    assert page_errors(b) == []


def test_language_digits_and_signing_out(start_intake, start_desk, browser, tmp_path):
    it = start_intake()
    password = add_agent_with_password(it, tmp_path)
    desk = start_desk(it.db_url, www=WWW)
    b = browser()

    # A wrong password: the form says so, in Arabic, and stays.
    b.open(desk.url + "/")
    b.wait(lambda d: by_id(b, "login-agent").is_displayed(), what="the sign-in form")
    by_id(b, "login-agent").send_keys(AGENT)
    by_id(b, "login-password").send_keys("not-the-password")
    by_id(b, "login-submit").click()
    b.wait(lambda d: by_id(b, "login-error").text, what="the sign-in error")
    assert "كلمة المرور" in by_id(b, "login-error").text
    b.screenshot("login-refused")

    # The open page is the heartbeat: it renews the presence by itself (every second here, by
    # the page's setting for tests, instead of every 30 s).
    b.js("localStorage.setItem('wasl.desk.heartbeat_s', '1')")
    sign_in(b, desk, password)
    b.driver.find_element(By.CSS_SELECTOR, '[data-presence="busy"]').click()
    b.wait(lambda d: ARABIC_DIGITS.search(by_id(b, "presence-time").text), what="time in state")
    until = "SELECT presence, presence_until FROM agents WHERE id = %s"
    first = wait_for(lambda: (lambda r: r if r["presence"] == "busy" else None)(
        it.rows(until, (AGENT,))[0]), WAIT_S, what="reem busy")
    wait_for(lambda: it.rows(until, (AGENT,))[0]["presence_until"] > first["presence_until"],
             WAIT_S, what="a heartbeat from the page")
    assert it.rows(until, (AGENT,))[0]["presence"] == "busy"

    # English: the page turns left to right and speaks English; Latin digits on request.
    by_id(b, "lang-switch").click()
    assert b.js("return [document.dir, document.documentElement.lang]") == ["ltr", "en"]
    assert by_id(b, "presence-title").text == "Presence"
    b.driver.find_element(By.CSS_SELECTOR, '#digits option[value="latn"]').click()
    b.wait(lambda d: LATIN_DIGITS.search(by_id(b, "presence-time").text)
           and not ARABIC_DIGITS.search(by_id(b, "presence-time").text), what="Latin digits")
    b.screenshot("english")
    # The preferences are kept: a reload comes back in English with Latin digits.
    b.driver.refresh()
    b.wait(lambda d: by_id(b, "desk-view").is_displayed(), what="the desk after a reload")
    assert b.js("return document.dir") == "ltr"
    by_id(b, "lang-switch").click()
    assert b.js("return document.dir") == "rtl"

    # Signing out: back to the form, and the page's session no longer opens the desk.
    by_id(b, "logout").click()
    b.wait(lambda d: by_id(b, "login-view").is_displayed(), what="the sign-in form again")
    b.driver.refresh()
    b.wait(lambda d: by_id(b, "login-view").is_displayed(), what="the sign-in form after reload")
    assert not by_id(b, "desk-view").is_displayed()
    assert page_errors(b) == []


def test_console_sources_keep_the_rules():
    """What the browser cannot show by itself: logical CSS properties only (no left/right, so
    one sheet lays out both directions), no inline script, style or handler (CSP default-src
    'self' would block them), nothing from another origin, and no HTML built from strings."""
    html = (WWW / "index.html").read_text(encoding="utf-8")
    assert '<html lang="ar" dir="rtl">' in html
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], "inline script"
    assert re.findall(r"<style|\sstyle=|\son[a-z]+=", html) == [], "inline style or handler"
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//", html) == [], "another origin"
    css = re.sub(r"/\*.*?\*/", "", (WWW / "desk.css").read_text(encoding="utf-8"), flags=re.S)
    assert re.findall(r"[^\n]*\b(?:left|right)\b[^\n]*", css) == [], "physical direction"
    js = (WWW / "desk.js").read_text(encoding="utf-8")
    bad = r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function"
    assert re.findall(bad, js) == [], "HTML from strings"
    assert re.findall(r"https?://", js) == [], "another origin"


def _c_words(source, table):
    body = re.search(r"static const word_t " + table + r"\[\] = \{(.*?)\n\};", source, re.S)
    assert body, f"no table {table} in common/wasl_domain.c"
    return {m[0]: [m[1], m[2]]
            for m in re.findall(r'\{"([a-z_]+)", "([^"]*)", "([^"]*)"\}', body.group(1))}


def _js_words(source, kind):
    body = re.search(r"\n    " + kind + r": \{(.*?)\n    \},", source, re.S)
    assert body, f"no DOMAIN.{kind} in desk.js"
    return {m[0]: [m[1], m[2]]
            for m in re.findall(r'([a-z_]+): \["([^"]*)", "([^"]*)"\]', body.group(1))}


def test_console_domain_words_are_wasl_domains():
    """The page's category and priority words mirror common/wasl_domain.c (their one source)
    word for word, so the card never says what the notifications do not."""
    c = (REPO / "common" / "wasl_domain.c").read_text(encoding="utf-8")
    js = (WWW / "desk.js").read_text(encoding="utf-8")
    for table, kind in (("categories", "category"), ("priorities", "priority")):
        expected = _c_words(c, table)
        assert len(expected) >= 4
        assert _js_words(js, kind) == expected, f"desk.js DOMAIN.{kind} != wasl_domain {table}"


def test_supervisors_wallboard_counts_change_live(start_intake, start_desk, browser, tmp_path):
    """The supervisor's wallboard (wallboard.js): Arabic, RTL, table semantics, numbers in
    isolates; a ticket offered to an agent changes the counts without a reload (the stream's
    debounced `wallboard` event), and force-offline withdraws the agent's offer."""
    src = (WWW / "wallboard.js").read_text(encoding="utf-8")
    bad = r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function"
    assert re.findall(bad, src) == [] and re.findall(r"https?://", src) == []
    it = start_intake()
    add_agent_with_password(it, tmp_path)
    sara_pw = "pw-" + secrets.token_urlsafe(12)
    (tmp_path / "sara.pw").write_text(sara_pw + "\n")
    out = it.waslctl("agent", "add", "sara", "--name", "سارة القحطاني", "--skills",
                     "case-status:5", "--role", "supervisor", "--password-file",
                     tmp_path / "sara.pw")
    assert out.returncode == 0, out.stderr
    desk = start_desk(it.db_url, www=WWW)
    b = browser()
    sign_in(b, desk, sara_pw, agent="sara")
    b.wait(lambda d: by_id(b, "wallboard").is_displayed(), what="the wallboard")
    row = '#wb-queues-body tr[data-queue="case-status"]'

    def cell(q, cls, what="textContent"):
        """A property of one cell, read in the page (the board is redrawn on every event)."""
        return b.js("const e = document.querySelector(arguments[0]);"
                    "return e ? (arguments[1] === 'tag' ? e.tagName.toLowerCase()"
                    "            : arguments[1] === 'class' ? e.className : e.textContent) : null",
                    f"{q} .{cls}", what)

    def press_enter(selector):
        """Enter on a button of the board; None (try again) when it was redrawn meanwhile."""
        try:
            b.driver.find_element(By.CSS_SELECTOR, selector).send_keys(Keys.ENTER)
            return True
        except StaleElementReferenceException:
            return None
    b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, row), what="the queue's row")
    assert cell(row, "waiting") == "٠" and cell(row, "waiting", "tag") == "bdi"
    assert "هـ" in by_id(b, "wb-day").text, by_id(b, "wb-day").text
    # Table semantics: captions, column and row headers.
    for table in ("wb-queues", "wb-agents"):
        t = by_id(b, table)
        assert t.find_element(By.TAG_NAME, "caption").text
        assert {h.get_attribute("scope") for h in t.find_elements(By.CSS_SELECTOR, "thead th")} \
            == {"col"}
    assert b.driver.find_element(By.CSS_SELECTOR, f"{row} th").get_attribute("scope") == "row"
    b.js("window.__sameDocument = 'yes'")

    # reem comes on line and is offered a ticket of the queue: the board follows, live.
    it.scalar("SELECT presence FROM wasl_agents_set_presence(%s, 'available', 600, 'test')",
              (AGENT,))
    ref = make_ref(int(time.time() * 1000) % 10 ** 7)
    tid = it.scalar(
        "INSERT INTO tickets (ref, channel, external_id, status, queue, priority, prio_rank,"
        " language, category, subject, waiting_since, first_response_due)"
        " VALUES (%s, 'web', %s, 'routed', 'case-status', 'high', 1, 'ar', 'case_inquiry',"
        " 'موعد الجلسة', now(), now() + interval '4 hours') RETURNING id", (ref, unique("wb")))
    offer = it.scalar("SELECT offer_id FROM wasl_offers_make(%s::jsonb, 'router-test', 60)",
                      (json.dumps([{"ticket_id": tid, "agent": AGENT, "channel": "web",
                                    "explain": {}}]),))
    reem = f'#wb-agents-body tr[data-agent="{AGENT}"]'
    b.wait(lambda d: cell(row, "waiting") == "١", what="one waiting, live")
    b.wait(lambda d: cell(reem, "offers") == "١", what="reem's offer, live")
    assert b.js("return window.__sameDocument") == "yes", "the page reloaded"
    assert ARABIC_DIGITS.search(cell(reem, "in-state"))
    b.js("document.getElementById('wallboard').scrollIntoView()")
    b.screenshot("wallboard")

    # Force offline, by keyboard: the offer is withdrawn and the row says offline.
    b.wait(lambda d: press_enter(f"{reem} .force-offline"), what="force-offline pressed")
    wait_for(lambda: it.scalar("SELECT state FROM offers WHERE id = %s", (offer,)) == "withdrawn",
             WAIT_S, what="the offer withdrawn")
    b.wait(lambda d: cell(reem, "offers") == "٠", what="reem without offers")
    b.wait(lambda d: "offline" in cell(reem, "state", "class"), what="reem offline")
    assert page_errors(b) == []


def test_accept_reply_with_a_canned_answer_then_resolve(start_intake, start_desk, daemon,
                                                         browser, tmp_path):
    """Issue 15's browser step for the ticket: accept → the ticket panel → a canned reply (its
    {ref} filled) sent with a double click → the Kannel-like sink gets exactly one SMS with that
    text and the reference → resolve with a wrap-up code. ticket.js keeps the console's rules."""
    from selenium.webdriver.support.ui import Select
    from test_desk_tickets import start_sms_notifier
    from test_notifier import KannelSink
    from intake_helpers import unique_saudi_mobile

    js = (WWW / "ticket.js").read_text(encoding="utf-8")
    assert re.findall(r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(",
                      js) == [] and re.findall(r"https?://", js) == []
    it = start_intake()
    password = add_agent_with_password(it, tmp_path)
    start_routing(daemon, it)
    sink = KannelSink()
    try:
        start_sms_notifier(daemon, it.db_url, sink)
        desk = start_desk(it.db_url, www=WWW)
        b = browser()
        sign_in(b, desk, password)
        b.driver.find_element(By.CSS_SELECTOR, '[data-presence="available"]').click()
        b.wait(lambda d: b.js("return document.body.dataset.live") == "1", what="the stream")
        local, phone = unique_saudi_mobile()
        r = it.report(body={"channel": "web", "external_id": unique("desk"),
                            "subject": "استفسار عن موعد الجلسة",
                            "body": "متى موعد الجلسة القادمة لقضيتي؟ <b>عاجل</b>",
                            "from": {"phone": local}})
        assert r.status == 201, r.raw
        ref = r.json["ticket"]
        b.wait(lambda d: offer_cards(b), what="the offer card")
        # The card shows the classifier's reason for the priority itself, not only a tooltip.
        reason = it.scalar("SELECT e.data->>'priority_reason' FROM ticket_events e JOIN tickets t"
                           " ON t.id = e.ticket_id WHERE t.ref = %s AND e.kind = 'classified'",
                           (ref,))
        assert reason
        card_reason = ".offer .priority-reason"
        b.wait(lambda d: b.driver.find_element(By.CSS_SELECTOR, card_reason).is_displayed()
               and reason in b.driver.find_element(By.CSS_SELECTOR, card_reason).text,
               what="the priority's reason on the card")
        ActionChains(b.driver).send_keys("a").perform()
        # The accepted ticket opens; it is in "my work" with its countdown.
        b.wait(lambda d: by_id(b, "ticket").is_displayed() and by_id(b, "tk-ref").text == ref,
               what="the ticket panel")
        # The panel names the category and the status in words, not codes.
        meta = by_id(b, "tk-category").text + " " + by_id(b, "tk-status").text
        assert by_id(b, "tk-status").text == "مُسند" and not re.search(r"[a-z]_|[a-z]{4}", meta), meta
        # The classification block: the category in words, the confidence as a percentage,
        # the priority's reason; the history explains the routing (its queue) in words.
        klass = by_id(b, "tk-class").text
        assert by_id(b, "tk-category").text in klass and re.search(r"[0-9٠-٩]+\s?[%٪]", klass), klass
        assert reason in klass, klass
        queue = it.scalar("SELECT queue FROM tickets WHERE ref = %s", (ref,))
        routed = '#tk-history li[data-kind="routed"]'
        b.wait(lambda d: b.js(f"const e = document.querySelector('{routed} .tk-route-queue');"
                              "return e ? e.textContent : ''") == queue, what="the route's queue")
        assert "{" not in by_id(b, "tk-history").text, by_id(b, "tk-history").text
        assert "routed" not in b.js(f"return document.querySelector('{routed}').textContent")
        item = f'#mywork-list [data-ticket="{ref}"]'
        countdown = (f"const e = document.querySelector('{item} .sla-remaining');"
                     "return e ? [e.tagName, e.textContent] : null")
        b.wait(lambda d: (b.js(countdown) or ["", ""])[0] == "BDI"
               and ARABIC_DIGITS.search(b.js(countdown)[1]), what="the SLA countdown")
        assert b.js(f"return document.querySelector('{item} .ref').tagName") == "BDI"
        b.wait(lambda d: "<b>عاجل</b>" in b.js("return document.getElementById('tk-messages')"
                                                ".textContent"), what="the beneficiary's text")
        assert b.js("return document.querySelectorAll('#tk-messages .tk-text *').length") == 0
        # A canned answer, {ref} filled in; a double click sends one reply.
        Select(by_id(b, "tk-canned")).select_by_value("received_under_review")
        reply = by_id(b, "tk-reply").get_attribute("value")
        assert ref in reply and "{ref}" not in reply and "قيد الدراسة" in reply
        ActionChains(b.driver).double_click(by_id(b, "tk-send")).perform()
        b.wait(lambda d: b.js("return !!document.querySelector("
                              "'#tk-history li[data-kind=\"replied\"]')"), what="replied in history")
        wait_for(lambda: [q for q in sink.to(phone) if "قيد الدراسة" in q["text"]], WAIT_S,
                 what="the reply at the SMS sink")
        b.screenshot("ticket")
        # Resolve with a wrap-up code; the update and survey go out as always.
        Select(by_id(b, "tk-wrapup")).select_by_value("case_status_given")
        by_id(b, "tk-resolution").send_keys("تمت الإفادة بموعد الجلسة")
        by_id(b, "tk-resolve").click()
        wait_for(lambda: it.ticket(ref)["status"] == "resolved", WAIT_S, what="resolved")
        wait_for(lambda: [q for q in sink.to(phone) if "تمت الإفادة" in q["text"]], WAIT_S,
                 what="the resolution at the SMS sink")
        b.wait(lambda d: not b.driver.find_elements(
            By.CSS_SELECTOR, f'#mywork-list [data-ticket="{ref}"]'), what="out of my work")
        # The ticket shows its wrap-up code (its own column since 0022), in an isolate.
        b.wait(lambda d: by_id(b, "tk-wrapup-code").text == "case_status_given",
               what="the wrap-up code shown")
        assert it.scalar("SELECT wrapup_code FROM tickets WHERE ref = %s",
                         (ref,)) == "case_status_given"
        # A resolved ticket can be reopened from its panel (POST …/reopen): back to the router,
        # the reopening counted and in the history with its reason; the panel closes.
        b.wait(lambda d: by_id(b, "tk-reopen-form").is_displayed(), what="the reopen form")
        by_id(b, "tk-reopen-reason").send_keys("المستفيد لم يتلقَّ الموعد")
        by_id(b, "tk-reopen").click()
        wait_for(lambda: it.scalar("SELECT reopen_count FROM tickets WHERE ref = %s",
                                   (ref,)) == 1, WAIT_S, what="reopened")
        assert it.scalar("SELECT status FROM tickets WHERE ref = %s", (ref,)) != "resolved"
        assert it.scalar("SELECT data->>'reason' FROM ticket_events e JOIN tickets t ON"
                         " t.id = e.ticket_id WHERE t.ref = %s AND e.kind = 'reopened'",
                         (ref,)) == "المستفيد لم يتلقَّ الموعد"
        b.wait(lambda d: not by_id(b, "ticket").is_displayed(), what="the panel closed")
        replies = [q for q in sink.to(phone) if "قيد الدراسة" in q["text"]]
        assert len(replies) == 1 and ref in replies[0]["text"], replies
        assert it.scalar("SELECT count(*) FROM notifications n JOIN tickets t ON t.id ="
                         " n.ticket_id WHERE t.ref = %s AND n.template = 'reply'", (ref,)) == 1
        b.screenshot("resolved")
        assert page_errors(b) == []
    finally:
        sink.close()


def test_collision_warning_appears_live(desk_db, start_desk, browser):  # noqa: F811
    """The collision warning (collision.js): hala has her ticket open in the browser; sara, a
    supervisor driving plain HTTP, opens it too — the banner names her live (role="status",
    her name in an isolate), amber while she writes a reply, in English after the switch, and
    gone when she leaves. The page's own heartbeat tells sara when hala focuses the reply box,
    and signing out takes hala off the ticket."""
    from test_desk_auth import PASSWORDS, Desk, Stream
    from test_desk_tickets import assign, new_ticket

    src = (WWW / "collision.js").read_text(encoding="utf-8")
    bad = r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function"
    assert re.findall(bad, src) == [] and re.findall(r"https?://", src) == []
    desk = Desk(start_desk(desk_db, www=WWW), desk_db)
    ref = new_ticket(desk)
    assign(desk, ref, "hala")
    sara = desk.session("sara")
    stream = Stream(sara)

    def sara_hears(want):
        stream.next("viewers", pred=lambda d: d["ref"] == ref and [
            (v["agent"], v["state"]) for v in d["viewers"]] == want)

    def sara_is(state):
        r = sara.call("PUT", f"/v1/tickets/{ref}/viewing", {"state": state})
        assert r.status_code == 200, r.text

    def banner():
        return b.js("const e = document.getElementById('tk-viewers');"
                    "return e.hidden ? null : e.textContent")

    try:
        sara_is("viewing")
        b = browser()
        sign_in(b, desk, PASSWORDS["hala"], agent="hala")
        b.wait(lambda d: b.driver.find_elements(By.CSS_SELECTOR,
                                                f'#mywork-list [data-ticket="{ref}"]'),
               what="the ticket in my work")
        b.driver.find_element(By.CSS_SELECTOR, f'#mywork-list [data-ticket="{ref}"]').click()
        b.wait(lambda d: by_id(b, "ticket").is_displayed() and by_id(b, "tk-ref").text == ref,
               what="the ticket panel")
        # The page's heartbeat puts hala on the ticket; the ticket view already named sara.
        sara_hears([("hala", "viewing")])
        b.wait(lambda d: (banner() or "").startswith("يطّلع على هذه التذكرة أيضًا"),
               what="the banner naming sara")
        box = by_id(b, "tk-viewers")
        assert box.get_attribute("role") == "status"
        assert box.get_attribute("aria-live") == "polite"
        assert b.js("return [...document.querySelectorAll('#tk-viewers bdi.viewer')]"
                    ".map(e => e.textContent)") == ["Sara"]
        # sara writes a reply: the banner says so, in amber.
        sara_is("replying")
        b.wait(lambda d: (banner() or "").startswith("يكتب ردًّا الآن"), what="sara replying")
        # ... from the stream's event, not from the page's next beat (15 s later).
        assert by_id(b, "tk-viewers").get_attribute("data-from") == "event"
        amber = b.js("return getComputedStyle(document.querySelector("
                     "'#tk-viewers .collision-replying')).backgroundColor")
        assert amber == "rgb(255, 244, 220)", amber
        b.screenshot("collision")
        # hala's reply box takes the focus: sara hears "replying", and "viewing" after.
        by_id(b, "tk-reply").click()
        sara_hears([("hala", "replying")])
        by_id(b, "tk-note").click()
        sara_hears([("hala", "viewing")])
        # English; then sara leaves and the banner goes.
        by_id(b, "lang-switch").click()
        b.wait(lambda d: (banner() or "").startswith("Writing a reply now: Sara"),
               what="the English banner")
        assert sara.call("DELETE", f"/v1/tickets/{ref}/viewing").status_code == 204
        b.wait(lambda d: banner() is None, what="the banner gone")
        # Signing out takes hala off the ticket (the page DELETEs while it still may).
        sara_is("viewing")
        by_id(b, "logout").click()
        sara_hears([])
        assert page_errors(b) == []
    finally:
        stream.close()


def test_screen_pop_then_new_ticket_opens_it(start_intake, start_desk, browser, tmp_path):
    """Issue 15's screen pop in the browser: a call rings for the agent at intake → the pop
    appears without a reload (an alert dialog with the number in a left-to-right isolate, the
    IVR path, the caller's earlier ticket as text) and has the focus → Enter on "New ticket"
    makes the call's ticket, assigned to the agent, and opens it; it is in "my work"; a reload
    shows the pop again (GET /v1/me/calls) and Escape dismisses it. screenpop.js keeps the
    console's rules."""
    from intake_helpers import unique_saudi_mobile

    js = (WWW / "screenpop.js").read_text(encoding="utf-8")
    assert re.findall(r"\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(",
                      js) == [] and re.findall(r"https?://", js) == []
    it = start_intake()
    password = add_agent_with_password(it, tmp_path)
    local, phone = unique_saudi_mobile()
    r = it.report(body={"channel": "web", "external_id": unique("desk"), "subject": XSS,
                        "body": "متى موعد الجلسة؟", "from": {"phone": local}})
    assert r.status == 201, r.raw
    earlier = r.json["ticket"]
    # Waiting in reem's queue: she may open it (the ticket view's rule decides, not the list).
    it.scalar("UPDATE tickets SET status = 'routed', queue = 'case-status' WHERE ref = %s"
              " RETURNING id", (earlier,))
    desk = start_desk(it.db_url, www=WWW)
    b = browser()
    sign_in(b, desk, password)
    b.wait(lambda d: b.js("return document.body.dataset.live") == "1", what="the event stream")
    b.js("window.__sameDocument = 'yes'")
    call = unique("call")
    for seq, fields in ((1, {"type": "call.started", "from": local, "to": "1900"}),
                        (2, {"type": "call.ivr", "menu": "main"}),
                        (3, {"type": "call.ivr", "menu": "queue:case-status"}),
                        (4, {"type": "call.ringing", "agent": AGENT})):
        r = it.post("/v1/calls/events", {"call_id": call, "seq": seq, **fields}, client="phone")
        assert r.status == 200, r
    pop = b.wait(lambda d: (d.find_elements(By.CSS_SELECTOR, "#screenpop .pop") or [None])[0],
                 what="the screen pop")
    assert b.js("return window.__sameDocument") == "yes", "the page reloaded"
    assert pop.get_attribute("role") == "alertdialog"
    number = pop.find_element(By.CSS_SELECTOR, ".phone")
    assert number.tag_name == "bdi" and number.get_attribute("dir") == "ltr"
    assert number.text == phone
    assert [li.text for li in pop.find_elements(By.CSS_SELECTOR, ".pop-ivr li")] == \
        ["main", "queue:case-status"]
    mine = pop.find_element(By.CSS_SELECTOR, f'.pop-ticket[data-ticket="{earlier}"]')
    subject = mine.find_element(By.CSS_SELECTOR, ".subject")
    assert subject.text.strip() == XSS.strip() and subject.find_elements(By.CSS_SELECTOR, "*") == []
    assert b.js("return window.__xss === undefined")
    # The new pop has the focus: Enter makes the ticket.
    assert b.js("return document.activeElement.classList.contains('pop-main')")
    b.screenshot("screen-pop")
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    made = wait_for(lambda: it.rows("SELECT * FROM tickets WHERE external_id = %s", (call,)),
                    WAIT_S, what="the call's ticket")
    assert len(made) == 1 and made[0]["assignee"] == AGENT and made[0]["status"] == "assigned"
    ref = made[0]["ref"]
    b.wait(lambda d: by_id(b, "ticket").is_displayed() and by_id(b, "tk-ref").text == ref,
           what="the new ticket opened")
    b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f'#mywork-list [data-ticket="{ref}"]'),
           what="the new ticket in my work")
    # Its panel lists the caller's other tickets by phone, as text; one click opens one.
    other = b.wait(lambda d: (d.find_elements(
        By.CSS_SELECTOR, f'#tk-others [data-ticket="{earlier}"]') or [None])[0],
        what="the beneficiary's other tickets")
    assert other.find_element(By.CSS_SELECTOR, ".ref").tag_name == "bdi"
    assert other.find_element(By.CSS_SELECTOR, ".subject").find_elements(By.CSS_SELECTOR, "*") == []
    other.click()
    b.wait(lambda d: by_id(b, "tk-ref").text == earlier, what="the other ticket opened")
    assert b.js("return window.__xss === undefined")
    # A reload shows the pop again, now naming the call's ticket; Escape dismisses it.
    b.driver.refresh()
    b.wait(lambda d: by_id(b, "desk-view").is_displayed(), what="the desk after a reload")
    pop = b.wait(lambda d: (d.find_elements(By.CSS_SELECTOR, "#screenpop .pop") or [None])[0],
                 what="the pop after a reload")
    assert pop.find_element(By.CSS_SELECTOR, ".pop-own .ref").text == ref
    pop.find_element(By.CSS_SELECTOR, ".pop-dismiss").send_keys(Keys.ESCAPE)
    b.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "#screenpop .pop"), what="dismissed")
    assert it.count("tickets", "external_id = %s", (call,)) == 1
    assert page_errors(b) == []


def test_shortcuts_transfer_and_a_supervisors_reassignment(start_intake, start_desk, browser,
                                                             tmp_path):
    """j/k step through "my work" (never while typing; listed in both languages); transfer to
    a queue from the picker; a supervisor gives tickets to the agent from one agent's work view
    and from the ticket panel, and the agent's "my work" follows without a reload."""
    it = start_intake()
    reem_pw = add_agent_with_password(it, tmp_path)
    sara_pw = "pw-" + secrets.token_urlsafe(12)
    (tmp_path / "sara.pw").write_text(sara_pw + "\n")
    out = it.waslctl("agent", "add", "sara", "--name", "سارة القحطاني", "--skills",
                     "case-status:5,enforcement:5", "--role", "supervisor", "--password-file",
                     tmp_path / "sara.pw")
    assert out.returncode == 0, out.stderr
    base = int(time.time() * 1000) % 10 ** 7

    def ticket(n, assignee, hours):
        ref = make_ref((base + n) % 10 ** 7)
        it.scalar("INSERT INTO tickets (ref, channel, external_id, status, queue, priority,"
                  " prio_rank, language, category, subject, assignee, waiting_since,"
                  " first_response_due) VALUES (%s, 'web', %s, 'assigned', 'case-status',"
                  " 'normal', 2, 'ar', 'case_inquiry', 'موعد الجلسة', %s, now(),"
                  " now() + make_interval(hours => %s)) RETURNING id",
                  (ref, unique("kb"), assignee, hours))
        return ref
    first, second, saras = ticket(1, AGENT, 1), ticket(2, AGENT, 2), ticket(3, "sara", 3)
    desk = start_desk(it.db_url, www=WWW)
    a = browser()
    sign_in(a, desk, reem_pw)
    a.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#mywork-list .mywork-item")) == 2,
           what="two tickets in my work")
    a.wait(lambda d: a.js("return document.body.dataset.live") == "1", what="the stream")

    def press(b, key):
        ActionChains(b.driver).send_keys(key).perform()

    def shown(b):
        return by_id(b, "tk-ref").text if by_id(b, "ticket").is_displayed() else None
    a.js("document.activeElement.blur()")
    press(a, "j")
    a.wait(lambda d: shown(a) == first, what="j: the first ticket")
    press(a, "j")
    a.wait(lambda d: shown(a) == second, what="j: the next ticket")
    press(a, "k")
    a.wait(lambda d: shown(a) == first, what="k: the previous ticket")
    # Typing in a field never steps.
    by_id(a, "tk-note").send_keys("jk")
    assert by_id(a, "tk-note").get_attribute("value") == "jk" and shown(a) == first
    by_id(a, "tk-note").clear()
    # Listed on the page, in Arabic and in English.
    assert by_id(a, "shortcuts-title").is_displayed()
    keys = a.js("return [...document.querySelectorAll('.shortcuts dt kbd')].map(k => k.textContent)")
    assert "J" in keys and "K" in keys, keys
    sc = "return document.querySelector('[data-tk=sc_next]').textContent"
    assert a.js(sc) == "الطلب التالي في أعمالي"
    by_id(a, "lang-switch").click()
    a.wait(lambda d: a.js(sc) == "Next ticket in my work", what="the English words")
    by_id(a, "lang-switch").click()
    a.wait(lambda d: a.js("return document.documentElement.lang") == "ar", what="Arabic again")

    # Transfer the first ticket from the picker: waiting in the other queue, out of my work.
    from selenium.webdriver.support.ui import Select
    a.wait(lambda d: "enforcement" in [o.get_attribute("value") for o in
                                       Select(by_id(a, "tk-queue")).options], what="the queues")
    Select(by_id(a, "tk-queue")).select_by_value("enforcement")
    by_id(a, "tk-transfer-reason").send_keys("تنفيذ حكم")
    by_id(a, "tk-transfer").click()
    wait_for(lambda: it.scalar("SELECT status || '/' || queue FROM tickets WHERE ref = %s",
                               (first,)) == "routed/enforcement", WAIT_S, what="transferred")
    a.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#mywork-list [data-ticket="{first}"]'),
           what="the transferred ticket out of my work")

    # The supervisor, in another browser: sara's own ticket to reem from the work view.
    b = browser()
    sign_in(b, desk, sara_pw, agent="sara")
    b.wait(lambda d: by_id(b, "wallboard").is_displayed(), what="the wallboard")
    sara_row = '#wb-agents-body tr[data-agent="sara"]'
    b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, sara_row), what="sara's row")

    def click(selector):
        try:
            b.driver.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except StaleElementReferenceException:
            return None
    b.wait(lambda d: click(f"{sara_row} td button"), what="sara's work opened")
    item = f'#wb-work-list li[data-ticket="{saras}"]'
    b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f"{item} .wb-move"), what="the picker")
    Select(b.driver.find_element(By.CSS_SELECTOR, f"{item} .wb-move-to")).select_by_value(AGENT)
    click(f"{item} .wb-move")
    wait_for(lambda: it.scalar("SELECT assignee FROM tickets WHERE ref = %s", (saras,)) == AGENT,
             WAIT_S, what="reassigned to reem")
    # reem's page hears it: the ticket is in her work without a reload.
    a.js("window.__sameDocument = 'yes'")
    a.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f'#mywork-list [data-ticket="{saras}"]'),
           what="the reassigned ticket in reem's work, live")
    # From the ticket panel: sara opens reem's second ticket and takes it herself.
    reem_row = f'#wb-agents-body tr[data-agent="{AGENT}"]'
    b.wait(lambda d: click(f"{reem_row} td button"), what="reem's work opened")
    item = f'#wb-work-list li[data-ticket="{second}"]'
    b.wait(lambda d: click(f"{item} .wb-open"), what="the ticket opened")
    b.wait(lambda d: shown(b) == second and by_id(b, "tk-assign-form").is_displayed(),
           what="the supervisor's assign picker")
    Select(by_id(b, "tk-assign-agent")).select_by_value("sara")
    by_id(b, "tk-assign").click()
    wait_for(lambda: it.scalar("SELECT assignee FROM tickets WHERE ref = %s", (second,)) == "sara",
             WAIT_S, what="taken by sara")
    b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f'#mywork-list [data-ticket="{second}"]'),
           what="in sara's own work")
    history = it.scalar("SELECT data FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id"
                        " WHERE t.ref = %s AND e.kind = 'assigned' ORDER BY e.id DESC LIMIT 1",
                        (second,))
    assert history["by"] == "sara" and history["from"] == AGENT, history
    assert a.js("return window.__sameDocument") == "yes"
    b.screenshot("reassign")
    assert page_errors(a) == [] and page_errors(b) == []
    # An agent's page has no assign picker.
    assert not by_id(a, "tk-assign-form").is_displayed()
