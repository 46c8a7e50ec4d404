"""Decision entries: a model's decisions, their observed outcomes (and corrections), and erasures of private values;
each with its one builder and its schema check."""

from __future__ import annotations

from typing import Any

from ._base import ABSENT, INT_LIMIT, EntryError, _digest, _index, _name, _one_of, _reason, _require, _time, stamp

__all__ = ["decision_entry", "reported_decision_entry", "outcome_entry", "erasure_entry"]


def _check_decision(obj: dict) -> None:
    """A model's decision; ``foundation`` (optional) names the foundation model a head was built on (encoder path)."""
    _digest(obj, "model")
    _digest(obj, "foundation", optional=True)
    _name(obj, "deployment")
    _time(obj)
    _digest(obj, "input")
    _digest(obj, "subject", optional=True)
    _one_of(obj, "output", "output_commitment")
    if "runtime" in obj:
        _require(obj, "runtime", dict)
    if "out_of_domain" in obj:  # features outside the card's stated domain, scored under its input policy 'flag'
        names = _require(obj, "out_of_domain", list)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise EntryError("must be a non-empty list of feature names", field="out_of_domain")


def decision_entry(*, model: str, deployment: str, time: str, input: str, output: Any = ABSENT,
                   output_commitment: str | None = None, foundation: str | None = None, subject: str | None = None,
                   runtime: dict | None = None, out_of_domain: list[str] | None = None) -> dict[str, Any]:
    """The ``decision`` entry: what ``model`` decided in ``deployment``.

    Args:
        input, subject: commitments (``sha256:<64 hex>``) to the input and the subject's identifier.
        output: the output in the clear (public-service; any JSON value, null included), or
        output_commitment: its commitment (private deployments); exactly one of the two.
        foundation: the foundation model's fingerprint (encoder heads).
        runtime: library versions the decision ran with.
        out_of_domain: feature names outside the card's stated domain (scored under input policy ``flag``).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("decision", _check_decision, {
        "model": model, "foundation": foundation, "deployment": deployment, "time": time, "input": input,
        "subject": subject, "output_commitment": output_commitment, "runtime": runtime,
        "out_of_domain": out_of_domain}, {"output": output})


def reported_decision_entry(*, model: str, deployment: str, time: str, input: str, source: str, operation: str,
                            captured: dict, reported_model: dict, output: Any = ABSENT,
                            output_commitment: str | None = None, span: dict | None = None,
                            convention: str | None = None, provider: str | None = None, service: str | None = None,
                            encoding_formats: list[str] | None = None, tokens: dict | None = None) -> dict[str, Any]:
    """The ``decision`` entry of an operation an application reported (``glasslog.ingest.embeddings``: an OTLP
    ``embeddings`` span), checked as any decision; the reported fields are kept as given (None left out).

    Args:
        input: the commitment to the input (the texts, or what is known when they were not captured).
        source, operation: e.g. ``otlp``, ``embeddings``; captured: ``{"input": bool}``.
        reported_model: ``{"request": name, "response": name}`` as reported.
        output / output_commitment: as for ``decision_entry``.
        span, convention, provider, service, encoding_formats, tokens: as reported.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("decision", _check_decision, {
        "model": model, "deployment": deployment, "time": time, "input": input, "source": source,
        "operation": operation, "captured": captured, "reported_model": reported_model, "span": span,
        "convention": convention, "output_commitment": output_commitment, "provider": provider, "service": service,
        "encoding_formats": encoding_formats, "tokens": tokens}, {"output": output})


def _check_outcome(obj: dict) -> None:
    decision = _require(obj, "decision", int)
    if decision < 0:
        raise EntryError("must be a decision's index (>= 0)", field="decision")
    _one_of(obj, "outcome", "outcome_commitment")
    _time(obj)
    if "corrects" in obj or "reason" in obj:  # a correction: the decision's latest outcome entry, and why
        corrects = _require(obj, "corrects", int)
        if not 0 <= corrects < INT_LIMIT:
            raise EntryError("must be an outcome entry's index (>= 0)", field="corrects")
        _reason(obj)


def outcome_entry(*, decision: int, time: str, outcome: Any = ABSENT, outcome_commitment: str | None = None,
                  corrects: int | None = None, reason: str | None = None) -> dict[str, Any]:
    """The ``outcome`` entry: what was observed for the decision at entry ``decision``.

    Args:
        outcome: the outcome in the clear (any JSON value, null included), or
        outcome_commitment: its commitment (a private deployment's decision); exactly one of the two.
        corrects, reason: a correction: the decision's latest outcome entry, and why (public text, 1000 characters
            at most).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("outcome", _check_outcome, {"decision": decision, "time": time,
                                             "outcome_commitment": outcome_commitment, "corrects": corrects,
                                             "reason": reason}, {"outcome": outcome})


def _check_erasure(obj: dict) -> None:
    """A private value erased beside the log (``Ledger.erase_private``): its commitment, kind, the entry holding it
    (optional), when, and the public reason (the request it answers); never the value."""
    _time(obj)
    _digest(obj, "commitment")
    _name(obj, "kind")
    _index(obj, "entry", optional=True)
    _reason(obj)


def erasure_entry(*, time: str, commitment: str, kind: str, reason: str, entry: int | None = None) -> dict[str, Any]:
    """The ``erasure`` entry: the private value behind ``commitment`` (of ``kind``, held for entry ``entry``) was
    erased beside the log, for the public ``reason``.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("erasure", _check_erasure, {"time": time, "commitment": commitment, "kind": kind, "reason": reason,
                                             "entry": entry})
