"""The columnar copy (``storage.columnar``) in the log's PostgreSQL database: table ``columnar`` (one row per column
of a chunk) and ``columnar_state(id = 1, upto, erasures)``, whose row lock serialises a build's store with an
erasure's scrub (so an erasure either sees the stored chunk, or the build sees the erasure). Logs created before
these tables existed get them on first build."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import psycopg

from .. import columnar as C

if TYPE_CHECKING:
    from .store import PostgresStore

SCHEMA = [
    'CREATE TABLE IF NOT EXISTS columnar (grp text COLLATE "C" NOT NULL, start bigint NOT NULL, stop bigint NOT NULL,'
    ' name text COLLATE "C" NOT NULL, data bytea NOT NULL, PRIMARY KEY (grp, start, name))',
    "CREATE INDEX IF NOT EXISTS columnar_by_start ON columnar (start, stop)",
    "CREATE TABLE IF NOT EXISTS columnar_state (id integer PRIMARY KEY CHECK (id = 1), upto bigint NOT NULL,"
    " erasures bigint NOT NULL)",
    "INSERT INTO columnar_state VALUES (1, 0, 0) ON CONFLICT DO NOTHING",
]
RARE_TYPES_CONDITION = "type NOT IN ('decision', 'outcome')"
RARE_TYPES_INDEX = f"CREATE INDEX IF NOT EXISTS entries_rare_types ON entries (type, idx) WHERE {RARE_TYPES_CONDITION}"
"""Entries other than decisions and outcomes by type, as in SQLite (``sqlite/columnar.py``): what ``Registry.list`` and
``Deployments.list`` read on every monitor run, without a scan of every entry. Made with a new log, or in an older one
by the first build of its columnar copy; ``PostgresStore.entries_of_types`` names the same condition."""
_LOCK = 0x676C636F6C756D6E  # advisory lock serialising the tables' creation in an older log ("glcolumn")


def _exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('columnar_state')").fetchone()[0] is not None


def scrub_in_tx(conn: psycopg.Connection, entry_index: int, kind: str) -> None:
    """Null an erased private value in every chunk holding it; inside the erasure's transaction."""
    if kind not in ("input", "output", "outcome") or not _exists(conn):
        return
    conn.execute("SELECT erasures FROM columnar_state WHERE id = 1 FOR UPDATE")
    rows = [C.ChunkRow(g, int(a), int(b), n, bytes(d)) for g, a, b, n, d in conn.execute(
        "SELECT grp, start, stop, name, data FROM columnar WHERE start <= %s AND stop > %s", (entry_index, entry_index))]
    changed = C.scrub(rows, [(entry_index, kind)])
    if changed:
        with conn.cursor() as cur:
            cur.executemany("UPDATE columnar SET data = %s WHERE grp = %s AND start = %s AND name = %s",
                            [(r.data, r.grp, r.start, r.name) for r in changed])
        conn.execute("UPDATE columnar_state SET erasures = erasures + 1 WHERE id = 1")


class ColumnStore:
    """``columnar.ColumnStore`` on PostgreSQL."""

    def __init__(self, store: PostgresStore):
        self._s = store

    def state(self) -> tuple[int, int]:
        """``(built upto, erasures)``."""
        def run(conn: psycopg.Connection) -> tuple[int, int]:
            if not _exists(conn):
                return 0, 0
            row = conn.execute("SELECT upto, erasures FROM columnar_state WHERE id = 1").fetchone()
            return (0, 0) if row is None else (int(row[0]), int(row[1]))

        return self._s._read(run)

    def put(self, start: int, upto: int, rows: Sequence[C.ChunkRow]) -> bool:
        """Store chunks of [start, upto) with a compare-and-swap on the built size, scrubbing values erased meanwhile."""
        def run(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                if not _exists(conn):
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                    for stmt in SCHEMA:
                        conn.execute(stmt)
                row = conn.execute("SELECT upto FROM columnar_state WHERE id = 1 FOR UPDATE").fetchone()
                if row is None or row[0] != start:  # another process built this piece meanwhile
                    return False
                if start == 0:
                    conn.execute(RARE_TYPES_INDEX)
                erased = conn.execute("SELECT entry_index, kind FROM private_values WHERE entry_index >= %s "
                                      "AND entry_index < %s AND erased_at IS NOT NULL", (start, upto)).fetchall()
                chosen = list(rows)
                if erased:
                    fixed = {(r.grp, r.start, r.name): r for r in C.scrub(chosen, erased)}
                    chosen = [fixed.get((r.grp, r.start, r.name), r) for r in chosen]
                with conn.cursor() as cur, cur.copy("COPY columnar (grp, start, stop, name, data) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.set_types(["text", "int8", "int8", "text", "bytea"])
                    for r in chosen:
                        cp.write_row((r.grp, r.start, r.stop, r.name, r.data))
                conn.execute("UPDATE columnar_state SET upto = %s WHERE id = 1", (upto,))
            return True

        return self._s._write_once(run)

    def chunks(self, since: int, upto: int, names: Sequence[str] | None = None) -> Iterator[C.ChunkRow]:
        """Stored columns of chunks starting in [since, upto), by start then group (one statement per start)."""
        def starts(conn: psycopg.Connection) -> list[int]:
            if not _exists(conn):
                return []
            return [int(r[0]) for r in conn.execute("SELECT DISTINCT start FROM columnar WHERE start >= %s AND start < %s "
                                                     "ORDER BY start", (since, upto))]

        for start in self._s._read(starts):
            q, params = "SELECT grp, start, stop, name, data FROM columnar WHERE start = %s", [start]
            if names is not None:
                q += " AND (grp = 'm' OR name = ANY(%s))"
                params.append(list(names))
            rows = self._s._fetchall(q + " ORDER BY grp, name", params)
            for g, a, b, n, d in rows:
                yield C.ChunkRow(g, int(a), int(b), n, bytes(d))

    def drop(self) -> None:
        """Forget the whole copy (it is rebuilt from the log on next use; the log is untouched)."""
        def run(conn: psycopg.Connection) -> None:
            with conn.transaction():
                if _exists(conn):
                    conn.execute("SELECT upto FROM columnar_state WHERE id = 1 FOR UPDATE")
                    conn.execute("DELETE FROM columnar")
                    conn.execute("UPDATE columnar_state SET upto = 0 WHERE id = 1")

        self._s._write_once(run)
