"""The settings of a monitor run (``MonitorConfig``), checked alone and against the monitored models' cards."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...errors import BadInputError
from ..views import DeploymentData

__all__ = ["MonitorConfig", "MonitorConfigError", "check_settings"]


def _names() -> tuple[str, ...]:
    from .registry import MONITORS

    return tuple(MONITORS)


class MonitorConfigError(BadInputError):
    """A monitor setting is out of range; ``field`` names it."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"monitor setting '{field}': {problem}")


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of a monitor run (the methods they tune are in ``docs/monitors.md``).

    Attributes:
        alpha: family-wise significance level of each monitor's tests per
            (deployment, model), a fraction (default 0.05).
        monitors: which monitors to run (names in ``MONITORS``, run in that order).
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
    monitors: tuple[str, ...] = field(default_factory=_names)
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
        names = _names()
        unknown = [m for m in self.monitors if m not in names]
        if unknown or not self.monitors:
            raise MonitorConfigError("monitors", f"must be some of {', '.join(names)}, got {list(self.monitors)!r}")
        object.__setattr__(self, "monitors", tuple(self.monitors))
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
