"""Claimed vs realised: hold the metrics on a model's card against the outcomes on the log.

Each claimed metric that can be computed from predictions and outcomes is
recomputed on the realised outcomes and held against the claim by glasslog's
one claimed-vs-realised computation (``glasslog.stats.claims``, shared with
the performance monitor and the scenario lab): an interval for claim minus
realised that counts the claim's own sampling error where the card gives its
evaluation size (accuracy and positive rate: Newcombe's hybrid score
interval; ROC AUC: DeLong plus Hanley-McNeil); balanced accuracy, precision,
recall and F1 with a percentile bootstrap interval of the realised value
(Efron & Tibshirani 1993), the claim taken as exact. A claim above the range
consistent with the realised value alerts with severity by the shortfall
(>= 0.10 high, >= 0.05 medium, else low); one below it (under-claimed) alerts
low; ``positive_rate`` (the share predicted positive) is graded both ways.
The claim's own Wilson interval (from the evaluation size) is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..findings import Finding, clean_json
from ..ledger import Ledger
from ..stats import wilson_interval
from ..stats.claims import auc_claim, interval_claim, proportion_claim
from ..stats.labels import positive_class
from .group import binary_labels
from .recording import AuditInputError

__all__ = ["COMPUTABLE", "ClaimCheck", "ClaimsAudit", "claimed_vs_realised", "claims_from_log", "output_rate_check"]

COMPUTABLE = ("accuracy", "roc_auc", "balanced_accuracy", "precision", "recall", "f1", "positive_rate")
"""Claimed metrics this module can recompute from outputs and outcomes (all fractions)."""

_TWO_SIDED = {"positive_rate"}


@dataclass
class ClaimCheck:
    """One claimed metric against its realised value.

    Attributes:
        metric: the metric's name on the card.
        claimed: the claimed value (fraction).
        realised: the realised value, or None when it cannot be computed.
        ci: interval of the realised value (fractions).
        n: rows with outcomes it was computed on.
        claim_ci: sampling interval of the claim itself, from the evaluation size (accuracy and rates only).
        shortfall: claimed - realised (positive: worse than claimed).
        method: how the interval of claim - realised was computed.
        difference_ci: interval of claim - realised (``glasslog.stats.claims``).
    """

    metric: str
    claimed: float
    realised: float | None
    ci: tuple[float, float] | None
    n: int
    claim_ci: tuple[float, float] | None = None
    shortfall: float | None = None
    method: str = ""
    difference_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return clean_json(vars(self).copy())


@dataclass
class ClaimsAudit:
    """Result of ``claimed_vs_realised``.

    Attributes:
        checks: one ``ClaimCheck`` per claimed metric that could be computed.
        not_computable: claimed metrics this module cannot recompute.
        n: rows with outcomes (and visible outputs).
        findings: one per check.
    """

    checks: list[ClaimCheck]
    not_computable: list[str]
    n: int
    findings: list[Finding]
    confidence: float = 0.95
    extra: dict = field(default_factory=dict)

    kind = "claims"

    def check(self, metric: str) -> ClaimCheck:
        """The check of ``metric``; raises KeyError if it was not claimed or not computable."""
        for c in self.checks:
            if c.metric == metric:
                return c
        raise KeyError(metric)

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"kind": self.kind, "n": self.n, "confidence": self.confidence,
                           "checks": [c.to_dict() for c in self.checks], "not_computable": self.not_computable,
                           "findings": [f.to_dict() for f in self.findings], **self.extra})


def _metric(name: str, y: np.ndarray, p: np.ndarray, s: np.ndarray | None) -> float:
    from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    if name == "accuracy":
        return float((y == p).mean())
    if name == "roc_auc":
        if s is None or len(np.unique(y)) < 2:
            return np.nan
        return float(roc_auc_score(y, s))
    if name == "balanced_accuracy":
        return float(balanced_accuracy_score(y, p)) if len(np.unique(y)) == 2 else np.nan
    if name == "precision":
        return float(precision_score(y, p, zero_division=np.nan))
    if name == "recall":
        return float(recall_score(y, p, zero_division=np.nan))
    if name == "f1":
        return float(f1_score(y, p, zero_division=np.nan))
    if name == "positive_rate":
        return float(p.mean())
    raise KeyError(name)


def _boot_metric(name: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``name`` on each bootstrap draw at once; arrays of shape (draws, n); NaN where undefined."""
    y, p = y.astype(float), p.astype(float)
    tp, fp = (y * p).sum(1), ((1 - y) * p).sum(1)
    fn, tn = (y * (1 - p)).sum(1), ((1 - y) * (1 - p)).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "balanced_accuracy":
            return (tp / (tp + fn) + tn / (tn + fp)) / 2
        if name == "precision":
            return tp / (tp + fp)
        if name == "recall":
            return tp / (tp + fn)
        if name == "f1":
            return 2 * tp / (2 * tp + fp + fn)
        if name == "positive_rate":
            return p.mean(1)
        return (tp + tn) / y.shape[1]


def claimed_vs_realised(
    claimed: dict[str, float],
    y_true: Any,
    y_pred: Any,
    score: Any = None,
    *,
    positive: Any = 1,
    evaluation_size: int | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    min_n: int = 30,
    model: str | None = None,
    deployment: str | None = None,
    access: str = "outputs",
) -> ClaimsAudit:
    """Compare claimed metrics with the metrics realised on outcomes (see module docstring).

    Args:
        claimed: metric name -> claimed value (fraction), e.g. a card's ``claimed.metrics``.
        y_true: realised outcomes, shape (n,), binary.
        y_pred: predicted labels, shape (n,), same label space.
        score: probability of the positive class, shape (n,), for ``roc_auc`` (optional).
        positive: the positive label.
        evaluation_size: rows the claim was measured on (for the claim's own interval).
        confidence: interval coverage (fraction).
        n_boot: bootstrap draws for the metrics without a closed-form interval.
        seed: bootstrap seed.
        min_n: fewer rows than this give ``insufficient-data``.

    Raises:
        AuditInputError: lengths differ, non-binary labels, a claimed value outside [0, 1].
    """
    for k, v in claimed.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise AuditInputError(f"claimed.{k}", f"must be a fraction between 0 and 1, got {v!r}")
    n = len(y_true)
    if len(y_pred) != n or (score is not None and len(score) != n):
        raise AuditInputError("y_pred" if len(y_pred) != n else "score", f"must have {n} rows like y_true")
    y = binary_labels(y_true, positive, "y_true") if n else np.zeros(0, dtype=np.int64)
    p = binary_labels(y_pred, positive, "y_pred") if n else np.zeros(0, dtype=np.int64)
    s = None
    if score is not None:
        s = np.asarray(score, dtype=float)
        if not np.isfinite(s).all():
            s = None  # a score missing for some rows: AUC is not computed rather than computed on a subset
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2
    draws = rng.integers(0, n, size=(n_boot, n)) if n and n_boot else None
    checks, findings, skipped = [], [], []
    for metric, value in claimed.items():
        if metric not in COMPUTABLE:
            skipped.append(metric)
            continue
        value = float(value)
        claim_ci = wilson_interval(round(value * evaluation_size), evaluation_size, 1 - confidence) if (
            evaluation_size and metric in ("accuracy", "positive_rate")) else None
        realised = _metric(metric, y, p, s) if n else np.nan
        cmp = None  # the one claimed-vs-realised computation (glasslog.stats.claims)
        if n and np.isfinite(realised):
            if metric in ("accuracy", "positive_rate"):
                hits = int((y == p).sum()) if metric == "accuracy" else int(p.sum())
                cmp = proportion_claim(value, hits, n, evaluation_size=evaluation_size, alpha=1 - confidence,
                                       metric=metric, two_sided=metric in _TWO_SIDED)
            elif metric == "roc_auc":
                if min(int(y.sum()), int(n - y.sum())) >= 2:
                    cmp = auc_claim(value, y, s, evaluation_size=evaluation_size, alpha=1 - confidence)
            elif draws is not None:
                vals = _boot_metric(metric, y[draws], p[draws])
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    cmp = interval_claim(metric, value, float(realised), (float(np.quantile(vals, tail)),
                                         float(np.quantile(vals, 1 - tail))), n, f"percentile bootstrap, {n_boot} draws"
                                         " (the claim taken as exact)", alpha=1 - confidence)
        ok_value = realised is not None and np.isfinite(realised)
        ci = cmp.realised_ci if cmp is not None else None
        check = ClaimCheck(metric, value, float(realised) if ok_value else None, ci, n, claim_ci,
                           value - float(realised) if ok_value else None, cmp.method if cmp is not None else "",
                           cmp.difference_ci if cmp is not None else None)
        checks.append(check)
        evidence = {"metric": metric, "claimed": value, "realised": check.realised, "ci": ci, "n": n, "claim_ci": claim_ci,
                    "claim_minus_realised_ci": check.difference_ci, "method": check.method,
                    "evaluation_size": evaluation_size}
        # positive_rate is the share of decisions predicted positive: it counts decisions, not outcomes.
        unit = "decisions" if metric == "positive_rate" else "outcomes"
        if n < min_n or cmp is None:
            findings.append(Finding(f"claims.{metric}", f"realised {metric} vs claimed", check.realised, value,
                                    "insufficient-data", "info",
                                    f"Only {n} {unit} (at least {min_n} needed), or {metric} undefined on them.",
                                    access, evidence, model, deployment))
            continue
        (lo, hi), (dlo, dhi) = cmp.realised_ci, cmp.difference_ci
        if cmp.verdict == "alert":
            evidence["direction"] = cmp.direction
            summary = (f"Claimed {metric} {value:.3f}; realised {realised:.3f} on {n} {unit} ({confidence:.0%} interval"
                       f" {lo:.3f}-{hi:.3f}; claim minus realised {dlo:.3f} to {dhi:.3f}): the claim is outside the range"
                       f" consistent with the realised value ({cmp.direction}).")
        else:
            summary = (f"Claimed {metric} {value:.3f} is consistent with the realised {realised:.3f} (n={n}; claim minus"
                       f" realised {dlo:.3f} to {dhi:.3f}, {confidence:.0%}).")
        findings.append(Finding(f"claims.{metric}", f"realised {metric} vs claimed", float(realised), value, cmp.verdict,
                                cmp.severity, summary, access, evidence, model, deployment))
    return ClaimsAudit(checks, skipped, n, findings, confidence)


def claims_from_log(
    ledger: Ledger,
    model: str,
    *,
    deployment: str | None = None,
    principal: Any = "supervisor",
    **kwargs: Any,
) -> ClaimsAudit:
    """``claimed_vs_realised`` for a registered model against the outcomes on the log.

    Uses the decisions (and outcomes) ``principal`` may see (see
    ``glasslog.audit.logdata``); the claim comes from the model's card.

    Raises:
        AuditInputError: unknown role or deployment.
        glasslog.registry.RegistryError: unknown model.
    """
    from .logdata import logged_decisions

    data = logged_decisions(ledger, model, deployment=deployment, principal=principal)
    rows = data.with_outcomes
    rows = rows[rows["label"].notna()]
    _, positive = positive_class(data.card.output)
    score = rows["score"].to_numpy(dtype=float) if len(rows) and rows["score"].notna().all() else None
    result = claimed_vs_realised(dict(data.card.claimed.metrics), rows["outcome"].tolist(), rows["label"].tolist(), score,
                                 positive=positive, evaluation_size=data.card.claimed.evaluation_size, model=data.model,
                                 deployment=deployment, **kwargs)
    result.extra["log"] = data.summary()
    return result



def output_rate_check(claimed_rate: float | None, labels: Any, *, positive: Any = 1, confidence: float = 0.95,
                      min_n: int = 30, model: str | None = None, deployment: str | None = None,
                      evaluation_size: int | None = None) -> Finding:
    """What the public can check with outputs alone: the share of decisions that are positive, against a claimed rate.

    Args:
        claimed_rate: the card's claimed ``positive_rate`` (share of the
            evaluation set predicted positive), or None when the card states none.
        labels: logged predicted labels, shape (n,).
        evaluation_size: rows the claimed rate was measured on (the card's ``claimed.evaluation_size``).

    Returns:
        ``claims.output_rate`` finding: alert when the claimed rate is outside the range consistent
        with the logged rate (``glasslog.stats.claims``, both ways); severity by the gap (>= 0.10 high,
        >= 0.05 medium, else low). It shows that the model behaves differently from its
        evaluation, not that it is wrong: that needs outcomes.
    """
    s = pd.Series(list(labels))
    n = len(s)
    k = int(((s == positive) | (s.astype(str) == str(positive))).sum()) if n else 0
    rate = k / n if n else None
    lo, hi = wilson_interval(k, n, 1 - confidence)
    evidence = {"positive": k, "n": n, "ci": [lo, hi], "claimed": claimed_rate, "evaluation_size": evaluation_size}
    if claimed_rate is None or n < min_n:
        return Finding("claims.output_rate", "share of logged decisions that are positive", rate, claimed_rate,
                       "insufficient-data", "info",
                       "The card claims no positive rate." if claimed_rate is None else f"Only {n} decisions (need {min_n}).",
                       "outputs", evidence, model, deployment)
    c = proportion_claim(claimed_rate, k, n, evaluation_size=evaluation_size, alpha=1 - confidence, metric="positive rate",
                         two_sided=True)
    evidence.update(claim_minus_realised_ci=list(c.difference_ci), method=c.method)
    outside = c.verdict == "alert"
    return Finding("claims.output_rate", "share of logged decisions that are positive", rate, claimed_rate,
                   c.verdict, c.severity,
                   f"{k} of {n} logged decisions are positive ({rate:.1%}, {confidence:.0%} interval {lo:.1%}-{hi:.1%}); the card"
                   f" claims {claimed_rate:.1%} on its evaluation set" + (": the model behaves unlike its evaluation." if outside else "."),
                   "outputs", evidence, model, deployment)
