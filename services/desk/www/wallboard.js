// wallboard.js — the supervisor's wallboard in the desk console (issue 15): per queue and per
// agent, from GET /v1/wallboard, fetched again on each "wallboard" event of the stream (the
// desk sends supervisors at most one a second; desk.js relays it as "wasl:wallboard"). One
// agent's work (GET /v1/agents/{id}/tickets) — each ticket opened in the panel or given to
// another agent (POST /v1/tickets/{ref}/assign) — and force-offline (POST …/force-offline).
// Shown to supervisors and admins only; the server refuses agents anyway (403). Every string
// from the server goes in with textContent, every number in a <bdi>. docs/desk.md, "Wallboard".
"use strict";

(() => {
  const REFETCH_MIN_MS = 250; // a burst of events refetches once
  const WORDS = {
    ar: {
      wb_title: "لوحة المتابعة", wb_today: "اليوم:", wb_queues: "الطوابير", wb_agents: "الموظفون",
      q_queue: "الطابور", q_waiting: "في الانتظار", q_oldest: "أقدم انتظار",
      q_in_service: "قيد الخدمة", q_sla: "الالتزام بالرد الأول اليوم",
      q_abandoned: "مكالمات متروكة اليوم", q_csat: "الرضا اليوم", q_wrapup: "رموز الإغلاق اليوم",
      a_agent: "الموظف", a_state: "الحالة", a_in_state: "المدة في الحالة",
      a_in_service: "قيد الخدمة", a_offers: "عروض", a_actions: "إجراءات",
      work: "أعماله", force_offline: "إخراجه من الخط", work_title: "أعمال الموظف",
      work_empty: "لا أعمال قيد الخدمة ولا عروض.", updated: "آخر تحديث:",
      p_available: "متاح", p_busy: "مشغول", p_away: "بعيد", p_offline: "غير متصل",
      none: "—", forced: "أُخرج الموظف من الخط وسُحبت عروضه.", failed: "تعذّر ذلك ({code}).",
      offer: "عرض", responses: "ردود", open: "فتح", move_to: "إسناده إلى",
      move: "إسناد", moved: "أُسند الطلب إلى الموظف.",
    },
    en: {
      wb_title: "Wallboard", wb_today: "Today:", wb_queues: "Queues", wb_agents: "Agents",
      q_queue: "Queue", q_waiting: "Waiting", q_oldest: "Oldest wait",
      q_in_service: "In service", q_sla: "First response SLA today",
      q_abandoned: "Abandoned calls today", q_csat: "CSAT today", q_wrapup: "Wrap-up codes today",
      a_agent: "Agent", a_state: "State", a_in_state: "Time in state",
      a_in_service: "In service", a_offers: "Offers", a_actions: "Actions",
      work: "Work", force_offline: "Force offline", work_title: "Agent's work",
      work_empty: "Nothing in service and no offers.", updated: "Updated:",
      p_available: "Available", p_busy: "Busy", p_away: "Away", p_offline: "Offline",
      none: "—", forced: "The agent was taken offline and their offers withdrawn.",
      failed: "That failed ({code}).", offer: "offer", responses: "replies", open: "Open",
      move_to: "Assign to", move: "Assign", moved: "Ticket assigned to the agent.",
    },
  };
  const st = { me: null, board: null, fetchedMs: 0, timer: null, tick: null, inFlight: false };
  const $ = (id) => document.getElementById(id);
  const { lang, digits, locale, num, duration } = window.WaslUI; // common.js
  const t = window.WaslUI.words(WORDS);
  const api = (method, path, body) => window.WaslUI.api(method, path, body, st.me?.csrf);
  // A cell holding one number (or a dash) in its own left-to-right isolate.
  const bdi = (text, cls) => window.WaslUI.bdi(text, `num ${cls || ""}`.trim());

  function two(x) {
    return new Intl.NumberFormat(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(x);
  }
  function day(date, extra, month) {
    return new Intl.DateTimeFormat(locale(extra), {
      timeZone: "Asia/Riyadh", day: "numeric", month, year: "numeric" }).format(date);
  }

  function cell(tag, ...children) {
    const c = document.createElement(tag);
    c.append(...children);
    return c;
  }

  function words() {
    for (const el of document.querySelectorAll("#wallboard [data-wb]")) el.textContent = t(el.dataset.wb);
  }

  function queueRow(q) {
    const tr = document.createElement("tr");
    const sla = q.sla_first_response || {};
    const slaText = sla.percent === null || sla.percent === undefined ? t("none")
      : `${num(sla.percent)}${lang() === "en" ? "%" : "٪"} (${num(sla.met)}/${num(sla.due)})`;
    const csat = q.csat || {};
    const th = cell("th", cell("bdi", String(q.queue ?? "")));
    th.scope = "row";
    tr.append(th,
      cell("td", bdi(num(q.waiting ?? 0), "waiting")),
      cell("td", bdi(q.oldest_wait_s === null ? t("none") : duration(q.oldest_wait_s), "oldest")),
      cell("td", bdi(num(q.in_service ?? 0), "in-service")),
      cell("td", bdi(slaText, "sla")),
      cell("td", bdi(num(q.abandoned_calls ?? 0), "abandoned")),
      cell("td", bdi(csat.average ? `${two(Number(csat.average))} (${num(csat.responses)} ${t("responses")})`
        : t("none"), "csat")),
      wrapupCell(q.wrapup));
    tr.dataset.queue = String(q.queue ?? "");
    return tr;
  }

  // Today's resolutions by wrap-up code: "code n" pairs, each code and count in an isolate.
  function wrapupCell(counts) {
    const td = document.createElement("td");
    td.className = "wrapup";
    const pairs = Object.entries(counts && typeof counts === "object" ? counts : {});
    if (!pairs.length) td.append(bdi(t("none")));
    pairs.forEach(([code, n], i) => {
      const item = document.createElement("span");
      item.className = "wrapup-code";
      item.dataset.code = code;
      item.append(cell("bdi", code), " ", bdi(num(Number(n) || 0)));
      td.append(...(i ? [lang() === "ar" ? "، " : ", "] : []), item);
    });
    return td;
  }

  function agentRow(a) {
    const tr = document.createElement("tr");
    tr.dataset.agent = String(a.agent ?? "");
    const th = cell("th", cell("bdi", String(a.name ?? a.agent ?? "")), " ",
      Object.assign(bdi(`(${a.agent})`), { className: "muted" }));
    th.scope = "row";
    const state = cell("td", t(`p_${a.presence}`) || String(a.presence));
    state.className = `state ${String(a.presence)}`;
    const since = Date.parse(a.since ?? "");
    const inState = bdi(Number.isFinite(since) ? duration((Date.now() - since) / 1000) : t("none"),
      "in-state");
    if (Number.isFinite(since)) inState.dataset.since = String(since);
    const work = document.createElement("button");
    work.type = "button";
    work.textContent = t("work");
    work.addEventListener("click", () => showWork(a.agent, a.name));
    const actions = cell("td", work);
    if (a.presence !== "offline" && a.agent !== st.me?.agent) {
      const off = document.createElement("button");
      off.type = "button";
      off.className = "force-offline";
      off.textContent = t("force_offline");
      off.addEventListener("click", () => forceOffline(a.agent));
      actions.append(" ", off);
    }
    tr.append(th, state, cell("td", inState), cell("td", bdi(num(a.in_service ?? 0), "in-service")),
      cell("td", bdi(num(a.offers ?? 0), "offers")), actions);
    return tr;
  }

  function render() {
    const b = st.board;
    if (!b) return;
    words();
    const now = new Date();
    $("wb-day").textContent = `${day(now, "ca-islamic-umalqura", "long")} — ${day(now, "ca-gregory", "short")}`;
    $("wb-queues-body").replaceChildren(...(b.queues || []).map(queueRow));
    $("wb-agents-body").replaceChildren(...(b.agents || []).map(agentRow));
    $("wb-updated").replaceChildren(t("updated"), " ", bdi(new Intl.DateTimeFormat(locale(), {
      timeZone: "Asia/Riyadh", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .format(new Date(st.fetchedMs))));
    document.body.dataset.wallboardFetches = String(Number(document.body.dataset.wallboardFetches || 0) + 1);
  }

  function tickStates() {
    for (const el of document.querySelectorAll("#wb-agents-body [data-since]")) {
      el.textContent = duration((Date.now() - Number(el.dataset.since)) / 1000);
    }
  }

  async function load() {
    if (!st.me || st.inFlight) { schedule(); return; }
    st.inFlight = true;
    try {
      st.board = await api("GET", "/v1/wallboard");
      st.fetchedMs = Date.now();
      render();
    } catch (_) { /* the next event tries again; a 401 signs the page out through desk.js */ }
    st.inFlight = false;
  }

  function schedule() {
    clearTimeout(st.timer);
    st.timer = setTimeout(load, REFETCH_MIN_MS);
  }

  async function showWork(agent, name) {
    try {
      const r = await api("GET", `/v1/agents/${encodeURIComponent(agent)}/tickets`);
      const list = $("wb-work-list");
      const items = (r.tickets || []).map((w) => {
        const li = document.createElement("li");
        li.append(bdi(String(w.ticket ?? "")), " — ", String(w.status ?? ""),
          w.offer ? ` (${t("offer")})` : "", " ", cell("bdi", String(w.queue ?? "")), " ",
          Object.assign(document.createElement("span"), { dir: "auto", textContent: String(w.subject ?? "") }));
        li.dataset.ticket = String(w.ticket ?? "");
        if (!w.offer && w.status === "assigned") li.append(" ", ...workActions(w.ticket, agent));
        return li;
      });
      list.replaceChildren(...items);
      $("wb-work-empty").hidden = items.length > 0;
      $("wb-work-who").replaceChildren(cell("bdi", String(name ?? agent)));
      $("wb-work").hidden = false;
      $("wb-work").focus();
    } catch (e) {
      $("notice").textContent = t("failed", { code: e.code });
    }
  }

  // On a ticket of one agent's work: open it in the ticket panel (ticket.js), or give it to
  // another enabled agent (POST /v1/tickets/{ref}/assign).
  function workActions(ref, owner) {
    const open = document.createElement("button");
    open.type = "button";
    open.className = "wb-open";
    open.textContent = t("open");
    open.addEventListener("click", () =>
      document.dispatchEvent(new CustomEvent("wasl:open-ticket", { detail: { ticket: ref } })));
    const label = document.createElement("label");
    const pick = document.createElement("select");
    pick.className = "wb-move-to";
    pick.id = `wb-move-${ref}`;
    label.htmlFor = pick.id;
    label.textContent = t("move_to");
    for (const a of st.board?.agents || []) {
      if (a.agent === owner) continue;
      const o = document.createElement("option");
      o.value = a.agent;
      o.textContent = `${a.name} (${a.agent})`;
      pick.append(o);
    }
    const move = document.createElement("button");
    move.type = "button";
    move.className = "wb-move";
    move.textContent = t("move");
    move.addEventListener("click", () => reassign(ref, pick.value, owner));
    return [open, " ", label, " ", pick, " ", move];
  }

  async function reassign(ref, agent, owner) {
    if (!agent) return;
    try {
      await api("POST", `/v1/tickets/${encodeURIComponent(ref)}/assign`, { agent });
      $("notice").textContent = t("moved");
      const name = (st.board?.agents || []).find((a) => a.agent === owner)?.name;
      await showWork(owner, name);
      schedule();
    } catch (e) {
      $("notice").textContent = t("failed", { code: e.code });
    }
  }

  async function forceOffline(agent) {
    try {
      await api("POST", `/v1/agents/${encodeURIComponent(agent)}/force-offline`);
      $("notice").textContent = t("forced");
      schedule();
    } catch (e) {
      $("notice").textContent = t("failed", { code: e.code });
    }
  }

  document.addEventListener("wasl:signed-in", (e) => {
    st.me = e.detail;
    const show = ["supervisor", "admin"].includes(st.me?.role);
    $("wallboard").hidden = !show;
    if (!show) { st.me = null; return; }
    load();
    clearInterval(st.tick);
    st.tick = setInterval(tickStates, 1000);
  });
  document.addEventListener("wasl:signed-out", () => {
    st.me = null;
    st.board = null;
    clearInterval(st.tick);
    $("wallboard").hidden = true;
    $("wb-work").hidden = true;
  });
  document.addEventListener("wasl:wallboard", () => { if (st.me) schedule(); });
  // The language or the digits switched in desk.js: the same board in the new words.
  new MutationObserver(() => render()).observe(document.documentElement, { attributes: true,
    attributeFilter: ["lang"] });
  document.addEventListener("change", (e) => { if (e.target?.id === "digits") render(); });
})();
