"""The embedded back end: one SQLite file per log (see ``store.py``)."""

from .store import DB_NAME, SqliteStore

__all__ = ["SqliteStore", "DB_NAME"]
