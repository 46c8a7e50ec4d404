"""Registry entries: models (registered, status changed), deployments, weight downloads (``access``), API keys and
the log's witnesses; each with its one builder and its schema check."""

from __future__ import annotations

import re
from typing import Any

from ._base import EntryError, _choice, _digest, _name, _require, _time, stamp

__all__ = ["MODEL_STATUSES", "DEPLOYMENT_VISIBILITY", "DEPLOYMENT_EMBEDDINGS", "ACCESS_ACTIONS", "KEY_EVENTS", "WITNESS_EVENTS",
           "model_entry", "deployment_entry", "access_entry", "key_entry", "witness_entry"]

MODEL_STATUSES = ("active", "suspended", "withdrawn")
DEPLOYMENT_VISIBILITY = ("public-service", "private")
"""``public-service``: decisions' outputs are public; ``private``: outputs and
outcomes are logged as commitments, the public sees counts only."""
DEPLOYMENT_EMBEDDINGS = ("skip", "decision")
"""What a deployment's reported ``embeddings`` operations (OTLP GenAI spans) become: ``skip`` (not logged; the
default, not written on the entry) or ``decision`` (one decision entry per span). Fixed at declaration."""
ACCESS_ACTIONS = ("weights-download",)
KEY_EVENTS = ("issue", "revoke")
WITNESS_EVENTS = ("add", "remove")


def _check_model(obj: dict) -> None:
    event = _require(obj, "event", str)
    _digest(obj, "model")
    _time(obj)
    if event == "register":
        _require(obj, "card", dict)
        _require(obj, "status", str)
    elif event == "status":
        _require(obj, "status", str)
        _require(obj, "reason", str)
    else:
        raise EntryError(f"must be 'register' or 'status', got {event!r}", field="event")
    status = obj["status"]
    if status not in MODEL_STATUSES:
        raise EntryError(f"must be active, suspended or withdrawn, got {status!r}", field="status")


def model_entry(*, event: str, model: str, status: str, time: str, card: dict | None = None,
                reason: str | None = None, trusted: list[str] | None = None,
                artifact: dict | None = None) -> dict[str, Any]:
    """The ``model`` entry: a registration (``event="register"``, with ``card``; ``trusted`` the types a loader must
    trust, ``artifact`` a model directory's file manifest) or a status change (``event="status"``, with ``reason``).

    Args:
        model: the fingerprint, ``sha256:<64 hex>``.
        status: ``active``, ``suspended`` or ``withdrawn`` (``MODEL_STATUSES``).
        time: RFC 3339 UTC.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("model", _check_model, {"event": event, "model": model, "card": card, "status": status,
                                         "reason": reason, "trusted": trusted, "artifact": artifact, "time": time})


def _check_deployment(obj: dict) -> None:
    _name(obj, "deployment")
    visibility = _require(obj, "visibility", str)
    if visibility not in DEPLOYMENT_VISIBILITY:
        raise EntryError(f"must be one of {', '.join(DEPLOYMENT_VISIBILITY)}, got {visibility!r}", field="visibility")
    _require(obj, "description", str)
    _choice(obj, "embeddings", DEPLOYMENT_EMBEDDINGS, optional=True)
    _time(obj)


def deployment_entry(*, deployment: str, visibility: str, description: str, time: str,
                     embeddings: str | None = None) -> dict[str, Any]:
    """The ``deployment`` entry declaring a deployment (``visibility`` one of ``DEPLOYMENT_VISIBILITY``; ``embeddings``
    one of ``DEPLOYMENT_EMBEDDINGS``, None for the default ``skip``).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("deployment", _check_deployment,
                 {"deployment": deployment, "visibility": visibility, "description": description, "embeddings": embeddings,
                  "time": time})


def _check_access(obj: dict) -> None:
    action = _require(obj, "action", str)
    if action not in ACCESS_ACTIONS:
        raise EntryError(f"must be one of {', '.join(ACCESS_ACTIONS)}, got {action!r}", field="action")
    _digest(obj, "model")
    _name(obj, "role")
    _name(obj, "key_id")
    _time(obj)


def access_entry(*, action: str, model: str, role: str, key_id: str, time: str) -> dict[str, Any]:
    """The ``access`` entry: ``role`` (with API key ``key_id``, or ``anonymous``) did ``action`` on ``model``
    (``ACCESS_ACTIONS``: a weights download).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("access", _check_access, {"action": action, "model": model, "role": role, "key_id": key_id,
                                           "time": time})


def _check_key(obj: dict) -> None:
    event = _require(obj, "event", str)
    if event not in KEY_EVENTS:
        raise EntryError(f"must be 'issue' or 'revoke', got {event!r}", field="event")
    _name(obj, "key_id")
    _name(obj, "role")
    _name(obj, "name")
    _time(obj)


def key_entry(*, event: str, key_id: str, role: str, name: str, time: str) -> dict[str, Any]:
    """The ``key`` entry: an API key issued or revoked (``KEY_EVENTS``), with its id, role and holder's name.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("key", _check_key, {"event": event, "key_id": key_id, "role": role, "name": name, "time": time})


def _check_witness(obj: dict) -> None:
    """A witness the log asks to cosign its checkpoints (C2SP tlog-witness), added or removed: its URL and its
    cosignature/v1 verifier key (``name+keyhash+base64``)."""
    event = _require(obj, "event", str)
    if event not in WITNESS_EVENTS:
        raise EntryError(f"must be 'add' or 'remove', got {event!r}", field="event")
    url = _require(obj, "url", str)
    if not re.match(r"^https?://[^\s/]+", url) or len(url) > 500 or not url.isprintable():
        raise EntryError("must be an http:// or https:// URL", field="url")
    key = _require(obj, "key", str)
    if not re.fullmatch(r"[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*", key):
        raise EntryError("must be a verifier key name+keyhash+base64", field="key")
    _time(obj)


def witness_entry(*, event: str, url: str, key: str, time: str) -> dict[str, Any]:
    """The ``witness`` entry: a witness added or removed (``WITNESS_EVENTS``), its URL and verifier key.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("witness", _check_witness, {"event": event, "url": url, "key": key, "time": time})
