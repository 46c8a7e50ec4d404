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
    "open_store", "create_store", "is_url", "describe", "STORE_ENV", "record_location", "where_recorded", "LOCATION_FILE",
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

    data_dir = Path(data_dir)
    elsewhere = where_recorded(data_dir)
    if elsewhere is not None and not (data_dir / DB_NAME).exists():
        raise LedgerError(f"the log of {data_dir} is not a SQLite file here: {elsewhere}; give --store with that database's"
                          f" URL (glasslog --store URL ...) or set ${STORE_ENV}")
    try:
        return SqliteStore.open(data_dir / DB_NAME)
    except StorageError as exc:
        if (data_dir / DB_NAME).is_file() and "has mode" in str(exc):  # a log, but readable by others: say only that
            raise LedgerError(str(exc)) from None
        raise LedgerError(f"no log at {data_dir} ({exc}); create one with 'glasslog init'") from None


LOCATION_FILE = "store"
"""File in a data directory saying where its log's database is, when it is not the SQLite file beside it (no password)."""


def record_location(data_dir: Path, text: str) -> None:
    """Write ``data_dir/store``: where the log of this data directory lives (``describe``d, so without a password)."""
    path = Path(data_dir) / LOCATION_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text.strip() + "\n")


def where_recorded(data_dir: Path) -> str | None:
    """What ``record_location`` wrote for ``data_dir``, or None."""
    try:
        return (Path(data_dir) / LOCATION_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def create_store(store: str | None, data_dir: Path, meta: dict[str, str]) -> LogStore:
    """Create the back end of a new log holding its settings ``meta``.

    Raises:
        LedgerError: the database holds a log already, or ``store`` is not a URL.
    """
    url = _resolve(store)
    if url is not None:
        from .postgres.store import PostgresStore

        created = PostgresStore.create(url, meta)
        record_location(data_dir, f"its log is in PostgreSQL at {describe(url)}")
        return created
    from .sqlite.store import DB_NAME, SqliteStore

    try:
        return SqliteStore.create(Path(data_dir) / DB_NAME, meta)
    except StorageError as exc:
        raise LedgerError(f"{data_dir} already holds a log ({exc}); open it instead of creating it") from None
