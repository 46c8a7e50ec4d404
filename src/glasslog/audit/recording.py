"""Recording audit findings on the log, and acting on them (suspension); bad audit input.

Every audit function in ``glasslog.audit`` returns a result object with a
``findings`` list of :class:`glasslog.findings.Finding` (the one finding type,
shared with the monitors). A finding becomes a ``finding`` entry
(``source`` = ``audit``) with :func:`record_findings`: all findings of one
audit in one atomic append. A supervisor can then suspend the model citing a
finding's entry index with :func:`suspend_from_finding` (one ``model`` status
entry through the registry, the kill switch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..findings import SEVERITY_ORDER, Finding, FindingError, worst_severity
from ..ledger import Ledger, utc_now
from ..ledger.log import AppendResult
from ..records import SEVERITIES

__all__ = ["AuditInputError", "record_findings", "suspend_from_finding", "severity_at_least"]


class AuditInputError(FindingError):
    """Bad input to an audit: ``field`` names the argument or column, ``problem`` (and the message) what is wrong."""


def severity_at_least(severity: str, floor: str) -> bool:
    """True if ``severity`` is ``floor`` or worse (order ``SEVERITIES``).

    Raises:
        AuditInputError: either is not a known severity.
    """
    for name, value in (("severity", severity), ("floor", floor)):
        if value not in SEVERITY_ORDER:
            raise AuditInputError(name, f"must be one of {', '.join(SEVERITIES)}, got {value!r}")
    return SEVERITY_ORDER[severity] >= SEVERITY_ORDER[floor]


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
        entries.append(f.entry(by_role, time))
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
    return worst_severity(f.severity for f in findings if f.alert)
