"""The machinery every scenario world shares: a real glasslog log, actors, detectors, findings, the kill switch.

One **world run** is one scenario under one regime for one seed, problem or
clean control. It creates a log in a temporary directory, issues API keys to
the overseers (``glasslog.scenarios.regimes.make_actors``), registers models
with the regime's disclosure policy on their cards, and logs every decision
through the capture SDK. After each period every (actor, method) pair of the
scenario file runs its detector, reading only what the actor's principal
may read; a detector that needs weights asks for them through the access
policy and, if refused, is unavailable for the rest of the run. An alert
becomes a ``finding`` entry (one append); the supervisory authority then
suspends the model after the triage delay (``Registry.set_status``), and the
capture SDK refuses the model's later decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..capture import ModelNotActiveError
from ..findings import finding_entry
from ..ledger import Ledger, utc_now
from ..registry import ClaimedMetrics, Feature, ModelCard, Registry, fingerprint_frame
from .checks import Check
from .regimes import REGIME_POLICY, Actor, WeightsRefused
from .schema import Scenario

__all__ = ["Alert", "WorldRun", "Detector", "Oversight", "make_card", "ACTOR_NAMES"]

ACTOR_NAMES = {
    "public": "members of the public",
    "subject": "people decided about",
    "developer": "a downstream developer",
    "researcher": "a research institution",
    "supervisor": "the supervisory authority",
}


@dataclass(frozen=True)
class Alert:
    """A detector's alert, recorded on the log as a ``finding`` entry.

    Attributes:
        period: the period (0-based) after which it was raised.
        decisions: decisions logged in the run when it was raised.
        role: the actor's role.
        method: the method (detector) name from the scenario file.
        models: fingerprints the finding names (the models to suspend).
        check: the check's result.
        finding_index: index of the ``finding`` entry.
    """

    period: int
    decisions: int
    role: str
    method: str
    models: tuple[str, ...]
    check: Check
    finding_index: int


@dataclass
class WorldRun:
    """What one world run measured (all counts are decisions unless stated).

    Attributes:
        scenario, regime, seed, control: which run.
        decisions: decisions logged.
        onset: decisions logged before the problem began (None in a control run).
        detection: decisions logged from the onset until the first alert naming a problem model (None: not detected).
        harm_before_detection: harm units accrued before that alert.
        harm_total: harm units over the whole run (with suspensions in force).
        false_alarms: alerts naming a model that had no problem (in a control run: every alert).
        alerts: every alert, in order.
        methods_used: method names that ran at least once.
        methods_refused: (role, method) pairs refused the weights by the access policy.
        methods_granted: (role, method) pairs whose detector asked for the weights itself and was granted them.
        alert_methods_problem: methods that raised an alert naming a model with the problem.
        alert_methods_clean: methods that raised an alert naming only models without it (false alarms).
        alerts_before_onset: alerts naming a problem model raised before the problem began (counted as detection at 0).
        suspended: fingerprints suspended.
        refused_after_suspension: decision attempts the capture SDK refused after a suspension.
        logged_after_suspension: decisions logged by a model after its suspension (the kill switch holds iff 0).
        weights_downloads: ``access`` entries on the log.
        extra: scenario-specific measurements.
    """

    scenario: str
    regime: str
    seed: int
    control: bool
    decisions: int = 0
    onset: int | None = None
    detection: int | None = None
    harm_before_detection: float = 0.0
    harm_total: float = 0.0
    false_alarms: int = 0
    alerts: list[Alert] = field(default_factory=list)
    methods_used: set[str] = field(default_factory=set)
    methods_refused: set[tuple[str, str]] = field(default_factory=set)
    methods_granted: set[tuple[str, str]] = field(default_factory=set)
    alert_methods_problem: set[str] = field(default_factory=set)
    alert_methods_clean: set[str] = field(default_factory=set)
    alerts_before_onset: int = 0
    suspended: list[str] = field(default_factory=list)
    refused_after_suspension: int = 0
    logged_after_suspension: int = 0
    weights_downloads: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def detected(self) -> bool:
        return self.detection is not None

    def alerts_methods_any(self) -> set[str]:
        """Methods that raised any alert in this run."""
        return {a.method for a in self.alerts}


Detector = Callable[[Actor, Any, int], list[tuple[Check, tuple[str, ...]]]]
"""``detector(actor, world, period) -> [(check, fingerprints it names), ...]``; may raise ``WeightsRefused``."""


def make_card(name: str, version: str, X: pd.DataFrame, X_eval: pd.DataFrame, metrics: dict[str, float], regime: str,
              *, features: tuple[Feature, ...] | None = None, output: dict | None = None, provider: str = "scenario lab",
              intended_use: str = "scenario lab simulation", researcher_protected: bool = True) -> ModelCard:
    """A model card whose disclosure policy is the regime's (``REGIME_POLICY``).

    Args:
        X: training rows (rows x features); its fingerprint goes on the card.
        X_eval: evaluation rows the claimed ``metrics`` were measured on.
        metrics: claimed metric name -> fraction.
    """
    feats = features or tuple(Feature(c, "numeric" if pd.api.types.is_numeric_dtype(X[c]) else "categorical") for c in X.columns)
    return ModelCard(name=name, version=version, provider=provider, intended_use=intended_use, features=feats,
                     output=output or {"classes": [0, 1], "positive": 1}, training_data_fingerprint=fingerprint_frame(X),
                     claimed=ClaimedMetrics({k: float(round(v, 6)) for k, v in metrics.items()}, fingerprint_frame(X_eval), len(X_eval)),
                     disclosure_policy=REGIME_POLICY[regime], researcher_access_protected=researcher_protected)


class Oversight:
    """Runs the scenario's (actor, method) pairs each period and acts on their alerts.

    Args:
        ledger: the run's log.
        scenario: the scenario (its ``actors`` say who may use which method).
        actors: role -> ``Actor`` holding a real principal on ``ledger``.
        detectors: method name -> detector function.
        run: the ``WorldRun`` being filled.
        triage_delay: periods between an alert and the supervisor's suspension.
        problem_models: fingerprints that have the problem (alerts naming others are false alarms).
    """

    def __init__(self, ledger: Ledger, scenario: Scenario, actors: dict[str, Actor], detectors: dict[str, Detector],
                 run: WorldRun, triage_delay: int, problem_models: set[str] | None = None):
        missing = sorted({m.name for _, m in scenario.methods()} - set(detectors))
        if missing:
            raise ValueError(f"scenario {scenario.id}: no detector for methods {missing}")
        self.ledger = ledger
        self.scenario = scenario
        self.actors = actors
        self.detectors = detectors
        self.run = run
        self.triage_delay = triage_delay
        self.problem_models = problem_models if problem_models is not None else set()
        self.registry = Registry(ledger)
        self._alerted: set[tuple[str, tuple[str, ...]]] = set()
        self._pending: list[tuple[int, str, str]] = []  # (due period, fingerprint, reason)
        self.suspended_at: dict[str, int] = {}  # fingerprint -> log size at suspension

    def step(self, period: int, world: Any, decisions: int) -> list[Alert]:
        """Run every available detector after ``period``; record alerts; apply suspensions that are due."""
        new: list[Alert] = []
        for actor_spec, method in self.scenario.methods():
            if (actor_spec.role, method.name) in self.run.methods_refused:
                continue
            actor = self.actors[actor_spec.role]
            grants = actor.grants
            try:
                results = self.detectors[method.name](actor, world, period)
            except WeightsRefused:
                self.run.methods_refused.add((actor_spec.role, method.name))
                continue
            if actor.grants > grants and "weights" in method.needs:
                self.run.methods_granted.add((actor_spec.role, method.name))
            self.run.methods_used.add(method.name)
            for check, models in results:
                if not check.alert:
                    continue
                models = tuple(m for m in models if m not in self.suspended_at)
                key = (method.name, models)
                if not models or key in self._alerted:
                    continue
                self._alerted.add(key)
                new.append(self._record(period, decisions, actor, method.name, check, models))
        for alert in new:
            for fp in alert.models:
                if fp not in {p[1] for p in self._pending}:
                    self._pending.append((period + self.triage_delay, fp, f"finding {alert.finding_index}: {alert.method}"))
        self.apply_due(period)
        return new

    def apply_due(self, period: int) -> None:
        """Suspend the models whose triage delay has passed (the supervisor's kill switch)."""
        due = [p for p in self._pending if p[0] <= period]
        self._pending = [p for p in self._pending if p[0] > period]
        for _, fp, reason in due:
            if fp in self.suspended_at:
                continue
            if self.registry.get(fp).status == "active":
                self.registry.set_status(fp, "suspended", f"supervisory authority: {reason}")
            self.suspended_at[fp] = self.ledger.size
            self.run.suspended.append(fp)

    def _record(self, period: int, decisions: int, actor: Actor, method: str, check: Check, models: tuple[str, ...]) -> Alert:
        entry = finding_entry(source="audit" if method.endswith("box") else "monitor", check=method,
                              statistic=check.statistic, verdict="alert", severity="high", by_role=actor.role,
                              time=utc_now(), value=None if check.value is None else float(check.value),
                              threshold=float(check.threshold), model=models[0],
                              evidence=_jsonable(check.evidence | {"models": list(models), "period": period}))
        index = self.ledger.append([entry]).indexes[0]
        alert = Alert(period, decisions, actor.role, method, models, check, index)
        self.run.alerts.append(alert)
        if not any(m in self.problem_models for m in models):
            self.run.false_alarms += 1
            self.run.alert_methods_clean.add(method)
        else:
            self.run.alert_methods_problem.add(method)
        return alert

    def try_decide(self, fn: Callable[[], Any]) -> Any | None:
        """Call a logged prediction; a suspended model's refusal is counted and gives None."""
        try:
            return fn()
        except ModelNotActiveError:
            self.run.refused_after_suspension += 1
            return None

    def finish(self) -> None:
        """Measure the kill switch: decisions logged by each suspended model after its suspension entry."""
        after = 0
        for index, e in self.ledger.entries_of_type("decision"):
            at = self.suspended_at.get(e["model"])
            if at is not None and index >= at:
                after += 1
        self.run.logged_after_suspension = after
        self.run.weights_downloads = sum(1 for _ in self.ledger.entries_of_type("access"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return round(float(value), 9)
    return value
