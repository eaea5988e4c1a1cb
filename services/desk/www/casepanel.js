// casepanel.js — the case panel of the ticket view (issue 15): when a ticket opens (ticket.js
// tells with `wasl:ticket-opened`) the page asks GET /v1/tickets/{ref}/case and shows the case's
// circuit, status and next hearing — in Hijri (islamic-umalqura asked for explicitly: a bare
// ar-SA prints Gregorian in some engines) and in Gregorian, Riyadh time — the case number in a
// <bdi>. The desk asks caselookup (which audits the lookup, naming the agent) only when the
// ticket carries a verified party; otherwise the panel says why. Text goes in with textContent.
// docs/desk.md, "Case panel".
"use strict";

(() => {
  const WORDS = {
    ar: {
      title: "القضية", number: "رقم القضية", circuit: "الدائرة", status: "الحالة",
      hearing: "الجلسة القادمة", loading: "جارٍ الاستعلام عن القضية…",
      no_party: "لا يُستعلم عن القضية: لا يحمل الطلب طرفًا متحققًا منه (رقم قضية وهوية المرسل).",
      not_found: "لا قضية بهذا الرقم مسجلة لهوية المرسل.",
      locked: "أُوقف الاستعلام مؤقتًا بعد محاولات غير ناجحة.",
      unavailable: "خدمة الاستعلام عن القضايا غير متاحة الآن.", no_hearing: "لا جلسة قادمة",
      failed: "تعذّر عرض القضية ({code}).",
    },
    en: {
      title: "Case", number: "Case number", circuit: "Circuit", status: "Status",
      hearing: "Next hearing", loading: "Looking the case up…",
      no_party: "No lookup: the ticket carries no verified party (a case number and the sender's ID).",
      not_found: "No case with this number is registered to the sender's ID.",
      locked: "Lookups are paused after unsuccessful attempts.",
      unavailable: "Case lookup is unavailable right now.", no_hearing: "No hearing scheduled",
      failed: "The case could not be shown ({code}).",
    },
  };
  const st = { seq: 0, answer: null, state: null };
  const $ = (id) => document.getElementById(id);
  const { lang, digits } = window.WaslUI; // common.js
  const t = window.WaslUI.words(WORDS);

  // The hearing: Hijri with the hour, then Gregorian, both in Riyadh time.
  function hearing(iso) {
    const ms = Date.parse(iso);
    if (!Number.isFinite(ms)) return String(iso ?? "");
    const loc = (ca) => `${lang() === "ar" ? "ar-SA" : "en-GB"}-u-ca-${ca}-nu-${digits()}`;
    const opts = { timeZone: "Asia/Riyadh", weekday: "long", day: "numeric", month: "long",
                   year: "numeric" };
    const h = new Intl.DateTimeFormat(loc("islamic-umalqura"),
                                      { ...opts, hour: "2-digit", minute: "2-digit" }).format(ms);
    const g = new Intl.DateTimeFormat(loc("gregory"), { ...opts, weekday: undefined }).format(ms);
    return { hijri: h, gregorian: g };
  }

  function render() {
    const box = $("tk-case");
    if (!box) return;
    for (const el of box.querySelectorAll("[data-cp]")) el.textContent = t(el.dataset.cp);
    const facts = $("tk-case-facts");
    const c = st.answer?.case;
    facts.hidden = !c;
    $("tk-case-state").textContent = st.state === "ok" ? "" : t(st.state || "loading");
    $("tk-case-state").hidden = st.state === "ok";
    if (!c) return;
    $("tk-case-number").textContent = c.case_number || "";
    $("tk-case-circuit").textContent = c.circuit || "";
    $("tk-case-status").textContent =
      lang() === "ar" ? c.status_ar || c.status || "" : (c.status || "").replaceAll("_", " ");
    const when = $("tk-case-hearing");
    when.replaceChildren();
    if (!c.next_hearing?.utc) {
      when.textContent = t("no_hearing");
      return;
    }
    const h = hearing(c.next_hearing.utc);
    const hijri = document.createElement("bdi");
    hijri.dir = "auto";
    hijri.id = "tk-case-hijri";
    hijri.textContent = h.hijri;
    const greg = document.createElement("bdi");
    greg.dir = "auto";
    greg.id = "tk-case-gregorian";
    greg.textContent = h.gregorian;
    when.title = c.next_hearing.utc;
    when.append(hijri, document.createTextNode(" · "), greg);
  }

  async function load(ref) {
    const mine = ++st.seq; // a later ticket wins over a slow answer for an earlier one
    st.answer = null;
    st.state = "loading";
    $("tk-case").hidden = false;
    render();
    let state, answer = null;
    try {
      const r = await fetch(`/v1/tickets/${encodeURIComponent(ref)}/case`,
                            { headers: { Accept: "application/json" }, credentials: "same-origin",
                              cache: "no-store" });
      answer = await r.json().catch(() => null);
      state = r.ok && answer?.state ? answer.state : null;
      if (!state) st.code = answer?.error?.code || String(r.status);
    } catch (_) { state = null; st.code = "network"; }
    if (mine !== st.seq) return;
    st.answer = answer;
    st.state = state === "ok" || (state && WORDS.en[state]) ? state : "failed";
    render();
    if (st.state === "failed") $("tk-case-state").textContent = t("failed", { code: st.code });
  }

  document.addEventListener("wasl:ticket-opened", (e) => load(e.detail.ref));
  document.addEventListener("wasl:signed-out", () => {
    st.seq++;
    st.answer = null;
    if ($("tk-case")) $("tk-case").hidden = true;
  });
  new MutationObserver(render)
    .observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
})();
