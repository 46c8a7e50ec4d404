"""Monte Carlo over seeds: every scenario under every regime, measured, with intervals.

For each scenario, repetition ``r`` uses seed ``seed * 1000 + r`` in every
regime (common random numbers) and runs two worlds per regime: the problem
and the clean control (``glasslog.scenarios.worlds.run_world``). The German
Credit scenarios also measure the cost to game the registered model
(``glasslog.scenarios.gaming``) once per repetition. The modelled parts
(off-record use, what a suspension stops) are computed from the scenario's
parameters and the regime, and kept apart from the measured ones.

Everything is deterministic for a seed: the worlds' random streams depend on
the seed only, BLAS runs single-threaded, and results are rounded before
they are written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..stats import wilson_interval as wilson
from .regimes import REGIMES, roles_with_weights
from .schema import Scenario, load_scenario, scenario_ids
from .worlds import WorldRun, run_world

__all__ = ["RegimeSummary", "ScenarioResult", "LabResult", "run_lab", "offrecord_share", "summarise", "mean_ci", "CAPABILITIES"]

CAPABILITIES = ("frontier", "lagging")

MODELLED_ONLY = frozenset({"lag_months", "fork_share_developers", "fork_share_public", "substitute_share_frontier",
                           "capability_halflife_months"})
"""Parameters that enter only modelled quantities (off-record use); their sensitivity needs no new runs."""


def offrecord_share(params: dict[str, Any], regime: str, lag_months: float) -> float:
    """Modelled share of use that happens off the record (copies and substitutes that never log).

    ``fork`` = ``fork_share_developers`` once developers hold the weights, plus
    ``fork_share_public`` once everyone does; ``substitute`` =
    ``substitute_share_frontier x 2^(-lag_months / capability_halflife_months)``
    (use that moves to a widely available model of that capability); the
    off-record share is ``1 - (1 - fork)(1 - substitute)``. A fraction.
    """
    holders = roles_with_weights(regime)
    fork = 0.0
    if "developer" in holders:
        fork += float(params["fork_share_developers"])
    if "public" in holders:
        fork += float(params["fork_share_public"])
    fork = min(1.0, fork)
    sub = float(params["substitute_share_frontier"]) * 2 ** (-lag_months / float(params["capability_halflife_months"]))
    return 1 - (1 - fork) * (1 - sub)


BOOTSTRAP_RESAMPLES = 2000


def mean_ci(values: list[float], resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float | None, float | None, float | None]:
    """Mean and its 95 % bootstrap percentile interval (Efron & Tibshirani 1993, ch. 13).

    The interval's ends are means of resamples of ``values``, so for a
    non-negative quantity (harm counts) they are never below zero, unlike a
    normal or t interval on skewed counts. The resampling stream is fixed
    (seed 0), so the same values give the same interval.

    Args:
        values: one value per run (n values).

    Returns:
        (mean, lower, upper); (None, None, None) for no values; (m, m, m) for one value.
    """
    if not values:
        return (None, None, None)
    a = np.asarray(values, dtype=float)
    m = float(a.mean())
    if len(a) < 2 or float(a.min()) == float(a.max()):
        return (m, m, m)
    idx = np.random.default_rng(0).integers(0, len(a), size=(resamples, len(a)))
    means = a[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (m, float(lo), float(hi))


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


@dataclass
class RegimeSummary:
    """One scenario under one regime, over all repetitions (fractions, decisions, harm units).

    Attributes:
        detect_p, detect_lo, detect_hi: share of problem runs detected, with its 95 % Wilson interval.
        time_median, time_q1, time_q3: decisions from onset to detection, over detected runs (None if none).
        detected_n: problem runs detected (the time quartiles are over these runs only).
        harm_mean, harm_lo, harm_hi: harm before detection (undetected runs: all their harm), mean and 95 % bootstrap interval.
        harm_total_mean, harm_total_lo, harm_total_hi: harm over the whole run, suspensions in force, mean and 95 % bootstrap interval.
        controls: clean control runs.
        alerts_by_method: method -> {"problem": problem runs where it alerted naming a problem model,
            "control": control runs where it alerted (each a false alarm)}.
        runs_alert_before_onset: problem runs with an alert naming a problem model before the problem began.
        false_alarm_p, false_alarm_lo, false_alarm_hi: share of control runs with at least one alert.
        false_alarms_mean: alerts naming a model without the problem, per run (problem and control runs).
        methods_used: methods that ran in at least one run.
        methods_refused: ``role/method`` pairs the access policy refused the weights.
        methods_granted: ``role/method`` pairs whose detector asked for the weights itself and was granted them.
        first_detector: method -> how often it raised the detecting alert.
        suspensions: runs with at least one suspension.
        logged_after_suspension: decisions logged by suspended models after their suspension, over all runs.
        refused_after_suspension: decision attempts the capture SDK refused after a suspension, over all runs.
        offrecord: capability label -> modelled off-record share.
        stops_use: capability label -> modelled share of use a suspension stops.
        extra: scenario-specific means.
    """

    regime: str
    reps: int
    detect_p: float
    detect_lo: float
    detect_hi: float
    time_median: float | None
    time_q1: float | None
    time_q3: float | None
    detected_n: int
    harm_mean: float | None
    harm_lo: float | None
    harm_hi: float | None
    harm_total_mean: float | None
    harm_total_lo: float | None
    harm_total_hi: float | None
    controls: int
    alerts_by_method: dict[str, dict[str, int]]
    runs_alert_before_onset: int
    false_alarm_p: float
    false_alarm_lo: float
    false_alarm_hi: float
    false_alarms_mean: float
    methods_used: list[str]
    methods_refused: list[str]
    methods_granted: list[str]
    first_detector: dict[str, int]
    suspensions: int
    logged_after_suspension: int
    refused_after_suspension: int
    offrecord: dict[str, float] = field(default_factory=dict)
    stops_use: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def summarise(regime: str, problem: list[WorldRun], control: list[WorldRun], params: dict[str, Any],
              lag_months: float) -> RegimeSummary:
    """Aggregate the runs of one regime (see ``RegimeSummary``)."""
    n = len(problem)
    det = [r for r in problem if r.detected]
    lo, hi = wilson(len(det), n)
    times = [r.detection for r in det]
    harm = mean_ci([r.harm_before_detection for r in problem])
    total = mean_ci([r.harm_total for r in problem])
    by_method: dict[str, dict[str, int]] = {}
    for m in sorted({m for r in problem for m in r.alert_methods_problem} | {m for r in control for m in r.alerts_methods_any()}):
        by_method[m] = {"problem": sum(1 for r in problem if m in r.alert_methods_problem),
                        "control": sum(1 for r in control if m in r.alerts_methods_any())}
    fa_runs = sum(1 for r in control if r.alerts)
    flo, fhi = wilson(fa_runs, len(control))
    first: dict[str, int] = {}
    for r in det:
        hit = next(a for a in r.alerts if a.finding_index is not None and a.decisions - (r.onset or 0) == r.detection
                   and a.models)
        first[hit.method] = first.get(hit.method, 0) + 1
    all_runs = problem + control
    kill_ok = all(r.logged_after_suspension == 0 for r in all_runs)
    offrecord = {"frontier": _r(offrecord_share(params, regime, 0.0)), "lagging": _r(offrecord_share(params, regime, lag_months))}
    stops = {k: _r((1 - v) * (1.0 if kill_ok else 0.0)) for k, v in offrecord.items()}
    extra: dict[str, Any] = {}
    keys = sorted({k for r in problem for k, v in r.extra.items() if isinstance(v, (int, float))})  # booleans: a share
    for k in keys:
        vals = [float(r.extra[k]) for r in problem if isinstance(r.extra.get(k), (int, float))]
        extra[k] = _r(float(np.mean(vals)))
    return RegimeSummary(
        regime=regime, reps=n, detect_p=_r(len(det) / n if n else 0.0), detect_lo=_r(lo), detect_hi=_r(hi),
        time_median=_r(float(np.median(times))) if times else None,
        time_q1=_r(float(np.percentile(times, 25))) if times else None,
        time_q3=_r(float(np.percentile(times, 75))) if times else None,
        detected_n=len(det),
        harm_mean=_r(harm[0]), harm_lo=_r(harm[1]), harm_hi=_r(harm[2]),
        harm_total_mean=_r(total[0]), harm_total_lo=_r(total[1]), harm_total_hi=_r(total[2]), controls=len(control),
        alerts_by_method=by_method, runs_alert_before_onset=sum(1 for r in problem if r.alerts_before_onset),
        false_alarm_p=_r(fa_runs / len(control) if control else 0.0), false_alarm_lo=_r(flo), false_alarm_hi=_r(fhi),
        false_alarms_mean=_r(float(np.mean([r.false_alarms for r in all_runs]))) if all_runs else 0.0,
        methods_used=sorted({m for r in all_runs for m in r.methods_used}),
        methods_refused=sorted({f"{role}/{m}" for r in all_runs for role, m in r.methods_refused}),
        methods_granted=sorted({f"{role}/{m}" for r in all_runs for role, m in r.methods_granted}),
        first_detector=dict(sorted(first.items())),
        suspensions=sum(1 for r in problem if r.suspended),
        logged_after_suspension=sum(r.logged_after_suspension for r in all_runs),
        refused_after_suspension=sum(r.refused_after_suspension for r in all_runs),
        offrecord=offrecord, stops_use=stops, extra=extra)


@dataclass
class ScenarioResult:
    """All regimes of one scenario, plus the cost-to-game measurements (German Credit scenarios)."""

    scenario: Scenario
    regimes: dict[str, RegimeSummary]
    gaming: dict[str, Any] | None = None


@dataclass
class LabResult:
    """A whole lab run: settings, per-scenario results, sensitivity runs.

    Attributes:
        reps, seed: the run's settings.
        lag_months: the ``--lag-months`` given (NaN: each scenario's own ``lag_months``).
        scenarios: per-scenario results.
        sensitivity: one dict per sensitivity run (empty when they were skipped).
        seconds: wall time of the run.
        selected: scenario ids as selected (None: every shipped scenario).
        sensitivity_on: whether the sensitivity runs were asked for (``--no-sensitivity`` gives False).
    """

    reps: int
    seed: int
    lag_months: float
    scenarios: list[ScenarioResult]
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    selected: list[str] | None = None
    sensitivity_on: bool = True

    def rerun_args(self) -> list[str]:
        """The ``glasslog scenarios run`` arguments that reproduce this run exactly (every option that was set)."""
        args = []
        for sid in self.selected or []:
            args += ["-s", sid]
        args += ["--reps", str(self.reps), "--seed", str(self.seed)]
        if not math.isnan(self.lag_months):
            args += ["--lag-months", repr(float(self.lag_months))]  # repr: the shortest exact round trip
        if not self.sensitivity_on:
            args.append("--no-sensitivity")
        return args


def _gaming(scenario: Scenario, reps: int, seed: int, lag_months: float) -> dict[str, Any]:
    """Measure the cost to game the scenario's registered credit model, per repetition, then summarise."""
    from . import adapters, gaming

    p = {q.name: q.value for q in scenario.parameters}
    rows: dict[str, list] = {k: [] for k in ("blackbox", "whitebox", "surrogate_frontier", "surrogate_lagging")}
    for r in range(reps):
        s = seed * 1000 + r
        if scenario.id == "deceptive-credit":
            d = adapters.shortcut_data(s, control=False)
            model, X_dep = d.model, d.X_deploy
        else:
            d = adapters.downstream_data(s, control=False, pilot=int(p["pilot_rows"]))
            model, X_dep = d.base_model, d.X_deploy
        X_all, y_all = _public_training(scenario, d)
        refused = X_dep[np.asarray(model.predict_proba(X_dep))[:, 1] >= 0.5].head(8)
        if len(refused) == 0:
            continue
        rows["blackbox"].append(gaming.game(model, X_all, refused, "blackbox"))
        rows["whitebox"].append(gaming.game(model, X_all, refused, "whitebox", local=model))
        n_rows = len(X_all)
        for cap, lag in (("frontier", 0.0), ("lagging", lag_months)):
            sur = gaming.surrogate(X_all, y_all, gaming.surrogate_rows(n_rows, lag, float(p["capability_halflife_months"])), s)
            rows[f"surrogate_{cap}"].append(gaming.game(model, X_all, refused, "surrogate", local=sur))
    out: dict[str, Any] = {}
    for k, costs in rows.items():
        q = np.concatenate([c.queries for c in costs]) if costs else np.array([])
        st = np.concatenate([c.steps for c in costs]) if costs else np.array([])
        n = int(sum(c.applicants for c in costs))
        flipped = int(sum(c.flipped for c in costs))
        lo, hi = wilson(flipped, n)
        out[k] = {"applicants": n, "success": _r(flipped / n if n else 0.0), "success_lo": _r(lo), "success_hi": _r(hi),
                  "median_queries": _r(float(np.median(q))) if n else None, "mean_queries": _r(float(np.mean(q))) if n else None,
                  "median_steps": _r(float(np.median(st))) if n else None}
    return out


def _public_training(scenario: Scenario, d: Any):
    """Rows and labels a surrogate is trained on: the provider-like data of the scenario (training and evaluation rows)."""
    import pandas as pd

    if scenario.id == "deceptive-credit":
        return pd.concat([d.X_train, d.X_eval], ignore_index=True), np.concatenate([d.y_train, d.y_eval])
    X = pd.concat([d.X_train, d.X_pilot], ignore_index=True)
    return X, np.concatenate([d.y_train, d.y_pilot])


def run_scenario(scenario: Scenario, reps: int, seed: int, lag_months: float, regimes: tuple[str, ...] = REGIMES,
                 progress: Callable[[int], None] | None = None, gaming: bool = True) -> ScenarioResult:
    """Run one scenario: ``reps`` repetitions x regimes x (problem, control).

    Args:
        progress: called with 1 after each world run.

    Raises:
        ValueError: ``reps`` < 1 or an unknown regime.
    """
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    for g in regimes:
        if g not in REGIMES:
            raise ValueError(f"unknown regime {g!r}; known: {', '.join(REGIMES)}")
    params = {p.name: p.value for p in scenario.parameters}
    summaries = {}
    with threadpool_limits(limits=1):
        for regime in regimes:
            problem, control = [], []
            for r in range(reps):
                s = seed * 1000 + r
                problem.append(run_world(scenario, regime, s, control=False))
                if progress:
                    progress(1)
                control.append(run_world(scenario, regime, s, control=True))
                if progress:
                    progress(1)
            summaries[regime] = summarise(regime, problem, control, params, lag_months)
        g = _gaming(scenario, reps, seed, lag_months) if gaming and scenario.data == "german_credit" else None
    return ScenarioResult(scenario, summaries, g)


def run_lab(scenarios: list[str] | None = None, reps: int = 20, seed: int = 0, lag_months: float | None = None,
            progress: Callable[[str, int, int], None] | None = None, sensitivity: bool = True,
            sensitivity_reps: int | None = None) -> LabResult:
    """Run the lab: the named scenarios (default: all shipped), then the sensitivity runs.

    Args:
        scenarios: scenario ids.
        reps: repetitions per scenario and regime (each is a problem and a control run).
        seed: the lab's seed.
        lag_months: lag of the widely available models (default: each scenario's ``lag_months`` parameter).
        progress: ``progress(description, advance, total)``.
        sensitivity: also run each scenario at the values its parameters' ``sensitivity`` lists.
        sensitivity_reps: repetitions of each sensitivity run (default ``max(2, reps // 4)``).

    Raises:
        glasslog.scenarios.schema.ScenarioError: an unknown scenario id.
        ValueError: reps < 1.
    """
    import time

    t0 = time.perf_counter()
    ids = scenarios or scenario_ids()
    loaded = [load_scenario(i) for i in ids]
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    s_reps = sensitivity_reps or max(2, reps // 4)
    plan = []
    for sc in loaded:
        plan.append(("main", sc, None, None, reps))
    if sensitivity:
        for sc in loaded:
            for p in sc.parameters:
                if p.name in MODELLED_ONLY:
                    continue  # moves only modelled quantities: the report computes those directly
                for v in p.sensitivity:
                    plan.append(("sens", sc, p.name, v, s_reps))
    total = sum(r * len(REGIMES) * 2 for *_, r in plan)
    results, sens = [], []
    for kind, sc, name, value, r in plan:
        lag = float(lag_months if lag_months is not None else sc.parameter("lag_months"))
        label = sc.id if kind == "main" else f"{sc.id}: {name}={value:g}"

        def tick(n: int, label: str = label) -> None:
            if progress:
                progress(label, n, total)

        if kind == "main":
            results.append(run_scenario(sc, r, seed, lag, progress=tick))
        else:
            varied = sc.with_parameters(**{name: type(sc.parameter(name))(value)})
            res = run_scenario(varied, r, seed, lag, progress=tick, gaming=False)
            sens.append({"scenario": sc.id, "parameter": name, "value": value, "default": sc.parameter(name), "reps": r,
                         "regimes": {g: {"detect_p": s.detect_p, "detect_lo": s.detect_lo, "detect_hi": s.detect_hi,
                                         "time_median": s.time_median, "harm_mean": s.harm_mean, "harm_lo": s.harm_lo,
                                         "harm_hi": s.harm_hi, "harm_total_mean": s.harm_total_mean,
                                         "false_alarm_p": s.false_alarm_p} for g, s in res.regimes.items()}})
    return LabResult(reps, seed, float(lag_months) if lag_months is not None else float("nan"), results, sens,
                     time.perf_counter() - t0, selected=list(scenarios) if scenarios else None, sensitivity_on=sensitivity)
