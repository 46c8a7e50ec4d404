"""The receipt page's witness policy in a real browser (Debian's Chromium, headless, playwright).

The page checks the witnesses' cosignatures with WebCrypto (Ed25519,
SHA-256) and must agree check by check, word for word, with the Python
verifier (``verify_receipt(..., witness_keys, min_witnesses)``): both
witnesses cosigned; one of two; a cosignature altered; a witness nobody
cosigned with; a malformed key; no witness keys at all (no witness check).
Skips without Chromium, like tests/test_web.py.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from glasslog.capture import receipt as make_receipt
from glasslog.ledger import Ledger, utc_now
from glasslog.ledger.cosignature import CosignatureVerifier, Cosigner
from glasslog.ledger.receipt import Receipt
from glasslog.server import create_app
from glasslog.verify import verify_receipt

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[test]')")
CHROMIUM = Path(os.environ.get("GLASSLOG_CHROMIUM", "/usr/bin/chromium"))


class Server:
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


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: run .ci/browser-deps.sh or set GLASSLOG_CHROMIUM")
    d = tmp_path_factory.mktemp("webwitness") / "log"
    w1, w2 = Cosigner.generate("witness.example/w1"), Cosigner.generate("ngo.example/w2")
    with Ledger.create(d, "agency.example/risk") as lg:
        lg.append([{"type": "deployment", "v": 1, "deployment": f"d{i}", "visibility": "public-service",
                    "description": "test", "time": utc_now()} for i in range(12)])
        note = lg.checkpoint()
        body = note[: note.index("\n\n") + 1]
        size = lg.signed_size()
        for w in (w1, w2):
            lg.store.put_cosignature(size, str(w.verifier()), w.cosign(body), utc_now())
        rc = make_receipt(lg, 7)
        mine, other = decision_receipts(lg)
        lg.append([{"type": "deployment", "v": 1, "deployment": f"later{i}", "visibility": "public-service",
                    "description": "test", "time": utc_now()} for i in range(30)])
        from glasslog.ledger.witnesses import refresh_receipt

        later = lg.checkpoint()
        lg.store.put_cosignature(lg.signed_size(), str(w1.verifier()), w1.cosign(later[: later.index("\n\n") + 1]), utc_now())
        refreshed = refresh_receipt(lg, rc)
    assert rc.checkpoint.count("\u2014 ") == 3
    server = Server(create_app(d))
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        yield {"dir": d, "url": server.url, "browser": browser, "receipt": rc, "w1": w1, "w2": w2, "mine": mine, "other": other, "refreshed": refreshed,
               "key": (d / "log.vkey").read_text().strip()}
        browser.close()
    server.stop()


def decision_receipts(lg: Ledger) -> tuple[Receipt, Receipt]:
    """Two decisions about two applicants (subject commitments opened by their receipts)."""
    from glasslog.ledger import PrivateValue
    from glasslog.ledger.commitments import commit

    entries, private = [], []
    for i, who in enumerate(("applicant-0042", "applicant-0043")):
        subject, salt, value = commit(who)
        inp, isalt, ivalue = commit({"income": 1000 + i})
        entries.append({"type": "decision", "v": 1, "model": "sha256:" + "ab" * 32, "deployment": "agency.example/risk",
                        "time": utc_now(), "input": inp, "subject": subject, "output": {"label": i}})
        private += [PrivateValue(i, "subject", subject, salt, value), PrivateValue(i, "input", inp, isalt, ivalue)]
    res = lg.append(entries, private)
    return make_receipt(lg, res.first_index), make_receipt(lg, res.first_index + 1)


def wait_js(page, expression: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def check_in_page(page, receipt: Receipt, keys: list[str], minimum: str, subject: str = "") -> tuple[str, list[dict], list[dict]]:
    page.fill("#subject-id", subject)
    page.fill("#witness-keys", "\n".join(keys))
    page.fill("#min-witnesses", minimum)
    page.fill("#receipt-text", receipt.to_json())
    page.evaluate("window.glasslogLastReport = null")
    page.click("#verify")
    wait_js(page, "window.glasslogLastReport !== null && document.getElementById('result').hidden === false")
    return page.inner_text("#verdict"), page.evaluate("window.glasslogLastReport.checks"), page.evaluate(
        "window.glasslogLastReport.witnesses || []")


def altered(receipt: Receipt, name: str) -> Receipt:
    d = receipt.to_dict()
    lines = d["checkpoint"].split("\n")
    for i, line in enumerate(lines):
        if line.startswith(f"\u2014 {name} "):
            raw = bytearray(base64.b64decode(line.split(" ")[2]))
            raw[20] ^= 1  # inside the Ed25519 signature (after key ID and timestamp)
            lines[i] = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"
    d["checkpoint"] = "\n".join(lines)
    return Receipt.from_dict(d)


def test_witness_policy_in_the_browser_matches_the_python_verifier(setup):
    context = setup["browser"].new_context(base_url=setup["url"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    rc, key = setup["receipt"], setup["key"]
    k1, k2 = str(setup["w1"].verifier()), str(setup["w2"].verifier())
    stranger = str(Cosigner.generate("other.example/w3").verifier())
    alias = str(Cosigner("w1-alias.example/w", setup["w1"].seed).verifier())  # w1's raw key under a second name
    junk = rc.to_dict()
    junk["checkpoint"] += "\u2014 junk.example/w not*base64\n"  # a malformed line of a key nobody trusts: ignored
    junk = Receipt.from_dict(junk)
    crlf = rc.to_dict()
    crlf["checkpoint"] = crlf["checkpoint"].replace("\n", "\r\n")  # refused, never converted
    crlf = Receipt.from_dict(crlf)
    cases = [
        ("one key under two names", rc, [k1, alias], "2", False),  # one witness, counted once: 2 cannot be met
        ("one key under two names, default", rc, [k1, alias, stranger], "", False),  # 2 of the 2 distinct keys
        ("junk line of an unknown key", junk, [k1, k2], "2", True),
        ("crlf", crlf, [k1], "1", False),
        ("both", rc, [k1, k2], "2", True),
        ("default minimum", rc, [k1], "", True),
        ("one of three", rc, [k1, stranger], "2", False),
        ("default majority", rc, [k1, stranger], "", False),  # 2 of 2 by default, as verify receipt: not 1
        ("default majority of three", rc, [k1, k2, stranger], "", True),
        ("the log's own key", rc, [key, k1], "1", False),  # a log cannot witness itself
        ("altered", altered(rc, "ngo.example/w2"), [k1, k2], "2", False),
        ("stranger", rc, [stranger], "1", False),
        ("malformed key", rc, ["not-a-key"], "1", False),
        ("no witnesses", rc, [], "", True),
    ]
    for label, receipt, keys, minimum, ok in cases:
        verdict, got, witnesses = check_in_page(page, receipt, keys, minimum)
        distinct = len({CosignatureVerifier.parse(k).public_key for k in keys}) if label != "malformed key" else 1
        n = int(minimum) if minimum else (distinct // 2 + 1 if keys else 0)
        want = [vars(c) for c in verify_receipt(receipt, key, keys, n).checks] if label != "malformed key" else None
        if want is not None:
            assert got == want, label  # names, results and messages, check by check
        failed = "checkpoint signature" if label == "crlf" else "witnesses"
        assert verdict.startswith("Receipt verified" if ok else f"Receipt NOT valid: {failed} failed"), (label, verdict)
        if label == "crlf":
            assert "CR characters" in got[-1]["detail"]
        if label == "both":
            assert sorted(w["name"] for w in witnesses) == ["ngo.example/w2", "witness.example/w1"]
            assert "witness.example/w1 at" in page.inner_text("#checks")
        if label.startswith("one key under two names"):
            assert "same public key as witness.example/w1: one witness, counted once" in got[-1]["detail"], label
        if label == "junk line of an unknown key":
            detail = next(c["detail"] for c in got if c["name"] == "witnesses")
            assert "signature line by junk.example/w: its signature is not valid standard base64" in detail
        if label == "no witnesses":
            assert "witnesses" not in [c["name"] for c in got]
        if label == "malformed key":
            assert got[-1]["name"] == "witnesses" and got[-1]["detail"].startswith("witness policy: witness verifier key")
    context.close()
    assert not errors, errors


def test_subject_check_in_the_browser_matches_the_python_verifier(setup):
    """One applicant cannot be handed another applicant's valid receipt: --subject / the page's id field refuse it."""
    context = setup["browser"].new_context(base_url=setup["url"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    key = setup["key"]
    for label, receipt, subject, ok in (("mine", setup["mine"], "applicant-0042", True),
                                        ("someone else's", setup["other"], "applicant-0042", False),
                                        ("no id given", setup["other"], "", True),
                                        ("no subject in the entry", setup["receipt"], "applicant-0042", False)):
        verdict, got, _ = check_in_page(page, receipt, [], "", subject)
        want = [vars(c) for c in verify_receipt(receipt, key, subject=subject or None).checks]
        assert got == want, label
        assert verdict.startswith("Receipt verified" if ok else "Receipt NOT valid: subject failed"), (label, verdict)
        if label == "mine":
            assert page.inner_text("#decision-subject") == "This decision is about applicant-0042 \u2014 the id you gave."
        if label == "no id given":
            assert "This decision is about applicant-0043 (give your id" in page.inner_text("#decision-subject")
    context.close()
    assert not errors, errors


def test_refreshed_receipt_in_the_browser_matches_the_python_verifier(setup):
    context = setup["browser"].new_context(base_url=setup["url"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/receipt")
    page.wait_for_selector("body[data-ready]")
    rc, key = setup["refreshed"], setup["key"]
    assert rc.previous is not None and rc.tree_size > 14
    d = rc.to_dict()
    d["previous"]["consistency_proof"] = d["previous"]["consistency_proof"][:-1]  # a hash missing
    short = Receipt.from_dict(d)
    for label, receipt, ok in (("refreshed", rc, True), ("proof short", short, False)):
        verdict, got, _ = check_in_page(page, receipt, [], "")
        want = [vars(c) for c in verify_receipt(receipt, key).checks]
        assert got == want, label
        assert "earlier checkpoint" in [c["name"] for c in got]
        assert verdict.startswith("Receipt verified" if ok else "Receipt NOT valid: earlier checkpoint failed"), (label, verdict)
    context.close()
    assert not errors, errors
