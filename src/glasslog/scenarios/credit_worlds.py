"""The two German Credit scenario worlds (real data): ``deceptive`` (scenario 3, a shortcut that holds on the
evaluation set only) and ``downstream`` (scenario 4, a developer adapting a model to its own population)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import capture
from . import adapters
from .checks import Check, realised_below_claimed, shortcut_from_flip_rates
from .engine import Oversight, WorldRun, make_card
from .regimes import Actor
from .world_base import BaseWorld

__all__ = ["Deceptive", "Downstream"]


class _Credit(BaseWorld):
    """Shared parts of the two German Credit worlds: logged deployment, outcomes with delay, realised-vs-claimed."""

    deployment = "bank.example/credit-decisions"

    def realised(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        fp = self.current
        if t >= 0 and self.p.get("use_glasslog_monitors", True):
            check = adapters.performance_monitor(actor, self.deployment, fp, float(self.p["alpha"]))
            if check is not None:
                return [(check, (fp,))]
        v = self.view(actor)
        rows = [i for i in sorted(v.outcomes) if v.decisions[i]["model"] == fp and "output" in v.decisions[i]]
        card = self.registry.get(fp).card
        check = adapters.claims_check(rows, v, card.claimed.metrics["accuracy"], float(self.p["alpha"]),
                                      evaluation_size=card.claimed.evaluation_size)
        return [(check, (fp,))]

    def group_rates(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        v = self.view(actor)
        fp = self.current
        rows = [i for i in sorted(v.outcomes) if v.decisions[i]["model"] == fp and "output" in v.decisions[i]]
        check = adapters.group_check(rows, v, float(self.p["alpha"]), float(self.p["group_gap_threshold"]))
        return [(check, (fp,))] if check is not None else []

    def log_period(self, ov: Oversight, model, X: pd.DataFrame, y: np.ndarray, t: int, pending: list) -> list[int] | None:
        labels = ov.try_decide(lambda: model.predict_proba(X, subject_ids=[f"applicant-{self.seed}-{t}-{i}" for i in range(len(X))]))
        if labels is None:
            return None
        idx = list(model.last_batch.indexes)
        pred = np.asarray(labels).argmax(axis=1)
        for i, pr, yy in zip(idx, pred, y):
            self.harm_by_decision[i] = float(pr != yy)
        pending.append((t + int(self.p["outcome_delay_periods"]), list(zip(idx, [int(v) for v in y]))))
        return idx

    def flush_outcomes(self, pending: list, t: int) -> list:
        due = [o for when, b in pending if when <= t for o in b]
        if due:
            capture.record_outcomes(self.ledger, due)
        return [(w, b) for w, b in pending if w > t]


class Deceptive(_Credit):
    """Scenario 3: the German Credit shortcut model, sold on its claimed accuracy."""

    def shortcut_check(self, predict_proba, name: str) -> Check:
        rates = adapters.flip_rates(predict_proba, self.audit_sample, self.rng(30))
        return shortcut_from_flip_rates(rates, float(self.p["shortcut_flip_threshold"]), name)

    def whitebox(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        fp = self.current
        if ("w", actor.role, fp) in self.audited:  # each actor asks for the weights itself
            return []
        model = actor.obtain_weights(fp)
        self.audited.add(("w", actor.role, fp))
        check = adapters.whitebox_shortcut(model, self.audit_sample, self.rng(30), float(self.p["shortcut_flip_threshold"]))
        return [(check, (fp,))]

    def blackbox(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        fp = self.current
        if ("b", actor.role, fp) in self.audited:
            return []
        self.audited.add(("b", actor.role, fp))
        budget = int(self.p["audit_query_budget"])
        n_features = self.audit_sample.shape[1]
        rows = min(len(self.audit_sample), budget // (n_features + 1))
        if rows < int(self.p["blackbox_min_rows"]):
            return []  # the query budget does not allow a meaningful audit
        check, queries = adapters.blackbox_shortcut(self.estimator.predict_proba, self.audit_sample.iloc[:rows], self.rng(30),
                                                    float(self.p["shortcut_flip_threshold"]))
        self.run.extra["blackbox_audit_queries"] = queries
        return [(check, (fp,))]

    def simulate(self) -> WorldRun:
        p = self.p
        data = adapters.shortcut_data(self.seed, control=self.control)
        model = data.model
        self.estimator = model
        card = make_card("loan default", "1" + ("-control" if self.control else ""), data.X_train, data.X_eval,
                         {"accuracy": data.claimed_accuracy}, self.regime, features=data.features,
                         output={"classes": [0, 1], "positive": 1, "meaning": "1 = bad credit risk"},
                         intended_use="consumer credit scoring (EU AI Act Annex III 5(b))")
        self.current = self.registry.register(model, card).fingerprint
        problem = set() if self.control else {self.current}
        self.audited: set = set()
        self.audit_sample = data.X_audit
        ov = self.oversight({"realised-vs-claimed": self.realised, "group-error-rates": self.group_rates,
                             "shortcut-whitebox": self.whitebox, "shortcut-blackbox": self.blackbox}, problem)
        wrapped = capture.wrap(self.ledger, self.current, self.deployment, visibility="private",
                               description="credit decisions")
        per = int(p["decisions_per_period"])
        pending: list = []
        logged = 0
        ov.step(-1, self, 0)  # audits at registration, before any decision
        for t in range((len(data.X_deploy) + per - 1) // per):
            X = data.X_deploy.iloc[t * per:(t + 1) * per]
            y = data.y_deploy[t * per:(t + 1) * per]
            if self.current in ov.suspended_at:
                ov.try_decide(lambda X=X: wrapped.predict_proba(X))
            else:
                idx = self.log_period(ov, wrapped, X, y, t, pending)
                logged += len(idx or [])
            pending = self.flush_outcomes(pending, t)
            ov.step(t, self, logged)
        self.run.extra.update({"claimed_accuracy": data.claimed_accuracy, "realised_accuracy": data.realised_accuracy})
        return self.finish(ov, 0)


class Downstream(_Credit):
    """Scenario 4: a downstream developer adapts a German Credit model to its own population."""

    deployment = "fintech.example/young-applicants"

    def developer_deployments(self) -> list[str]:
        return [self.deployment]

    def pilot(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        if self.piloted:
            return []
        model = actor.obtain_weights(self.base)  # the developer evaluates the weights on its own pilot sample
        self.piloted = True
        self.pilot_mode = "weights"
        return [(self._pilot_check(model.predict_proba, "pilot-whitebox"), (self.base,))]

    def pilot_queries(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        if self.piloted or self.pilot_tried_queries:
            return []
        self.pilot_tried_queries = True
        if int(self.p["developer_query_budget"]) < len(self.data.X_pilot):
            return []
        self.piloted = True
        self.pilot_mode = "queries"
        return [(self._pilot_check(self.base_model.predict_proba, "pilot-blackbox"), (self.base,))]

    def _pilot_check(self, predict_proba, name: str) -> Check:
        pred = np.asarray(predict_proba(self.data.X_pilot)).argmax(axis=1)
        correct = int(np.sum(pred == self.data.y_pilot))
        c = realised_below_claimed(correct, len(pred), self.claimed, float(self.p["alpha"]),
                                   evaluation_size=len(self.data.X_eval))
        return Check(name, c.statistic, c.value, c.threshold, c.alert, c.evidence)

    def simulate(self) -> WorldRun:
        p = self.p
        self.data = data = adapters.downstream_data(self.seed, control=self.control, pilot=int(p["pilot_rows"]))
        self.base_model = data.base_model
        card = make_card("loan default (base)", "1" + ("-control" if self.control else ""), data.X_train, data.X_eval,
                         {"accuracy": data.claimed_accuracy}, self.regime, features=data.features,
                         output={"classes": [0, 1], "positive": 1, "meaning": "1 = bad credit risk"},
                         intended_use="consumer credit scoring; base model for downstream adaptation")
        self.base = self.current = self.registry.register(data.base_model, card).fingerprint
        self.claimed = data.claimed_accuracy
        problem = set() if self.control else {self.base}
        self.piloted = False
        self.pilot_tried_queries = False
        self.pilot_mode = None
        ov = self.oversight({"pilot-whitebox": self.pilot, "pilot-blackbox": self.pilot_queries,
                             "realised-vs-claimed": self.realised, "group-error-rates": self.group_rates}, problem)
        alerts = ov.step(-1, self, 0)  # the developer's pilot check, before deployment
        adapted = None
        if any(a.method == "pilot-whitebox" for a in alerts):
            # With the weights the developer can adapt the model to its population: refit with its pilot rows up-weighted.
            adapted_model = adapters.adapt(data, float(p["pilot_weight"]))
            acc = float(np.mean(adapted_model.predict(data.X_pilot) == data.y_pilot))
            card2 = make_card("loan default (adapted)", "1-young" + ("-control" if self.control else ""),
                              pd.concat([data.X_train, data.X_pilot]), data.X_pilot, {"accuracy": acc}, self.regime,
                              features=data.features, output={"classes": [0, 1], "positive": 1, "meaning": "1 = bad credit risk"},
                              intended_use="consumer credit scoring for applicants under 30 (adapted by the developer)")
            adapted = self.registry.register(adapted_model, card2).fingerprint
            self.current = adapted
        ov.apply_due(10**6)  # the pilot's finding: the base model is not deployed for this population
        fp = self.current
        per = int(p["decisions_per_period"])
        pending: list = []
        logged = 0
        wrapped = None
        for t in range((len(data.X_deploy) + per - 1) // per):
            X = data.X_deploy.iloc[t * per:(t + 1) * per]
            y = data.y_deploy[t * per:(t + 1) * per]
            if fp in ov.suspended_at:
                ov.try_decide(lambda fp=fp: capture.wrap(self.ledger, fp, self.deployment))
            else:
                if wrapped is None:
                    wrapped = capture.wrap(self.ledger, fp, self.deployment, visibility="private",
                                           description="credit decisions for young applicants")
                idx = self.log_period(ov, wrapped, X, y, t, pending)
                logged += len(idx or [])
            pending = self.flush_outcomes(pending, t)
            ov.step(t, self, logged)
        self.run.extra.update({"claimed_accuracy": data.claimed_accuracy, "base_accuracy_on_population": data.base_accuracy,
                               "adapted": adapted is not None, "pilot_mode": self.pilot_mode,
                               "deployed_accuracy": (1 - self.run_harm_rate()) if self.harm_by_decision else None})
        return self.finish(ov, 0)

    def run_harm_rate(self) -> float:
        return float(np.mean(list(self.harm_by_decision.values())))
