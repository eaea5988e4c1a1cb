// ticket.js — "my work" and the ticket in the desk console (issue 15): the agent's assigned
// tickets with their first-response countdown (amber under 30 minutes, red when overdue), the
// ticket panel (the conversation as text, the history), a reply with canned answers (their
// {ref} filled in), a note, resolve with a wrap-up code, reopen a resolved one, transfer to a
// queue, and — for supervisors — assign to an agent; j/k step through "my work". Every string
// from the server goes in with textContent, every reference and number in a <bdi>.
// docs/desk.md, "Tickets".
"use strict";

(() => {
  const AMBER_S = 30 * 60;
  const WORDS = {
    ar: {
      mywork_title: "أعمالي", mywork_empty: "لا طلبات مسندة إليك.", ticket_title: "الطلب",
      conversation: "المحادثة", canned: "ردّ جاهز", canned_none: "— اختر —",
      reply: "الرد على المستفيد", send: "إرسال الرد", note: "ملاحظة داخلية",
      add_note: "إضافة الملاحظة", wrapup: "رمز الإغلاق",
      resolution: "نص الإفادة للمستفيد (اختياري)", resolve: "إغلاق الطلب", history: "السجل",
      sc_mywork: "أعمالي", sc_reply: "كتابة الرد", sc_note: "كتابة ملاحظة",
      sc_resolve: "إغلاق الطلب", overdue: "متأخر", left: "متبقٍّ للرد الأول:",
      sent: "أُرسل الرد.", already: "أُرسل هذا الرد من قبل.", noted: "أُضيفت الملاحظة.",
      resolved: "أُغلق الطلب.", failed: "تعذّر ذلك ({code}).", in: "وارد", out: "صادر",
      others: "طلبات المستفيد الأخرى", others_empty: "لا طلبات أخرى لهذا الرقم.", restricted: "لدى فريق آخر",
      transfer: "تحويل إلى طابور", reason_opt: "السبب (اختياري)", do_transfer: "تحويل",
      transferred: "حُوِّل الطلب إلى الطابور.", assign: "إسناد إلى موظف", do_assign: "إسناد",
      assigned: "أُسند الطلب إلى الموظف.", sc_next: "الطلب التالي في أعمالي",
      sc_prev: "الطلب السابق في أعمالي", reopen_reason: "سبب إعادة الفتح (اختياري)",
      do_reopen: "إعادة فتح الطلب", reopened: "أُعيد فتح الطلب وعاد إلى التوجيه.",
      st_received: "مستلم", st_classified: "مصنّف", st_routed: "في الانتظار",
      st_assigned: "مُسند", st_answered: "مُجاب", st_resolved: "مغلق", st_closed: "مؤرشف",
    },
    en: {
      mywork_title: "My work", mywork_empty: "Nothing is assigned to you.", ticket_title: "Ticket",
      conversation: "Conversation", canned: "Canned reply", canned_none: "— choose —",
      reply: "Reply to the beneficiary", send: "Send reply", note: "Internal note",
      add_note: "Add note", wrapup: "Wrap-up code",
      resolution: "Resolution for the beneficiary (optional)", resolve: "Resolve", history: "History",
      sc_mywork: "My work", sc_reply: "Write the reply", sc_note: "Write a note",
      sc_resolve: "Resolve the ticket", overdue: "overdue", left: "First response in:",
      sent: "Reply sent.", already: "This reply was already sent.", noted: "Note added.",
      resolved: "Ticket resolved.", failed: "That failed ({code}).", in: "in", out: "out",
      others: "The beneficiary's other tickets", others_empty: "No other tickets from this number.", restricted: "with another team",
      transfer: "Transfer to a queue", reason_opt: "Reason (optional)", do_transfer: "Transfer",
      transferred: "Ticket transferred to the queue.", assign: "Assign to an agent",
      do_assign: "Assign", assigned: "Ticket assigned to the agent.",
      sc_next: "Next ticket in my work", sc_prev: "Previous ticket in my work",
      reopen_reason: "Why reopen (optional)", do_reopen: "Reopen the ticket",
      reopened: "Ticket reopened; it goes back to routing.",
      st_received: "received", st_classified: "classified", st_routed: "waiting",
      st_assigned: "assigned", st_answered: "answered", st_resolved: "resolved", st_closed: "closed",
    },
  };
  const st = { me: null, work: [], fetchedMs: 0, ticket: null, replies: [], codes: [],
               key: null, tick: null, queues: [], agents: [] };
  const $ = (id) => document.getElementById(id);

  function lang() { return document.documentElement.lang === "en" ? "en" : "ar"; }
  function digits() {
    try { return localStorage.getItem("wasl.desk.digits") === "latn" ? "latn" : "arab"; }
    catch (_) { return "arab"; }
  }
  function t(key, vars) {
    let s = WORDS[lang()][key] ?? WORDS.ar[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
    return s;
  }
  function num(n) {
    return new Intl.NumberFormat(`${lang() === "ar" ? "ar-SA" : "en-GB"}-u-nu-${digits()}`,
                                 { useGrouping: false }).format(n);
  }
  // A moment of the conversation or history: Hijri (the calendar asked for explicitly: a bare
  // ar-SA prints Gregorian in some engines) with the time, then Gregorian; Riyadh time.
  function stamp(iso) {
    const ms = Date.parse(iso);
    if (!Number.isFinite(ms)) return String(iso ?? "");
    const loc = (ca) => `${lang() === "ar" ? "ar-SA" : "en-GB"}-u-ca-${ca}-nu-${digits()}`;
    const opts = { timeZone: "Asia/Riyadh", day: "numeric", month: "short", year: "numeric" };
    const h = new Intl.DateTimeFormat(loc("islamic-umalqura"),
                                      { ...opts, hour: "2-digit", minute: "2-digit" }).format(ms);
    return `${h} · ${new Intl.DateTimeFormat(loc("gregory"), opts).format(ms)}`;
  }
  function moment(iso) {
    const b = bdi(stamp(iso), "num");
    b.dir = "auto"; // words of the page's language, not a Latin number
    b.title = iso || "";
    return b;
  }
  function clock(totalS) {
    const s = Math.abs(Math.floor(totalS));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (x) => num(Math.floor(x / 10)) + num(x % 10);
    return `${totalS < 0 ? "-" : ""}${num(h)}:${two(m)}:${two(sec)}`;
  }
  function bdi(text, cls) {
    const b = document.createElement("bdi");
    b.dir = "ltr";
    if (cls) b.className = cls;
    b.textContent = text;
    return b;
  }
  function say(text) { const n = $("notice"); if (n) n.textContent = text; }

  async function api(method, path, body, headers) {
    const h = { Accept: "application/json", ...(headers || {}) };
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (method !== "GET" && st.me?.csrf) h["X-CSRF-Token"] = st.me.csrf;
    const r = await fetch(path, { method, headers: h, credentials: "same-origin", cache: "no-store",
                                  body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const e = new Error(data?.error?.code || String(r.status));
      e.status = r.status;
      e.code = data?.error?.code || String(r.status);
      throw e;
    }
    return data;
  }

  function translate() {
    for (const el of document.querySelectorAll("[data-tk]")) el.textContent = t(el.dataset.tk);
  }

  // ---- my work ---------------------------------------------------------------------------
  async function loadWork() {
    try {
      st.work = (await api("GET", "/v1/me/tickets")).tickets || [];
      st.fetchedMs = Date.now();
    } catch (_) { st.work = []; }
    renderWork();
  }

  function renderWork() {
    const list = $("mywork-list");
    list.replaceChildren();
    $("mywork-empty").hidden = st.work.length > 0;
    for (const w of st.work) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "mywork-item";
      b.dataset.ticket = w.ticket;
      const subject = document.createElement("span");
      subject.dir = "auto";
      subject.textContent = w.subject || "";
      const left = bdi("", "sla-remaining num");
      left.setAttribute("role", "timer");
      b.append(bdi(w.ticket, "ref"), subject, left);
      b.addEventListener("click", () => openTicket(w.ticket));
      li.append(b);
      list.append(li);
    }
    tickWork();
  }

  function tickWork() {
    const gone = (Date.now() - st.fetchedMs) / 1000;
    for (const b of document.querySelectorAll("#mywork-list .mywork-item")) {
      const w = st.work.find((x) => x.ticket === b.dataset.ticket);
      const el = b.querySelector(".sla-remaining");
      if (!w || w.first_response_left_s == null) { el.textContent = ""; continue; }
      const left = w.first_response_left_s - gone;
      el.textContent = left < 0 ? `${t("overdue")} ${clock(left)}` : clock(left);
      b.classList.toggle("sla-red", left < 0);
      b.classList.toggle("sla-amber", left >= 0 && left < AMBER_S);
    }
  }

  // ---- the ticket ------------------------------------------------------------------------
  async function openTicket(ref) {
    try {
      st.ticket = await api("GET", `/v1/tickets/${encodeURIComponent(ref)}`);
    } catch (e) { say(t("failed", { code: e.code })); return; }
    st.key = null;
    renderTicket();
    $("ticket").hidden = false;
    document.dispatchEvent(new CustomEvent("wasl:ticket-opened",
                                           { detail: { ref, viewers: st.ticket.viewers } }));
    $("ticket").focus();
  }

  function renderTicket() {
    const tk = st.ticket;
    if (!tk) return;
    $("tk-ref").textContent = tk.ticket;
    // The category's words come with the ticket (common/wasl_domain on the server).
    $("tk-category").textContent = tk.category_label?.[lang()] || tk.category || "";
    $("tk-status").textContent = t(`st_${tk.status}`);
    $("tk-contact").textContent = tk.from_phone || tk.from_email || "";
    $("tk-subject").textContent = tk.subject || "";
    $("tk-wrapup-code").textContent = tk.wrapup_code || "";
    $("tk-wrapup-shown").hidden = !tk.wrapup_code;
    $("tk-reopen-form").hidden = !["resolved", "closed"].includes(tk.status);
    const msgs = $("tk-messages");
    msgs.replaceChildren();
    for (const m of tk.messages || []) {
      const li = document.createElement("li");
      li.className = m.direction === "out" ? "out" : "in";
      const head = document.createElement("div");
      head.className = "muted";
      head.textContent = `${t(m.direction === "out" ? "out" : "in")} · ${m.channel} · `;
      head.append(moment(m.at));
      const body = document.createElement("div");
      body.dir = "auto";
      body.className = "tk-text";
      body.textContent = m.text;
      li.append(head, body);
      msgs.append(li);
    }
    const hist = $("tk-history");
    hist.replaceChildren();
    for (const e of tk.history || []) {
      const li = document.createElement("li");
      li.dataset.kind = e.kind;
      li.append(moment(e.at), document.createTextNode(` ${e.kind} · ${e.actor}`));
      const text = e.data?.text ?? e.data?.resolution;
      if (text) {
        const d = document.createElement("div");
        d.dir = "auto";
        d.textContent = text;
        li.append(d);
      }
      hist.append(li);
    }
    renderOthers(tk.other_tickets);
  }

  // The beneficiary's other tickets by phone (GET /v1/tickets/{ref}'s other_tickets: open, or
  // changed in the last 30 days), each opening its own view.
  function renderOthers(list) {
    const ul = $("tk-others");
    if (!ul) return;
    ul.replaceChildren();
    const others = Array.isArray(list) ? list : [];
    $("tk-others-empty").hidden = others.length > 0;
    for (const o of others) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "pop-ticket";
      b.dataset.ticket = o.ticket;
      const subject = document.createElement("span");
      subject.className = "subject";
      subject.dir = "auto";
      subject.textContent = o.readable ? o.subject || "" : t("restricted");
      const label = o.category_label?.[lang()] || "";
      b.append(bdi(o.ticket, "ref"), ` ${t(`st_${o.status}`)}${label ? " · " + label : ""} — `, subject);
      // Not the reader's to open (another queue's, or another agent's): listed, not linked.
      if (o.readable) b.addEventListener("click", () => openTicket(o.ticket));
      else b.disabled = true;
      const li = document.createElement("li");
      li.append(b);
      ul.append(li);
    }
  }

  function renderChoices() {
    const canned = $("tk-canned");
    const keep = canned.value;
    canned.replaceChildren(canned.options[0] || document.createElement("option"));
    canned.options[0].value = "";
    canned.options[0].textContent = t("canned_none");
    for (const r of st.replies) {
      const o = document.createElement("option");
      o.value = r.id;
      o.textContent = r.title[lang()] || r.title.ar;
      canned.append(o);
    }
    canned.value = keep;
    const wrap = $("tk-wrapup");
    const keepW = wrap.value;
    wrap.replaceChildren();
    for (const c of st.codes) {
      const o = document.createElement("option");
      o.value = c;
      o.textContent = c;
      wrap.append(o);
    }
    if (keepW) wrap.value = keepW;
  }

  function fillCanned() {
    const r = st.replies.find((x) => x.id === $("tk-canned").value);
    if (!r || !st.ticket) return;
    const text = r.text[st.ticket.language === "en" ? "en" : "ar"];
    $("tk-reply").value = text.split("{ref}").join(st.ticket.ticket);
    st.key = null;
  }

  // close: the action hands the ticket on (a transfer) — the panel closes instead of reading
  // a ticket that may no longer be ours to read.
  async function act(path, body, headers, done, close) {
    const ref = st.ticket?.ticket;
    if (!ref) return null;
    try {
      const r = await api("POST", `/v1/tickets/${encodeURIComponent(ref)}/${path}`, body, headers);
      say(done(r));
      if (close) { st.ticket = null; $("ticket").hidden = true; }
      await Promise.all([close ? null : openTicket(ref), loadWork()]);
      return r;
    } catch (e) {
      say(t("failed", { code: e.code }));
      return null;
    }
  }

  async function sendReply(ev) {
    ev.preventDefault();
    const text = $("tk-reply").value.trim();
    if (!text) return;
    // One key per composed reply: a double click or a retry sends it once.
    st.key = st.key || (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
    $("tk-send").disabled = true;
    const r = await act("reply", { text }, { "Idempotency-Key": st.key },
                        (x) => t(x.duplicate ? "already" : "sent"));
    $("tk-send").disabled = false;
    if (r) { $("tk-reply").value = ""; $("tk-canned").value = ""; st.key = null; }
  }

  async function addNote(ev) {
    ev.preventDefault();
    const text = $("tk-note").value.trim();
    if (!text) return;
    if (await act("notes", { text }, null, () => t("noted"))) $("tk-note").value = "";
  }

  async function resolve(ev) {
    ev.preventDefault();
    const body = { wrapup: $("tk-wrapup").value };
    const resolution = $("tk-resolution").value.trim();
    if (resolution) body.resolution = resolution;
    if (await act("resolve", body, null, () => t("resolved"))) $("tk-resolution").value = "";
  }

  // ---- transfer and (supervisors) assign ---------------------------------------------------
  // The queues a transfer is accepted to (GET /v1/queues); for supervisors and admins the
  // enabled agents from the wallboard (GET /v1/wallboard), to give the ticket to one of them.
  async function loadPickers() {
    try { st.queues = (await api("GET", "/v1/queues")).queues || []; } catch (_) { st.queues = []; }
    const boss = ["supervisor", "admin"].includes(st.me?.role);
    st.agents = [];
    if (boss) {
      try { st.agents = (await api("GET", "/v1/wallboard")).agents || []; } catch (_) { st.agents = []; }
    }
    $("tk-assign-form").hidden = !boss;
    renderPickers();
  }

  function renderPickers() {
    const fill = (sel, items) => {
      const keep = sel.value;
      sel.replaceChildren(...items.map(([value, text]) => {
        const o = document.createElement("option");
        o.value = value;
        o.textContent = text;
        return o;
      }));
      if (items.some(([v]) => v === keep)) sel.value = keep;
    };
    fill($("tk-queue"), st.queues.map((q) => [q, q]));
    fill($("tk-assign-agent"), st.agents.map((a) => [a.agent, `${a.name} (${a.agent})`]));
  }

  async function transfer(ev) {
    ev.preventDefault();
    const body = { queue: $("tk-queue").value };
    if (!body.queue) return;
    const reason = $("tk-transfer-reason").value.trim();
    if (reason) body.reason = reason;
    if (await handOn("transfer", body, "transferred")) $("tk-transfer-reason").value = "";
  }

  // A transfer or a reopening hands the ticket on (unassigned, maybe not ours to read any
  // more): collision.js leaves it first, while it still is, and the panel closes after.
  async function handOn(path, body, doneKey) {
    const ref = st.ticket?.ticket;
    const waits = [];
    document.dispatchEvent(new CustomEvent("wasl:ticket-leaving",
                                           { detail: { ref, waitFor: (p) => waits.push(p) } }));
    await Promise.allSettled(waits);
    const r = await act(path, body, null, () => t(doneKey), true);
    if (!r && ref) openTicket(ref); // refused: still ours, and collision.js enters it again
    return r;
  }

  async function reopen(ev) {
    ev.preventDefault();
    const body = {};
    const reason = $("tk-reopen-reason").value.trim();
    if (reason) body.reason = reason;
    if (await handOn("reopen", body, "reopened")) $("tk-reopen-reason").value = "";
  }

  async function assignTo(ev) {
    ev.preventDefault();
    const body = { agent: $("tk-assign-agent").value };
    if (!body.agent) return;
    const reason = $("tk-assign-reason").value.trim();
    if (reason) body.reason = reason;
    if (await act("assign", body, null, () => t("assigned"))) $("tk-assign-reason").value = "";
  }

  // j / k: the next or previous ticket of "my work" (the first when none is open).
  function step(by) {
    if (!st.work.length) return;
    const at = st.work.findIndex((w) => w.ticket === st.ticket?.ticket);
    const next = at < 0 ? 0 : Math.min(Math.max(at + by, 0), st.work.length - 1);
    openTicket(st.work[next].ticket);
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || !st.me) return;
    const tag = e.target?.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || e.target?.isContentEditable) return;
    if (e.code === "KeyJ" || e.code === "KeyK") {
      e.preventDefault();
      step(e.code === "KeyJ" ? 1 : -1);
      return;
    }
    const target = { KeyM: "mywork", KeyY: "tk-reply", KeyN: "tk-note", KeyD: "tk-wrapup" }[e.code];
    if (!target || (target !== "mywork" && $("ticket").hidden)) return;
    e.preventDefault();
    $(target).focus();
  }

  document.addEventListener("wasl:signed-in", async (e) => {
    st.me = e.detail;
    translate();
    try {
      const r = await api("GET", "/v1/replies");
      st.replies = r.replies || [];
      st.codes = r.wrapup_codes || [];
    } catch (_) { st.replies = []; st.codes = []; }
    renderChoices();
    await Promise.all([loadWork(), loadPickers()]);
    clearInterval(st.tick);
    st.tick = setInterval(tickWork, 1000);
  });
  document.addEventListener("wasl:signed-out", () => {
    st.me = null;
    st.ticket = null;
    st.work = [];
    st.agents = [];
    clearInterval(st.tick);
    $("ticket").hidden = true;
    $("tk-assign-form").hidden = true;
    renderWork();
  });
  document.addEventListener("wasl:work", () => { if (st.me) loadWork(); });
  // screenpop.js (one of the caller's tickets) and wallboard.js (a supervisor opens a ticket of
  // one agent's work).
  document.addEventListener("wasl:open-ticket", (e) => {
    if (st.me && e.detail?.ticket) openTicket(e.detail.ticket);
  });
  document.addEventListener("wasl:accepted", (e) => {
    loadWork();
    if (e.detail?.ticket) openTicket(e.detail.ticket);
  });
  document.addEventListener("DOMContentLoaded", () => {
    $("tk-canned").addEventListener("change", fillCanned);
    $("tk-reply").addEventListener("input", () => { st.key = null; });
    $("tk-reply-form").addEventListener("submit", sendReply);
    $("tk-note-form").addEventListener("submit", addNote);
    $("tk-resolve-form").addEventListener("submit", resolve);
    $("tk-transfer-form").addEventListener("submit", transfer);
    $("tk-assign-form").addEventListener("submit", assignTo);
    $("tk-reopen-form").addEventListener("submit", reopen);
    document.addEventListener("keydown", onKey);
  });
  new MutationObserver(() => { translate(); renderChoices(); renderWork(); renderTicket(); })
    .observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  document.addEventListener("change", (e) => { if (e.target?.id === "digits") tickWork(); });
})();
