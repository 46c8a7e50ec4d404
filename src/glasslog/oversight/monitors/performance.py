"""The ``performance`` monitor: realised against claimed accuracy and ROC AUC, and calibration, once outcomes arrive.

Method: ``docs/monitors.md`` (performance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import stats
from ...findings import Finding
from ...stats.claims import ClaimComparison, auc_claim, proportion_claim
from ..views import DeploymentData
from .common import Monitor, is_binary, span
from .common import finding as _finding
from .config import MonitorConfig

__all__ = ["check_performance", "MONITOR"]


def check_performance(view: DeploymentData, cfg: MonitorConfig) -> tuple[list[Finding], str | None]:
    """Realised against claimed accuracy and ROC AUC, and calibration (``docs/monitors.md``).

    Returns:
        ``(findings, reason skipped or None)``.
    """
    if not view.sees_outputs:
        return [], f"role {view.role} does not see the outputs of this {view.visibility} deployment"
    if not is_binary(view):
        return [], f"performance checks need a binary classifier; the card lists {len(view.classes)} classes"
    y, pred, score = view.outcome, view.predicted, view.score
    has = ~np.isnan(y) & ~np.isnan(pred)
    window = {"current": span(view, np.arange(view.n))}
    claims = dict(view.card.claimed.metrics) if view.card is not None else {}
    n_eval = view.card.claimed.evaluation_size if view.card is not None else None
    scored = has & np.isfinite(score)
    checks = [m for m in ("accuracy", "roc_auc") if m in claims]
    if scored.any():
        checks.append("calibration")
    if not checks:
        return [], "no claimed accuracy or ROC AUC on the card and no probabilities logged"
    k = len(checks)
    a = cfg.alpha / k
    common = _outcome_evidence(view, has)
    common.update({"alpha": cfg.alpha, "alpha_per_check": a, "checks": checks,
                   "unchecked_claims": sorted(set(claims) - {"accuracy", "roc_auc"})})
    out: list[Finding] = []
    yv = y[has]
    for name in checks:
        if name == "accuracy":
            out.append(_accuracy(view, yv, pred[has], claims["accuracy"], n_eval, a, cfg, window, common))
        elif name == "roc_auc":
            out.append(_auc(view, y[scored], score[scored], claims["roc_auc"], n_eval, a, cfg, window, common))
        else:
            out.append(_calibration(view, y[scored], score[scored], a, cfg, window, common))
    return out, None


def _outcome_evidence(view: DeploymentData, has: np.ndarray) -> dict:
    ev: dict[str, Any] = {"decisions": view.n, "with_outcome": int(has.sum()),
                          "coverage": float(has.mean()) if view.n else 0.0,
                          "outcomes_unreadable": view.outcomes_unreadable}
    if has.any():
        delay = (view.outcome_time[has] - view.time[has]).astype("timedelta64[us]").astype(np.int64) / 1e6
        delay = delay[np.isfinite(delay)]
        if len(delay):
            ev["outcome_delay_seconds_median"] = float(np.median(delay))
    missing = ~has & np.isfinite(view.score)
    present = has & np.isfinite(view.score)
    if missing.sum() >= 20 and present.sum() >= 20:
        d, p = stats.ks_test(view.score[present], view.score[missing])
        ev["missing_outcomes_score_ks"] = {"statistic": d, "p_value": p,
                                           "note": "a small p-value: decisions without outcomes score differently, "
                                                   "so realised figures may not represent all decisions"}
    return ev


def _accuracy(view, y, pred, claim, n_eval, a, cfg, window, common) -> Finding:
    n = len(y)
    if n < cfg.min_outcomes:
        return _finding(view, "performance.accuracy", "accuracy", None, claim, "insufficient-data", "info", window,
                        {**common, "claimed": claim, "reason": f"{n} decisions with outcomes, fewer than {cfg.min_outcomes}"})
    c = proportion_claim(claim, int((pred == y).sum()), n, evaluation_size=n_eval, alpha=a)
    return _claim_finding(view, "performance.accuracy", c, n_eval, window, common, {})


def _claim_finding(view, check: str, c: ClaimComparison, n_eval, window, common, extra: dict) -> Finding:
    """The finding of one claimed-vs-realised comparison (``glasslog.stats.claims``, the one such computation)."""
    ev = {**common, "claimed": c.claimed, "claim_evaluation_size": n_eval, "realised": c.realised,
          "realised_ci": list(c.realised_ci), "claim_minus_realised_ci": list(c.difference_ci),
          "claim_consistent_range": list(c.consistent_range), **extra, "method": c.method}
    name = "ROC AUC" if c.metric == "roc_auc" else c.metric
    if c.direction == "over-claimed":
        ev["direction"] = f"realised {name} is below the claim"
    elif c.direction == "under-claimed":
        ev["direction"] = f"realised {name} is above the claim (under-claimed)"
    return _finding(view, check, c.metric, c.realised, c.claimed, c.verdict, c.severity, window, ev)


def _auc(view, y, score, claim, n_eval, a, cfg, window, common) -> Finding:
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if len(y) < cfg.min_outcomes or min(n_pos, n_neg) < 10:
        return _finding(view, "performance.roc_auc", "roc_auc", None, claim, "insufficient-data", "info", window,
                        {**common, "claimed": claim, "reason": f"{n_pos} positive and {n_neg} negative outcomes with scores; "
                                                                f"needs {cfg.min_outcomes} in all and 10 of each"})
    c = auc_claim(claim, y, score, evaluation_size=n_eval, alpha=a)
    lo, hi = c.difference_ci
    se = (hi - lo) / (2 * stats.z_two_sided(a))
    return _claim_finding(view, "performance.roc_auc", c, n_eval, window, common,
                          {"z": (claim - c.realised) / se if se > 0 else None, "positives": n_pos, "negatives": n_neg})


def _calibration(view, y, p, a, cfg, window, common) -> Finding:
    n = len(y)
    if n < cfg.min_outcomes:
        return _finding(view, "performance.calibration", "spiegelhalter_p", None, a, "insufficient-data", "info", window,
                        {**common, "reason": f"{n} scored decisions with outcomes, fewer than {cfg.min_outcomes}"})
    z, pval = stats.spiegelhalter_z(y, p)
    observed = int(y.sum())
    lo, hi = stats.wilson_interval(observed, n, a)
    mean_p = float(p.mean())
    bins = []
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    ece = 0.0
    for b in range(max(len(edges) - 1, 1)):
        m = which == b
        cnt = int(m.sum())
        if cnt == 0:
            continue
        gap = abs(float(y[m].mean()) - float(p[m].mean()))
        ece += gap * cnt / n
        if cnt >= cfg.min_cell:
            k_obs = int(y[m].sum())
            bins.append({"predicted_mean": float(p[m].mean()), "observed": k_obs / cnt,
                         "observed_ci": list(stats.wilson_interval(k_obs, cnt, a)), "n": cnt})
    ev = {**common, "spiegelhalter_z": z, "p_value": pval, "observed_rate": observed / n, "observed_rate_ci": [lo, hi],
          "mean_predicted": mean_p, "mean_predicted_within_ci": lo <= mean_p <= hi, "ece": ece, "reliability": bins,
          "method": "Spiegelhalter (1986) z test of logged probabilities against outcomes; reliability by deciles of the score"}
    if pval < a:
        verdict, severity = "alert", ("high" if not lo <= mean_p <= hi else "medium")
        ev["direction"] = ("logged probabilities are too extreme (overconfident): outcomes are rarer than predicted at high "
                           "scores and commoner at low ones" if z > 0 else
                           "logged probabilities are too cautious (underconfident)")
        if not lo <= mean_p <= hi:
            ev["direction"] += f"; mean prediction {mean_p:.3f} is outside the observed rate's interval"
    else:
        verdict, severity = "ok", "info"
    return _finding(view, "performance.calibration", "spiegelhalter_p", pval, a, verdict, severity, window, ev)


MONITOR = Monitor("performance", "realised against claimed accuracy and ROC AUC, and calibration",
                  lambda view, cfg, ctx: check_performance(view, cfg))
