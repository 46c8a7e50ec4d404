"""The ``performance`` monitor: realised against claimed accuracy and ROC AUC, and calibration, once outcomes arrive.

Method: ``docs/monitors.md`` (performance).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import stats
from ...findings import Finding
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
    correct = int((pred == y).sum())
    realised = correct / n
    lo_r, hi_r = stats.wilson_interval(correct, n, a)
    ev = {**common, "claimed": claim, "claim_evaluation_size": n_eval, "realised": realised, "realised_ci": [lo_r, hi_r],
          "method": "Newcombe (1998) hybrid score interval for claimed minus realised accuracy at 1 - alpha_per_check"}
    if n_eval:
        k1 = int(round(claim * n_eval))
        lo, hi = stats.newcombe_difference_interval(k1, n_eval, correct, n, a)
    else:
        lo, hi = claim - hi_r, claim - lo_r
        ev["method"] = "Wilson interval of realised accuracy (no evaluation size on the card)"
    ev["claim_minus_realised_ci"] = [lo, hi]
    d = claim - realised
    ev["claim_consistent_range"] = [realised - (hi - d), realised + (d - lo)]  # claims this interval would not reject
    verdict, severity = _claim_verdict(lo, hi, "accuracy", ev)
    return _finding(view, "performance.accuracy", "accuracy", realised, claim, verdict, severity, window, ev)


def _claim_verdict(lo: float, hi: float, metric: str, ev: dict) -> tuple[str, str]:
    """Verdict and severity from the interval [lo, hi] of claim minus realised; notes the direction in ``ev``.

    Over-claiming (the whole interval above 0) is high; under-claiming (below 0) is low.
    """
    if lo > 0:
        ev["direction"] = f"realised {metric} is below the claim"
        return "alert", "high"
    if hi < 0:
        ev["direction"] = f"realised {metric} is above the claim (under-claimed)"
        return "alert", "low"
    return "ok", "info"


def _auc(view, y, score, claim, n_eval, a, cfg, window, common) -> Finding:
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if len(y) < cfg.min_outcomes or min(n_pos, n_neg) < 10:
        return _finding(view, "performance.roc_auc", "roc_auc", None, claim, "insufficient-data", "info", window,
                        {**common, "claimed": claim, "reason": f"{n_pos} positive and {n_neg} negative outcomes with scores; "
                                                                f"needs {cfg.min_outcomes} in all and 10 of each"})
    auc, var = stats.auc_delong(y, score)
    z = stats.z_two_sided(a)
    prevalence = n_pos / len(y)
    var_claim = 0.0
    if n_eval:
        var_claim = stats.auc_hanley_mcneil_se(claim, max(n_eval * prevalence, 1.0), max(n_eval * (1 - prevalence), 1.0)) ** 2
    se = math.sqrt(var + var_claim)
    diff = claim - auc
    lo, hi = diff - z * se, diff + z * se
    ev = {**common, "claimed": claim, "claim_evaluation_size": n_eval, "realised": auc,
          "realised_ci": [max(0.0, auc - z * math.sqrt(var)), min(1.0, auc + z * math.sqrt(var))],
          "claim_minus_realised_ci": [lo, hi], "claim_consistent_range": [auc - z * se, auc + z * se],
          "z": diff / se if se > 0 else None, "positives": n_pos, "negatives": n_neg,
          "method": "DeLong (1988) variance of the realised AUC plus Hanley-McNeil (1982) variance of the claim "
                    "(its evaluation set assumed to have the realised prevalence)"}
    verdict, severity = _claim_verdict(lo, hi, "ROC AUC", ev)
    return _finding(view, "performance.roc_auc", "roc_auc", auc, claim, verdict, severity, window, ev)


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
