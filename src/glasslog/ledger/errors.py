"""Errors of the log's front class, shared with the storage back ends."""

from __future__ import annotations

from ..errors import UnavailableError

__all__ = ["LedgerError", "KeyFileError"]


class LedgerError(UnavailableError, RuntimeError):
    """The log cannot be created, opened or used as asked."""


class KeyFileError(LedgerError):
    """The signer key file is missing, malformed or readable by others."""
