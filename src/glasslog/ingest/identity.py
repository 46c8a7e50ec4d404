"""Who sent an OTLP request and what it names: the deployment a resource is logged in, registered models by the names
an application reports, span keys and times (split from ``glasslog.ingest.ingestor``, which documents the rules)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..access import Principal
from ..errors import AccessError
from ..registry import RegisteredModel, Registry

__all__ = ["ModelResolver", "deployment_for", "span_key", "nanos_to_time", "valid_ids"]


def span_key(trace_id: bytes, span_id: bytes) -> bytes:
    """The ``ingested`` key of a span: its trace id and span id (24 bytes)."""
    return trace_id + span_id


_SECONDS: dict[int, str] = {}


def nanos_to_time(ns: int) -> str | None:
    """Unix nanoseconds as an entry time (RFC 3339 UTC, microseconds), None for 0 or out of range."""
    if not ns or ns < 0 or ns > 253402300799 * 10**9:
        return None
    seconds, micros = divmod(ns // 1000, 1_000_000)
    prefix = _SECONDS.get(seconds)
    if prefix is None:  # the spans of a batch mostly share their seconds
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[seconds] = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{prefix}.{micros:06d}Z"


def valid_ids(trace_id: bytes, span_id: bytes) -> str | None:
    """Why a span's trace and span ids are not valid (text), or None when they are."""
    if len(trace_id) != 16 or trace_id == bytes(16):
        return "no valid trace id (16 bytes, not all zero: 32 hex digits in OTLP/JSON)"
    if len(span_id) != 8 or span_id == bytes(8):
        return "no valid span id (8 bytes, not all zero: 16 hex digits in OTLP/JSON)"
    return None


def deployment_for(principal: Principal, resource: dict[str, Any]) -> str:
    """The deployment a resource's telemetry is logged in (see module docstring).

    Raises:
        AccessError: not an operator key.
        ValueError: the resource names no deployment, or another one than the key is bound to.
    """
    if principal.role != "operator":
        raise AccessError(f"role {principal.role} may not send telemetry; it needs an operator key")
    named = resource.get("glasslog.deployment")
    named = named if isinstance(named, str) and named else None
    if principal.deployments:
        bound = principal.deployments[0]
        if named is not None and named != bound:
            raise ValueError(f"the key is bound to deployment {bound!r}, but the resource names {named!r}")
        return bound
    service = resource.get("service.name")
    name = named or (service if isinstance(service, str) and not service.startswith("unknown_service") else None)
    if not name:
        raise ValueError("no deployment: set the resource attribute glasslog.deployment or service.name, or send with an"
                         " operator key bound to the deployment")
    return name


class ModelResolver:
    """Reported model names to registered models (by fingerprint, ``name:version``, ``name@version`` or name)."""

    def __init__(self, registry: Registry, aliases: dict[str, str] | None = None):
        self.registry = registry
        self.aliases = dict(aliases or {})
        self._index: dict[str, RegisteredModel] = {}

    def _refresh(self) -> None:
        index: dict[str, RegisteredModel] = {}
        for m in self.registry.list():  # registration order: a later model of the same name wins the bare name
            index[m.card.name] = m
            index[f"{m.card.name}:{m.card.version}"] = m
            index[f"{m.card.name}@{m.card.version}"] = m
            index[m.fingerprint] = m
        self._index = index

    def resolve(self, *names: str | None, fingerprint: str | None = None) -> RegisteredModel | None:
        """The registered model named, or None."""
        self._refresh()
        if fingerprint:
            fp = fingerprint if fingerprint.startswith("sha256:") else "sha256:" + fingerprint
            if fp in self._index:
                return self._index[fp]
        for name in names:
            if not name:
                continue
            target = self.aliases.get(name)
            if target is not None and target in self._index:
                return self._index[target]
            if name in self._index:
                return self._index[name]
        return None
