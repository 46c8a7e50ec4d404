"""What the route modules share about request and response bodies: the strict
base models, the patterns of indexes, fingerprints and times (with the words
an error uses for each), and the check that a value can go on the log.

Each route module declares its own request and response models on these
bases (``Strict`` for requests, ``Out`` and ``Open`` for responses). Request
bodies are parsed strictly: unknown JSON fields and JSON values of the wrong
type (a string for a number, a number for a boolean) are refused with 422,
naming the field.
"""


from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict

from ..ledger import EntryError, canonical_json
from ..oversight.triage import STATES

__all__ = ["Strict", "Out", "Open", "UINT", "FINGERPRINT", "TIME", "PATTERN_PROBLEMS", "SAFE_INT", "MAX_BATCH", "UInt",
           "TriageState", "loggable"]

UINT = r"^(0|[1-9][0-9]{0,17})$"
FINGERPRINT = r"^sha256:[0-9a-f]{64}$"
TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
PATTERN_PROBLEMS = {
    UINT: "must be a non-negative decimal integer without sign or leading zeros",
    FINGERPRINT: "must be a model fingerprint: 'sha256:' and 64 lowercase hex digits",
    TIME: "must be an RFC 3339 UTC time such as 2026-01-31T12:00:00Z",
}
"""What an error says of a value that does not match each pattern."""
SAFE_INT = 2**53 - 1
"""Largest integer a JSON client reads exactly (RFC 7493)."""
MAX_BATCH = 1000
"""Most rows in one decision or outcome batch."""

UInt = Annotated[str, PathParam(pattern=UINT, description="entry index, decimal without sign or leading zeros")]
"""An entry index in a path (parse it with ``deps.uint``)."""

TriageState = Literal["open", "assigned", "resolved", "escalated"]
"""The state of a triage item (a flag's ``triage_state``)."""
assert set(TriageState.__args__) == set(STATES)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    """A response body the server builds: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A response body that carries another package's record (it may grow fields)."""

    model_config = ConfigDict(extra="allow")


def loggable(value: Any) -> str | None:
    """Why ``value`` cannot be logged as JSON (NaN, infinity, huge integers, bad text), or None."""
    try:
        canonical_json(value)
    except EntryError as exc:
        return str(exc)
    except RecursionError:
        return "nested too deeply"
    return None
