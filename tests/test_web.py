"""The web register in a real browser: Debian's Chromium, headless, driven by playwright.

The server is the real app (``glasslog.server.create_app``) under uvicorn on a
loopback port, in front of a real log: the German Credit demo (a private
deployment, 300 decisions with subject ids and outcomes) plus a
public-service deployment of 60 decisions logged through the SDK (45 with
outcomes), decisions with receipt tokens logged over HTTP, a weights
download, and the monitors' findings recorded as a supervisor.

What the pages show is asserted against figures computed here from the log
itself: counts, output distribution, realised accuracy and its Wilson
interval, status history. The receipt page's verification (WebCrypto
Ed25519 and SHA-256) must agree check by check with the Python verifier
(``glasslog.verify.verify_receipt``), on valid receipts and on receipts with
one byte of the entry, the proof or the signature changed, and on the shared
reference vectors. No personal value of the log ever appears in a public page.

Screenshots of the main pages are saved to ``$GLASSLOG_SCREENSHOTS`` (set it to
``docs/screenshots`` to regenerate the README's images), else to a temporary
artefacts directory. Chromium is ``$GLASSLOG_CHROMIUM`` or ``/usr/bin/chromium``
(``.ci/browser-deps.sh`` installs it); without it these tests skip.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from glasslog import capture
from glasslog.access import KeyStore
from glasslog.audit.report import build_report
from glasslog.audit.run import audit_logged_model
from glasslog.datasets.german_credit import german_credit_features, load_german_credit
from glasslog.demo.run import run_demo, wilson_interval
from glasslog.ledger import Ledger
from glasslog.ledger.note import generate_signer
from glasslog.ledger.receipt import Receipt
from glasslog.oversight.monitors import run_monitors
from glasslog.server import charts, create_app
from glasslog.verify import verify_receipt

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[test]')")

CHROMIUM = Path(os.environ.get("GLASSLOG_CHROMIUM", "/usr/bin/chromium"))
INSECURE_HOST = "register.glasslog.test"  # resolved to 127.0.0.1 by this browser only: plain HTTP there is not a secure context
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"]
PUB = "city.example/benefits-triage"
N_PUB, N_PUB_OUTCOMES = 60, 45
SHARED_VECTORS = Path(__file__).resolve().parent / "vectors"  # the reference vectors stored in the repository


# ------------------------------------------------------------------ the server
class Server:
    """uvicorn serving an app on a free loopback port, in a thread of this process."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class World:
    dir: Path
    url: str
    http: httpx.Client
    model: str
    dep_priv: str
    pub_indexes: list[int]
    tokens: dict[str, str]  # role -> API key
    subject_token: str  # receipt token of a private-deployment decision (logged over HTTP)
    subject_index: int
    subject_id: str
    pub_token: str  # receipt token of a public-service decision
    pub_token_index: int
    demo_receipt: Path
    shots: Path
    personal: list[str] = field(default_factory=list)  # strings that must never appear on a public page

    def h(self, role: str) -> dict:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def ledger(self) -> Ledger:
        return Ledger.open(self.dir)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: run .ci/browser-deps.sh (Debian package 'chromium') or set GLASSLOG_CHROMIUM")
    d = tmp_path_factory.mktemp("web") / "log"
    summary = run_demo(d)
    assert summary.ok and summary.tree_size == 602
    X, y = load_german_credit()
    lg = Ledger.open(d)
    wrapped = capture.wrap(lg, summary.model, PUB, visibility="public-service", description="Benefit applications triaged in public.")
    wrapped.predict_proba(X.iloc[:N_PUB], subject_ids=[f"citizen-{i:04d}" for i in range(N_PUB)])
    pub_indexes = list(wrapped.last_batch.indexes)
    capture.record_outcomes(lg, list(zip(pub_indexes[:N_PUB_OUTCOMES], y.iloc[:N_PUB_OUTCOMES].astype(int).tolist())))
    ks = KeyStore(lg)
    tokens = {}
    for role in ("operator", "supervisor", "researcher"):
        _, tokens[role] = ks.create(role, f"web tests: {role}")
    lg.close()

    app = create_app(d)
    server = Server(app)
    http = httpx.Client(base_url=server.url, timeout=30)
    op = {"Authorization": f"Bearer {tokens['operator']}"}
    rows = [{"input": json.loads(X.iloc[i].to_json()), "subject_id": f"applicant-http-{i}"} for i in (700, 701)]
    r = http.post("/v1/decisions", headers=op, json={"model": summary.model, "deployment": summary.deployment, "method": "predict",
                                                     "rows": rows})
    assert r.status_code == 201, r.text
    priv = r.json()["decisions"]
    r = http.post("/v1/decisions", headers=op, json={"model": summary.model, "deployment": PUB,
                                                     "rows": [{"input": json.loads(X.iloc[702].to_json()), "subject_id": "citizen-0702"}]})
    assert r.status_code == 201, r.text
    pub_http = r.json()["decisions"][0]
    r = http.get(f"/v1/models/{summary.model}/artifact", headers={"Authorization": f"Bearer {tokens['researcher']}"})
    assert r.status_code == 200
    lg = Ledger.open(d)
    run = run_monitors(lg, "supervisor")
    assert run.record(lg) is not None
    # Reports published beside the log: a researcher's audit of the model (glasslog.audit), and a scenario-lab report.
    results = audit_logged_model(lg, summary.model, principal="researcher", n_boot=50)
    audit = build_report(results, title="Audit of the credit scorecard as researcher", context={"role": "researcher"})
    audit.write(d / "reports" / "audits" / "researcher-2026-11")
    scen = d / "reports" / "scenarios" / "whimper-test"
    scen.mkdir(parents=True)
    (scen / "report.html").write_text("<!doctype html><html><head><title>glasslog scenario lab</title><style>h1{color:#222}</style>"
                                      "</head><body><h1>glasslog scenario lab</h1><p>whimper under five regimes</p></body></html>")
    (scen / "results.json").write_text(json.dumps({"scenarios": [{"id": "whimper"}], "reps": 1, "seed": 0}))
    (d / "reports" / "audits" / "..hidden").mkdir()  # not a report name: never listed
    lg.close()

    shots = Path(os.environ["GLASSLOG_SCREENSHOTS"]) if os.environ.get("GLASSLOG_SCREENSHOTS") else tmp_path_factory.mktemp("screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    w = World(dir=d, url=server.url, http=http, model=summary.model, dep_priv=summary.deployment,
              pub_indexes=pub_indexes + [pub_http["index"]], tokens=tokens, subject_token=priv[0]["receipt_token"],
              subject_index=priv[0]["index"], subject_id=rows[0]["subject_id"], pub_token=pub_http["receipt_token"],
              pub_token_index=pub_http["index"], demo_receipt=Path(summary.receipt_file), shots=shots)
    w.personal = personal_strings(w, X)
    yield w
    http.close()
    server.stop()


def personal_strings(w: World, X) -> list[str]:
    """Subject ids, salts, receipt tokens, API keys and the distinctive values of personal features: never on a public page."""
    lg = w.ledger()
    try:
        indexes = [i for i, _ in lg.entries_of_type("decision")]
        opened = lg.private_values_for(indexes)
    finally:
        lg.close()
    out = set()
    for kinds in opened.values():
        if "subject" in kinds:
            out.add(json.loads(kinds["subject"][2]))
        for _, salt, _ in kinds.values():
            out.add(base64.b64encode(salt).decode())
            out.add(salt.hex())
    assert {"citizen-0000", "citizen-0059", "citizen-0702", w.subject_id} <= out
    assert sum(s.startswith("applicant-") for s in out) == 302
    personal = [f.name for f in german_credit_features(X) if f.personal and f.type == "categorical"]
    for name in personal:
        out.update(v for v in X[name].dropna().unique() if isinstance(v, str) and len(v) >= 10)
    assert "male : divorced/separated" in out and "yes, registered under the customers name" in out
    out.update([w.subject_token, w.pub_token, *w.tokens.values()])
    return sorted(out)


# ------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def browser(world):
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, world):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=world.url)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, world: World, name: str, height: int = 1800) -> None:
    """Save a screenshot of the page's top ``height`` CSS pixels (the README shows them)."""
    full = page.evaluate("document.documentElement.scrollHeight")
    page.screenshot(path=str(world.shots / f"{name}.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1280, "height": min(full, height)})


def wait_js(page, expression: str, timeout: float = 15.0) -> None:
    """Wait until a JavaScript expression is true, polling from here (the pages' CSP forbids the in-page eval
    that ``page.wait_for_function`` uses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def rows_of(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


# ------------------------------------------------------------------ figures from the log itself
def public_figures(w: World) -> dict:
    lg = w.ledger()
    try:
        labels, per_dep = {}, Counter()
        for i, e in lg.entries_of_type("decision"):
            per_dep[e["deployment"]] += 1
            if e["deployment"] == PUB:
                labels[i] = e["output"]["label"]
        outcomes = {o["decision"]: o["outcome"] for _, o in lg.entries_of_type("outcome") if o["decision"] in labels}
        size = lg.signed_size()
    finally:
        lg.close()
    correct = sum(labels[i] == v for i, v in outcomes.items())
    return {"labels": Counter(labels.values()), "per_dep": per_dep, "n_outcomes": len(outcomes), "correct": correct,
            "tree_size": size, "pub": sorted(labels)}


# ------------------------------------------------------------------ the register
def test_register_shows_the_log_models_deployments_and_charts(page, world):
    fig = public_figures(world)
    page.goto("/")
    assert page.inner_text("#tree-size") == str(fig["tree_size"])
    lg = world.ledger()
    try:
        assert page.inner_text("#verifier-key") == lg.verifier_key
        claimed = lg.entries_of_type("model").__next__()[1]["card"]["claimed"]["metrics"]
    finally:
        lg.close()
    models = rows_of(page, "#models")
    assert len(models) == 1
    name, provider, status, claims, weights, decisions = models[0]
    assert name.startswith("German Credit scorecard 1.0-seed0") and provider == "Example Bank model risk team"
    assert status == "active" and weights == "researchers" and decisions == str(300 + 2 + N_PUB + 1)
    assert claims == f"accuracy {claimed['accuracy']:.3f}, roc_auc {claimed['roc_auc']:.3f}"
    deps = {r[0]: r for r in rows_of(page, "#deployments")}
    assert deps[world.dep_priv][1:2] == ["private"] and deps[world.dep_priv][3] == str(fig["per_dep"][world.dep_priv]) == "302"
    assert deps[PUB][1] == "public-service" and deps[PUB][3] == str(N_PUB + 1)
    # Charts: inline SVG with a title and a description carrying the figures.
    assert page.locator("svg.chart[role=img]").count() == 3
    outputs_desc = page.locator("svg.chart desc").nth(1).text_content()
    for label, n in fig["labels"].items():
        assert f"{label}: {n} of {N_PUB + 1}" in outputs_desc
    # Realised against claimed accuracy, from the public outcomes.
    lo, hi = wilson_interval(fig["correct"], fig["n_outcomes"])
    (row,) = rows_of(page, "#accuracy")
    assert row == [f"German Credit scorecard 1.0-seed0 in {PUB}", str(N_PUB_OUTCOMES), str(fig["correct"]),
                   f"{fig['correct'] / N_PUB_OUTCOMES:.1%}", f"{lo:.1%} – {hi:.1%}", f"{claimed['accuracy']:.1%}"]
    # Findings of the monitors are listed (newest first, five).
    assert len(rows_of(page, "#findings")) == 5
    shot(page, world, "register")


def test_model_page_card_status_history_downloads_and_findings(page, world):
    page.goto(f"/models/{world.model}")
    assert page.inner_text("h1").startswith("German Credit scorecard")
    assert page.inner_text("#fingerprint") == world.model
    assert page.inner_text("#disclosure").startswith("researchers: supervisors and research institutions")
    assert page.inner_text("#output-meaning") == "1 = bad credit risk, 0 = good (classes 0, 1; positive class 1)"
    history = rows_of(page, "#history")
    assert history[0][2:] == ["active", "registered"] and history[0][0] == "0"
    assert rows_of(page, "#downloads") == [["researcher", "1"]]
    features = {r[0]: r for r in rows_of(page, "#features")}
    assert len(features) == 20 and features["age_in_years"][2:4] == ["yes", "yes"] and features["duration_in_month"][2:4] == ["no", "no"]
    lg = world.ledger()
    try:
        n_findings = sum(1 for _, e in lg.entries_of_type("finding") if e.get("model") == world.model)
    finally:
        lg.close()
    assert len(rows_of(page, "#findings")) == n_findings > 0
    assert "evidence" not in page.inner_text("#findings").lower()  # evidence (group figures) is for the console
    shot(page, world, "model")
    # Unknown and malformed fingerprints: an HTML page saying so.
    r = world.http.get("/models/sha256:" + "0" * 64)
    assert r.status_code == 404 and "text/html" in r.headers["content-type"] and "unknown model" in r.text
    assert world.http.get("/models/<script>").status_code == 404
    # A page that does not exist: HTML for a browser; the API and the verifier endpoints keep problem+json.
    r = world.http.get("/no-such-page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "Page not found" in r.text and r.headers["content-security-policy"].startswith("default-src 'none'")
    for url in ("/docs", "/redoc"):  # no Swagger UI or ReDoc: they load scripts from a CDN on the console's origin
        r = world.http.get(url, headers={"Accept": "text/html"})
        assert r.status_code == 404 and "Interactive API docs are not served" in r.text and "/openapi.json" in r.text, url
    for url in ("/v1/no-such-thing", "/tile/9/999", "/no-such-page"):
        r = world.http.get(url, headers={"Accept": "text/html"} if url.startswith(("/v1", "/tile")) else {})
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", url


def test_decisions_filter_paginate_and_refuse_bad_input(page, world):
    fig = public_figures(world)
    page.goto("/decisions")
    first = rows_of(page, "#decisions")
    assert [int(r[0]) for r in first] == fig["pub"][:50]
    assert all(r[3] == PUB for r in first)
    lg = world.ledger()
    try:
        e = json.loads(lg.entry(fig["pub"][0]))
    finally:
        lg.close()
    p1 = e["output"]["proba"][1]
    assert first[0][4] == f"{e['output']['label']} (P[1] = {p1:.2f})"
    shot(page, world, "decisions", height=1200)
    page.click("a[rel=next]")
    second = rows_of(page, "#decisions")
    assert [int(r[0]) for r in second] == fig["pub"][50:]
    assert page.locator("a[rel=next]").count() == 0
    # Filter by output label and by date, through the form.
    page.goto("/decisions")
    page.fill("#f-output", "1")
    page.click("form.filters button[type=submit]")
    ones = rows_of(page, "#decisions")
    assert len(ones) == fig["labels"][1] and all(r[4].startswith("1 ") for r in ones)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    page.goto(f"/decisions?since={today}&until={today}&model={world.model}")
    assert len(rows_of(page, "#decisions")) == 50
    page.goto("/decisions?until=2000-01-01")
    assert page.inner_text("#h-results") == "No decisions match"
    # Bad input: the error summary names each field, takes the focus, and the fields are marked invalid.
    r = page.goto(f"/decisions?since=2026-02-30&deployment={world.dep_priv}&output=" + "x" * 201)
    assert r.status == 400
    summary = page.inner_text("#error-summary")
    assert "From: must be a date such as 2026-05-04" in summary
    assert "Deployment: this deployment is private" in summary and "Output: at most 200 characters" in summary
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.get_attribute("#f-since", "aria-invalid") == "true"
    assert page.locator("#decisions").count() == 0
    # A private decision's page shows the entry's public fields, never its output.
    page.goto(f"/decisions/{world.subject_index}")
    assert page.inner_text("#output") == "private: logged as a commitment"


def test_published_reports_are_listed_and_served_without_scripts(page, world):
    page.goto("/reports")
    rows = rows_of(page, "#reports")
    assert [r[0] for r in rows] == ["glasslog scenario lab: whimper", "Audit of the credit scorecard as researcher"]
    report = json.loads((world.dir / "reports/audits/researcher-2026-11/report.json").read_text())
    alerts = sum(f["verdict"] == "alert" for f in report["findings"])
    assert rows[1][1:] == ["Audit", report["created"][:19].replace("T", " ") + " UTC", f"{alerts} alerting of {len(report['findings'])}"]
    page.click("text=Audit of the credit scorecard as researcher")
    assert page.url.endswith("/reports/audits/researcher-2026-11")
    assert page.inner_text("h1") == "Audit of the credit scorecard as researcher"
    r = world.http.get("/reports/audits/researcher-2026-11")
    assert r.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
    assert r.content == (world.dir / "reports/audits/researcher-2026-11/report.html").read_bytes()
    for bad in ("/reports/audits/..hidden", "/reports/keys/x", "/reports/audits/nope"):
        r = world.http.get(bad)
        assert r.status_code == 404 and "No such report" in r.text, bad
    r = world.http.get("/reports/audits/%2e%2e%2f..%2flog.key")  # no route reaches the signer key
    assert r.status_code == 404 and "PRIVATE+KEY" not in r.text
    page.goto("/")
    assert [r[0] for r in rows_of(page, "#reports")] == [r[0] for r in rows]


# ------------------------------------------------------------------ receipts
def python_checks(receipt: Receipt, key: str) -> list[dict]:
    return [vars(c) for c in verify_receipt(receipt, key).checks]


def page_checks(page) -> list[dict]:
    return page.evaluate("window.glasslogLastReport.checks")


def verify_pasted(page, text: str) -> str:
    page.fill("#receipt-text", text)
    page.evaluate("window.glasslogLastReport = null")
    page.click("#verify")
    wait_js(page, "window.glasslogLastReport !== null && document.getElementById('result').hidden === false")
    return page.inner_text("#verdict")


def tampered(receipt: Receipt, what: str) -> Receipt:
    d = receipt.to_dict()
    if what == "entry":  # one hex digit of the input commitment: still canonical JSON, so the proof must catch it
        entry = bytearray(receipt.entry)
        at = entry.index(b'"input":"sha256:') + len(b'"input":"sha256:')
        entry[at] = ord("1") if entry[at] != ord("1") else ord("2")
        d["entry"] = base64.b64encode(bytes(entry)).decode()
    elif what == "entry-json":  # the first byte: no longer a JSON object
        d["entry"] = base64.b64encode(b"[" + receipt.entry[1:]).decode()
    elif what == "proof":
        p = bytearray(receipt.inclusion_proof[0])
        p[0] ^= 1
        d["inclusion_proof"][0] = base64.b64encode(bytes(p)).decode()
    elif what == "signature":
        text, _, sig_line = receipt.checkpoint.rstrip("\n").rpartition("\n")
        name, sig = sig_line[2:].split(" ")
        raw = bytearray(base64.b64decode(sig))
        raw[10] ^= 1  # inside the Ed25519 signature (after the 4-byte key hash)
        d["checkpoint"] = f"{text}\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    return Receipt.from_dict(d)


def test_receipt_verifies_in_the_browser_exactly_as_the_python_verifier(page, world):
    receipt = Receipt.load(world.demo_receipt)
    key = (world.dir / "log.vkey").read_text().strip()
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    page.set_input_files("#receipt-file", str(world.demo_receipt))
    wait_js(page, "window.glasslogLastReport && document.getElementById('result').hidden === false")
    assert page.inner_text("#verdict") == f"Receipt verified: decision {receipt.index} is on the log"
    expected = python_checks(receipt, key)
    assert [c["name"] for c in expected] == ["checkpoint signature", "entry format", "inclusion proof", "input commitment",
                                             "output commitment", "subject commitment"]
    assert page_checks(page) == expected  # names, results and messages, check by check
    plain = page.inner_text("#plain")
    output = json.loads(receipt.private["output"][1])
    assert f"(entry {receipt.index} of the log)" in plain and f"Its output was {output['label']}." in plain
    assert "The model card explains: \u201c1 = bad credit risk, 0 = good\u201d." in plain
    assert f"at {output['proba'][1]:.2f}." in plain
    inputs = dict(rows_of(page, "#inputs"))
    assert inputs["duration_in_month"] == str(json.loads(receipt.private["input"][1])["duration_in_month"])
    shot(page, world, "receipt-valid")

    # One byte changed in the entry, the proof or the signature: invalid, and the failing check is the one Python names.
    for what, failing in (("entry", "inclusion proof"), ("entry-json", "entry format"), ("proof", "inclusion proof"),
                          ("signature", "checkpoint signature")):
        bad = tampered(receipt, what)
        verdict = verify_pasted(page, bad.to_json())
        assert verdict == f"Receipt NOT valid: {failing} failed", what
        want = python_checks(bad, key)
        got = page_checks(page)
        assert [(c["name"], c["ok"]) for c in got] == [(c["name"], c["ok"]) for c in want], what
        assert got[-1]["name"] == failing and not got[-1]["ok"]
        if what != "entry-json":  # JSON parsers word their errors differently; the rest is word for word
            assert got == want, what
        assert page.locator("#decision-summary").is_hidden()
        if what == "signature":
            assert "does not verify: the note was altered or signed by another key" in page.inner_text("#checks")
            shot(page, world, "receipt-tampered")


def test_receipt_page_refuses_bad_input_clearly(page, world):
    receipt = Receipt.load(world.demo_receipt)
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    page.click("#verify")
    assert page.inner_text("#form-error") == "Give a receipt first: open your receipt file, paste it, or give your receipt token."
    assert verify_pasted(page, "{not json") == "Receipt NOT valid: receipt format failed"
    assert page.inner_text("#checks").startswith("\u2717receipt format — FAILED: receipt is not valid JSON")
    assert verify_pasted(page, json.dumps({**receipt.to_dict(), "index": "7"})) == "Receipt NOT valid: receipt format failed"
    assert "receipt field 'index' must be int" in page.inner_text("#checks")
    # Another log's key (same name, another key), and a malformed key: the same checks and messages as Python's.
    other = str(generate_signer(receipt.origin).verifier())
    page.fill("#verifier-key", other)
    assert verify_pasted(page, receipt.to_json()) == "Receipt NOT valid: checkpoint signature failed"
    assert page_checks(page) == python_checks(receipt, other)
    assert "carries no signature by the key" in page.inner_text("#checks")
    page.fill("#verifier-key", "not-a-key")
    verify_pasted(page, receipt.to_json())
    assert page_checks(page) == python_checks(receipt, "not-a-key")
    # A malformed receipt token never leaves the page.
    page.fill("#receipt-text", "")
    page.fill("#token", "grt_short")
    page.click("#verify")
    assert page.inner_text("#form-error").startswith("A receipt token looks like grt_, the decision's number")
    assert page.get_attribute("#token", "aria-invalid") == "true"


def test_receipt_verification_needs_nothing_from_the_server(page, world):
    """With every request to the server blocked after the page loaded, a pasted receipt still verifies."""
    receipt = Receipt.load(world.demo_receipt)
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    blocked: list[str] = []
    page.route("**/*", lambda route: (blocked.append(route.request.url), route.abort()))
    assert verify_pasted(page, receipt.to_json()) == f"Receipt verified: decision {receipt.index} is on the log"
    assert all("/v1/models/" in u for u in blocked)  # only the courtesy look-up of the model card was attempted
    assert f"model {json.loads(receipt.entry)['model']} made a decision" in page.inner_text("#plain")


def test_receipt_page_outside_a_secure_context_says_it_cannot_check(page, world):
    """Over plain HTTP at an address other than localhost (``glasslog serve --host 0.0.0.0``) browsers withhold WebCrypto:
    the page says, on load and on Verify, that it cannot check receipts here and how to, never that a receipt is invalid;
    a receipt token is not sent; the console warns that the key would travel in clear."""
    receipt = Receipt.load(world.demo_receipt)
    insecure = world.url.replace("127.0.0.1", INSECURE_HOST)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{insecure}/receipt")
    page.wait_for_selector("body[data-ready]")
    assert page.evaluate("window.isSecureContext") is False
    notice = page.inner_text("#insecure")
    assert notice.startswith("This browser cannot check receipts on this page")
    assert "not a secure context (HTTPS or localhost)" in notice and "This says nothing about your receipt" in notice
    assert "open this page over HTTPS" in notice and f"glasslog verify receipt receipt.json --key '{receipt_key(world)}'" in notice
    assert verify_pasted(page, receipt.to_json()) == "Not checked: this browser cannot check receipts on this page"
    assert page.get_attribute("#result", "data-ok") == "unknown" and page.evaluate("document.activeElement.id") == "verdict"
    report = page.evaluate("window.glasslogLastReport")
    assert report["checks"] == [] and report["unavailable"].startswith("this page is not a secure context")
    checks = page.inner_text("#checks")
    assert "This says nothing about the receipt" in checks and "open this page over HTTPS" in checks
    assert "glasslog verify receipt receipt.json" in checks
    assert "NOT valid" not in page.inner_text("main") and "FAILED" not in page.inner_text("main")
    # A receipt link with a token: the token leaves the address and is not sent over plain HTTP.
    page.goto("about:blank")
    page.goto(f"{insecure}/receipt#token={world.subject_token}")
    page.wait_for_selector("body[data-ready]")
    assert page.inner_text("#verdict") == "Not checked: this browser cannot check receipts on this page"
    assert "token" not in page.url and not [u for u in requests if "/v1/receipt" in u]
    page.goto(f"{insecure}/console")
    page.wait_for_selector("body[data-ready]")
    assert page.inner_text("#insecure-key").startswith("Your key would be sent unencrypted.")
    # On 127.0.0.1 (a secure context) neither notice shows; a browser without Ed25519 is told so, not given a verdict.
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    assert page.locator("#insecure").is_hidden()
    page.evaluate("() => { crypto.subtle.importKey = async () => { throw new DOMException('no Ed25519', 'NotSupportedError'); }; }")
    assert verify_pasted(page, receipt.to_json()) == "Not checked: this browser cannot check receipts on this page"
    assert page.evaluate("window.glasslogLastReport.unavailable").startswith("this browser's WebCrypto does not support Ed25519")
    assert "open this page in a current browser" in page.inner_text("#checks")


def receipt_key(w: World) -> str:
    return (w.dir / "log.vkey").read_text().strip()


def test_receipt_page_names_the_entry_type_and_refuses_oversized_input(page, world):
    lg = world.ledger()
    try:
        model_receipt = capture.receipt(lg, 0)
        outcome_index, outcome = next(iter(lg.entries_of_type("outcome")))
        outcome_receipt = capture.receipt(lg, outcome_index)
    finally:
        lg.close()
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    assert verify_pasted(page, model_receipt.to_json()) == "Receipt verified: entry 0, a model entry, is on the log"
    assert verify_pasted(page, outcome_receipt.to_json()) == (f"Receipt verified: entry {outcome_index}, the outcome of decision "
                                                              f"{outcome['decision']}, is on the log")
    assert page_checks(page)[-1] == {"name": "outcome commitment", "ok": True,
                                     "detail": "the outcome value in the receipt matches the logged commitment"}
    # A file over 1 MB: refused, and Verify repeats why (not "give a receipt first").
    too_large = "This file is larger than any receipt (over 1 MB): choose the receipt.json you were given."
    page.set_input_files("#receipt-file", files=[{"name": "receipt.json", "mimeType": "application/json",
                                                  "buffer": b" " * (1024 * 1024 + 1)}])
    wait_js(page, "document.getElementById('form-error').hidden === false")
    assert page.inner_text("#form-error") == too_large and page.locator("#result").is_hidden()
    page.click("#verify")
    assert page.inner_text("#form-error") == too_large
    # Pasted text over 1 MB: the same limit, said plainly.
    page.evaluate("""n => { const t = document.getElementById('receipt-text'); t.value = '{"format": "' + 'x'.repeat(n);
                            t.dispatchEvent(new Event('input')); }""", 1024 * 1024)
    page.click("#verify")
    assert page.inner_text("#form-error").startswith("The pasted text is larger than any receipt (over 1 MB)")
    assert page.get_attribute("#receipt-text", "aria-invalid") == "true" and page.locator("#result").is_hidden()


def test_receipt_link_with_token_verifies_and_the_subject_flags_it(page, world):
    page.goto(f"/receipt#token={world.subject_token}")
    page.wait_for_selector("body[data-ready]")
    assert page.inner_text("#form-error") == ""
    assert page.inner_text("#verdict") == f"Receipt verified: decision {world.subject_index} is on the log"
    assert "token" not in page.url and world.subject_token not in page.url  # the fragment is gone from the address
    facts = page.inner_text("#decision-facts")
    assert world.subject_id in facts and "Outcome" in facts  # their own data, in their own browser
    # Flag it as its subject.
    page.wait_for_selector("#receipt-flag:not([hidden])")
    assert page.inner_text("#flag-decision-label") == str(world.subject_index)
    page.check("#cat-wrong-reasons")
    text = "My stated employment was misread; subject private note 7731."
    page.fill("#flag-text", text)
    page.click("#flag-submit")
    page.wait_for_selector("#flag-result a")
    assert page.inner_text("#flag-result").startswith("Thank you. Your flag is on the log as entry ")
    r = world.http.get("/v1/flags", params={"decision": str(world.subject_index)})
    (flag,) = r.json()["flags"]
    assert flag["by_role"] == "subject" and flag["category"] == "wrong-reasons" and flag["text_state"] == "withheld"
    world.personal.append(text)  # a subject's words about a private decision: never on a public page
    # On the public list the flag is there, its text withheld.
    page.goto("/flags")
    item = page.locator(f"#flag-{flag['index']}")
    assert "flagged by subject" in item.inner_text() and text not in item.inner_text()
    assert "visible to the reporter and supervisors only" in item.inner_text()
    # A public-service decision's receipt by index: fetched from the API, verified here.
    page.goto(f"/receipt?index={world.subject_index}")  # a private decision's receipt is its subject's
    page.wait_for_selector("body[data-ready]")
    assert page.inner_text("#form-error").startswith(f"Decision {world.subject_index} is in a private deployment")
    page.goto(f"/receipt?index={world.pub_indexes[3]}")
    wait_js(page, "window.glasslogLastReport")
    assert page.inner_text("#verdict") == f"Receipt verified: decision {world.pub_indexes[3]} is on the log"


def test_browser_verifier_on_the_reference_vectors(page, world):
    """Every inclusion proof of tests/vectors/merkle.json (Go sumdb/tlog) and the signed-note vector, in the browser."""
    merkle = json.loads((SHARED_VECTORS / "merkle.json").read_text())
    note = json.loads((SHARED_VECTORS / "signed_note.json").read_text())
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    result = page.evaluate("""async ([cases, note]) => {
        const V = window.GlasslogVerify, dec = (s) => V.b64decode(s);
        let ok = 0, tamperedCaught = 0;
        for (const c of cases) {
            const proof = c.proof.map(dec);
            const root = await V.rootFromInclusionProof(c.index, c.tree_size, dec(c.leaf_hash), proof);
            if (V.b64encode(root) === c.root) ok++;
            if (proof.length) {
                proof[proof.length - 1] = proof[proof.length - 1].slice(); proof[proof.length - 1][31] ^= 1;
                try { await V.verifyInclusion(c.index, c.tree_size, dec(c.leaf_hash), proof, dec(c.root)); }
                catch (e) { if (e instanceof V.VerifyError) tamperedCaught++; }
            }
        }
        const vk = await V.parseVerifierKey(note.verifier_key);
        const text = await V.openNote(note.signed_note, vk);
        const cp = await V.openCheckpoint(note.signed_note, vk);
        let altered = null;
        try { await V.openNote(note.signed_note.replace("70000", "70001"), vk); } catch (e) { altered = e.message; }
        return {ok, tamperedCaught, withProof: cases.filter(c => c.proof.length).length, text, size: String(cp.treeSize), altered};
    }""", [merkle["inclusion"], note])
    assert result["ok"] == len(merkle["inclusion"]) == 470
    assert result["tamperedCaught"] == result["withProof"] > 400
    assert result["text"] == note["checkpoint_text"] and result["size"] == "70000"
    assert result["altered"] == "signature by example.org/decisions does not verify: the note was altered or signed by another key"


# ------------------------------------------------------------------ flags and ratings
def test_flag_submitted_in_the_page_appears_in_the_ranked_list(page, world):
    target = world.pub_indexes[7]
    page.goto(f"/decisions/{target}")
    page.wait_for_selector("body[data-flags-ready]")
    page.click("#flag-submit")
    assert page.evaluate("document.activeElement.id") == "flag-errors"
    assert page.inner_text("#flag-category-e") == "Choose what is wrong."
    page.check("#cat-unfair")
    text = "Applicants with the same record get opposite outputs here."
    page.fill("#flag-text", text)
    assert page.inner_text("#flag-text-count") == f"{len(text)} of 1000 characters"
    page.click("#flag-submit")
    page.wait_for_selector("#flag-result a")
    index = int(re.search(r"entry (\d+)", page.inner_text("#flag-result")).group(1))
    # The same person again: the API's one-flag-per-person limit, shown next to the field.
    page.check("#cat-harmful")
    page.click("#flag-submit")
    page.wait_for_selector("#flag-errors:not([hidden])")
    assert f"you already flagged decision {target} (flag {index})" in page.inner_text("#flag-errors")
    # The ranked list shows it, with its text, category and decision.
    page.goto("/flags")
    item = page.locator(f"#flag-{index}")
    assert item.locator("h3").inner_text().split("\n")[0].startswith("#")
    assert "unfair" in item.inner_text() and text in item.inner_text()
    assert item.locator(f"a[href='/decisions/{target}']").count() == 1
    # The decision page lists it too.
    page.goto(f"/decisions/{target}")
    assert "unfair" in page.inner_text("#decision-flags")
    # A flag about a private decision, as the public: refused by the API, explained in the page.
    page.goto(f"/flags?decision={world.subject_index + 1}")
    page.wait_for_selector("body[data-flags-ready]")
    page.check("#cat-other")
    page.click("#flag-submit")
    page.wait_for_selector("#flag-errors:not([hidden])")
    assert "only the person it is about can flag it, with the receipt token" in page.inner_text("#flag-errors")
    assert page.inner_text("#flag-token-e") != ""
    # With a receipt token of another decision: the API refuses, saying so next to the token field.
    page.fill("#flag-token", world.pub_token)
    page.click("#flag-submit")
    wait_js(page, "document.querySelector('#flag-errors li') !== null")
    wrong = (f"this receipt token opens decision {world.pub_token_index}, not decision {world.subject_index + 1}: flag a "
             "decision with the receipt token of that decision")
    assert page.inner_text("#flag-token-e") == wrong and page.inner_text("#flag-errors li") == wrong
    assert page.get_attribute("#flag-token", "aria-invalid") == "true"
    # Nothing given, and a decision index that is not a number.
    page.fill("#flag-decision", "12a")
    page.click("#flag-submit")
    assert "Decision: give its entry number, digits only" in page.inner_text("#flag-errors")
    assert page.get_attribute("#flag-decision", "aria-invalid") == "true"


def test_ratings_from_the_page_update_the_flag(page, world):
    # A flag by a researcher (another person), rated from the page by the public (this browser's address).
    r = world.http.post("/v1/flags", headers=world.h("researcher"),
                        json={"model": world.model, "category": "wrong-reasons", "text": "Relies on telephone ownership."})
    assert r.status_code == 201, r.text
    index = r.json()["index"]
    page.goto("/flags")
    page.wait_for_selector("body[data-flags-ready]")
    form = page.locator(f"form.rate-form[data-flag='{index}']")
    form.locator("button[value=helpful]").click()
    wait_js(page, f"document.querySelector(\"form.rate-form[data-flag='{index}'] .rate-result\").textContent !== ''")
    assert form.locator(".rate-result").inner_text().startswith("Thank you: your rating is on the log as entry ")
    assert page.inner_text(f"#ratings-{index} .n-helpful") == "1"
    form.locator("button[value=not-helpful]").click()
    wait_js(page, f"document.querySelector('#ratings-{index} .n-not-helpful').textContent === '1'")
    assert "replaces your earlier rating" in form.locator(".rate-result").inner_text()
    assert page.inner_text(f"#ratings-{index} .n-helpful") == "0"
    # The same rating again: nothing new on the log, and the page says so.
    size = world.http.get("/v1/log").json()["tree_size"]
    entry = int(re.search(r"entry (\d+)", form.locator(".rate-result").inner_text()).group(1))
    form.locator("button[value=not-helpful]").click()
    wait_js(page, f"document.querySelector(\"form.rate-form[data-flag='{index}'] .rate-result\").textContent.startsWith('You had')")
    assert form.locator(".rate-result").inner_text() == (f"You had already rated this flag not helpful (log entry {entry}); "
                                                         "nothing new was logged.")
    assert world.http.get("/v1/log").json()["tree_size"] == size
    page.reload()
    assert page.inner_text(f"#ratings-{index}") == "Ratings: 0 helpful, 0 somewhat helpful, 1 not helpful"
    # No rating buttons where the API would refuse the rating, but the reason: a flag filed from this address (this
    # test's client is on it too), and a flag whose text is not public (about a private decision).
    r = world.http.post("/v1/flags", json={"decision": world.pub_indexes[9], "category": "other"})
    assert r.status_code == 201, r.text
    mine = r.json()["index"]
    text = "Researcher's note on a private decision: income field truncated."
    r = world.http.post("/v1/flags", headers=world.h("researcher"),
                        json={"decision": world.subject_index + 1, "category": "wrong-outcome", "text": text})
    assert r.status_code == 201, r.text
    private = r.json()["index"]
    world.personal.append(text)
    page.reload()
    assert page.locator(f"form.rate-form[data-flag='{mine}']").count() == 0
    assert page.inner_text(f"#rate-none-{mine}").startswith("You cannot rate this flag: it was filed from your address")
    problem = world.http.post(f"/v1/flags/{mine}/ratings", json={"rating": "helpful"})
    assert problem.status_code == 403 and "you reported this flag" in problem.json()["detail"]  # what the page spares them
    assert page.locator(f"form.rate-form[data-flag='{private}']").count() == 0
    assert page.inner_text(f"#rate-none-{private}").startswith("Only supervisors and the operator rate this flag")
    assert world.http.post(f"/v1/flags/{private}/ratings", json={"rating": "helpful"}).status_code == 403
    assert "supervisors read it in the console" in page.inner_text(f"#flag-{private}") and text not in page.content()
    shot(page, world, "flags")


def test_flag_rate_limit_is_shown(browser, world, tmp_path, monkeypatch):
    from glasslog.server import deps

    monkeypatch.setattr(deps, "FLAGS_PER_HOUR", 1)
    d = tmp_path / "log"
    shutil.copytree(world.dir, d)
    server = Server(create_app(d))
    try:
        context = browser.new_context(base_url=server.url)
        pg = context.new_page()
        for n, category in enumerate(("other", "harmful")):
            pg.goto(f"/flags?model={world.model}")
            pg.wait_for_selector("body[data-flags-ready]")
            pg.check(f"#cat-{category}")
            pg.click("#flag-submit")
            if n == 0:
                pg.wait_for_url("**/flags?flagged=*")
            else:
                pg.wait_for_selector("#flag-errors:not([hidden])")
                assert "Too many flags or ratings from here in the last hour: at most 1 flags per hour per key, receipt token " \
                       "or address; try again in 60 minutes" in pg.inner_text("#flag-errors")
        context.close()
    finally:
        server.stop()


def test_flag_form_cannot_send_without_javascript(browser, world):
    """Without JavaScript the flag form cannot submit (a GET would put the text in the address): it is method="post", its
    button is disabled until flags.js enables it, and a notice says why; rating buttons likewise."""
    context = browser.new_context(base_url=world.url, java_script_enabled=False)
    try:
        pg = context.new_page()
        for url, field in (("/flags", "#flag-decision"), (f"/decisions/{world.pub_indexes[11]}", "#flag-token")):
            pg.goto(url)
            assert pg.get_attribute("#flag-form", "method") == "post" and pg.locator("#flag-submit").is_disabled()
            assert pg.inner_text("#flag-noscript").startswith("Flagging needs JavaScript, which is off in this browser")
            pg.check("#cat-other")
            pg.fill("#flag-text", "words that must never be in an address")
            pg.fill(field, "12")
            pg.press(field, "Enter")  # implicit submission: none, with the form's submit button disabled
            pg.wait_for_load_state()
            assert pg.url == world.url + url
        pg.goto("/flags")
        buttons = pg.locator("form.rate-form button")
        assert buttons.count() > 0 and all(b.is_disabled() for b in buttons.all())
        assert {f.get_attribute("method") for f in pg.locator("form.rate-form").all()} == {"post"}
    finally:
        context.close()


# ------------------------------------------------------------------ the supervisor console
def test_supervisor_suspends_a_model_in_the_console_and_the_public_page_shows_it(page, world):
    r = world.http.post("/v1/flags", headers=world.h("researcher"),
                        json={"decision": world.pub_indexes[20], "category": "harmful", "text": "Denied with no stated reason."})
    assert r.status_code == 201
    flag_index = r.json()["index"]
    assert world.http.post(f"/v1/flags/{flag_index}/ratings", json={"rating": "somewhat"}).status_code == 201
    # A flag whose text the public may not read (about a private decision): supervisors read it in the console.
    private_text = "The applicant's declared income was read as monthly, not yearly."
    r = world.http.post("/v1/flags", headers=world.h("researcher"),
                        json={"decision": world.subject_index, "category": "wrong-outcome", "text": private_text})
    assert r.status_code == 201, r.text
    private_flag = r.json()["index"]
    world.personal.append(private_text)
    page.goto("/console")
    page.wait_for_selector("body[data-ready]")
    for key, message in (("glk_wrong", "An API key looks like glk_"),
                         (world.tokens["researcher"], "This key is not a supervisor's key"),
                         ("glk_" + "0" * 12 + "_" + "A" * 43, "This key is not known to this log")):
        page.fill("#api-key", key)
        page.click("#signin-form button")
        wait_js(page, "document.getElementById('signin-error').hidden === false")
        assert page.inner_text("#signin-error").startswith(message), key
    page.fill("#api-key", world.tokens["supervisor"])
    page.click("#signin-form button")
    page.wait_for_selector("body[data-console-ready]")
    assert page.evaluate("document.activeElement.id") == "h-console"  # focus moves to the console, not to the body
    assert page.locator("#insecure-key").is_hidden()  # on 127.0.0.1 the key does not travel in clear
    assert world.tokens["supervisor"] not in page.url
    assert page.evaluate("sessionStorage.getItem('glasslog.console.key')") == world.tokens["supervisor"]
    assert page.evaluate("localStorage.length") == 0
    assert page.locator("#api-key").input_value() == ""
    # Findings with evidence: the monitors' disparity finding names its groups here (not on public pages).
    findings = page.locator("#console-findings tbody tr")
    assert findings.count() > 30
    row = page.locator("#console-findings tr[data-check='disparity.selection_rate']").filter(has_text=world.dep_priv).filter(
        has_text="(personal_status_and_sex)")
    assert row.count() == 1
    row.locator("summary").click()
    evidence = json.loads(row.locator("pre").inner_text())["evidence"]
    assert evidence["attribute"] == "personal_status_and_sex" and "male : single" in evidence["groups"]
    # Missing statistics and thresholds show as a dash or not at all, never as "null".
    lg = world.ledger()
    try:
        missing = {i: e for i, e in lg.entries_of_type("finding") if e.get("value") is None or e.get("threshold") is None}
    finally:
        lg.close()
    assert any(e["check"] == "anomaly.burst" for e in missing.values())
    checked = 0
    for i, e in missing.items():
        cell = page.locator(f"#console-findings tr[data-finding='{i}'] td").nth(3)
        if not cell.count():
            continue
        checked += 1
        if e.get("value") is None:
            threshold = "" if e.get("threshold") is None else f" (threshold {e['threshold']})"
            assert cell.inner_text() == f"{e['statistic']} = \u2014{threshold}", i
        else:
            assert cell.inner_text().startswith(f"{e['statistic']} = ") and "threshold" not in cell.inner_text(), i
    assert checked >= 5
    assert "null" not in " ".join(page.locator("#console-findings td:nth-child(4)").all_inner_texts())
    # Run the monitors from the console: their findings are recorded and listed.
    before = findings.count()
    page.click("#monitors-form button")
    wait_js(page, "document.getElementById('monitors-result').className === 'success'")
    recorded = re.search(r"recorded as entries (\d+)–(\d+)", page.inner_text("#monitors-result"))
    first, last = int(recorded.group(1)), int(recorded.group(2))
    wait_js(page, f"document.querySelector(\"#console-findings tr[data-finding='{last}']\") !== null")
    assert page.locator("#console-findings tbody tr").count() == min(200, before + last - first + 1)
    # Triage: the researcher's flags are in the queue, with their texts; resolve one (a reason is required).
    item = page.locator(f"#triage-items li[data-item='{flag_index}']")
    assert item.count() == 1 and "harmful" in item.inner_text()
    assert "support: needs-more-ratings, 1 reporter, 1 rating · state: open" in item.inner_text()
    page.wait_for_selector(f"#triage-items blockquote.flag-text[data-flag='{private_flag}']")
    assert page.inner_text(f"#triage-items blockquote.flag-text[data-flag='{private_flag}']") == private_text
    assert item.locator("blockquote.flag-text").inner_text() == "Denied with no stated reason."
    assert item.locator(".flag-text-by").inner_text() == f"Flag {flag_index}, by researcher:"
    item.locator("select").select_option("resolve")
    item.locator("button[type=submit]").click()
    assert "Give a reason" in item.locator(".field-error").inner_text()
    item.locator("input[type=text]").first.fill("Reviewed: the decision letter states the reason.")
    item.locator("button[type=submit]").click()
    wait_js(page, f"!document.querySelector(\"#triage-items li[data-item='{flag_index}']\")")
    assert f"Item {flag_index}: resolve recorded as log entry" in page.inner_text("#whoami")
    # Replay verification.
    page.click("#replay-form button")
    page.wait_for_selector("#replay-verdict")
    n = public_figures(world)["per_dep"]
    total = sum(n.values())
    assert page.inner_text("#replay-verdict").startswith(f"Verified: {total} of {total} decisions reproduced by the registered weights")
    wait_js(page, "document.querySelector(\"#console-findings tr[data-check='replay.weights']\") !== null")
    assert "mismatches = 0 (threshold 0)" in page.locator("#console-findings tr[data-check='replay.weights']").inner_text()
    assert page.inner_text("#replay-history li").endswith(f"ok — {total}/{total} reproduced, 0 mismatched, 0 erased")
    # Suspend: a reason is required; then the public page shows the status and the reason.
    form = page.locator(f"#console-models tr[data-fingerprint='{world.model}'] form")
    form.locator("button").click()
    assert "Give a reason" in form.locator(".field-error").inner_text()
    form.locator("textarea").fill("Disparity in selection rates under review")
    form.locator("button").click()
    wait_js(page, "document.getElementById('whoami').textContent.includes('is now suspended')")
    shot(page, world, "console")
    page.set_viewport_size({"width": 375, "height": 800})  # on a phone the console's tables scroll in their boxes
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.evaluate("document.querySelector('#console-findings').parentElement.scrollWidth") > 375
    page.set_viewport_size({"width": 1280, "height": 900})
    public = page.context.new_page()
    public.goto(f"/models/{world.model}")
    assert public.inner_text("h1 .badge") == "suspended"
    last = rows_of(public, "#history")[-1]
    key_id = world.tokens["supervisor"].split("_")[1]
    assert last[2:] == ["suspended", f"Disparity in selection rates under review (supervisor {key_id})"]
    public.goto("/")
    assert rows_of(public, "#models")[0][2] == "suspended"
    r = world.http.post("/v1/decisions", headers=world.h("operator"),
                        json={"model": world.model, "deployment": PUB, "rows": [{"input": json.loads(load_german_credit()[0].iloc[5].to_json())}]})
    assert r.status_code == 409  # the kill switch holds
    # Reinstate from the console, then sign out: the key is gone from the tab.
    form = page.locator(f"#console-models tr[data-fingerprint='{world.model}'] form")
    form.locator("textarea").fill("Review closed: rates within tolerance after correction")
    form.locator("button").click()
    wait_js(page, "document.getElementById('whoami').textContent.includes('is now active')")
    public.goto(f"/models/{world.model}")
    assert public.inner_text("h1 .badge") == "active"
    assert rows_of(public, "#history")[-1][2] == "active"
    page.click("#signout")
    assert page.evaluate("sessionStorage.getItem('glasslog.console.key')") is None
    assert page.locator("#console").is_hidden()


def test_console_says_why_a_revoked_key_signs_out(page, world):
    lg = world.ledger()
    try:
        key, token = KeyStore(lg).create("supervisor", "web tests: to be revoked")
    finally:
        lg.close()
    page.goto("/console")
    page.wait_for_selector("body[data-ready]")
    page.fill("#api-key", token)
    page.click("#signin-form button")
    wait_js(page, "document.getElementById('console').hidden === false")
    lg = world.ledger()
    try:
        KeyStore(lg).revoke(key.key_id)
    finally:
        lg.close()
    page.reload()
    page.wait_for_selector("body[data-ready]")
    assert page.locator("#console").is_hidden() and page.locator("#signin").is_visible()
    assert page.inner_text("#signin-error").startswith("You were signed out: the key this tab kept no longer works. "
                                                       "This key is not known to this log, or it was revoked")
    assert page.evaluate("sessionStorage.getItem('glasslog.console.key')") is None


def test_time_chart_description_counts_in_words():
    one = str(charts.time_bars("Decisions per minute", [("2026-11-29 10:00", 3)], "minute"))
    assert "<desc" in one and "1 minute: 2026-11-29 10:00 3" in one
    two = str(charts.time_bars("Decisions per hour", [("2026-11-29 10:00", 3), ("2026-11-29 11:00", 0)], "hour"))
    assert "2 hours: " in two


# ------------------------------------------------------------------ privacy and accessibility
PUBLIC_PAGES = ("/", "/decisions", "/flags", "/findings", "/receipt", "/console")


def public_urls(w: World) -> list[str]:
    fig = public_figures(w)
    return [*PUBLIC_PAGES, "/reports", "/reports/audits/researcher-2026-11", f"/models/{w.model}", f"/decisions?after={fig['pub'][49]}", f"/decisions/{fig['pub'][0]}",
            f"/decisions/{w.subject_index}", f"/decisions/{w.pub_token_index}", f"/receipt?index={w.pub_indexes[0]}",
            f"/flags?decision={w.subject_index}"]


def test_no_personal_data_on_public_pages(page, world):
    assert len(world.personal) > 700  # subject ids, salts, tokens, keys, personal feature values
    feature_names = [f.name for f in german_credit_features(load_german_credit()[0])]
    value_pattern = re.compile("|".join(re.escape(f'"{n}"') + r"\s*:" for n in feature_names))
    for url in public_urls(world):
        html = world.http.get(url).text
        assert re.findall(r"<script[^>]*>", html) == [f'<script src="{s}" defer>' for s in re.findall(r'<script src="(/static/[a-z]+\.js)"', html)]
        leaked = [s for s in world.personal if s in html]
        assert not leaked, (url, leaked[:5])
        assert not value_pattern.search(html), url
        page.goto(url)
        page.wait_for_load_state("networkidle")
        rendered = page.content()  # after the page's scripts ran (the receipt page verified a public receipt here)
        leaked = [s for s in world.personal if s in rendered]
        assert not leaked, (url, leaked[:5])


CONTRAST = """() => {
  const lum = (c) => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                       return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const bg = (el) => { for (let n = el; n; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor);
                         if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
  const worst = [];
  let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!t.textContent.trim() || !el || el.closest("svg, [hidden], details:not([open]) > :not(summary)")) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === "hidden") continue;
    const s = getComputedStyle(el);
    const a = lum(rgb(s.color).slice(0, 3)), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    checked++;
    if (ratio < need) worst.push([t.textContent.trim().slice(0, 40), Math.round(ratio * 100) / 100]);
  }
  return {checked, worst};
}"""

LABELS = """() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby")
               && !(e.tagName === "BUTTON" && e.textContent.trim()))
  .map(e => e.outerHTML.slice(0, 80))"""


def test_pages_are_accessible_labels_contrast_keyboard(page, world):
    for url in public_urls(world):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert page.get_attribute("html", "lang") == "en"
        assert page.locator("h1").count() == 1, url
        assert page.evaluate(LABELS) == [], url
        contrast = page.evaluate(CONTRAST)
        assert contrast["worst"] == [] and contrast["checked"] > 20, (url, contrast)
        for svg in page.locator("svg.chart").all():
            assert svg.get_attribute("role") == "img" and svg.locator(":scope > title").text_content()
            labelled = svg.get_attribute("aria-labelledby").split()
            assert [svg.locator(f"#{i}").count() for i in labelled] == [1, 1]
        # A 375 px phone: the page does not scroll sideways (wide tables scroll in their own box). Published reports are
        # documents served as written (glasslog.audit.report lays them out), not pages of the register.
        if not url.startswith("/reports/"):
            page.set_viewport_size({"width": 375, "height": 800})
            assert page.evaluate("document.documentElement.scrollWidth") <= 375, url
            page.set_viewport_size({"width": 1280, "height": 900})
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content; a receipt verifies with the keyboard alone.
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.focus("#receipt-text")
    page.keyboard.insert_text(Receipt.load(world.demo_receipt).to_json())
    page.keyboard.press("Tab")  # the token field
    page.keyboard.press("Tab")  # the Verify button
    assert page.evaluate("document.activeElement.id") == "verify"
    page.keyboard.press("Enter")
    wait_js(page, "window.glasslogLastReport && window.glasslogLastReport.ok === true")
    assert page.evaluate("document.activeElement.id") == "verdict"  # the result takes the focus and is announced
    contrast = page.evaluate(CONTRAST)
    assert contrast["worst"] == [] and contrast["checked"] > 30, contrast
