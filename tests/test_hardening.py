"""Issue 17, hardening: each case was accepted (or crashed) before and is refused or reported now."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from glasslog import capture
from glasslog.access import KeyStore
from glasslog.audit.logdata import logged_decisions
from glasslog.datasets.german_credit import german_credit_features
from glasslog.ledger import Ledger
from glasslog.oversight.views import load_views
from glasslog.registry import ClaimedMetrics, ModelCard, Registry, fingerprint_frame
from glasslog.server import create_app

from .credit_support import credit_card

DEP = "bank.example/credit/hardening"


def make_card(X, train, evaluation, **changes) -> ModelCard:
    return credit_card(X, train, evaluation, version="hardening",
                       **{"output": {"classes": [0, 1], "positive": 1, "favourable": 0}, **changes})


@pytest.fixture
def deployed(tmp_path, credit):
    X, y, train, evaluation, deploy, model = credit
    d = tmp_path / "log"
    lg = Ledger.create(d, "bank.example/credit-decisions")
    record = Registry(lg).register(model, make_card(X, train, evaluation))
    wrapped = capture.wrap(lg, record.fingerprint, DEP, visibility="public-service")
    yield d, lg, record, wrapped
    lg.close()


# ------------------------------------------------------------------ outcomes
def test_outcomes_must_be_one_of_the_cards_classes(deployed, credit):
    d, lg, record, wrapped = deployed
    X, *_ , deploy, _ = credit
    wrapped.predict(X.iloc[deploy[:3]])
    first = wrapped.last_batch.first_index
    size = lg.size
    for bad in (7, 1.0, True, "1", [1]):
        with pytest.raises(capture.OutcomeError, match=r"outcomes\[0\]\.outcome: .*classes \[0, 1\]"):
            capture.record_outcome(lg, first, bad)
    with pytest.raises(capture.OutcomeError, match=r"outcomes\[1\]\.outcome"):
        capture.record_outcomes(lg, [(first, 1), (first + 1, 7)])
    assert lg.size == size
    capture.record_outcomes(lg, [(first, np.int64(1)), (first + 1, 0)])

    _, op = KeyStore(lg).create("operator", "tests")
    c = TestClient(create_app(d))
    r = c.post("/v1/outcomes", headers={"Authorization": f"Bearer {op}"},
               json={"outcomes": [{"decision": first + 2, "outcome": 7}]})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"][0]["field"] == "outcomes[0].outcome" and "[0, 1]" in body["detail"], body
    # every bad field of a batch is named (up to 20), not only the first
    before = lg.size
    r = c.post("/v1/outcomes", headers={"Authorization": f"Bearer {op}"},
               json={"outcomes": [{"decision": 99999, "outcome": 1}, {"decision": first + 2, "outcome": None},
                                  {"decision": 0, "outcome": 1}]})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["outcomes[0].decision", "outcomes[1].outcome",
                                                         "outcomes[2].decision"], r.text
    assert lg.size == before


def test_a_second_outcome_is_a_correction_and_every_reader_takes_the_latest(deployed, credit):
    d, lg, record, wrapped = deployed
    X, *_ , deploy, _ = credit
    labels = wrapped.predict(X.iloc[deploy[:2]])
    first = wrapped.last_batch.first_index
    o1 = capture.record_outcomes(lg, [(first, int(labels[0])), (first + 1, int(labels[1]))]).first_index
    size = lg.size
    flipped = 1 - int(labels[0])
    with pytest.raises(capture.OutcomeConflictError, match=f"corrects={o1}"):
        capture.record_outcome(lg, first, flipped)
    with pytest.raises(capture.OutcomeError, match="reason"):
        capture.correct_outcome(lg, first, flipped, corrects=o1, reason=" ")
    with pytest.raises(capture.OutcomeError, match="latest outcome entry"):
        capture.correct_outcome(lg, first, flipped, corrects=o1 + 1, reason="typo")
    with pytest.raises(capture.OutcomeConflictError, match="earlier in this batch"):
        capture.record_outcomes(lg, [(first, flipped, o1, "typo"), (first, flipped, o1, "typo")])
    assert lg.size == size

    _, op = KeyStore(lg).create("operator", "tests")
    c = TestClient(create_app(d))
    h = {"Authorization": f"Bearer {op}"}
    r = c.post("/v1/outcomes", headers=h, json={"outcomes": [{"decision": first, "outcome": flipped}]})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "outcomes[0].corrects", r.text
    r = c.post("/v1/outcomes", headers=h, json={"outcomes": [{"decision": first, "outcome": flipped, "corrects": o1,
                                                              "reason": "data entry error"}]})
    assert r.status_code == 201, r.text
    o2 = r.json()["first_index"]
    e = json.loads(lg.entry(o2))
    assert e["corrects"] == o1 and e["reason"] == "data entry error" and e["outcome"] == flipped
    view = c.get(f"/v1/decisions/{first}", headers=h).json()
    assert [(o["index"], o.get("corrects")) for o in view["outcomes"]] == [(o1, None), (o2, o1)]

    # Every reader takes the correction: the audit's rows, the monitors' views, the web register.
    audit = logged_decisions(lg, record.fingerprint)
    assert audit.frame.loc[first, "outcome"] == flipped and audit.frame.loc[first, "outcome_index"] == o2
    (v,) = load_views(lg, "supervisor")
    pos = list(v.index).index(first)
    assert v.outcome[pos] == float(flipped == 1)
    from glasslog.server.web import RegisterStats

    counts, _ = RegisterStats().refresh(c.app.state.glasslog.ctx()).snapshot()
    (k,) = counts.values()
    assert k.with_outcome == 2 and k.correct == 1  # the corrected decision now counts as wrong


# ------------------------------------------------------------------ inputs against the card's feature domains
def _domain_log(tmp_path, credit, policy):
    from glasslog.registry import with_domains

    X, y, train, evaluation, deploy, model = credit
    d = tmp_path / f"log-{policy}"
    lg = Ledger.create(d, "bank.example/credit-decisions")
    card = make_card(X, train, evaluation, features=with_domains(german_credit_features(X), X.iloc[train]),
                     input_policy=policy)
    record = Registry(lg).register(model, card)
    assert Registry(lg).get(record.fingerprint).card == card  # the domains survive the round trip through the log
    wrapped = capture.wrap(lg, record.fingerprint, DEP, visibility="public-service")
    return d, lg, record, wrapped


def _odd_rows(X, deploy):
    rows = X.iloc[deploy[:2]].copy()
    rows.iloc[0, rows.columns.get_loc("purpose")] = "spaceship"
    rows.iloc[1, rows.columns.get_loc("age_in_years")] = -400
    return rows


def test_inputs_outside_the_cards_domains_are_refused_by_default(tmp_path, credit):
    X, *_, deploy, _ = credit
    d, lg, record, wrapped = _domain_log(tmp_path, credit, None)
    f = {x.name: x for x in record.card.features}
    assert "spaceship" not in f["purpose"].categories and f["age_in_years"].minimum >= 18
    size = lg.size
    with pytest.raises(capture.InputError) as e:
        wrapped.predict_proba(_odd_rows(X, deploy))
    assert "row 0 feature purpose: 'spaceship'" in str(e.value) and "row 1 feature age_in_years: -400" in str(e.value)
    assert lg.size == size

    _, op = KeyStore(lg).create("operator", "tests")
    c = TestClient(create_app(d))
    body = [{"input": {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}} for r in
            _odd_rows(X, deploy).to_dict("records")]
    r = c.post("/v1/decisions", headers={"Authorization": f"Bearer {op}"},
               json={"model": record.fingerprint, "deployment": DEP, "rows": body})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["rows[0].input.purpose", "rows[1].input.age_in_years"]
    assert lg.size == size + 1  # the key entry only


def test_inputs_outside_the_domains_are_flagged_under_the_flag_policy(tmp_path, credit):
    X, *_, deploy, _ = credit
    d, lg, record, wrapped = _domain_log(tmp_path, credit, "flag")
    wrapped.predict_proba(_odd_rows(X, deploy))
    first = wrapped.last_batch.first_index
    assert json.loads(lg.entry(first))["out_of_domain"] == ["purpose"]
    assert json.loads(lg.entry(first + 1))["out_of_domain"] == ["age_in_years"]
    wrapped.predict_proba(X.iloc[deploy[2:3]].assign(credit_amount=1000))
    assert "out_of_domain" not in json.loads(lg.entry(wrapped.last_batch.first_index))


def test_a_card_domain_must_fit_the_feature_type(credit):
    from dataclasses import replace

    from glasslog.registry import CardError

    X, y, train, evaluation, deploy, model = credit
    feats = list(german_credit_features(X))
    num = next(i for i, f in enumerate(feats) if f.type == "numeric")
    with pytest.raises(CardError, match=r"features\[\d+\]\.categories"):
        make_card(X, train, evaluation, features=tuple(feats[:num] + [replace(feats[num], categories=("a",))] + feats[num + 1:]))
    with pytest.raises(CardError, match="input_policy"):
        make_card(X, train, evaluation, input_policy="ignore")


# ------------------------------------------------------------------ replay and batch composition
def batch_standardise(X):
    """Standardise with the batch's own mean and spread: the output for a row depends on the rest of the batch."""
    X = np.asarray(X, dtype=float)
    return (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)


def _batch_model_log(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from glasslog.registry import Feature, dump_model

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (X["a"] + X["b"] > 0).astype(int)
    model = Pipeline([("z", FunctionTransformer(batch_standardise)), ("lr", LogisticRegression())]).fit(X, y)
    trusted = sio.get_untrusted_types(data=dump_model(model))
    card = ModelCard(name="batch mean", version="1", provider="tests", intended_use="tests",
                     features=(Feature("a"), Feature("b")), output={"classes": [0, 1], "positive": 1},
                     training_data_fingerprint=fingerprint_frame(X),
                     claimed=ClaimedMetrics({"accuracy": 0.9}, fingerprint_frame(X), len(X)), disclosure_policy="supervisors")
    lg = Ledger.create(tmp_path / "log", "bank.example/batch")
    record = Registry(lg).register(model, card, trusted)
    return lg, record, trusted, X


def test_replay_recomputes_each_decision_in_its_logged_batch_and_reports_batch_dependence(tmp_path):
    from glasslog.verify import replay

    lg, record, trusted, X = _batch_model_log(tmp_path)
    together = capture.wrap(lg, record.fingerprint, "bank.example/together", trusted=trusted)
    together.predict_proba(X.iloc[:30] + 3.0)  # one batch, shifted: standardising moves every row
    alone = capture.wrap(lg, record.fingerprint, "bank.example/alone", trusted=trusted)
    for k in range(30, 40):
        alone.predict_proba(X.iloc[k : k + 2])  # batches of two
    r = replay(lg, trusted=trusted)
    assert r.ok and r.checked == r.matched == 50 and r.mismatch_count == 0, r.mismatches[:2]
    assert r.batches == 11 and r.alone_checked == 10 + 10 * 2  # up to 10 of the batch of 30, both of each pair
    assert r.batch_dependent > 0 and r.batch_dependent_examples[0]["batch_size"] in (2, 30)
    only = replay(lg, trusted=trusted, deployment="bank.example/alone")
    assert only.ok and only.checked == 20
    from glasslog.verify.replay import replay_verdict

    assert replay_verdict(r) == ("alert", "high")


# ------------------------------------------------------------------ trusted skops types
def test_trusted_types_are_recorded_and_can_be_passed_everywhere_and_nothing_checked_is_not_a_failure(tmp_path):
    from typer.testing import CliRunner

    from glasslog.cli import app
    from glasslog.verify import replay
    from glasslog.verify.replay import replay_verdict

    lg, record, trusted, X = _batch_model_log(tmp_path)
    assert record.trusted == tuple(sorted(trusted)) and trusted
    wrapped = capture.wrap(lg, record.fingerprint, "bank.example/one-by-one", trusted=trusted)
    indexes = []
    for k in range(40):
        wrapped.predict_proba(X.iloc[k : k + 1])
        indexes.append(wrapped.last_batch.first_index)
    capture.record_outcomes(lg, [(i, int(X["a"].iloc[k] + X["b"].iloc[k] > 0)) for k, i in enumerate(indexes)])

    r = replay(lg)
    assert r.ok and r.checked == 0 and not r.errors and r.not_checked[0]["types"] == sorted(trusted)
    assert replay_verdict(r) == ("insufficient-data", "info")
    assert replay(lg, trust_recorded=True).checked == 40 and replay(lg, trusted=trusted).checked == 40

    runner = CliRunner()
    d = str(tmp_path / "log")
    res = runner.invoke(app, ["verify", "replay", "-d", d])
    assert res.exit_code == 2 and "FAILED" not in res.output and "--trust-recorded" in res.output, res.output
    res = runner.invoke(app, ["verify", "replay", "-d", d, "--trust-recorded"])
    assert res.exit_code == 0 and "Replay verified" in res.output, res.output
    res = runner.invoke(app, ["verify", "replay", "-d", d, *sum((["--trust", t] for t in trusted), [])])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["audit", "model", "-d", d, "--json"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "skops types" in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["audit", "model", "-d", d, "--json", "--trust-recorded"])
    assert "skops types" not in res.output, res.output

    _, op = KeyStore(lg).create("supervisor", "tests")
    c = TestClient(create_app(tmp_path / "log"))
    h = {"Authorization": f"Bearer {op}"}
    body = c.post("/v1/replay", headers=h, json={"record": False}).json()
    assert body["checked"] == 0 and body["not_checked"] and body["ok"], body
    body = c.post("/v1/replay", headers=h, json={"record": False, "trust_recorded": True}).json()
    assert body["checked"] == 40 and not body["not_checked"], body
    body = c.post("/v1/replay", headers=h, json={"record": False, "trusted": trusted}).json()
    assert body["checked"] == 40, body


# ------------------------------------------------------------------ proofs only against signed sizes
def test_proofs_only_for_signed_sizes_and_checkpoints_by_size(deployed, credit):
    from glasslog.ledger import merkle

    d, lg, record, wrapped = deployed
    X, *_, deploy, _ = credit
    wrapped.predict(X.iloc[deploy[:5]])
    first_size = lg.signed_size()
    wrapped.predict(X.iloc[deploy[5:9]])
    size = lg.signed_size()
    c = TestClient(create_app(d))
    for params, field in (({"index": "1", "tree_size": str(first_size - 1)}, "tree_size"),):
        r = c.get("/v1/proofs/inclusion", params=params)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field and "signed" in r.json()["detail"], r.text
    r = c.get("/v1/proofs/consistency", params={"old": str(first_size - 1)})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "old", r.text
    r = c.get("/v1/proofs/consistency", params={"old": "0"})
    assert r.status_code == 422 and "empty tree" in r.json()["detail"], r.text

    r = c.get("/v1/proofs/inclusion", params={"index": "1", "tree_size": str(first_size)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["checkpoint"] == lg.checkpoint(first_size) and f"\n{first_size}\n" in body["checkpoint"]
    r = c.get("/v1/proofs/consistency", params={"old": str(first_size)}).json()
    assert r["old_checkpoint"] == lg.checkpoint(first_size) and r["new_checkpoint"] == lg.checkpoint(size)
    merkle.verify_consistency(first_size, size, base64.b64decode(r["old_root"]), base64.b64decode(r["new_root"]),
                              [base64.b64decode(p) for p in r["proof"]])

    r = c.get(f"/v1/checkpoints/{first_size}")
    assert r.status_code == 200 and r.json() == {"tree_size": first_size, "checkpoint": lg.checkpoint(first_size)}
    assert c.get(f"/v1/checkpoints/{first_size - 1}").status_code == 404
    assert c.get(f"/v1/checkpoints/{size + 1}").status_code == 404


# ------------------------------------------------------------------ broken signer keys: one line, exit 2
@pytest.fixture(scope="module")
def small_log(tmp_path_factory, credit):
    X, y, train, evaluation, deploy, model = credit
    d = tmp_path_factory.mktemp("keys") / "log"
    lg = Ledger.create(d, "bank.example/credit-decisions")
    record = Registry(lg).register(model, make_card(X, train, evaluation))
    w = capture.wrap(lg, record.fingerprint, DEP, visibility="public-service")
    w.predict_proba(X.iloc[deploy[:40]])
    first = w.last_batch.first_index
    capture.record_outcomes(lg, [(first + k, int(y.iloc[deploy[k]])) for k in range(40)])
    lg.close()
    other = tmp_path_factory.mktemp("keys") / "other"
    Ledger.create(other, "elsewhere.example/log").close()
    return d, other, record.fingerprint, first


BROKEN_KEYS = ("0644", "foreign", "corrupt")


def _break_key(d, other, case):
    import os

    key = d / "log.key"
    if case == "0644":
        os.chmod(key, 0o644)
    elif case == "foreign":
        key.write_bytes((other / "log.key").read_bytes())
    else:
        key.write_bytes(b"this is not a signer key\n")


@pytest.mark.parametrize("case", BROKEN_KEYS)
def test_every_command_with_a_broken_signer_key_fails_in_one_line(small_log, tmp_path, case):
    import shutil

    from typer.testing import CliRunner

    from glasslog.cli import app

    src, other, fp, first = small_log
    d = tmp_path / "log"
    shutil.copytree(src, d)
    _break_key(d, other, case)
    writes = [
        ["keys", "create", "--role", "operator", "--name", "x"],
        ["flags", "add", "-c", "other", "--decision", str(first), "--text", "wrong"],
        ["audit", "model", fp[:19], "--record", "--fail-on", "critical"],
        ["audit", "model", fp[:19], "--suspend-on-severity", "info", "--fail-on", "critical"],
        ["deployments", "declare", "bank.example/new", "--visibility", "private"],
        ["models", "set-status", fp[:19], "suspended", "--reason", "tests"],
        ["monitor", "run"],
    ]
    reads = [["verify", "log"], ["verify", "replay"], ["checkpoint"], ["models", "list"], ["flags", "list"],
             ["triage", "list"], ["checkpoint", "--json"]]
    runner = CliRunner()
    for args in writes + reads:
        r = runner.invoke(app, [*args, "-d", str(d)] if args[0] != "keys" else [*args, "--data-dir", str(d)])
        text = r.output  # standard output and error, mixed
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
        assert "Traceback" not in text, (args, text)
        if args in writes:
            assert r.exit_code == 2, (args, r.exit_code, text)
            assert "key" in text and text.count("error:") == 1, (args, text)
        else:
            assert r.exit_code in (0, 1), (args, r.exit_code, text)


def test_a_private_value_stored_as_text_is_a_commitment_failure_not_a_traceback(small_log, tmp_path):
    import shutil
    import sqlite3

    from typer.testing import CliRunner

    from glasslog.cli import app

    src, _, fp, first = small_log
    d = tmp_path / "log"
    shutil.copytree(src, d)
    con = sqlite3.connect(d / "log.db")
    con.execute("UPDATE private_values SET value = CAST(value AS TEXT) WHERE entry_index = ? AND kind = 'input'", (first,))
    con.commit()
    con.close()
    for args in (["verify", "replay"], ["audit", "model", fp[:19]]):
        r = CliRunner().invoke(app, [*args, "-d", str(d)])
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
    r = CliRunner().invoke(app, ["verify", "replay", "-d", str(d)])
    assert r.exit_code == 1 and f"entry {first}: the stored value of 'input' does not open" in " ".join(r.output.split())


def test_audit_csv_that_measured_nothing_says_so_and_exits_1(tmp_path):
    from typer.testing import CliRunner

    from glasslog.cli import app

    f = tmp_path / "tiny.csv"
    f.write_text("y,p,g\n1,1,a\n0,1,a\n1,0,b\n0,0,b\n1,1,a\n0,0,b\n")
    r = CliRunner().invoke(app, ["audit", "csv", str(f), "--label", "y", "--prediction", "p", "--group", "g", "--json"])
    assert r.exit_code == 1, r.output
    body = json.loads(r.stdout)
    assert body["measured"] is False and "nothing could be measured" in body["unmeasured"]


def test_an_operator_key_cannot_mint_unbound_operator_keys_over_http(deployed):
    d, lg, record, wrapped = deployed
    _, op = KeyStore(lg).create("operator", "tests")
    c = TestClient(create_app(d))
    h = {"Authorization": f"Bearer {op}"}
    r = c.post("/v1/keys", headers=h, json={"role": "operator", "name": "a second operator"})
    assert r.status_code == 403 and "host" in r.json()["detail"], r.text
    r = c.post("/v1/keys", headers=h, json={"role": "operator", "name": "telemetry", "deployments": [DEP]})
    assert r.status_code == 201, r.text
    bound = {"Authorization": f"Bearer {r.json()['token']}"}
    assert c.post("/v1/keys", headers=bound, json={"role": "researcher", "name": "x"}).status_code == 403


# ------------------------------------------------------------------ slow clients
def test_glasslog_serve_cuts_off_slow_clients_and_serves_the_others(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    d = tmp_path / "log"
    Ledger.create(d, "bank.example/slow").close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GLASSLOG_DATA_DIR": str(d)}
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "glasslog"), "serve", "-d", str(d), "--port",
                             str(port), "--header-timeout", "1", "--body-timeout", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/v1/log", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        slow = []
        for k in range(60):
            c = socket.create_connection(("127.0.0.1", port))
            if k % 2:  # half a head
                c.sendall(b"GET /v1/log HTTP/1.1\r\nHost: x\r\n")
            else:  # a whole head, then part of the body
                c.sendall(b"POST /v1/outcomes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{\"outc")
            slow.append(c)
        t0 = time.monotonic()
        r = httpx.get(base + "/v1/log", timeout=5)  # served meanwhile
        assert r.status_code == 200 and time.monotonic() - t0 < 2
        deadline = time.monotonic() + 8
        closed = 0
        for c in slow:
            c.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = b""
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                closed += 1
                assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
            except (TimeoutError, socket.timeout):
                pass
            except ConnectionResetError:
                closed += 1
            finally:
                c.close()
        assert closed == len(slow), f"{len(slow) - closed} slow connections still open after the deadlines"
        assert httpx.get(base + "/v1/log", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------------ erasures are entries
def test_erasures_are_entries_and_replay_accepts_only_those(small_log, tmp_path):
    import shutil
    import sqlite3

    from glasslog.verify import replay

    src, _, fp, first = small_log
    d = tmp_path / "log"
    shutil.copytree(src, d)
    lg = Ledger.open(d)
    commitment = json.loads(lg.entry(first))["input"]
    size = lg.size
    assert lg.erase_private(commitment, "GDPR Art. 17 request 2026-0042", entry_index=first)
    e = json.loads(lg.entry(size))
    assert e["type"] == "erasure" and e["commitment"] == commitment and e["kind"] == "input" and e["entry"] == first
    assert e["reason"] == "GDPR Art. 17 request 2026-0042" and "value" not in e and "salt" not in e
    assert not lg.erase_private(commitment, "again") and lg.size == size + 1  # nothing to erase: no entry
    r = replay(lg)
    assert r.ok and r.erased == 1 and not r.unlogged_erasures
    lg.close()

    con = sqlite3.connect(d / "log.db")  # an erasure made directly in the database, with no entry
    con.execute("UPDATE private_values SET salt = NULL, value = NULL, erased_at = '2026-12-01T00:00:00Z', "
                "erasure_reason = 'GDPR Art. 17' WHERE entry_index = ? AND kind = 'input'", (first + 1,))
    con.commit()
    con.close()
    lg = Ledger.open(d)
    r = replay(lg)
    assert not r.ok and r.erased == 1 and r.unlogged_erasures == [{"index": first + 1, "field": "input"}]
    lg.close()


# ------------------------------------------------------------------ smaller things
def test_entry_prints_its_leaf_hash_and_short_prefixes_are_too_short(small_log, tmp_path):
    from typer.testing import CliRunner

    from glasslog.cli import app
    from glasslog.ledger import merkle
    from glasslog.registry import RegistryError

    src, _, fp, first = small_log
    runner = CliRunner()
    r = runner.invoke(app, ["entry", str(first), "-d", str(src)])
    lg = Ledger.open(src)
    assert r.exit_code == 0 and f"leaf hash: {base64.b64encode(merkle.leaf_hash(lg.entry(first))).decode()}" in r.output
    with pytest.raises(RegistryError, match="too short"):
        Registry(lg).get(fp[7:18])  # 11 hex digits
    assert Registry(lg).get(fp[7:19]).fingerprint == fp
    lg.close()
    r = runner.invoke(app, ["models", "show", fp[7:15], "-d", str(src)])
    assert r.exit_code == 2 and "too short" in r.output


def test_out_says_when_it_creates_missing_directories(small_log, tmp_path):
    from typer.testing import CliRunner

    from glasslog.cli import app

    src, _, fp, first = small_log
    runner = CliRunner()
    missing = tmp_path / "no" / "such" / "receipt.json"
    r = runner.invoke(app, ["receipt", str(first), "-d", str(src), "--out", str(missing)])
    assert r.exit_code == 0 and missing.is_file()
    assert f"created the missing directory {tmp_path / 'no' / 'such'}" in r.output
    f = tmp_path / "tiny.csv"
    f.write_text("y,p,g\n1,1,a\n0,1,a\n")
    r = runner.invoke(app, ["audit", "csv", str(f), "--label", "y", "--prediction", "p", "--group", "g", "--out",
                            str(tmp_path / "nope" / "report")])
    assert "created the missing directory" in r.output and (tmp_path / "nope" / "report" / "report.json").is_file()
    r = runner.invoke(app, ["receipt", str(first), "-d", str(src), "--out", str(tmp_path / "receipt.json")])
    assert r.exit_code == 0 and (tmp_path / "receipt.json").exists() and "created" not in r.output
    (tmp_path / "afile").write_text("x")
    r = runner.invoke(app, ["receipt", str(first), "-d", str(src), "--out", str(tmp_path / "afile" / "r.json")])
    assert r.exit_code == 2 and "not a directory" in r.output


def test_help_shows_no_type_for_flags_and_piped_tables_are_plain(small_log, monkeypatch):
    from typer.testing import CliRunner

    from glasslog.cli import app

    monkeypatch.delenv("COLUMNS", raising=False)
    src, _, fp, first = small_log
    runner = CliRunner()
    for args in (["--help"], ["flags", "add", "--help"], ["verify", "replay", "--help"], ["audit", "model", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and "<bool>" not in r.output, (args, r.output)
    r = runner.invoke(app, ["models", "list", "-d", str(src)])
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if line.startswith(fp[:20]))
    assert "German Credit scorecard" in row and "active" in row and "researchers" in row  # one line per row
    assert not any(ch in r.output for ch in "│┃━─┏"), r.output


def test_monitor_every_does_not_append_identical_findings(small_log, tmp_path):
    import os
    import shutil
    import signal
    import threading

    from typer.testing import CliRunner

    from glasslog.cli import app

    src, _, fp, first = small_log
    d = tmp_path / "log"
    shutil.copytree(src, d)
    timer = threading.Timer(6.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        r = CliRunner().invoke(app, ["monitor", "run", "-d", str(d), "--every", "1", "--reference-size", "10"])
    finally:
        timer.cancel()
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "not recorded again" in r.output, r.output
    lg = Ledger.open(d)
    times = [e["time"] for _, e in lg.entries_of_type("finding")]
    lg.close()
    assert times and len(set(times)) == 1, f"{len(set(times))} runs recorded findings"  # only the first run


def test_compas_leads_with_black_and_white_defendants_and_names_the_harmed_group():
    from typer.testing import CliRunner

    from glasslog.cli import app

    r = CliRunner().invoke(app, ["audit", "compas", "--n-boot", "200", "--json"])
    assert r.exit_code in (0, 1), r.output
    findings = [f for s in json.loads(r.stdout)["sections"] for f in s.get("findings", [])]
    first = findings[0]
    assert first["summary"].startswith("The selection rate of African-American is") and "reference group Caucasian" in first["summary"]
    by_check = {f["check"]: f for f in findings[:4]}
    fnr, fpr = by_check["group.false_negative_rate"], by_check["group.false_positive_rate"]
    # 1 = Medium/High risk is unfavourable: Black defendants are wrongly flagged more often (FPR) and wrongly spared
    # less often (FNR): the harmed group both times
    assert fpr["evidence"]["harmed_group"] == "African-American" and fnr["evidence"]["harmed_group"] == "African-American"
    assert "the group harmed by this false negative rate gap is African-American" in fnr["summary"]


def test_a_malformed_stored_verifier_key_is_one_line_and_exit_2(small_log, tmp_path):
    import shutil
    import sqlite3

    from typer.testing import CliRunner

    from glasslog.cli import app

    src, _, fp, first = small_log
    d = tmp_path / "log"
    shutil.copytree(src, d)
    con = sqlite3.connect(d / "log.db")
    con.execute("UPDATE meta SET value = 'bank.example/credit-decisions+zz+!!' WHERE key = 'verifier_key'")
    con.commit()
    con.close()
    for args in (["verify", "log"], ["verify", "replay"], ["checkpoint"], ["monitor", "run"]):
        r = CliRunner().invoke(app, [*args, "-d", str(d)])
        assert r.exit_code == 2 and "Traceback" not in r.output and r.output.count("error:") == 1, (args, r.output)
