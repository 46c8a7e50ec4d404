"""The PostgreSQL back end: one database per log, shared by server processes on several hosts (see ``store.py``)."""

from .store import PostgresStore, close_pools
from .url import redact

__all__ = ["PostgresStore", "close_pools", "redact"]
