"""What every monitor shares: the ``Finding`` it returns, the ``Monitor`` contract, and small helpers.

The contract (one for all monitors, as scikit-learn has one estimator contract):
a monitor is a ``Monitor`` with a ``name`` and ``check(view, cfg, ctx)``,
which looks at one (deployment, model) view as one role sees it and returns
``(findings, reason)``: the findings, and the reason it could not run for
this view (None when it ran). It reads the log only through the view, writes
nothing, and raises nothing for data it cannot judge (that is
``insufficient-data``). ``MONITORS`` (``registry``) lists them in the order
they run. The methods are in ``docs/monitors.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..views import DeploymentData

if TYPE_CHECKING:
    from .config import MonitorConfig

__all__ = ["Finding", "Monitor", "RunContext", "FOUR_FIFTHS"]

FOUR_FIFTHS = 0.8
"""The four-fifths rule's ratio (29 CFR 1607.4(D))."""

_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


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


@dataclass(frozen=True)
class RunContext:
    """What a monitor may need beyond its view and the settings.

    Attributes:
        now: the run's clock (UTC).
        reference: the reference deployment's view (``reference_deployment``), or None.
    """

    now: datetime
    reference: DeploymentData | None = None

    def reference_for(self, view: DeploymentData) -> DeploymentData | None:
        """The reference view for ``view`` (None when there is none, or it is ``view`` itself)."""
        return self.reference if self.reference is not None and self.reference is not view else None


@dataclass(frozen=True)
class Monitor:
    """One monitor: its name, a line saying what it checks, and its check.

    Attributes:
        name: e.g. ``drift`` (a key of ``MONITORS`` and a value of ``MonitorConfig.monitors``).
        summary: one line for listings.
        check: ``check(view, cfg, ctx) -> (findings, reason or None)`` (module docstring).
    """

    name: str
    summary: str
    check: Callable[[DeploymentData, "MonitorConfig", RunContext], tuple[list[Finding], str | None]]


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


def finding(view: DeploymentData, check: str, statistic: str, value: Any, threshold: Any, verdict: str, severity: str,
            window: dict, evidence: dict) -> Finding:
    return Finding(check, view.deployment, view.model, statistic, value, threshold, verdict, severity, window, evidence)


def _binary(view: DeploymentData) -> bool:
    return len(view.classes) <= 2


def _category_key(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (list, dict)):
        return str(v)
    return v
