"""What every monitor shares: the ``Monitor`` contract, the run's context, and small helpers.

The contract (one for all monitors, as scikit-learn has one estimator contract):
a monitor is a ``Monitor`` with a ``name`` and ``check(view, cfg, ctx)``,
which looks at one (deployment, model) view as one role sees it and returns
``(findings, reason)``: the findings, and the reason it could not run for
this view (None when it ran). It reads the log only through the view, writes
nothing, and raises nothing for data it cannot judge (that is
``insufficient-data``). Findings are ``glasslog.findings.Finding`` (the one
finding type, shared with the audits), made with ``finding``. ``MONITORS`` (``registry``) lists them in the order
they run. The methods are in ``docs/monitors.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ...findings import Finding
from ...stats.groups import FOUR_FIFTHS
from ..views import DeploymentData

if TYPE_CHECKING:
    from .config import MonitorConfig

__all__ = ["Monitor", "RunContext", "FOUR_FIFTHS", "finding", "span", "iso", "is_binary", "category_key"]


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


def iso(t: Any) -> str | None:
    """RFC 3339 UTC text of a time (None for None or NaT)."""
    if t is None:
        return None
    t = np.datetime64(t, "us")
    if np.isnat(t):
        return None
    return str(t) + "Z"


def span(view: DeploymentData, rows: np.ndarray) -> dict:
    """Window description of the rows (a bool mask or int positions) of a view."""
    idx = view.index[rows]
    times = view.time[rows]
    times = times[~np.isnat(times)]
    return {"first_index": int(idx[0]) if len(idx) else None, "last_index": int(idx[-1]) if len(idx) else None,
            "start": iso(times.min()) if len(times) else None, "end": iso(times.max()) if len(times) else None,
            "decisions": int(len(idx))}


def finding(view: DeploymentData, check: str, statistic: str, value: Any, threshold: Any, verdict: str, severity: str,
            window: dict, evidence: dict) -> Finding:
    """A monitor's ``Finding`` about ``view``'s (deployment, model): source ``monitor``, figures to 6 significant digits."""
    return Finding(check, statistic, value, threshold, verdict, severity, evidence=evidence, model=view.model,
                   deployment=view.deployment, window=window, source="monitor", digits=6)


def is_binary(view: DeploymentData) -> bool:
    """True when the card lists at most two classes."""
    return len(view.classes) <= 2


def category_key(v: Any) -> Any:
    """A hashable stand-in for a category value (None for missing, text for lists and dicts)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (list, dict)):
        return str(v)
    return v
