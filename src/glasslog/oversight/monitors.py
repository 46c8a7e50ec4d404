"""Monitors: the checker programs that run over the log and record ``finding`` entries.

A monitor run reads every deployment as one role sees it (``views.load_views``:
the public sees outputs of public-service deployments only, researchers get
pseudonymised inputs, supervisors and operators everything) and runs five
monitors over each (deployment, model) pair:

``performance``
    Realised against claimed performance, once outcomes arrive. Accuracy:
    Newcombe's (1998) interval for claimed minus realised accuracy, which
    counts the sampling error of the claim's own evaluation set
    (``claimed.evaluation_size`` on the card) as well as the realised one;
    the claim is outside the interval of values consistent with the realised
    performance when that interval excludes 0. ROC AUC: DeLong's variance of
    the realised AUC plus Hanley & McNeil's (1982) variance of the claim (its
    evaluation set's class balance taken as the realised one), z test.
    Calibration: Spiegelhalter's (1986) z test of the logged probabilities
    against outcomes, with calibration-in-the-large (observed rate, Wilson
    interval, against the mean prediction) and a reliability table in the
    evidence. Each check gets alpha / k (Bonferroni over the k checks run).
    Delayed and missing outcomes: only decisions with an outcome count; the
    latest outcome of a decision wins; coverage, the outcome delay and a KS
    test of whether decisions with outcomes score differently from those
    without (outcomes missing not at random) are in the evidence; fewer than
    ``min_outcomes`` gives ``insufficient-data``.
``drift``
    Of outputs (score: KS; label: chi-square) for every role that sees
    outputs, and of each input feature the role sees. Numeric features: KS
    on the values, plus a chi-square test of the shares of missing (NaN,
    null) and invalid (not a number) values when there are any; features with
    at most ``discrete_levels`` distinct reference values, and categorical
    ones: chi-square over categories with ``(missing)`` and every category
    unseen in the reference as cells of their own (rare cells pooled, Cochran
    1954), plus, when some current values fall in categories the reference
    never saw, Fisher's exact test of that share (p-values of the two tests
    Bonferroni-combined within the feature). A feature drifts when its Bonferroni-adjusted p-value (p times the
    number of features tested) is below alpha, which holds the family-wise
    false-alarm rate at alpha (split equally between the output and the input
    families when the role sees both); and its PSI is at least ``min_psi`` (0 by
    default). PSI (10 reference-decile bins plus missing and invalid bins,
    Siddiqi 2006) grades severity by the scorecard convention: below 0.1
    ``low``, 0.1 to 0.25 ``medium``, 0.25 and above ``high``. The
    Jensen-Shannon distance is reported beside it. NaN shares and unseen
    categories are drift signals, never errors.
``disparity``
    For roles that see protected attributes (supervisors, operators;
    researchers only where the card allows): per group of each protected
    feature, the selection rate (share of favourable decisions; the
    favourable label comes from the run's setting or the card's
    ``output.favourable``, and without either the selection-rate check is
    ``insufficient-data``: it is never guessed), false
    positive and false negative rates, with Wilson intervals, and their
    ratios to the best-treated group with Katz's log interval (Bonferroni
    over the comparisons). The four-fifths rule (US EEOC Uniform Guidelines
    on Employee Selection Procedures, 29 CFR 1607.4(D)): a group's selection
    rate below 4/5 of the highest group's is evidence of adverse impact; the
    same 0.8 tolerance is applied to error-rate ratios (lowest rate / group's
    rate), as in Aequitas (Saleiro et al. 2018). ``alert`` when a ratio is
    below 0.8 and its interval lies below 1 (significant); below 0.8 but not
    significant is ``insufficient-data`` (1607.4(D): "greater differences ...
    may not constitute adverse impact where the differences are based on
    small numbers and are not statistically significant").
``goodhart``
    A proxy metric the deployer reports (``metric`` entries) improving while
    realised outcomes worsen: Kendall's tau of the proxy over its reporting
    periods (one-sided, in the direction the deployer calls better) and the
    Cochran-Armitage trend test of realised accuracy over the same periods
    (one-sided, decreasing). ``alert`` when both are significant at alpha: an
    intersection-union test, whose level is alpha without correction (Berger,
    R. L. (1982), Multiparameter hypothesis testing and acceptance sampling,
    Technometrics 24, 295-300).
``anomalies``
    Of the log's decision times (public to everyone): timestamps out of
    order (earlier than the previous decision's by more than
    ``order_tolerance`` seconds) and outcomes timed before their decision;
    timestamps in the future (beyond ``future_tolerance`` seconds after the
    run); gaps (the longest interval between batches against a Poisson
    process whose rate is estimated from the median interval: alert when
    P(any of m intervals that long) < alpha, i.e. longer than
    median * ln(m / alpha) / ln 2); bursts (batches per bin of
    ``burst_seconds``, default 10 median intervals, against Poisson with the
    same rate: alert when the largest count's upper tail probability is below
    alpha / bins).

Reference window: the first ``reference_size`` decisions of the deployment
(default 1,000, at most half of its decisions), or all decisions of another
deployment (``reference_deployment``, e.g. a validation run). The model card
holds only a fingerprint of its evaluation set, not its distribution, so the
reference must come from the log itself, where anyone can check it. The
current window is every decision after the reference, or the latest
``window`` decisions.

Findings are public entries (every entry is), whoever ran the monitor: their
evidence holds aggregates only (counts, rates, test statistics), never an
input value of one person; groups and reliability bins of fewer than
``min_cell`` decisions are suppressed, and unseen categories are counted,
not named. One run records all its findings in one atomic append.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from ..errors import BadInputError
from ..ledger import Ledger
from ..ledger.entries import MAX_ENTRY_BYTES, canonical_json
from ..ledger.log import AppendResult
from . import stats
from .views import MONITOR_ROLES, DeploymentData, MonitorViewError, load_views

__all__ = [
    "MONITORS",
    "MonitorConfig",
    "MonitorConfigError",
    "Finding",
    "MonitorRun",
    "run_monitors",
    "monitor_views",
    "check_performance",
    "check_drift",
    "check_disparity",
    "check_goodhart",
    "check_anomalies",
    "compare_feature",
    "compare_frames",
    "flag_drift",
    "FOUR_FIFTHS",
    "list_findings",
    "check_settings",
]

MONITORS = ("performance", "drift", "disparity", "goodhart", "anomalies")
"""The monitors, in the order they run."""

FOUR_FIFTHS = 0.8
"""The four-fifths rule's ratio (29 CFR 1607.4(D))."""

_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class MonitorConfigError(BadInputError):
    """A monitor setting is out of range; ``field`` names it."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"monitor setting '{field}': {problem}")


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of a monitor run (every one documented in the module docstring).

    Attributes:
        alpha: family-wise significance level of each monitor's tests per
            (deployment, model), a fraction (default 0.05).
        monitors: which monitors to run (subset of ``MONITORS``).
        reference_size: decisions in the default reference window (first N, at most half).
        reference_deployment: take the reference window from this deployment instead.
        window: current window = the latest N decisions (default: all after the reference).
        min_size: fewest decisions per window for drift (default 50).
        min_outcomes: fewest decisions with outcomes for a performance check (default 30).
        min_cell: fewest decisions in a reported group or bin (default 30; smaller ones are suppressed).
        psi_bins: reference-quantile bins for PSI of continuous values (default 10).
        discrete_levels: a numeric feature with at most this many distinct
            reference values is tested as categorical (default 10).
        min_psi: a feature drifts only if its PSI is also at least this (default 0).
        groups: protected feature -> ``{"bins": [edges...]}`` (numeric) or
            ``{"map": {value: group}}`` (categorical); default: each category
            its own group, numeric features split at their quartiles.
        favourable: the favourable output label for selection rates (default:
            the card's ``output.favourable``; when neither gives one the
            selection-rate check is ``insufficient-data``, never guessed).
            Must be one of the monitored cards' classes (checked by ``run_monitors``).
        order_tolerance: seconds a timestamp may run behind the previous one (default 1).
        future_tolerance: seconds a timestamp may lie after the run's clock (default 300).
        burst_seconds: bin width for bursts (default: 10 median intervals between batches).
        gap_seconds: a fixed gap threshold in seconds instead of the statistical one.
        now: the run's clock (default: the current UTC time).
    """

    alpha: float = 0.05
    monitors: tuple[str, ...] = MONITORS
    reference_size: int = 1000
    reference_deployment: str | None = None
    window: int | None = None
    min_size: int = 50
    min_outcomes: int = 30
    min_cell: int = 30
    psi_bins: int = 10
    discrete_levels: int = 10
    min_psi: float = 0.0
    groups: dict[str, dict] = field(default_factory=dict)
    favourable: Any = None
    order_tolerance: float = 1.0
    future_tolerance: float = 300.0
    burst_seconds: float | None = None
    gap_seconds: float | None = None
    now: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise MonitorConfigError("alpha", f"must be a fraction between 0 and 1, got {self.alpha!r}")
        unknown = [m for m in self.monitors if m not in MONITORS]
        if unknown or not self.monitors:
            raise MonitorConfigError("monitors", f"must be some of {', '.join(MONITORS)}, got {list(self.monitors)!r}")
        for name in ("reference_size", "min_size", "min_outcomes", "min_cell", "psi_bins", "discrete_levels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MonitorConfigError(name, f"must be a positive integer, got {value!r}")
        if self.psi_bins < 2:
            raise MonitorConfigError("psi_bins", "must be at least 2")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 1):
            raise MonitorConfigError("window", f"must be a positive number of decisions, got {self.window!r}")
        for name in ("min_psi", "order_tolerance", "future_tolerance"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise MonitorConfigError(name, f"must be a non-negative number, got {value!r}")
        for name in ("burst_seconds", "gap_seconds"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0):
                raise MonitorConfigError(name, f"must be a positive number of seconds, got {value!r}")
        for feature, spec in self.groups.items():
            if not isinstance(spec, dict) or not (("bins" in spec) ^ ("map" in spec)):
                raise MonitorConfigError(f"groups.{feature}", "must be {'bins': [edges]} or {'map': {value: group}}")
            if "bins" in spec:
                edges = spec["bins"]
                if (not isinstance(edges, (list, tuple)) or not edges
                        or not all(isinstance(e, (int, float)) and math.isfinite(e) for e in edges)
                        or list(edges) != sorted(set(edges))):
                    raise MonitorConfigError(f"groups.{feature}.bins", "must be increasing finite numbers")
            elif not isinstance(spec["map"], dict):
                raise MonitorConfigError(f"groups.{feature}.map", "must map values to group names")


@dataclass
class Finding:
    """One monitor's conclusion about one (deployment, model) pair.

    Attributes:
        check: e.g. ``performance.accuracy``, ``drift.inputs``, ``anomaly.gap``.
        deployment, model: what it is about.
        statistic: what ``value`` is (e.g. ``accuracy``, ``bonferroni_p_min``).
        value, threshold: the figure and what it was held against (None if not computed).
        verdict: ``alert``, ``ok`` or ``insufficient-data``.
        severity: ``info`` .. ``critical``.
        window: the decisions looked at (``reference`` / ``current``: first and
            last index, first and last time, count).
        evidence: the figures behind the verdict (aggregates only).
    """

    check: str
    deployment: str
    model: str
    statistic: str
    value: float | None
    threshold: float | None
    verdict: str
    severity: str
    window: dict
    evidence: dict

    def entry(self, by_role: str, time: str) -> dict:
        """The ``finding`` entry (JSON object) for the log."""
        e = {"type": "finding", "v": 1, "time": time, "source": "monitor", "check": self.check,
             "deployment": self.deployment, "statistic": self.statistic, "verdict": self.verdict,
             "severity": self.severity, "by_role": by_role, "window": _clean(self.window), "evidence": _clean(self.evidence)}
        if isinstance(self.model, str) and self.model.startswith("sha256:") and len(self.model) == 71:
            e["model"] = self.model
        value, threshold = _clean(self.value), _clean(self.threshold)
        if value is not None:
            e["value"] = value
        if threshold is not None:
            e["threshold"] = threshold
        return e

    def to_dict(self) -> dict:
        return {f.name: _clean(getattr(self, f.name)) for f in fields(self)}


@dataclass
class MonitorRun:
    """What one run found.

    Attributes:
        role: the role the monitors ran as.
        findings: every finding, in the order the monitors produced them.
        skipped: ``{"monitor", "deployment", "model", "reason"}`` for monitors
            that could not run for a pair (e.g. the role sees no outputs).
        decisions: decisions read.
        load_seconds, check_seconds: wall time reading the log and running the monitors.
        time: the run's time (RFC 3339), also the findings' time.
    """

    role: str
    findings: list[Finding]
    skipped: list[dict]
    decisions: int
    load_seconds: float
    check_seconds: float
    time: str

    @property
    def alerts(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == "alert"]

    def entries(self, only_alerts: bool = False) -> list[dict]:
        """The findings as ``finding`` entries (all, or only the alerts)."""
        chosen = self.alerts if only_alerts else self.findings
        return [f.entry(self.role, self.time) for f in chosen]

    def record(self, ledger: Ledger, only_alerts: bool = False) -> AppendResult | None:
        """Append the findings to the log in one atomic batch (None if there is nothing to record).

        Raises:
            glasslog.ledger.EntryError: a finding fails the entry schema (nothing written).
            glasslog.ledger.KeyFileError: the log's signer key cannot be used (nothing written).
        """
        entries = self.entries(only_alerts)
        if not entries:
            return None
        return ledger.append(entries)

    def to_dict(self) -> dict:
        return {"role": self.role, "time": self.time, "decisions": self.decisions,
                "load_seconds": round(self.load_seconds, 3), "check_seconds": round(self.check_seconds, 3),
                "alerts": len(self.alerts), "findings": [f.to_dict() for f in self.findings], "skipped": self.skipped}


# ------------------------------------------------------------------ helpers
def _clean(value: Any) -> Any:
    """JSON-ready: numpy to Python, NaN / infinity to None, floats to 6 significant digits."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in list(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            return None
        return float(f"{f:.6g}")
    if isinstance(value, (np.datetime64, datetime)):
        return _iso(value)
    return value


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    t = np.datetime64(t, "us")
    if np.isnat(t):
        return None
    return str(t) + "Z"


def _span(view: DeploymentData, rows: np.ndarray) -> dict:
    """Window description of the rows (a bool mask or int positions) of a view."""
    idx = view.index[rows]
    times = view.time[rows]
    times = times[~np.isnat(times)]
    return {"first_index": int(idx[0]) if len(idx) else None, "last_index": int(idx[-1]) if len(idx) else None,
            "start": _iso(times.min()) if len(times) else None, "end": _iso(times.max()) if len(times) else None,
            "decisions": int(len(idx))}


def _worst(severities: Iterable[str], default: str = "info") -> str:
    out = default
    for s in severities:
        if _SEVERITY_RANK[s] > _SEVERITY_RANK[out]:
            out = s
    return out


def _psi_severity(value: float) -> str:
    if value >= stats.PSI_MAJOR:
        return "high"
    if value >= stats.PSI_MODERATE:
        return "medium"
    return "low"


def _finding(view: DeploymentData, check: str, statistic: str, value: Any, threshold: Any, verdict: str, severity: str,
             window: dict, evidence: dict) -> Finding:
    return Finding(check, view.deployment, view.model, statistic, value, threshold, verdict, severity, window, evidence)


def _binary(view: DeploymentData) -> bool:
    return len(view.classes) <= 2


# ------------------------------------------------------------------ performance
def check_performance(view: DeploymentData, cfg: MonitorConfig) -> tuple[list[Finding], str | None]:
    """Realised against claimed accuracy and ROC AUC, and calibration (see the module docstring).

    Returns:
        ``(findings, reason skipped or None)``.
    """
    if not view.sees_outputs:
        return [], f"role {view.role} does not see the outputs of this {view.visibility} deployment"
    if not _binary(view):
        return [], f"performance checks need a binary classifier; the card lists {len(view.classes)} classes"
    y, pred, score = view.outcome, view.predicted, view.score
    has = ~np.isnan(y) & ~np.isnan(pred)
    window = {"current": _span(view, np.arange(view.n))}
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


# ------------------------------------------------------------------ drift
def _windows(view: DeploymentData, ref_view: DeploymentData | None, cfg: MonitorConfig
             ) -> tuple[DeploymentData, np.ndarray, np.ndarray, str]:
    """(reference view, reference rows, current rows of ``view``, description)."""
    n = view.n
    if ref_view is not None:
        ref_rows = np.arange(ref_view.n)
        cur_rows = np.arange(n) if cfg.window is None else np.arange(max(0, n - cfg.window), n)
        return ref_view, ref_rows, cur_rows, f"all decisions of deployment {ref_view.deployment}"
    n_ref = min(cfg.reference_size, n // 2)
    ref_rows = np.arange(n_ref)
    start = n_ref if cfg.window is None else max(n_ref, n - cfg.window)
    return view, ref_rows, np.arange(start, n), f"first {n_ref} decisions of the deployment"


def compare_feature(ref: np.ndarray, cur: np.ndarray, kind: str, *, ref_invalid: np.ndarray | None = None,
                    cur_invalid: np.ndarray | None = None, bins: int = 10, discrete_levels: int = 10) -> dict:
    """Compare one variable's reference and current samples (see the module docstring, ``drift``).

    Args:
        ref, cur: arrays (n_ref,), (n_cur,): float64 for ``kind="numeric"``
            (NaN = missing), anything hashable for ``"categorical"`` (None / NaN = missing).
        kind: ``numeric`` or ``categorical``.
        ref_invalid, cur_invalid: bool masks of values present but not numbers (numeric only).
        bins: reference-quantile bins for PSI.
        discrete_levels: numeric variables with at most this many distinct
            reference values are compared as categories.

    Returns:
        ``{"test", "statistic", "p_value", "psi", "js", "missing_share": [ref, cur],
        "invalid_share": [ref, cur], "unseen_share", "unseen_categories", "n": [ref, cur]}``.

    Raises:
        ValueError: unknown ``kind``, or an empty sample.
    """
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("both samples need at least one value")
    if kind == "numeric":
        ref = np.asarray(ref, dtype=float)
        cur = np.asarray(cur, dtype=float)
        ref_bad = np.zeros(len(ref), bool) if ref_invalid is None else ref_invalid
        cur_bad = np.zeros(len(cur), bool) if cur_invalid is None else cur_invalid
        ref_fin, cur_fin = np.isfinite(ref), np.isfinite(cur)
        ref_miss, cur_miss = ~ref_fin & ~ref_bad, ~cur_fin & ~cur_bad
        out = {"n": [len(ref), len(cur)], "missing_share": [float(ref_miss.mean()), float(cur_miss.mean())],
               "invalid_share": [float(ref_bad.mean()), float(cur_bad.mean())]}
        rv, cv = ref[ref_fin], cur[cur_fin]
        levels = np.unique(rv) if len(rv) <= 5_000_000 else np.unique(rv[:100_000])
        if len(levels) <= discrete_levels:
            # discrete: categories are the values; missing and invalid become their own cells
            rl = np.where(ref_fin, ref, np.nan).astype(object)
            cl = np.where(cur_fin, cur, np.nan).astype(object)
            rl[ref_bad] = "(invalid)"
            cl[cur_bad] = "(invalid)"
            cat = _compare_codes(rl, cl)
            out.update(_categorical_result(cat, len(cur)))
            return out
        if len(rv) >= 1 and len(cv) >= 1:
            d, p = stats.ks_test(rv, cv)
        else:
            d, p = (0.0, 1.0) if len(rv) == len(cv) == 0 else (1.0, 0.0)
        edges = stats.quantile_edges(rv, bins) if len(rv) else np.array([])
        k = len(edges) + 1
        ref_counts = np.concatenate([np.bincount(np.searchsorted(edges, rv, side="right"), minlength=k)[:k],
                                     [ref_miss.sum(), ref_bad.sum()]])
        cur_counts = np.concatenate([np.bincount(np.searchsorted(edges, cv, side="right"), minlength=k)[:k],
                                     [cur_miss.sum(), cur_bad.sum()]])
        out.update(test="ks", statistic=d, p_value=p, psi=stats.psi(ref_counts, cur_counts),
                   js=stats.js_distance(ref_counts, cur_counts), unseen_share=float(np.mean(cur_bad)) if cur_bad.any() else 0.0,
                   unseen_categories=0)
        if ref_miss.any() or cur_miss.any() or ref_bad.any() or cur_bad.any():
            # the shares of present / missing / invalid values, tested too (Bonferroni within the feature)
            chi, p_miss, _ = stats.chi_square_homogeneity(
                np.array([ref_fin.sum(), ref_miss.sum(), ref_bad.sum()]), np.array([cur_fin.sum(), cur_miss.sum(), cur_bad.sum()]))
            out["missing_test"] = {"statistic": chi, "p_value": p_miss}
            out["test"] = "ks+missing-share"
            out["p_value"] = min(1.0, 2 * min(p, p_miss))
        return out
    if kind != "categorical":
        raise ValueError(f"kind must be numeric or categorical, got {kind!r}")
    cat = _compare_codes(np.asarray(ref, dtype=object), np.asarray(cur, dtype=object))
    miss_ref = float(np.mean(pd.isna(ref)))
    miss_cur = float(np.mean(pd.isna(cur)))
    return {"n": [len(ref), len(cur)], "missing_share": [miss_ref, miss_cur], "invalid_share": [0.0, 0.0],
            **_categorical_result(cat, len(cur))}


def _categorical_result(cat: stats.CategoricalComparison, n_cur: int) -> dict:
    """Chi-square over the categories; with unseen categories also Fisher's exact test of their share (Bonferroni x2)."""
    out = {"test": "chi-square", "statistic": cat.chi2, "p_value": cat.p_value, "dof": cat.dof, "psi": cat.psi, "js": cat.js,
           "unseen_share": cat.unseen / n_cur, "unseen_categories": cat.unseen_categories}
    if cat.unseen:
        out.update(test="chi-square+unseen-share", p_value=min(1.0, 2 * min(cat.p_value, cat.p_unseen)),
                   unseen_test={"p_value": cat.p_unseen, "chi_square_p_value": cat.p_value})
    return out


def compare_frames(reference: pd.DataFrame, current: pd.DataFrame, types: dict[str, str],
                   ref_invalid: dict[str, np.ndarray] | None = None, cur_invalid: dict[str, np.ndarray] | None = None, *,
                   bins: int = 10, discrete_levels: int = 10) -> dict[str, dict]:
    """``compare_feature`` for every column of two frames with the same columns.

    Args:
        reference, current: DataFrames (n_ref x k), (n_cur x k); numeric
            columns float64 with NaN for missing values.
        types: column -> ``numeric`` or ``categorical`` (missing: categorical).
        ref_invalid, cur_invalid: column -> bool mask (rows) of values present but not numbers.

    Returns:
        column -> the comparison (see ``compare_feature``); not yet corrected for multiple tests.
    """
    ref_invalid = ref_invalid or {}
    cur_invalid = cur_invalid or {}
    out = {}
    for name in reference.columns:
        kind = types.get(name, "categorical")
        r = reference[name].to_numpy()
        c = current[name].to_numpy()
        if kind == "numeric":
            out[name] = compare_feature(r, c, "numeric", ref_invalid=ref_invalid.get(name), cur_invalid=cur_invalid.get(name),
                                        bins=bins, discrete_levels=discrete_levels)
        else:
            out[name] = compare_feature(r, c, "categorical")
    return out


def flag_drift(results: dict[str, dict], alpha: float = 0.05, min_psi: float = 0.0) -> list[str]:
    """Mark each comparison drifted or not (Bonferroni over the comparisons, and PSI >= ``min_psi``).

    Adds ``p_adjusted``, ``drifted`` and ``severity`` to every result in place.

    Returns:
        Names of the drifted variables.
    """
    k = len(results)
    drifted = []
    for name, r in results.items():
        r["p_adjusted"] = min(1.0, r["p_value"] * k)
        r["drifted"] = bool(r["p_adjusted"] < alpha and r["psi"] >= min_psi)
        r["severity"] = _psi_severity(r["psi"]) if r["drifted"] else "info"
        if r["drifted"]:
            drifted.append(name)
    return drifted


def _compare_codes(ref: np.ndarray, cur: np.ndarray) -> stats.CategoricalComparison:
    """Factorise both samples together (missing as its own category) and compare the counts."""
    both = np.concatenate([ref, cur])
    try:
        codes, uniques = pd.factorize(both, use_na_sentinel=True)  # None and NaN are missing
    except TypeError:  # unhashable values (lists, objects): compare their text
        codes, uniques = pd.factorize(pd.Series(both, dtype=object).map(_category_key), use_na_sentinel=True)
    k = len(uniques)
    codes = np.where(codes < 0, k, codes)  # missing -> its own category
    labels = [str(u) for u in uniques] + ["(missing)"]
    n_ref = len(ref)
    rc, cc = codes[:n_ref], codes[n_ref:]
    cmp = stats.compare_categorical(rc, cc, labels, k + 1)
    return cmp


def _category_key(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (list, dict)):
        return str(v)
    return v


def _drift_finding(view: DeploymentData, check: str, results: dict[str, dict], cfg: MonitorConfig, window: dict,
                   extra: dict, alpha: float) -> Finding:
    k = len(results)
    drifted = flag_drift(results, alpha, cfg.min_psi)
    p_min = min((r["p_adjusted"] for r in results.values()), default=1.0)
    evidence = {**extra, "alpha": cfg.alpha, "alpha_this_family": alpha, "tests": k, "correction": "Bonferroni (p x tests)",
                "min_psi": cfg.min_psi,
                "drifted": drifted, "psi_max": max((r["psi"] for r in results.values()), default=0.0),
                "features" if check == "drift.inputs" else "outputs": results}
    verdict = "alert" if drifted else "ok"
    severity = _worst(results[n]["severity"] for n in drifted) if drifted else "info"
    return _finding(view, check, "bonferroni_p_min", p_min, alpha, verdict, severity, window, evidence)


def check_drift(view: DeploymentData, cfg: MonitorConfig, ref_view: DeploymentData | None = None
                ) -> tuple[list[Finding], str | None]:
    """Drift of outputs and of the inputs the role sees, reference against current window (module docstring)."""
    if not view.sees_outputs and not view.sees_inputs:
        return [], f"role {view.role} sees neither outputs nor inputs of this {view.visibility} deployment"
    rv, ref_rows, cur_rows, how = _windows(view, ref_view, cfg)
    window = {"reference": _span(rv, ref_rows) | {"rule": how}, "current": _span(view, cur_rows)}
    if len(ref_rows) < cfg.min_size or len(cur_rows) < cfg.min_size:
        ev = {"reason": f"reference has {len(ref_rows)} and current {len(cur_rows)} decisions; each needs {cfg.min_size}"}
        out = []
        for check, sees in (("drift.outputs", view.sees_outputs), ("drift.inputs", view.sees_inputs)):
            if sees:
                out.append(_finding(view, check, "bonferroni_p_min", None, cfg.alpha, "insufficient-data", "info", window, ev))
        return out, None
    out: list[Finding] = []
    families = int(view.sees_outputs and rv.sees_outputs) + int(view.sees_inputs and rv.sees_inputs)
    alpha = cfg.alpha / max(families, 1)  # outputs and inputs share the monitor's alpha (Bonferroni)
    if view.sees_outputs and rv.sees_outputs:
        results: dict[str, dict] = {}
        rs, cs = rv.score[ref_rows], view.score[cur_rows]
        if np.isfinite(rs).any() and np.isfinite(cs).any():
            results["score"] = compare_feature(rs, cs, "numeric", bins=cfg.psi_bins, discrete_levels=cfg.discrete_levels)
        results["label"] = compare_feature(rv.label[ref_rows], view.label[cur_rows], "categorical")
        out.append(_drift_finding(view, "drift.outputs", results, cfg, window, {}, alpha))
    if view.sees_inputs and rv.sees_inputs:
        ref_ok = rv.input_available[ref_rows]
        cur_ok = view.input_available[cur_rows]
        rr, cr = ref_rows[ref_ok], cur_rows[cur_ok]
        extra = {"inputs_erased": [int((~ref_ok).sum()), int((~cur_ok).sum())], "withheld": view.withheld}
        if len(rr) < cfg.min_size or len(cr) < cfg.min_size:
            out.append(_finding(view, "drift.inputs", "bonferroni_p_min", None, cfg.alpha, "insufficient-data", "info", window,
                                {**extra, "reason": "too few decisions with inputs beside the log"}))
        else:
            types = {f.name: f.type for f in view.card.features}
            columns = [c for c in view.inputs.columns if c in rv.inputs.columns]
            results = compare_frames(rv.inputs.iloc[rr][columns], view.inputs.iloc[cr][columns], types,
                                     {k: v[rr] for k, v in rv.invalid.items()}, {k: v[cr] for k, v in view.invalid.items()},
                                     bins=cfg.psi_bins, discrete_levels=cfg.discrete_levels)
            out.append(_drift_finding(view, "drift.inputs", results, cfg, window, extra, alpha))
    return out, None


# ------------------------------------------------------------------ disparity
def _favourable(view: DeploymentData, cfg: MonitorConfig) -> Any:
    """The favourable label: the run's setting, else the card's ``output.favourable``, else None (never guessed)."""
    if cfg.favourable is not None:
        return cfg.favourable
    output = view.card.output if view.card is not None and isinstance(view.card.output, dict) else {}
    return output.get("favourable")


def _group_labels(values: np.ndarray, kind: str, spec: dict | None) -> tuple[np.ndarray, list[str], str]:
    """Group of each row as an int code (-1 = no group), the groups' names, and how the groups were formed."""
    if kind == "numeric" and (spec is None or "bins" in spec):
        x = np.asarray(values, dtype=float)
        fin = np.isfinite(x)
        if spec is not None:
            edges = np.asarray(spec["bins"], dtype=float)
            how = f"bins at {list(spec['bins'])}"
        else:
            edges = np.unique(np.quantile(x[fin], [0.25, 0.5, 0.75])) if fin.any() else np.array([])
            how = "quartiles"
        codes = np.searchsorted(edges, x, side="right").astype(np.int64)
        codes[~fin] = -1
        names = []
        for b in range(len(edges) + 1):
            lo = f"{edges[b - 1]:g}" if b > 0 else None
            hi = f"{edges[b]:g}" if b < len(edges) else None
            names.append(f"< {hi}" if lo is None else (f">= {lo}" if hi is None else f"{lo} to < {hi}"))
        return codes, names, how
    try:
        value_codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    except TypeError:  # unhashable values
        value_codes, uniques = pd.factorize(pd.Series(values, dtype=object).map(_category_key), use_na_sentinel=True)
    if spec is not None and "map" in spec:
        mapping = {str(k): str(v) for k, v in spec["map"].items()}
        labels = [mapping.get(str(u)) for u in uniques]
        how = "mapped categories"
    else:
        labels = [str(u) for u in uniques]
        how = "categories"
    names = sorted({lab for lab in labels if lab is not None})
    code_of = {name: k for k, name in enumerate(names)}
    table = np.array([code_of[lab] if lab is not None else -1 for lab in labels] + [-1], dtype=np.int64)
    return table[value_codes], names, how  # value code -1 (missing) picks the final -1


def _group_counter(codes: np.ndarray, names: list[str]) -> Callable[[np.ndarray], dict[str, int]]:
    """``count(mask)`` -> rows of each group among the masked rows (codes as from ``_group_labels``)."""
    def count(mask: np.ndarray) -> dict[str, int]:
        counts = np.bincount(codes[mask], minlength=len(names))
        return {g: int(c) for g, c in zip(names, counts)}

    return count


def _ratio_table(groups: list[str], hits: dict[str, int], totals: dict[str, int], higher_is_better: bool, a_each: float,
                 a_ratio: float) -> tuple[dict, str | None]:
    """Per group rate, Wilson interval, and ratio to the best-treated group with a Katz interval."""
    rates = {g: hits[g] / totals[g] for g in groups if totals[g] > 0}
    if not rates:
        return {}, None
    best = max(rates, key=rates.get) if higher_is_better else min(rates, key=rates.get)
    table = {}
    for g in groups:
        if totals[g] == 0:
            continue
        row = {"n": totals[g], "rate": rates[g], "rate_ci": list(stats.wilson_interval(hits[g], totals[g], a_each))}
        if g != best:
            if higher_is_better:  # selection: group's rate / best rate
                r, lo, hi = stats.rate_ratio_interval(hits[g], totals[g], hits[best], totals[best], a_ratio)
            else:  # error rates: best (lowest) rate / group's rate
                r, lo, hi = stats.rate_ratio_interval(hits[best], totals[best], hits[g], totals[g], a_ratio)
            row.update(ratio=r if math.isfinite(r) else None, ratio_ci=[lo, hi if math.isfinite(hi) else None])
        else:
            row.update(ratio=1.0, reference_group=True)
        table[g] = row
    return table, best


def check_disparity(view: DeploymentData, cfg: MonitorConfig) -> tuple[list[Finding], str | None]:
    """Selection rates, false positive and false negative rates per protected group, with four-fifths ratios."""
    if not view.sees_outputs:
        return [], f"role {view.role} does not see the outputs of this {view.visibility} deployment"
    if view.card is None:
        return [], "the model is not registered on this log (no card marks protected features)"
    protected = [f for f in view.card.features if f.protected]
    if not protected:
        return [], "the card marks no feature as protected"
    visible = [f for f in protected if view.inputs is not None and f.name in view.inputs.columns]
    if not visible:
        why = ("the card does not give researchers protected attributes (researcher_access_protected is false)"
               if view.role == "researcher" else f"role {view.role} does not see inputs")
        return [], why
    if not _binary(view):
        return [], f"disparity checks need a binary classifier; the card lists {len(view.classes)} classes"
    favourable = _favourable(view, cfg)
    ok_rows = view.input_available & ~pd.isna(view.label)
    selected = (view.label == favourable)
    window = {"current": _span(view, np.arange(view.n))}
    out: list[Finding] = []
    for f in visible:
        codes, group_names, how = _group_labels(view.inputs[f.name].to_numpy(), f.type, cfg.groups.get(f.name))
        has_group = ok_rows & (codes >= 0)
        per_group = _group_counter(codes, group_names)
        counts = per_group(has_group)
        names_all = [g for g in group_names if counts[g] > 0]
        names = [g for g in names_all if counts[g] >= cfg.min_cell]
        suppressed = len(names_all) - len(names)
        base = {"attribute": f.name, "grouping": how, "favourable": favourable, "groups_suppressed": suppressed,
                "min_cell": cfg.min_cell, "alpha": cfg.alpha, "rule": "four-fifths (29 CFR 1607.4(D)): ratio < 0.8",
                "ratio_interval": "Katz (1978) log interval, Bonferroni over the comparisons"}
        y = view.outcome
        metrics = [("disparity.selection_rate", "selection_rate", True, has_group, selected)]
        if favourable is None:  # which label is good for the person is not known: no selection-rate direction
            metrics = []
            out.append(_finding(view, "disparity.selection_rate", f"min selection_rate ratio ({f.name})", None, FOUR_FIFTHS,
                                "insufficient-data", "info", window,
                                {**base, "reason": "no favourable label: the card's output states no 'favourable' class "
                                                   "and none was given (--favourable / favourable); the selection-rate "
                                                   "direction is not guessed"}))
        if y is not None:
            neg = has_group & (y == 0) & ~np.isnan(view.predicted)
            pos = has_group & (y == 1) & ~np.isnan(view.predicted)
            metrics.append(("disparity.false_positive_rate", "false_positive_rate", False, neg, view.predicted == 1))
            metrics.append(("disparity.false_negative_rate", "false_negative_rate", False, pos, view.predicted == 0))
        for check, metric, higher_better, denom_mask, hit_mask in metrics:
            all_totals = per_group(denom_mask)
            totals = {g: all_totals[g] for g in names}
            usable = [g for g in names if totals[g] >= cfg.min_cell]
            statistic = f"min {metric} ratio ({f.name})"
            if len(usable) < 2:
                out.append(_finding(view, check, statistic, None, FOUR_FIFTHS, "insufficient-data", "info", window,
                                    {**base, "reason": f"fewer than two groups with {cfg.min_cell} or more decisions"
                                                       + (" with outcomes" if metric != "selection_rate" else "")}))
                continue
            all_hits = per_group(denom_mask & hit_mask)
            hits = {g: all_hits[g] for g in usable}
            comparisons = len(usable) - 1
            a_ratio = cfg.alpha / comparisons
            table, best = _ratio_table(usable, hits, totals, higher_better, cfg.alpha, a_ratio)
            ratios = {g: r["ratio"] for g, r in table.items() if r.get("ratio") is not None and g != best}
            if not ratios:
                out.append(_finding(view, check, statistic, None, FOUR_FIFTHS, "insufficient-data", "info", window,
                                    {**base, "groups": table, "reason": "no finite ratio (zero rates)"}))
                continue
            worst_group = min(ratios, key=ratios.get)
            worst = ratios[worst_group]
            significant = [g for g, r in table.items() if g != best and r.get("ratio") is not None
                           and r["ratio"] < FOUR_FIFTHS and r["ratio_ci"][1] is not None and r["ratio_ci"][1] < 1]
            below = [g for g, r in ratios.items() if r < FOUR_FIFTHS]
            ev = {**base, "groups": table, "reference_group": best, "worst_group": worst_group,
                  "below_four_fifths": below, "significant": significant}
            if significant:
                verdict, severity = "alert", ("high" if metric == "selection_rate" else "medium")
                if metric == "selection_rate":
                    ev["direction"] = (f"selection rate of {', '.join(significant)} is below four-fifths of that of "
                                       f"{best}, significantly")
                else:
                    ev["direction"] = (f"{metric.replace('_', ' ')} of {', '.join(significant)} is above five-fourths of "
                                       f"that of {best} (ratio below 0.8), significantly")
            elif below:
                verdict, severity = "insufficient-data", "low"
                ev["note"] = ("ratio below 0.8 but not statistically significant: 29 CFR 1607.4(D) says such differences "
                              "may not constitute adverse impact when based on small numbers")
            else:
                verdict, severity = "ok", "info"
            out.append(_finding(view, check, statistic, worst, FOUR_FIFTHS, verdict, severity, window, ev))
    return out, None


# ------------------------------------------------------------------ Goodhart
def check_goodhart(view: DeploymentData, cfg: MonitorConfig) -> tuple[list[Finding], str | None]:
    """Deployer-reported proxy metrics improving while realised accuracy worsens (module docstring)."""
    if not view.metrics:
        return [], "the deployer reported no metric entries for this deployment and model"
    if not view.sees_outputs:
        return [], f"role {view.role} does not see the outputs and outcomes of this {view.visibility} deployment"
    out = []
    by_name: dict[str, list] = {}
    for m in view.metrics:
        by_name.setdefault(m.name, []).append(m)
    times = view.time
    has = ~np.isnan(view.outcome) & ~np.isnan(view.predicted)
    correct = (view.predicted == view.outcome) & has
    for name, reports in by_name.items():
        reports = sorted(reports, key=lambda m: (m.end or m.time, m.index))
        periods = []
        prev_end = None
        for m in reports:
            end = np.datetime64((m.end or m.time).rstrip("Z"), "us")
            start = np.datetime64(m.start.rstrip("Z"), "us") if m.start else prev_end
            mask = (times <= end) & has
            if start is not None:
                mask &= times > start if m.start is None else times >= start
            n = int(mask.sum())
            periods.append({"report_index": m.index, "start": _iso(start) if start is not None else None, "end": _iso(end),
                            "proxy": m.value, "decisions_with_outcome": n, "correct": int(correct[mask].sum())})
            prev_end = end
        usable = [p for p in periods if p["decisions_with_outcome"] >= 10]
        for p in usable:
            p["accuracy"] = p["correct"] / p["decisions_with_outcome"]
        better = reports[-1].better
        window = {"current": _span(view, np.arange(view.n)),
                  "reports": {"first_index": reports[0].index, "last_index": reports[-1].index, "count": len(reports)}}
        ev: dict[str, Any] = {"proxy": name, "better": better, "alpha": cfg.alpha, "periods": periods,
                              "method": "Kendall tau of the proxy over periods (one-sided) and Cochran-Armitage trend of "
                                        "realised accuracy (one-sided, decreasing); intersection-union test (Berger 1982)"}
        if len(usable) < 4:
            out.append(_finding(view, "goodhart", "intersection_union_p", None, cfg.alpha, "insufficient-data", "info",
                                window, {**ev, "reason": f"{len(usable)} periods with 10 or more outcomes; needs 4"}))
            continue
        order = np.arange(len(usable))
        proxy = np.array([p["proxy"] for p in usable]) * (1 if better == "higher" else -1)
        tau, p_proxy = _st.kendalltau(order, proxy, alternative="greater")
        p_proxy = 1.0 if not np.isfinite(p_proxy) else float(p_proxy)
        z, p_real = stats.cochran_armitage_trend(np.array([p["correct"] for p in usable]),
                                                 np.array([p["decisions_with_outcome"] for p in usable]))
        acc = np.array([p["accuracy"] for p in usable])
        rho = _st.spearmanr(proxy, acc).statistic if len(set(acc)) > 1 and len(set(proxy)) > 1 else None
        ev.update(kendall_tau_proxy=float(tau) if np.isfinite(tau) else None, p_proxy_improves=p_proxy,
                  cochran_armitage_z=z, p_realised_worsens=p_real, spearman_proxy_vs_accuracy=rho)
        p_iut = max(p_proxy, p_real)
        if p_iut < cfg.alpha:
            verdict, severity = "alert", "high"
            ev["direction"] = f"{name} improves while realised accuracy falls"
        else:
            verdict, severity = "ok", "info"
        out.append(_finding(view, "goodhart", "intersection_union_p", p_iut, cfg.alpha, verdict, severity, window, ev))
    return out, None


# ------------------------------------------------------------------ anomalies
def check_anomalies(view: DeploymentData, cfg: MonitorConfig, now: datetime) -> tuple[list[Finding], str | None]:
    """Gaps, bursts, out-of-order and future timestamps among a deployment's decisions (module docstring)."""
    t = view.time
    ok = ~np.isnat(t)
    window = {"current": _span(view, np.arange(view.n))}
    us = t[ok].astype(np.int64)  # microseconds since the epoch
    idx = view.index[ok]
    common = {"decisions": view.n, "unparsable_times": int((~ok).sum()), "alpha": cfg.alpha}
    out = []

    # out of order: a decision timed before the previous one (log order), beyond the tolerance
    tol_us = int(cfg.order_tolerance * 1e6)
    back = np.nonzero(np.diff(us) < -tol_us)[0] + 1 if len(us) > 1 else np.array([], dtype=int)
    ot = view.outcome_time
    has_ot = ~np.isnat(ot) & ok
    early = np.nonzero(has_ot & (ot.astype("datetime64[us]") < t - np.timedelta64(tol_us, "us")))[0] if view.n else []
    n_bad = len(back) + len(early)
    ev = {**common, "out_of_order": len(back), "first_out_of_order": [int(i) for i in idx[back][:20]],
          "max_step_back_seconds": float(-np.diff(us).min() / 1e6) if len(back) else 0.0,
          "outcomes_before_decision": len(early), "first_outcomes_before_decision": [int(i) for i in view.index[early][:20]],
          "tolerance_seconds": cfg.order_tolerance}
    out.append(_finding(view, "anomaly.order", "out_of_order", n_bad, 0, "alert" if n_bad else "ok",
                        "medium" if n_bad else "info", window, ev))

    # in the future
    now_us = int(np.datetime64(now.astimezone(timezone.utc).replace(tzinfo=None), "us").astype(np.int64))
    future = np.nonzero(us > now_us + int(cfg.future_tolerance * 1e6))[0]
    ev = {**common, "future": len(future), "first_future": [int(i) for i in idx[future][:20]],
          "latest": _iso(np.datetime64(int(us.max()), "us")) if len(us) else None, "run_time": _iso(np.datetime64(now_us, "us")),
          "tolerance_seconds": cfg.future_tolerance,
          "max_ahead_seconds": float((us.max() - now_us) / 1e6) if len(future) else 0.0}
    out.append(_finding(view, "anomaly.future", "future_timestamps", len(future), 0, "alert" if len(future) else "ok",
                        "high" if len(future) else "info", window, ev))

    # gaps and bursts, over batches (distinct times: an SDK call logs its decisions with one time)
    events, sizes = np.unique(us, return_counts=True)
    intervals = np.diff(events) / 1e6
    m = len(intervals)
    if m < 20:
        why = {"reason": f"{m + 1} distinct batch times; gap and burst checks need at least 21"}
        out.append(_finding(view, "anomaly.gap", "longest_gap_seconds", float(intervals.max()) if m else None,
                            cfg.gap_seconds, "insufficient-data", "info", window, {**common, **why}))
        out.append(_finding(view, "anomaly.burst", "poisson_tail_p", None, None, "insufficient-data", "info", window,
                            {**common, **why}))
        return out, None
    median = float(np.median(intervals))
    rate = math.log(2) / median  # batches per second, robust to the gaps and bursts themselves
    if cfg.gap_seconds is not None:
        gap_limit, rule = float(cfg.gap_seconds), "fixed threshold"
    else:
        gap_limit = median * math.log(m / cfg.alpha) / math.log(2)
        rule = "Poisson batches, rate ln2 / median interval: P(any of m intervals > limit) < alpha"
    longest = int(np.argmax(intervals))
    gaps = np.nonzero(intervals > gap_limit)[0]
    ev = {**common, "batches": len(events), "median_interval_seconds": median, "rule": rule,
          "gaps": [{"after": _iso(np.datetime64(int(events[g]), "us")), "before": _iso(np.datetime64(int(events[g + 1]), "us")),
                    "seconds": float(intervals[g])} for g in gaps[np.argsort(-intervals[gaps])][:20]]}
    out.append(_finding(view, "anomaly.gap", "longest_gap_seconds", float(intervals[longest]), gap_limit,
                        "alert" if len(gaps) else "ok", "medium" if len(gaps) else "info", window, ev))

    width = cfg.burst_seconds or 10 * median
    span = (events[-1] - events[0]) / 1e6
    n_bins = int(span // width) + 1
    if n_bins < 10:
        out.append(_finding(view, "anomaly.burst", "poisson_tail_p", None, None, "insufficient-data", "info", window,
                            {**common, "bin_seconds": width, "reason": f"{n_bins} bins of {width:g} s; needs 10"}))
        return out, None
    which = ((events - events[0]) / 1e6 // width).astype(np.int64)
    batch_counts = np.bincount(which, minlength=n_bins)
    decision_counts = np.bincount(which, weights=sizes, minlength=n_bins).astype(np.int64)
    mu = rate * width
    top = int(np.argmax(batch_counts))
    tail = float(_st.poisson.sf(batch_counts[top] - 1, mu))
    limit = cfg.alpha / n_bins
    bursts = np.nonzero(_st.poisson.sf(batch_counts - 1, mu) < limit)[0]
    ev = {**common, "bin_seconds": width, "bins": n_bins, "expected_batches_per_bin": mu,
          "largest_bin": {"start": _iso(np.datetime64(int(events[0] + top * width * 1e6), "us")),
                          "batches": int(batch_counts[top]), "decisions": int(decision_counts[top])},
          "decisions_per_bin_median": float(np.median(decision_counts)), "bursts": len(bursts),
          "rule": "Poisson batches per bin: upper tail probability < alpha / bins",
          "burst_bins": [{"start": _iso(np.datetime64(int(events[0] + b * width * 1e6), "us")), "batches": int(batch_counts[b]),
                          "decisions": int(decision_counts[b])} for b in bursts[:20]]}
    out.append(_finding(view, "anomaly.burst", "poisson_tail_p", tail, limit, "alert" if len(bursts) else "ok",
                        "medium" if len(bursts) else "info", window, ev))
    return out, None


# ------------------------------------------------------------------ runs
def monitor_views(views: list[DeploymentData], cfg: MonitorConfig, *, role: str,
                  reference: DeploymentData | None = None, progress: Callable[[str, int, int], None] | None = None
                  ) -> tuple[list[Finding], list[dict]]:
    """Run the configured monitors over loaded views (see ``run_monitors``)."""
    now = cfg.now or datetime.now(timezone.utc)
    findings: list[Finding] = []
    skipped: list[dict] = []
    for k, view in enumerate(views):
        for monitor in cfg.monitors:
            if monitor == "performance":
                got, why = check_performance(view, cfg)
            elif monitor == "drift":
                ref = reference if reference is not None and reference is not view else None
                got, why = check_drift(view, cfg, ref)
            elif monitor == "disparity":
                got, why = check_disparity(view, cfg)
            elif monitor == "goodhart":
                got, why = check_goodhart(view, cfg)
            else:
                got, why = check_anomalies(view, cfg, now)
            findings.extend(got)
            if why:
                skipped.append({"monitor": monitor, "deployment": view.deployment, "model": view.model, "reason": why})
        if progress:
            progress("running monitors", k + 1, len(views))
    return findings, skipped


def run_monitors(
    ledger: Ledger,
    role: str,
    config: MonitorConfig | None = None,
    *,
    deployments: Iterable[str] | None = None,
    granted: Iterable[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> MonitorRun:
    """Run the monitors over the log as ``role`` sees it (nothing is recorded; see ``MonitorRun.record``).

    Args:
        ledger: the log.
        role: one of ``views.MONITOR_ROLES``.
        config: settings (default ``MonitorConfig()``).
        deployments: only these deployments (default all).
        granted: a developer's granted deployments.
        progress: optional ``progress(stage, done, total)`` callback.

    Returns:
        The run's findings and skipped checks.

    Raises:
        glasslog.oversight.views.MonitorViewError: unknown role or deployment,
            or a reference deployment with no decisions.
        MonitorConfigError: a setting does not fit the log (``check_settings``),
            ``granted`` for a role other than developer or naming an unknown deployment,
            or ``reference_deployment`` among the monitored deployments.
        Nothing is recorded in either case.
    """
    cfg = config or MonitorConfig()
    if role not in MONITOR_ROLES:
        raise MonitorViewError(f"role must be one of {', '.join(MONITOR_ROLES)}, got {role!r}")
    started = _time.perf_counter()
    wanted = None if deployments is None else list(dict.fromkeys(deployments))
    if wanted is not None and cfg.reference_deployment is not None and cfg.reference_deployment in wanted:
        raise MonitorConfigError("reference_deployment", f"{cfg.reference_deployment!r} is also a monitored deployment; "
                                                         "the reference must be another deployment")
    load = wanted
    if wanted is not None and cfg.reference_deployment is not None and cfg.reference_deployment not in wanted:
        load = wanted + [cfg.reference_deployment]
    granted = tuple(granted)
    if granted and role != "developer":
        raise MonitorConfigError("granted", f"applies to role developer only, not {role}")
    views = load_views(ledger, role, deployments=load, granted=granted, progress=progress)
    if granted:
        from ..registry import Deployments

        known = {d.name for d in Deployments(ledger).list()} | {v.deployment for v in views}
        unknown = [g for g in granted if g not in known]
        if unknown:
            raise MonitorConfigError("granted", f"no deployment {', '.join(map(repr, unknown))} on log {ledger.origin}")
    reference = None
    if cfg.reference_deployment is not None:
        refs = [v for v in views if v.deployment == cfg.reference_deployment]
        if not refs:
            raise MonitorViewError(f"reference deployment {cfg.reference_deployment!r} has no decisions on log {ledger.origin}")
        reference = refs[0]
        if wanted is not None and cfg.reference_deployment not in wanted:
            views = [v for v in views if v.deployment != cfg.reference_deployment]
        else:
            views = [v for v in views if v is not reference]
    check_settings(views + ([reference] if reference is not None else []), cfg, role)
    loaded = _time.perf_counter()
    findings, skipped = monitor_views(views, cfg, role=role, reference=reference, progress=progress)
    done = _time.perf_counter()
    from ..ledger import utc_now

    run = MonitorRun(role, findings, skipped, sum(v.n for v in views) + (reference.n if reference is not None else 0),
                     loaded - started, done - loaded, utc_now())
    for f in run.findings:  # fail now, before anything is recorded, if a finding would not fit an entry
        size = len(canonical_json(f.entry(role, run.time)))
        if size > MAX_ENTRY_BYTES:
            f.evidence = {"truncated": True, "reason": f"evidence of {size} bytes exceeds the entry limit",
                          "drifted": f.evidence.get("drifted")}
    return run


def check_settings(views: list[DeploymentData], cfg: MonitorConfig, role: str) -> None:
    """Check the settings that depend on the log against the monitored models' cards, before anything runs.

    Args:
        views: the loaded (deployment, model) views of the run.
        cfg: the run's settings.
        role: the role the run is for.

    Raises:
        MonitorConfigError: ``favourable`` is not one of the classes of every
            monitored registered model; a ``groups`` feature is on no monitored
            card, is not protected there, is not visible to ``role``, or has ``bins`` although it is
            categorical.
    """
    cards = [v.card for v in views if v.card is not None]
    if cfg.favourable is not None:
        for v in views:
            if v.card is None or not v.classes:
                continue
            if not any(type(cfg.favourable) is type(c) and cfg.favourable == c for c in v.classes):
                raise MonitorConfigError("favourable", f"must be one of the classes {v.classes!r} of model {v.model} "
                                                       f"(deployment {v.deployment}), got {cfg.favourable!r}")
    for feature, spec in cfg.groups.items():
        found = [f for card in cards for f in card.features if f.name == feature]
        if not found:
            known = sorted({f.name for card in cards for f in card.features if f.protected})
            raise MonitorConfigError(f"groups.{feature}", "is not a feature on the card of any monitored model "
                                                          f"(protected features: {', '.join(known) or 'none'})")
        if not any(f.protected for f in found):
            raise MonitorConfigError(f"groups.{feature}", "is not a protected feature on the card; groups apply to "
                                                          "protected features (disparity)")
        if not any(v.inputs is not None and feature in v.inputs.columns for v in views):
            raise MonitorConfigError(f"groups.{feature}", f"is not visible to role {role} on any monitored deployment")
        if "bins" in spec and all(f.type != "numeric" for f in found):
            raise MonitorConfigError(f"groups.{feature}.bins", "applies to numeric features; this one is categorical "
                                                               "(use {'map': {value: group}})")


def list_findings(ledger: Ledger, *, deployment: str | None = None, check: str | None = None, verdict: str | None = None,
                  source: str | None = "monitor", limit: int = 50, before: int | None = None) -> list[dict]:
    """Finding entries on the log, newest first, each with its ``index``.

    Args:
        deployment, check (exact or prefix), verdict, source: filters (None = any).
        limit: at most this many.
        before: only entries with a smaller index (for paging).
    """
    found: list[dict] = []
    for idx, obj in ledger.entries_of_type("finding"):
        if before is not None and idx >= before:
            break
        if source is not None and obj.get("source") != source:
            continue
        if deployment is not None and obj.get("deployment") != deployment:
            continue
        if check is not None and not (obj.get("check") == check or str(obj.get("check", "")).startswith(check + ".")):
            continue
        if verdict is not None and obj.get("verdict") != verdict:
            continue
        found.append({"index": idx, **{k: v for k, v in obj.items() if k not in ("type", "v")}})
    found.reverse()
    return found[:limit]
