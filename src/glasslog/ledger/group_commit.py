"""Group commit: concurrent appends of one process's threads in one transaction, one sync and one checkpoint.

``GroupCommit`` gathers the batches that ``glasslog.ledger.Ledger.append`` hands it (``_Batch``: validated entries,
their leaf hashes, private values and the ``within`` callback) and commits them with ``Ledger.commit_group``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .entries import Entry
    from .log import AppendResult, Ledger, PrivateValue

__all__ = ["GroupCommit"]


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
    all with its own ``Ledger`` (``Ledger.commit_group``), wakes each caller
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
                    ledger.commit_group(group)
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
