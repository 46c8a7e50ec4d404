"""Salted commitments to private values (model inputs, subject identifiers).

A commitment is ``"sha256:" + hex(SHA-256(salt || canonical_json(value)))``
with a fresh random 32-byte salt. The log holds only the commitment; the
value and its salt are kept beside the log. Anyone given the value and salt
can check them against the logged commitment, and erasing value and salt
(say, for a GDPR Art. 17 request) leaves the tree and every proof intact:
the commitment is then a hash of nothing recoverable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from .entries import canonical_json

__all__ = ["SALT_SIZE", "COMMITMENT_FIELDS", "commit", "fresh_salts", "commitment_of", "check_commitment"]

COMMITMENT_FIELDS = {"input": "input", "subject": "subject", "output": "output_commitment", "outcome": "outcome_commitment",
                     "flag-text": "text"}
"""Kind of private value -> the entry field that holds its commitment."""

SALT_SIZE = 32
"""Salt length in bytes."""


def commitment_of(salt: bytes, value_bytes: bytes) -> str:
    """Return the commitment string for a salt and a value's canonical bytes."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
    return "sha256:" + hashlib.sha256(salt + value_bytes).hexdigest()


def fresh_salts(count: int) -> list[bytes]:
    """``count`` fresh random salts of ``SALT_SIZE`` bytes, from one call to the OS's CSPRNG (``secrets``)."""
    pool = secrets.token_bytes(SALT_SIZE * count)
    return [pool[k : k + SALT_SIZE] for k in range(0, len(pool), SALT_SIZE)]


def commit(value: Any, salt: bytes | None = None) -> tuple[str, bytes, bytes]:
    """Commit to a JSON value with a fresh salt (or ``salt``, which must be fresh: see ``fresh_salts``).

    Returns:
        ``(commitment, salt, value_bytes)``: the commitment string for the
        log, the 32 random salt bytes and the value's canonical JSON bytes,
        the latter two to be kept beside the log.

    Raises:
        glasslog.records.EntryError: the value is not representable
            as canonical JSON (NaN, infinity, non-string keys ...).
    """
    value_bytes = canonical_json(value)
    if salt is None:
        salt = secrets.token_bytes(SALT_SIZE)
    elif len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
    return commitment_of(salt, value_bytes), salt, value_bytes


def check_commitment(commitment: str, salt: bytes, value_bytes: bytes) -> bool:
    """True if ``salt`` and ``value_bytes`` open ``commitment`` (constant-time compare).

    Anything but bytes (e.g. a value a tampered database returns as text) opens nothing."""
    if not isinstance(salt, (bytes, bytearray, memoryview)) or not isinstance(value_bytes, (bytes, bytearray, memoryview)):
        return False
    if not isinstance(commitment, str):
        return False
    try:
        expected = commitment_of(salt, value_bytes)
    except ValueError:
        return False
    return hmac.compare_digest(expected, commitment)
