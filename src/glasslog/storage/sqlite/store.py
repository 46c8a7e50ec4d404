"""The embedded back end: one SQLite database file (WAL) per log.

Layout of a data directory::

    <data-dir>/log.db        this back end's database: entries, stored hashes,
                             checkpoints, private values, meta, side tables
                             (API keys, receipt tokens, secrets) and the read model
    <data-dir>/log.key       signer key (kept by ``glasslog.ledger``), mode 0600
    <data-dir>/log.vkey      verifier key string, public
    <data-dir>/artifacts/    model artifacts, named by fingerprint

Durability: WAL mode with ``synchronous=FULL``; a batch is one transaction
(``BEGIN IMMEDIATE``, which takes SQLite's write lock, so appends from several
processes are serialised). When the write block returns the batch has been
synced to disk; if it raises, nothing of it is in the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import strips as S
from ..base import (
    ApiKeyRow,
    HashKey,
    StorageConflict,
    StorageError,
    TransactionAborted,
)
from ..readmodel import SqlReadModel
from .columnar import RARE_TYPES_CONDITION, RARE_TYPES_INDEX, ColumnStore, scrub_in_tx
from .columnar import SCHEMA as _COLUMNAR_SCHEMA
from .side import _errors, _immediate, _in_chunks, _SideTables

__all__ = ["SqliteStore", "DB_NAME", "ALLOW_SHARED_ENV", "is_log_database"]

DB_NAME = "log.db"

ALLOW_SHARED_ENV = "GLASSLOG_ALLOW_SHARED_DB"
"""Set to ``1`` to open a database file that others can read (refused by default)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, type TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (id INTEGER PRIMARY KEY, strip BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS private_values (
    entry_index INTEGER NOT NULL, kind TEXT NOT NULL, commitment TEXT NOT NULL,
    salt BLOB, value BLOB, lookup BLOB, erased_at TEXT, erasure_reason TEXT,
    PRIMARY KEY (entry_index, kind)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS private_values_by_lookup ON private_values(lookup) WHERE lookup IS NOT NULL;
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, secret_hash BLOB NOT NULL,
    deployments TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS receipt_token_hashes (entry_index INTEGER PRIMARY KEY, token_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS oversight_secret (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS decision_index (
    idx INTEGER PRIMARY KEY, model TEXT NOT NULL, deployment TEXT NOT NULL, time TEXT NOT NULL,
    label TEXT, has_subject INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS decision_index_model ON decision_index(model, idx);
CREATE INDEX IF NOT EXISTS decision_index_deployment ON decision_index(deployment, idx);
CREATE TABLE IF NOT EXISTS outcome_index (idx INTEGER PRIMARY KEY, decision INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outcome_index_decision ON outcome_index(decision);
CREATE TABLE IF NOT EXISTS leaf_index (leaf_hash BLOB PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ingested (
    deployment TEXT NOT NULL, key BLOB NOT NULL, entry_index INTEGER NOT NULL, PRIMARY KEY (deployment, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cosignatures (
    tree_size INTEGER NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (tree_size, witness)) WITHOUT ROWID;
"""
# Private values are keyed by (entry index, kind), so a batch's rows go to the
# end of the table: a key such as the (random) commitment costs a random B-tree
# page per row written, which measured as most of a decision batch's
# write-ahead log. Receipt tokens are keyed by index for the same reason.

_FIRST_PRIVATE_VALUES = "commitment TEXT PRIMARY KEY"  # the first release's table, migrated on open
_LOOKUP_KINDS_FIRST_RELEASE = ("subject",)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a log written by the first release to this schema, in one transaction (entries and hashes are untouched)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'private_values'").fetchone()
    if row is None or _FIRST_PRIVATE_VALUES not in row[0]:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE private_values RENAME TO private_values_first_release")
        conn.execute("DROP INDEX IF EXISTS private_values_lookup")
        conn.execute("DROP INDEX IF EXISTS private_values_entry")
        for statement in _SCHEMA.split(";"):  # executescript would commit the open transaction first
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO private_values(entry_index, kind, commitment, salt, value, lookup, erased_at, erasure_reason) "
            "SELECT entry_index, kind, commitment, salt, value, CASE WHEN kind IN ({}) THEN lookup END, erased_at, erasure_reason "
            "FROM private_values_first_release ORDER BY entry_index, kind".format(
                ",".join(f"'{k}'" for k in _LOOKUP_KINDS_FIRST_RELEASE)))
        conn.execute("DROP TABLE private_values_first_release")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _connect(db_path: Path) -> sqlite3.Connection:
    # check_same_thread=False: a store may be handed between threads (a server's
    # worker pool) as long as one thread uses it at a time.
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    # Overwrite deleted content with zeros, so that an erased private value does
    # not survive in free space of the database file (not every build has this on).
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def is_log_database(db_path: Path) -> str | None:
    """Why ``db_path`` is not a glasslog database, or None if it is one. Reads without changing the file."""
    if not db_path.is_file():
        return f"missing {db_path.name}"
    probe = sqlite3.connect(db_path, isolation_level=None, timeout=30.0)
    try:
        found = probe.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    except sqlite3.DatabaseError as exc:
        return f"{db_path.name} is not a glasslog database ({exc})"
    finally:
        probe.close()
    return None if found else f"{db_path.name} holds no glasslog log"


class _Tx:
    """A write transaction on SQLite (``BEGIN IMMEDIATE``: SQLite's one write lock)."""

    def __init__(self, store: SqliteStore, tree_size: int):
        self._store = store
        self._db = store._db
        self.tree_size = tree_size
        self._savepoints = 0

    def hashes(self, keys: Iterable[HashKey]) -> dict[HashKey, bytes]:
        return self._store.hashes(keys)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"batch_{self._savepoints}"
        self._db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException as exc:
            if not self._db.in_transaction:
                raise TransactionAborted(f"the database ended the write transaction: {exc}") from exc
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            raise
        self._db.execute(f"RELEASE {name}")

    def write_batch(self, first_index, entries, levels, first, private) -> None:
        db = self._db
        with _errors():
            db.executemany("INSERT INTO entries(idx, type, data) VALUES (?, ?, ?)",
                           [(first_index + i, t, d) for i, (t, d) in enumerate(entries)])
            db.executemany("INSERT OR REPLACE INTO hashes(id, strip) VALUES (?, ?)",
                           S.strip_rows(levels, first, self._store._strips))
            if private:
                db.executemany(
                    "INSERT INTO private_values(entry_index, kind, commitment, salt, value, lookup) VALUES (?, ?, ?, ?, ?, ?)",
                    [(p.entry_index, p.kind, p.commitment, p.salt, p.value, p.lookup) for p in private])

    def put_checkpoint(self, tree_size: int, root: bytes, note: str, created_at: str) -> None:
        latest = self._db.execute("SELECT MAX(tree_size) FROM checkpoints").fetchone()[0]
        if latest is not None and latest != self.tree_size:
            raise StorageConflict(f"the latest checkpoint moved from tree size {self.tree_size} to {latest} during the batch")
        with _errors():
            self._db.execute("INSERT INTO checkpoints(tree_size, root, note, created_at) VALUES (?, ?, ?, ?)",
                             (tree_size, root, note, created_at))

    def entries_of_types(self, types, start, end):
        types = list(types)
        yield from self._db.execute(
            f"SELECT idx, type, data FROM entries WHERE type IN ({','.join('?' * len(types))}) AND idx >= ? AND idx < ? "
            "ORDER BY idx", (*types, start, end))

    def put_receipt_tokens(self, rows) -> None:
        with _errors():
            self._db.executemany("INSERT INTO receipt_token_hashes(entry_index, token_hash) VALUES (?, ?)", rows)

    def put_ingested(self, rows) -> None:
        with _errors():
            self._db.executemany("INSERT INTO ingested(deployment, key, entry_index) VALUES (?, ?, ?)", rows)

    def put_api_key(self, key: ApiKeyRow) -> None:
        with _errors():
            self._db.execute(
                "INSERT INTO api_keys(key_id, name, role, secret_hash, deployments, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key.key_id, key.name, key.role, key.secret_hash, json.dumps(list(key.deployments)), key.created_at))

    def revoke_api_key(self, key_id: str, at: str) -> bool:
        cur = self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id))
        return cur.rowcount == 1

    def copy_private(self, rows) -> None:
        with _errors():
            self._db.executemany(
                "INSERT INTO private_values(entry_index, kind, commitment, salt, value, lookup, erased_at, erasure_reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(p.entry_index, p.kind, p.commitment, None if at else p.salt, None if at else p.value,
                  None if at else p.lookup, at, reason) for p, at, reason in rows])


class _ReadModel(SqlReadModel):
    """The search index tables in the log's SQLite file (reads shared with PostgreSQL: ``storage.readmodel``)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def indexed_upto(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'index_upto'").fetchone()
        return int(row[0]) if row else 0

    def add(self, start, upto, decisions, outcomes, leaves) -> bool:
        db = self._db
        with _immediate(db):
            if self.indexed_upto() != start:  # another process indexed meanwhile
                return False
            db.executemany("INSERT OR IGNORE INTO decision_index VALUES (?, ?, ?, ?, ?, ?)",
                           [(d.idx, d.model, d.deployment, d.time, d.label, int(d.has_subject)) for d in decisions])
            db.executemany("INSERT OR IGNORE INTO outcome_index VALUES (?, ?)", outcomes)
            db.executemany("INSERT OR IGNORE INTO leaf_index VALUES (?, ?)", leaves)
            # an output erased while these rows were being derived must not come back as a label
            db.execute("UPDATE decision_index SET label = NULL WHERE idx >= ? AND idx < ? AND idx IN (SELECT entry_index "
                       "FROM private_values WHERE kind = 'output' AND erased_at IS NOT NULL AND entry_index >= ? "
                       "AND entry_index < ?)", (start, upto, start, upto))
            db.execute("INSERT INTO meta(key, value) VALUES ('index_upto', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(upto),))
        return True

    def _all(self, query: str, params) -> list[tuple]:
        return self._db.execute(query, params).fetchall()

    def _in_ints(self, column: str, values) -> tuple[str, list]:
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    _in_texts = _in_ints


class SqliteStore(_SideTables):
    """A log's storage in one SQLite file. Not thread-safe: one instance per thread (or one thread at a time)."""

    def __init__(self, db_path: Path, conn: sqlite3.Connection):
        self.path = db_path
        self.location = str(db_path)
        self._db = conn
        self._cache = S.StripCache()
        self.read_model = _ReadModel(conn)
        self.columnar = ColumnStore(conn)
        self._lock_fd: int | None = None

    # ----------------------------------------------------------------- set up
    @classmethod
    def create(cls, db_path: Path, meta: dict[str, str]) -> SqliteStore:
        """Create the database with the log's settings (``meta``).

        Raises:
            StorageError: the file exists already.
        """
        if db_path.exists():
            raise StorageError(f"{db_path} exists already")
        # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the database file's mode.
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = _connect(db_path)
        conn.executescript(_SCHEMA + _COLUMNAR_SCHEMA + RARE_TYPES_INDEX + ";")
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", list(meta.items()))
        return cls(db_path, conn)

    @classmethod
    def open(cls, db_path: Path) -> SqliteStore:
        """Open a log's database, migrating a first-release schema.

        Raises:
            StorageError: the file is missing or is not a glasslog database (left untouched).
        """
        why = is_log_database(db_path)
        if why is not None:
            raise StorageError(why)
        mode = stat.S_IMODE(db_path.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO) and os.environ.get(ALLOW_SHARED_ENV) != "1":
            raise StorageError(
                f"{db_path} has mode {mode:04o}: it holds inputs, subject ids, salts and flag texts, so it must be readable"
                f" by its owner only (chmod 600 {db_path}); set {ALLOW_SHARED_ENV}=1 to open it anyway")
        conn = _connect(db_path)
        try:
            _migrate(conn)
            conn.executescript(_SCHEMA + _COLUMNAR_SCHEMA)
            return cls(db_path, conn)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    @contextmanager
    def write(self) -> Iterator[_Tx]:
        # Writers of other processes queue on an advisory file lock first: the kernel wakes the next one the moment
        # the lock is free, where SQLite's busy handler would poll with sleeps of up to 100 ms (measured: one-decision
        # requests to two server processes fell to tens per second).
        with self._process_lock():
            db = self._db
            with _errors():
                db.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self, self.size())
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back by itself (e.g. on a full disk)
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only directory: SQLite's own lock still serialises writers
                yield
                return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # ------------------------------------------------------------ entries, hashes, checkpoints
    def size(self) -> int:
        row = self._db.execute("SELECT MAX(idx) FROM entries").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def signed_size(self) -> int:
        return self._db.execute("SELECT MAX(tree_size) FROM checkpoints").fetchone()[0] or 0

    def entry(self, index: int):
        row = self._db.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
        return None if row is None else row[0]

    def entries(self, start: int, end: int):
        yield from self._db.execute("SELECT idx, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))

    def typed_entries(self, start: int, end: int):
        yield from self._db.execute("SELECT idx, type, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                                    (start, end))

    def entries_of_types(self, types, start, end=None):
        types = list(types)
        if len(types) == 1:  # uses the type column directly; most callers ask for one type
            where, params = "type = ?", types
        else:
            where, params = f"type IN ({','.join('?' * len(types))})", types
        if not {"decision", "outcome"} & set(types):
            where += " AND " + RARE_TYPES_CONDITION  # lets SQLite use the partial index entries_rare_types
        if end is None:
            yield from self._db.execute(f"SELECT idx, type, data FROM entries WHERE {where} AND idx >= ? ORDER BY idx",
                                        (*params, start))
        else:
            yield from self._db.execute(
                f"SELECT idx, type, data FROM entries WHERE {where} AND idx >= ? AND idx < ? ORDER BY idx",
                (*params, start, end))

    def _strips(self, ids: Iterable[int]) -> dict[int, bytes]:
        found, wanted = self._cache.split(ids)
        for chunk in _in_chunks(wanted):
            q = f"SELECT id, strip FROM hashes WHERE id IN ({','.join('?' * len(chunk))})"
            for sid, strip in self._db.execute(q, chunk):
                found[sid] = strip
                self._cache.offer(sid, strip)
        return found

    def hashes(self, keys: Iterable[HashKey]) -> dict[HashKey, bytes]:
        keys = list(keys)
        return S.hashes_from_strips(keys, self._strips(S.strip_id(level, index) for level, index in keys))

    def stored_hashes(self, level: int, start: int, end: int):
        if end <= start:
            return
        cur = self._db.execute("SELECT id, strip FROM hashes WHERE id >= ? AND id <= ? ORDER BY id",
                               (S.strip_id(level, start), S.strip_id(level, end - 1)))
        for sid, strip in cur:
            yield from S.iter_strip(sid, strip, start, end)

    def checkpoint(self, tree_size: int | None):
        if tree_size is None:
            row = self._db.execute("SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1").fetchone()
        else:
            row = self._db.execute("SELECT note FROM checkpoints WHERE tree_size = ?", (tree_size,)).fetchone()
        return None if row is None else row[0]

    def checkpoint_covering(self, index: int):
        row = self._db.execute("SELECT note FROM checkpoints WHERE tree_size > ? ORDER BY tree_size LIMIT 1",
                               (index,)).fetchone()
        return None if row is None else row[0]

    def checkpoints(self):
        yield from self._db.execute("SELECT tree_size, root, note, created_at FROM checkpoints ORDER BY tree_size")

    # ------------------------------------------------------------ private values
    def private_value(self, commitment: str, entry_index: int | None):
        where, params = "commitment = ? AND erased_at IS NULL", [commitment]
        if entry_index is not None:
            where, params = "entry_index = ? AND " + where, [entry_index, commitment]
        row = self._db.execute(f"SELECT kind, salt, value FROM private_values WHERE {where}", params).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def private_values_for(self, indexes):
        out: dict[int, dict[str, tuple[str, bytes, bytes]]] = {}
        for part in _in_chunks(indexes):
            q = (f"SELECT entry_index, kind, commitment, salt, value FROM private_values "
                 f"WHERE erased_at IS NULL AND entry_index IN ({','.join('?' * len(part))})")
            for idx, kind, commitment, salt, value in self._db.execute(q, part):
                out.setdefault(idx, {})[kind] = (commitment, salt, value)
        return out

    def private_values_between(self, start, end, kinds):
        kinds = list(kinds)
        if not kinds or end <= start:
            return
        q = (f"SELECT entry_index, kind, value FROM private_values WHERE entry_index >= ? AND entry_index < ? "
             f"AND kind IN ({','.join('?' * len(kinds))}) AND erased_at IS NULL ORDER BY entry_index")
        yield from self._db.execute(q, (start, end, *kinds))

    def erased_for(self, indexes):
        out: dict[int, set[str]] = {}
        for part in _in_chunks(indexes):
            q = (f"SELECT entry_index, kind FROM private_values "
                 f"WHERE erased_at IS NOT NULL AND entry_index IN ({','.join('?' * len(part))})")
            for idx, kind in self._db.execute(q, part):
                out.setdefault(idx, set()).add(kind)
        return out

    def erasure_of(self, commitment: str):
        row = self._db.execute("SELECT erased_at, erasure_reason FROM private_values WHERE commitment = ? "
                               "AND erased_at IS NOT NULL", (commitment,)).fetchone()
        return None if row is None else (row[0], row[1])

    def find_private(self, kind: str, lookup: bytes) -> list[int]:
        rows = self._db.execute("SELECT entry_index FROM private_values WHERE lookup = ? AND kind = ? AND erased_at IS NULL "
                                "ORDER BY entry_index", (lookup, kind))
        return [r[0] for r in rows]

    def erase_private(self, commitment: str, entry_index: int | None, reason: str, at: str) -> bool:
        """Erase a value, its salt and its lookup hash, the read model's label opened from it and its columnar copy.

        The old bytes are overwritten with zeros in the database file
        (``secure_delete``), and the write-ahead log, which still holds the
        pages as they were, is checkpointed and truncated. That checkpoint
        waits (up to the busy timeout) for other connections' reads to finish;
        if one is still reading then, the old pages stay in the WAL until the
        next checkpoint overwrites them.
        """
        where, params = "commitment = ? AND erased_at IS NULL", [commitment]
        if entry_index is not None:
            where, params = "entry_index = ? AND " + where, [entry_index, commitment]
        db = self._db
        with _errors():
            db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(f"SELECT entry_index, kind FROM private_values WHERE {where}", params).fetchone()
            if row is not None:
                db.execute("UPDATE private_values SET salt = NULL, value = NULL, lookup = NULL, erased_at = ?, "
                           "erasure_reason = ? WHERE entry_index = ? AND kind = ?", (at, reason, row[0], row[1]))
                if row[1] == "output":  # the read model's label was opened from this value
                    db.execute("UPDATE decision_index SET label = NULL WHERE idx = ?", (row[0],))
                scrub_in_tx(db, row[0], row[1])  # and the columnar copy (storage.columnar)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if row is not None:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return row is not None

    # ------------------------------------------------------------ for this back end's own tools and tests
    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (tests and benchmarks that inspect or damage the file on purpose)."""
        return self._db
