// common.js — what every script of the console shares: the page's language and digits, numbers
// and durations in them, left-to-right isolates, word tables and the JSON API call. Loaded
// first (index.html: `defer` keeps the order), as window.WaslUI. Vanilla ES2020, no build step.
// desk.js owns the language and digit switches and writes them where these read them: the
// <html lang> attribute and localStorage "wasl.desk.digits".
"use strict";

window.WaslUI = (() => {
  // "ar" unless the page says English.
  function lang() { return document.documentElement.lang === "en" ? "en" : "ar"; }

  // The agent's digits: Arabic-Indic ("arab", the default) or Latin ("latn").
  function digits() {
    try { return localStorage.getItem("wasl.desk.digits") === "latn" ? "latn" : "arab"; }
    catch (_) { return "arab"; }
  }

  // A BCP 47 locale for Intl: the language, the `extra` Unicode extension (e.g.
  // "ca-islamic-umalqura"), then the digits.
  function locale(extra) {
    return `${lang() === "ar" ? "ar-SA" : "en-GB"}-u-${extra ? extra + "-" : ""}nu-${digits()}`;
  }

  function num(n) { return new Intl.NumberFormat(locale(), { useGrouping: false }).format(n); }

  // m:ss, or h:mm:ss from an hour on, in the agent's digits (negative counts as 0).
  function duration(totalS) {
    const s = Math.max(0, Math.floor(totalS));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (x) => num(Math.floor(x / 10)) + num(x % 10);
    return h > 0 ? `${num(h)}:${two(m)}:${two(sec)}` : `${num(m)}:${two(sec)}`;
  }

  // An element with a class and text (textContent: never markup from a string).
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A left-to-right isolate for a number, a reference or an address inside Arabic text.
  function bdi(text, cls) {
    const b = el("bdi", cls, String(text ?? ""));
    b.dir = "ltr";
    return b;
  }

  // t(key, vars) over a { ar: {…}, en: {…} } table: the page's language, else Arabic, else the
  // key; "{name}" replaced by vars.name.
  function words(table) {
    return (key, vars) => {
      let s = table[lang()][key] ?? table.ar[key] ?? key;
      for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
      return s;
    };
  }

  // The desk's JSON API: the session cookie, the CSRF token on every change (`csrf`, from
  // GET /v1/me), no cache. Resolves to the parsed body (null when there is none); rejects with
  // an Error carrying .status and .code (the server's error code, else the HTTP status).
  async function api(method, path, body, csrf, headers) {
    const h = { Accept: "application/json", ...(headers || {}) };
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) h["X-CSRF-Token"] = csrf;
    const r = await fetch(path, { method, headers: h, credentials: "same-origin", cache: "no-store",
                                  body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const code = data?.error?.code || String(r.status);
      throw Object.assign(new Error(code), { status: r.status, code });
    }
    return data;
  }

  return Object.freeze({ lang, digits, locale, num, duration, el, bdi, words, api });
})();
