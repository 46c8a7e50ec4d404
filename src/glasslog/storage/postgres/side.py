"""The PostgreSQL back end's side tables: witness cosignatures, API keys, receipt tokens, ingested-telemetry keys,
per-log secrets, and the reads that copy a log (``glasslog.storage.migrate``). A mixin of ``PostgresStore``
(``store.py``), which supplies ``_read``, ``_write_once``, ``_fetchone`` and ``_fetchall``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerrors

from ..base import ApiKeyRow, PrivateRow, StorageError
from .pool import _COSIGNATURES, PAGE_ROWS


class _SideTables:
    """Side-table methods of ``PostgresStore`` (see ``base.LogStore``)."""

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
