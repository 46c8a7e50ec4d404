"""Group commit: concurrent appends of one process's threads in one transaction, one sync and one checkpoint.

``GroupCommit`` gathers the batches that ``glasslog.ledger.Ledger.append`` hands it (``_Batch``: validated entries,
their leaf hashes, private values and the ``within`` callback) and commits them with ``commit_batches``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import merkle

if TYPE_CHECKING:
    from .entries import Entry
    from .log import Ledger

__all__ = ["GroupCommit", "commit_batches", "AppendResult", "PrivateValue"]


@dataclass(frozen=True)
class PrivateValue:
    """A private value committed to by an entry of the batch being appended.

    Attributes:
        batch_position: position (0-based) of the entry in the batch.
        kind: what it is, e.g. ``input`` or ``subject``.
        commitment: the commitment string the entry holds.
        salt: the 32-byte salt.
        value: the value's canonical JSON bytes.
    """

    batch_position: int
    kind: str
    commitment: str
    salt: bytes
    value: bytes


@dataclass(frozen=True)
class AppendResult:
    """What ``Ledger.append`` committed.

    Attributes:
        first_index: index of the batch's first entry.
        tree_size: tree size of ``checkpoint`` (after the batch, and after the
            other batches committed with it in a group commit).
        checkpoint: the signed checkpoint note covering the batch.
        count: entries in the batch (None: up to ``tree_size``).
    """

    first_index: int
    tree_size: int
    checkpoint: str
    count: int | None = None

    @property
    def indexes(self) -> range:
        """The indexes this batch was given (``count`` of them: a group commit's checkpoint may cover more)."""
        return range(self.first_index, self.first_index + self.count if self.count is not None else self.tree_size)


class _Batch:
    """One caller's validated batch on its way into a (group) commit."""

    __slots__ = ("entries", "leaf_hashes", "private_values", "within", "first_index", "result", "error", "done")

    def __init__(self, entries: list[Entry], leaf_hashes: list[bytes], private_values: list[PrivateValue], within):
        self.entries, self.leaf_hashes, self.private_values, self.within = entries, leaf_hashes, private_values, within
        self.first_index = -1
        self.result: AppendResult | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def outcome(self) -> AppendResult:
        """The batch's result, or raise its error."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class GroupCommit:
    """Gathers concurrent appends of one process's threads into one transaction, one sync and one checkpoint.

    The first caller to arrive becomes the leader: it waits up to ``window``
    seconds (or until ``max_entries`` are pending) for others, commits them
    all with its own ``Ledger`` (``commit_batches``), wakes each caller
    with its own result, and goes on committing whatever arrived meanwhile
    before it returns. Callers block until their batch is durable. A batch
    that fails its own checks fails alone. The same design as Tessera's and
    Sunlight's sequencing and PostgreSQL's group commit.

    Args:
        window: seconds the leader waits for more batches before committing
            (0: commit what is pending at once; concurrent callers still pile
            up while a commit is syncing, and go in the next one).
        max_entries: most entries in one transaction.

    Share one instance between the ``Ledger`` objects of a process's threads:
    ``ledger.group = commit`` for each.
    """

    def __init__(self, window: float = 0.0, max_entries: int = 5_000):
        if window < 0 or max_entries < 1:
            raise ValueError("window must be >= 0 seconds and max_entries >= 1")
        self.window, self.max_entries = window, max_entries
        self._lock = threading.Lock()
        self._pending: list[_Batch] = []
        self._leading = False

    def submit(self, ledger: Ledger, batch: _Batch) -> AppendResult:
        """Commit ``batch`` (possibly with others) and return its result once durable, or raise its error."""
        with self._lock:
            self._pending.append(batch)
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            batch.done.wait()
            return batch.outcome()
        try:
            if self.window:
                time.sleep(self.window)
            while True:
                with self._lock:
                    group, size = [], 0
                    while self._pending and (not group or size + len(self._pending[0].entries) <= self.max_entries):
                        group.append(self._pending.pop(0))
                        size += len(group[-1].entries)
                    if not group:
                        self._leading = False
                        break
                try:
                    commit_batches(ledger, group)
                except BaseException:
                    pass  # every batch of the group carries the error
                finally:
                    for b in group:
                        b.done.set()
        except BaseException:
            with self._lock:
                self._leading = False
                stranded, self._pending = self._pending, []
            for b in stranded:
                b.error = b.error or RuntimeError("the group commit's leader was interrupted; nothing of this batch was written")
                b.done.set()
            raise
        return batch.outcome()


def commit_batches(ledger: Ledger, batches: Sequence[_Batch]) -> None:
    """Commit prepared batches in one write transaction with one signed checkpoint.

    Each batch is written inside its own savepoint: if its ``within``
    callback or its rows fail, that batch alone is rolled back and gets
    the error; the others are committed. Every batch gets its result (or
    error) set; if the transaction itself fails, every batch gets that error.
    """
    from ..storage.base import PrivateRow, TransactionAborted  # run-time only: storage imports this package
    from .log import LOOKUP_KINDS  # run-time only: log imports this module

    signer = ledger.signer()
    try:
        with ledger.store.write() as tx:
            start = n = tx.tree_size
            frontier = ledger._frontier_hashes(tx, n)
            leaves: list[bytes] = []
            placed: list[_Batch] = []
            for batch in batches:
                rows = [PrivateRow(n + pv.batch_position, pv.kind, pv.commitment, pv.salt, pv.value,
                                   ledger._lookup(pv.kind, pv.value) if pv.kind in LOOKUP_KINDS else None)
                        for pv in batch.private_values]
                try:
                    with tx.savepoint():
                        tx.write_batch(n, [(e.type, e.data) for e in batch.entries], [], [], rows)
                        if batch.within is not None:
                            batch.within(tx, n)
                except TransactionAborted:
                    raise
                except Exception as exc:  # this batch alone fails; BaseException (Ctrl-C) aborts the group
                    batch.error = exc
                    continue
                batch.first_index = n
                n += len(batch.entries)
                leaves.extend(batch.leaf_hashes)
                placed.append(batch)
            if not leaves:
                return
            step = merkle.integrate(start, frontier, leaves)
            tx.write_batch(step.tree_size, [], step.levels, step.first, [])
            note = ledger._put_checkpoint(tx, step.tree_size, step.root, signer)
    except BaseException as exc:
        ledger._frontier = None
        for batch in batches:
            if batch.error is None:
                batch.error = exc
        raise
    ledger._frontier = (step.tree_size, step.frontier)
    ledger._size_floor = max(ledger._size_floor, step.tree_size)
    for batch in placed:
        batch.result = AppendResult(batch.first_index, step.tree_size, note, len(batch.entries))
