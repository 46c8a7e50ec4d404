"""PostgreSQL write transactions (``base.WriteTx``): one transaction on one pooled connection holding the row lock
on ``log_state`` (see ``store.py``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING

import psycopg
from psycopg.pq import TransactionStatus

from .. import strips as S
from ..base import (
    ApiKeyRow,
    HashKey,
    PrivateRow,
    StorageConflict,
    StorageError,
    TransactionAborted,
)
from .pool import _INGESTED, _copy, _one_line, _partial_strip_ids, _translate, _upsert_strips

if TYPE_CHECKING:
    from .store import PostgresStore


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
