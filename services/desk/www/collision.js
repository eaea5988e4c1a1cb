// collision.js — the collision warning in the desk console (issue 15): "another agent is viewing
// / replying to this ticket", live. While a ticket is open the page beats
// PUT /v1/tickets/{ref}/viewing {state} every 15 s and at once when the state changes
// ("replying" while the reply box has the focus or text), and DELETEs it when it leaves the
// ticket, signs out or closes. The banner (role="status", aria-live="polite") names the others
// from the answers and from the stream's `viewers` events (desk.js forwards them as
// `wasl:viewers`); ticket.js tells of an opened ticket with `wasl:ticket-opened`. Names go in
// with textContent, each in a <bdi>. docs/desk.md, "Collision".
"use strict";

(() => {
  const BEAT_MS = 15000;
  const WORDS = {
    ar: { viewing: "يطّلع على هذه التذكرة أيضًا:", replying: "يكتب ردًّا الآن:", sep: "، " },
    en: { viewing: "Also viewing this ticket:", replying: "Writing a reply now:", sep: ", " },
  };
  const CHECK_MS = 1000;
  const st = { me: null, ref: null, viewers: [], beats: null, checks: null, sent: null,
               hidden: null };
  const $ = (id) => document.getElementById(id);
  const { lang } = window.WaslUI; // common.js

  function path(ref) { return `/v1/tickets/${encodeURIComponent(ref)}/viewing`; }

  async function call(method, ref, body, keepalive) {
    const h = { Accept: "application/json", "X-CSRF-Token": st.me?.csrf || "" };
    if (body !== undefined) h["Content-Type"] = "application/json";
    const r = await fetch(path(ref), {
      method, headers: h, credentials: "same-origin", cache: "no-store", keepalive: !!keepalive,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return r.status === 200 ? r.json() : { status: r.status };
  }

  // "replying" while the reply box has the focus or holds text (a composed reply not yet sent).
  function wanted() {
    const box = $("tk-reply");
    return box && (document.activeElement === box || box.value.trim() !== "") ? "replying" : "viewing";
  }

  async function beat(force) {
    const ref = st.ref;
    if (!ref || !st.me) return;
    const state = wanted();
    if (!force && state === st.sent) return;
    st.sent = state;
    try {
      const r = await call("PUT", ref, { state });
      if (ref !== st.ref) return;
      if (Array.isArray(r.viewers)) show(r.viewers, "beat");
      // No longer ours to read (the desk took us off) or gone: stop beating.
      else if (r.status === 403 || r.status === 404) stop();
    } catch (_) { /* the next beat tries again */ }
  }

  function stop() {
    st.ref = null;
    st.sent = null;
    clearInterval(st.beats);
    clearInterval(st.checks);
    st.beats = st.checks = null;
    show([]);
  }

  function leave(keepalive) {
    const ref = st.ref;
    stop();
    if (!ref || !st.me) return Promise.resolve();
    if (keepalive) st.hidden = ref;
    return call("DELETE", ref, undefined, keepalive).catch(() => {});
  }

  function enter(ref, viewers) {
    if (ref !== st.ref) {
      if (st.ref) leave(false);
      st.ref = ref;
      st.beats = setInterval(() => beat(true), BEAT_MS);
      // A local look each second (no request unless the state changed): a canned reply filled
      // in, or the box emptied after sending, change it without an input event.
      st.checks = setInterval(() => beat(false), CHECK_MS);
      beat(true);
    }
    if (Array.isArray(viewers)) show(viewers, "view");
  }

  // The banner: one line for those viewing, one (amber) for those writing a reply. `from`
  // (beat, view, event) is kept on it: the browser test tells a live event from a beat's answer.
  function show(viewers, from) {
    st.viewers = viewers.filter((v) => v && v.agent !== st.me?.agent);
    const box = $("tk-viewers");
    if (!box) return;
    box.replaceChildren();
    if (from) box.dataset.from = from;
    for (const state of ["replying", "viewing"]) {
      const who = st.viewers.filter((v) => v.state === state);
      if (!who.length) continue;
      const line = document.createElement("p");
      line.className = `collision-${state}`;
      line.dataset.state = state;
      line.append(document.createTextNode(`${WORDS[lang()][state]} `));
      who.forEach((v, i) => {
        if (i) line.append(document.createTextNode(WORDS[lang()].sep));
        const b = document.createElement("bdi");
        b.className = "viewer";
        b.dataset.agent = v.agent;
        b.textContent = v.name || v.agent;
        line.append(b);
      });
      box.append(line);
    }
    box.hidden = st.viewers.length === 0;
  }

  document.addEventListener("wasl:signed-in", (e) => { st.me = e.detail; });
  document.addEventListener("wasl:signing-out", (e) => e.detail?.waitFor?.(leave(false)));
  // ticket.js hands the open ticket on (a transfer): leave it while it is still ours to read.
  document.addEventListener("wasl:ticket-leaving", (e) => e.detail?.waitFor?.(leave(false)));
  document.addEventListener("wasl:signed-out", () => { leave(false); st.me = null; });
  document.addEventListener("wasl:ticket-opened", (e) => enter(e.detail.ref, e.detail.viewers));
  document.addEventListener("wasl:viewers", (e) => {
    if (e.detail?.ref === st.ref && Array.isArray(e.detail.viewers)) {
      show(e.detail.viewers, "event");
    }
  });
  // The stream missed events: beat now, the answer brings the set back.
  document.addEventListener("wasl:resync", () => beat(true));
  document.addEventListener("DOMContentLoaded", () => {
    const box = $("tk-reply");
    for (const kind of ["focus", "blur", "input"]) box?.addEventListener(kind, () => beat(false));
    // However the ticket panel gets closed, closing it leaves the ticket.
    const panel = $("ticket");
    if (panel) {
      new MutationObserver(() => { if (panel.hidden && st.ref) leave(false); })
        .observe(panel, { attributes: true, attributeFilter: ["hidden"] });
    }
  });
  window.addEventListener("pagehide", () => leave(true));
  // Back from the browser's page cache with the ticket still shown: on it again.
  window.addEventListener("pageshow", (e) => {
    if (e.persisted && st.hidden && st.me && !$("ticket")?.hidden) enter(st.hidden);
    st.hidden = null;
  });
  new MutationObserver(() => show(st.viewers))
    .observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
})();
