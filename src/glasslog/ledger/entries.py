"""Log entries: canonical JSON (RFC 8785) objects with a ``type`` and a schema version.

Every record that matters for accountability is an entry: model registrations
and status changes (``model``), deployments (``deployment``), decisions
(``decision``), observed outcomes (``outcome``), weight downloads (``access``),
API keys (``key``), flags and their ratings (``flag``, ``rating``), monitor and
audit results (``finding``), supervisors' triage actions (``triage``) and
metrics the deployer reports (``metric``), outputs of generative models
(``generation``), deployments' watermarks (``watermark``) and erasures of private values (``erasure``). An entry's bytes are the RFC 8785 (JSON Canonicalization
Scheme) serialisation of a JSON object, produced and checked with the
``rfc8785`` library, so the same record always has the same leaf hash.

Private values (model inputs, subject identifiers) never appear in an entry;
entries hold their commitments (see ``glasslog.ledger.commitments``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import rfc8785

from ..errors import BadInputError

__all__ = [
    "SCHEMA_VERSION",
    "ENTRY_TYPES",
    "EntryError",
    "Entry",
    "canonical_json",
    "utc_now",
    "parse_time",
]

SCHEMA_VERSION = 1
"""Version of the entry schemas this code writes; stored in every entry as ``v``."""

MAX_ENTRY_BYTES = 65535
"""Largest entry accepted, in bytes (the tlog-tiles entry bundle limit); large payloads belong beside the log."""

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


class EntryError(BadInputError):
    """An entry is malformed, not canonical, or fails its type's schema.

    ``field`` names the offending field (dotted path) when there is one.
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
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                return _UNSURE
            ready = _json_ready(v, depth + 1)
            if ready is _UNSURE:
                return _UNSURE
            out[k] = ready
        return out
    if kind is list:
        out_list = []
        for v in value:
            ready = _json_ready(v, depth + 1)
            if ready is _UNSURE:
                return _UNSURE
            out_list.append(ready)
        return out_list
    return _UNSURE


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


_INT_LIMIT = 2**53 - 1  # RFC 8785 / I-JSON: integers must be exact as IEEE 754 doubles


def _finite(value: Any, field: str) -> None:
    """Reject NaN, infinity and integers beyond +-(2**53 - 1) anywhere in ``value``, naming the field."""
    if isinstance(value, float) and not math.isfinite(value):
        raise EntryError("NaN and infinity are not allowed", field=field)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT_LIMIT:
        raise EntryError("integers must be within +-2**53", field=field)
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{field}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{field}[{i}]")


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
    if status not in ("active", "suspended", "withdrawn"):
        raise EntryError(f"must be active, suspended or withdrawn, got {status!r}", field="status")


def _one_of(obj: dict, public: str, committed: str) -> None:
    """Exactly one of a public value and a commitment to it (private deployments)."""
    has_public, has_commitment = public in obj, committed in obj
    if has_public == has_commitment:
        raise EntryError(f"exactly one of '{public}' (public) and '{committed}' (commitment) is required", field=public)
    if has_public:
        _finite(obj[public], public)
    else:
        _digest(obj, committed)


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


def _check_outcome(obj: dict) -> None:
    decision = _require(obj, "decision", int)
    if decision < 0:
        raise EntryError("must be a decision's index (>= 0)", field="decision")
    _one_of(obj, "outcome", "outcome_commitment")
    _time(obj)
    if "corrects" in obj or "reason" in obj:  # a correction: the decision's latest outcome entry, and why
        corrects = _require(obj, "corrects", int)
        if not 0 <= corrects < _INT_LIMIT:
            raise EntryError("must be an outcome entry's index (>= 0)", field="corrects")
        reason = _require(obj, "reason", str)
        if not reason.strip() or len(reason) > 1000:
            raise EntryError("must be non-empty text of at most 1000 characters", field="reason")


DEPLOYMENT_VISIBILITY = ("public-service", "private")
"""``public-service``: decisions' outputs are public; ``private``: outputs and
outcomes are logged as commitments, the public sees counts only."""


def _name(obj: dict, key: str) -> None:
    value = _require(obj, key, str)
    if not value:
        raise EntryError("must not be empty", field=key)
    if not value.isprintable() or len(value) > 200:
        raise EntryError("must be printable text of at most 200 characters", field=key)


def _check_deployment(obj: dict) -> None:
    _name(obj, "deployment")
    visibility = _require(obj, "visibility", str)
    if visibility not in DEPLOYMENT_VISIBILITY:
        raise EntryError(f"must be one of {', '.join(DEPLOYMENT_VISIBILITY)}, got {visibility!r}", field="visibility")
    _require(obj, "description", str)
    _time(obj)


ACCESS_ACTIONS = ("weights-download",)


def _check_access(obj: dict) -> None:
    action = _require(obj, "action", str)
    if action not in ACCESS_ACTIONS:
        raise EntryError(f"must be one of {', '.join(ACCESS_ACTIONS)}, got {action!r}", field="action")
    _digest(obj, "model")
    _name(obj, "role")
    _name(obj, "key_id")
    _time(obj)


def _check_key(obj: dict) -> None:
    event = _require(obj, "event", str)
    if event not in ("issue", "revoke"):
        raise EntryError(f"must be 'issue' or 'revoke', got {event!r}", field="event")
    _name(obj, "key_id")
    _name(obj, "role")
    _name(obj, "name")
    _time(obj)


WITNESS_EVENTS = ("add", "remove")


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


FLAG_CATEGORIES = ("wrong-outcome", "wrong-reasons", "unfair", "harmful", "privacy", "other")
"""What a flag says: the wrong outcome; the right answer for the wrong reasons; unfair; harmful; privacy; other."""

FLAG_ROLES = ("public", "subject", "developer", "researcher", "supervisor", "operator", "monitor")
RATINGS = ("helpful", "somewhat", "not-helpful")
FINDING_SOURCES = ("monitor", "audit", "application")
"""``application``: an evaluation the deployer's application ran and reported (OTLP ``gen_ai.evaluation.result``)."""
VERDICTS = ("alert", "ok", "insufficient-data")
SEVERITIES = ("info", "low", "medium", "high", "critical")
TRIAGE_ACTIONS = ("assign", "resolve", "escalate", "reopen")


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


def _check_flag(obj: dict) -> None:
    """A report about a decision (``decision`` set) or a model; its text lives beside the log, committed in ``text``."""
    _time(obj)
    _choice(obj, "category", FLAG_CATEGORIES)
    _choice(obj, "by_role", FLAG_ROLES)
    _digest(obj, "model")
    _index(obj, "decision", optional=True)
    _digest(obj, "reporter", optional=True)
    _digest(obj, "text", optional=True)


def _check_rating(obj: dict) -> None:
    """One rater's view of a flag; ``rater`` is a pseudonymous digest, so a rater is counted once per flag."""
    _time(obj)
    _index(obj, "flag")
    _choice(obj, "rating", RATINGS)
    _digest(obj, "rater")


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


def _check_triage(obj: dict) -> None:
    """A supervisor's action on a flag or finding (by its entry index)."""
    _time(obj)
    _index(obj, "item")
    _choice(obj, "action", TRIAGE_ACTIONS)
    _require(obj, "reason", str)
    _name(obj, "key_id")
    if obj.get("assignee") is not None:
        _name(obj, "assignee")


def _check_metric(obj: dict) -> None:
    """A metric the deployer reports about a deployment (e.g. a proxy such as a survey score) for a period."""
    _time(obj)
    _digest(obj, "model")
    _name(obj, "deployment")
    _name(obj, "name")
    _number(obj, "value")
    if "window" in obj:
        _require(obj, "window", dict)



# Generative-model schemas (generations, TOPLOC commitments, watermarks) use the checks above: imported after them.
from .generation_schema import _check_generation, _check_watermark  # noqa: E402


def _check_erasure(obj: dict) -> None:
    """A private value erased beside the log (``Ledger.erase_private``): its commitment, kind, the entry holding it
    (optional), when, and the public reason (the request it answers); never the value."""
    _time(obj)
    _digest(obj, "commitment")
    _name(obj, "kind")
    _index(obj, "entry", optional=True)
    reason = _require(obj, "reason", str)
    if not reason.strip() or len(reason) > 1000:
        raise EntryError("must be non-empty text of at most 1000 characters", field="reason")


ENTRY_TYPES = {
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


def _check_schema(obj: Any) -> None:
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
    def from_object(cls, obj: dict) -> Entry:
        """Validate a JSON object against its type's schema and canonicalise it.

        Raises:
            EntryError: schema violation, NaN/infinity, nesting too deep for
                the interpreter, or an entry over 65,535 bytes.
        """
        try:
            _check_schema(obj)
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
            _check_schema(obj)
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
    if abs(value) <= _INT_LIMIT:
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
