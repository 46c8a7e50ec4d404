"""Findings: what an audit check concluded, with its evidence and severity, and how it goes on the log.

Every audit function in ``glasslog.audit`` returns a result object with a
``findings`` list of :class:`Finding`. A finding becomes a ``finding`` entry
(``source`` = ``audit``) with :func:`record_findings`: all findings of one
audit in one atomic append. A supervisor can then suspend the model citing a
finding's entry index with :func:`suspend_from_finding` (one ``model`` status
entry through the registry, the kill switch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BadInputError
from ..ledger import Ledger, utc_now
from ..ledger.entries import SEVERITIES, VERDICTS
from ..ledger.log import AppendResult

__all__ = [
    "ACCESS_LEVELS",
    "AuditInputError",
    "Finding",
    "SEVERITY_ORDER",
    "record_findings",
    "suspend_from_finding",
    "wilson_interval",
    "clean_json",
    "severity_at_least",
]

SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}
"""``info`` < ``low`` < ``medium`` < ``high`` < ``critical``."""

ACCESS_LEVELS = ("labelled-data", "outputs", "black-box", "logs", "white-box")
"""What a check needed: a labelled data set; the outputs (and outcomes) on the
log; query access to the prediction API; the logged inputs; the weights."""


class AuditInputError(BadInputError):
    """Bad input to an audit: ``field`` names the argument or column, the message says what is wrong."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def clean_json(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars and arrays to Python, NaN and infinity to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [clean_json(v) for v in list(value)]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def severity_at_least(severity: str, floor: str) -> bool:
    """True if ``severity`` is ``floor`` or worse (order ``SEVERITIES``).

    Raises:
        AuditInputError: either is not a known severity.
    """
    for name, value in (("severity", severity), ("floor", floor)):
        if value not in SEVERITY_ORDER:
            raise AuditInputError(name, f"must be one of {', '.join(SEVERITIES)}, got {value!r}")
    return SEVERITY_ORDER[severity] >= SEVERITY_ORDER[floor]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (Wilson 1927, JASA 22:209), as fractions.

    Returns ``(0.0, 1.0)`` when ``n`` is 0.
    """
    from scipy.stats import norm

    if n <= 0:
        return (0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Finding:
    """One conclusion of an audit check.

    Attributes:
        check: what was checked, dotted, e.g. ``group.false_positive_rate``, ``leakage.label_proxy``.
        statistic: the measured quantity in words, e.g. ``min/max ratio of false positive rate by race``.
        value: the statistic's value (a fraction, ratio or count), or None.
        threshold: the value at which the check alerts, or None.
        verdict: ``alert``, ``ok`` or ``insufficient-data``.
        severity: ``info``, ``low``, ``medium``, ``high`` or ``critical``.
        summary: one plain sentence a reader can act on.
        access: what the check needed, one of ``ACCESS_LEVELS``.
        evidence: JSON-ready numbers behind the statistic (intervals, counts, per-group values).
        model: the audited model's fingerprint, when there is one.
        deployment: the deployment audited, when the data came from the log.
    """

    check: str
    statistic: str
    value: float | None
    threshold: float | None
    verdict: str
    severity: str
    summary: str
    access: str
    evidence: dict = field(default_factory=dict)
    model: str | None = None
    deployment: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise AuditInputError("verdict", f"must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")
        if self.severity not in SEVERITY_ORDER:
            raise AuditInputError("severity", f"must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        if self.access not in ACCESS_LEVELS:
            raise AuditInputError("access", f"must be one of {', '.join(ACCESS_LEVELS)}, got {self.access!r}")

    @property
    def alert(self) -> bool:
        return self.verdict == "alert"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as null)."""
        return clean_json(vars(self).copy())

    def to_entry(self, by_role: str, time: str | None = None) -> dict[str, Any]:
        """The ``finding`` entry (``source`` = ``audit``) for this finding.

        ``evidence`` holds the summary, the access level and the evidence
        numbers; the entry must stay under the 65,535-byte entry limit, so
        evidence is kept to summaries, never row-level data.
        """
        entry: dict[str, Any] = {
            "type": "finding", "v": 1, "time": time or utc_now(), "source": "audit", "check": self.check,
            "statistic": self.statistic[:200], "verdict": self.verdict, "severity": self.severity, "by_role": by_role,
            "evidence": clean_json({"summary": self.summary, "access": self.access, **self.evidence}),
        }
        value, threshold = clean_json(self.value), clean_json(self.threshold)
        if value is not None:
            entry["value"] = value
        if threshold is not None:
            entry["threshold"] = threshold
        if self.model:
            entry["model"] = self.model
        if self.deployment:
            entry["deployment"] = self.deployment
        return entry


def record_findings(ledger: Ledger, findings: Iterable[Finding], by_role: str, *, model: str | None = None,
                    deployment: str | None = None, only_alerts: bool = False) -> AppendResult | None:
    """Append findings as ``finding`` entries, all in one atomic batch.

    Args:
        ledger: the log.
        findings: the findings to record.
        by_role: who ran the audit (``supervisor``, ``researcher``, ``developer``, ``public`` ...).
        model, deployment: filled into findings that do not name one.
        only_alerts: record only findings whose verdict is ``alert``.

    Returns:
        The append result (its ``indexes`` are the findings' entry indexes, in
        order), or None when there was nothing to record.

    Raises:
        glasslog.ledger.EntryError: a finding does not fit the entry schema
            (nothing is written).
    """
    time = utc_now()
    entries = []
    for f in findings:
        if only_alerts and not f.alert:
            continue
        if model and not f.model:
            f.model = model
        if deployment and not f.deployment:
            f.deployment = deployment
        entries.append(f.to_entry(by_role, time))
    if not entries:
        return None
    return ledger.append(entries)


def suspend_from_finding(ledger: Ledger, finding_index: int, *, reason: str | None = None,
                         by: str = "supervisor") -> AppendResult:
    """Suspend the model a recorded finding is about (the kill switch), citing the finding.

    One ``model`` status entry (``suspended``) through ``Registry.set_status``,
    whose reason names the finding's entry index, check, statistic and
    severity. This is the one path by which a finding suspends a model; the
    triage queue's "escalate" can call it too.

    Args:
        ledger: the log.
        finding_index: entry index of a ``finding`` entry that names a model.
        reason: extra words for the record (appended to the citation).
        by: who suspends; only ``supervisor`` may (the supervisory authority).

    Raises:
        PermissionError: ``by`` is not ``supervisor``.
        AuditInputError: no such entry, not a finding, or it names no model.
        glasslog.registry.RegistryError: the model is unknown, already
            suspended, or withdrawn.
    """
    import json

    from ..registry import Registry

    if by != "supervisor":
        raise PermissionError(f"only a supervisor may suspend a model; role {by!r} may not")
    if isinstance(finding_index, bool) or not isinstance(finding_index, int) or finding_index < 0:
        raise AuditInputError("finding_index", f"must be an entry index (>= 0), got {finding_index!r}")
    try:
        entry = json.loads(ledger.entry(finding_index))
    except IndexError:
        raise AuditInputError("finding_index", f"no entry {finding_index} in the log (tree size {ledger.size})") from None
    if entry.get("type") != "finding":
        raise AuditInputError("finding_index", f"entry {finding_index} is a {entry.get('type')!r} entry, not a finding")
    if not entry.get("model"):
        raise AuditInputError("finding_index", f"finding {finding_index} names no model, so there is nothing to suspend")
    value = entry.get("value")
    cited = (f"audit finding entry {finding_index}: {entry['check']} ({entry['statistic']}"
             + (f" = {value:.4g}" if isinstance(value, (int, float)) else "") + f"), severity {entry['severity']}")
    text = cited + (f"; {reason.strip()}" if reason and reason.strip() else "")
    return Registry(ledger).set_status(entry["model"], "suspended", text)


def worst(findings: Sequence[Finding]) -> str:
    """The highest severity among alerting findings (``info`` when none alerts)."""
    alerts = [f.severity for f in findings if f.alert]
    return max(alerts, key=SEVERITY_ORDER.__getitem__) if alerts else "info"
