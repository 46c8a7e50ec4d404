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

  /* "1 rating", "2 ratings". */
  function plural(n, word, words) { return `${n} ${n === 1 ? word : words || word + "s"}`; }
  C.plural = plural;

  /* A wide table in a box that scrolls sideways, so the page itself does not. */
  function scroller(table) { return el("div", { class: "table-wrap" }, table); }
  C.scroller = scroller;

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
    box.replaceChildren(scroller(table));
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

  // ------------------------------------------------------------ triage queue
  const NEXT_ACTIONS = { open: ["assign", "resolve", "escalate"], assigned: ["assign", "resolve", "escalate"],
                         resolved: ["reopen"], escalated: ["reopen"] };
  const ACTION_TEXT = { assign: "Assign", resolve: "Resolve", escalate: "Escalate (suspends the model)", reopen: "Reopen" };

  async function loadTriage() {
    const box = $("triage");
    const which = $("triage-state") ? $("triage-state").value : "active";
    const res = await api("GET", "/v1/triage?limit=200&state=" + encodeURIComponent(which));
    if (res.status === 404) { unavailable(box, "The triage queue and its actions"); return; }
    if (!res.ok) { box.replaceChildren(el("p", { class: "field-error", text: "Could not load the triage queue: " + problem(res) })); return; }
    const select = el("select", { id: "triage-state" },
      ...[["active", "Open and assigned"], ["all", "All"], ["resolved", "Resolved"], ["escalated", "Escalated"]].map(
        ([v, t]) => el("option", { value: v, selected: v === which, text: t })));
    select.addEventListener("change", loadTriage);
    const head = el("div", { class: "inline-form" }, el("div", { class: "field" }, el("label", { for: "triage-state", text: "Show" }), select),
      el("p", { class: "hint", text: `${res.body.total} item${res.body.total === 1 ? "" : "s"}, by severity, then support.` }));
    if (!res.body.items.length) { box.replaceChildren(head, el("p", { id: "triage-empty", text: "Nothing in the queue." })); return; }
    const list = el("ol", { class: "flag-list", id: "triage-items" });
    for (const it of res.body.items) list.append(triageItem(it));
    box.replaceChildren(head, list);
  }

  function triageItem(it) {
    const link = it.kind === "flag" ? el("a", { href: "/flags#flag-" + it.item, text: `flag ${it.item}` }) : el("span", { text: `finding ${it.item}` });
    const about = [];
    if (it.decision !== null) about.push(el("a", { href: "/decisions/" + it.decision, text: `decision ${it.decision}` }), " · ");
    if (it.generation !== null && it.generation !== undefined) about.push(el("a", { href: "/generations/" + it.generation, text: `generation ${it.generation}` }), " · ");
    if (it.model) about.push(el("a", { href: "/models/" + it.model, text: "model " + it.model.slice(7, 19) }), " · ");
    if (it.deployment) about.push(it.deployment, " · ");
    const support = it.support.tier + (it.support.reporters ? `, ${plural(it.support.reporters, "reporter")}` : "") +
      (it.support.ratings ? `, ${plural(it.support.ratings, "rating")}` : "") +
      (it.support.alerts > 1 ? `, ${it.support.alerts} alerts merged, latest entry ${it.support.latest.index}` : "");
    const li = el("li", { class: "flag", "data-item": String(it.item), "data-state": it.state },
      el("h3", {}, badge(it.severity, "sev"), " ", it.summary, " ", el("span", { class: "hint" }, "(", link, ")")),
      el("p", { class: "target" }, ...about, `support: ${support} · state: `, el("strong", { class: "state", text: it.state }),
        it.assignee ? ` (${it.assignee})` : ""));
    if (it.history.length) {
      li.append(el("details", {}, el("summary", { text: `History (${it.history.length})` }),
        el("ul", {}, ...it.history.map((h) => el("li", { text: `${h.time.slice(0, 19).replace("T", " ")} UTC ${h.action}` +
          (h.assignee ? ` to ${h.assignee}` : "") + (h.reason ? `: ${h.reason}` : "") + ` (key ${h.key_id}, entry ${h.index})` })))));
    }
    if (it.kind === "finding") li.append(evidenceBlock(it.item));
    if (it.kind === "flag") {
      const texts = el("div", { class: "flag-texts", "data-flag": String(it.item) }, el("p", { class: "hint", text: "Loading the flag's text…" }));
      li.append(texts);
      // each item fills in its own, with this key (flags about private decisions included)
      flagTexts(it.item, texts).catch((e) => texts.replaceChildren(el("p", { class: "field-error", text: "Could not load the flag's text: " + e.message })));
    }
    li.append(actionForm(it));
    return li;
  }

  /* The texts of a flag and of the flags merged into it, as this supervisor may read them (GET /v1/flags/{index}). */
  async function flagTexts(index, box) {
    const res = await api("GET", "/v1/flags/" + index);
    if (!res.ok) { box.replaceChildren(el("p", { class: "field-error", text: "Could not load the flag's text: " + problem(res) })); return; }
    const merged = (res.body.duplicates || []).slice(0, 19);
    const others = await Promise.all(merged.map(async (d) => { const r = await api("GET", "/v1/flags/" + d); return r.ok ? r.body : null; }));
    const parts = [];
    for (const f of [res.body, ...others.filter(Boolean)]) {
      const who = `Flag ${f.index}, by ${f.by_role}`;
      if (f.text_state === "shown") {
        parts.push(el("p", { class: "flag-text-by", text: `${who}:` }), el("blockquote", { class: "flag-text", "data-flag": String(f.index), text: f.text }));
      } else {
        const why = { none: "no text given", erased: `text erased${f.text_erased_at ? " " + f.text_erased_at.slice(0, 10) : ""}`,
                      withheld: "text withheld from this key" }[f.text_state] || f.text_state;
        parts.push(el("p", { class: "hint", "data-flag": String(f.index), text: `${who}: ${why}.` }));
      }
    }
    if ((res.body.duplicates || []).length > merged.length) parts.push(el("p", { class: "hint", text: `… and ${res.body.duplicates.length - merged.length} more merged flags.` }));
    box.replaceChildren(...parts);
  }

  function actionForm(it) {
    const id = "act-" + it.item;
    const actions = NEXT_ACTIONS[it.state] || [];
    const error = el("p", { class: "field-error", role: "alert", hidden: true });
    const action = el("select", { id: id + "-action" }, ...actions.map((a) => el("option", { value: a, text: ACTION_TEXT[a] })));
    const reason = el("input", { type: "text", id: id + "-reason", maxlength: "2000", autocomplete: "off" });
    const assignee = el("input", { type: "text", id: id + "-assignee", maxlength: "200", autocomplete: "off" });
    const assigneeField = el("div", { class: "field" }, el("label", { for: id + "-assignee", text: "Assign to" }), assignee);
    const sync = () => { assigneeField.hidden = action.value !== "assign"; };
    action.addEventListener("change", sync);
    sync();
    const form = el("form", { class: "inline-form triage-form", novalidate: true, "aria-label": `Act on item ${it.item}` },
      el("div", { class: "field" }, el("label", { for: id + "-action", text: "Action" }), action),
      el("div", { class: "field" }, el("label", { for: id + "-reason", text: "Reason (public)" }), reason),
      assigneeField, el("button", { type: "submit", text: "Record" }), error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      const body = { action: action.value, reason: reason.value.trim() };
      if (body.action === "assign") {
        if (!assignee.value.trim()) { error.textContent = "Say who takes the item."; error.hidden = false; assignee.focus(); return; }
        body.assignee = assignee.value.trim();
      } else if (!body.reason) {
        error.textContent = "Give a reason: it goes on the public log with the action."; error.hidden = false; reason.focus(); return;
      }
      const res = await api("POST", `/v1/triage/${it.item}/actions`, body);
      if (!res.ok) { error.textContent = problem(res); error.hidden = false; return; }
      announce(`Item ${it.item}: ${body.action} recorded as log entry ${res.body.triage_index}` +
        (res.body.model_status_index !== null ? `; the model is suspended (entry ${res.body.model_status_index}).` : "."));
      await loadTriage();
      await loadModels();
    });
    return form;
  }

  // ------------------------------------------------------------ findings, with evidence
  function evidenceBlock(index) {
    const details = el("details", { class: "evidence-block" }, el("summary", { text: "Evidence" }));
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "true";
      const res = await api("GET", "/v1/entries/" + index);
      const pre = el("pre", { class: "evidence" });
      if (res.ok) {
        const e = res.body.entry;
        pre.textContent = JSON.stringify({ check: e.check, statistic: e.statistic, value: e.value, threshold: e.threshold,
          window: e.window, evidence: e.evidence }, null, 2);
      } else {
        pre.textContent = "Could not load the finding: " + problem(res);
      }
      details.append(pre);
    });
    return details;
  }

  async function findingRows() {
    const res = await api("GET", "/v1/findings?limit=200");
    if (res.ok) return res.body.findings.map((f) => ({ i: f.index, res: { ok: true, body: { entry: f } } }));
    // A server without GET /v1/findings: the finding entries the page listed, read one by one (entries are public).
    const data = $("console-data");
    const indexes = data ? JSON.parse(data.dataset.findings || "[]") : [];
    return Promise.all(indexes.slice(0, 100).map(async (i) => ({ i, res: await api("GET", "/v1/entries/" + i) })));
  }

  function monitorForm() {
    const out = el("p", { id: "monitors-result", role: "status" });
    const button = el("button", { type: "submit", text: "Run the monitors now" });
    const form = el("form", { id: "monitors-form", class: "actions", novalidate: true }, button, out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      out.className = "hint";
      out.textContent = "Running performance, drift, disparity, Goodhart and anomaly monitors over the whole log…";
      const res = await api("POST", "/v1/monitors/run", {});
      button.disabled = false;
      if (res.status === 404 && !(res.body && res.body.type && res.body.type.endsWith("/not-found"))) { out.textContent = "Monitors are not available on this server."; return; }
      if (!res.ok) { out.className = "field-error"; out.textContent = "The monitors did not run: " + problem(res); return; }
      const r = res.body;
      out.className = "success";
      out.textContent = `${plural(r.findings.length, "finding")} (${plural(r.alerts, "alert")}) over ${plural(r.decisions, "decision")}, recorded as entries ` +
        (r.recorded && r.recorded.length ? `${r.recorded[0]}–${r.recorded[r.recorded.length - 1]}` : "(none)") + ".";
      await loadFindings(true);
      await loadTriage();
    });
    return form;
  }

  async function loadFindings(keepForm) {
    const box = $("findings-console");
    if (!keepForm || !$("monitors-form")) box.replaceChildren(monitorForm(), el("div", { id: "findings-table" }));
    const holder = $("findings-table");
    const rows = await findingRows();
    if (!rows.length) { holder.replaceChildren(el("p", { id: "findings-empty", text: "No findings on the log yet." })); return; }
    const table = el("table", { id: "console-findings" }, el("thead", {}, el("tr", {},
      ...["Entry", "Check", "About", "Statistic", "Verdict", "Severity", "Evidence"].map((h) => el("th", { scope: "col", text: h })))));
    const tbody = el("tbody");
    for (const { i, res } of rows) {
      if (!res.ok) continue;
      const e = res.body.entry;
      const missing = (v) => v === undefined || v === null;
      const stat = `${e.statistic} = ` + (missing(e.value) ? "\u2014" : typeof e.value === "number" ? Number(e.value.toPrecision(4)) : e.value) +
        (missing(e.threshold) ? "" : ` (threshold ${e.threshold})`);
      const pre = el("pre", { class: "evidence", text: JSON.stringify({ window: e.window, evidence: e.evidence }, null, 2) });
      tbody.append(el("tr", { "data-finding": String(i), "data-check": e.check },
        el("td", { text: String(i) }), el("td", { text: `${e.check} (${e.source}, ${e.by_role})` }),
        el("td", { text: [e.model ? e.model.slice(7, 19) : "", e.deployment || ""].filter(Boolean).join(" · ") }),
        el("td", { text: stat }), el("td", {}, badge(e.verdict, "verdict")), el("td", {}, badge(e.severity, "sev")),
        el("td", {}, el("details", {}, el("summary", { text: "Show" }), pre))));
    }
    table.append(tbody);
    holder.replaceChildren(scroller(table));
    renderReplayHistory(rows.filter(({ res }) => res.ok && res.body.entry.check === "replay.weights"));
  }

  // ------------------------------------------------------------ replay verification
  function renderReplayHistory(rows) {
    const box = $("replay-history");
    if (!box) return;
    if (!rows.length) { box.replaceChildren(el("p", { class: "hint", text: "No replay recorded on the log yet." })); return; }
    box.replaceChildren(el("h3", { text: "Replays on the log" }), el("ul", {}, ...rows.map(({ i, res }) => {
      const e = res.body.entry;
      const ev = e.evidence || {};
      return el("li", { text: `entry ${i}, ${e.time.slice(0, 19).replace("T", " ")} UTC, ${e.deployment || "all deployments"}` +
        `${e.model ? " / model " + e.model.slice(7, 19) : ""}: ${e.verdict} — ${ev.matched}/${ev.checked} reproduced, ` +
        `${ev.mismatch_count} mismatched, ${ev.erased} erased` });
    })));
  }

  async function setupReplay() {
    const box = $("replay");
    const deps = await api("GET", "/v1/deployments");
    const models = await api("GET", "/v1/models");
    if (!deps.ok || !models.ok) { box.replaceChildren(el("p", { class: "field-error", text: "Could not load deployments and models." })); return; }
    const dep = el("select", { id: "replay-deployment" }, el("option", { value: "", text: "All deployments" }),
      ...deps.body.map((d) => el("option", { value: d.name, text: `${d.name} (${d.visibility})` })));
    const model = el("select", { id: "replay-model" }, el("option", { value: "", text: "All models" }),
      ...models.body.map((m) => el("option", { value: m.fingerprint, text: `${m.card.name} ${m.card.version} (${m.fingerprint.slice(7, 19)})` })));
    const out = el("div", { id: "replay-result", role: "status" });
    const button = el("button", { type: "submit", text: "Replay now" });
    const form = el("form", { class: "inline-form", id: "replay-form", novalidate: true },
      el("div", { class: "field" }, el("label", { for: "replay-deployment", text: "Deployment" }), dep),
      el("div", { class: "field" }, el("label", { for: "replay-model", text: "Model" }), model), button);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {};
      if (dep.value) body.deployment = dep.value;
      if (model.value) body.model = model.value;
      button.disabled = true;
      out.replaceChildren(el("p", { class: "hint", text: "Replaying: recomputing every selected decision with the registered weights…" }));
      const res = await api("POST", "/v1/replay", body);
      button.disabled = false;
      if (res.status === 404 && !(res.body && res.body.type && res.body.type.endsWith("/not-found"))) { unavailable(out, "Replays"); return; }
      if (!res.ok) { out.replaceChildren(el("p", { class: "field-error", text: "Replay failed: " + problem(res) })); return; }
      const r = res.body;
      const verdict = el("p", { class: r.ok ? "verdict ok" : "verdict fail", id: "replay-verdict",
        text: r.ok ? `Verified: ${r.matched} of ${r.checked} decisions reproduced by the registered weights` +
                     ` (largest probability difference ${r.max_abs_diff === null ? "n/a" : r.max_abs_diff.toExponential(1)})`
                   : `NOT verified: ${r.mismatch_count} mismatched, ${r.commitment_failures.length} commitment failures, ` +
                     `${r.missing.length} missing, ${r.errors.length} model errors` });
      const facts = el("p", { text: `${r.total} decisions selected, ${r.checked} recomputed, ${r.erased} skipped (erased). ` +
        (r.finding_index !== null ? `Recorded on the log as finding ${r.finding_index}.` : "") });
      const parts = [verdict, facts];
      if (r.mismatches.length) {
        parts.push(scroller(el("table", { id: "replay-mismatches" }, el("thead", {}, el("tr", {}, ...["Decision", "Logged", "Recomputed"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, ...r.mismatches.slice(0, 20).map((m) => el("tr", {}, el("td", {}, el("a", { href: "/decisions/" + m.index, text: String(m.index) })),
            el("td", { text: JSON.stringify(m.logged) }), el("td", { text: JSON.stringify(m.recomputed) })))))));
      }
      for (const e of r.errors) parts.push(el("p", { class: "field-error", text: e }));
      out.replaceChildren(...parts);
      const data = $("console-data");
      if (r.finding_index !== null && data) {
        data.dataset.findings = JSON.stringify([r.finding_index, ...JSON.parse(data.dataset.findings || "[]")]);
        await loadFindings(true);
      }
    });
    box.replaceChildren(el("p", { class: "hint", text: "Recompute logged decisions from their stored inputs with the registered weights (checked against their fingerprint) and compare with the logged outputs. The result goes on the log as a finding." }),
      form, out, el("div", { id: "replay-history" }));
  }

  // ------------------------------------------------------------ audit reports
  async function loadAudits() {
    const box = $("audits");
    const data = $("console-data");
    const reports = data ? JSON.parse(data.dataset.reports || "[]") : [];
    if (!reports.length) {
      box.replaceChildren(el("p", { class: "hint", text: "No audit report is published on this server yet. Audit findings are in the findings above (source: audit)." }));
      return;
    }
    box.replaceChildren(el("ul", { id: "audit-reports" }, ...reports.map((r) => el("li", {}, el("a", { href: r.url, text: r.title }), r.note ? ` — ${r.note}` : ""))));
  }

  C.sections.push(loadTriage, setupReplay, loadFindings, loadAudits);

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
    await show(true);
  }

  async function show(focus) {
    $("signin").hidden = true;
    $("console").hidden = false;
    announce(`Signed in with key ${key().slice(4, 16)}.`);
    if (focus) $("h-console").focus(); // the sign-in form is gone: focus goes to the console, not to the page's body
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
    if (!window.isSecureContext) $("insecure-key").hidden = false; // plain HTTP away from localhost: the key would travel in clear
    if (key()) {
      const check = await probe();
      if (check.ok) await show(false);
      else {
        sessionStorage.removeItem(STORE);
        const error = $("signin-error");
        error.textContent = "You were signed out: the key this tab kept no longer works. " + check.message;
        error.hidden = false;
      }
    }
    document.body.dataset.ready = "true";
  });
})();
