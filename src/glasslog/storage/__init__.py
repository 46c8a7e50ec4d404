"""Storage back ends of the log: the only place with SQL or a database driver.

A log's data lives in one back end, named by a *store location*:

- none (the default): the SQLite file ``log.db`` in the log's data directory
  (``storage/sqlite``), the embedded default: nothing to set up;
- a ``postgresql://user@host:port/dbname`` URL (``storage/postgres``): a
  PostgreSQL database, for deployers running several server processes on
  several hosts.

The signer key and model artifacts stay in the data directory in both cases
(the database holds the log, never weights). ``open_store`` and
``create_store`` pick the back end; ``glasslog.ledger.Ledger.open`` /
``create`` call them. The interface every back end implements is in
``base.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..ledger.errors import LedgerError
from .base import (
    ApiKeyRow,
    DecisionRow,
    LogStore,
    PrivateRow,
    ReadModel,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    WriteTx,
)

__all__ = [
    "open_store", "create_store", "is_url", "describe", "STORE_ENV",
    "LogStore", "WriteTx", "ReadModel", "PrivateRow", "ApiKeyRow", "DecisionRow",
    "StorageError", "StorageUnavailable", "StorageConflict",
]

STORE_ENV = "GLASSLOG_STORE"
"""Environment variable naming the log's database (a ``postgresql://`` URL) when it is not the data directory's SQLite file."""

_SCHEMES = ("postgresql://", "postgres://")


def is_url(location: str | os.PathLike | None) -> bool:
    """True if ``location`` names a PostgreSQL database rather than a directory."""
    return isinstance(location, str) and location.startswith(_SCHEMES)


def describe(location: str | None) -> str:
    """``location`` fit for messages: a URL without its password."""
    if not is_url(location):
        return str(location)
    from .postgres.url import redact

    return redact(location)


def _resolve(store: str | None) -> str | None:
    store = store if store is not None else (os.environ.get(STORE_ENV) or None)
    if store is not None and not is_url(store):
        raise LedgerError(f"store {store!r} is not a database URL: give a postgresql://user@host/dbname URL,"
                          " or leave it out for the data directory's SQLite file")
    return store


def open_store(store: str | None, data_dir: Path) -> LogStore:
    """Open the back end holding an existing log.

    Args:
        store: a ``postgresql://`` URL, or None for ``$GLASSLOG_STORE`` if set,
            else ``data_dir/log.db``.
        data_dir: the log's data directory.

    Raises:
        LedgerError: there is no log there (the database is left untouched),
            or ``store`` is not a URL.
    """
    url = _resolve(store)
    if url is not None:
        from .postgres.store import PostgresStore

        return PostgresStore.open(url)
    from .sqlite.store import DB_NAME, SqliteStore

    try:
        return SqliteStore.open(Path(data_dir) / DB_NAME)
    except StorageError as exc:
        raise LedgerError(f"no log at {data_dir} ({exc}); create one with 'glasslog init'") from None


def create_store(store: str | None, data_dir: Path, meta: dict[str, str]) -> LogStore:
    """Create the back end of a new log holding its settings ``meta``.

    Raises:
        LedgerError: the database holds a log already, or ``store`` is not a URL.
    """
    url = _resolve(store)
    if url is not None:
        from .postgres.store import PostgresStore

        return PostgresStore.create(url, meta)
    from .sqlite.store import DB_NAME, SqliteStore

    try:
        return SqliteStore.create(Path(data_dir) / DB_NAME, meta)
    except StorageError as exc:
        raise LedgerError(f"{data_dir} already holds a log ({exc}); open it instead of creating it") from None
