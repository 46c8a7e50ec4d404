"""Typed entry records: the one way to build each log entry, its schema check and its vocabulary.

A layer below the ledger: it imports only ``glasslog.errors`` and the standard library, and ``glasslog.ledger``
calls ``check_entry`` for the type schema of every entry it accepts (the ledger keeps the envelope: canonical JSON,
size limit, ``Entry``). One module per family:

- ``registry``: ``model``, ``deployment``, ``access``, ``key``, ``witness``;
- ``decisions``: ``decision`` (made by a registered model, or reported), ``outcome``, ``erasure``;
- ``oversight``: ``flag``, ``rating``, ``finding``, ``triage``, ``metric``;
- ``generation``: ``generation`` (captured or reported), ``watermark``.

Each builder is a keyword-only function ``<type>_entry(...)`` that stamps ``type`` and ``v`` (``SCHEMA_VERSION``),
leaves out optional fields given as None, and returns the entry object validated (``EntryError`` naming the field
otherwise). Private values (model inputs, subject identifiers) never appear in an entry, only their commitments
(``glasslog.ledger.commitments``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._base import ABSENT, INT_LIMIT, SCHEMA_VERSION, EntryError, _finite, _require, parse_time, utc_now
from .decisions import (
    _check_decision,
    _check_erasure,
    _check_outcome,
    decision_entry,
    erasure_entry,
    outcome_entry,
    reported_decision_entry,
)
from .generation import (
    ACTIVATION_SCHEME,
    REPORTED_OPERATIONS,
    REPORTED_SOURCES,
    WATERMARK_EVENTS,
    _check_generation,
    _check_watermark,
    generation_entry,
    reported_generation_entry,
    watermark_entry,
)
from .oversight import (
    FINDING_SOURCES,
    FLAG_CATEGORIES,
    FLAG_ROLES,
    RATINGS,
    SEVERITIES,
    TRIAGE_ACTIONS,
    VERDICTS,
    _check_finding,
    _check_flag,
    _check_metric,
    _check_rating,
    _check_triage,
    finding_entry,
    flag_entry,
    metric_entry,
    rating_entry,
    triage_entry,
)
from .registry import (
    ACCESS_ACTIONS,
    DEPLOYMENT_EMBEDDINGS,
    DEPLOYMENT_VISIBILITY,
    KEY_EVENTS,
    MODEL_STATUSES,
    WITNESS_EVENTS,
    _check_access,
    _check_deployment,
    _check_key,
    _check_model,
    _check_witness,
    access_entry,
    deployment_entry,
    key_entry,
    model_entry,
    witness_entry,
)

__all__ = [
    "SCHEMA_VERSION", "INT_LIMIT", "ENTRY_TYPES", "ABSENT", "EntryError", "check_entry", "utc_now", "parse_time",
    "model_entry", "deployment_entry", "access_entry", "key_entry", "witness_entry",
    "decision_entry", "reported_decision_entry", "outcome_entry", "erasure_entry",
    "flag_entry", "rating_entry", "finding_entry", "triage_entry", "metric_entry",
    "generation_entry", "reported_generation_entry", "watermark_entry",
    "MODEL_STATUSES", "DEPLOYMENT_VISIBILITY", "DEPLOYMENT_EMBEDDINGS", "ACCESS_ACTIONS", "KEY_EVENTS", "WITNESS_EVENTS",
    "FLAG_CATEGORIES", "FLAG_ROLES", "RATINGS", "FINDING_SOURCES", "VERDICTS", "SEVERITIES", "TRIAGE_ACTIONS",
    "ACTIVATION_SCHEME", "REPORTED_SOURCES", "REPORTED_OPERATIONS", "WATERMARK_EVENTS",
]

ENTRY_TYPES: dict[str, Callable[[dict], None]] = {
    "model": _check_model,
    "deployment": _check_deployment,
    "decision": _check_decision,
    "outcome": _check_outcome,
    "access": _check_access,
    "key": _check_key,
    "witness": _check_witness,
    "flag": _check_flag,
    "rating": _check_rating,
    "finding": _check_finding,
    "triage": _check_triage,
    "metric": _check_metric,
    "generation": _check_generation,
    "watermark": _check_watermark,
    "erasure": _check_erasure,
}
"""Entry types known to this version, with their schema checks."""


def check_entry(obj: Any) -> None:
    """Check a JSON object against its type's schema (``ENTRY_TYPES``) and version, and every field for NaN,
    infinity and integers beyond +-2**53.

    Raises:
        EntryError: not an object, unknown type, other version, or a field failing the schema (named).
    """
    if not isinstance(obj, dict):
        raise EntryError(f"an entry must be a JSON object, got {type(obj).__name__}")
    kind = _require(obj, "type", str)
    version = _require(obj, "v", int)
    if kind not in ENTRY_TYPES:
        raise EntryError(f"unknown entry type {kind!r}; known: {', '.join(sorted(ENTRY_TYPES))}", field="type")
    if version != SCHEMA_VERSION:
        raise EntryError(f"unsupported schema version {version} (this glasslog writes {SCHEMA_VERSION})", field="v")
    ENTRY_TYPES[kind](obj)
    for key, value in obj.items():  # every field, not only the ones the type's schema looks into
        _finite(value, str(key))
