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

import atexit
import functools
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import strips as S
from ..base import (
    ApiKeyRow,
    DecisionRow,
    HashKey,
    PrivateRow,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    TransactionAborted,
)
from .url import redact

__all__ = ["PostgresStore", "close_pools", "POOL_MIN_SIZE", "POOL_MAX_SIZE", "WAIT_SECONDS"]

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 8
WAIT_SECONDS = 30.0  # for a pooled connection, for the write lock (as SQLite's busy timeout)
CONNECT_TIMEOUT = 10
PAGE_ROWS = 10_000  # rows per statement of a long read
STRIP_PAGE = 2_000  # strips (up to 2 MB) per statement of a long read of stored hashes
_CREATE_LOCK = 0x676C6173736C6F67  # advisory lock serialising concurrent creates ("glasslog")

T = TypeVar("T")

# Text columns that are compared or ordered use the C collation, so results
# are ordered byte-wise as in SQLite whatever the database's default locale.
_COSIGNATURES = ('CREATE TABLE IF NOT EXISTS cosignatures (tree_size bigint NOT NULL, witness text COLLATE "C" NOT NULL,'
                 " line text NOT NULL, at text NOT NULL, PRIMARY KEY (tree_size, witness))")
"""Witness cosignatures (``glasslog.server.cosigning``), one row per (tree size, witness); added after the first
PostgreSQL release, so made on first write in a log created before it, and read as empty until then."""
_INGESTED = ('CREATE TABLE IF NOT EXISTS ingested (deployment text COLLATE "C" NOT NULL, key bytea NOT NULL,'
             " entry_index bigint NOT NULL, PRIMARY KEY (deployment, key))")
"""Ingested telemetry keys (``glasslog.ingest``); added after the first PostgreSQL release, so made on first write
(under the log's write lock) in a log created before it, and read as empty until then."""
_SCHEMA = [
    'CREATE TABLE IF NOT EXISTS meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL)',
    "CREATE TABLE IF NOT EXISTS log_state (id integer PRIMARY KEY CHECK (id = 1), tree_size bigint NOT NULL, root bytea)",
    "CREATE TABLE IF NOT EXISTS index_state (id integer PRIMARY KEY CHECK (id = 1), upto bigint NOT NULL)",
    'CREATE TABLE IF NOT EXISTS entries (idx bigint PRIMARY KEY, type text COLLATE "C" NOT NULL, data bytea NOT NULL)',
    "CREATE TABLE IF NOT EXISTS hashes (id bigint PRIMARY KEY, strip bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    " tree_size bigint PRIMARY KEY, root bytea NOT NULL, note text NOT NULL, created_at text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS private_values ("
    ' entry_index bigint NOT NULL, kind text COLLATE "C" NOT NULL, commitment text COLLATE "C" NOT NULL,'
    " salt bytea, value bytea, lookup bytea, erased_at text, erasure_reason text, PRIMARY KEY (entry_index, kind))",
    "CREATE INDEX IF NOT EXISTS private_values_by_lookup ON private_values (lookup) WHERE lookup IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS api_keys ("
    ' key_id text COLLATE "C" PRIMARY KEY, name text NOT NULL, role text NOT NULL, secret_hash bytea NOT NULL,'
    " deployments text NOT NULL DEFAULT '[]', created_at text COLLATE \"C\" NOT NULL, revoked_at text)",
    "CREATE TABLE IF NOT EXISTS receipt_token_hashes (entry_index bigint PRIMARY KEY, token_hash bytea NOT NULL)",
    'CREATE TABLE IF NOT EXISTS oversight_secret (name text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)',
    "CREATE TABLE IF NOT EXISTS decision_index ("
    ' idx bigint PRIMARY KEY, model text COLLATE "C" NOT NULL, deployment text COLLATE "C" NOT NULL,'
    ' time text COLLATE "C" NOT NULL, label text COLLATE "C", has_subject smallint NOT NULL)',
    "CREATE INDEX IF NOT EXISTS decision_index_model ON decision_index (model, idx)",
    "CREATE INDEX IF NOT EXISTS decision_index_deployment ON decision_index (deployment, idx)",
    "CREATE TABLE IF NOT EXISTS outcome_index (idx bigint PRIMARY KEY, decision bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outcome_index_decision ON outcome_index (decision)",
    "CREATE TABLE IF NOT EXISTS leaf_index (leaf_hash bytea PRIMARY KEY, idx bigint NOT NULL)",
    _INGESTED,
    _COSIGNATURES,
]
_TABLES = ("meta", "log_state", "index_state", "entries", "hashes", "checkpoints", "private_values", "api_keys",
           "receipt_token_hashes", "oversight_secret", "decision_index", "outcome_index", "leaf_index")


# ------------------------------------------------------------------ pools
_pools: dict[tuple[int, str], ConnectionPool] = {}
_pools_lock = threading.Lock()


def _configure(conn: psycopg.Connection) -> None:
    # lock_timeout bounds the wait for the log's write lock (then StorageUnavailable, as SQLite's busy timeout);
    # a session idle inside a transaction (a stuck client holding the lock) is ended by the server; keepalives
    # let the server notice a client host that vanished (TCP only; ignored on unix sockets).
    ms = int(WAIT_SECONDS * 1000)
    for stmt in (f"SET lock_timeout = {ms}", "SET idle_in_transaction_session_timeout = 120000",
                 "SET tcp_keepalives_idle = 30", "SET tcp_keepalives_interval = 10", "SET tcp_keepalives_count = 3"):
        conn.execute(stmt)


def _pool_for(url: str) -> ConnectionPool:
    """The process's pool for ``url``, opened on first use (one per URL per process: forked children get their own).

    Raises:
        StorageUnavailable: the server cannot be reached, or refuses the connection.
    """
    key = (os.getpid(), url)
    pool = _pools.get(key)
    if pool is not None and not pool.closed:
        return pool
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None and not pool.closed:
            return pool
        location = redact(url)
        try:  # fail now and say why (a pool would retry a refused connection until its timeout)
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True).close()
        except psycopg.Error as exc:
            raise StorageUnavailable(f"cannot connect to the log's database {location}: {_one_line(exc)}") from None
        pool = ConnectionPool(url, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE, open=False, timeout=WAIT_SECONDS,
                              name=location, configure=_configure,
                              kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT, "keepalives": 1,
                                      "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3})
        try:
            pool.open(wait=True, timeout=WAIT_SECONDS)
        except PoolTimeout:
            pool.close()
            raise StorageUnavailable(f"cannot connect to the log's database {location} within {WAIT_SECONDS:.0f} s") from None
        _pools[key] = pool
        return pool


def _renew_pool(url: str, stale: ConnectionPool) -> ConnectionPool | None:
    """A fresh pool for ``url`` if the server answers although ``stale`` gave no connection in time, else None.

    After an outage a pool retries its connections with exponential backoff
    (up to minutes apart), so it can lag far behind a server that is back;
    the fresh pool connects at once. Connections lent out by the stale pool
    keep working and are closed when given back.
    """
    key = (os.getpid(), url)
    with _pools_lock:
        current = _pools.get(key)
        if current is not None and current is not stale and not current.closed:
            return current  # another store renewed it meanwhile
        try:
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True).close()
        except psycopg.Error:
            return None  # the server is away: the stale pool is right
        if _pools.get(key) is stale:
            del _pools[key]
    try:
        stale.close(timeout=1.0)
    except Exception:  # noqa: BLE001 - best effort: it is replaced either way
        pass
    return _pool_for(url)


def close_pools() -> None:
    """Close this process's connection pools (tests, and at interpreter exit). Stores opened before are unusable after."""
    with _pools_lock:
        mine = [k for k in _pools if k[0] == os.getpid()]
        pools = [_pools.pop(k) for k in mine]
    for pool in pools:
        try:
            pool.close(timeout=5)
        except Exception:  # noqa: BLE001 - best effort
            pass


atexit.register(close_pools)


# ------------------------------------------------------------------ cached strips
SHARED_CACHED_LEVEL = 3
"""Full strips from this level up are cached, once per log per process (at most ``strips.CACHE_ROWS``, 16 MiB):
the whole tree above the bottom three levels up to ~2M entries."""


class _SharedStripCache:
    """Stored hashes of one log kept in memory, shared by the process's stores of it (a dict's get and set are
    atomic under the GIL, so threads share it without a lock).

    - full strips from ``SHARED_CACHED_LEVEL`` up: they never change;
    - the latest partial strip of each level (the tree's right edge, which every proof against a recent tree
      size needs): a strip only ever grows, so a cached one answers for the hashes it holds, and is read again
      when a hash beyond it is wanted.

    So a proof reads about three strips (levels 0 to 2 of its own path).
    """

    def __init__(self) -> None:
        self._full: dict[int, bytes] = {}
        self._edge: dict[int, tuple[int, bytes]] = {}  # level -> (strip id, its bytes when last read)

    def lookup(self, need: dict[int, int]) -> tuple[dict[int, bytes], list[int]]:
        """``(cached strips, ids to read)`` for ``{strip id: bytes needed from its start}``."""
        found, missing = {}, []
        full, edge = self._full, self._edge
        for sid, length in need.items():
            hit = full.get(sid)
            if hit is None:
                e = edge.get(sid >> S.LEVEL_SHIFT)
                if e is not None and e[0] == sid and len(e[1]) >= length:
                    hit = e[1]
            if hit is None:
                missing.append(sid)
            else:
                found[sid] = hit
        return found, missing

    def offer(self, sid: int, strip) -> None:
        """Keep a strip just read, if it is one this cache keeps."""
        if not isinstance(strip, bytes):
            return
        level = sid >> S.LEVEL_SHIFT
        if len(strip) == S.STRIP_BYTES:
            if level >= SHARED_CACHED_LEVEL and len(self._full) < S.CACHE_ROWS:
                self._full[sid] = strip
        else:
            e = self._edge.get(level)
            if e is None or sid > e[0] or (sid == e[0] and len(strip) > len(e[1])):
                self._edge[level] = (sid, strip)


_caches: dict[tuple[int, str, str], _SharedStripCache] = {}


def _cache_for(url: str, meta: dict[str, str]) -> _SharedStripCache:
    """The process's strip cache of the log at ``url`` (named by its verifier key and creation time too, so that
    another log later created at the same URL never sees this one's strips)."""
    key = (os.getpid(), url, f"{meta.get('verifier_key')} {meta.get('created_at')}")
    with _pools_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = _SharedStripCache()
        return cache


# ------------------------------------------------------------------ errors
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


class _Broken(StorageUnavailable):
    """The connection was found broken (the server restarted or dropped it); a read may be retried on another."""


def _translate(exc: psycopg.Error, location: str, conn: psycopg.Connection | None = None) -> StorageError:
    """The storage interface's error for a driver error."""
    detail = _one_line(exc)
    if isinstance(exc, pgerrors.IntegrityError):
        return StorageConflict(f"the database refused a write: {detail}")
    if isinstance(exc, pgerrors.LockNotAvailable):
        return StorageUnavailable(f"the log's database {location} is busy: its write lock was not free within "
                                  f"{WAIT_SECONDS:.0f} s ({detail})")
    if isinstance(exc, (pgerrors.QueryCanceled, pgerrors.TransactionRollback)):
        return StorageUnavailable(f"the log's database {location} is busy: {detail}")
    if isinstance(exc, psycopg.OperationalError) or (conn is not None and conn.closed):
        cls = _Broken if conn is not None and conn.closed else StorageUnavailable
        return cls(f"lost the connection to the log's database {location}: {detail}")
    if isinstance(exc, psycopg.InterfaceError):
        return StorageUnavailable(f"the connection to the log's database {location} is unusable: {detail}")
    return StorageError(f"the log's database {location} failed: {detail}")


def _int_array(values: Iterable[int]) -> str:
    """A ``bigint[]`` parameter as its text literal: far cheaper to send than a list adapted element by element."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _partial_strip_ids(size: int) -> set[int]:
    """Ids of the strips that are partial (still growing) in a tree of ``size`` leaves."""
    out, level = set(), 0
    while size >> level:
        index = size >> level
        if index % S.STRIP:
            out.add(S.strip_id(level, index))
        level += 1
    return out


_STRIPS_NAME = b"glasslog_strips"
_STRIPS_QUERY = b"SELECT id, strip FROM hashes WHERE id = ANY($1::bigint[])"


def _read_strips(conn: psycopg.Connection, ids: Iterable[int]) -> list[tuple[int, bytes]]:
    """``(id, strip)`` of stored strips, through libpq directly (a statement prepared on the connection, binary
    results): the read behind every proof, at a third of the client time of the same query through a cursor.
    For autocommit reads only (outside a transaction, a statement not yet prepared fails harmlessly)."""
    pg = conn.pgconn
    param = [_int_array(ids).encode()]
    for attempt in (0, 1):
        res = pg.exec_prepared(_STRIPS_NAME, param, result_format=1)
        if res.status == ExecStatus.TUPLES_OK:
            get = res.get_value
            return [(int.from_bytes(get(k, 0), "big", signed=True), get(k, 1)) for k in range(res.ntuples)]
        if attempt == 0 and res.error_field(DiagnosticField.SQLSTATE) == b"26000":  # not prepared on this connection
            prepared = pg.prepare(_STRIPS_NAME, _STRIPS_QUERY)
            if prepared.status != ExecStatus.COMMAND_OK:
                raise pgerrors.error_from_result(prepared, encoding=conn.info.encoding)
            continue
        raise pgerrors.error_from_result(res, encoding=conn.info.encoding)
    raise AssertionError("unreachable")


def _rollback(conn: psycopg.Connection) -> None:
    """End a write transaction without storing it (nothing to do on a broken connection: the server ends it)."""
    if not conn.closed and conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            pass


def _in_chunks(items: Sequence, size: int = PAGE_ROWS) -> Iterator[list]:
    items = list(items)
    for k in range(0, len(items), size):
        yield items[k : k + size]


def _copy(conn: psycopg.Connection, table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert rows with binary COPY (the fastest bulk insert; a duplicate key fails the whole COPY)."""
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(list(types))
        for row in rows:
            cp.write_row(row)


def _upsert_strips(conn: psycopg.Connection, rows: Sequence[tuple[int, bytes]]) -> None:
    if rows:
        conn.execute("INSERT INTO hashes (id, strip) SELECT * FROM unnest(%s::bigint[], %s::bytea[]) "
                     "ON CONFLICT (id) DO UPDATE SET strip = EXCLUDED.strip",
                     ([r[0] for r in rows], [r[1] for r in rows]))


# ------------------------------------------------------------------ write transactions
def _in_tx(method):
    """Translate driver errors of a ``_Tx`` method, so that code inside the batch sees the interface's errors."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except psycopg.Error as exc:
            raise _translate(exc, self._store.location, self._conn) from exc

    return wrapper


class _Tx:
    """A write transaction holding the row lock on ``log_state`` (see the module docstring)."""

    def __init__(self, store: PostgresStore, conn: psycopg.Connection, tree_size: int,
                 tail: tuple[int, dict[int, bytes]] | None = None):
        self._store = store
        self._conn = conn
        self.tree_size = tree_size
        self._end = tree_size  # entries stored so far, this transaction's included
        self._signed: int | None = None  # tree size of the checkpoint this transaction stored
        self._pending: dict[int, bytes] = {}  # strips to upsert, sent with the checkpoint (one round trip fewer)
        # The partial strips as this store's last batch left them (if nobody appended since): the next batch
        # extends them without reading them back.
        self._tail: tuple[int, dict[int, bytes]] | None = tail if tail is not None and tail[0] == tree_size else None

    @_in_tx
    def hashes(self, keys: Iterable[HashKey]) -> dict[HashKey, bytes]:
        keys = list(keys)
        self._flush()
        return S.hashes_from_strips(keys, self._store._strips_on(self._conn, keys))

    def _flush(self) -> None:
        """Upsert the strips written so far (done with the checkpoint's statement when there is one)."""
        if self._pending:
            _upsert_strips(self._conn, list(self._pending.items()))
            self._pending = {}

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        try:
            self._flush()  # what was written before belongs to the enclosing transaction
        except psycopg.Error as exc:
            raise _translate(exc, self._store.location, self._conn) from exc
        end, tail = self._end, self._tail
        try:
            with self._conn.transaction():  # nested: SAVEPOINT, and ROLLBACK TO it if the block raises
                yield
                self._flush()
        except BaseException as exc:
            self._end, self._tail, self._pending = end, tail, {}
            if self._conn.info.transaction_status != TransactionStatus.INTRANS:  # broken, or ended by the server
                raise TransactionAborted(f"the database ended the write transaction: {_one_line(exc)}") from exc
            if isinstance(exc, psycopg.Error):
                raise _translate(exc, self._store.location, self._conn) from exc
            raise

    @_in_tx
    def write_batch(self, first_index, entries, levels, first, private) -> None:
        # Any part may be empty: a group commit writes each caller's entries and private values (each in its
        # savepoint), then the group's hashes in one call.
        conn = self._conn
        if entries:
            if first_index != self._end:
                raise StorageConflict(f"a batch starting at index {first_index} does not extend the log, which ends at"
                                      f" {self._end}")
            _copy(conn, "entries", ("idx", "type", "data"), ("int8", "text", "bytea"),
                  ((first_index + i, t, d) for i, (t, d) in enumerate(entries)))
            self._end = first_index + len(entries)
        if levels:
            base = first[0]  # the tree size the new hashes extend
            known = self._tail[1] if self._tail is not None and self._tail[0] == base else {}

            pending = self._pending

            def existing(ids: list[int]) -> dict[int, bytes]:
                found = {sid: pending.get(sid) or known[sid] for sid in ids if sid in pending or sid in known}
                missing = [sid for sid in ids if sid not in found]
                if missing:
                    found.update(self._store._strips_on(conn, ids=missing))  # as stored: never a cached copy
                return found

            rows = S.strip_rows(levels, first, existing)
            pending.update(rows)
            size = base + len(levels[0])
            strips = {**known, **dict(rows)}
            self._tail = (size, {sid: strips[sid] for sid in _partial_strip_ids(size) if sid in strips})
        if private:
            _copy(conn, "private_values", ("entry_index", "kind", "commitment", "salt", "value", "lookup"),
                  ("int8", "text", "text", "bytea", "bytea", "bytea"),
                  ((p.entry_index, p.kind, p.commitment, p.salt, p.value, p.lookup) for p in private))

    @_in_tx
    def put_checkpoint(self, tree_size: int, root: bytes, note: str, created_at: str) -> None:
        if tree_size != self._end:
            raise StorageConflict(f"a checkpoint at tree size {tree_size} does not cover the log, which ends at {self._end}")
        # The compare-and-swap and the insert in one statement: the checkpoint is stored only if log_state moved;
        # sent in one round trip with the batch's strips.
        conn, pending = self._conn, self._pending
        with conn.pipeline() if pending else nullcontext():
            if pending:
                _upsert_strips(conn, list(pending.items()))
            cur = conn.execute(
                "WITH moved AS (UPDATE log_state SET tree_size = %s, root = %s WHERE id = 1 AND tree_size = %s RETURNING 1) "
                "INSERT INTO checkpoints (tree_size, root, note, created_at) SELECT %s, %s, %s, %s FROM moved",
                (tree_size, root, self.tree_size, tree_size, root, note, created_at))
        self._pending = {}
        if cur.rowcount != 1:
            raise StorageConflict(f"the latest checkpoint moved from tree size {self.tree_size} during the batch")
        self._signed = tree_size

    @_in_tx
    def entries_of_types(self, types, start, end):
        return iter(self._conn.execute("SELECT idx, type, data FROM entries WHERE type = ANY(%s) AND idx >= %s AND idx < %s "
                                       "ORDER BY idx", (list(types), start, end)).fetchall())

    @_in_tx
    def put_receipt_tokens(self, rows) -> None:
        rows = list(rows)
        if rows:
            _copy(self._conn, "receipt_token_hashes", ("entry_index", "token_hash"), ("int8", "bytea"), rows)

    @_in_tx
    def put_ingested(self, rows) -> None:
        rows = list(rows)
        if rows:
            self._conn.execute(_INGESTED)  # a log created before the table existed (cheap: the table is there)
            _copy(self._conn, "ingested", ("deployment", "key", "entry_index"), ("text", "bytea", "int8"), rows)

    @_in_tx
    def put_api_key(self, key: ApiKeyRow) -> None:
        self._conn.execute(
            "INSERT INTO api_keys (key_id, name, role, secret_hash, deployments, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (key.key_id, key.name, key.role, key.secret_hash, json.dumps(list(key.deployments)), key.created_at))

    @_in_tx
    def revoke_api_key(self, key_id: str, at: str) -> bool:
        cur = self._conn.execute("UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL", (at, key_id))
        return cur.rowcount == 1

    @_in_tx
    def copy_private(self, rows: Sequence[tuple[PrivateRow, str | None, str | None]]) -> None:
        """Store private values as another store holds them: ``(row, erased_at, reason)``; an erased row keeps
        its commitment and erasure record, with no salt, value or lookup hash (``glasslog.storage.migrate``)."""
        rows = list(rows)
        if rows:
            _copy(self._conn, "private_values",
                  ("entry_index", "kind", "commitment", "salt", "value", "lookup", "erased_at", "erasure_reason"),
                  ("int8", "text", "text", "bytea", "bytea", "bytea", "text", "text"),
                  ((p.entry_index, p.kind, p.commitment, None if at else p.salt, None if at else p.value,
                    None if at else p.lookup, at, reason) for p, at, reason in rows))

    def _finish(self) -> None:
        self._flush()
        if self._end != self.tree_size and self._signed != self._end:
            raise StorageError(f"entries {self.tree_size}..{self._end - 1} were stored without a checkpoint covering them;"
                               " a batch is committed with its signed checkpoint")


# ------------------------------------------------------------------ read model
class _ReadModel:
    """The search index tables in the log's database."""

    def __init__(self, store: PostgresStore):
        self._s = store

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

    def index_of_leaf(self, leaf_hash: bytes) -> int | None:
        row = self._s._fetchone("SELECT idx FROM leaf_index WHERE leaf_hash = %s", (leaf_hash,))
        return None if row is None else row[0]

    def search(self, *, model, deployments, since, until, label, after, limit) -> list[int]:
        where, params = ["idx > %s"], [after]
        if model:
            where.append("model = %s")
            params.append(model)
        if deployments is not None:
            if not deployments:
                return []
            where.append("deployment = ANY(%s)")
            params.append(list(deployments))
        if since:
            where.append("time >= %s")
            params.append(since)
        if until:
            where.append("time < %s")
            params.append(until)
        if label is not None:
            where.append("label = %s")
            params.append(label)
        q = f"SELECT idx FROM decision_index WHERE {' AND '.join(where)} ORDER BY idx LIMIT %s"
        return [r[0] for r in self._s._fetchall(q, [*params, limit])]

    def outcomes_of(self, decision: int) -> list[int]:
        return [r[0] for r in self._s._fetchall("SELECT idx FROM outcome_index WHERE decision = %s ORDER BY idx", (decision,))]

    def deployment_stats(self, deployment: str):
        def run(conn):
            n, with_subject, first, last = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(has_subject), 0), MIN(time), MAX(time) FROM decision_index "
                "WHERE deployment = %s", (deployment,)).fetchone()
            outcomes = conn.execute("SELECT COUNT(*) FROM outcome_index o JOIN decision_index d ON d.idx = o.decision "
                                    "WHERE d.deployment = %s", (deployment,)).fetchone()[0]
            per_day = dict(conn.execute("SELECT substr(time, 1, 10), COUNT(*) FROM decision_index WHERE deployment = %s "
                                        "GROUP BY 1 ORDER BY 1", (deployment,)).fetchall())
            return int(n), int(with_subject), int(outcomes), first, last, {k: int(v) for k, v in per_day.items()}

        return self._s._read(run)

    def label_counts(self, deployment: str) -> dict[str, int]:
        rows = self._s._fetchall("SELECT COALESCE(label, 'null'), COUNT(*) FROM decision_index WHERE deployment = %s "
                                 "GROUP BY 1 ORDER BY 1", (deployment,))
        return {k: int(v) for k, v in rows}

    def decisions_between(self, start: int, end: int) -> list[DecisionRow]:
        rows = self._s._fetchall("SELECT idx, model, deployment, time, label, has_subject FROM decision_index "
                                 "WHERE idx >= %s AND idx < %s ORDER BY idx", (start, end))
        return [DecisionRow(i, m, d, t, lab, bool(s)) for i, m, d, t, lab, s in rows]

    def decisions_at(self, indexes: Sequence[int]) -> dict[int, DecisionRow]:
        out = {}
        for chunk in _in_chunks(indexes):
            rows = self._s._fetchall("SELECT idx, model, deployment, time, label, has_subject FROM decision_index "
                                     "WHERE idx = ANY(%s::bigint[])", (_int_array(chunk),))
            out.update((i, DecisionRow(i, m, d, t, lab, bool(s))) for i, m, d, t, lab, s in rows)
        return out


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


class PostgresStore:
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
                for stmt in _SCHEMA:
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
                return self._pool.getconn(timeout=WAIT_SECONDS)
            except PoolTimeout:
                fresh = None if attempt else _renew_pool(self._url, self._pool)
                if fresh is None:
                    raise StorageUnavailable(f"no connection to the log's database {self.location} within "
                                             f"{WAIT_SECONDS:.0f} s (server down, or every pooled connection busy)") from None
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
        yield from self._paged_by_idx(
            "SELECT idx, type, data FROM entries WHERE type = ANY(%s) AND idx >= %s AND idx < %s ORDER BY idx LIMIT %s",
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

    # ------------------------------------------------------------ witness cosignatures (a side table)
    def put_cosignature(self, tree_size: int, witness: str, line: str, at: str) -> None:
        def run(conn: psycopg.Connection) -> None:
            with conn.transaction():
                conn.execute(_COSIGNATURES)  # a log created before the table existed (cheap: the table is there)
                conn.execute("INSERT INTO cosignatures (tree_size, witness, line, at) VALUES (%s, %s, %s, %s) "
                             "ON CONFLICT (tree_size, witness) DO UPDATE SET line = EXCLUDED.line, at = EXCLUDED.at",
                             (tree_size, witness, line, at))

        self._write_once(run)

    def _cosignature_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._fetchall(query, params)
        except StorageError as exc:
            if isinstance(exc.__cause__, pgerrors.UndefinedTable):
                return []  # a log created before the table existed, with no cosignature yet
            raise

    def cosignatures(self, tree_size: int) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self._cosignature_rows(
            "SELECT witness, line, at FROM cosignatures WHERE tree_size = %s ORDER BY witness", (tree_size,))]

    def witness_sizes(self) -> dict[str, int]:
        return dict(self._cosignature_rows("SELECT witness, MAX(tree_size) FROM cosignatures GROUP BY witness"))

    def latest_cosigned_size(self, min_size: int) -> int | None:
        rows = self._cosignature_rows("SELECT MAX(tree_size) FROM cosignatures WHERE tree_size >= %s", (min_size,))
        return rows[0][0] if rows else None

    def cosigned_sizes(self) -> list[int]:
        return [r[0] for r in self._cosignature_rows("SELECT DISTINCT tree_size FROM cosignatures ORDER BY tree_size")]

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
        """Erase a value, its salt and its lookup hash, and the read model's label opened from it, in one transaction."""
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
                return True

        return self._write_once(run)

    # ------------------------------------------------------------ side tables
    def api_keys(self) -> list[ApiKeyRow]:
        rows = self._fetchall("SELECT key_id, name, role, secret_hash, deployments, created_at, revoked_at "
                              "FROM api_keys ORDER BY created_at, key_id")
        return [ApiKeyRow(k, n, r, h, tuple(json.loads(d)), c, rv) for k, n, r, h, d, c, rv in rows]

    def api_key(self, key_id: str) -> ApiKeyRow | None:
        row = self._fetchone("SELECT key_id, name, role, secret_hash, deployments, created_at, revoked_at "
                             "FROM api_keys WHERE key_id = %s", (key_id,))
        if row is None:
            return None
        k, n, r, h, d, c, rv = row
        return ApiKeyRow(k, n, r, h, tuple(json.loads(d)), c, rv)

    def receipt_token_hash(self, entry_index: int) -> bytes | None:
        row = self._fetchone("SELECT token_hash FROM receipt_token_hashes WHERE entry_index = %s", (entry_index,))
        return None if row is None else row[0]

    def ingested(self, deployment: str, keys) -> dict[bytes, int]:
        keys = list(keys)
        if not keys:
            return {}

        def run(conn: psycopg.Connection) -> dict[bytes, int]:
            if conn.execute("SELECT to_regclass('ingested')").fetchone()[0] is None:
                return {}  # a log created before the table existed, with nothing ingested yet
            rows = conn.execute("SELECT key, entry_index FROM ingested WHERE deployment = %s AND key = ANY(%s)",
                                (deployment, keys)).fetchall()
            return {bytes(k): i for k, i in rows}

        return self._read(run)

    def legacy_receipt_token(self, token_hash: bytes) -> int | None:
        return None  # first-release receipt tokens exist only in SQLite logs of that release

    def secret(self, name: str, new_value: bytes) -> bytes:
        def run(conn: psycopg.Connection) -> bytes:
            conn.execute("INSERT INTO oversight_secret (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                         (name, new_value))
            return conn.execute("SELECT value FROM oversight_secret WHERE name = %s", (name,)).fetchone()[0]

        return self._read(run)  # safe to run twice: the first value stored wins

    # ------------------------------------------------------------ for copying a log (glasslog.storage.migrate)
    def private_rows(self, start: int, end: int) -> Iterator[tuple[PrivateRow, str | None, str | None]]:
        cols = "entry_index, kind, commitment, salt, value, lookup, erased_at, erasure_reason"
        while start < end:
            stop = min(end, start + PAGE_ROWS)
            rows = self._fetchall(f"SELECT {cols} FROM private_values WHERE entry_index >= %s AND entry_index < %s "
                                  "ORDER BY entry_index, kind", (start, stop))
            for idx, kind, commitment, salt, value, lookup, at, reason in rows:
                yield PrivateRow(idx, kind, commitment, salt, value, lookup), at, reason
            start = stop

    def receipt_tokens(self) -> Iterator[tuple[int, bytes]]:
        after = -1
        while True:
            rows = self._fetchall("SELECT entry_index, token_hash FROM receipt_token_hashes WHERE entry_index > %s "
                                  "ORDER BY entry_index LIMIT %s", (after, PAGE_ROWS))
            yield from rows
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][0]

    def secrets(self) -> dict[str, bytes]:
        return dict(self._fetchall("SELECT name, value FROM oversight_secret"))

    def ingested_rows(self) -> Iterator[tuple[str, bytes, int]]:
        if self._fetchone("SELECT to_regclass('ingested')")[0] is None:
            return  # a log created before the table existed, with nothing ingested
        after: tuple = (-1, "", b"")
        while True:
            rows = self._fetchall("SELECT entry_index, deployment, key FROM ingested WHERE (entry_index, deployment, key) > "
                                  "(%s, %s, %s) ORDER BY entry_index, deployment, key LIMIT %s", (*after, PAGE_ROWS))
            for idx, deployment, key in rows:
                yield deployment, key, idx
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1]
