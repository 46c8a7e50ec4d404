"""The registry of monitors: name -> ``Monitor``, in the order they run (the contract is in ``common``)."""

from __future__ import annotations

from . import anomalies, disparity, drift, goodhart, performance
from .common import Monitor

__all__ = ["MONITORS"]

MONITORS: dict[str, Monitor] = {m.name: m for m in (performance.MONITOR, drift.MONITOR, disparity.MONITOR,
                                                      goodhart.MONITOR, anomalies.MONITOR)}
"""The monitors by name, in the order they run (iterating gives the names)."""
