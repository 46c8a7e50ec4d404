"""Leakage: features that give the label away, rows shared between training and test data, batch-dependent predictions.

Kaufman, Rosset & Perlich (2012), "Leakage in data mining", ACM TKDD 6(4).

- ``leakage.label_proxy``: a column whose association with the label alone
  (``glasslog.audit.shortcut.association``, ROC AUC folded to [0.5, 1]) is
  at least 0.95: a real risk factor almost never separates outcomes that well;
  a recording of the outcome, or an artefact of how the data was gathered, does.
- ``leakage.duplicates``: test rows identical (on the input columns) to a
  training row; such rows make a held-out score optimistic.
- ``leakage.batch_dependence``: the same rows scored alone, in the full batch and
  in shuffled batches must get the same scores (a model that normalises with
  batch statistics, or leaks information between rows, does not). Through the
  prediction function only, with queries counted.
- ``leakage.logged_inconsistency``: identical logged inputs that got different
  logged outputs (needs the logged inputs and outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..findings import Finding, clean_json
from .recording import AuditInputError
from .shortcut import association

__all__ = ["LeakageAudit", "label_proxies", "train_test_duplicates", "batch_dependence", "logged_inconsistency", "leakage_audit"]


def _binary(y: Any, positive: Any) -> np.ndarray:
    s = pd.Series(y).reset_index(drop=True)
    hit = s == positive
    if not hit.any():
        hit = s.astype(str) == str(positive)
    return hit.to_numpy().astype(int)


def label_proxies(X: pd.DataFrame, y: Any, *, positive: Any = 1, threshold: float = 0.95, seed: int = 0,
                  model: str | None = None) -> tuple[pd.Series, list[Finding]]:
    """Association of each column with the label, and a finding per column at or above ``threshold``.

    Returns:
        ``(association per column, findings)``.
    """
    if not isinstance(X, pd.DataFrame) or len(X) == 0:
        raise AuditInputError("X", "must be a non-empty DataFrame")
    if len(y) != len(X):
        raise AuditInputError("y", f"has {len(y)} labels for {len(X)} rows")
    yb = _binary(y, positive)
    assoc = pd.Series({c: association(X[c].reset_index(drop=True), yb, seed) for c in X.columns})
    findings = []
    for c in assoc.index[assoc >= threshold]:
        findings.append(Finding(
            "leakage.label_proxy", f"label association of {c} alone (ROC AUC, folded)", float(assoc[c]), threshold, "alert",
            "critical" if assoc[c] >= 0.99 else "high",
            f"{c} alone separates the outcomes with AUC {assoc[c]:.3f}: a near-perfect predictor is more likely a record of"
            " the outcome or an artefact of data collection than a risk factor.", "labelled-data",
            {"feature": c, "association": float(assoc[c]), "n": len(X)}, model))
    if not findings:
        top = assoc.idxmax()
        findings.append(Finding("leakage.label_proxy", "largest label association of one column", float(assoc[top]), threshold,
                                "ok", "info", f"No column predicts the label almost perfectly (largest: {top}, {assoc[top]:.3f}).",
                                "labelled-data", {"feature": top}, model))
    return assoc, findings


def train_test_duplicates(X_train: pd.DataFrame, X_test: pd.DataFrame, *, model: str | None = None) -> tuple[int, Finding]:
    """Test rows identical to some training row on the shared input columns.

    Returns:
        ``(count, finding)``; alert when more than 1 % of test rows are duplicates (high above 5 %).
    """
    cols = [c for c in X_test.columns if c in X_train.columns]
    if not cols:
        raise AuditInputError("X_test", "shares no column with X_train")
    h_train = set(pd.util.hash_pandas_object(X_train[cols].astype(str), index=False).tolist())
    h_test = pd.util.hash_pandas_object(X_test[cols].astype(str), index=False)
    dup = int(h_test.isin(h_train).sum())
    frac = dup / len(X_test) if len(X_test) else 0.0
    alert = frac > 0.01
    return dup, Finding(
        "leakage.duplicates", "share of test rows duplicated in the training data", frac, 0.01, "alert" if alert else "ok",
        ("high" if frac > 0.05 else "medium") if alert else "info",
        f"{dup} of {len(X_test)} test rows ({frac:.1%}) also occur in the training data.", "labelled-data",
        {"duplicates": dup, "test_rows": len(X_test), "train_rows": len(X_train), "columns": len(cols)}, model)


def batch_dependence(query: Any, X: pd.DataFrame, *, singles: int = 25, batch_size: int = 17, tolerance: float = 1e-9,
                     seed: int = 0, model: str | None = None) -> tuple[dict, Finding]:
    """Score ``X`` as one batch, in shuffled batches of ``batch_size`` and the first ``singles`` rows one at a time; compare.

    Returns:
        ``({"max_abs_diff", "rows_differing", "queries"}, finding)``; alert when any score differs by more than ``tolerance``.
    """
    from .blackbox import as_query_function

    q = as_query_function(query)
    if not isinstance(X, pd.DataFrame) or len(X) == 0:
        raise AuditInputError("X", "must be a non-empty DataFrame")
    before = q.rows
    X = X.reset_index(drop=True)
    full = q.scores(X)
    order = np.random.default_rng(seed).permutation(len(X))
    shuffled = np.empty(len(X))
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        shuffled[idx] = q.scores(X.iloc[idx])
    k = min(singles, len(X))
    single = np.array([q.scores(X.iloc[[i]])[0] for i in range(k)])
    diff = np.maximum(np.abs(full - shuffled), np.pad(np.abs(full[:k] - single), (0, len(X) - k)))
    stats = {"max_abs_diff": float(diff.max()), "rows_differing": int((diff > tolerance).sum()), "queries": q.rows - before,
             "rows": len(X)}
    alert = stats["rows_differing"] > 0
    return stats, Finding(
        "leakage.batch_dependence", "largest score change when a row is scored in another batch", stats["max_abs_diff"],
        tolerance, "alert" if alert else "ok", "high" if alert else "info",
        (f"{stats['rows_differing']} of {len(X)} rows get another score depending on the batch they are scored in"
         f" (largest change {stats['max_abs_diff']:.3g})." if alert else
         f"Scores do not depend on the batch (largest change {stats['max_abs_diff']:.1e}); {stats['queries']} queries."),
        "black-box", stats, model)


def logged_inconsistency(inputs: pd.DataFrame, labels: pd.Series, scores: pd.Series | None = None, *,
                         tolerance: float = 1e-9, model: str | None = None, deployment: str | None = None) -> Finding:
    """Identical logged inputs with different logged outputs (labels, or scores beyond ``tolerance``)."""
    if inputs.shape[1] == 0 or len(inputs) == 0:
        return Finding("leakage.logged_inconsistency", "identical logged inputs with different outputs", None, None,
                       "insufficient-data", "info", "No logged inputs visible to this role.", "logs", {}, model, deployment)
    keys = pd.util.hash_pandas_object(inputs.astype(str), index=False).to_numpy()
    frame = pd.DataFrame({"key": keys, "label": labels.astype(str).to_numpy(),
                          "score": (scores if scores is not None else pd.Series(np.nan, index=labels.index)).to_numpy()})
    repeated = frame[frame.duplicated("key", keep=False)]
    bad = 0
    groups = 0
    for _, g in repeated.groupby("key"):
        groups += 1
        if g["label"].nunique() > 1 or (g["score"].notna().all() and g["score"].max() - g["score"].min() > tolerance):
            bad += 1
    return Finding("leakage.logged_inconsistency", "groups of identical logged inputs with different outputs", bad, 0,
                   "alert" if bad else "ok", "high" if bad else "info",
                   f"{bad} of {groups} groups of identical logged inputs got different outputs." if bad else
                   f"Identical logged inputs got identical outputs ({groups} repeated inputs).", "logs",
                   {"repeated_input_groups": groups, "inconsistent": bad}, model, deployment)


@dataclass
class LeakageAudit:
    """Result of ``leakage_audit``: per-column label association, duplicate count, batch statistics and findings."""

    association: pd.Series
    duplicates: int | None
    batch: dict | None
    findings: list[Finding]
    extra: dict = field(default_factory=dict)

    kind = "leakage"

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"kind": self.kind, "association": self.association.sort_values(ascending=False).to_dict(),
                           "duplicates": self.duplicates, "batch": self.batch,
                           "findings": [f.to_dict() for f in self.findings], **self.extra})


def leakage_audit(X_train: pd.DataFrame, y_train: Any, X_test: pd.DataFrame | None = None, *, query: Any = None,
                  positive: Any = 1, threshold: float = 0.95, seed: int = 0, model: str | None = None) -> LeakageAudit:
    """Label proxies in ``(X_train, y_train)``, train/test duplicates (with ``X_test``) and batch dependence (with ``query``).

    Args:
        X_train, y_train: the data the model was built on (rows x columns, labels).
        X_test: held-out rows (e.g. the evaluation set behind the claims), optional.
        query: the prediction function (or model), optional; batch dependence is tested on ``X_test`` or ``X_train``.

    Raises:
        AuditInputError: empty frames, label length mismatch, no shared columns.
    """
    assoc, findings = label_proxies(X_train, y_train, positive=positive, threshold=threshold, seed=seed, model=model)
    dups = None
    if X_test is not None:
        dups, f = train_test_duplicates(X_train, X_test, model=model)
        findings.append(f)
    batch = None
    if query is not None:
        batch, f = batch_dependence(query, (X_test if X_test is not None else X_train).head(200), seed=seed, model=model)
        findings.append(f)
    return LeakageAudit(assoc, dups, batch, findings)
