"""Findings: what a monitor, an audit or a scenario actor concluded, and their ``finding`` entries.

``Finding`` is the one result type of ``glasslog.oversight.monitors`` and
``glasslog.audit``; ``finding_entry`` makes computed figures (numpy values,
NaN) JSON-ready and builds the entry with ``glasslog.records.finding_entry``,
the one builder of ``finding`` entries, which also checks its schema; a
finding is public, so its evidence holds aggregates only.

It sits beside ``glasslog.audit`` and ``glasslog.oversight`` rather than in
either, because both return findings and neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from . import records
from .errors import BadInputError
from .records import FINDING_SOURCES, SEVERITIES, VERDICTS

__all__ = ["ACCESS_LEVELS", "Finding", "FindingError", "SEVERITY_ORDER", "clean_json", "finding_entry", "worst_severity"]

SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}
"""``info`` < ``low`` < ``medium`` < ``high`` < ``critical``."""

ACCESS_LEVELS = ("labelled-data", "outputs", "black-box", "logs", "white-box")
"""What an audit check needed: a labelled data set; the outputs (and outcomes)
on the log; query access to the prediction API; the logged inputs; the weights."""

_MONITOR_FIELDS = ("check", "deployment", "model", "statistic", "value", "threshold", "verdict", "severity", "window",
                   "evidence")
_AUDIT_FIELDS = ("check", "statistic", "value", "threshold", "verdict", "severity", "summary", "access", "evidence",
                 "model", "deployment")


class FindingError(BadInputError):
    """Bad input naming one field: a finding with a field out of its vocabulary (and, as ``AuditInputError``, bad
    input to an audit); ``field`` names it, ``problem`` says what is wrong."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def clean_json(value: Any, digits: int | None = None) -> Any:
    """A JSON-ready copy: numpy scalars and arrays to Python, NaN and infinity to None, tuples to lists, times to
    RFC 3339 text; with ``digits``, floats rounded to that many significant digits."""
    if isinstance(value, dict):
        return {str(k): clean_json(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [clean_json(v, digits) for v in list(value)]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        if not math.isfinite(f):
            return None
        return float(f"{f:.{digits}g}") if digits else f
    if isinstance(value, (np.datetime64, datetime)):
        t = np.datetime64(value, "us")
        return None if np.isnat(t) else str(t) + "Z"
    return value


def worst_severity(severities: Iterable[str], default: str = "info") -> str:
    """The highest of ``severities`` (``default`` when there are none)."""
    return max(severities, key=SEVERITY_ORDER.__getitem__, default=default)


def finding_entry(*, source: str, check: str, statistic: str, verdict: str, severity: str, by_role: str, time: str,
                  value: Any = None, threshold: Any = None, model: str | None = None, deployment: str | None = None,
                  window: dict | None = None, evidence: dict | None = None, digits: int | None = None) -> dict[str, Any]:
    """The ``finding`` entry (a JSON object for ``Ledger.append``) of computed figures, built by
    ``glasslog.records.finding_entry`` once they are JSON-ready.

    Args:
        source: ``monitor``, ``audit`` or ``application`` (``glasslog.records.FINDING_SOURCES``).
        check, statistic, verdict, severity: as on ``Finding`` (the statistic is cut to 200 characters).
        by_role: who ran the check.
        time: RFC 3339 UTC time of the run.
        value, threshold: the figure and what it was held against (left out when None or not finite).
        model, deployment: what it is about (left out when not given).
        window: the decisions looked at (monitors).
        evidence: aggregates behind the verdict (never row-level data: the entry must stay under the entry limit).
        digits: significant digits of the floats (None: as computed).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return records.finding_entry(
        time=time, source=source, check=check, statistic=statistic[:200], verdict=verdict, severity=severity,
        by_role=by_role, value=clean_json(value, digits), threshold=clean_json(threshold, digits),
        model=model or None, deployment=deployment or None,
        window=None if window is None else clean_json(window, digits),
        evidence=None if evidence is None else clean_json(evidence, digits))


@dataclass
class Finding:
    """One conclusion of a monitor or an audit check.

    Attributes:
        check: what was checked, dotted, e.g. ``group.false_positive_rate``, ``drift.inputs``, ``anomaly.gap``.
        statistic: the measured quantity, e.g. ``accuracy`` or ``ratio of false positive rate by race (...)``.
        value: the statistic's value (a fraction, ratio, count or p-value), or None.
        threshold: the value it was held against, or None.
        verdict: ``alert``, ``ok`` or ``insufficient-data``.
        severity: ``info``, ``low``, ``medium``, ``high`` or ``critical``.
        summary: one plain sentence a reader can act on (audits; empty for monitors, whose ``evidence`` says it).
        access: what an audit check needed, one of ``ACCESS_LEVELS`` (None for monitors).
        evidence: JSON-ready figures behind the verdict (intervals, counts, per-group values; aggregates only).
        model: the model's fingerprint, when there is one.
        deployment: the deployment, when the data came from the log.
        window: the decisions a monitor looked at (``reference`` / ``current``: first and last index and time, count).
        source: ``audit`` or ``monitor``: who concluded it (the entry's ``source``; it also picks the fields of
            ``to_dict``).
        digits: significant digits of the floats in ``to_dict`` and the entry (monitors: 6; None: as computed).
    """

    check: str
    statistic: str
    value: float | None
    threshold: float | None
    verdict: str
    severity: str
    summary: str = ""
    access: str | None = None
    evidence: dict = field(default_factory=dict)
    model: str | None = None
    deployment: str | None = None
    window: dict | None = None
    source: str = "audit"
    digits: int | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise FindingError("verdict", f"must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")
        if self.severity not in SEVERITY_ORDER:
            raise FindingError("severity", f"must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        if self.source not in FINDING_SOURCES:
            raise FindingError("source", f"must be one of {', '.join(FINDING_SOURCES)}, got {self.source!r}")
        if self.access is not None and self.access not in ACCESS_LEVELS:
            raise FindingError("access", f"must be one of {', '.join(ACCESS_LEVELS)}, got {self.access!r}")

    @property
    def alert(self) -> bool:
        return self.verdict == "alert"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null): a monitor's finding with its window, an audit's with its summary and access."""
        names = _MONITOR_FIELDS if self.source == "monitor" else _AUDIT_FIELDS
        return {name: clean_json(getattr(self, name), self.digits) for name in names}

    def entry(self, by_role: str, time: str | None = None) -> dict[str, Any]:
        """The ``finding`` entry for the log (``finding_entry``); an audit's summary and access go into its evidence."""
        from .ledger import utc_now

        extra = {k: v for k, v in (("summary", self.summary), ("access", self.access)) if v}
        return finding_entry(source=self.source, check=self.check, statistic=self.statistic, verdict=self.verdict,
                             severity=self.severity, by_role=by_role, time=time or utc_now(), value=self.value,
                             threshold=self.threshold, model=self.model, deployment=self.deployment, window=self.window,
                             evidence={**extra, **self.evidence}, digits=self.digits)
