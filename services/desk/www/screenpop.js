// screenpop.js — the screen pop in the desk console (issue 15): a call ringing for the agent
// shows who is calling before they pick up — the caller's number, the queue, the IVR path, the
// caller's open and recent tickets (each opens the ticket view) — with "New ticket" (the call's
// ticket, assigned to the agent, then opened) and Dismiss. It comes from the stream's `call`
// event (desk.js passes it on as "wasl:call") and from GET /v1/me/calls when the page loads or
// the stream resyncs. Every string from the server goes in with textContent, numbers and
// references in <bdi>. docs/desk.md, "Screen pop".
"use strict";

(() => {
  const DISMISSED_KEY = "wasl.desk.calls_dismissed"; // sessionStorage: call ids the agent closed
  const WORDS = {
    ar: {
      incoming: "مكالمة واردة", caller: "المتصل", withheld: "رقم محجوب", queue: "الطابور",
      ivr: "مسار الرد الآلي", ivr_none: "لا اختيارات", tickets: "بلاغات المتصل",
      tickets_hint: "المفتوحة وما تغيّر في آخر {d} يومًا", tickets_none: "لا بلاغات سابقة لهذا الرقم.",
      restricted: "لدى فريق آخر",
      call_ticket: "بلاغ المكالمة:", new_ticket: "بلاغ جديد", open_ticket: "فتح بلاغ المكالمة",
      dismiss: "إغلاق", answered: "رُدّ عليها", made: "أُنشئ البلاغ {ref} وأُسند إليك.",
      found: "للمكالمة بلاغ: {ref}.", failed: "تعذّر ذلك ({code}).",
      st_received: "مستلم", st_classified: "مصنّف", st_routed: "في الانتظار",
      st_assigned: "مُسند", st_answered: "مُجاب", st_resolved: "مغلق", st_closed: "مؤرشف",
    },
    en: {
      incoming: "Incoming call", caller: "Caller", withheld: "Number withheld", queue: "Queue",
      ivr: "IVR path", ivr_none: "no choices", tickets: "Caller's tickets",
      tickets_hint: "open, and changed in the last {d} days", tickets_none: "No earlier tickets from this number.",
      restricted: "with another team",
      call_ticket: "The call's ticket:", new_ticket: "New ticket", open_ticket: "Open the call's ticket",
      dismiss: "Dismiss", answered: "answered", made: "Ticket {ref} made and assigned to you.",
      found: "The call has a ticket: {ref}.", failed: "That failed ({code}).",
      st_received: "received", st_classified: "classified", st_routed: "waiting",
      st_assigned: "assigned", st_answered: "answered", st_resolved: "resolved", st_closed: "closed",
    },
  };
  const st = { me: null, pops: new Map() }; // call id → pop
  const $ = (id) => document.getElementById(id);
  const { lang, digits, num, el, bdi } = window.WaslUI; // common.js
  const t = window.WaslUI.words(WORDS);
  const api = (method, path, body) => window.WaslUI.api(method, path, body, st.me?.csrf);

  // Hijri first (asked for explicitly), as the rest of the console.
  function day(iso) {
    const ms = Date.parse(iso);
    if (!Number.isFinite(ms)) return "";
    return new Intl.DateTimeFormat(
      `${lang() === "ar" ? "ar-SA" : "en-GB"}-u-ca-islamic-umalqura-nu-${digits()}`,
      { timeZone: "Asia/Riyadh", day: "numeric", month: "short", year: "numeric" }).format(ms);
  }
  // A notice naming a ticket, the reference in its own isolate.
  function sayRef(key, ref) {
    const n = $("notice");
    if (!n) return;
    const [before, after = ""] = t(key).split("{ref}");
    n.replaceChildren(before, bdi(ref), after);
  }

  function dismissed() {
    try { return new Set(JSON.parse(sessionStorage.getItem(DISMISSED_KEY) || "[]")); }
    catch (_) { return new Set(); }
  }
  function remember(callId) {
    const all = [...dismissed(), callId].slice(-50);
    try { sessionStorage.setItem(DISMISSED_KEY, JSON.stringify(all)); } catch (_) { /* not kept */ }
  }

  // ---- the pops ----------------------------------------------------------------------------
  function take(pop, quiet) {
    if (!pop || typeof pop.call_id !== "string" || dismissed().has(pop.call_id)) return;
    const had = st.pops.has(pop.call_id);
    st.pops.set(pop.call_id, pop);
    render();
    if (!had && !quiet) focusPop(pop.call_id);
  }

  // A new ring takes the focus (it is an alert dialog) unless the agent is typing.
  function focusPop(callId) {
    const a = document.activeElement;
    const tag = a?.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || a?.isContentEditable) return;
    const card = [...document.querySelectorAll("#screenpop .pop")]
      .find((c) => c.dataset.call === callId);
    card?.querySelector(".pop-main")?.focus();
  }

  // Redrawn whole (a language switch, a pop updated); the focus stays on the same control.
  function render() {
    const box = $("screenpop");
    if (!box) return;
    const f = document.activeElement;
    const callId = f?.closest?.("#screenpop .pop")?.dataset.call;
    const which = f?.dataset?.ticket ? `[data-ticket="${CSS.escape(f.dataset.ticket)}"]`
      : f?.classList?.contains("pop-dismiss") ? ".pop-dismiss" : ".pop-main";
    box.replaceChildren(...[...st.pops.values()].reverse().map(card));
    box.hidden = st.pops.size === 0;
    if (callId !== undefined) {
      const again = [...box.querySelectorAll(".pop")].find((c) => c.dataset.call === callId);
      again?.querySelector(which)?.focus();
    }
  }

  function card(pop) {
    const c = el("section", "card pop");
    const id = `pop-${[...st.pops.keys()].indexOf(pop.call_id)}`;
    c.dataset.call = pop.call_id;
    c.setAttribute("role", "alertdialog");
    c.setAttribute("aria-labelledby", `${id}-title`);
    c.setAttribute("aria-describedby", `${id}-who`);
    const h = el("h2", "pop-title", t("incoming"));
    h.id = `${id}-title`;
    const who = el("p", "pop-who");
    who.id = `${id}-who`;
    who.append(`${t("caller")}: `, pop.from ? bdi(pop.from, "phone") : el("span", "muted", t("withheld")));
    if (pop.event === "call.answered") who.append(" · ", el("span", "muted", t("answered")));
    const facts = el("dl", "pop-facts");
    facts.append(el("dt", null, t("queue")), el("dd", null));
    facts.lastChild.append(pop.queue ? bdi(pop.queue) : "—");
    facts.append(el("dt", null, t("ivr")), ivrPath(pop.ivr));
    c.append(h, who, facts, ticketList(pop), actions(pop));
    c.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); dismiss(pop.call_id); }
    });
    return c;
  }

  // The menus in the order taken, each in its own isolate.
  function ivrPath(menus) {
    const dd = el("dd");
    const list = Array.isArray(menus) ? menus.filter((m) => typeof m === "string") : [];
    if (!list.length) { dd.append(el("span", "muted", t("ivr_none"))); return dd; }
    const ol = el("ol", "pop-ivr");
    for (const m of list) { const li = el("li"); li.append(bdi(m)); ol.append(li); }
    dd.append(ol);
    return dd;
  }

  function ticketList(pop) {
    const wrap = el("div", "pop-tickets");
    const h = el("h3", null, t("tickets"));
    const hint = el("p", "muted", t("tickets_hint", { d: num(pop.tickets_days ?? 30) }));
    wrap.append(h, hint);
    const tickets = Array.isArray(pop.tickets) ? pop.tickets : [];
    if (!tickets.length) { wrap.append(el("p", "muted", t("tickets_none"))); return wrap; }
    const ul = el("ul", "pop-list");
    for (const tk of tickets) {
      const b = el("button", "pop-ticket");
      b.type = "button";
      b.dataset.ticket = tk.ticket;
      // A ticket the agent may not read comes without subject or category: it is listed (the
      // caller has history) but cannot be opened.
      const subject = el("span", "subject", tk.readable ? tk.subject || "" : t("restricted"));
      subject.dir = "auto";
      const label = tk.category_label?.[lang()] || "";
      b.append(bdi(tk.ticket, "ref"), " ", el("span", "status", t(`st_${tk.status}`)),
               label ? " · " : "", label, " — ", subject, " ", bdi(day(tk.updated_at), "num"));
      if (tk.readable) b.addEventListener("click", () => openTicket(tk.ticket));
      else b.disabled = true;
      const li = el("li");
      li.append(b);
      ul.append(li);
    }
    wrap.append(ul);
    return wrap;
  }

  function actions(pop) {
    const row = el("div", "pop-actions");
    if (pop.ticket) {
      const p = el("p", "pop-own");
      p.append(t("call_ticket"), " ", bdi(pop.ticket, "ref"));
      row.append(p);
    }
    const main = el("button", "primary pop-main", pop.ticket ? t("open_ticket") : t("new_ticket"));
    main.type = "button";
    main.addEventListener("click", () => (pop.ticket ? openTicket(pop.ticket) : newTicket(pop, main)));
    const close = el("button", "pop-dismiss", t("dismiss"));
    close.type = "button";
    close.addEventListener("click", () => dismiss(pop.call_id));
    row.append(main, close);
    return row;
  }

  async function newTicket(pop, button) {
    button.disabled = true;
    try {
      const r = await api("POST", `/v1/calls/${encodeURIComponent(pop.call_id)}/ticket`, {});
      pop.ticket = r.ticket;
      sayRef(r.created ? "made" : "found", r.ticket);
      render();
      // ticket.js refreshes "my work" and opens it (as after accepting an offer).
      document.dispatchEvent(new CustomEvent("wasl:accepted", { detail: { ticket: r.ticket } }));
    } catch (e) {
      button.disabled = false;
      const n = $("notice");
      if (n) n.textContent = t("failed", { code: e.code });
    }
  }

  function openTicket(ref) {
    document.dispatchEvent(new CustomEvent("wasl:open-ticket", { detail: { ticket: ref } }));
  }

  function dismiss(callId) {
    remember(callId);
    st.pops.delete(callId);
    render();
    $("main")?.focus();
  }

  async function load() {
    try {
      const r = await api("GET", "/v1/me/calls");
      for (const pop of r?.calls || []) take(pop, true);
    } catch (_) { /* a 401 signs the page out (desk.js) */ }
  }

  document.addEventListener("wasl:signed-in", (e) => { st.me = e.detail; load(); });
  document.addEventListener("wasl:signed-out", () => { st.me = null; st.pops.clear(); render(); });
  document.addEventListener("wasl:call", (e) => take(e.detail, false));
  document.addEventListener("wasl:resync", load);
  new MutationObserver(render)
    .observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  document.addEventListener("change", (e) => { if (e.target?.id === "digits") render(); });
})();
