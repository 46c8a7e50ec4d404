"""The columnar copy (``storage.columnar``) in the log's SQLite file: table ``columnar`` (one row per column of a
chunk), progress and scrub count in ``meta`` (``columnar_upto``, ``columnar_erasures``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from .. import columnar as C
from .side import _immediate

RARE_TYPES_INDEX = ("CREATE INDEX IF NOT EXISTS entries_rare_types ON entries(type, idx) "
                    "WHERE type NOT IN ('decision', 'outcome')")
"""Entries other than decisions and outcomes (models, deployments, flags, ...) by type: what ``Registry.list`` and
``Deployments.list`` read on every monitor run, without a scan of every entry (0.4 CPU s at 1.6M entries). Made
with a new log, or in an older one by the first build of its columnar copy (under the write lock, once: the
scan it saves each run); ``SqliteStore.entries_of_types`` names the same condition so SQLite can use it."""
RARE_TYPES_CONDITION = "type NOT IN ('decision', 'outcome')"

MMAP_BYTES = 1 << 34
"""Bytes of the database file mapped while chunks are read (SQLite caps it at its compile-time maximum)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS columnar (grp TEXT NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL, name TEXT NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (grp, start, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS columnar_by_start ON columnar(start, stop);
"""


def _meta_int(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def _set_meta(db: sqlite3.Connection, key: str, value: int) -> None:
    db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               (key, str(value)))


def scrub_in_tx(db: sqlite3.Connection, entry_index: int, kind: str) -> None:
    """Null an erased private value in every chunk holding it; inside the erasure's transaction."""
    if kind not in ("input", "output", "outcome"):
        return
    rows = [C.ChunkRow(*r) for r in db.execute(
        "SELECT grp, start, stop, name, data FROM columnar WHERE start <= ? AND stop > ?", (entry_index, entry_index))]
    changed = C.scrub(rows, [(entry_index, kind)])
    if changed:
        db.executemany("UPDATE columnar SET data = ? WHERE grp = ? AND start = ? AND name = ?",
                       [(r.data, r.grp, r.start, r.name) for r in changed])
        _set_meta(db, "columnar_erasures", _meta_int(db, "columnar_erasures") + 1)


class ColumnStore:
    """``columnar.ColumnStore`` on SQLite."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def state(self) -> tuple[int, int]:
        """``(built upto, erasures)``."""
        return _meta_int(self._db, "columnar_upto"), _meta_int(self._db, "columnar_erasures")

    def put(self, start: int, upto: int, rows: Sequence[C.ChunkRow]) -> bool:
        """Store chunks of [start, upto) with a compare-and-swap on the built size, scrubbing values erased meanwhile."""
        db = self._db
        with _immediate(db):
            if _meta_int(db, "columnar_upto") != start:  # another process built this piece meanwhile
                return False
            if start == 0:
                db.execute(RARE_TYPES_INDEX)
            erased = db.execute("SELECT entry_index, kind FROM private_values WHERE entry_index >= ? AND entry_index < ? "
                                "AND erased_at IS NOT NULL", (start, upto)).fetchall()
            if erased:
                fixed = {(r.grp, r.start, r.name): r for r in C.scrub(rows, erased)}
                rows = [fixed.get((r.grp, r.start, r.name), r) for r in rows]
            db.executemany("INSERT INTO columnar (grp, start, stop, name, data) VALUES (?, ?, ?, ?, ?)",
                           [(r.grp, r.start, r.stop, r.name, r.data) for r in rows])
            _set_meta(db, "columnar_upto", upto)
        return True

    def chunks(self, since: int, upto: int, names: Sequence[str] | None = None) -> Iterator[C.ChunkRow]:
        """Stored columns of chunks starting in [since, upto), by start then group."""
        q, params = "SELECT grp, start, stop, name, data FROM columnar WHERE start >= ? AND start < ?", [since, upto]
        if names is not None:
            q += f" AND (grp = 'm' OR name IN ({','.join('?' * len(names))}))"
            params.extend(names)
        # Memory-mapped pages for this read only: a quarter less CPU reading ~200 MB of chunks (1M decisions x 20
        # features); not for the whole connection, where an I/O error would be a SIGBUS instead of an exception.
        old = self._db.execute("PRAGMA mmap_size").fetchone()[0]
        self._db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}").fetchall()
        try:
            for r in self._db.execute(q + " ORDER BY start, grp, name", params):
                yield C.ChunkRow(*r)
        finally:
            self._db.execute(f"PRAGMA mmap_size = {int(old)}").fetchall()

    def drop(self) -> None:
        """Forget the whole copy (it is rebuilt from the log on next use; the log is untouched)."""
        with _immediate(self._db):
            self._db.execute("DELETE FROM columnar")
            _set_meta(self._db, "columnar_upto", 0)
