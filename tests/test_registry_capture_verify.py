"""Registry, capture SDK and verification on the real German Credit deployment."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import FunctionTransformer

from glasslog import capture
from glasslog.datasets.german_credit import german_credit_features
from glasslog.ledger import Ledger, merkle
from glasslog.ledger.commitments import commit
from glasslog.ledger.receipt import Receipt, ReceiptFormatError
from glasslog.registry import (
    ArtifactError,
    CardError,
    ClaimedMetrics,
    ModelCard,
    Registry,
    RegistryError,
    dump_model,
    fingerprint_bytes,
    fingerprint_frame,
)
from glasslog.verify import audit_log, replay, verify_receipt

from .credit_support import credit_card


def snapshot(lg: Ledger) -> list[str]:
    return list(lg.store.connection.iterdump())


def make_card(X, y, train, evaluation, **changes) -> ModelCard:
    return credit_card(X, train, evaluation, **changes)


@pytest.fixture
def deployed(tmp_path, credit):
    X, y, train, evaluation, deploy, model = credit
    lg = Ledger.create(tmp_path / "log", "bank.example/credit-decisions")
    record = Registry(lg).register(model, make_card(X, y, train, evaluation))
    wrapped = capture.wrap(lg, record.fingerprint, "bank.example/credit/test", visibility="public-service")
    yield lg, record, wrapped
    lg.close()


def test_german_credit_shape_and_known_figures(credit):
    X, y, train, evaluation, deploy, model = credit
    assert X.shape == (1000, 20)
    assert int(y.sum()) == 300
    assert (len(train), len(evaluation), len(deploy)) == (500, 200, 300)
    from sklearn.metrics import accuracy_score

    assert accuracy_score(y.iloc[evaluation], model.predict(X.iloc[evaluation])) == pytest.approx(0.755)


def test_registration_is_on_the_log(deployed):
    lg, record, _ = deployed
    artifact = Registry(lg).artifact(record.fingerprint)
    assert record.fingerprint == fingerprint_bytes(artifact)
    entry = json.loads(lg.entry(record.registered_index))
    assert entry["type"] == "model" and entry["event"] == "register" and entry["model"] == record.fingerprint
    assert entry["card"]["claimed"]["metrics"] == {"accuracy": 0.755}
    protected = {f["name"] for f in entry["card"]["features"] if f["protected"]}
    assert protected == {"personal_status_and_sex", "age_in_years", "foreign_worker"}
    assert record.status == "active"


def test_duplicate_registration_is_refused_and_log_unchanged(deployed, credit):
    lg, record, _ = deployed
    X, y, train, evaluation, _, _ = credit
    before = snapshot(lg)
    with pytest.raises(RegistryError, match="already registered"):
        Registry(lg).register_artifact(Registry(lg).artifact(record.fingerprint), make_card(X, y, train, evaluation))
    assert snapshot(lg) == before


def test_tampered_artifact_is_refused(deployed):
    lg, record, _ = deployed
    reg = Registry(lg)
    path = reg.artifact_path(record.fingerprint)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="not the registered fingerprint"):
        reg.load(record.fingerprint)


def _shout(x):
    return x


def test_untrusted_types_are_refused(tmp_path, credit):
    X, y, train, evaluation, _, _ = credit
    lg = Ledger.create(tmp_path / "log", "t.example/log")
    artifact = dump_model(FunctionTransformer(func=_shout))
    before = snapshot(lg)
    with pytest.raises(ArtifactError, match="untrusted types"):
        Registry(lg).register_artifact(artifact, make_card(X, y, train, evaluation))
    assert snapshot(lg) == before
    assert not list((tmp_path / "log" / "artifacts").iterdir())


def test_card_errors_name_the_field(credit):
    X, y, train, evaluation, _, _ = credit
    with pytest.raises(CardError, match="disclosure_policy"):
        make_card(X, y, train, evaluation, disclosure_policy="everyone")
    with pytest.raises(CardError, match="claimed.metrics.accuracy"):
        make_card(X, y, train, evaluation, claimed=ClaimedMetrics({"accuracy": 75.5}, fingerprint_frame(X), 10))
    with pytest.raises(CardError, match="name"):
        make_card(X, y, train, evaluation, name=" ")


def test_card_features_must_match_the_model(tmp_path, credit):
    X, y, train, evaluation, _, model = credit
    lg = Ledger.create(tmp_path / "log", "t.example/log")
    card = make_card(X, y, train, evaluation, features=german_credit_features(X)[:-1])
    with pytest.raises(RegistryError, match="do not match"):
        Registry(lg).register(model, card)


def test_predict_returns_exactly_the_model_output_and_logs_each_row(deployed, credit):
    lg, record, wrapped = deployed
    X, y, _, _, deploy, model = credit
    rows = X.iloc[deploy[:25]]
    size = lg.size
    checkpoints = len(list(lg.checkpoints()))
    labels = wrapped.predict(rows, subject_ids=[f"s{i}" for i in range(25)])
    assert np.array_equal(labels, model.predict(rows)) and labels.dtype == model.predict(rows).dtype
    assert lg.size == size + 25
    assert len(list(lg.checkpoints())) == checkpoints + 1  # one batch per call
    proba = wrapped.predict_proba(rows)
    assert np.array_equal(proba, model.predict_proba(rows))
    for i, idx in enumerate(wrapped.last_batch.indexes):
        e = json.loads(lg.entry(idx))
        assert e["type"] == "decision" and e["model"] == record.fingerprint
        assert e["deployment"] == "bank.example/credit/test"
        assert e["time"].endswith("Z")
        assert e["output"]["proba"] == proba[i].tolist()
        assert e["output"]["label"] == int(model.classes_[np.argmax(proba[i])])
        assert "subject" not in e  # no subject ids given in this call
    # inputs are committed to, never written into the entries
    for idx in range(size, lg.size):
        data = lg.entry(idx).decode()
        assert "critical account" not in data and "credit_amount" not in data


def test_columns_in_any_order_and_arrays(deployed, credit):
    _, _, wrapped = deployed
    X, _, _, _, deploy, model = credit
    rows = X.iloc[deploy[:5]]
    assert np.array_equal(wrapped.predict(rows[rows.columns[::-1]]), model.predict(rows))
    assert np.array_equal(wrapped.predict(rows.to_numpy(dtype=object)), model.predict(rows))


@pytest.mark.parametrize("bad", ["missing", "extra", "1d", "columns", "empty", "subjects"])
def test_bad_inputs_are_refused_and_log_unchanged(deployed, credit, bad):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    rows = X.iloc[deploy[:4]]
    before = snapshot(lg)
    kwargs = {}
    if bad == "missing":
        arg = rows.drop(columns=["age_in_years"])
    elif bad == "extra":
        arg = rows.assign(postcode="10115")
    elif bad == "1d":
        arg = rows.iloc[0].to_numpy()
    elif bad == "columns":
        arg = rows.to_numpy()[:, :5]
    elif bad == "empty":
        arg = rows.iloc[:0]
    else:
        arg, kwargs = rows, {"subject_ids": ["only-one"]}
    with pytest.raises(capture.InputError) as info:
        wrapped.predict(arg, **kwargs)
    if bad == "missing":
        assert "age_in_years" in str(info.value)
    if bad == "extra":
        assert "postcode" in str(info.value)
    assert snapshot(lg) == before


def test_nan_outputs_are_refused_and_log_unchanged(deployed, credit, monkeypatch):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    before = snapshot(lg)
    real = wrapped.estimator.predict_proba
    monkeypatch.setattr(wrapped.estimator, "predict_proba", lambda frame: np.where(np.arange(len(frame))[:, None] == 2, np.nan, real(frame)))
    with pytest.raises(capture.InputError, match="row 2"):
        wrapped.predict_proba(X.iloc[deploy[:4]])
    assert snapshot(lg) == before


def test_unknown_model_is_refused(deployed):
    lg, _, _ = deployed
    with pytest.raises(RegistryError, match="unknown model"):
        capture.wrap(lg, "sha256:" + "0" * 64, "d")


def test_kill_switch(deployed, credit):
    lg, record, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    reg = Registry(lg)
    reg.set_status(record.fingerprint, "suspended", "supervisor: disparity under review")
    before = snapshot(lg)
    with pytest.raises(capture.ModelNotActiveError, match="suspended"):
        wrapped.predict(X.iloc[deploy[:3]])
    assert snapshot(lg) == before
    with pytest.raises(RegistryError, match="already suspended"):
        reg.set_status(record.fingerprint, "suspended", "again")
    reg.set_status(record.fingerprint, "active", "review closed")
    assert len(wrapped.predict(X.iloc[deploy[:3]])) == 3
    reg.set_status(record.fingerprint, "withdrawn", "replaced by v2")
    with pytest.raises(RegistryError, match="final"):
        reg.set_status(record.fingerprint, "active", "undo")
    history = [(h.status, h.reason) for h in reg.get(record.fingerprint).history]
    assert history == [("active", "registered"), ("suspended", "supervisor: disparity under review"),
                       ("active", "review closed"), ("withdrawn", "replaced by v2")]


def test_receipts_by_index_and_subject_verify_offline(deployed, credit, tmp_path):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    ids = [f"applicant-{i}" for i in range(10)]
    wrapped.predict_proba(X.iloc[deploy[:10]], subject_ids=ids)
    first = wrapped.last_batch.first_index
    wrapped.predict(X.iloc[deploy[10:20]])  # later batches: receipts use the latest checkpoint
    [r] = capture.receipts_for_subject(lg, "applicant-3")
    assert r.index == first + 3 and r.tree_size == lg.size
    path = tmp_path / "receipt.json"
    r.save(path)
    loaded = Receipt.load(path)
    assert loaded == r
    report = verify_receipt(loaded, lg.verifier_key)
    assert report.ok, report.checks
    assert [c.name for c in report.checks] == ["checkpoint signature", "entry format", "inclusion proof",
                                               "input commitment", "subject commitment"]
    assert capture.receipt(lg, first + 3) == r
    assert capture.receipts_for_subject(lg, "nobody") == []


def _tamper(r: Receipt, what: str) -> Receipt:
    d = r.to_dict()
    if what == "entry":
        raw = bytearray(r.entry)
        raw[raw.index(b'"label":') + 8] ^= 1  # 0 <-> 1
        d["entry"] = __import__("base64").b64encode(bytes(raw)).decode()
    elif what == "proof":
        p = bytearray(r.inclusion_proof[0])
        p[0] ^= 1
        d["inclusion_proof"][0] = __import__("base64").b64encode(bytes(p)).decode()
    elif what == "signature":
        head, sig = d["checkpoint"].rsplit(" ", 1)
        raw = bytearray(__import__("base64").b64decode(sig))
        raw[10] ^= 1
        d["checkpoint"] = head + " " + __import__("base64").b64encode(bytes(raw)).decode() + "\n"
    elif what == "index":
        d["index"] += 1
    elif what == "subject":
        salt, _ = r.private["subject"]
        d["private"]["subject"]["value"] = __import__("base64").b64encode(b'"applicant-999"').decode()
    elif what == "size":
        d["tree_size"] += 1
    return Receipt.from_dict(d)


@pytest.mark.parametrize("what", ["entry", "proof", "signature", "index", "subject", "size"])
def test_tampered_receipts_fail(deployed, credit, what):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    wrapped.predict(X.iloc[deploy[:8]], subject_ids=[f"a{i}" for i in range(8)])
    r = capture.receipt(lg, wrapped.last_batch.first_index + 2)
    assert verify_receipt(r, lg.verifier_key).ok
    report = verify_receipt(_tamper(r, what), lg.verifier_key)
    assert not report.ok
    assert any(not c.ok for c in report.checks)


def test_receipt_with_another_logs_key_fails(deployed, credit, tmp_path):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    wrapped.predict(X.iloc[deploy[:2]])
    other = Ledger.create(tmp_path / "other", "bank.example/credit-decisions")
    report = verify_receipt(capture.receipt(lg, lg.size - 1), other.verifier_key)
    assert not report.ok and report.checks[0].name == "checkpoint signature"


def test_malformed_receipt_files_are_rejected(tmp_path):
    for text, field in [("{", "JSON"), ('{"format": "x"}', "format"),
                        ('{"format": "glasslog-receipt/v1", "origin": "o", "index": 3, "tree_size": 2,'
                         ' "checkpoint": "c", "inclusion_proof": [], "entry": ""}', "index")]:
        with pytest.raises(ReceiptFormatError, match=field):
            Receipt.from_json(text)


def test_outcomes_refer_to_decisions(deployed, credit):
    lg, record, wrapped = deployed
    X, y, _, _, deploy, _ = credit
    wrapped.predict(X.iloc[deploy[:3]])
    idx = wrapped.last_batch.first_index
    result = capture.record_outcome(lg, idx, int(y.iloc[deploy[0]]))
    e = json.loads(lg.entry(result.first_index))
    assert e == {"type": "outcome", "v": 1, "decision": idx, "outcome": int(y.iloc[deploy[0]]), "time": e["time"]}
    before = snapshot(lg)
    with pytest.raises(ValueError, match="not a decision"):
        capture.record_outcome(lg, record.registered_index, 1)
    with pytest.raises(ValueError, match="no entry"):
        capture.record_outcome(lg, 10_000, 1)
    with pytest.raises(ValueError, match="no entry"):
        capture.record_outcomes(lg, [(idx, 1), (10_000, 0)])  # all or nothing
    assert snapshot(lg) == before


def test_whole_log_audit_passes_then_detects_tampering(deployed, credit):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    for start in range(0, 60, 20):
        wrapped.predict_proba(X.iloc[deploy[start : start + 20]])
    report = audit_log(lg)
    assert report.ok and report.tree_size == 62 and report.checkpoints == 6  # 0, model, deployment, 3 batches
    db = sqlite3.connect(lg.data_dir / "log.db")

    def data(i):
        return db.execute("SELECT data FROM entries WHERE idx=?", (i,)).fetchone()[0]

    original = {i: data(i) for i in range(62)}
    types = dict(db.execute("SELECT idx, type FROM entries"))
    # edit one entry's output
    edited = original[17].replace(b'"label":0', b'"label":1') if b'"label":0' in original[17] else original[17].replace(b'"label":1', b'"label":0')
    db.execute("UPDATE entries SET data=? WHERE idx=17", (edited,))
    db.commit()
    r = audit_log(lg)
    assert not r.ok and r.first_bad_index == 17
    db.execute("UPDATE entries SET data=? WHERE idx=17", (original[17],))
    # reorder two entries
    db.execute("UPDATE entries SET data=? WHERE idx=30", (original[31],))
    db.execute("UPDATE entries SET data=? WHERE idx=31", (original[30],))
    db.commit()
    assert audit_log(lg).first_bad_index == 30
    db.execute("UPDATE entries SET data=? WHERE idx=30", (original[30],))
    db.execute("UPDATE entries SET data=? WHERE idx=31", (original[31],))
    # delete one entry
    db.execute("DELETE FROM entries WHERE idx=44")
    db.commit()
    r = audit_log(lg)
    assert not r.ok and r.first_bad_index == 44
    # insert one entry at 44, shifting the rest up by one
    db.execute("UPDATE entries SET idx = idx + 1000 WHERE idx > 44")
    db.execute("INSERT INTO entries(idx, type, data) VALUES (44, 'decision', ?)", (original[20],))
    db.execute("INSERT INTO entries(idx, type, data) VALUES (45, 'decision', ?)", (original[44],))
    db.execute("UPDATE entries SET idx = idx - 1000 + 1 WHERE idx > 1000")
    db.commit()
    r = audit_log(lg)
    assert not r.ok and r.first_bad_index == 44
    db.execute("DELETE FROM entries")
    db.executemany("INSERT INTO entries(idx, type, data) VALUES (?, ?, ?)", [(i, types[i], d) for i, d in sorted(original.items())])
    db.commit()
    assert audit_log(lg).ok


def test_rewritten_hashes_are_caught_by_the_signed_checkpoints(deployed, credit):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    for start in range(0, 40, 10):
        wrapped.predict(X.iloc[deploy[start : start + 10]])
    db = sqlite3.connect(lg.data_dir / "log.db")
    # An insider edits entry 25 and recomputes every stored hash to match.
    e = json.loads(db.execute("SELECT data FROM entries WHERE idx=25").fetchone()[0])
    e["output"]["label"] = 1 - e["output"]["label"]
    from glasslog.ledger import canonical_json

    db.execute("UPDATE entries SET data=? WHERE idx=25", (canonical_json(e),))
    leaves = [merkle.leaf_hash(d) for (d,) in db.execute("SELECT data FROM entries ORDER BY idx")]
    level, hashes = 0, leaves
    while hashes:
        for k in range(0, len(hashes), 32):  # stored in strips of 32 hashes per row
            db.execute("UPDATE hashes SET strip=? WHERE id=?", (b"".join(hashes[k : k + 32]), (level << 48) | (k // 32)))
        hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
        level += 1
    db.commit()
    r = audit_log(lg)
    assert not r.ok
    assert r.first_bad_index == 22  # the batch after the checkpoint at size 22 holds the edit
    assert "[22, 32)" in r.problems[0]


def test_erasure_keeps_the_log_verifiable(deployed, credit):
    lg, _, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    wrapped.predict_proba(X.iloc[deploy[:6]], subject_ids=[f"p{i}" for i in range(6)])
    first = wrapped.last_batch.first_index
    [r] = capture.receipts_for_subject(lg, "p2")
    for kind, (commitment, _, _) in lg.private_values_for([first + 2])[first + 2].items():
        assert lg.erase_private(commitment, "GDPR Art. 17 request")
    assert capture.receipts_for_subject(lg, "p2") == []
    assert audit_log(lg).ok
    # the old receipt the person kept still verifies, openings included
    assert verify_receipt(r, lg.verifier_key).ok
    rep = replay(lg)
    assert rep.ok and rep.erased == 1 and rep.checked == 5


def test_replay_detects_outputs_not_from_the_registered_weights(deployed, credit):
    lg, record, wrapped = deployed
    X, _, _, _, deploy, model = credit
    wrapped.predict_proba(X.iloc[deploy[:10]])
    assert replay(lg).ok
    # A deployer logs decisions it claims came from the registered model but that did not.
    from glasslog.ledger import PrivateValue, utc_now

    rows = X.iloc[deploy[10:13]]
    entries, private = [], []
    for pos, (_, row) in enumerate(rows.iterrows()):
        value = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        c, salt, vb = commit(value)
        private.append(PrivateValue(pos, "input", c, salt, vb))
        true_p = model.predict_proba(rows.iloc[[pos]])[0]
        entries.append({"type": "decision", "v": 1, "model": record.fingerprint, "deployment": "x", "time": utc_now(),
                        "input": c, "output": {"label": 0, "proba": [0.99, 0.01] if pos == 1 else true_p.tolist()}})
    entries[0]["output"]["label"] = int(model.classes_[np.argmax(model.predict_proba(rows.iloc[[0]])[0])])
    entries[2]["output"]["label"] = int(model.classes_[np.argmax(model.predict_proba(rows.iloc[[2]])[0])])
    res = lg.append(entries, private)
    rep = replay(lg)
    assert not rep.ok and rep.checked == 13 and rep.mismatch_count == 1
    assert rep.mismatches[0]["index"] == res.first_index + 1
    # a stored input that no longer opens its commitment is reported
    lg.store.connection.execute("UPDATE private_values SET value = ? WHERE entry_index = ?", (b'{"age_in_years":99}', res.first_index))
    rep = replay(lg)
    assert {"index": res.first_index, "field": "input"} in rep.commitment_failures
    # a private value deleted without a recorded erasure is a failure, not an erasure
    lg.store.connection.execute("DELETE FROM private_values WHERE entry_index = ? AND kind = 'input'", (res.first_index + 2,))
    rep = replay(lg)
    assert not rep.ok and rep.erased == 0 and {"index": res.first_index + 2, "field": "input"} in rep.missing


def test_replay_with_missing_numeric_inputs(tmp_path):
    """NaN inputs are logged as null and restored as NaN on replay; extra skops types need explicit trust."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X.a + X.b > 0).astype(int)
    X.loc[::7, "a"] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    from glasslog.registry import Feature

    card = ModelCard("nan model", "1", "tests", "tests", (Feature("a"), Feature("b")), {}, fingerprint_frame(X),
                     ClaimedMetrics({"accuracy": 0.9}, fingerprint_frame(X), 200))
    lg = Ledger.create(tmp_path / "log", "t.example/nan")
    tree = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    with pytest.raises(ArtifactError, match="TreePredictor"):
        Registry(lg).register(model, card)
    assert lg.size == 0
    rec = Registry(lg).register(model, card, trusted=[tree])
    with pytest.raises(ArtifactError):
        capture.wrap(lg, rec.fingerprint, "d")
    w = capture.wrap(lg, rec.fingerprint, "d", trusted=[tree], visibility="public-service")
    assert np.array_equal(w.predict_proba(X.iloc[:30]), model.predict_proba(X.iloc[:30]))
    assert json.loads(lg.entry(2))["output"]["proba"] == model.predict_proba(X.iloc[:1])[0].tolist()
    assert json.loads(lg.private_values_for([2])[2]["input"][2]) == {"a": None, "b": float(X.b.iloc[0])}
    rep = replay(lg, trusted=[tree])
    assert rep.ok and rep.checked == 30
    unloaded = replay(lg)  # without the explicit trust the model is not loaded: not checked, which is not a failure
    assert unloaded.checked == 0 and unloaded.not_checked[0]["types"] == [tree] and not unloaded.errors
    assert rec.trusted == (tree,) and replay(lg, trust_recorded=True).checked == 30


def test_private_deployment_logs_commitments_only(tmp_path, credit):
    X, y, train, evaluation, deploy, model = credit
    lg = Ledger.create(tmp_path / "log", "bank.example/private")
    rec = Registry(lg).register(model, make_card(X, y, train, evaluation))
    w = capture.wrap(lg, rec.fingerprint, "bank.example/credit/private", visibility="private")
    proba = w.predict_proba(X.iloc[deploy[:5]], subject_ids=[f"s{i}" for i in range(5)])
    first = w.last_batch.first_index
    e = json.loads(lg.entry(first))
    assert "output" not in e and e["output_commitment"].startswith("sha256:")
    opened = lg.private_values_for([first])[first]
    assert json.loads(opened["output"][2])["proba"] == proba[0].tolist()
    out = capture.record_outcome(lg, first, int(y.iloc[deploy[0]]))
    o = json.loads(lg.entry(out.first_index))
    assert "outcome" not in o and o["outcome_commitment"].startswith("sha256:")
    r = capture.receipt(lg, first)
    report = verify_receipt(r, lg.verifier_key)
    assert report.ok and "output commitment" in [c.name for c in report.checks]
    assert replay(lg).ok and replay(lg).checked == 5
    # the declaration is on the log and cannot be changed
    from glasslog.registry import DeploymentError, Deployments

    assert Deployments(lg).get("bank.example/credit/private").visibility == "private"
    with pytest.raises(DeploymentError, match="cannot change"):
        Deployments(lg).declare("bank.example/credit/private", "public-service")
    with pytest.raises(DeploymentError):
        capture.wrap(lg, rec.fingerprint, "bank.example/credit/private", visibility="public-service")


def test_audit_catches_type_column_edits_text_rows_and_kill_switch_bypass(deployed, credit):
    lg, record, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    wrapped.predict(X.iloc[deploy[:5]])
    assert audit_log(lg).ok
    db = sqlite3.connect(lg.data_dir / "log.db")
    # hiding a decision by filing it under another type
    db.execute("UPDATE entries SET type = 'outcome' WHERE idx = 4")
    db.commit()
    r = audit_log(lg)
    assert not r.ok and r.first_bad_index == 4 and "type column" in r.problems[0]
    db.execute("UPDATE entries SET type = 'decision' WHERE idx = 4")
    # an SQL edit that stores the entry as TEXT
    db.execute("UPDATE entries SET data = CAST(data AS TEXT) WHERE idx = 3")
    db.commit()
    r = audit_log(lg)
    assert not r.ok and r.first_bad_index == 3 and "stored as str" in r.problems[0]
    with pytest.raises(Exception, match="stored as str"):
        lg.entry(3)
    db.execute("UPDATE entries SET data = CAST(data AS BLOB) WHERE idx = 3")
    db.commit()
    assert audit_log(lg).ok
    # decisions appended directly (bypassing the SDK's kill switch) while the model is suspended
    Registry(lg).set_status(record.fingerprint, "suspended", "review")
    e = json.loads(lg.entry(3))
    c, salt, vb = commit({"x": 1})
    from glasslog.ledger import PrivateValue

    e.update(input=c, time=e["time"])
    res = lg.append([e], [PrivateValue(0, "input", c, salt, vb)])
    r = audit_log(lg)
    assert not r.ok and r.first_bad_index == res.first_index and "while it was suspended" in r.problems[0]


def test_replay_reports_malformed_outputs_instead_of_crashing(deployed, credit):
    lg, record, wrapped = deployed
    X, _, _, _, deploy, _ = credit
    from glasslog.ledger import PrivateValue, utc_now

    row = X.iloc[deploy[0]]
    c, salt, vb = commit({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    res = lg.append([{"type": "decision", "v": 1, "model": record.fingerprint, "deployment": "x", "time": utc_now(),
                      "input": c, "output": "banana"}], [PrivateValue(0, "input", c, salt, vb)])
    rep = replay(lg)
    assert not rep.ok and rep.mismatch_count == 1 and rep.mismatches[0]["index"] == res.first_index


def test_same_name_and_version_cannot_be_registered_twice(deployed, credit):
    lg, record, _ = deployed
    X, y, train, evaluation, _, model = credit
    with pytest.raises(RegistryError, match="register a new version"):
        Registry(lg).register(model, make_card(X, y, train, evaluation))  # new bytes, same name and version
