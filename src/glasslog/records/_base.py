"""What every entry type's schema check and builder share: the error, the schema version, times, field checks.

Private to ``glasslog.records``: the family modules (``registry``, ``decisions``, ``oversight``, ``generation``)
build on these; other packages use ``glasslog.records``' public names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..errors import BadInputError

SCHEMA_VERSION = 1
"""Version of the entry schemas this code writes; stored in every entry as ``v``."""

INT_LIMIT = 2**53 - 1
"""RFC 8785 / I-JSON: integers must be exact as IEEE 754 doubles."""

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT", "__slots__": ()})()
"""Default of a builder's free-form JSON value (a decision's output, an outcome) whose null is a value: left out."""


class EntryError(BadInputError):
    """An entry is malformed, not canonical, or fails its type's schema.

    ``field`` names the offending field (dotted path) when there is one, ``index`` the entry's place in its batch,
    ``detail`` the problem without them.
    """

    def __init__(self, message: str, field: str | None = None, index: int | None = None):
        self.detail = message
        self.field = field
        self.index = index
        where = []
        if index is not None:
            where.append(f"entry {index} of the batch")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def utc_now() -> str:
    """Current time as RFC 3339 UTC with microseconds, e.g. ``2026-11-29T08:00:00.123456Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """Parse an entry time (RFC 3339, UTC, ``Z`` suffix) into an aware datetime.

    Raises:
        ValueError: the string is not in that form.
    """
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(f"time must be RFC 3339 UTC like 2026-11-29T08:00:00Z, got {value!r}")
    base, _, frac = value[:-1].partition(".")
    try:
        dt = datetime.fromisoformat(base).replace(tzinfo=timezone.utc)  # the regex fixed the form; this checks the ranges
    except ValueError:
        raise ValueError(f"time {value!r} is not a valid date and time") from None
    if frac:
        dt = dt.replace(microsecond=int((frac + "000000")[:6]))
    return dt


def stamp(kind: str, check: Callable[[dict], None], fields: dict[str, Any],
          values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The entry ``{"type": kind, "v": SCHEMA_VERSION, **fields, **values}`` (``fields`` that are None and ``values``
    that are ``ABSENT`` left out: a value's null is kept), validated as ``glasslog.records.check_entry`` does:
    ``check`` (the type's schema), then every field finite.

    Raises:
        EntryError: naming the field that fails.
    """
    entry: dict[str, Any] = {"type": kind, "v": SCHEMA_VERSION}
    entry.update((k, v) for k, v in fields.items() if v is not None)
    if values:
        entry.update((k, v) for k, v in values.items() if v is not ABSENT)
    check(entry)
    for key, value in entry.items():
        _finite(value, key)
    return entry


def _require(obj: dict, key: str, kind: type | tuple, where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in obj:
        raise EntryError("is required", field=name)
    value = obj[key]
    if kind is int and isinstance(value, bool):
        raise EntryError("must be an integer", field=name)
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise EntryError(f"must be {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}", field=name)
    return value


def _digest(obj: dict, key: str, optional: bool = False) -> None:
    if optional and obj.get(key) is None:
        return
    value = _require(obj, key, str)
    if not _DIGEST.match(value):
        raise EntryError("must be 'sha256:' followed by 64 lowercase hex digits", field=key)


def _time(obj: dict, key: str = "time") -> None:
    value = _require(obj, key, str)
    try:
        parse_time(value)
    except ValueError as exc:
        raise EntryError(str(exc), field=key) from None


def _finite(value: Any, field: str) -> None:
    """Reject NaN, infinity and integers beyond +-(2**53 - 1) anywhere in ``value``, naming the field."""
    kind = type(value)
    if kind is str or kind is bool or value is None:  # most values: nothing to check (it runs for every field)
        return
    if kind is dict:  # the field's name is only built for values that need a look
        for k, v in value.items():
            if type(v) is not str:
                _finite(v, f"{field}.{k}")
        return
    if kind is list:
        for i, v in enumerate(value):
            if type(v) is not str:
                _finite(v, f"{field}[{i}]")
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise EntryError("NaN and infinity are not allowed", field=field)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_LIMIT:
        raise EntryError("integers must be within +-2**53", field=field)
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{field}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{field}[{i}]")


def _one_of(obj: dict, public: str, committed: str) -> None:
    """Exactly one of a public value and a commitment to it (private deployments)."""
    has_public, has_commitment = public in obj, committed in obj
    if has_public == has_commitment:
        raise EntryError(f"exactly one of '{public}' (public) and '{committed}' (commitment) is required", field=public)
    if has_public:
        _finite(obj[public], public)
    else:
        _digest(obj, committed)


def _name(obj: dict, key: str) -> None:
    value = _require(obj, key, str)
    if not value:
        raise EntryError("must not be empty", field=key)
    if not value.isprintable() or len(value) > 200:
        raise EntryError("must be printable text of at most 200 characters", field=key)


def _choice(obj: dict, key: str, choices: tuple, optional: bool = False) -> None:
    if optional and obj.get(key) is None:
        return
    value = _require(obj, key, str)
    if value not in choices:
        raise EntryError(f"must be one of {', '.join(choices)}, got {value!r}", field=key)


def _index(obj: dict, key: str, optional: bool = False) -> None:
    if optional and obj.get(key) is None:
        return
    if _require(obj, key, int) < 0:
        raise EntryError("must be an entry index (>= 0)", field=key)


def _number(obj: dict, key: str, optional: bool = False) -> None:
    if optional and obj.get(key) is None:
        return
    value = _require(obj, key, (int, float))
    if isinstance(value, bool):
        raise EntryError("must be a number", field=key)
    _finite(value, key)


def _reason(obj: dict, key: str = "reason") -> None:
    """Public text saying why (a correction, an erasure): non-empty, at most 1000 characters."""
    reason = _require(obj, key, str)
    if not reason.strip() or len(reason) > 1000:
        raise EntryError("must be non-empty text of at most 1000 characters", field=key)
