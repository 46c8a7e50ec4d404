"""What every scenario world shares: the run's log, actors and oversight, and each actor's reads of the log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ledger import Ledger
from ..registry import Registry
from .engine import ACTOR_NAMES, Oversight, WorldRun
from .regimes import Actor, make_actors
from .schema import Scenario

__all__ = ["ActorLog", "BaseWorld", "now"]


@dataclass
class ActorLog:
    """What one actor has read of the log so far (read incrementally through its principal).

    Attributes:
        decisions: decision index -> the actor's view of it (``Actor.read_decisions``).
        outcomes: decision index -> outcome value, for the decisions whose output it sees.
    """

    decisions: dict[int, dict] = field(default_factory=dict)
    outcomes: dict[int, Any] = field(default_factory=dict)
    read_to: int = 0

    def update(self, actor: Actor) -> ActorLog:
        size = actor.ledger.size
        if size == self.read_to:
            return self
        for view in actor.read_decisions(self.read_to):
            self.decisions[view["index"]] = view
        self.outcomes.update(actor.read_outcomes(self.decisions, self.read_to))
        self.read_to = size
        return self


class BaseWorld:
    """Shared state of a world run: log, actors, oversight, per-actor reads."""

    def __init__(self, scenario: Scenario, regime: str, seed: int, control: bool, workdir: str):
        self.s = scenario
        self.p = {p.name: p.value for p in scenario.parameters}
        self.regime = regime
        self.seed = seed
        self.control = control
        self.ledger = Ledger.create(workdir, f"scenario-lab.example/{scenario.id}")
        self.registry = Registry(self.ledger)
        self.run = WorldRun(scenario.id, regime, seed, control)
        roles = {a.role: a.name for a in scenario.actors}
        roles.setdefault("supervisor", ACTOR_NAMES["supervisor"])
        self.actors = make_actors(self.ledger, roles, developer_deployments=tuple(self.developer_deployments()))
        self.views: dict[str, ActorLog] = {r: ActorLog() for r in self.actors}
        self.harm_by_decision: dict[int, float] = {}  # decision entry index -> harm units
        self.problem_decisions: set[int] = set()

    def developer_deployments(self) -> list[str]:
        return []

    def view(self, actor: Actor) -> ActorLog:
        return self.views[actor.role].update(actor)

    def rng(self, *stream: int) -> np.random.Generator:
        """An independent random stream for (seed, stream...), the same in every regime."""
        return np.random.default_rng([self.seed, *stream])

    def oversight(self, detectors, problem_models: set[str]) -> Oversight:
        return Oversight(self.ledger, self.s, self.actors, detectors, self.run, int(self.p["triage_delay_periods"]),
                         problem_models)

    def finish(self, ov: Oversight, onset_decisions: int | None) -> WorldRun:
        ov.finish()
        run = self.run
        run.decisions = sum(1 for _ in self.ledger.entries_of_type("decision"))
        run.harm_total = float(sum(self.harm_by_decision.values()))
        if not self.control:
            run.onset = onset_decisions
            hits = [a for a in run.alerts if any(m in ov.problem_models for m in a.models)]
            if hits:
                first = hits[0]
                run.detection = max(0, first.decisions - (onset_decisions or 0))
                run.alerts_before_onset = sum(1 for a in hits if a.decisions < (onset_decisions or 0))
                run.harm_before_detection = float(sum(h for i, h in self.harm_by_decision.items() if i < first.finding_index))
            else:
                run.harm_before_detection = run.harm_total
        self.ledger.close()
        return run


def now() -> str:
    from ..ledger import utc_now

    return utc_now()
