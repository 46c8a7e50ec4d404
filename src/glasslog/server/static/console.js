/* The supervisor console. The API key is typed into the page, kept in sessionStorage (this tab only) and sent as
 * "Authorization: Bearer" to /v1; it never goes into a URL. Everything is rendered with textContent (no HTML from data). */
(function () {
  "use strict";
  const STORE = "glasslog.console.key";
  const KEY = /^glk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/;
  const $ = (id) => document.getElementById(id);
  const C = (window.GlasslogConsole = { sections: [] });

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  C.el = el;

  function key() { return sessionStorage.getItem(STORE); }

  /* One call to the JSON API with the key; resolves to {ok, status, body}. */
  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + key() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { ok: r.ok, status: r.status, body: data };
  }
  C.api = api;

  function problem(res) {
    const b = res.body || {};
    if (Array.isArray(b.errors) && b.errors.length) return b.errors.map((e) => `${e.field}: ${e.problem}`).join("; ");
    return b.detail || b.title || `HTTP ${res.status}`;
  }
  C.problem = problem;

  function unavailable(container, what) {
    container.replaceChildren(el("p", { class: "hint", text: `${what} are not available on this server yet.` }));
  }
  C.unavailable = unavailable;

  function badge(status, prefix) { return el("span", { class: `badge ${prefix || "status"}-${status}`, text: status }); }
  C.badge = badge;

  // ------------------------------------------------------------ models and the kill switch
  async function loadModels() {
    const box = $("models-console");
    const res = await api("GET", "/v1/models");
    if (!res.ok) { box.replaceChildren(el("p", { class: "field-error", text: "Could not load models: " + problem(res) })); return; }
    const table = el("table", { id: "console-models" },
      el("thead", {}, el("tr", {}, ...["Model", "Status", "Last change", "Change status"].map((h) => el("th", { scope: "col", text: h })))));
    const tbody = el("tbody");
    for (const m of res.body) {
      const last = m.history[m.history.length - 1];
      tbody.append(el("tr", { "data-fingerprint": m.fingerprint },
        el("td", {}, el("a", { href: "/models/" + m.fingerprint, text: `${m.card.name} ${m.card.version}` }), el("br"),
          el("code", { class: "fp", text: m.fingerprint.slice(7, 19) })),
        el("td", {}, badge(m.status)),
        el("td", {}, `${last.time.slice(0, 19).replace("T", " ")} UTC: ${last.reason}`),
        el("td", {}, statusForm(m))));
    }
    table.append(tbody);
    box.replaceChildren(table);
  }

  function statusForm(m) {
    const id = "reason-" + m.fingerprint.slice(7, 19);
    const target = m.status === "active" ? "suspended" : m.status === "suspended" ? "active" : null;
    if (target === null) return el("span", { class: "hint", text: "withdrawn for good" });
    const verb = target === "suspended" ? "Suspend" : "Reinstate";
    const error = el("p", { class: "field-error", role: "alert", hidden: true });
    const reason = el("textarea", { id, rows: "2", maxlength: "2000", "aria-describedby": id + "-h" });
    const form = el("form", { class: "status-form", novalidate: true },
      el("div", { class: "field" }, el("label", { for: id, text: `Reason to ${verb.toLowerCase()} (published)` }), reason,
        el("p", { class: "hint", id: id + "-h", text: "Say why, for the public record." })),
      el("div", { class: "actions" }, el("button", { type: "submit", class: target === "suspended" ? "danger" : "", text: verb })), error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = reason.value.trim();
      if (!text) {
        error.textContent = "Give a reason: it goes on the public record with the status change.";
        error.hidden = false;
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
        return;
      }
      const button = form.querySelector("button");
      button.disabled = true;
      const res = await api("POST", `/v1/models/${m.fingerprint}/status`, { status: target, reason: text });
      button.disabled = false;
      if (!res.ok) {
        error.textContent = `${verb} failed: ${problem(res)}`;
        error.hidden = false;
        return;
      }
      announce(`${m.card.name} ${m.card.version} is now ${res.body.status} (log entry ${res.body.entry_index}).`);
      await loadModels();
    });
    return form;
  }

  function announce(text) {
    const p = $("whoami");
    p.textContent = text;
  }
  C.announce = announce;

  // ------------------------------------------------------------ sign in / out
  async function probe() {
    // Any supervisor-only read tells a supervisor's key from others; fall back to checking the key exists.
    for (const path of ["/v1/triage", "/v1/findings"]) {
      const res = await api("GET", path);
      if (res.status === 404 && !(res.body && res.body.type && res.body.type.endsWith("/not-found"))) continue;
      if (res.status === 401) return { ok: false, message: "This key is not known to this log, or it was revoked: " + problem(res) };
      if (res.status === 403) return { ok: false, message: "This key is not a supervisor's key: " + problem(res) };
      if (res.ok) return { ok: true };
    }
    const res = await api("GET", "/v1/log");
    if (res.status === 401) return { ok: false, message: "This key is not known to this log, or it was revoked: " + problem(res) };
    return { ok: res.ok, message: res.ok ? "" : problem(res) };
  }

  async function signIn(value) {
    const error = $("signin-error");
    error.hidden = true;
    if (!KEY.test(value)) {
      error.textContent = "An API key looks like glk_ followed by 12 hex digits, '_' and 43 letters, digits, '-' or '_'. Check that you copied all of it.";
      error.hidden = false;
      $("api-key").setAttribute("aria-invalid", "true");
      $("api-key").focus();
      return;
    }
    sessionStorage.setItem(STORE, value);
    const check = await probe();
    if (!check.ok) {
      sessionStorage.removeItem(STORE);
      error.textContent = check.message;
      error.hidden = false;
      $("api-key").setAttribute("aria-invalid", "true");
      $("api-key").focus();
      return;
    }
    $("api-key").value = "";
    $("api-key").removeAttribute("aria-invalid");
    await show();
  }

  async function show() {
    $("signin").hidden = true;
    $("console").hidden = false;
    announce(`Signed in with key ${key().slice(4, 16)}.`);
    await loadModels();
    for (const load of C.sections) {
      try { await load(); } catch (e) { /* each section reports its own errors */ }
    }
    document.body.dataset.consoleReady = "true";
  }

  function signOut() {
    sessionStorage.removeItem(STORE);
    $("console").hidden = true;
    $("signin").hidden = false;
    delete document.body.dataset.consoleReady;
    $("api-key").focus();
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("api-key").value.trim()); });
    $("signout").addEventListener("click", signOut);
    if (key()) {
      const check = await probe();
      if (check.ok) await show();
      else sessionStorage.removeItem(STORE);
    }
    document.body.dataset.ready = "true";
  });
})();
