/* Flag and rate forms: validate, send JSON to /v1/flags and /v1/flags/{index}/ratings, and show the API's answer next to
 * the field it names (RFC 9457 problem+json "errors": [{"field", "problem"}]). Abuse limits are the API's: one flag per
 * person per decision or model (409), a rate limit per key, receipt token or address (429), no rating of one's own flag. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const TOKEN = /^grt_((0|[1-9][0-9]{0,15})_)?[A-Za-z0-9_-]{43}$/; // keys.py: grt_<decision index>_<secret> (older: grt_<secret>)
  const FLASH = "glasslog.flash";
  const FIELD_IDS = { decision: "flag-decision", generation: "flag-decision", model: "flag-model", category: "flag-category", text: "flag-text", token: "flag-token" };

  async function send(method, path, body, token) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(path, { method, headers, body: JSON.stringify(body), cache: "no-store" });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { ok: r.ok, status: r.status, body: data };
  }

  function clearErrors(form) {
    for (const p of form.querySelectorAll(".field-error")) { p.textContent = ""; p.hidden = true; }
    for (const n of form.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
    const summary = $("flag-errors");
    if (summary) { summary.hidden = true; summary.querySelector("ul").replaceChildren(); }
  }

  function showErrors(form, errors) {
    const summary = $("flag-errors");
    const list = summary.querySelector("ul");
    for (const { field, problem } of errors) {
      const id = FIELD_IDS[field];
      const p = id ? $(id + "-e") : null;
      const input = id ? $(id) : null;
      if (p) { p.textContent = problem; p.hidden = false; }
      if (input && input.tagName !== "FIELDSET") input.setAttribute("aria-invalid", "true");
      const li = document.createElement("li");
      if (input) {
        const a = document.createElement("a");
        a.href = "#" + id;
        a.textContent = problem;
        a.addEventListener("click", (ev) => { ev.preventDefault(); (input.tagName === "FIELDSET" ? input.querySelector("input") : input).focus(); });
        li.append(a);
      } else {
        li.textContent = problem;
      }
      list.append(li);
    }
    summary.hidden = false;
    summary.focus();
  }

  function problemErrors(res) {
    const b = res.body || {};
    const out = [];
    if (Array.isArray(b.errors) && b.errors.length) {
      for (const e of b.errors) {
        const field = String(e.field || "").split(/[.[]/)[0];
        // The receipt token is not a body field: its problem is said in full next to the token field.
        out.push({ field: FIELD_IDS[field] ? field : "", problem: field === "token" ? e.problem : `${e.field}: ${e.problem}` });
      }
    } else if (res.status === 401) {
      const tokenGiven = $("flag-token") && $("flag-token").value.trim();
      out.push({ field: $("flag-token") ? "token" : "",
                 problem: tokenGiven ? "This receipt token is not known to this log: check that you copied all of it."
                   : "This decision is in a private deployment: only the person it is about can flag it, with the receipt token " +
                     "they were given (enter it in the receipt token field). Anyone can flag the model as a whole." });
    } else if (res.status === 429) {
      out.push({ field: "", problem: "Too many flags or ratings from here in the last hour: " + (b.detail || "try again later") });
    } else {
      out.push({ field: "", problem: b.detail || b.title || `the server answered ${res.status}` });
    }
    return out;
  }

  async function submitFlag(ev) {
    ev.preventDefault();
    const form = ev.currentTarget;
    clearErrors(form);
    $("flag-result").textContent = "";
    const errors = [];
    const body = {};
    const decision = ($("flag-decision").value || "").trim();
    const model = $("flag-model") ? $("flag-model").value : "";
    if (decision) {
      if (!/^(0|[1-9][0-9]{0,15})$/.test(decision)) errors.push({ field: "decision", problem: "Decision: give its entry number, digits only (for example 605)." });
      else body[$("flag-decision").dataset.target === "generation" ? "generation" : "decision"] = Number(decision);
    }
    if (model) body.model = model;
    if (!decision && !model) errors.push({ field: "decision", problem: "Give the decision's entry number, or choose a model to flag it as a whole." });
    const category = form.querySelector("input[name=category]:checked");
    if (!category) errors.push({ field: "category", problem: "Choose what is wrong." });
    else body.category = category.value;
    const text = $("flag-text").value.trim();
    const max = Number(form.dataset.maxText || 1000);
    if ([...text].length > max) errors.push({ field: "text", problem: `The text is ${[...text].length} characters; at most ${max}.` });
    else if (text) body.text = text;
    let token = form.glasslogToken || null;
    const tokenInput = $("flag-token");
    if (tokenInput && tokenInput.value.trim()) {
      token = tokenInput.value.trim();
      if (!TOKEN.test(token)) errors.push({ field: "token", problem: "A receipt token looks like grt_, the decision's number, '_' and 43 letters, digits, '-' or '_'." });
    }
    if (errors.length) { showErrors(form, errors); return; }
    const button = $("flag-submit");
    button.disabled = true;
    let res;
    try {
      res = await send("POST", "/v1/flags", body, token);
    } finally {
      button.disabled = false;
    }
    if (!res.ok) { showErrors(form, problemErrors(res)); return; }
    const f = res.body;
    const message = `Thank you. Your flag is on the log as entry ${f.index}` +
      (f.duplicate_of !== null ? `, merged with flag ${f.duplicate_of} about the same thing (${f.reporters} reporters now)` : "") +
      `; it ranks #${f.rank} of the flags.`;
    if (document.body.dataset.page === "flags") {
      sessionStorage.setItem(FLASH, message);
      const shown = f.duplicate_of !== null ? f.duplicate_of : f.index;
      location.assign(`/flags?flagged=${f.index}#flag-${shown}`);
      return;
    }
    const result = $("flag-result");
    result.replaceChildren(message + " ");
    const link = document.createElement("a");
    link.href = "/flags#flag-" + (f.duplicate_of !== null ? f.duplicate_of : f.index);
    link.textContent = "See it among the ranked flags";
    result.append(link);
    const fixed = $("flag-decision").type === "hidden" ? $("flag-decision").value : null;
    form.reset();
    if (fixed !== null) $("flag-decision").value = fixed; // a page about one decision keeps it
    updateCount();
  }

  async function submitRating(ev) {
    ev.preventDefault();
    const form = ev.currentTarget;
    const button = ev.submitter;
    const out = form.querySelector(".rate-result");
    out.className = "rate-result";
    out.textContent = "";
    if (!button || !button.value) return;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    let res;
    try {
      res = await send("POST", `/v1/flags/${form.dataset.flag}/ratings`, { rating: button.value });
    } finally {
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
    if (!res.ok) {
      out.className = "rate-result field-error";
      const b = res.body || {};
      out.textContent = res.status === 429 ? "Too many ratings from here in the last hour: " + (b.detail || "try again later") + "."
                                           : (b.detail || `the server answered ${res.status}`);
      return;
    }
    const r = res.body.flag_view.ratings;
    const box = $("ratings-" + res.body.flag);
    if (box) {
      box.querySelector(".n-helpful").textContent = r.helpful;
      box.querySelector(".n-somewhat").textContent = r.somewhat;
      box.querySelector(".n-not-helpful").textContent = r.not_helpful;
    }
    out.className = "rate-result success";
    if (res.body.unchanged) {
      out.textContent = `You had already rated this flag ${res.body.rating.replace("-", " ")} (log entry ${res.body.index}); nothing new was logged.`;
      return;
    }
    out.textContent = `Thank you: your rating is on the log as entry ${res.body.index}` + (res.body.replaces !== null ? ` (it replaces your earlier rating, entry ${res.body.replaces})` : "") + ".";
  }

  function updateCount() {
    const text = $("flag-text");
    const count = $("flag-text-count");
    if (!text || !count) return;
    const form = $("flag-form");
    const max = Number(form.dataset.maxText || 1000);
    const n = [...text.value].length;
    count.textContent = n ? `${n} of ${max} characters` : "";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = $("flag-form");
    if (form) {
      form.addEventListener("submit", submitFlag);
      $("flag-text").addEventListener("input", updateCount);
      $("flag-submit").disabled = false; // disabled in the page: without this script the form cannot send
    }
    for (const f of document.querySelectorAll("form.rate-form")) {
      f.addEventListener("submit", submitRating);
      for (const b of f.querySelectorAll("button")) b.disabled = false;
    }
    const flash = sessionStorage.getItem(FLASH);
    const region = $("flash");
    if (flash && region) {
      sessionStorage.removeItem(FLASH);
      region.textContent = flash;
      region.hidden = false;
    }
    document.body.dataset.flagsReady = "true";
  });
  window.GlasslogFlags = { send };
})();
