"""Copy a log from one back end to another (SQLite to PostgreSQL, or back), and prove the copy.

``copy_log`` copies, checkpoint by checkpoint, one write transaction per
source checkpoint: the entries it adds (byte for byte, with their stored
type), the stored hashes (recomputed from the entries with the write step
``merkle.integrate``, and the recomputed root checked against the signed one
before the checkpoint is stored), the signed note itself (byte for byte),
the private values of those entries (erased ones stay erased: commitment and
erasure record, no salt or value), their receipt token hashes and ingested
telemetry keys. Then the
API keys (revoked ones stay revoked), the per-log secrets and the witnesses'
cosignatures. The read model
is not copied: it is derived, and rebuilt from the copy on first use.

Then it proves the copy: for every checkpoint of the source, the target's
root at that size (from its stored hashes) equals the source's signed root
and the note is the same text; every entry the target holds hashes to its
stored leaf hash; the counts of entries, private values and keys agree.

``migrate`` opens both ends by location (a data directory or a
``postgresql://`` URL); the signer key and artifacts stay in the data
directory, which serves the copy as it served the original.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..ledger import Ledger, LedgerError, merkle
from . import create_store, describe, is_url, record_location, where_recorded
from .base import LogStore, StorageError

if TYPE_CHECKING:
    from .base import WriteTx

__all__ = ["copy_log", "migrate", "CHUNK"]

CHUNK = 10_000
"""Entries per ``write_batch`` (and per read from the source)."""

Progress = Callable[[str, int, int], None]


def _refuse_unless_empty(source: Ledger, target: LogStore) -> None:
    where = target.location
    if target.size() or target.signed_size() or target.checkpoint(None) is not None:
        raise LedgerError(f"{where} already holds a log ({target.size()} entries): copy into an empty database")
    src, dst = source.store.meta(), target.meta()
    for key in ("origin", "verifier_key", "lookup_key"):
        if src.get(key) != dst.get(key):
            raise LedgerError(f"{where} was set up for another log ({key} differs from the source's); "
                              "create the target with the source's settings (glasslog.storage.migrate.migrate does)")


class _ByIndex:
    """Rows of an iterator ordered by entry index, handed out range by range (one row of lookahead)."""

    def __init__(self, rows: Iterator[tuple], index_of: Callable[[tuple], int]):
        self._rows, self._index_of, self._next = rows, index_of, None

    def below(self, end: int) -> list[tuple]:
        out = []
        while True:
            if self._next is None:
                self._next = next(self._rows, None)
                if self._next is None:
                    return out
            if self._index_of(self._next) >= end:
                return out
            out.append(tuple(self._next))
            self._next = None


def _copy_range(source: Ledger, tx: WriteTx, start: int, end: int, frontier: list, counts: dict) -> merkle.Integration | None:
    """Copy entries [start, end) with their hashes and private values into ``tx``; returns the last write step."""
    step = None
    n = start
    for a in range(start, end, CHUNK):
        b = min(end, a + CHUNK)
        rows = list(source.store.typed_entries(a, b))
        if [i for i, _, _ in rows] != list(range(a, b)):
            raise LedgerError(f"the source is missing entries between {a} and {b - 1}: it is damaged; run 'glasslog verify log'")
        for i, _, data in rows:
            if not isinstance(data, bytes):
                raise LedgerError(f"the source's entry {i} is stored as {type(data).__name__}, not bytes: it was edited;"
                                  " run 'glasslog verify log'")
        step = merkle.integrate(n, frontier, [merkle.leaf_hash(d) for _, _, d in rows])
        tx.write_batch(a, [(t, d) for _, t, d in rows], step.levels, step.first, [])
        private = list(source.store.private_rows(a, b))
        if private:
            tx.copy_private(private)
        counts["private_values"] += sum(1 for _, at, _ in private if at is None)
        counts["erased_private_values"] += sum(1 for _, at, _ in private if at is not None)
        frontier[:] = step.frontier
        n = step.tree_size
    return step


def copy_log(source: Ledger, target_store: LogStore, progress: Progress | None = None) -> dict:
    """Copy the log ``source`` into ``target_store`` and prove the copy (see the module docstring).

    Args:
        source: the log to copy (not written to meanwhile: appends made
            during the copy are not copied, and the proof then fails).
        target_store: an empty store created with the source's settings
            (``create_store(location, data_dir, source.store.meta())``).
        progress: called as ``progress(stage, done, total)``; stages
            ``entries`` and ``proof``.

    Returns:
        Counts: ``entries``, ``checkpoints``, ``private_values`` (kept),
        ``erased_private_values``, ``api_keys``, ``receipt_tokens``,
        ``ingested`` (telemetry keys), ``secrets``, ``cosignatures`` (witnesses'), ``legacy_receipt_tokens_not_copied`` (first-release
        tokens, which only SQLite keeps), and ``root`` (hex) of the copy.

    Raises:
        LedgerError: the target holds a log or was set up for another one; the
            source is damaged (a signed root its entries do not give, missing
            entries, entries beyond its latest checkpoint); or the copy does
            not prove equal. A copy that fails part way leaves a partial log in
            the target: empty it (drop and create the database) before trying again.
    """
    _refuse_unless_empty(source, target_store)
    total = source.size
    counts = {"entries": 0, "checkpoints": 0, "private_values": 0, "erased_private_values": 0, "api_keys": 0,
              "receipt_tokens": 0, "ingested": 0, "secrets": 0}
    tokens = _ByIndex(iter(source.store.receipt_tokens()), lambda row: row[0])
    ingested = _ByIndex(iter(source.store.ingested_rows()), lambda row: row[2])
    frontier: list = []
    n = 0
    signed: list[tuple[int, bytes]] = []
    for size, root, note, created_at in source.store.checkpoints():
        cp = source.open_checkpoint(note)  # the note is the log's, and says what the row says
        if (cp.tree_size, cp.root_hash) != (size, root) or size < n:
            raise LedgerError(f"the source's checkpoint at tree size {size} does not match its signed note: it is damaged")
        with target_store.write() as tx:
            if tx.tree_size != n:
                raise LedgerError(f"{target_store.location} changed during the copy (size {tx.tree_size}, expected {n})")
            step = _copy_range(source, tx, n, size, frontier, counts)
            if step is not None:
                computed = step.root
            else:  # no entries since the previous checkpoint (the empty tree's, at size 0)
                computed = signed[-1][1] if signed else merkle.EMPTY_ROOT
            if computed != root:
                raise LedgerError(f"the source's entries 0..{size - 1} do not hash to its signed root at tree size {size}:"
                                  " it is damaged; run 'glasslog verify log' on it")
            rows = tokens.below(size)
            if rows:
                tx.put_receipt_tokens(rows)
                counts["receipt_tokens"] += len(rows)
            rows = ingested.below(size)
            if rows:
                tx.put_ingested(rows)
                counts["ingested"] += len(rows)
            tx.put_checkpoint(size, root, note, created_at)
        n = size
        signed.append((size, root))
        counts["checkpoints"] += 1
        if progress:
            progress("entries", n, total)
    if n != total:
        raise LedgerError(f"the source holds {total - n} entries beyond its latest checkpoint (tree size {n}): it is damaged")
    if tokens.below(1 << 62) or ingested.below(1 << 62):
        raise LedgerError("the source holds receipt tokens or ingested keys of entries it does not hold: it is damaged")
    counts["entries"] = n

    keys = source.store.api_keys()
    if keys:
        with target_store.write() as tx:
            for key in keys:
                tx.put_api_key(key)
                if key.revoked_at is not None:
                    tx.revoke_api_key(key.key_id, key.revoked_at)
    counts["api_keys"] = len(keys)
    for name, value in source.store.secrets().items():
        if target_store.secret(name, value) != value:
            raise LedgerError(f"{target_store.location} already held another secret {name!r}")
        counts["secrets"] += 1
    counts["cosignatures"] = 0
    for size in source.store.cosigned_sizes():
        for witness, line, at in source.store.cosignatures(size):
            target_store.put_cosignature(size, witness, line, at)
            counts["cosignatures"] += 1
    counts["legacy_receipt_tokens_not_copied"] = _legacy_tokens(source, target_store)

    counts["root"] = _prove(source, target_store, signed, counts, progress).hex()
    return counts


def _legacy_tokens(source: Ledger, target: LogStore) -> int:
    """First-release receipt tokens the source keeps and the target cannot (SQLite keeps them; PostgreSQL has none)."""
    from .sqlite.store import SqliteStore

    if not isinstance(source.store, SqliteStore) or isinstance(target, SqliteStore):
        return 0
    db = source.store.connection
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'receipt_tokens'").fetchone():
        return 0
    return db.execute("SELECT COUNT(*) FROM receipt_tokens").fetchone()[0]


def _prove(source: Ledger, target_store: LogStore, signed: list[tuple[int, bytes]], counts: dict,
           progress: Progress | None) -> bytes:
    """Check the copy against the source (see the module docstring); returns the copy's root."""
    copy = Ledger(source.data_dir, target_store)  # reads only: the proof goes through the target's own stored hashes
    where = target_store.location
    if copy.size != counts["entries"] or copy.signed_size() != (signed[-1][0] if signed else 0):
        raise LedgerError(f"the copy in {where} holds {copy.size} entries, the source {counts['entries']}")
    target_cps = iter(target_store.checkpoints())
    for k, (size, root) in enumerate(signed):
        t = next(target_cps, None)
        if t is None or t[0] != size or t[1] != root or t[2] != source.checkpoint(size) or copy.root(size) != root:
            raise LedgerError(f"the copy in {where} differs from the source at the checkpoint of tree size {size}")
        if progress and k % 100 == 0:
            progress("proof", k, len(signed))
    if next(target_cps, None) is not None:
        raise LedgerError(f"the copy in {where} holds checkpoints the source does not")
    for a in range(0, copy.size, CHUNK):  # every copied entry hashes to the leaf hash the roots were proved with
        b = min(copy.size, a + CHUNK)
        stored = [h for _, h in target_store.stored_hashes(0, a, b)]
        entries = [d for _, d in target_store.entries(a, b)]
        if len(stored) != b - a or len(entries) != b - a or any(
                merkle.leaf_hash(d) != h for d, h in zip(entries, stored, strict=True)):
            raise LedgerError(f"the copy in {where} has entries between {a} and {b - 1} that differ from their hashes")
    kept = erased = 0
    for a in range(0, copy.size, CHUNK):
        for _, at, _ in target_store.private_rows(a, min(copy.size, a + CHUNK)):
            kept, erased = (kept + 1, erased) if at is None else (kept, erased + 1)
    if (kept, erased) != (counts["private_values"], counts["erased_private_values"]):
        raise LedgerError(f"the copy in {where} holds {kept} private values and {erased} erased ones, the source "
                          f"{counts['private_values']} and {counts['erased_private_values']}")
    for size in source.store.cosigned_sizes():
        if target_store.cosignatures(size) != source.store.cosignatures(size):
            raise LedgerError(f"the copy in {where} holds other witness cosignatures at tree size {size} than the source")
    if len(target_store.api_keys()) != counts["api_keys"]:
        raise LedgerError(f"the copy in {where} holds another number of API keys than the source")
    if progress:
        progress("proof", len(signed), len(signed))
    return copy.root()


def _open_source(location: str, data_dir: Path) -> Ledger:
    """The log at ``location``: a data directory (its SQLite file, whatever ``$GLASSLOG_STORE`` says) or a URL."""
    if is_url(location):
        return Ledger.open(data_dir, store=location)
    from .sqlite.store import DB_NAME, SqliteStore

    directory = Path(location)
    try:
        return Ledger(directory, SqliteStore.open(directory / DB_NAME))
    except StorageError as exc:
        elsewhere = where_recorded(directory)
        raise LedgerError(f"no log at {directory} ({exc})" + (f": {elsewhere}" if elsewhere else "")) from None


def migrate(from_location: str | os.PathLike, to_url: str, data_dir: str | os.PathLike, progress: Progress | None = None) -> dict:
    """Copy the log at ``from_location`` into the empty database ``to_url`` and prove the copy (``copy_log``).

    Args:
        from_location: the source: a data directory (its ``log.db``) or a ``postgresql://`` URL.
        to_url: the target: a ``postgresql://`` URL of a database holding no log.
        data_dir: the log's data directory (signer key, artifacts), which the
            copy is served with; for a directory source, that directory.

    Returns:
        ``copy_log``'s summary, with ``from`` and ``to`` (without passwords).

    Raises:
        LedgerError: no log at the source, the target is not a URL, holds a
            log or cannot be reached, or the copy does not prove equal.
    """
    from_location = str(from_location)
    if not is_url(to_url):
        raise LedgerError(f"the target {to_url!r} must be a postgresql:// URL of an empty database")
    if is_url(from_location) and from_location == to_url:
        raise LedgerError("the source and the target are the same database")
    source = _open_source(from_location, Path(data_dir))
    try:
        meta = {k: v for k, v in source.store.meta().items() if k != "index_upto"}  # the read model is rebuilt
        target = create_store(to_url, Path(data_dir), meta)
        try:
            summary = copy_log(source, target, progress)
        finally:
            target.close()
    finally:
        source.close()
    retired = None
    if not is_url(from_location):
        retired = _retire_sqlite(Path(from_location), to_url)
    return {"from": describe(from_location), "to": describe(to_url), **summary,
            **({"source_retired_as": str(retired)} if retired else {})}


def _retire_sqlite(data_dir: Path, to_url: str) -> Path:
    """Move the copied SQLite file aside (``log.db.migrated``) so that no command can append to the old log any more:
    two logs signed with one key that both grow would be a fork. The data directory then says where its log went."""
    from .sqlite.store import DB_NAME

    db = data_dir / DB_NAME
    target = db.with_name(DB_NAME + ".migrated")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(db) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    record_location(data_dir, f"its log was moved to PostgreSQL at {describe(to_url)} by glasslog migrate "
                              f"(the old SQLite file is {target.name}, kept read-only)")
    os.chmod(target, 0o400)
    return target
