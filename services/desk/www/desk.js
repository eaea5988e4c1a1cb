// desk.js — the agent console (issue 15): sign in/out, presence with its heartbeat, offers
// pushed by the desk's event stream (GET /v1/events) with their countdown, accept/reject.
// Vanilla ES2020, no build step, no library. Every string that comes from the server is put
// into the page with textContent (never innerHTML): a beneficiary's subject is hostile text.
// API shapes: docs/desk.md (the design for issue 15).
"use strict";

(() => {
  // ---- constants (why each value: docs/desk.md) ------------------------------------------
  // The open page renews its presence every 30 s for 90 s: two heartbeats may be lost before
  // it lapses. localStorage "wasl.desk.heartbeat_s" (1..30) beats faster: the browser test
  // shows the heartbeat without waiting half a minute; slower is never allowed.
  const HEARTBEAT_MS = 1000 * storedInt("wasl.desk.heartbeat_s", 1, 30, 30);
  const PRESENCE_TTL_S = 90;
  const AMBER_S = 20;           // an offer's countdown turns amber with this much left…
  const RED_S = 10;             // …and red here
  const CLOSED_LINGER_MS = 4000;  // a closed offer stays visible this long, saying why
  const RESYNC_DEBOUNCE_MS = 250; // a burst of resyncs (reconnects) refetches once
  const PRESENCES = ["available", "busy", "away"];

  // ---- words: Arabic first, English on the switch -----------------------------------------
  // The domain's words for category and priority codes. Their one source is
  // common/wasl_domain.c; this is a mirror, both languages at once so the switch needs no
  // request, and test_desk_browser.py fails when it differs from wasl_domain.c by one letter.
  const DOMAIN = {
    category: {
      case_inquiry: ["استفسار عن قضية", "Case inquiry"],
      eservice_support: ["دعم الخدمات الإلكترونية", "E-services support"],
      judicial_support: ["الدعم القضائي", "Judicial support"],
      staff_services: ["خدمات الموظفين", "Staff services"],
      complaint: ["شكوى", "Complaint"],
      general_inquiry: ["استفسار عام", "General inquiry"],
      triage: ["طلب عام", "General request"],
    },
    priority: {
      urgent: ["عاجلة", "urgent"],
      high: ["عالية", "high"],
      normal: ["عادية", "normal"],
      low: ["منخفضة", "low"],
    },
  };

  // The interface's own words.
  const WORDS = {
    ar: {
      title: "وصل — مكتب الموظف", skip: "تخطَّ إلى المحتوى", brand: "وصل",
      brand_sub: "مكتب الموظف", prefs: "التفضيلات", digits: "الأرقام",
      digits_arab: "٠١٢٣ عربية", digits_latn: "0123 لاتينية", signed_in_as: "الموظف:",
      logout: "تسجيل الخروج", logout_all: "الخروج من كل الأجهزة",
      login_title: "تسجيل الدخول", agent_id: "معرّف الموظف", password: "كلمة المرور",
      login: "دخول", presence_title: "الحالة", presence_now: "الحالة الآن:", time_in_state: "منذ",
      p_available: "متاح", p_busy: "مشغول", p_away: "بعيد", p_offline: "غير متصل",
      offers_title: "العروض", offers_empty: "لا عروض الآن. يظهر العرض هنا فور وصوله.",
      shortcuts_title: "اختصارات لوحة المفاتيح", sc_accept: "قبول العرض الأول (أو المحدَّد)",
      sc_reject: "رفض العرض الأول (أو المحدَّد)", f_queue: "الطابور", f_channel: "القناة",
      f_language: "اللغة", f_sla: "موعد الرد الأول", expires_in: "ينتهي العرض خلال",
      accept: "قبول", reject: "رفض", lang_switch: "English", lang_switch_label: "Switch to English",
      ticket: "بلاغ", expired: "انتهى", live_on: "متصل — التحديثات مباشرة",
      live_off: "انقطع الاتصال — جارٍ إعادة الاتصال…", bad_credentials: "معرّف الموظف أو كلمة المرور غير صحيحة.",
      throttled: "محاولات كثيرة. أعد المحاولة بعد {s} ثانية.", need_agent: "أدخل معرّف الموظف.",
      need_password: "أدخل كلمة المرور.", failed: "تعذّر الطلب ({code}).",
      accepted: "قُبل العرض: البلاغ {ref}.", rejected: "رُفض العرض: البلاغ {ref}.",
      closed_accepted: "قُبل", closed_rejected: "رُفض", closed_expired: "انتهت مهلته",
      closed_withdrawn: "سُحب", offer_new: "عرض جديد: البلاغ {ref}.",
      signed_out: "تم تسجيل الخروج.", session_over: "انتهت الجلسة. سجّل الدخول من جديد.",
      no_sla: "—",
      ch_web: "الموقع", ch_api: "تكامل", ch_sms: "رسالة نصية", ch_email: "بريد إلكتروني",
      ch_phone: "مكالمة", lg_ar: "العربية", lg_en: "الإنجليزية", lg_mixed: "مختلطة",
      priority: "أولوية {p}", priority_reason: "سبب الأولوية:",
    },
    en: {
      title: "Wasl — agent desk", skip: "Skip to content", brand: "Wasl", brand_sub: "Agent desk",
      prefs: "Preferences", digits: "Digits", digits_arab: "٠١٢٣ Arabic-Indic",
      digits_latn: "0123 Latin", signed_in_as: "Agent:", logout: "Sign out",
      logout_all: "Sign out everywhere", login_title: "Sign in", agent_id: "Agent ID",
      password: "Password", login: "Sign in", presence_title: "Presence",
      presence_now: "Now:", time_in_state: "for", p_available: "Available", p_busy: "Busy",
      p_away: "Away", p_offline: "Offline", offers_title: "Offers",
      offers_empty: "No offers now. An offer appears here the moment it arrives.",
      shortcuts_title: "Keyboard shortcuts", sc_accept: "Accept the first (or focused) offer",
      sc_reject: "Reject the first (or focused) offer", f_queue: "Queue", f_channel: "Channel",
      f_language: "Language", f_sla: "First response due", expires_in: "Offer expires in",
      accept: "Accept", reject: "Reject", lang_switch: "العربية",
      lang_switch_label: "التبديل إلى العربية", ticket: "Ticket", expired: "expired",
      live_on: "Connected — live updates", live_off: "Connection lost — reconnecting…",
      bad_credentials: "Wrong agent ID or password.",
      throttled: "Too many attempts. Try again in {s} s.", need_agent: "Enter your agent ID.",
      need_password: "Enter your password.", failed: "The request failed ({code}).",
      accepted: "Offer accepted: ticket {ref}.", rejected: "Offer rejected: ticket {ref}.",
      closed_accepted: "accepted", closed_rejected: "rejected", closed_expired: "expired",
      closed_withdrawn: "withdrawn", offer_new: "New offer: ticket {ref}.",
      signed_out: "Signed out.", session_over: "Your session ended. Please sign in again.",
      no_sla: "—",
      ch_web: "Web", ch_api: "Integration", ch_sms: "SMS", ch_email: "Email", ch_phone: "Call",
      lg_ar: "Arabic", lg_en: "English", lg_mixed: "Mixed", priority: "Priority: {p}",
      priority_reason: "Why this priority:",
    },
  };

  // ---- state --------------------------------------------------------------------------------
  const state = {
    lang: stored("wasl.desk.lang", ["ar", "en"], "ar"),
    digits: stored("wasl.desk.digits", ["arab", "latn"], "arab"),
    me: null,             // {agent, name, role, csrf, presence, queues}
    presence: "offline",
    presenceSince: null,  // ms since epoch
    offers: new Map(),    // offer id → {data, el, expiresMs, closed}
    events: null,         // EventSource
    heartbeat: null,
    resyncTimer: null,
  };

  const $ = (id) => document.getElementById(id);

  function stored(key, allowed, fallback) {
    try {
      const v = localStorage.getItem(key);
      return allowed.includes(v) ? v : fallback;
    } catch (_) {
      return fallback;
    }
  }

  function storedInt(key, min, max, fallback) {
    let v = NaN;
    try { v = Number.parseInt(localStorage.getItem(key) ?? "", 10); } catch (_) { /* none */ }
    return Number.isInteger(v) && v >= min && v <= max ? v : fallback;
  }

  function remember(key, value) {
    try { localStorage.setItem(key, value); } catch (_) { /* private mode: not kept */ }
  }

  function t(key, vars) {
    let s = WORDS[state.lang][key] ?? WORDS.ar[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
    return s;
  }

  // ---- numbers and dates by preference -------------------------------------------------------
  function locale(extra) {
    return `${state.lang === "ar" ? "ar-SA" : "en-GB"}-u-${extra ? extra + "-" : ""}nu-${state.digits}`;
  }

  function num(n) {
    return new Intl.NumberFormat(locale(), { useGrouping: false }).format(n);
  }

  // "h:mm:ss" or "m:ss" in the preferred digits.
  function duration(totalS) {
    const s = Math.max(0, Math.floor(totalS));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (x) => num(Math.floor(x / 10)) + num(x % 10);
    return h > 0 ? `${num(h)}:${two(m)}:${two(sec)}` : `${num(m)}:${two(sec)}`;
  }

  // Hijri with the calendar asked for explicitly (a bare ar-SA prints Gregorian in some
  // engines), and Gregorian; both in Riyadh time.
  function hijri(date, withTime) {
    return new Intl.DateTimeFormat(locale("ca-islamic-umalqura"), {
      timeZone: "Asia/Riyadh", day: "numeric", month: "long", year: "numeric",
      ...(withTime ? { hour: "2-digit", minute: "2-digit" } : {}),
    }).format(date);
  }

  function gregorian(date) {
    return new Intl.DateTimeFormat(locale("ca-gregory"), {
      timeZone: "Asia/Riyadh", day: "numeric", month: "short", year: "numeric",
    }).format(date);
  }

  function parseTime(s) {
    const ms = typeof s === "string" || typeof s === "number" ? Date.parse(s) : NaN;
    return Number.isFinite(ms) ? ms : null;
  }

  // ---- the page's words ----------------------------------------------------------------------
  function applyLanguage() {
    const html = document.documentElement;
    html.lang = state.lang;
    html.dir = state.lang === "ar" ? "rtl" : "ltr";
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const tpl of document.querySelectorAll("template")) {
      for (const el of tpl.content.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    }
    for (const el of document.querySelectorAll("[data-i18n-aria]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAria));
    }
    const sw = $("lang-switch");
    sw.textContent = t("lang_switch");
    sw.setAttribute("aria-label", t("lang_switch_label"));
    sw.lang = state.lang === "ar" ? "en" : "ar";
    sw.dir = state.lang === "ar" ? "ltr" : "rtl";
    $("digits").value = state.digits;
    render();
  }

  function render() {
    const now = new Date();
    if (document.body.dataset.live) setLive(document.body.dataset.live === "1");
    $("today").textContent = `${hijri(now)} — ${gregorian(now)}`;
    renderPresence();
    for (const o of state.offers.values()) fillOffer(o);
    tick();
  }

  function say(text) {
    $("notice").textContent = text;
  }

  // A notice naming a ticket: the reference goes in its own left-to-right isolate.
  function sayRef(key, ref) {
    const [before, after = ""] = t(key).split("{ref}");
    const bdi = document.createElement("bdi");
    bdi.dir = "ltr";
    bdi.textContent = String(ref ?? "");
    $("notice").replaceChildren(before, bdi, after);
  }

  // The word for a domain code in the page's language (the code itself when unknown).
  function domainWord(kind, code) {
    const w = Object.prototype.hasOwnProperty.call(DOMAIN[kind], code) ? DOMAIN[kind][code] : null;
    return w ? w[state.lang === "en" ? 1 : 0] : String(code ?? "");
  }

  // ---- the API -------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super(`HTTP ${status}`);
      this.status = status;
      this.code = body?.error?.code || `http_${status}`;
      this.field = body?.error?.field || null;
      this.retryAfter = retryAfter;
    }
  }

  // JSON in and out; the session cookie goes by itself (same origin), the CSRF token with
  // every state change. A 401 outside sign-in means the session is over.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && state.me?.csrf) headers["X-CSRF-Token"] = state.me.csrf;
    const r = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (r.status !== 204) {
      try { data = await r.json(); } catch (_) { data = null; }
    }
    if (!r.ok) {
      const err = new ApiError(r.status, data, Number(r.headers.get("Retry-After")) || null);
      if (r.status === 401 && path !== "/v1/login" && state.me) sessionOver();
      throw err;
    }
    return data;
  }

  // ---- sign in / out -------------------------------------------------------------------------
  async function boot() {
    $("lang-switch").addEventListener("click", () => {
      state.lang = state.lang === "ar" ? "en" : "ar";
      remember("wasl.desk.lang", state.lang);
      say("");
      applyLanguage();
    });
    $("digits").addEventListener("change", (e) => {
      state.digits = e.target.value === "latn" ? "latn" : "arab";
      remember("wasl.desk.digits", state.digits);
      render();
    });
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", () => logout("/v1/logout"));
    $("logout-all").addEventListener("click", () => logout("/v1/logout/all"));
    for (const b of document.querySelectorAll("[data-presence]")) {
      b.addEventListener("click", () => setPresence(b.dataset.presence));
    }
    document.addEventListener("keydown", onKey);
    setInterval(tick, 1000);
    applyLanguage();
    try {
      state.me = await api("GET", "/v1/me");
      await enterDesk();
    } catch (_) {
      showLogin();
    }
  }

  function showLogin() {
    $("desk-view").hidden = true;
    $("session-box").hidden = true;
    $("login-view").hidden = false;
    $("login-agent").focus();
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const agent = $("login-agent").value.trim();
    const password = $("login-password").value;
    const out = $("login-error");
    out.textContent = "";
    if (!agent) { out.textContent = t("need_agent"); $("login-agent").focus(); return; }
    if (!password) { out.textContent = t("need_password"); $("login-password").focus(); return; }
    $("login-submit").disabled = true;
    try {
      const who = await api("POST", "/v1/login", { agent, password });
      state.me = who;
      $("login-password").value = "";
      state.me = { ...who, ...(await api("GET", "/v1/me")) };
      await enterDesk();
    } catch (e) {
      state.me = null;
      if (e.status === 429) out.textContent = t("throttled", { s: num(e.retryAfter || 60) });
      else if (e.status === 401) out.textContent = t("bad_credentials");
      else out.textContent = t("failed", { code: e.code || e.message });
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function logout(path) {
    // collision.js leaves the open ticket first, while the session still exists.
    const waits = [];
    document.dispatchEvent(new CustomEvent("wasl:signing-out",
                                           { detail: { waitFor: (p) => waits.push(p) } }));
    await Promise.allSettled(waits);
    try { await api("POST", path); } catch (_) { /* the session is gone either way */ }
    leaveDesk();
    say(t("signed_out"));
  }

  function sessionOver() {
    leaveDesk();
    say(t("session_over"));
  }

  function leaveDesk() {
    state.me = null;
    if (state.events) { state.events.close(); state.events = null; }
    clearInterval(state.heartbeat);
    state.heartbeat = null;
    for (const o of state.offers.values()) o.el.remove();
    state.offers.clear();
    updateEmpty();
    document.dispatchEvent(new CustomEvent("wasl:signed-out"));
    showLogin();
  }

  async function enterDesk() {
    $("who-name").textContent = state.me.name || state.me.agent;
    $("who-id").textContent = state.me.agent;
    $("login-view").hidden = true;
    $("session-box").hidden = false;
    $("desk-view").hidden = false;
    takePresence(state.me.presence, state.me.presence_since ?? state.me.since);
    openEvents();
    await loadOffers();
    state.heartbeat = setInterval(heartbeat, HEARTBEAT_MS);
    document.dispatchEvent(new CustomEvent("wasl:signed-in", { detail: { ...state.me } }));
    // A call that popped meanwhile keeps the focus (screenpop.js).
    if (!document.activeElement?.closest?.("#screenpop")) $("main").focus();
  }

  // ---- presence ------------------------------------------------------------------------------
  function takePresence(p, since) {
    const next = PRESENCES.includes(p) ? p : "offline";
    const sinceMs = parseTime(since);
    if (sinceMs !== null) state.presenceSince = sinceMs;
    else if (next !== state.presence || state.presenceSince === null) state.presenceSince = Date.now();
    state.presence = next;
    renderPresence();
  }

  function renderPresence() {
    for (const b of document.querySelectorAll("[data-presence]")) {
      b.setAttribute("aria-checked", String(b.dataset.presence === state.presence));
    }
    $("presence-state").textContent = t(`p_${state.presence}`);
    $("presence-time").textContent =
      state.presenceSince === null ? "" : duration((Date.now() - state.presenceSince) / 1000);
  }

  async function setPresence(p) {
    try {
      const r = await api("PUT", "/v1/me/presence", { presence: p, ttl_s: PRESENCE_TTL_S });
      takePresence(r?.presence ?? p, r?.since ?? r?.presence_since);
    } catch (e) {
      if (e.status !== 401) say(t("failed", { code: e.code }));
    }
  }

  // The open page is the agent's heartbeat: it renews the presence the agent chose. Offline
  // (never chosen, or lapsed) is not renewed: the agent has to say they are back.
  async function heartbeat() {
    if (!state.me || state.presence === "offline") return;
    try {
      const r = await api("PUT", "/v1/me/presence", { presence: state.presence, ttl_s: PRESENCE_TTL_S });
      if (r?.presence) takePresence(r.presence, r.since ?? r.presence_since);
    } catch (_) { /* the next beat tries again; a 401 already signed the page out */ }
  }

  // ---- the event stream ----------------------------------------------------------------------
  function openEvents() {
    if (state.events) state.events.close();
    const es = new EventSource("/v1/events");
    state.events = es;
    let dropped = false;
    es.addEventListener("open", () => {
      setLive(true);
      // Events sent while the stream was down are lost: refetch (the desk also sends resync).
      if (dropped) resync();
      dropped = false;
    });
    es.addEventListener("error", () => {
      dropped = true;
      setLive(false);
      // EventSource retries by itself unless the server refused the stream (401: the session
      // is over); ask /v1/me which it was.
      if (es.readyState === EventSource.CLOSED) {
        api("GET", "/v1/me").then(() => setTimeout(openEvents, 2000), () => {});
      }
    });
    es.addEventListener("offer", (e) => withJson(e, addOffer));
    es.addEventListener("offer.closed", (e) => withJson(e, (d) => closeOffer(d.offer, d.state)));
    es.addEventListener("presence", (e) => withJson(e, (d) => {
      if (state.me && d.agent === state.me.agent) takePresence(d.presence, d.since);
    }));
    es.addEventListener("resync", resync);
    // For collision.js: who else is on a ticket.
    es.addEventListener("viewers", (e) => withJson(e, (d) =>
      document.dispatchEvent(new CustomEvent("wasl:viewers", { detail: d }))));
    // For ticket.js: a supervisor gave this agent a ticket — "my work" refetches.
    es.addEventListener("work", () => document.dispatchEvent(new CustomEvent("wasl:work")));
    // For screenpop.js: a call ringing for this agent (on wasl:resync it refetches its calls).
    es.addEventListener("call", (e) => withJson(e, (d) =>
      document.dispatchEvent(new CustomEvent("wasl:call", { detail: d }))));
    // For wallboard.js: the supervisors' debounced "something changed" (and a resync).
    for (const kind of ["wallboard", "resync"]) {
      es.addEventListener(kind, () => document.dispatchEvent(new CustomEvent("wasl:wallboard")));
    }
  }

  function withJson(e, fn) {
    let d;
    try { d = JSON.parse(e.data); } catch (_) { return; }
    if (d && typeof d === "object") fn(d);
  }

  function setLive(up) {
    const el = $("live-state");
    el.textContent = t(up ? "live_on" : "live_off");
    el.classList.toggle("down", !up);
    document.body.dataset.live = up ? "1" : "0";
  }

  // After a reconnect the page may have missed events: refetch what it shows.
  function resync() {
    document.dispatchEvent(new CustomEvent("wasl:resync"));
    clearTimeout(state.resyncTimer);
    state.resyncTimer = setTimeout(async () => {
      try {
        state.me = { ...state.me, ...(await api("GET", "/v1/me")) };
        takePresence(state.me.presence, state.me.presence_since ?? state.me.since);
        await loadOffers();
      } catch (_) { /* a 401 signed the page out */ }
    }, RESYNC_DEBOUNCE_MS);
  }

  // ---- offers --------------------------------------------------------------------------------
  // The offers live now. A card the stream brought while the list was on its way stays: the
  // list is older than it.
  async function loadOffers() {
    const asked = Date.now();
    const r = await api("GET", "/v1/me/offers");
    const list = Array.isArray(r) ? r : Array.isArray(r?.offers) ? r.offers : [];
    const live = new Set();
    for (const d of list) {
      if (d && d.offer !== undefined) { live.add(String(d.offer)); addOffer(d, true); }
    }
    for (const [id, o] of state.offers) {
      if (!live.has(id) && !o.closed && o.addedMs < asked) dropOffer(id);
    }
  }

  function addOffer(d, quiet) {
    const id = String(d.offer);
    if (!/^[0-9]{1,19}$/.test(id)) return;
    let o = state.offers.get(id);
    if (!o) {
      const el = $("offer-template").content.firstElementChild.cloneNode(true);
      el.dataset.offer = id;
      el.querySelector(".accept").addEventListener("click", () => answer(id, "accept"));
      el.querySelector(".reject").addEventListener("click", () => answer(id, "reject"));
      o = { el, closed: false, addedMs: Date.now() };
      state.offers.set(id, o);
      $("offers").append(el);
      if (!quiet) sayRef("offer_new", d.ticket);
    }
    o.data = d;
    o.expiresMs = parseTime(d.expires_at);
    fillOffer(o);
    updateEmpty();
    tick();
  }

  function word(prefix, code) {
    const key = `${prefix}_${code}`;
    return WORDS[state.lang][key] ?? String(code ?? "");
  }

  // The classifier's reason for the priority, on the card itself (not only the tooltip).
  function fillReason(p, reason) {
    if (!p) return;
    p.hidden = !reason;
    const why = document.createElement("span");
    why.dir = "auto";
    why.textContent = reason ? String(reason) : "";
    p.replaceChildren(reason ? `${t("priority_reason")} ` : "", why);
  }

  // Fills a card from the server's data: textContent only.
  function fillOffer(o) {
    const d = o.data, el = o.el, q = (s) => el.querySelector(s);
    q(".category").textContent = d.category ? domainWord("category", d.category)
      : t("ticket");
    q(".ref").textContent = String(d.ticket ?? "");
    const pr = q(".priority");
    pr.textContent = d.priority ? t("priority", { p: domainWord("priority", d.priority) })
      : "";
    pr.className = `priority ${/^[a-z]+$/.test(d.priority || "") ? d.priority : ""}`;
    if (d.priority_reason) pr.title = String(d.priority_reason);
    fillReason(q(".priority-reason"), d.priority_reason);
    q(".subject").textContent = d.subject || "";
    q(".subject").hidden = !d.subject;
    q(".queue").textContent = d.queue_label || d.queue || "";
    q(".channel").textContent = word("ch", d.channel);
    q(".language").textContent = word("lg", d.language);
    const due = parseTime(d.first_response_due);
    q(".sla-hijri").textContent = due === null ? t("no_sla") : hijri(new Date(due), true);
    q(".sla-greg").textContent = due === null ? "" : `(${gregorian(new Date(due))})`;
    el.setAttribute("aria-label", `${t("ticket")} ${String(d.ticket ?? "")}`);
  }

  function tick() {
    const now = Date.now();
    for (const o of state.offers.values()) {
      if (o.closed) continue;
      const left = o.expiresMs === null ? null : (o.expiresMs - now) / 1000;
      const cd = o.el.querySelector(".countdown");
      const box = o.el.querySelector(".expiry");
      cd.textContent = left === null ? "" : left > 0 ? duration(left) : t("expired");
      box.classList.toggle("amber", left !== null && left <= AMBER_S && left > RED_S);
      box.classList.toggle("red", left !== null && left <= RED_S);
      for (const b of o.el.querySelectorAll("button")) b.disabled = left !== null && left <= 0;
    }
    if (state.presenceSince !== null && !$("desk-view").hidden) {
      $("presence-time").textContent = duration((now - state.presenceSince) / 1000);
    }
  }

  async function answer(id, verb) {
    const o = state.offers.get(id);
    if (!o || o.closed) return;
    for (const b of o.el.querySelectorAll("button")) b.disabled = true;
    try {
      await api("POST", `/v1/offers/${encodeURIComponent(id)}/${verb}`);
      sayRef(verb === "accept" ? "accepted" : "rejected", o.data.ticket);
      if (verb === "accept") {
        document.dispatchEvent(new CustomEvent("wasl:accepted", { detail: { ticket: o.data.ticket } }));
      }
      closeOffer(id, verb === "accept" ? "accepted" : "rejected");
    } catch (e) {
      if (e.status === 401) return;
      say(t("failed", { code: e.code }));
      if (e.status === 404 || e.status === 409) closeOffer(id, "withdrawn");
      else for (const b of o.el.querySelectorAll("button")) b.disabled = false;
    }
  }

  // An offer that closed (answered here or elsewhere, expired, withdrawn) says so briefly,
  // then leaves the list.
  function closeOffer(offerId, how) {
    const id = String(offerId);
    const o = state.offers.get(id);
    if (!o || o.closed) return;
    o.closed = true;
    o.el.classList.add("closed");
    o.el.dataset.state = String(how || "");
    for (const b of o.el.querySelectorAll("button")) b.disabled = true;
    const key = `closed_${how}`;
    o.el.querySelector(".countdown").textContent = WORDS[state.lang][key] ? t(key) : String(how || "");
    setTimeout(() => dropOffer(id), CLOSED_LINGER_MS);
  }

  function dropOffer(id) {
    const o = state.offers.get(id);
    if (!o) return;
    const hadFocus = o.el.contains(document.activeElement);
    o.el.remove();
    state.offers.delete(id);
    updateEmpty();
    if (hadFocus) focusFirstOffer();
  }

  function updateEmpty() {
    $("offers-empty").hidden = [...state.offers.values()].some((o) => !o.closed);
  }

  function focusFirstOffer() {
    const first = [...state.offers.values()].find((o) => !o.closed);
    (first ? first.el : $("main")).focus();
  }

  // ---- keyboard: a = accept, r = reject ------------------------------------------------------
  // By physical key (KeyA/KeyR), so the shortcuts work with an Arabic keyboard layout too.
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || !state.me) return;
    const tag = e.target?.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || e.target?.isContentEditable) return;
    const verb = e.code === "KeyA" ? "accept" : e.code === "KeyR" ? "reject" : null;
    if (!verb) return;
    const focused = e.target?.closest?.(".offer");
    const target = focused?.dataset.offer ?? [...state.offers].find(([, o]) => !o.closed)?.[0];
    if (target === undefined) return;
    e.preventDefault();
    answer(target, verb);
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
