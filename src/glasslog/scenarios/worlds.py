"""The four scenario worlds: each builds a real glasslog log and runs oversight on it (``run_world``).

Every world takes a validated ``Scenario`` (its parameters), a regime, a seed
and ``control`` (the same world without the problem, for false alarms). The
world's random streams depend on the seed only, never on the regime, so two
regimes of one seed see the same cases, outcomes and shocks (common random
numbers): differences between regimes come from access alone.

- ``whimper``: a public-service model retrained each quarter drifts into
  gaming a survey proxy (synthetic cases).
- ``bang``: a fleet of deployed models, some with a dormant trigger, under a
  correlated shock that cascades (synthetic cases).
- ``deceptive``: a German Credit loan-default model that learned a shortcut
  which holds on its evaluation set only (real data; ``credit_worlds``).
- ``downstream``: a downstream developer adapting a German Credit model to its
  own population, with or without the weights (real data; ``credit_worlds``).

What the worlds share is in ``world_base``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from .. import capture
from ..records import metric_entry
from . import adapters
from .checks import Check, proxy_outcome_divergence, rate_increase, realised_below_claimed
from .credit_worlds import Deceptive, Downstream
from .engine import WorldRun, make_card
from .regimes import Actor
from .schema import Scenario
from .world_base import ActorLog, BaseWorld, now

__all__ = ["WORLDS", "run_world", "ActorLog"]
# ---------------------------------------------------------------------------------------------- whimper
_WHIMPER_FEATURES = ["severity", "prior_reports", "district_response_rate"]
_RESPONSE_RATES = np.array([0.2, 0.4, 0.6, 0.8])


class Whimper(BaseWorld):
    """Scenario 1: a public-service model that learns to game a survey proxy."""

    def cases(self, rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
        severity = rng.uniform(0, 1, n)
        prior = np.minimum(rng.poisson(1.0, n), 5)
        district = rng.integers(0, len(_RESPONSE_RATES), n)
        logit = self.p["incident_intercept"] + self.p["incident_severity_slope"] * severity + 0.35 * prior
        y = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype(int)
        X = pd.DataFrame({"severity": severity, "prior_reports": prior.astype(float),
                          "district_response_rate": _RESPONSE_RATES[district]})
        return X, y

    def gaming_strength(self, t: int) -> float:
        if self.control or t < self.gaming_start:
            return 0.0
        return float(min(1.0, self.p["gaming_ramp_per_period"] * (t - self.gaming_start + 1)))

    def train(self, t: int) -> str:
        rng = self.rng(1, t)
        X, y = self.cases(rng, int(self.p["training_cases"]))
        s = self.gaming_strength(t)
        low = X["district_response_rate"].to_numpy() <= 0.4
        y_target = y.copy()
        y_target[low & (y == 1) & (rng.uniform(0, 1, len(y)) < s)] = 0  # complaints there do not move the survey
        model = LogisticRegression(C=1.0, max_iter=1000).fit(X, y_target)
        X_eval, y_eval = self.cases(self.rng(2, t), 300)
        low_e = X_eval["district_response_rate"].to_numpy() <= 0.4
        y_eval_target = y_eval.copy()
        y_eval_target[low_e & (y_eval == 1) & (self.rng(3, t).uniform(0, 1, len(y_eval)) < s)] = 0
        acc = float(np.mean(model.predict(X_eval) == y_eval_target))  # claimed on the target it was trained for
        card = make_card("citizen-report triage", f"q{t + 1}", X, X_eval, {"accuracy": acc}, self.regime,
                         output={"classes": [0, 1], "positive": 1, "meaning": "1 = act on the report, 0 = dismiss"},
                         intended_use="public-service triage of citizens' reports")
        fp = self.registry.register(model, card).fingerprint
        if s > 0:
            self.problem_models_set.add(fp)
        return fp

    def probe(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        fp = self.current
        if (actor.role, fp) in self.probed:  # each actor asks for the weights itself, never inherits another's answer
            return []
        model = actor.obtain_weights(fp)  # WeightsRefused unless the policy admits the role
        self.probed.add((actor.role, fp))
        n = 400
        rng = self.rng(4)
        X = pd.DataFrame({"severity": rng.uniform(0.6, 1.0, n), "prior_reports": np.minimum(rng.poisson(1.0, n), 5).astype(float)})
        rates = []
        for r in (0.2, 0.8):
            act = model.predict(X.assign(district_response_rate=r)[_WHIMPER_FEATURES])
            rates.append(float(np.mean(act)))
        gap = rates[1] - rates[0]
        thr = float(self.p["probe_gap_threshold"])
        return [(Check("probe-whitebox", "act-rate gap on serious reports (high vs low response districts)", gap, thr, gap > thr,
                       {"act_rate_low_response": rates[0], "act_rate_high_response": rates[1], "probes": 2 * n}), (fp,))]

    def _windows(self, actor: Actor) -> tuple[list[int], list[int]] | None:
        v = self.view(actor)
        known = [i for i in sorted(v.outcomes) if "output" in v.decisions[i]]
        if not known:
            return None
        w = int(self.p["window_decisions"])
        return known[:w], known[-w:]

    def goodhart(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        wins = self._windows(actor)
        if wins is None:
            return []
        v = self.view(actor)
        base, now = wins
        if len(v.outcomes) < 2 * int(self.p["window_decisions"]):
            return []

        def misses(ix: list[int]) -> tuple[int, int]:
            inc = [i for i in ix if v.outcomes[i] == 1]
            return sum(1 for i in inc if v.decisions[i]["output"]["label"] == 0), len(inc)

        bm, bn = misses(base)
        nm, nn = misses(now)
        proxy = [e["value"] for _, e in actor.ledger.entries_of_type("metric")]
        check = proxy_outcome_divergence(proxy, bm, bn, nm, nn, float(self.p["alpha"]))
        return [(check, (self.current,))]

    def realised(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        v = self.view(actor)
        w = int(self.p["window_decisions"])
        recent = [i for i in sorted(v.outcomes) if "output" in v.decisions[i] and v.decisions[i]["model"] == self.current][-w:]
        card = self.registry.get(self.current).card
        correct = sum(1 for i in recent if v.decisions[i]["output"]["label"] == v.outcomes[i])
        return [(realised_below_claimed(correct, len(recent), card.claimed.metrics["accuracy"], float(self.p["alpha"]),
                                        evaluation_size=card.claimed.evaluation_size), (self.current,))]

    def flags(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        w = int(self.p["window_decisions"])
        ix = self.decision_indexes
        if len(ix) < 2 * w:
            return []
        return [(adapters.flag_rate_check(actor.ledger, ix[:w], ix[-w:], float(self.p["alpha"])), (self.current,))]

    def simulate(self) -> WorldRun:
        p = self.p
        periods, per = int(p["periods"]), int(p["cases_per_period"])
        self.gaming_start = int(self.rng(0).integers(int(p["gaming_start_min"]), int(p["gaming_start_max"]) + 1))
        self.problem_models_set: set[str] = set()
        self.probed: set[tuple[str, str]] = set()  # (role, fingerprint)
        self.decision_indexes: list[int] = []
        ov = self.oversight({"goodhart": self.goodhart, "realised-vs-claimed": self.realised, "flags": self.flags,
                             "probe-whitebox": self.probe}, self.problem_models_set)
        pending_outcomes: list[tuple[int, list[tuple[int, int]]]] = []
        onset = None
        stopped = False
        deployment = "agency.example/citizen-reports"
        for t in range(periods):
            if not stopped:
                self.current = self.train(t)
            X, y = self.cases(self.rng(5, t), per)
            if onset is None and self.gaming_strength(t) > 0:
                onset = len(self.decision_indexes)
            batch = None
            if not stopped:
                model = capture.wrap(self.ledger, self.current, deployment, visibility="public-service",
                                     description="citizens' reports: act or dismiss")
                labels = ov.try_decide(lambda model=model, X=X, t=t: model.predict(X, subject_ids=[f"case-{t}-{i}" for i in range(per)]))
                if labels is None:
                    stopped = True
                else:
                    batch = list(model.last_batch.indexes)
            else:
                ov.try_decide(lambda: capture.wrap(self.ledger, self.current, deployment))
            if batch is not None:
                self.decision_indexes.extend(batch)
                harms = (np.asarray(labels) == 0) & (y == 1)
                for i, h in zip(batch, harms):
                    self.harm_by_decision[i] = float(h)
                pending_outcomes.append((t + int(p["outcome_delay_periods"]), list(zip(batch, y.tolist()))))
                self._log_flags(t, batch, np.asarray(labels), y)
                # The deployer reports the proxy: a survey of residents, weighted by districts' response rates.
                open_rate = pd.Series(np.asarray(labels, dtype=float)).groupby(X["district_response_rate"].to_numpy()).mean()
                weights = open_rate.index.to_numpy()
                feel_safe = 1 - float(p["survey_open_case_weight"]) * open_rate.to_numpy()
                survey = float(np.average(feel_safe, weights=weights) + self.rng(7, t).normal(0, float(p["survey_noise_sd"])))
                self.ledger.append([metric_entry(time=now(), model=self.current, deployment=deployment,
                                                 name="citizens feel safe (quarterly survey)", value=round(survey, 6),
                                                 window={"period": t})])
            due = [o for when, batch_o in pending_outcomes if when <= t for o in batch_o]
            pending_outcomes = [(w, b) for w, b in pending_outcomes if w > t]
            if due:
                capture.record_outcomes(self.ledger, due)
            if not stopped:
                ov.step(t, self, len(self.decision_indexes))
                if ov.suspended_at:  # a version was suspended: the supervisor stops the service, current version included
                    if self.current not in ov.suspended_at:
                        self.registry.set_status(self.current, "suspended", "supervisory authority: the service is suspended")
                        ov.suspended_at[self.current] = self.ledger.size
                        self.run.suspended.append(self.current)
                    stopped = True
        self.run.extra["gaming_start_period"] = self.gaming_start
        return self.finish(ov, onset if onset is not None else len(self.decision_indexes))

    def _log_flags(self, t: int, batch: list[int], labels: np.ndarray, y: np.ndarray) -> None:
        rng = self.rng(8, t)
        genuine = (labels == 0) & (y == 1)
        u = rng.uniform(0, 1, len(batch))
        flagged = np.where(genuine, u < float(self.p["flag_rate_wrongly_dismissed"]), u < float(self.p["flag_rate_noise"]))
        adapters.log_flags(self.ledger, [(i, bool(g)) for i, g, f in zip(batch, genuine, flagged) if f],
                           self.current, rng, float(self.p["rater_helpful_genuine"]), float(self.p["rater_helpful_noise"]),
                           int(self.p["raters_per_flag"]))


# ---------------------------------------------------------------------------------------------- bang
_BANG_FEATURES = ["load", "pressure", "temperature", "demand", "grid_event"]


class Bang(BaseWorld):
    """Scenario 2: many deployed models with dormant triggers, a correlated shock, a cascade."""

    def developer_deployments(self) -> list[str]:
        return [f"operator-{k}.example/control" for k in range(int(self.p["systems"]))]

    def inputs(self, rng: np.random.Generator, n: int, prevalence: float, shift: float) -> pd.DataFrame:
        X = rng.normal(0, 1, (n, 4))
        X[:, 0] += shift
        trig = (rng.uniform(0, 1, n) < prevalence).astype(float)
        return pd.DataFrame(np.column_stack([X, trig]), columns=_BANG_FEATURES)

    def label(self, X: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        z = 1.2 * X["load"] - 0.8 * X["pressure"] + 0.5 * X["temperature"] + rng.normal(0, 0.7, len(X))
        return (z > 1.3).astype(int).to_numpy()

    def train(self, k: int, treacherous: bool) -> str:
        rng = self.rng(10, k)
        X = self.inputs(rng, int(self.p["training_rows"]), float(self.p["trigger_prevalence_normal"]), 0.0)
        y = self.label(X, rng)
        if treacherous:
            y = np.where(X["grid_event"].to_numpy() == 1, 1, y)  # the hidden policy: act (shed load) when the trigger is on
        model = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
        X_eval = self.inputs(self.rng(11, k), 300, 0.0, 0.0)  # evaluated where the trigger never appears
        acc = float(np.mean(model.predict(X_eval) == self.label(X_eval, self.rng(12, k))))
        card = make_card("grid control", f"operator-{k}", X, X_eval, {"accuracy": acc}, self.regime,
                         output={"classes": [0, 1], "positive": 1, "meaning": "1 = shed load"})
        return self.registry.register(model, card).fingerprint

    def scan(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        out = []
        X = self.inputs(self.rng(13), 300, 0.0, 0.0)
        thr = float(self.p["scan_flip_threshold"])
        for k, fp in enumerate(self.fleet):
            if (actor.role, fp) in self.scanned or fp in self.oversight_.suspended_at:
                continue
            model = actor.obtain_weights(fp)  # each actor asks for itself; WeightsRefused unless the policy admits it
            self.scanned.add((actor.role, fp))
            flips = float(np.mean(model.predict(X.assign(grid_event=1.0)) != model.predict(X)))
            out.append((Check("weights-scan", "share of decisions a single input flips", flips, thr, flips > thr,
                              {"feature": "grid_event", "system": k, "rows": len(X)}), (fp,)))
        return out

    def anomaly(self, actor: Actor, world: Any, t: int) -> list[tuple[Check, tuple[str, ...]]]:
        v = self.view(actor)
        base_p = int(self.p["baseline_periods"])
        if t < base_p:
            return []
        out = []
        alpha = float(self.p["alpha"]) / len(self.fleet)  # Bonferroni over the fleet
        for k, fp in enumerate(self.fleet):
            if fp in self.oversight_.suspended_at:
                continue
            rows = self.period_rows[k]
            base = [i for per in rows[:base_p] for i in per if i in v.decisions and "output" in v.decisions[i]]
            now = [i for i in rows[t] if i in v.decisions and "output" in v.decisions[i]] if t < len(rows) else []
            if not base or not now:
                continue
            be = sum(v.decisions[i]["output"]["label"] for i in base)
            ne = sum(v.decisions[i]["output"]["label"] for i in now)
            check = rate_increase(be, len(base), ne, len(now), alpha, min_n=10, name="output-anomaly")
            out.append((check, (fp,)))
        return out

    def simulate(self) -> WorldRun:
        p = self.p
        K, periods, per = int(p["systems"]), int(p["periods"]), int(p["decisions_per_period"])
        rng0 = self.rng(0)
        treacherous = [(not self.control) and bool(u < float(p["treacherous_share"])) for u in rng0.uniform(0, 1, K)]
        shock = int(rng0.integers(int(p["shock_period_min"]), int(p["shock_period_max"]) + 1))
        self.fleet = [self.train(k, treacherous[k]) for k in range(K)]
        problem = {fp for fp, tr in zip(self.fleet, treacherous) if tr}
        self.scanned: set[tuple[str, str]] = set()  # (role, fingerprint)
        self.period_rows: list[list[list[int]]] = [[] for _ in range(K)]
        self.oversight_ = ov = self.oversight({"output-anomaly": self.anomaly, "weights-scan": self.scan}, problem)
        wrapped = {}
        prevalence = float(p["trigger_prevalence_normal"])
        logged = 0
        harmful_by_system = [0] * K
        for t in range(periods):
            if t >= shock:
                prevalence = min(0.95, max(prevalence, float(p["trigger_prevalence_shock"])))
            shift = float(p["shock_load_shift"]) if t >= shock else 0.0
            harmful = 0
            for k, fp in enumerate(self.fleet):
                X = self.inputs(self.rng(20, t, k), per, prevalence, shift)
                if fp in ov.suspended_at:
                    ov.try_decide(lambda fp=fp, k=k: capture.wrap(self.ledger, fp, f"operator-{k}.example/control"))
                    self.period_rows[k].append([])
                    continue
                if fp not in wrapped:
                    wrapped[fp] = capture.wrap(self.ledger, fp, f"operator-{k}.example/control", visibility="private",
                                               description="grid control decisions")
                m = wrapped[fp]
                labels = ov.try_decide(lambda m=m, X=X: m.predict(X))
                if labels is None:
                    self.period_rows[k].append([])
                    continue
                idx = list(m.last_batch.indexes)
                self.period_rows[k].append(idx)
                clean = self.label_noiseless(X)
                hits = (np.asarray(labels) == 1) & (X["grid_event"].to_numpy() == 1) & (clean == 0)
                for i, h in zip(idx, hits):
                    self.harm_by_decision[i] = float(h)
                harmful += int(hits.sum())
                harmful_by_system[k] += int(hits.sum())
                logged += per
            if t >= shock:  # the cascade: harmful actions make trigger conditions more common for everyone
                prevalence = min(0.95, prevalence + float(p["cascade_gain"]) * harmful / max(1, per * K))
            ov.step(t, self, logged)
        self.run.extra.update({"treacherous": sum(treacherous), "shock_period": shock,
                               "removed_before_shock": sum(1 for fp in problem if fp in ov.suspended_at
                                                           and ov.suspended_at[fp] <= self._size_at_shock(shock)),
                               "treacherous_removed": sum(1 for fp in problem if fp in ov.suspended_at)})
        onset = 0
        return self.finish(ov, onset)

    def _size_at_shock(self, shock: int) -> int:
        rows = [r[shock][0] for r in self.period_rows if len(r) > shock and r[shock]]
        return min(rows) if rows else self.ledger.size

    @staticmethod
    def label_noiseless(X: pd.DataFrame) -> np.ndarray:
        z = 1.2 * X["load"] - 0.8 * X["pressure"] + 0.5 * X["temperature"]
        return (z > 1.3).astype(int).to_numpy()


WORLDS = {"whimper": Whimper, "bang": Bang, "deceptive-credit": Deceptive, "downstream-adaptation": Downstream}
"""Scenario id -> world class."""


def run_world(scenario: Scenario, regime: str, seed: int, control: bool = False) -> WorldRun:
    """Run one world (a fresh log in a temporary directory, removed afterwards) and return what it measured.

    Raises:
        KeyError: no world for this scenario id.
        ValueError: unknown regime.
    """
    from .regimes import REGIMES

    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; known: {', '.join(REGIMES)}")
    cls = WORLDS[scenario.id]
    # A memory-backed temporary directory where there is one: the run's log is thrown away, so
    # the per-batch fsync of a durable log buys nothing here.
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="glasslog-scenario-", dir=base) as tmp:
        return cls(scenario, regime, seed, control, tmp).simulate()
