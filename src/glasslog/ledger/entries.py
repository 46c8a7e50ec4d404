"""Log entries' envelope: canonical JSON (RFC 8785) objects with a ``type`` and a schema version, at most 65,535 bytes.

An entry's bytes are the RFC 8785 (JSON Canonicalization Scheme) serialisation
of a JSON object, produced and checked with the ``rfc8785`` library, so the
same record always has the same leaf hash. What each entry type holds, its
schema check and the one way to build it live in ``glasslog.records``
(``check_entry``); this module keeps the envelope.

Private values (model inputs, subject identifiers) never appear in an entry;
entries hold their commitments (see ``glasslog.ledger.commitments``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import rfc8785

from ..records import INT_LIMIT, EntryError, check_entry

__all__ = ["MAX_ENTRY_BYTES", "Entry", "canonical_json"]

MAX_ENTRY_BYTES = 65535
"""Largest entry accepted, in bytes (the tlog-tiles entry bundle limit); large payloads belong beside the log."""

def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON.

    ``rfc8785`` is the authority; values that provably serialise the same way
    with Python's compact sorted ``json.dumps`` take that path instead (about
    10x faster; see ``_json_ready``), everything else goes to ``rfc8785``.

    Raises:
        EntryError: NaN or infinity, integers beyond +-2**53, non-string keys,
            or types JSON cannot represent.
    """
    ready = _json_ready(value, 0)
    if ready is not _UNSURE:
        try:
            return _DUMPS(ready).encode("utf-8")
        except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
            pass  # a lone surrogate, say: rfc8785 decides
    try:
        return rfc8785.dumps(value)
    except rfc8785.FloatDomainError as exc:
        raise EntryError(f"{exc}: NaN and infinity are not allowed") from None
    except rfc8785.IntegerDomainError as exc:
        raise EntryError(f"{exc}: integers must be within +-2**53") from None
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise EntryError(f"not representable as canonical JSON: {exc}") from None


_UNSURE = object()
_DUMPS = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode
_SAFE_INT = 2**53


def _json_ready(value: Any, depth: int) -> Any:
    r"""``value`` made ready for ``json.dumps`` to write its RFC 8785 form, or ``_UNSURE``.

    Python's compact, key-sorted ``json.dumps`` with ``ensure_ascii=False``
    escapes strings exactly as RFC 8785 section 3.2.2.2 (ECMAScript
    JSON.stringify) does: ``\"``, ``\\``, ``\b \f \n \r \t`` and
    ``\u00xx`` (lowercase hex) for the other control characters; it orders
    ASCII keys as RFC 8785 section 3.2.3 does (by UTF-16 code units, which for
    ASCII is by code point). Numbers are where the two differ: integral floats
    below 2**53 are written by ECMAScript as the integer (exact there, so
    converted to ``int`` here), and other floats only agree with Python's
    ``repr`` in plain decimal form, 1e-4 <= |x| < 1e16, both being the
    shortest round-trip digits. Anything else (non-ASCII keys, other floats,
    integers beyond 2**53, NaN, other types, deep nesting) is ``_UNSURE``.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -_SAFE_INT < value < _SAFE_INT else _UNSURE
    if kind is float:
        if value.is_integer():
            return int(value) if -_SAFE_INT < value < _SAFE_INT else _UNSURE
        magnitude = abs(value)
        return value if 1e-4 <= magnitude < 1e16 else _UNSURE  # also refuses NaN and infinity
    if depth > 64:
        return _UNSURE
    if kind is dict:  # copied only if a value inside had to change (an integral float): most are written as they are
        out = None
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                return _UNSURE
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            ready = _json_ready(v, depth + 1)
            if ready is _UNSURE:
                return _UNSURE
            if ready is not v:
                if out is None:
                    out = dict(value)
                out[k] = ready
        return value if out is None else out
    if kind is list:
        out_list = None
        for i, v in enumerate(value):
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            ready = _json_ready(v, depth + 1)
            if ready is _UNSURE:
                return _UNSURE
            if ready is not v:
                if out_list is None:
                    out_list = list(value)
                out_list[i] = ready
        return value if out_list is None else out_list
    return _UNSURE


@dataclass(frozen=True, slots=True)
class Entry:
    """One validated log entry.

    Attributes:
        data: the canonical JSON bytes that are hashed into the log.
        type: the entry's ``type`` field (``model``, ``decision``, ``outcome``).
    """

    data: bytes
    type: str

    @classmethod
    def from_object(cls, obj: dict, *, checked: bool = False) -> Entry:
        """Validate a JSON object against its type's schema and canonicalise it.

        Args:
            checked: ``obj`` is exactly what a ``glasslog.records`` builder returned (it ran the same schema check),
                unchanged since: the check is not run twice (bulk ingestion, where it was a fifth of a span's cost).

        Raises:
            EntryError: schema violation, NaN/infinity, nesting too deep for
                the interpreter, or an entry over 65,535 bytes.
        """
        try:
            if not checked:
                check_entry(obj)
            data = canonical_json(obj)
        except RecursionError:
            raise EntryError("entry is nested too deeply") from None
        if len(data) > MAX_ENTRY_BYTES:
            raise EntryError(f"entry is {len(data)} bytes, the limit is {MAX_ENTRY_BYTES}")
        return cls(data, obj["type"])

    @classmethod
    def from_bytes(cls, data: bytes) -> Entry:
        """Accept entry bytes only if they are valid, canonical and schema-conformant.

        Non-canonical bytes (whitespace, key order, number or string forms
        that RFC 8785 writes otherwise) are rejected, never rewritten.

        Raises:
            EntryError: not UTF-8 JSON, nested too deeply, not canonical, or
                schema violation (the literals NaN, Infinity and -Infinity are reported as
                not allowed in the field holding them).
        """
        if not isinstance(data, (bytes, bytearray)):
            raise EntryError(f"entry bytes must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) > MAX_ENTRY_BYTES:
            raise EntryError(f"entry is {len(data)} bytes, the limit is {MAX_ENTRY_BYTES}")
        try:
            floats: list[str] = []
            obj = json.loads(data.decode("utf-8"), parse_constant=_parse_constant,
                             parse_float=lambda text: floats.append(text) or float(text), parse_int=_parse_int)
        except UnicodeDecodeError:
            raise EntryError("entry is not valid UTF-8") from None
        except json.JSONDecodeError as exc:
            raise EntryError(f"entry is not valid JSON: {exc}") from None
        except RecursionError:
            raise EntryError("entry is nested too deeply") from None
        try:
            check_entry(obj)
            canonical = _is_canonical(data, obj, floats)
        except RecursionError:
            raise EntryError("entry is nested too deeply") from None
        if not canonical:
            raise EntryError("entry is not in RFC 8785 canonical form (key order, whitespace or number/string form)")
        return cls(data, obj["type"])

    def object(self) -> dict:
        """The entry as a JSON object (parsed from ``data``)."""
        return json.loads(self.data)


def _is_canonical(data: bytes, obj: Any, float_literals: list[str]) -> bool:
    """True if ``data`` is the RFC 8785 serialisation of ``obj`` (parsed from it).

    ``rfc8785`` is the authority. The fast path avoids its full re-serialisation
    (about 17 microseconds per entry) when it provably gives the same answer:
    for ASCII-only data, Python's sorted compact ``json.dumps`` orders keys and
    escapes strings exactly as RFC 8785 section 3.2 does, and writes integers
    within 2**53 (all the schema admits) the same way; floats are the one
    difference, so every float literal in ``data`` is checked against
    ``rfc8785``'s own rendering of its value. Anything else takes the full check.
    """
    for literal in float_literals:
        if rfc8785.dumps(float(literal)) != literal.encode("ascii", "replace"):
            return False  # the canonical form writes this number differently
    if data.isascii():
        try:
            fast = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            fast = None
        if fast is not None and fast.encode("utf-8") == data:
            return True
    return canonical_json(obj) == data


def _parse_int(text: str) -> int | float:
    # RFC 8785 writes a float such as 1e16 as the integer literal 10000000000000000;
    # read such literals back as the double they denote, as JSON.parse does.
    value = int(text)
    if abs(value) <= INT_LIMIT:
        return value
    try:
        as_float = float(value)
    except OverflowError:
        return value
    return as_float if int(as_float) == value else value  # not a double: left for the schema to refuse


def _parse_constant(name: str) -> float:
    # NaN, Infinity and -Infinity are not JSON; parse them as floats so that the
    # schema check rejects them naming the field they are in.
    return float(name)
