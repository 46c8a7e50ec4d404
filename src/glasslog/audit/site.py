"""Does the model know the site? Multi-source data: how well the inputs give away the source, and how performance differs by source.

Zech et al. (2018), "Variable generalization performance of a deep learning
model to detect pneumonia in chest radiographs: a cross-sectional study",
PLOS Medicine 15(11): e1002683, found that chest X-ray models identified the
hospital a film came from almost perfectly, that prevalence differed by
hospital, and that performance fell on hospitals not in training. The same
three measurements here, for tabular inputs:

- ``site.predictable``: a gradient-boosted classifier (scikit-learn
  ``HistGradientBoostingClassifier``) predicts the site from the inputs with
  stratified 5-fold cross-validation, on one thread; macro one-vs-rest ROC AUC (0.5 = the
  inputs say nothing about the site). Alert at >= 0.8.
- ``site.performance_gap``: the model's accuracy per site (Wilson intervals)
  and ROC AUC; alert when the best and worst sites' accuracy intervals do
  not overlap.
- ``site.score_gap``: among rows with the same true label, the model's mean
  score per site; a gap >= 0.1 means the score depends on the site itself,
  not only on the outcome (the "model knows the site" pattern).
Base rates per site are reported as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..findings import Finding, clean_json
from ..stats import wilson_interval
from .recording import AuditInputError

__all__ = ["SiteAudit", "site_audit"]


@dataclass
class SiteAudit:
    """Result of ``site_audit``.

    Attributes:
        site_auc: cross-validated macro one-vs-rest ROC AUC of predicting the site from the inputs.
        site_accuracy: cross-validated accuracy of that prediction; ``chance``: largest site's share.
        by_site: DataFrame indexed by site: ``n``, ``base_rate``, ``accuracy`` (+ ``_lo``/``_hi``), ``roc_auc``,
            ``mean_score_pos`` / ``mean_score_neg`` (mean model score among rows with label 1 / 0).
        findings: ``site.predictable``, ``site.performance_gap``, ``site.score_gap``.
    """

    site_auc: float
    site_accuracy: float
    chance: float
    by_site: pd.DataFrame
    findings: list[Finding]
    queries: int = 0
    extra: dict = field(default_factory=dict)

    kind = "site"

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"kind": self.kind, "site_auc": self.site_auc, "site_accuracy": self.site_accuracy,
                           "chance": self.chance, "queries": self.queries,
                           "by_site": [{"site": str(s), **row} for s, row in self.by_site.to_dict(orient="index").items()],
                           "findings": [f.to_dict() for f in self.findings], **self.extra})


def _site_classifier(X: pd.DataFrame, seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    cat = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    num = [c for c in X.columns if c not in cat]
    pre = ColumnTransformer([("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                                    encoded_missing_value=-2), cat),
                             ("num", "passthrough", num)])
    clf = HistGradientBoostingClassifier(categorical_features=list(range(len(cat))) or None, random_state=seed, max_iter=100)
    return Pipeline([("prepare", pre), ("classify", clf)]), cat


def _site_giveaway(clf: Any, X: pd.DataFrame, sites: pd.Series, seed: int, top: int = 3) -> dict[str, float]:
    """The columns that identify the site most: permutation importance (Breiman 2001; scikit-learn's
    ``permutation_importance``, 3 repeats) of the site classifier fitted on all rows, as the drop in accuracy
    (a fraction) when the column is shuffled; the ``top`` columns with a positive drop."""
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        fitted = clf.fit(X, sites)
        imp = permutation_importance(fitted, X, sites, n_repeats=3, random_state=seed, scoring="accuracy")
    order = np.argsort(-imp.importances_mean)[:top]
    return {str(X.columns[k]): float(imp.importances_mean[k]) for k in order if imp.importances_mean[k] > 0}


def site_audit(X: pd.DataFrame, y: Any, site: Any, *, query: Any = None, positive: Any = 1, folds: int = 5,
               seed: int = 0, predictable_threshold: float = 0.8, score_gap_threshold: float = 0.1,
               model: str | None = None) -> SiteAudit:
    """Measure how far the inputs identify the site, and how the model's performance and scores differ by site.

    Args:
        X: rows x input columns (the site column itself excluded).
        y: labels, shape (rows,).
        site: the source of each row, shape (rows,), at least two sites.
        query: the model's prediction function or fitted model (optional; without it only predictability and base rates).
        positive: the positive label.
        folds: cross-validation folds for the site classifier.
        seed: seed of the folds and the classifier.

    Raises:
        AuditInputError: lengths differ, no input columns, rows without a site or label, ``positive`` not among
            the labels, empty input cells when ``query`` is given (the field names the column), a seed outside
            0..2**32-1, fewer than two sites, a site smaller than ``folds`` rows.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if not isinstance(X, pd.DataFrame) or len(X) == 0:
        raise AuditInputError("X", "must be a non-empty DataFrame")
    if len(y) != len(X) or len(site) != len(X):
        raise AuditInputError("y" if len(y) != len(X) else "site", f"must have {len(X)} rows like X")
    if X.shape[1] == 0:
        raise AuditInputError("X", "has no input columns (only the label and site columns?): nothing to predict the site from")
    if isinstance(seed, bool) or not 0 <= int(seed) < 2**32:
        raise AuditInputError("seed", f"must be an integer from 0 to {2**32 - 1}, got {seed!r}")
    raw_site = pd.Series(site).reset_index(drop=True)
    if raw_site.isna().any() or (raw_site.astype(str).str.strip() == "").any():
        empty = raw_site.isna() | (raw_site.astype(str).str.strip() == "")
        raise AuditInputError("site", f"{int(empty.sum())} rows have no site value (first at row {int(empty.to_numpy().argmax())})")
    yv = pd.Series(y).reset_index(drop=True)
    if yv.isna().any():
        raise AuditInputError("y", f"{int(yv.isna().sum())} rows have no label (first at row {int(yv.isna().to_numpy().argmax())})")
    if not (yv == positive).any() and not (yv.astype(str) == str(positive)).any():
        raise AuditInputError("positive", f"the positive value {positive!r} does not occur in the labels; values are"
                                          f" {sorted(map(str, pd.unique(yv)))[:6]}")
    if query is not None and X.isna().any().any():
        col = X.columns[X.isna().any()][0]
        raise AuditInputError(str(col), f"{int(X[col].isna().sum())} empty cells (first at row"
                                        f" {int(X[col].reset_index(drop=True).isna().to_numpy().argmax())}): the model cannot"
                                        " score rows with missing inputs")
    sites = raw_site.astype(str)
    counts = sites.value_counts()
    if len(counts) < 2:
        raise AuditInputError("site", f"needs at least two sites, got {list(counts.index)}")
    if counts.min() < folds:
        raise AuditInputError("site", f"site {counts.idxmin()!r} has {counts.min()} rows; each needs at least {folds}")
    Xr = X.reset_index(drop=True)
    yb = (yv == positive) if (yv == positive).any() else (yv.astype(str) == str(positive))
    yb = yb.to_numpy().astype(int)
    clf, _ = _site_classifier(Xr, seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    from threadpoolctl import threadpool_limits

    # One OpenMP/BLAS thread: on a busy 2-core machine the gradient boosting's default thread pool made this
    # step over 100 times slower (172 s instead of 1.5 s for 1,000 rows, measured).
    with threadpool_limits(1):
        proba = cross_val_predict(clf, Xr, sites, cv=cv, method="predict_proba")
    labels = np.array(sorted(counts.index))
    if len(labels) == 2:
        site_auc = float(roc_auc_score(sites == labels[1], proba[:, 1]))
    else:
        site_auc = float(roc_auc_score(sites, proba, multi_class="ovr", average="macro", labels=labels))
    site_acc = float((labels[proba.argmax(axis=1)] == sites.to_numpy()).mean())
    chance = float(counts.max() / len(sites))

    rows = {}
    queries = 0
    scores = None
    if query is not None:
        from .blackbox import as_query_function

        q = as_query_function(query)
        before = q.rows
        scores = q.scores(Xr)
        queries = q.rows - before
        pred = (scores >= q.threshold).astype(int)
    for s in labels:
        m = (sites == s).to_numpy()
        row = {"n": int(m.sum()), "base_rate": float(yb[m].mean())}
        if scores is not None:
            correct = int((pred[m] == yb[m]).sum())
            lo, hi = wilson_interval(correct, int(m.sum()))
            row.update(accuracy=correct / m.sum(), accuracy_lo=lo, accuracy_hi=hi,
                       roc_auc=float(roc_auc_score(yb[m], scores[m])) if len(np.unique(yb[m])) == 2 else np.nan,
                       mean_score_pos=float(scores[m & (yb == 1)].mean()) if (m & (yb == 1)).any() else np.nan,
                       mean_score_neg=float(scores[m & (yb == 0)].mean()) if (m & (yb == 0)).any() else np.nan)
        rows[s] = row
    by_site = pd.DataFrame.from_dict(rows, orient="index")
    findings = []
    rates = ", ".join(f"{s} {by_site.loc[s, 'base_rate']:.1%}" for s in labels)
    alert = site_auc >= predictable_threshold
    giveaway: dict[str, float] = {}
    if alert:
        giveaway = _site_giveaway(clf, Xr, sites, seed)
    named = ", ".join(f"{c} ({v:.2f})" for c, v in giveaway.items())
    findings.append(Finding(
        "site.predictable", "cross-validated ROC AUC of predicting the site from the inputs", site_auc, predictable_threshold,
        "alert" if alert else "ok", ("high" if site_auc >= 0.95 else "medium") if alert else "info",
        f"The inputs identify the site with AUC {site_auc:.3f} (accuracy {site_acc:.1%}, chance {chance:.1%}); base rates by"
        f" site: {rates}." + (f" The columns that give the site away most (drop in the site classifier's accuracy when"
                              f" shuffled): {named}." if named else ""), "labelled-data",
        {"site_auc": site_auc, "site_accuracy": site_acc, "chance": chance, "folds": folds, "giveaway_columns": giveaway,
         "base_rate": by_site["base_rate"].to_dict(), "n": by_site["n"].to_dict()}, model))
    if scores is not None:
        best, worst = by_site["accuracy"].idxmax(), by_site["accuracy"].idxmin()
        gap = float(by_site.loc[best, "accuracy"] - by_site.loc[worst, "accuracy"])
        separated = by_site.loc[worst, "accuracy_hi"] < by_site.loc[best, "accuracy_lo"]
        findings.append(Finding(
            "site.performance_gap", "accuracy gap between the best and worst site", gap, None, "alert" if separated else "ok",
            ("high" if gap >= 0.15 else "medium") if separated else "info",
            f"Accuracy {by_site.loc[best, 'accuracy']:.3f} at {best} vs {by_site.loc[worst, 'accuracy']:.3f} at {worst}"
            + (" (95% intervals do not overlap)." if separated else " (intervals overlap)."), "black-box",
            {"accuracy": by_site["accuracy"].to_dict(), "ci": {s: [by_site.loc[s, "accuracy_lo"], by_site.loc[s, "accuracy_hi"]]
                                                                 for s in labels}, "roc_auc": by_site["roc_auc"].to_dict(),
             "queries": queries}, model))
        gaps = {k: float(by_site[k].max() - by_site[k].min()) for k in ("mean_score_pos", "mean_score_neg")}
        worst_gap = max(gaps.values())
        alert = worst_gap >= score_gap_threshold
        findings.append(Finding(
            "site.score_gap", "largest gap in mean score between sites among rows with the same label", worst_gap,
            score_gap_threshold, "alert" if alert else "ok", ("high" if worst_gap >= 0.2 else "medium") if alert else "info",
            f"Among rows with the same outcome, the mean score differs by up to {worst_gap:.3f} between sites"
            f" (label 1: {gaps['mean_score_pos']:.3f}, label 0: {gaps['mean_score_neg']:.3f})"
            + (": the score depends on the site itself." if alert else "."), "black-box",
            {"gaps": gaps, "mean_score_pos": by_site["mean_score_pos"].to_dict(),
             "mean_score_neg": by_site["mean_score_neg"].to_dict()}, model))
    return SiteAudit(site_auc, site_acc, chance, by_site, findings, queries)
