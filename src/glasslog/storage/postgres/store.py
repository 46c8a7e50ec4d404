"""The PostgreSQL back end: one database per log, shared by processes on several hosts.

Tables (``_SCHEMA``) mirror the SQLite back end's, with ``bytea`` for blobs
and ``bigint`` for indexes, plus two coordination rows:

- ``log_state(id = 1, tree_size, root)``: the log's write lock and its size.
  ``write`` begins a transaction and takes ``SELECT ... FOR UPDATE`` on it, so
  batches from every process and host are serialised; ``put_checkpoint``
  moves it with a compare-and-swap (``UPDATE ... WHERE tree_size = <size the
  transaction started at>``, exactly one row), in the same statement that
  inserts the checkpoint (whose primary key is the tree size). A transaction
  that stores entries must sign the checkpoint covering them (``Ledger.append``
  always does), so ``tree_size`` is always the number of stored entries and
  ``size()`` is one keyed read.
- ``index_state(id = 1, upto)``: the read model's lock and progress.

Connections come from one ``psycopg_pool.ConnectionPool`` per URL per process
(``_pool_for``), in autocommit mode: a read is one statement on a connection
borrowed for that statement; a write is one transaction on one connection,
begun together with its locking read in one round trip (``BEGIN; SELECT ...
FOR UPDATE``) and committed at the end of the block, its batch's stored
hashes sent in one round trip with the checkpoint (a pipeline), so a batch
costs the plain table's three round trips (begin, COPY, commit) plus the
checkpoint's; ``WriteTx.savepoint`` is a nested ``conn.transaction()``. A
statement PostgreSQL refuses ends the whole transaction (unlike SQLite,
which undoes just that statement): code inside a batch that wants to go on
after a refused write wraps it in ``tx.savepoint()``; one that swallows the
error and carries on gets a ``StorageError`` at the end, never a partial
commit. A ``PostgresStore`` holds no connection between calls, so a server's
many worker threads, each with its own store, share a few connections. Long
reads (``entries``, ``stored_hashes``, ...) are paged by key, one statement
per page, so an abandoned iterator holds nothing.

Stored hashes: full strips from level 3 up and the latest partial strip of
each level (the tree's right edge) are cached once per log per process
(``_SharedStripCache``); a proof reads the rest, about three strips, in one
statement prepared on the connection (``_read_strips``).

Driver errors are translated: a unique (or other integrity) violation is a
``StorageConflict``; a lost connection, a lock or pool wait that timed out, a
serialisation failure or a server shutting down is a ``StorageUnavailable``
naming the database URL without its password. A write that raises is rolled
back and its connection goes back to the pool clean (or is discarded if it is
broken). Reads that meet a connection broken while it sat in the pool (the
server restarted) are retried once on a fresh one.

Durability: PostgreSQL's (``synchronous_commit = on`` is assumed, the
default): when ``write``'s block returns, the batch's commit is on disk.

Erasure nulls the value, salt and lookup hash and the read model's opened
label in one transaction. PostgreSQL keeps the old row versions until
``VACUUM`` reclaims them (autovacuum does, eventually) and its write-ahead
log until it is recycled: the value is unreachable through every interface at
once, but its bytes may linger in the server's files for a while, as in any
MVCC database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import strips as S
from ..base import (
    HashKey,
    StorageError,
    StorageUnavailable,
)
from ..readmodel import SqlReadModel
from . import pool as _pool
from .columnar import RARE_TYPES_CONDITION, RARE_TYPES_INDEX, ColumnStore, scrub_in_tx
from .columnar import SCHEMA as _COLUMNAR_SCHEMA
from .pool import (
    _CREATE_LOCK,
    _SCHEMA,
    _TABLES,
    PAGE_ROWS,
    POOL_MAX_SIZE,
    POOL_MIN_SIZE,
    STRIP_PAGE,
    WAIT_SECONDS,
    _Broken,
    _cache_for,
    _in_chunks,
    _int_array,
    _pool_for,
    _read_strips,
    _renew_pool,
    _rollback,
    _SharedStripCache,
    _translate,
    close_pools,
)
from .side import _SideTables
from .tx import _Tx
from .url import redact

T = TypeVar("T")

__all__ = ["PostgresStore", "close_pools", "POOL_MIN_SIZE", "POOL_MAX_SIZE", "WAIT_SECONDS"]

class _ReadModel(SqlReadModel):
    """The search index tables in the log's database (reads shared with SQLite: ``storage.readmodel``)."""

    IN_CHUNK = PAGE_ROWS

    def __init__(self, store: PostgresStore):
        self._s = store

    def _all(self, query: str, params) -> list[tuple]:
        return self._s._fetchall(query.replace("?", "%s"), params)

    def _in_ints(self, column: str, values) -> tuple[str, list]:
        return f"{column} = ANY(?::bigint[])", [_int_array(values)]

    def _in_texts(self, column: str, values) -> tuple[str, list]:
        return f"{column} = ANY(?)", [list(values)]

    def indexed_upto(self) -> int:
        row = self._s._fetchone("SELECT upto FROM index_state WHERE id = 1")
        return 0 if row is None else row[0]

    def add(self, start, upto, decisions, outcomes, leaves) -> bool:
        def run(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                row = conn.execute("SELECT upto FROM index_state WHERE id = 1 FOR UPDATE").fetchone()
                if row is None or row[0] != start:  # another process indexed meanwhile
                    return False
                with conn.cursor() as cur:
                    if decisions:
                        cur.executemany("INSERT INTO decision_index VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                        [(d.idx, d.model, d.deployment, d.time, d.label, int(d.has_subject))
                                         for d in decisions])
                    if outcomes:
                        cur.executemany("INSERT INTO outcome_index VALUES (%s, %s) ON CONFLICT DO NOTHING", list(outcomes))
                    if leaves:
                        cur.executemany("INSERT INTO leaf_index VALUES (%s, %s) ON CONFLICT DO NOTHING", list(leaves))
                if decisions:
                    # An output erased after the indexer opened it (and before this commit) must not leave its label.
                    conn.execute("UPDATE decision_index d SET label = NULL FROM private_values p "
                                 "WHERE d.idx >= %s AND d.idx < %s AND p.entry_index = d.idx AND p.kind = 'output' "
                                 "AND p.erased_at IS NOT NULL AND d.label IS NOT NULL", (start, upto))
                conn.execute("UPDATE index_state SET upto = %s WHERE id = 1", (upto,))
            return True

        return self._s._write_once(run)


# ------------------------------------------------------------------ the store
def _why_not_a_log(conn: psycopg.Connection) -> str | None:
    """Why the database holds no (complete) glasslog log, or None if it holds one. Reads only."""
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return "holds no glasslog log (no meta table)"
    if conn.execute("SELECT 1 FROM meta WHERE key = 'origin'").fetchone() is None:
        return "holds no glasslog log (no origin recorded)"
    missing = [t for t in _TABLES if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is None]
    if missing:
        return f"holds an incomplete glasslog log (missing tables: {', '.join(missing)}): the database is damaged"
    if conn.execute("SELECT 1 FROM log_state WHERE id = 1").fetchone() is None:
        return "holds an incomplete glasslog log (no log_state row): the database is damaged"
    return None


class PostgresStore(_SideTables):
    """A log's storage in a PostgreSQL database. One instance per thread (or one thread at a time);
    any number of instances, in any number of processes and hosts, may share the database."""

    def __init__(self, url: str, pool: ConnectionPool):
        self._url = url
        self.location = redact(url)
        self._pool = pool
        self._pid = os.getpid()
        self._cache = _SharedStripCache()  # replaced by the log's shared cache once the log is known
        self._tail: tuple[int, dict[int, bytes]] | None = None  # (tree size, its partial strips) after our last batch
        self._closed = False
        self.read_model = _ReadModel(self)
        self.columnar = ColumnStore(self)

    # ----------------------------------------------------------------- set up
    @classmethod
    def create(cls, url: str, meta: dict[str, str]) -> PostgresStore:
        """Create the log's tables and record its settings (``meta``) in an empty database.

        Raises:
            StorageError: the database already holds a log (nothing is changed).
            StorageUnavailable: the server cannot be reached.
        """
        store = cls(url, _pool_for(url))

        def run(conn: psycopg.Connection) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))  # concurrent creates: one wins
                if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is not None:
                    row = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
                    if row is not None:
                        raise StorageError(f"{store.location} already holds a glasslog log (origin {row[0]})")
                for table in ("log_state", "entries"):
                    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None and \
                            conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                        raise StorageError(f"{store.location} holds part of a glasslog log (rows in {table}, no origin)")
                for stmt in [*_SCHEMA, *_COLUMNAR_SCHEMA, RARE_TYPES_INDEX]:
                    conn.execute(stmt)
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO meta (key, value) VALUES (%s, %s)", list(meta.items()))
                conn.execute("INSERT INTO log_state (id, tree_size, root) VALUES (1, 0, NULL)")
                conn.execute("INSERT INTO index_state (id, upto) VALUES (1, 0)")

        store._write_once(run)
        store._cache = _cache_for(url, meta)
        return store

    @classmethod
    def open(cls, url: str) -> PostgresStore:
        """Open the log in a database, checking it holds one.

        Raises:
            StorageError: the database holds no glasslog log (left untouched).
            StorageUnavailable: the server cannot be reached.
        """
        store = cls(url, _pool_for(url))
        why = store._read(_why_not_a_log)
        if why is not None:
            raise StorageError(f"{store.location} {why}")
        store._cache = _cache_for(url, store.meta())
        return store

    def close(self) -> None:
        """Nothing to release: connections belong to the process's shared pool (see ``close_pools``)."""
        self._closed = True

    # ----------------------------------------------------------------- connections
    def _getconn(self) -> psycopg.Connection:
        if self._closed:
            raise StorageError(f"the store for {self.location} was closed")
        if self._pool.closed or self._pid != os.getpid():  # close_pools() was called, or this is a forked child
            self._pool, self._pid = _pool_for(self._url), os.getpid()
        for attempt in (0, 1):
            try:
                return self._pool.getconn(timeout=_pool.WAIT_SECONDS)
            except PoolTimeout:
                fresh = None if attempt else _renew_pool(self._url, self._pool)
                if fresh is None:
                    raise StorageUnavailable(f"no connection to the log's database {self.location} within "
                                             f"{_pool.WAIT_SECONDS:.0f} s (server down, or every pooled connection busy)") from None
                self._pool = fresh
            except psycopg.Error as exc:
                raise _translate(exc, self.location) from exc
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """``fn(conn)`` on a pooled connection; retried once on a fresh one if the first was found broken.

        ``fn`` must only read (or be safe to run twice) and return materialised results.
        """
        for attempt in (0, 1):
            conn = self._getconn()
            try:
                return fn(conn)
            except psycopg.Error as exc:
                err = _translate(exc, self.location, conn)
                if attempt or not isinstance(err, _Broken):
                    raise err from exc
            finally:
                self._pool.putconn(conn)
            self._pool.check()  # discard the other connections the server dropped, then try once more
        raise AssertionError("unreachable")

    def _write_once(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """``fn(conn)`` on a pooled connection, not retried (it writes); driver errors translated."""
        conn = self._getconn()
        try:
            return fn(conn)
        except psycopg.Error as exc:
            raise _translate(exc, self.location, conn) from exc
        finally:
            self._pool.putconn(conn)

    def _fetchone(self, query: str, params: Sequence[Any] | None = None):
        return self._read(lambda conn: conn.execute(query, params, binary=True).fetchone())

    def _fetchall(self, query: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self._read(lambda conn: conn.execute(query, params, binary=True).fetchall())

    def meta(self) -> dict[str, str]:
        return dict(self._fetchall("SELECT key, value FROM meta"))

    @contextmanager
    def write(self) -> Iterator[_Tx]:
        conn, tree_size = self._begin_write()
        tail, self._tail = self._tail, None  # trusted again only once this transaction commits
        try:
            tx = _Tx(self, conn, tree_size, tail)
            try:
                yield tx
                tx._finish()
                if conn.info.transaction_status != TransactionStatus.INTRANS:  # a refused statement was swallowed
                    raise StorageError(f"the write transaction on {self.location} failed part way and was not committed")
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("COMMIT")
        except psycopg.Error as exc:  # from the commit
            _rollback(conn)
            raise _translate(exc, self.location, conn) from exc
        finally:
            self._pool.putconn(conn)
        self._tail = tx._tail if tx._tail is not None and tx._tail[0] == tx._end else None

    def _begin_write(self) -> tuple[psycopg.Connection, int]:
        """Begin a transaction and take the log's write lock, in one round trip (BEGIN and the locking read
        sent together); a pooled connection the server dropped is replaced once."""
        for attempt in (0, 1):
            conn = self._getconn()
            try:
                cur = conn.execute("BEGIN; SELECT tree_size FROM log_state WHERE id = 1 FOR UPDATE")
                cur.nextset()
                row = cur.fetchone()
                if row is None:
                    raise StorageError(f"{self.location} has no log_state row: the database is damaged")
                return conn, row[0]
            except BaseException as exc:
                _rollback(conn)
                self._pool.putconn(conn)
                if not isinstance(exc, psycopg.Error):
                    raise
                err = _translate(exc, self.location, conn)
                if attempt or not isinstance(err, _Broken):
                    raise err from exc
            self._pool.check()
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ entries, hashes, checkpoints
    def size(self) -> int:
        row = self._fetchone("SELECT tree_size FROM log_state WHERE id = 1")
        if row is None:
            raise StorageError(f"{self.location} has no log_state row: the database is damaged")
        return row[0]

    def signed_size(self) -> int:
        row = self._fetchone("SELECT tree_size FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
        return 0 if row is None else row[0]

    def entry(self, index: int):
        row = self._fetchone("SELECT data FROM entries WHERE idx = %s", (index,))
        return None if row is None else row[0]

    def _paged_by_idx(self, query: str, params: tuple, start: int, end: int, page: int = PAGE_ROWS) -> Iterator[tuple]:
        """Rows of ``query`` (``... idx >= %s AND idx < %s ORDER BY idx LIMIT %s`` after ``params``), a page at a time."""
        while start < end:
            rows = self._fetchall(query, (*params, start, end, page))
            yield from rows
            if len(rows) < page:
                return
            start = rows[-1][0] + 1

    def entries(self, start: int, end: int):
        yield from self._paged_by_idx("SELECT idx, data FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx LIMIT %s",
                                      (), start, end)

    def typed_entries(self, start: int, end: int):
        yield from self._paged_by_idx(
            "SELECT idx, type, data FROM entries WHERE idx >= %s AND idx < %s ORDER BY idx LIMIT %s", (), start, end)

    def entries_of_types(self, types, start, end=None):
        types = list(types)
        if end is None:  # as of now: entries appended while iterating are not included
            end = self.size()
        rare = "" if {"decision", "outcome"} & set(types) else " AND " + RARE_TYPES_CONDITION  # the partial index
        yield from self._paged_by_idx(
            f"SELECT idx, type, data FROM entries WHERE type = ANY(%s){rare} AND idx >= %s AND idx < %s ORDER BY idx LIMIT %s",
            (types,), start, end)

    def _strips_on(self, conn: psycopg.Connection, keys: Iterable[HashKey] | None = None,
                   ids: Iterable[int] | None = None) -> dict[int, bytes]:
        """The strips holding the hashes at ``keys`` (through the cache), or the strips ``ids`` as stored now."""
        if keys is not None:
            need: dict[int, int] = {}
            for level, index in keys:
                sid = S.strip_id(level, index)
                length = (index % S.STRIP + 1) * 32
                if need.get(sid, 0) < length:
                    need[sid] = length
            found, wanted = self._cache.lookup(need)
        else:
            found, wanted = {}, list(ids or ())
        if wanted:
            rows = conn.execute("SELECT id, strip FROM hashes WHERE id = ANY(%s::bigint[])", (_int_array(wanted),),
                                binary=True).fetchall()
            offer = self._cache.offer
            for sid, strip in rows:
                found[sid] = strip
                offer(sid, strip)
        return found

    def hashes(self, keys: Iterable[HashKey]) -> dict[HashKey, bytes]:
        # The hot path of every proof: cached strips first, then one read of the rest (``_read_strips``).
        out: dict[HashKey, bytes] = {}
        missing: dict[int, list[tuple[HashKey, int]]] = {}
        cache = self._cache
        full, edge = cache._full, cache._edge
        shift, width = S.LEVEL_SHIFT, S.STRIP
        for key in keys:
            level, index = key
            sid = (level << shift) | (index // width)
            offset = (index % width) * 32
            strip = full.get(sid)
            if strip is None:
                e = edge.get(level)
                if e is not None and e[0] == sid and len(e[1]) >= offset + 32:
                    strip = e[1]
            if strip is None:
                missing.setdefault(sid, []).append((key, offset))
            else:
                out[key] = strip[offset : offset + 32]
        if missing:
            for sid, strip in self._read(lambda conn: _read_strips(conn, missing)):
                cache.offer(sid, strip)
                for key, offset in missing.pop(sid, ()):
                    h = strip[offset : offset + 32]
                    if len(h) != 32:
                        missing[sid] = [(key, offset)]
                        break
                    out[key] = h
            if missing:
                level, index = next(iter(missing.values()))[0][0]
                raise StorageError(f"stored hash at level {level}, index {index} is missing: the database is damaged")
        return out

    def stored_hashes(self, level: int, start: int, end: int):
        if end <= start:
            return
        first, last = S.strip_id(level, start), S.strip_id(level, end - 1)
        while first <= last:
            rows = self._fetchall("SELECT id, strip FROM hashes WHERE id >= %s AND id <= %s ORDER BY id LIMIT %s",
                                  (first, last, STRIP_PAGE))
            for sid, strip in rows:
                yield from S.iter_strip(sid, strip, start, end)
            if len(rows) < STRIP_PAGE:
                return
            first = rows[-1][0] + 1

    def checkpoint(self, tree_size: int | None):
        if tree_size is None:
            row = self._fetchone("SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
        else:
            row = self._fetchone("SELECT note FROM checkpoints WHERE tree_size = %s", (tree_size,))
        return None if row is None else row[0]

    def checkpoint_covering(self, index: int):
        row = self._fetchone("SELECT note FROM checkpoints WHERE tree_size > %s ORDER BY tree_size LIMIT 1", (index,))
        return None if row is None else row[0]

    def checkpoints(self):
        after = -1
        while True:
            rows = self._fetchall("SELECT tree_size, root, note, created_at FROM checkpoints WHERE tree_size > %s "
                                  "ORDER BY tree_size LIMIT %s", (after, PAGE_ROWS))
            yield from rows
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][0]

    # ------------------------------------------------------------ private values
    def private_value(self, commitment: str, entry_index: int | None):
        if entry_index is None:
            row = self._fetchone("SELECT kind, salt, value FROM private_values WHERE commitment = %s AND erased_at IS NULL "
                                 "LIMIT 1", (commitment,))
        else:
            row = self._fetchone("SELECT kind, salt, value FROM private_values WHERE entry_index = %s AND commitment = %s "
                                 "AND erased_at IS NULL LIMIT 1", (entry_index, commitment))
        return None if row is None else (row[0], row[1], row[2])

    def private_values_for(self, indexes):
        out: dict[int, dict[str, tuple[str, bytes, bytes]]] = {}
        for part in _in_chunks(indexes):
            rows = self._fetchall("SELECT entry_index, kind, commitment, salt, value FROM private_values "
                                  "WHERE erased_at IS NULL AND entry_index = ANY(%s::bigint[])", (_int_array(part),))
            for idx, kind, commitment, salt, value in rows:
                out.setdefault(idx, {})[kind] = (commitment, salt, value)
        return out

    def private_values_between(self, start, end, kinds):
        kinds = list(kinds)
        if not kinds or end <= start:
            return
        rows = self._fetchall("SELECT entry_index, kind, value FROM private_values WHERE entry_index >= %s "
                              "AND entry_index < %s AND kind = ANY(%s) AND erased_at IS NULL "
                              "ORDER BY entry_index, kind LIMIT %s", (start, end, kinds, PAGE_ROWS))
        while True:
            yield from rows
            if len(rows) < PAGE_ROWS:
                return
            last_index, last_kind = rows[-1][0], rows[-1][1]
            rows = self._fetchall("SELECT entry_index, kind, value FROM private_values WHERE (entry_index, kind) > (%s, %s) "
                                  "AND entry_index < %s AND kind = ANY(%s) AND erased_at IS NULL "
                                  "ORDER BY entry_index, kind LIMIT %s", (last_index, last_kind, end, kinds, PAGE_ROWS))

    def erased_for(self, indexes):
        out: dict[int, set[str]] = {}
        for part in _in_chunks(indexes):
            rows = self._fetchall("SELECT entry_index, kind FROM private_values "
                                  "WHERE erased_at IS NOT NULL AND entry_index = ANY(%s::bigint[])", (_int_array(part),))
            for idx, kind in rows:
                out.setdefault(idx, set()).add(kind)
        return out

    def erasure_of(self, commitment: str):
        row = self._fetchone("SELECT erased_at, erasure_reason FROM private_values WHERE commitment = %s "
                             "AND erased_at IS NOT NULL LIMIT 1", (commitment,))
        return None if row is None else (row[0], row[1])

    def find_private(self, kind: str, lookup: bytes) -> list[int]:
        rows = self._fetchall("SELECT entry_index FROM private_values WHERE lookup = %s AND kind = %s AND erased_at IS NULL "
                              "ORDER BY entry_index", (lookup, kind))
        return [r[0] for r in rows]

    def erase_private(self, commitment: str, entry_index: int | None, reason: str, at: str) -> bool:
        """Erase a value, its salt and its lookup hash, the read model's label opened from it and its columnar copy, in
        one transaction."""
        where, params = "commitment = %s AND erased_at IS NULL", [commitment]
        if entry_index is not None:
            where, params = "entry_index = %s AND " + where, [entry_index, commitment]

        def run(conn: psycopg.Connection) -> bool:
            with conn.transaction():
                row = conn.execute(f"SELECT entry_index, kind FROM private_values WHERE {where} LIMIT 1 FOR UPDATE",
                                   params).fetchone()
                if row is None:
                    return False
                conn.execute("UPDATE private_values SET salt = NULL, value = NULL, lookup = NULL, erased_at = %s, "
                             "erasure_reason = %s WHERE entry_index = %s AND kind = %s", (at, reason, row[0], row[1]))
                if row[1] == "output":  # the read model's label was opened from this value
                    conn.execute("UPDATE decision_index SET label = NULL WHERE idx = %s", (row[0],))
                scrub_in_tx(conn, row[0], row[1])  # and the columnar copy (storage.columnar)
                return True

        return self._write_once(run)
