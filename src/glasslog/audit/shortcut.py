"""Shortcut / spurious-feature detection: features a model leans on whose tie to the outcome is weak, unstable or gone.

A shortcut (Geirhos et al. 2020, "Shortcut learning in deep neural
networks", Nature Machine Intelligence 2:665) is a feature that predicts the
label in the data the model was built on but not where it is used. The
checks, per input column:

- **Association with the label** in each segment (training, validation,
  deployment, sites, time windows): the ROC AUC of the column alone, folded
  to [0.5, 1] (0.5 = no relation, 1 = determines the label). Numeric columns
  are ranked as they are; categorical ones are target-encoded with 2-fold
  cross-fitting so a many-valued column does not score by memorising.
- **Reliance**: the model's share of mean |SHAP| (``feature_reliance``) and the
  column's association with the model's own predicted label.
- ``shortcut.unstable``: the model relies on the column (share >= 0.2, or it
  predicts the model's label with AUC >= 0.9) while its label association is
  weak (< 0.6) in some segment or varies across segments by >= 0.15.
- ``shortcut.declared_irrelevant``: a column the model card calls irrelevant or
  non-causal (``card.extra["irrelevant_features"]`` / ``["non_causal_features"]``)
  carries >= 5 % of the reliance.
- ``shortcut.vanished``: the column's label association in the training
  segment (>= 0.6) is gone in the deployment outcomes (its bootstrap interval
  reaches 0.5, or it fell by >= 0.15).
- ``shortcut.shifted``: a column carrying >= 10 % of the reliance has a
  different distribution in deployment inputs than in training (Kolmogorov-
  Smirnov distance for numeric columns, total variation distance for
  categorical ones, >= 0.3) - no outcomes needed, so it can fire from the
  first logged batch.
- ``shortcut.dormant`` (``dormant_features``): a numeric column whose spread
  collapsed in deployment inputs, against the training spread the weights
  record, and whose training values flip many decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..findings import Finding, clean_json
from .recording import AuditInputError

__all__ = ["association", "association_ci", "distribution_shift", "ShortcutAudit", "shortcut_audit", "known_values",
           "training_spread", "dormant_features",
           "complete_from_weights"]


def association(x: Any, y: Any, seed: int = 0) -> float:
    """Strength of the relation of one column with a binary label: ROC AUC of the column alone, folded to [0.5, 1].

    Args:
        x: the column, shape (n,), numeric or categorical.
        y: 0/1 labels, shape (n,).

    Returns:
        0.5 when the column is constant, the label is constant, or there is no relation; 1.0 when it separates the classes.
    """
    y = np.asarray(y).astype(int)
    s = pd.Series(x).reset_index(drop=True)
    if len(np.unique(y)) < 2 or s.nunique(dropna=False) < 2:
        return 0.5
    if pd.api.types.is_numeric_dtype(s):
        score = s.astype(float).fillna(s.astype(float).median()).to_numpy()
    else:
        keys = s.astype(str)
        fold = np.random.default_rng(seed).permutation(len(s)) % 2
        score = np.empty(len(s))
        prior = y.mean()
        for k in (0, 1):
            train = fold != k
            means = pd.Series(y[train]).groupby(keys[train].to_numpy()).agg(["sum", "count"])
            enc = (means["sum"] + prior) / (means["count"] + 1)  # one pseudo-count toward the overall rate
            score[~train] = keys[~train].map(enc).fillna(prior).to_numpy()
    auc = _auc(y, score)
    return float(max(auc, 1 - auc))


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with midranks for ties (equal to scikit-learn's ``roc_auc_score``)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def association_ci(x: Any, y: Any, n_boot: int = 200, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``association`` (rows resampled), as fractions."""
    rng = np.random.default_rng(seed)
    xs, ys = pd.Series(x).reset_index(drop=True), np.asarray(y).astype(int)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(ys), len(ys))
        vals.append(association(xs.iloc[idx], ys[idx], seed))
    a = (1 - confidence) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def distribution_shift(a: Any, b: Any) -> float:
    """Distance between two samples of one column: Kolmogorov-Smirnov statistic (numeric) or total variation distance (categorical); 0 = same, 1 = disjoint."""
    sa, sb = pd.Series(a).dropna(), pd.Series(b).dropna()
    if len(sa) == 0 or len(sb) == 0:
        return float("nan")
    if pd.api.types.is_numeric_dtype(sa) and pd.api.types.is_numeric_dtype(sb):
        from scipy.stats import ks_2samp

        return float(ks_2samp(sa.astype(float), sb.astype(float)).statistic)
    pa, pb = sa.astype(str).value_counts(normalize=True), sb.astype(str).value_counts(normalize=True)
    return float(0.5 * pa.subtract(pb, fill_value=0).abs().sum())


@dataclass
class ShortcutAudit:
    """Result of ``shortcut_audit``.

    Attributes:
        label_association: DataFrame features x segments of ``association`` with the label (NaN where a segment has no labels).
        prediction_association: Series, per feature: association with the model's predicted label in the reference segment.
        reliance_share: Series, per feature: share of mean |SHAP| (from ``reliance``), or empty.
        shift: Series, per feature: distribution distance between the training and deployment segments' inputs, or empty.
        findings: one per flagged feature and check, plus an ``ok`` per check that flagged none.
    """

    label_association: pd.DataFrame
    prediction_association: pd.Series
    reliance_share: pd.Series
    shift: pd.Series
    findings: list[Finding]
    segments: list[str]
    extra: dict = field(default_factory=dict)

    kind = "shortcut"

    def flagged(self, check: str) -> list[str]:
        """Features alerted by ``check`` (e.g. ``shortcut.unstable``)."""
        return [f.evidence["feature"] for f in self.findings if f.check == check and f.alert and "feature" in f.evidence]

    def to_dict(self) -> dict[str, Any]:
        table = self.label_association.copy()
        table["prediction_association"] = self.prediction_association
        if len(self.reliance_share):
            table["reliance_share"] = self.reliance_share
        if len(self.shift):
            table["shift"] = self.shift
        return clean_json({"kind": self.kind, "segments": self.segments,
                           "features": [{"feature": f, **row} for f, row in table.to_dict(orient="index").items()],
                           "findings": [f.to_dict() for f in self.findings], **self.extra})


def shortcut_audit(
    model: Any,
    segments: dict[str, tuple[pd.DataFrame, Any]],
    *,
    reliance: Any = None,
    card: Any = None,
    positive: Any = 1,
    reference: str | None = None,
    training: str | None = "training",
    deployment: str | None = "deployment",
    reliance_threshold: float = 0.2,
    determine_threshold: float = 0.9,
    weak_threshold: float = 0.6,
    unstable_range: float = 0.15,
    irrelevant_share: float = 0.05,
    shift_share: float = 0.1,
    shift_threshold: float = 0.3,
    seed: int = 0,
    model_fingerprint: str | None = None,
    deployment_name: str | None = None,
) -> ShortcutAudit:
    """Find shortcut features (see module docstring).

    Args:
        model: the fitted classifier (weights) with ``predict_proba``.
        segments: name -> ``(X, y)``: rows x input columns and their labels,
            shape (rows,); ``y`` may be None for a segment without outcomes yet
            (e.g. deployment inputs from the log before outcomes arrive).
        reliance: a ``FeatureReliance`` of this model (for shares), optional.
        card: the ``ModelCard`` (irrelevant / non-causal feature lists), optional.
        positive: the positive label.
        reference: segment for the association with the model's prediction (default: the first).
        training, deployment: names of the segments compared by ``vanished`` and ``shifted``.
        thresholds: as in the module docstring.
        seed: cross-fitting and bootstrap seed.

    Raises:
        AuditInputError: no segments, a segment without rows, segments with different columns.
    """
    if not segments:
        raise AuditInputError("segments", "give at least one segment name -> (X, y)")
    names = list(segments)
    columns = None
    for name, (X, y) in segments.items():
        if not isinstance(X, pd.DataFrame) or len(X) == 0:
            raise AuditInputError(f"segments.{name}", "X must be a non-empty DataFrame")
        if y is not None and len(y) != len(X):
            raise AuditInputError(f"segments.{name}", f"has {len(y)} labels for {len(X)} rows")
        cols = list(X.columns)
        if columns is None:
            columns = cols
        elif set(cols) != set(columns):
            raise AuditInputError(f"segments.{name}", f"columns differ from segment {names[0]!r}: {sorted(set(cols) ^ set(columns))}")
    assert columns is not None
    reference = reference or names[0]
    if reference not in segments:
        raise AuditInputError("reference", f"no segment {reference!r}; segments are {names}")

    def binary(y: Any) -> np.ndarray:
        s = pd.Series(y).reset_index(drop=True)
        return (s == positive).to_numpy().astype(int) if (s == positive).any() else (s.astype(str) == str(positive)).to_numpy().astype(int)

    assoc = pd.DataFrame(index=columns, columns=names, dtype=float)
    for name, (X, y) in segments.items():
        if y is None:
            continue
        yb = binary(y)
        for c in columns:
            assoc.loc[c, name] = association(X[c], yb, seed)
    Xr = segments[reference][0][columns]
    classes = list(getattr(model, "classes_", [0, 1]))
    pos_idx = classes.index(positive) if positive in classes else len(classes) - 1
    pred = (np.asarray(model.predict_proba(Xr))[:, pos_idx] >= 0.5).astype(int)
    pred_assoc = pd.Series({c: association(Xr[c], pred, seed) for c in columns})
    share = pd.Series(dtype=float)
    if reliance is not None:
        share = pd.Series(dict(zip(reliance.features, reliance.shap_share))).reindex(columns).fillna(0.0)
    findings: list[Finding] = []
    fp, dep = model_fingerprint, deployment_name

    # unstable / weak relation while relied upon
    labelled = [n for n in names if segments[n][1] is not None]
    hits = 0
    for c in columns:
        relied = (len(share) and share[c] >= reliance_threshold) or pred_assoc[c] >= determine_threshold
        if not relied or not labelled:
            continue
        values = assoc.loc[c, labelled].astype(float)
        weakest, spread = float(values.min()), float(values.max() - values.min())
        if weakest < weak_threshold or spread >= unstable_range:
            hits += 1
            sev = "high" if (weakest < weak_threshold and spread >= unstable_range) else "medium"
            findings.append(Finding(
                "shortcut.unstable", f"label association of {c} across segments (model relies on it)", weakest, weak_threshold,
                "alert", sev,
                f"The model relies on {c} (share {share.get(c, float('nan')):.0%} of mean |SHAP|, predicts the model's label"
                f" with AUC {pred_assoc[c]:.2f}) but its relation to the outcome is weak or unstable: association"
                f" {', '.join(f'{n} {values[n]:.2f}' for n in labelled)}.", "white-box",
                {"feature": c, "association": values.to_dict(), "reliance_share": share.get(c), "prediction_association": pred_assoc[c]},
                fp, dep))
    if not hits:
        findings.append(Finding("shortcut.unstable", "features relied upon with weak or unstable label association", 0, None,
                                "ok" if labelled else "insufficient-data", "info",
                                "No relied-upon feature has a weak or unstable relation to the outcome across segments."
                                if labelled else "No segment has outcomes.", "white-box", {"segments": labelled}, fp, dep))

    # declared irrelevant / non-causal features that carry weight
    declared: list[str] = []
    extra = getattr(card, "extra", None) or {}
    for key in ("irrelevant_features", "non_causal_features"):
        declared += [str(f) for f in (extra.get(key) or []) if str(f) in columns]
    if declared and len(share):
        for c in declared:
            alert = share[c] >= irrelevant_share
            findings.append(Finding(
                "shortcut.declared_irrelevant", f"reliance share of {c}, which the card calls irrelevant", float(share[c]),
                irrelevant_share, "alert" if alert else "ok", ("high" if share[c] >= 0.2 else "medium") if alert else "info",
                f"The model card calls {c} irrelevant or non-causal; it carries {share[c]:.1%} of the model's mean |SHAP|.",
                "white-box", {"feature": c, "reliance_share": float(share[c])}, fp, dep))

    # vanished relation (training -> deployment outcomes)
    shift = pd.Series(dtype=float)
    if training in segments and deployment in segments:
        Xt, yt = segments[training]
        Xd, yd = segments[deployment]
        shift = pd.Series({c: distribution_shift(Xt[c], Xd[c]) for c in columns})
        if yt is not None and yd is not None:
            ydb = binary(yd)
            vanished = 0
            for c in columns:
                before, after = float(assoc.loc[c, training]), float(assoc.loc[c, deployment])
                if before < weak_threshold:
                    continue
                lo, hi = association_ci(Xd[c], ydb, seed=seed)
                if lo <= 0.5 + 1e-9 or before - after >= unstable_range:
                    vanished += 1
                    relied = float(share.get(c, 0.0)) if len(share) else None
                    sev = "high" if relied is not None and relied >= reliance_threshold else "medium" if relied else "low"
                    findings.append(Finding(
                        "shortcut.vanished", f"label association of {c}: {training} vs {deployment}", after, before, "alert", sev,
                        f"{c} relates to the outcome in {training} (association {before:.2f}) but not in {deployment} outcomes"
                        f" ({after:.2f}, 95% interval {lo:.2f}-{hi:.2f})"
                        + (f"; the model puts {relied:.0%} of its reliance on it." if relied is not None else "."),
                        "white-box", {"feature": c, "before": before, "after": after, "after_ci": [lo, hi], "reliance_share": relied},
                        fp, dep))
            if not vanished:
                findings.append(Finding("shortcut.vanished", f"features whose label association vanished in {deployment}", 0,
                                        None, "ok", "info", "No feature lost its relation to the outcome in deployment.",
                                        "white-box", {}, fp, dep))
        if len(share):
            shifted = 0
            for c in columns:
                if share[c] >= shift_share and shift[c] >= shift_threshold:
                    shifted += 1
                    findings.append(Finding(
                        "shortcut.shifted", f"distribution shift of {c} ({training} -> {deployment} inputs)", float(shift[c]),
                        shift_threshold, "alert", "high" if share[c] >= reliance_threshold else "medium",
                        f"{c} carries {share[c]:.0%} of the model's reliance and its distribution in {deployment} inputs differs"
                        f" from {training} (distance {shift[c]:.2f}): the model is running on data unlike what it learned.",
                        "white-box", {"feature": c, "shift": float(shift[c]), "reliance_share": float(share[c]),
                                      "rows": {training: len(Xt), deployment: len(Xd)}}, fp, dep))
            if not shifted:
                findings.append(Finding("shortcut.shifted", "relied-upon features with shifted distributions", 0, None, "ok",
                                        "info", "No relied-upon feature's distribution shifted.", "white-box", {}, fp, dep))
    return ShortcutAudit(assoc, pred_assoc, share, shift, findings, names)


def known_values(model: Any, feature: str) -> list | None:
    """Values of ``feature`` the weights themselves record from the training data, or None.

    Read from the fitted preprocessing of a scikit-learn pipeline: a
    ``OneHotEncoder``'s categories, or a ``StandardScaler``'s training mean and
    standard deviation (as mean - 2 SD, mean - SD, mean, mean + SD, mean + 2 SD:
    the range that held most of the training values). Only someone holding
    the weights can read these.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    steps = getattr(model, "steps", None) or []
    for _, step in steps:
        if not isinstance(step, ColumnTransformer):
            continue
        for _, trans, cols in step.transformers_:
            names = list(cols) if not isinstance(cols, str) else [cols]
            if feature not in names:
                continue
            k = names.index(feature)
            inner = trans.steps[-1][1] if hasattr(trans, "steps") else trans
            if isinstance(inner, OneHotEncoder):
                return [c for c in inner.categories_[k].tolist()]
            if isinstance(inner, StandardScaler) and inner.mean_ is not None:
                mean, sd = float(inner.mean_[k]), float(inner.scale_[k])
                return [mean + k * sd for k in (-2, -1, 0, 1, 2)]
    return None


def training_spread(model: Any, feature: str) -> tuple[float, float] | None:
    """``(mean, standard deviation)`` of a numeric feature in the training data, as a fitted ``StandardScaler`` in the weights records it; None otherwise."""
    values = known_values(model, feature)
    if not values or len(values) != 5 or not all(isinstance(v, float) for v in values):
        return None
    return values[2], values[3] - values[2]


def dormant_features(
    model: Any,
    X: pd.DataFrame,
    *,
    collapse: float = 0.1,
    flip_threshold: float = 0.2,
    positive: Any = 1,
    model_fingerprint: str | None = None,
    deployment_name: str | None = None,
) -> tuple[pd.DataFrame, list[Finding]]:
    """Features whose spread collapsed in deployment inputs while the weights respond to them strongly: ``shortcut.dormant``.

    For each numeric column whose training mean and standard deviation the
    weights record (``training_spread``), compare its standard deviation in
    ``X`` (deployment inputs from the log); where it fell to at most
    ``collapse`` times the training one, set the column to the values the
    training data spanned (``known_values``: mean -2..+2 SD) and count rows
    whose predicted label changes. A model that flips many decisions on a
    feature that no longer varies learned a signal there that deployment does
    not have: its claimed accuracy leaned on it. Needs the weights and the
    logged inputs, no outcomes.

    Returns:
        ``(table, findings)``: table indexed by checked feature with
        ``training_sd``, ``deployment_sd``, ``flip_rate`` and ``values``; one
        finding per alerting feature, or one ``ok``.

    Raises:
        AuditInputError: ``X`` is not a non-empty DataFrame.
    """
    if not isinstance(X, pd.DataFrame) or len(X) == 0:
        raise AuditInputError("X", "must be a non-empty DataFrame of deployment inputs")
    classes = list(getattr(model, "classes_", [0, 1]))
    pos_idx = classes.index(positive) if positive in classes else len(classes) - 1
    base = np.asarray(model.predict_proba(X))[:, pos_idx] >= 0.5
    rows, findings = {}, []
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            continue
        spread = training_spread(model, c)
        if spread is None or spread[1] <= 0:
            continue
        dep_sd = float(X[c].astype(float).std(ddof=0))
        row = {"training_mean": spread[0], "training_sd": spread[1], "deployment_sd": dep_sd, "flip_rate": None, "values": None}
        rows[c] = row
        if dep_sd > collapse * spread[1]:
            continue
        values = known_values(model, c) or []
        if pd.api.types.is_integer_dtype(X[c]):
            values = sorted({int(round(v)) for v in values})
        changed = np.zeros(len(X), dtype=bool)
        for v in values:
            cf = X.copy()
            cf[c] = v
            changed |= (np.asarray(model.predict_proba(cf))[:, pos_idx] >= 0.5) != base
        rate = float(changed.mean())
        row.update(flip_rate=rate, values=values)
        if rate >= flip_threshold:
            findings.append(Finding(
                "shortcut.dormant", f"decisions that flip when {c} takes its training values", rate, flip_threshold, "alert",
                "high" if rate >= 0.4 else "medium",
                f"{c} varies in training (SD {spread[1]:.3g}, as the weights record) but hardly in the {len(X)} logged inputs"
                f" (SD {dep_sd:.3g}); setting it to the values training spanned"
                f" ({', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)}) flips {rate:.0%} of decisions:"
                " the model learned a signal in this feature that deployment does not have.", "white-box",
                {"feature": c, "training_sd": spread[1], "deployment_sd": dep_sd, "values": values, "rows": len(X)},
                model_fingerprint, deployment_name))
    if not findings:
        findings.append(Finding("shortcut.dormant", "relied-upon features whose spread collapsed in deployment", 0, flip_threshold,
                                "ok", "info", "No feature that stopped varying in deployment moves the model's decisions.",
                                "white-box", {"checked": list(rows)}, model_fingerprint, deployment_name))
    return pd.DataFrame.from_dict(rows, orient="index"), findings


def complete_from_weights(inputs: pd.DataFrame, model: Any, card: Any) -> pd.DataFrame:
    """Pseudonymised inputs completed for querying the weights: each withheld column set to a value the weights record.

    Numeric columns get the training mean a fitted ``StandardScaler`` stores
    (rounded for integer columns), categorical ones the first category a
    ``OneHotEncoder`` stores. A researcher who holds the weights but not the
    personal features runs the weights on these completed rows; the result is
    an approximation for the withheld columns, exact for the visible ones.

    Returns:
        rows x the card's features, in the card's order.

    Raises:
        AuditInputError: a withheld feature whose values the weights do not record.
    """
    out = inputs.copy()
    for f in card.features:
        if f.name in out.columns:
            continue
        values = known_values(model, f.name)
        if not values:
            raise AuditInputError("inputs", f"withheld feature {f.name!r} cannot be completed from the weights")
        out[f.name] = int(round(values[len(values) // 2])) if f.type == "numeric" else values[0]
    return out[[f.name for f in card.features]]
