"""Oversight entries: flags and their ratings, monitors' and audits' findings, supervisors' triage actions and the
metrics a deployer reports; each with its one builder, its schema check and its vocabulary."""

from __future__ import annotations

from typing import Any

from ._base import _choice, _digest, _index, _name, _number, _require, _time, stamp

__all__ = ["FLAG_CATEGORIES", "FLAG_ROLES", "RATINGS", "FINDING_SOURCES", "VERDICTS", "SEVERITIES", "TRIAGE_ACTIONS",
           "flag_entry", "rating_entry", "finding_entry", "triage_entry", "metric_entry"]

FLAG_CATEGORIES = ("wrong-outcome", "wrong-reasons", "unfair", "harmful", "privacy", "other")
"""What a flag says: the wrong outcome; the right answer for the wrong reasons; unfair; harmful; privacy; other."""

FLAG_ROLES = ("public", "subject", "developer", "researcher", "supervisor", "operator", "monitor")
RATINGS = ("helpful", "somewhat", "not-helpful")
FINDING_SOURCES = ("monitor", "audit", "application")
"""``application``: an evaluation the deployer's application ran and reported (OTLP ``gen_ai.evaluation.result``)."""
VERDICTS = ("alert", "ok", "insufficient-data")
SEVERITIES = ("info", "low", "medium", "high", "critical")
TRIAGE_ACTIONS = ("assign", "resolve", "escalate", "reopen")


def _check_flag(obj: dict) -> None:
    """A report about a decision (``decision`` set) or a model; its text lives beside the log, committed in ``text``."""
    _time(obj)
    _choice(obj, "category", FLAG_CATEGORIES)
    _choice(obj, "by_role", FLAG_ROLES)
    _digest(obj, "model")
    _index(obj, "decision", optional=True)
    _digest(obj, "reporter", optional=True)
    _digest(obj, "text", optional=True)


def flag_entry(*, time: str, category: str, by_role: str, model: str, reporter: str | None = None,
               decision: int | None = None, text: str | None = None) -> dict[str, Any]:
    """The ``flag`` entry: a report about ``model`` or its decision at entry ``decision``.

    Args:
        category: one of ``FLAG_CATEGORIES``; by_role: the reporter's role, one of ``FLAG_ROLES``.
        reporter: the reporter's pseudonymous digest; text: the commitment to the report's text (kept beside the log).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("flag", _check_flag, {"time": time, "category": category, "by_role": by_role, "model": model,
                                       "reporter": reporter, "decision": decision, "text": text})


def _check_rating(obj: dict) -> None:
    """One rater's view of a flag; ``rater`` is a pseudonymous digest, so a rater is counted once per flag."""
    _time(obj)
    _index(obj, "flag")
    _choice(obj, "rating", RATINGS)
    _digest(obj, "rater")


def rating_entry(*, time: str, flag: int, rating: str, rater: str) -> dict[str, Any]:
    """The ``rating`` entry: ``rater`` (a pseudonymous digest) rates the flag at entry ``flag`` (``RATINGS``).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("rating", _check_rating, {"time": time, "flag": flag, "rating": rating, "rater": rater})


def _check_finding(obj: dict) -> None:
    """The result of a monitor or an audit: check, statistic, threshold, verdict, severity and evidence."""
    _time(obj)
    _choice(obj, "source", FINDING_SOURCES)
    _name(obj, "check")
    _digest(obj, "model", optional=True)
    if obj.get("deployment") is not None:
        _name(obj, "deployment")
    _name(obj, "statistic")
    _number(obj, "value", optional=True)
    _number(obj, "threshold", optional=True)
    _choice(obj, "verdict", VERDICTS)
    _choice(obj, "severity", SEVERITIES)
    _name(obj, "by_role")
    if "window" in obj:
        _require(obj, "window", dict)
    if "evidence" in obj:
        _require(obj, "evidence", dict)


def finding_entry(*, time: str, source: str, check: str, statistic: str, verdict: str, severity: str, by_role: str,
                  value: float | None = None, threshold: float | None = None, model: str | None = None,
                  deployment: str | None = None, window: dict | None = None,
                  evidence: dict | None = None) -> dict[str, Any]:
    """The ``finding`` entry: what a monitor, an audit or the application concluded.

    Values are taken as given (plain JSON; ``glasslog.findings.finding_entry`` first cleans numpy values and NaN).

    Args:
        source: one of ``FINDING_SOURCES``; verdict: ``VERDICTS``; severity: ``SEVERITIES``.
        check, statistic, by_role: printable text of at most 200 characters.
        value, threshold: the figure and what it was held against (finite numbers).
        model, deployment: what it is about; window: the decisions looked at; evidence: aggregates behind it.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("finding", _check_finding, {
        "time": time, "source": source, "check": check, "statistic": statistic, "verdict": verdict,
        "severity": severity, "by_role": by_role, "value": value, "threshold": threshold, "model": model,
        "deployment": deployment, "window": window, "evidence": evidence})


def _check_triage(obj: dict) -> None:
    """A supervisor's action on a flag or finding (by its entry index)."""
    _time(obj)
    _index(obj, "item")
    _choice(obj, "action", TRIAGE_ACTIONS)
    _require(obj, "reason", str)
    _name(obj, "key_id")
    if obj.get("assignee") is not None:
        _name(obj, "assignee")


def triage_entry(*, time: str, item: int, action: str, reason: str, key_id: str,
                 assignee: str | None = None) -> dict[str, Any]:
    """The ``triage`` entry: the supervisor with API key ``key_id`` did ``action`` (``TRIAGE_ACTIONS``) on the flag
    or finding at entry ``item``, for ``reason`` (``assignee`` for ``assign``).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("triage", _check_triage, {"time": time, "item": item, "action": action, "reason": reason,
                                           "key_id": key_id, "assignee": assignee})


def _check_metric(obj: dict) -> None:
    """A metric the deployer reports about a deployment (e.g. a proxy such as a survey score) for a period."""
    _time(obj)
    _digest(obj, "model")
    _name(obj, "deployment")
    _name(obj, "name")
    _number(obj, "value")
    if "window" in obj:
        _require(obj, "window", dict)


def metric_entry(*, time: str, model: str, deployment: str, name: str, value: float,
                 window: dict | None = None) -> dict[str, Any]:
    """The ``metric`` entry: a figure the deployer reports about ``deployment`` (running ``model``) for ``window``.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("metric", _check_metric, {"time": time, "model": model, "deployment": deployment, "name": name,
                                           "value": value, "window": window})
