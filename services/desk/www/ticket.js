// ticket.js — "my work" and the ticket in the desk console (issue 15): the agent's assigned
// tickets with their first-response countdown (amber under 30 minutes, red when overdue), the
// ticket panel (the conversation as text, the classification, the history in words with the
// router's explanation), a reply with canned answers (their {ref} filled in), a note, resolve with a wrap-up code, reopen a resolved one, transfer to a
// queue, and — for supervisors — assign to an agent; j/k step through "my work". Every string
// from the server goes in with textContent, every reference and number in a <bdi>.
// docs/desk.md, "Tickets".
"use strict";

(() => {
  const AMBER_S = 30 * 60;
  // The classification block and the history's words (issue 15: "history with route explain,
  // classification and entities"). An event kind not listed here is shown as its code.
  const CLASS_WORDS = {
    ar: {
      classification: "التصنيف", c_category: "الفئة", c_confidence: "درجة الثقة",
      c_priority: "الأولوية", c_language: "اللغة", c_entities: "ما ذكره المستفيد",
      e_case_number: "رقم قضية", e_national_id: "هوية وطنية/إقامة", e_phone: "جوال",
      e_email: "بريد إلكتروني", e_ticket_ref: "رقم طلب", lg_ar: "العربية", lg_en: "الإنجليزية",
      lg_mixed: "مختلطة", none: "لا شيء", because: "السبب:",
      ev_received: "استُلم", "ev_message.received": "رسالة واردة", ev_classified: "صُنِّف",
      ev_routed: "وُجِّه", ev_auto_answered: "أُجيب آليًا", ev_offered: "عُرض على موظف",
      "ev_offer.accepted": "قُبل العرض", "ev_offer.rejected": "رُفض العرض",
      "ev_offer.expired": "انتهى العرض", "ev_offer.withdrawn": "سُحب العرض",
      ev_assigned: "أُسند", ev_transferred: "حُوِّل", ev_note: "ملاحظة", ev_replied: "رُدّ عليه",
      ev_resolved: "أُغلق", ev_reopened: "أُعيد فتحه", ev_escalated: "صُعِّد",
      ev_overflowed: "فاض إلى طابور آخر", "ev_notification.sent": "أُرسل إشعار",
      "ev_csat.received": "وصل تقييم الرضا",
      r_queue: "الطابور", r_rule: "القاعدة", r_rule_line: "السطر {n}", r_default: "الافتراضية",
      r_priority: "الأولوية", r_priority_from: "بعد {p}", r_skills: "المهارات",
      r_sla: "مهلة الرد الأول / الحل", r_hours: "وقت العمل", r_in_hours: "داخل وقت العمل",
      r_out_hours: "خارج وقت العمل", r_agent: "الموظف", r_why: "الطريقة",
      r_candidates: "المرشحون", r_excluded: "استُبعد: {why}", minutes: "{n} دقيقة",
    },
    en: {
      classification: "Classification", c_category: "Category", c_confidence: "Confidence",
      c_priority: "Priority", c_language: "Language", c_entities: "What the beneficiary named",
      e_case_number: "Case number", e_national_id: "National/resident ID", e_phone: "Mobile",
      e_email: "E-mail", e_ticket_ref: "Ticket reference", lg_ar: "Arabic", lg_en: "English",
      lg_mixed: "Mixed", none: "nothing", because: "because:",
      ev_received: "received", "ev_message.received": "message received",
      ev_classified: "classified", ev_routed: "routed", ev_auto_answered: "answered automatically",
      ev_offered: "offered to an agent", "ev_offer.accepted": "offer accepted",
      "ev_offer.rejected": "offer rejected", "ev_offer.expired": "offer expired",
      "ev_offer.withdrawn": "offer withdrawn", ev_assigned: "assigned",
      ev_transferred: "transferred", ev_note: "note", ev_replied: "replied",
      ev_resolved: "resolved", ev_reopened: "reopened", ev_escalated: "escalated",
      ev_overflowed: "overflowed to another queue", "ev_notification.sent": "notification sent",
      "ev_csat.received": "satisfaction rating received",
      r_queue: "Queue", r_rule: "Rule", r_rule_line: "line {n}", r_default: "default",
      r_priority: "Priority", r_priority_from: "from {p}", r_skills: "Skills",
      r_sla: "First response / resolution in", r_hours: "Business hours",
      r_in_hours: "within business hours", r_out_hours: "outside business hours",
      r_agent: "Agent", r_why: "How", r_candidates: "Candidates", r_excluded: "excluded: {why}",
      minutes: "{n} min",
    },
  };
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
      ...CLASS_WORDS.ar,
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
      ...CLASS_WORDS.en,
    },
  };
  const st = { me: null, work: [], fetchedMs: 0, ticket: null, replies: [], codes: [],
               key: null, tick: null, queues: [], agents: [] };
  const $ = (id) => document.getElementById(id);
  const { lang, digits, num, bdi } = window.WaslUI; // common.js
  const t = window.WaslUI.words(WORDS);
  const api = (method, path, body, headers) =>
    window.WaslUI.api(method, path, body, st.me?.csrf, headers);

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
  function say(text) { const n = $("notice"); if (n) n.textContent = text; }

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
    renderClassification(tk);
    renderHistory(tk.history);
    renderOthers(tk.other_tickets);
  }

  // ---- classification and history (issue 15 item 4) -------------------------------------
  // A <dt>/<dd> pair appended to `dl`; `value` is a node or a string (textContent).
  function pair(dl, term, value) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.append(value);
    div.append(dt, dd);
    dl.append(div);
    return dd;
  }

  // The classifier's latest verdict among the history's events (its priority reason).
  function lastClassified(history) {
    const list = Array.isArray(history) ? history : [];
    for (let i = list.length - 1; i >= 0; i--) if (list[i]?.kind === "classified") return list[i].data || {};
    return {};
  }

  // Category, confidence %, priority with the classifier's reason, language, and the entities
  // (national IDs come masked from the server; phones left to right).
  function renderClassification(tk) {
    const dl = $("tk-class");
    if (!dl) return;
    dl.replaceChildren();
    pair(dl, t("c_category"), tk.category_label?.[lang()] || tk.category || "");
    const conf = Number(tk.confidence);
    const cdd = pair(dl, t("c_confidence"), "");
    cdd.className = "tk-confidence";
    if (tk.confidence != null && Number.isFinite(conf)) {
      cdd.append(bdi(new Intl.NumberFormat(`${lang() === "ar" ? "ar-SA" : "en-GB"}-u-nu-${digits()}`,
                                           { style: "percent", maximumFractionDigits: 0 })
        .format(Math.min(Math.max(conf, 0), 1)), "num"));
    }
    const pdd = pair(dl, t("c_priority"), tk.priority_label?.[lang()] || tk.priority || "");
    const reason = lastClassified(tk.history).priority_reason;
    if (reason) {
      const r = document.createElement("span");
      r.className = "tk-priority-reason muted";
      const why = document.createElement("span");
      why.dir = "auto";
      why.textContent = String(reason);
      r.append(` — ${t("because")} `, why);
      pdd.append(r);
    }
    pair(dl, t("c_language"), tk.language ? t(`lg_${tk.language}`) : "");
    const ents = tk.entities && typeof tk.entities === "object" ? tk.entities : {};
    const edd = pair(dl, t("c_entities"), "");
    const ul = document.createElement("ul");
    ul.className = "tk-entities";
    for (const [kind, values] of Object.entries(ents)) {
      for (const v of Array.isArray(values) ? values : []) {
        const li = document.createElement("li");
        li.dataset.entity = kind;
        li.append(`${t(`e_${kind}`)}: `, bdi(String(v), kind === "email" ? "" : "num"));
        ul.append(li);
      }
    }
    if (ul.childElementCount) edd.append(ul); else edd.textContent = t("none");
  }

  // The history: each event in words (unknown kinds as their code), its actor, its text; the
  // router's explanation of a 'routed' or 'offered' event as words, not JSON.
  function renderHistory(history) {
    const hist = $("tk-history");
    hist.replaceChildren();
    for (const e of Array.isArray(history) ? history : []) {
      const li = document.createElement("li");
      li.dataset.kind = e.kind;
      const kind = WORDS[lang()][`ev_${e.kind}`] ? t(`ev_${e.kind}`) : String(e.kind ?? "");
      const actor = bdi(String(e.actor ?? ""), "");
      actor.dir = "auto";
      li.append(moment(e.at), ` ${kind} · `, actor);
      const text = e.data?.text ?? e.data?.resolution ?? e.data?.reason;
      if (typeof text === "string" && text) {
        const d = document.createElement("div");
        d.dir = "auto";
        d.textContent = text;
        li.append(d);
      }
      if (e.kind === "routed" && e.data) li.append(routeExplain(e.data));
      if (e.kind === "offered" && e.data) li.append(offerExplain(e.data));
      hist.append(li);
    }
  }

  // services/router/decide.c's 'routed' event: queue, rule (with its line), priority (and what
  // it was before the rule), skills, the SLA and business hours.
  function routeExplain(d) {
    const dl = document.createElement("dl");
    dl.className = "tk-explain";
    if (d.queue) pair(dl, t("r_queue"), bdi(String(d.queue), "tk-route-queue")).dir = "auto";
    if (d.rule) {
      const dd = pair(dl, t("r_rule"), "");
      const rule = bdi(d.rule === "default" ? t("r_default") : String(d.rule), "");
      rule.dir = "auto";
      dd.append(rule);
      if (Number(d.rule_line) > 0) dd.append(` (${t("r_rule_line", { n: num(Number(d.rule_line)) })})`);
    }
    if (d.priority) {
      const dd = pair(dl, t("r_priority"), String(d.priority));
      if (d.priority_from && d.priority_from !== d.priority) {
        dd.append(` (${t("r_priority_from", { p: String(d.priority_from) })})`);
      }
    }
    if (Array.isArray(d.skills) && d.skills.length) {
      pair(dl, t("r_skills"), bdi(d.skills.map(String).join("، "), "")).dir = "auto";
    }
    const sla = d.sla_s || {};
    if (sla.first_response != null || sla.resolution != null) {
      const m = (s) => (s == null ? "—" : t("minutes", { n: num(Math.round(Number(s) / 60)) }));
      pair(dl, t("r_sla"), `${m(sla.first_response)} / ${m(sla.resolution)}`);
    }
    if (typeof d.business_hours === "boolean") {
      pair(dl, t("r_hours"), t(d.business_hours ? "r_in_hours" : "r_out_hours"));
    }
    return dl;
  }

  // services/router/offer.c's 'offered' event: the agent, how it was chosen, the candidates
  // left out and why.
  function offerExplain(d) {
    const dl = document.createElement("dl");
    dl.className = "tk-explain";
    if (d.agent) pair(dl, t("r_agent"), bdi(String(d.agent), ""));
    if (d.rule) pair(dl, t("r_why"), bdi(String(d.rule), "")).dir = "auto";
    const out = (Array.isArray(d.candidates) ? d.candidates : []).filter((c) => c?.excluded);
    if (out.length) {
      const ul = document.createElement("ul");
      for (const c of out) {
        const li = document.createElement("li");
        li.append(bdi(String(c.agent ?? ""), ""), ` ${t("r_excluded", { why: String(c.excluded) })}`);
        ul.append(li);
      }
      pair(dl, t("r_candidates"), ul);
    }
    return dl;
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
