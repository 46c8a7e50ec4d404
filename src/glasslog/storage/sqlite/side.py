"""The SQLite back end's side tables: witness cosignatures, API keys, receipt tokens, ingested-telemetry keys,
per-log secrets, and the reads that copy a log (``glasslog.storage.migrate``). A mixin of ``SqliteStore``
(``store.py``), which supplies ``_db``; also the driver-error translation both use."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..base import ApiKeyRow, PrivateRow, StorageConflict, StorageUnavailable


def _in_chunks(ids: Sequence, size: int = 500) -> Iterator[list]:
    ids = list(ids)
    for k in range(0, len(ids), size):
        yield ids[k : k + size]


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (``BEGIN IMMEDIATE``: SQLite's write lock), committed when the block ends, rolled back
    if it raises. A block that only decides to write nothing (a lost compare-and-swap) just returns."""
    with _errors():
        db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@contextmanager
def _errors() -> Iterator[None]:
    """Translate the driver's errors into the storage interface's."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise StorageConflict(f"the database refused a write: {exc}") from exc
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StorageUnavailable(f"the log's database is busy: {exc}") from exc
        raise


class _SideTables:
    """Side-table methods of ``SqliteStore`` (see ``base.LogStore``)."""

    _db: sqlite3.Connection

    # ----------------------------------------------------------- witness cosignatures
    def put_cosignature(self, tree_size: int, witness: str, line: str, at: str) -> None:
        db = self._db
        with _errors():
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT OR REPLACE INTO cosignatures (tree_size, witness, line, at) VALUES (?, ?, ?, ?)",
                           (tree_size, witness, line, at))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def cosignatures(self, tree_size: int) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self._db.execute(
            "SELECT witness, line, at FROM cosignatures WHERE tree_size = ? ORDER BY witness", (tree_size,))]

    def witness_sizes(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT witness, MAX(tree_size) FROM cosignatures GROUP BY witness").fetchall())

    def latest_cosigned_size(self, min_size: int) -> int | None:
        return self._db.execute("SELECT MAX(tree_size) FROM cosignatures WHERE tree_size >= ?", (min_size,)).fetchone()[0]

    def cosigned_sizes(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT tree_size FROM cosignatures ORDER BY tree_size")]

    # ------------------------------------------------------------ side tables
    def api_keys(self) -> list[ApiKeyRow]:
        rows = self._db.execute("SELECT key_id, name, role, secret_hash, deployments, created_at, revoked_at "
                                "FROM api_keys ORDER BY created_at, key_id")
        return [ApiKeyRow(k, n, r, h, tuple(json.loads(d)), c, rv) for k, n, r, h, d, c, rv in rows]

    def api_key(self, key_id: str) -> ApiKeyRow | None:
        row = self._db.execute("SELECT key_id, name, role, secret_hash, deployments, created_at, revoked_at "
                               "FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        k, n, r, h, d, c, rv = row
        return ApiKeyRow(k, n, r, h, tuple(json.loads(d)), c, rv)

    def receipt_token_hash(self, entry_index: int) -> bytes | None:
        row = self._db.execute("SELECT token_hash FROM receipt_token_hashes WHERE entry_index = ?", (entry_index,)).fetchone()
        return None if row is None else row[0]

    def ingested(self, deployment: str, keys) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for chunk in _in_chunks(keys):
            q = f"SELECT key, entry_index FROM ingested WHERE deployment = ? AND key IN ({','.join('?' * len(chunk))})"
            out.update(self._db.execute(q, [deployment, *chunk]))
        return out

    def legacy_receipt_token(self, token_hash: bytes) -> int | None:
        has = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'receipt_tokens'").fetchone()
        if not has:
            return None
        row = self._db.execute("SELECT entry_index FROM receipt_tokens WHERE token_hash = ?", (token_hash,)).fetchone()
        return None if row is None else row[0]

    def secret(self, name: str, new_value: bytes) -> bytes:
        db = self._db
        db.execute("INSERT OR IGNORE INTO oversight_secret(name, value) VALUES (?, ?)", (name, new_value))
        return db.execute("SELECT value FROM oversight_secret WHERE name = ?", (name,)).fetchone()[0]

    # ------------------------------------------------------------ for copying a log (glasslog.storage.migrate)
    def private_rows(self, start: int, end: int):
        rows = self._db.execute("SELECT entry_index, kind, commitment, salt, value, lookup, erased_at, erasure_reason "
                                "FROM private_values WHERE entry_index >= ? AND entry_index < ? ORDER BY entry_index, kind",
                                (start, end))
        for idx, kind, commitment, salt, value, lookup, at, reason in rows:
            yield PrivateRow(idx, kind, commitment, salt, value, lookup), at, reason

    def receipt_tokens(self):
        yield from self._db.execute("SELECT entry_index, token_hash FROM receipt_token_hashes ORDER BY entry_index")

    def secrets(self) -> dict[str, bytes]:
        return dict(self._db.execute("SELECT name, value FROM oversight_secret"))

    def ingested_rows(self):
        yield from self._db.execute("SELECT deployment, key, entry_index FROM ingested ORDER BY entry_index, deployment, key")
