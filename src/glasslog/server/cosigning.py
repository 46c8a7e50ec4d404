"""Asking witnesses to cosign: a background thread of the server, beside (never in) the write path.

After each new checkpoint, the thread sends it to every witness the log's
``witness`` entries name (C2SP tlog-witness ``add-checkpoint``) with a
consistency proof from the size that witness last cosigned, and stores the
cosignatures it gets back (``LogStore.put_cosignature``). A witness that
answers 409 gets a fresh proof from the size it reports; a witness that is
down is retried with a growing pause (up to ``MAX_BACKOFF`` seconds). Appends
never wait for any of this: a batch is acknowledged when it is on disk, and
its cosignatures follow.

What each witness last answered, and every distinct refusal (409, 403, 422,
..., or unreachable) with when it was first and last given and how often, is
kept in ``<data-dir>/witness-status.json`` (``glasslog witnesses list``
shows it): a refusal is evidence, so it is never hidden, but a witness
refusing the same thing on every retry adds to a count, not a row.

One thread per data directory: with several worker processes, the one that
holds ``<data-dir>/cosigning.lock`` does the work, and another takes over if
it exits.

``CosigningThread.run_once`` does one round synchronously (tests, the CLI).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..ledger import Ledger
from ..ledger.witnesses import active_witnesses, note_refusal, read_witness_status, write_witness_status
from ..records import utc_now
from ..witness.client import Conflict, WitnessClient, WitnessRefused, WitnessUnreachable

__all__ = ["CosigningThread", "WitnessStatus", "attach_cosigning", "INTERVAL", "MAX_BACKOFF"]

log = logging.getLogger("glasslog.cosigning")

INTERVAL = 0.1
"""Seconds between looks at the log's latest checkpoint."""
MAX_BACKOFF = 30.0
"""Longest pause before asking an unreachable or refusing witness again."""
WITNESS_REFRESH = 2.0
"""Seconds between re-reads of the log's witness entries."""
REQUEST_TIMEOUT = 10.0
"""Seconds one request to a witness may take."""
MIN_REQUEST = 0.5
"""Shortest time given to a request started just before ``catch_up``'s deadline (so it can run past it by this much)."""


@dataclass
class WitnessStatus:
    """What the thread last heard from one witness."""

    url: str
    key: str
    tree_size: int = 0
    ok: bool = False
    error: str | None = None
    at: str | None = None
    retry_at: float = 0.0
    backoff: float = 0.5
    refusals: list = field(default_factory=list)

    def record(self) -> dict:
        """What ``witness-status.json`` keeps of it."""
        return {"url": self.url, "tree_size": self.tree_size, "ok": self.ok, "at": self.at, "error": self.error,
                "refusals": self.refusals}


class CosigningThread:
    """Sends each new checkpoint to the log's witnesses and stores their cosignatures.

    Args:
        data_dir: the log's data directory.
        store: the log's database URL when it is not the data directory's SQLite file.
        interval: seconds between looks at the latest checkpoint.
    """

    def __init__(self, data_dir: str | Path, store: str | None = None, interval: float = INTERVAL,
                 max_backoff: float = MAX_BACKOFF):
        self.data_dir = Path(data_dir)
        self.store = store
        self.interval = interval
        self.max_backoff = max_backoff
        self._record: dict[str, dict] | None = None  # witness-status.json as read at start
        self._dirty = False
        self._saved_at = 0.0
        self._held = None  # the lock file, when taken by hold_lock
        self.status: dict[str, WitnessStatus] = {}
        self._clients: dict[str, WitnessClient] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._ledger: Ledger | None = None
        self._witnesses: list = []
        self._witnesses_at = 0.0
        self._known: dict[str, int] | None = None
        self._warned = False
        self._deadline: float | None = None  # monotonic end of a catch_up run (None: the server's endless thread)

    # ----------------------------------------------------------------- life
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="glasslog-cosigning", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Look at the log now instead of at the next interval."""
        self._wake.set()

    def _run(self) -> None:
        lock = None
        try:
            while not self._stop.is_set():
                if lock is None:
                    lock = self._take_lock()
                    if lock is None:  # another worker process does it
                        self._stop.wait(5.0)
                        continue
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - keep cosigning alive; the next round retries
                    log.exception("cosigning round failed")
                    self._close_ledger()
                    self._stop.wait(1.0)
                self._wake.wait(self.interval)
                self._wake.clear()
        finally:
            if self._dirty:
                self.save_status()
            self._close_ledger()
            for c in self._clients.values():
                c.close()
            if lock is not None:
                lock.close()

    def _take_lock(self):
        import fcntl

        f = open(self.data_dir / "cosigning.lock", "a+")  # noqa: SIM115 - held for the thread's life
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return None
        return f

    def _close_ledger(self) -> None:
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                self._ledger.close()
            self._ledger = None

    # ----------------------------------------------------------------- work
    def run_once(self) -> dict[str, WitnessStatus]:
        """One round: send the latest checkpoint to every witness that has not cosigned it. Returns the statuses."""
        if self._ledger is None:
            self._ledger = Ledger.open(self.data_dir, self.store)
        lg = self._ledger
        if not hasattr(lg.store, "put_cosignature"):  # a back end without the cosignatures side table (see storage/base.py)
            if not self._warned:
                log.warning("the log's storage back end keeps no cosignatures; witnesses are not asked")
                self._warned = True
            return self.status
        now = time.monotonic()
        if now - self._witnesses_at > WITNESS_REFRESH or self._known is None:
            self._witnesses = active_witnesses(lg)
            self._witnesses_at = now
            if self._known is None:
                self._known = lg.store.witness_sizes()
            keys = {w.key for w in self._witnesses}
            for gone in [k for k in self._clients if k not in keys]:
                self._clients.pop(gone).close()
                self.status.pop(gone, None)
        if not self._witnesses:
            return self.status
        note = lg.checkpoint()
        size = lg.open_checkpoint(note).tree_size
        for w in self._witnesses:
            st = self.status.get(w.key)
            if st is None or st.url != w.url:
                if self._record is None:
                    self._record = read_witness_status(self.data_dir)
                st = self.status[w.key] = WitnessStatus(w.url, w.key, self._known.get(w.key, 0))
                st.refusals = list(self._record.get(w.key, {}).get("refusals") or [])
                if w.key in self._clients:
                    self._clients.pop(w.key).close()
            if st.ok and st.tree_size == size:
                continue
            if time.monotonic() < st.retry_at:
                continue
            if self._deadline is not None and time.monotonic() >= self._deadline:
                break  # catch_up's time is up: the witnesses not asked yet stay as they were
            self._submit(lg, w, st, note, size)
        if self._dirty and time.monotonic() - self._saved_at >= 1.0:
            self.save_status()
        return self.status

    def catch_up(self, timeout: float) -> tuple[dict[str, WitnessStatus], int]:
        """Rounds until every witness has cosigned the newest checkpoint or ``timeout`` seconds have passed, sleeping
        until the next retry is due (``glasslog witnesses sync``). The caller holds the lock (``hold_lock``).

        Returns:
            ``(statuses by witness key, the newest checkpoint's size)``.
        """
        deadline = self._deadline = time.monotonic() + timeout
        try:
            while True:
                status = self.run_once()
                size = self._ledger.signed_size() if self._ledger is not None else 0
                behind = [st for st in status.values() if not (st.ok and st.tree_size == size)]
                if not behind or time.monotonic() >= deadline:
                    self.save_status()
                    return status, size
                wait = min(st.retry_at for st in behind) - time.monotonic()
                time.sleep(min(max(wait, 0.05), max(deadline - time.monotonic(), 0.0)))
        finally:
            self._deadline = None

    def hold_lock(self) -> bool:
        """Take ``<data-dir>/cosigning.lock`` for this object's life (until ``close``); False if another process has it."""
        if self._held is None:
            self._held = self._take_lock()
        return self._held is not None

    def close(self) -> None:
        """Close the log, the witness connections and the lock (for a thread never started; ``stop`` otherwise)."""
        self._close_ledger()
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        if self._held is not None:
            self._held.close()
            self._held = None

    def save_status(self) -> None:
        """Write ``witness-status.json`` now (refusals are written as they happen, cosignatures at most once a second)."""
        try:
            write_witness_status(self.data_dir, {k: st.record() for k, st in self.status.items()})
        except OSError as exc:
            log.warning("cannot write %s: %s", self.data_dir / "witness-status.json", exc)
        self._dirty, self._saved_at = False, time.monotonic()

    def _client(self, url: str, key: str) -> WitnessClient:
        c = self._clients.get(key)
        if c is None:
            c = self._clients[key] = WitnessClient(url, key, timeout=REQUEST_TIMEOUT)
        return c

    def _submit(self, lg: Ledger, w, st: WitnessStatus, note: str, size: int) -> None:
        client = self._client(w.url, w.key)
        old = min(st.tree_size, size)
        for _attempt in range(3):
            if self._deadline is not None:  # a request may not run past catch_up's deadline (by more than MIN_REQUEST)
                client.set_timeout(max(MIN_REQUEST, min(REQUEST_TIMEOUT, self._deadline - time.monotonic())))
            try:
                proof = lg.consistency_proof(old, size) if 0 < old < size else []
                lines = client.add_checkpoint(old, proof, note)
            except Conflict as c:
                if c.size > size:
                    self._failed(st, f"the witness has cosigned tree size {c.size}, larger than the log's {size}:"
                                     " the log was rolled back or forked", 409)
                    return
                if c.size == old:  # same size, another root: the witness saw a different tree
                    self._failed(st, f"the witness cosigned a different tree at size {old}", 409)
                    return
                old = c.size  # re-prove from the witness's size
                continue
            except WitnessRefused as exc:
                self._failed(st, str(exc), exc.status)
                return
            except (WitnessUnreachable, ValueError) as exc:
                self._failed(st, str(exc), "unreachable" if isinstance(exc, WitnessUnreachable) else "error")
                return
            for line in lines[:1]:
                lg.store.put_cosignature(size, w.key, line, utc_now())
            st.tree_size, st.ok, st.error, st.at, st.backoff, st.retry_at = size, True, None, utc_now(), 0.5, 0.0
            self._known[w.key] = size
            self._dirty = True
            return
        self._failed(st, "the witness kept answering 409", 409)

    def _failed(self, st: WitnessStatus, why: str, code: int | str) -> None:
        if st.error != why:
            log.warning("witness %s: %s", st.url, why)
        st.ok, st.error, st.at = False, why, utc_now()
        st.refusals = note_refusal(st.refusals, code, why, st.at)
        st.retry_at = time.monotonic() + st.backoff
        st.backoff = min(st.backoff * 2, self.max_backoff)
        self.save_status()


def attach_cosigning(app, data_dir: str | Path, store: str | None = None) -> CosigningThread | None:
    """Run a ``CosigningThread`` for the app's lifetime (its ASGI lifespan). Off with ``GLASSLOG_COSIGNING=off``."""
    if os.environ.get("GLASSLOG_COSIGNING", "on").lower() in ("off", "0", "no"):
        return None
    thread = CosigningThread(data_dir, store)
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a):
        thread.start()
        try:
            async with previous(a) as state:
                yield state
        finally:
            thread.stop()

    app.router.lifespan_context = lifespan
    app.state.cosigning = thread
    return thread
