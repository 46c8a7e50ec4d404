"""The monitors read the log's columnar copy: the same views and the same findings as reading the entries and
private values (the way before it, kept as bench/monitors_legacy.py, the benchmark's baseline), for every role,
after erasures; and ``monitor run --every`` (a ``ColumnCursor``) reads only the decisions added since its last run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from glasslog import capture
from glasslog.datasets import credit_model, german_credit_features, load_german_credit, split
from glasslog.ledger import Entry, Ledger, PrivateValue, commit
from glasslog.oversight.monitors import MonitorConfig, monitor_views, run_monitors
from glasslog.oversight.views import ColumnCursor, load_views
from glasslog.records.oversight import metric_entry
from glasslog.registry import ClaimedMetrics, ModelCard, Registry, fingerprint_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from monitors_legacy import load_views_legacy  # noqa: E402

ROLES = ("public", "developer", "researcher", "supervisor", "operator")
PRIVATE, PUBLIC = "bank.example/columnar/private", "bank.example/columnar/public"


def _register(lg: Ledger):
    """Train the German Credit model on a split, claim inflated accuracy, register it; returns (fp, X, y, deploy rows)."""
    X, y = load_german_credit()
    train, evaluation, deploy = split(len(X), 3)
    model = credit_model(X, 3).fit(X.iloc[train], y.iloc[train])
    claimed = {"accuracy": float(accuracy_score(y.iloc[evaluation], model.predict(X.iloc[evaluation]))) + 0.1,
               "roc_auc": float(roc_auc_score(y.iloc[evaluation], model.predict_proba(X.iloc[evaluation])[:, 1]))}
    card = ModelCard(name="scorecard", version="columnar", provider="test bank", intended_use="credit scoring test",
                     features=german_credit_features(X), output={"classes": [0, 1], "positive": 1, "favourable": 0},
                     training_data_fingerprint=fingerprint_frame(X.iloc[train].assign(y=y.iloc[train])),
                     claimed=ClaimedMetrics(claimed, fingerprint_frame(X.iloc[evaluation].assign(y=y.iloc[evaluation])),
                                            len(evaluation)),
                     disclosure_policy="researchers")
    return Registry(lg).register(model, card).fingerprint, X, y, np.asarray(deploy)


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    lg = Ledger.create(tmp_path_factory.mktemp("columnar") / "log", "bank.example/columnar")
    fp, X, y, rows = _register(lg)
    private = capture.wrap(lg, fp, PRIVATE, visibility="private")
    idx = []
    for s in range(0, 240, 60):
        private.predict_proba(X.iloc[rows[s : s + 60]], subject_ids=[f"a-{k}" for k in range(s, s + 60)])
        idx.extend(private.last_batch.indexes)
    public = capture.wrap(lg, fp, PUBLIC, visibility="public-service")
    public.predict_proba(X.iloc[rows[240:300]])
    pub_idx = list(public.last_batch.indexes)
    first_outcome = capture.record_outcomes(lg, list(zip(idx[:200], y.iloc[rows[:200]].astype(int).tolist()))).first_index
    capture.record_outcomes(lg, list(zip(pub_idx[:30], y.iloc[rows[240:270]].astype(int).tolist())))
    # a correction: the latest outcome of a decision counts
    capture.record_outcomes(lg, [(idx[0], 1 - int(y.iloc[rows[0]]), first_outcome, "data entry error")])
    lg.append([metric_entry(time="2026-11-29T08:00:00Z", model=fp, deployment=PRIVATE, name="satisfaction", value=0.7)])
    # Inputs a card does not expect: a word in a numeric feature, a missing feature, an unknown one, nulls.
    odd = X.iloc[rows[:3]].to_dict(orient="records")
    odd[0]["age_in_years"] = "forty"
    del odd[1]["credit_amount"]
    odd[1]["unexpected"] = [1, 2]
    odd[2]["purpose"] = None
    entries, values = [], []
    for k, value in enumerate(odd):
        c_in, s_in, b_in = commit(value)
        c_out, s_out, b_out = commit({"label": 1, "proba": [0.4, 0.6]})
        entries.append(Entry.from_object({"type": "decision", "v": 1, "model": fp, "deployment": PRIVATE,
                                          "time": f"2026-11-29T09:00:0{k}Z", "input": c_in, "output_commitment": c_out}))
        values += [PrivateValue(k, "input", c_in, s_in, b_in), PrivateValue(k, "output", c_out, s_out, b_out)]
    idx.extend(lg.append(entries, values).indexes)
    # Erasures: an input, an output and an outcome.
    opened = lg.private_values_for([idx[5], idx[6]])
    lg.erase_private(opened[idx[5]]["input"][0], "GDPR Art. 17 request", entry_index=idx[5])
    lg.erase_private(opened[idx[6]]["output"][0], "GDPR Art. 17 request", entry_index=idx[6])
    o7 = next(i for i, o in lg.entries_of_type("outcome") if o["decision"] == idx[7])
    lg.erase_private(lg.private_values_for([o7])[o7]["outcome"][0], "GDPR Art. 17 request", entry_index=o7)
    yield lg, idx, pub_idx
    lg.close()


def _same_objects(a: np.ndarray, b: np.ndarray) -> None:
    assert [(type(x).__name__, x) for x in a.tolist()] == [(type(x).__name__, x) for x in b.tolist()]


def _same_view(a, b) -> None:
    for name in ("deployment", "visibility", "model", "role", "sees_outputs", "sees_inputs", "outcomes_unreadable",
                 "withheld", "classes", "positive", "metrics"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("index", "time", "predicted", "score", "outcome", "outcome_time", "input_available"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)
            assert x.dtype == y.dtype, name
    assert (a.label is None) == (b.label is None)
    if a.label is not None:
        _same_objects(a.label, b.label)
    assert sorted(a.invalid) == sorted(b.invalid)
    for name in a.invalid:
        np.testing.assert_array_equal(a.invalid[name], b.invalid[name])
    assert (a.inputs is None) == (b.inputs is None)
    if a.inputs is not None:
        pd.testing.assert_frame_equal(a.inputs, b.inputs, check_exact=True)
        for name in a.inputs.columns:
            if a.inputs[name].dtype == object:
                _same_objects(a.inputs[name].to_numpy(), b.inputs[name].to_numpy())


@pytest.mark.parametrize("role", ROLES)
def test_the_same_views_and_findings_as_reading_the_entries(log, role):
    lg, idx, pub_idx = log
    granted = [PRIVATE] if role == "developer" else []
    old = load_views_legacy(lg, role, granted=granted)
    new = load_views(lg, role, granted=granted)
    assert [v.deployment for v in new] == [PRIVATE, PUBLIC]
    for a, b in zip(old, new, strict=True):
        _same_view(a, b)
    cfg = MonitorConfig(reference_size=100, groups={"age_in_years": {"bins": [25]}}, now=datetime.now(timezone.utc))
    found_old, skipped_old = monitor_views(old, cfg, role=role)
    found_new, skipped_new = monitor_views(new, cfg, role=role)
    assert [f.to_dict() for f in found_new] == [f.to_dict() for f in found_old] and skipped_new == skipped_old
    assert found_new  # the comparison is about real findings


def test_what_the_copy_holds_for_the_erased_and_the_odd(log):
    lg, idx, _ = log
    (view, _) = load_views(lg, "supervisor")
    pos = {i: k for k, i in enumerate(view.index.tolist())}
    assert not view.input_available[pos[idx[5]]] and np.isnan(view.inputs["credit_amount"].iloc[pos[idx[5]]])
    assert view.label[pos[idx[6]]] is None and np.isnan(view.score[pos[idx[6]]])
    assert np.isnan(view.outcome[pos[idx[7]]]) and not np.isnat(view.outcome_time[pos[idx[7]]])
    forty = pos[idx[-3]]
    assert view.invalid["age_in_years"][forty] and np.isnan(view.inputs["age_in_years"].iloc[forty])
    assert pd.isna(view.inputs["purpose"].iloc[pos[idx[-1]]]) and view.input_available[pos[idx[-1]]]


def test_a_cursor_reads_only_the_decisions_added_since(log, tmp_path):
    lg, idx, _ = log
    copy = Ledger.create(tmp_path / "log", "bank.example/columnar-every")
    try:
        fp, X, _, _ = _register(copy)
        wrapped = capture.wrap(copy, fp, PRIVATE, visibility="private")
        wrapped.predict_proba(X.iloc[:300])
        cursor = ColumnCursor()
        cfg = MonitorConfig(reference_size=100, now=datetime.now(timezone.utc))
        first = run_monitors(copy, "supervisor", cfg, cursor=cursor)
        assert first.rows_read == 300 and first.decisions == 300
        wrapped.predict_proba(X.iloc[300:340])
        second = run_monitors(copy, "supervisor", cfg, cursor=cursor)
        assert second.rows_read == 40 and second.decisions == 340  # the new decisions only, the views whole
        fresh = run_monitors(copy, "supervisor", cfg)
        assert [f.to_dict() for f in second.findings] == [f.to_dict() for f in fresh.findings]
        c = copy.private_values_for([wrapped.last_batch.indexes[0]])[wrapped.last_batch.indexes[0]]["input"][0]
        copy.erase_private(c, "GDPR Art. 17 request")
        third = run_monitors(copy, "supervisor", cfg, cursor=cursor)
        assert third.rows_read == 340  # an erasure scrubbed the copy: everything is read again
    finally:
        copy.close()



def test_monitor_run_every_reads_only_new_decisions(tmp_path):
    """``glasslog monitor run --every``: the first run reads every decision, a later one only those logged since."""
    lg = Ledger.create(tmp_path / "log", "bank.example/columnar-cli")
    try:
        fp, X, _, _ = _register(lg)
        wrapped = capture.wrap(lg, fp, PRIVATE, visibility="private")
        wrapped.predict_proba(X.iloc[:200])
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-c", "from glasslog.cli import app; app()", "monitor", "run", "-d",
                                 str(lg.data_dir), "--monitors", "drift,anomalies", "--dry-run", "--every", "1", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            first = json.loads(proc.stdout.readline())
            assert first["rows_read"] == 200 and first["decisions"] == 200
            wrapped.predict_proba(X.iloc[200:225])
            runs = []
            while not runs or runs[-1]["decisions"] < 225:
                runs.append(json.loads(proc.stdout.readline()))
            assert runs[-1]["rows_read"] == 25  # the 25 new decisions only
            assert all(r["rows_read"] == 0 for r in runs[:-1])  # nothing new: nothing read
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
    finally:
        lg.close()
