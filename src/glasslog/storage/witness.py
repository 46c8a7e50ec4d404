"""A witness's own state: which logs it follows and the latest checkpoint it cosigned for each.

One SQLite file (``witness.db`` in the witness's directory), separate from any
log's database: a witness is run by a third party, on its own machine, with
nothing of the log it watches. WAL mode with ``synchronous=FULL``.

The one operation that matters is ``WitnessStore.advance``: for one origin it
reads the stored checkpoint, runs the caller's consistency check against it
and stores the new checkpoint, all inside one ``BEGIN IMMEDIATE`` transaction
(SQLite's single write lock, held across threads and processes). So two
requests can never both pass their check against the same old state, and the
stored size never goes backwards, whatever order requests arrive in (the race
C2SP tlog-witness describes under add-checkpoint). When ``advance`` returns,
the new state is on disk; the caller cosigns only after that.

Tables::

    meta(key, value)                       name, verifier key, created_at
    logs(origin, verifier_key, added_at)   the logs followed; one or more keys per origin
    state(origin, tree_size, root, note, updated_at)   latest cosigned checkpoint per origin
    evidence(id, origin, at, reason, old_size, note, count, last_at)
                                           validly signed requests that were refused (possible proof of
                                           log misbehaviour), capped per origin; the same refusal again
                                           (same reason, old size and note) counts on its row
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .base import StorageError, StorageUnavailable

__all__ = ["WitnessStore", "WitnessState", "WITNESS_DB"]

WITNESS_DB = "witness.db"
EVIDENCE_PER_ORIGIN = 1000
"""Refused-but-signed requests kept per origin (the oldest are dropped beyond this)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT NOT NULL, verifier_key TEXT NOT NULL, added_at TEXT NOT NULL, PRIMARY KEY (origin, verifier_key));
CREATE TABLE IF NOT EXISTS state (
    origin TEXT PRIMARY KEY, tree_size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY, origin TEXT NOT NULL, at TEXT NOT NULL, reason TEXT NOT NULL, old_size INTEGER NOT NULL,
    note TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_by_origin ON evidence(origin, id);
"""
_EVIDENCE_COLUMNS = (("count", "INTEGER NOT NULL DEFAULT 1"), ("last_at", "TEXT"))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class WitnessState:
    """The latest checkpoint a witness cosigned for one origin."""

    origin: str
    tree_size: int
    root: bytes
    note: str
    updated_at: str


class WitnessStore:
    """The witness's SQLite state file. Safe to share between threads (one connection per thread).

    Args:
        path: the database file (created with its tables if missing).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        with self._tx(conn):
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(stmt)
            have = {row[1] for row in conn.execute("PRAGMA table_info(evidence)")}
            for name, decl in _EVIDENCE_COLUMNS:  # a witness.db made before refusals were counted
                if name not in have:
                    conn.execute(f"ALTER TABLE evidence ADD COLUMN {name} {decl}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError as exc:
                raise StorageError(f"cannot open the witness database {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageUnavailable(f"the witness database is busy: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ meta
    def meta(self) -> dict[str, str]:
        """The witness's settings (``name``, ``verifier_key``, ``created_at``)."""
        return dict(self._conn().execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, str]) -> None:
        """Store settings, replacing existing keys."""
        conn = self._conn()
        with self._tx(conn):
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))

    # ------------------------------------------------------------------ logs
    def add_log(self, origin: str, verifier_key: str) -> bool:
        """Follow a log (a further key for a known origin is added beside the others). False if already there."""
        conn = self._conn()
        with self._tx(conn):
            cur = conn.execute("INSERT OR IGNORE INTO logs (origin, verifier_key, added_at) VALUES (?, ?, ?)",
                               (origin, verifier_key, _now()))
            return cur.rowcount == 1

    def remove_log(self, origin: str) -> bool:
        """Stop following a log (its stored state is kept, so following it again resumes from it)."""
        conn = self._conn()
        with self._tx(conn):
            return conn.execute("DELETE FROM logs WHERE origin = ?", (origin,)).rowcount > 0

    def log_keys(self, origin: str) -> list[str]:
        """Verifier keys trusted for ``origin`` (empty: the origin is unknown)."""
        return [r[0] for r in self._conn().execute("SELECT verifier_key FROM logs WHERE origin = ? ORDER BY added_at",
                                                   (origin,))]

    def logs(self) -> list[tuple[str, str, WitnessState | None]]:
        """``(origin, verifier key, state or None)`` of every followed log."""
        rows = self._conn().execute("SELECT origin, verifier_key FROM logs ORDER BY origin, added_at").fetchall()
        return [(o, k, self.state(o)) for o, k in rows]

    # ------------------------------------------------------------------ state
    def state(self, origin: str) -> WitnessState | None:
        """The latest cosigned checkpoint of ``origin``, or None if it never cosigned one."""
        row = self._conn().execute("SELECT tree_size, root, note, updated_at FROM state WHERE origin = ?",
                                   (origin,)).fetchone()
        return None if row is None else WitnessState(origin, row[0], bytes(row[1]), row[2], row[3])

    def advance(self, origin: str, check: Callable[[WitnessState | None], None], tree_size: int, root: bytes,
                note: str) -> None:
        """Atomically check the new checkpoint against the stored one and store it.

        Inside one ``BEGIN IMMEDIATE`` transaction: read the state of
        ``origin``, call ``check(state)`` (it raises to refuse), then store
        ``(tree_size, root, note)`` as the new state. If ``check`` raises,
        nothing changes and the exception propagates. When this returns the
        new state is durable (``synchronous=FULL``).

        Raises:
            StorageUnavailable: the write lock could not be taken within 30 s.
        """
        conn = self._conn()
        with self._tx(conn):
            row = conn.execute("SELECT tree_size, root, note, updated_at FROM state WHERE origin = ?", (origin,)).fetchone()
            current = None if row is None else WitnessState(origin, row[0], bytes(row[1]), row[2], row[3])
            check(current)
            if current is not None and tree_size < current.tree_size:
                raise StorageError(f"refusing to roll the witness's state of {origin} back from {current.tree_size} to {tree_size}")
            conn.execute("INSERT OR REPLACE INTO state (origin, tree_size, root, note, updated_at) VALUES (?, ?, ?, ?, ?)",
                         (origin, tree_size, root, note, _now()))

    # ------------------------------------------------------------------ evidence
    def record_evidence(self, origin: str, reason: str, old_size: int, note: str) -> None:
        """Keep a validly signed request that was refused (it may prove the log misbehaved).

        The same refusal again (same origin, reason, old size and note: a log
        retrying) is counted on the existing row (``count``, ``last_at``)
        instead of adding one: the evidence is kept, its repetition is not.
        """
        conn = self._conn()
        now = _now()
        with self._tx(conn):
            row = conn.execute("SELECT id FROM evidence WHERE origin = ? AND reason = ? AND old_size = ? AND note = ?",
                               (origin, reason, old_size, note)).fetchone()
            if row is not None:
                conn.execute("UPDATE evidence SET count = count + 1, last_at = ? WHERE id = ?", (now, row[0]))
                return
            conn.execute("INSERT INTO evidence (origin, at, reason, old_size, note, count, last_at)"
                         " VALUES (?, ?, ?, ?, ?, 1, ?)", (origin, now, reason, old_size, note, now))
            conn.execute("DELETE FROM evidence WHERE origin = ? AND id NOT IN "
                         "(SELECT id FROM evidence WHERE origin = ? ORDER BY id DESC LIMIT ?)",
                         (origin, origin, EVIDENCE_PER_ORIGIN))

    def evidence(self, origin: str | None = None) -> list[dict]:
        """Refused, validly signed requests, oldest first: ``origin``, ``at`` (first time), ``reason``,
        ``old_size``, ``note``, ``count`` (times refused) and ``last_at`` (last time)."""
        sql = "SELECT origin, at, reason, old_size, note, count, coalesce(last_at, at) FROM evidence"
        args: tuple = ()
        if origin is not None:
            sql += " WHERE origin = ?"
            args = (origin,)
        rows = self._conn().execute(sql + " ORDER BY id", args).fetchall()
        return [{"origin": o, "at": a, "reason": r, "old_size": s, "note": n, "count": c, "last_at": la}
                for o, a, r, s, n, c, la in rows]
