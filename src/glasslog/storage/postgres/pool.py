"""PostgreSQL connections for one log: settings, schema, the per-process connection pools, the shared cache of
stored hashes, driver-error translation and the bulk helpers the write path uses (see ``store.py``)."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import strips as S
from ..base import (
    StorageConflict,
    StorageError,
    StorageUnavailable,
)
from .url import redact

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
