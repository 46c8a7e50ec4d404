/* The receipt page: read a receipt (file, pasted text, receipt token or a public decision's index), verify it in the
 * browser with GlasslogVerify (verify.js), and say what the decision was in plain words. The receipt never leaves the
 * browser; a receipt token is sent only as a bearer header to /v1/receipt, and a token given in the address fragment
 * (#token=grt_...) is removed from the address at once. Where this browser cannot run the check (outside a secure context
 * WebCrypto is withheld), the page says so, on load and on Verify, and never calls a receipt invalid for it. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const TOKEN = /^grt_((0|[1-9][0-9]{0,15})_)?[A-Za-z0-9_-]{43}$/; // keys.py: grt_<decision index>_<secret> (older: grt_<secret>)
  let token = null; // kept in memory only, for fetching the receipt and flagging as its subject
  let fromToken = null; // the /v1/receipt response (decision view with outcomes)
  const MAX_RECEIPT_BYTES = 1024 * 1024; // a receipt is a few kilobytes; anything over 1 MB is something else
  const FILE_TOO_LARGE = "This file is larger than any receipt (over 1 MB): choose the receipt.json you were given.";
  const TEXT_TOO_LARGE = "The pasted text is larger than any receipt (over 1 MB): paste only the receipt, the JSON text that " +
    "starts with {\"format\": \"glasslog-receipt/v1\".";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function formError(message) {
    const p = $("form-error");
    p.textContent = message || "";
    p.hidden = !message;
    if (message) $("result").hidden = true; // an earlier result is not about what was just given
  }

  /* The check cannot run in this browser: say so, and that this says nothing about the receipt. */
  function showUnavailable(why) {
    const result = $("result");
    result.hidden = false;
    result.dataset.ok = "unknown";
    const verdict = $("verdict");
    verdict.textContent = "Not checked: this browser cannot check receipts on this page";
    verdict.className = "verdict unknown";
    const secure = window.isSecureContext;
    $("checks").replaceChildren(
      el("li", { class: "unknown", "data-check": "unavailable" }, el("strong", {}, "Why: "), why + "."),
      el("li", { class: "unknown" }, el("strong", {}, "This says nothing about the receipt: "),
        "no check ran, so nothing was found wrong (or right) with it."),
      el("li", { class: "unknown" }, el("strong", {}, "To check it: "),
        (secure ? "open this page in a current browser, " : "open this page over HTTPS (an address starting with https://), ") +
        "or run ", el("code", {}, "glasslog verify receipt receipt.json --key '" + $("verifier-key").value.trim() + "'"),
        " on your own computer."));
    $("decision-summary").hidden = true;
    if ($("receipt-flag")) $("receipt-flag").hidden = true;
    verdict.focus();
    window.glasslogLastReport = { ok: false, unavailable: why, checks: [] }; // (tests wait on it)
  }

  function entryWords(report) {
    const e = report.entry || {};
    if (e.type === "decision") return `decision ${report.index}`;
    if (e.type === "generation") return `generation ${report.index}`;
    if (e.type === "outcome") return `entry ${report.index}, the outcome of decision ${e.decision},`;
    const type = String(e.type || "unknown");
    return `entry ${report.index}, ${/^[aeiou]/.test(type) ? "an" : "a"} ${type} entry,`;
  }

  async function problemText(r) {
    try {
      const body = await r.json();
      return body.detail || body.title || `HTTP ${r.status}`;
    } catch (e) {
      return `HTTP ${r.status}`;
    }
  }

  async function fetchByToken(t) {
    if (!TOKEN.test(t)) {
      formError("A receipt token looks like grt_, the decision's number, '_' and 43 letters, digits, '-' or '_'. Check that you copied all of it.");
      $("token").setAttribute("aria-invalid", "true");
      $("token").focus();
      return null;
    }
    $("token").removeAttribute("aria-invalid");
    const r = await fetch("/v1/receipt", { headers: { Authorization: "Bearer " + t }, cache: "no-store" });
    if (!r.ok) {
      formError(r.status === 401 ? "This receipt token is not known to this log. Check it, or open your receipt file instead."
                                 : "Could not fetch the receipt: " + (await problemText(r)));
      return null;
    }
    token = t;
    fromToken = await r.json();
    return JSON.stringify(fromToken.receipt, null, 2);
  }

  async function fetchByIndex(index) {
    const kind = $("receipt-config").dataset.kind === "generation" ? "generation" : "decision";
    const url = kind === "generation" ? "/v1/generations/" + encodeURIComponent(index) + "/receipt"
                                      : "/v1/receipts/" + encodeURIComponent(index);
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) {
      formError(r.status === 403
        ? `${kind === "generation" ? "Generation" : "Decision"} ${index} is in a private deployment: its receipt is for the person it is about. Open your receipt file, or give your receipt token.`
        : `Could not fetch the receipt of ${kind} ${index}: ` + (await problemText(r)));
      return null;
    }
    return JSON.stringify(await r.json(), null, 2);
  }

  function show(report) {
    const result = $("result");
    result.hidden = false;
    result.dataset.ok = report.ok ? "true" : "false";
    const verdict = $("verdict");
    const failed = report.checks.find((c) => !c.ok);
    verdict.textContent = report.ok
      ? `Receipt verified: ${entryWords(report)} is on the log`
      : `Receipt NOT valid: ${failed ? failed.name + " failed" : "incomplete"}`;
    verdict.className = report.ok ? "verdict ok" : "verdict fail";
    const list = $("checks");
    list.replaceChildren();
    for (const c of report.checks) {
      list.append(el("li", { class: c.ok ? "ok" : "fail", "data-check": c.name, "data-ok": String(c.ok) },
        el("span", { class: "mark", "aria-hidden": "true" }, c.ok ? "\u2713" : "\u2717"),
        el("strong", {}, c.name + (c.ok ? " — passed" : " — FAILED") + ": "), c.detail));
    }
    verdict.focus();
  }

  function outputWords(output, card) {
    if (output === undefined || output === null) return null;
    const label = typeof output === "object" && !Array.isArray(output) && "label" in output ? output.label : output;
    let words = `Its output was ${typeof label === "string" ? label : JSON.stringify(label)}.`;
    const out = (card && card.output) || {};
    if (out.meaning) words += ` The model card explains: \u201c${out.meaning}\u201d.`;
    const proba = output && output.proba;
    if (Array.isArray(proba) && Array.isArray(out.classes) && out.classes.includes(out.positive) && proba.length === out.classes.length) {
      words += ` The model put the probability of ${JSON.stringify(out.positive)} at ${Number(proba[out.classes.indexOf(out.positive)]).toFixed(2)}.`;
    }
    return words;
  }

  async function describe(report) {
    const box = $("decision-summary");
    box.hidden = true;
    if ($("receipt-flag")) $("receipt-flag").hidden = true;
    if (!report.ok || !report.entry || report.entry.type !== "decision") return;
    const e = report.entry;
    let card = null;
    try {
      const r = await fetch("/v1/models/" + encodeURIComponent(e.model), { cache: "no-store" });
      if (r.ok) card = (await r.json()).card;
    } catch (err) { /* the card is a courtesy; the verification stands without it */ }
    const when = e.time.slice(0, 10) + " at " + e.time.slice(11, 16) + " UTC";
    const who = card ? `the model \u201c${card.name} ${card.version}\u201d of ${card.provider}` : `model ${e.model}`;
    const output = "output" in e ? e.output : report.private.output;
    const parts = [`On ${when}, ${who} made a decision in ${e.deployment} (entry ${report.index} of the log).`];
    const about = $("decision-subject");
    if (about) {
      about.hidden = report.private.subject === undefined;
      about.textContent = about.hidden ? "" : `This decision is about ${String(report.private.subject)}` +
        (report.checks.some((c) => c.name === "subject" && c.ok) ? " \u2014 the id you gave." : " (give your id above to check it is yours).");
    }
    const words = outputWords(output, card);
    parts.push(words || "Its output is private: the receipt does not open it.");
    $("plain").textContent = parts.join(" ");
    const facts = $("decision-facts");
    facts.replaceChildren();
    const add = (k, v) => facts.append(el("dt", {}, k), el("dd", {}, v));
    add("Entry", String(report.index));
    add("Time", e.time);
    const link = el("a", { href: "/models/" + e.model }, card ? `${card.name} ${card.version}` : e.model);
    add("Model", link);
    add("Deployment", e.deployment);
    if (report.private.subject !== undefined) add("Subject", String(report.private.subject));
    if (fromToken && fromToken.decision && fromToken.decision.index === report.index) {
      const outcomes = fromToken.decision.outcomes || [];
      add("Outcome", outcomes.length ? outcomes.map((o) => JSON.stringify(o.outcome !== undefined ? o.outcome : "(private)")).join(", ") : "none recorded yet");
    }
    const inputs = report.private.input;
    const block = $("inputs-block");
    block.hidden = !(inputs && typeof inputs === "object");
    if (!block.hidden) {
      const body = $("inputs").querySelector("tbody");
      body.replaceChildren();
      for (const [k, v] of Object.entries(inputs)) body.append(el("tr", {}, el("td", {}, k), el("td", {}, typeof v === "string" ? v : JSON.stringify(v))));
    }
    box.hidden = false;
    const flagBox = $("receipt-flag");
    if (flagBox) {
      $("flag-decision").value = String(report.index);
      $("flag-decision-label").textContent = String(report.index);
      $("flag-form").glasslogToken = token && fromToken && fromToken.decision && fromToken.decision.index === report.index ? token : null;
      flagBox.hidden = false;
    }
  }

  async function verifyText(text) {
    formError("");
    const witnessKeys = ($("witness-keys") ? $("witness-keys").value : "").split("\n").map((k) => k.trim()).filter((k) => k);
    const minText = $("min-witnesses") ? $("min-witnesses").value.trim() : "";
    // Default: a majority of the distinct keys given, as verify receipt does (a witness cosigns the first history it
    // meets, so a copy of the log shown only to you could get one witness that met the log through that copy).
    // counted by raw public key, as verify receipt (one key under two names is one witness)
    const distinct = await window.GlasslogVerify.distinctWitnesses(witnessKeys).catch(() => new Set(witnessKeys).size);
    const minWitnesses = minText === "" ? (distinct ? Math.floor(distinct / 2) + 1 : 0) : Number(minText);
    const subject = $("subject-id") ? $("subject-id").value.trim() : "";
    const report = await window.GlasslogVerify.verifyReceipt(text, $("verifier-key").value, witnessKeys, minWitnesses, subject);
    if (report.unavailable) {
      showUnavailable(report.unavailable);
      window.glasslogLastReport = report;
      return report;
    }
    show(report);
    await describe(report);
    window.glasslogLastReport = report; // set once the page shows everything (tests wait on it)
    return report;
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    const why = window.GlasslogVerify.unavailable();
    if (why !== null) { formError(""); showUnavailable(why); return; } // a token would travel unencrypted, and no check can run
    const file = $("receipt-file").files[0];
    if (file && file.size > MAX_RECEIPT_BYTES) {
      formError(FILE_TOO_LARGE);
      $("receipt-file").focus();
      return;
    }
    const t = $("token").value.trim();
    let text = $("receipt-text").value.trim();
    if (new TextEncoder().encode($("receipt-text").value).length > MAX_RECEIPT_BYTES) {
      formError(TEXT_TOO_LARGE);
      $("receipt-text").setAttribute("aria-invalid", "true");
      $("receipt-text").focus();
      return;
    }
    $("receipt-text").removeAttribute("aria-invalid");
    if (!text && t) {
      text = await fetchByToken(t);
      if (text === null) return;
      $("receipt-text").value = text;
    }
    if (!text) {
      formError("Give a receipt first: open your receipt file, paste it, or give your receipt token.");
      $("receipt-text").focus();
      return;
    }
    await verifyText(text);
  }

  async function onFile() {
    const f = $("receipt-file").files[0];
    if (!f) return;
    if (f.size > MAX_RECEIPT_BYTES) {
      formError(FILE_TOO_LARGE);
      return;
    }
    const text = await f.text();
    $("receipt-text").value = text;
    fromToken = null;
    await verifyText(text);
  }

  async function start() {
    $("receipt-form").addEventListener("submit", onSubmit);
    $("receipt-file").addEventListener("change", onFile);
    $("receipt-text").addEventListener("input", () => { fromToken = null; $("receipt-file").value = ""; });
    const why = window.GlasslogVerify.unavailable();
    if (why !== null) $("insecure").hidden = false;
    const hash = new URLSearchParams(location.hash.slice(1));
    const t = hash.get("token");
    if (t) {
      history.replaceState(null, "", location.pathname + location.search); // the token leaves the address bar at once
      if (why !== null) { showUnavailable(why); return; }
      const text = await fetchByToken(t.trim());
      if (text !== null) {
        $("receipt-text").value = text;
        await verifyText(text);
      }
      return;
    }
    const index = $("receipt-config").dataset.index;
    if (index && why !== null) { showUnavailable(why); return; }
    if (index) {
      const text = await fetchByIndex(index);
      if (text !== null) {
        $("receipt-text").value = text;
        await verifyText(text);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    start().catch((e) => formError("Something went wrong: " + e.message)).finally(() => { document.body.dataset.ready = "true"; });
  });
})();
