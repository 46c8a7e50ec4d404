"""The log's front class: one append-only Merkle log over a storage back end.

``Ledger`` holds the algorithm and nothing about storage: it validates
entries, computes leaf hashes, integrates each batch into the tree with the
pure write step ``merkle.integrate``, signs a C2SP checkpoint per batch and
builds proofs from stored hashes (``merkle.*_plan``). The bytes live in a
``glasslog.storage.LogStore`` (SQLite file, the embedded default, or a
PostgreSQL database), which this module never imports: open a log with
``Ledger.open`` / ``Ledger.create`` (which ask ``glasslog.storage`` for the
back end named by the location) or hand a store to the constructor.

Files beside the store, in the log's data directory::

    <data-dir>/log.key       signer key (C2SP note key), mode 0600
    <data-dir>/log.vkey      verifier key string, public
    <data-dir>/artifacts/    model artifacts, named by fingerprint

Durability is the store's: a batch is one write transaction holding its
entries, its new hashes, its private values, the side-table rows of
``within`` and its signed checkpoint. When ``append`` returns, the batch is
durable; if ``append`` raises, nothing of the batch is in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import EntryError, erasure_entry, utc_now
from . import merkle
from .commitments import check_commitment
from .entries import Entry
from .errors import KeyFileError, LedgerError
from .group_commit import AppendResult, GroupCommit, PrivateValue, _Batch, commit_batches
from .note import Checkpoint, NoteError, Signer, Verifier, generate_signer, open_checkpoint, sign_note
from .tiles import TILE_HEIGHT, TILE_WIDTH, encode_entry_bundle

if TYPE_CHECKING:  # the storage package depends on this one, never the other way at run time
    from ..storage.base import LogStore, WriteTx

__all__ = [
    "Ledger",
    "LedgerError",
    "KeyFileError",
    "PrivateValue",
    "AppendResult",
    "GroupCommit",
    "LOOKUP_KINDS",
    "DATA_DIR_ENV",
    "default_data_dir",
]

DATA_DIR_ENV = "GLASSLOG_DATA_DIR"
"""Environment variable naming the data directory."""

LOOKUP_KINDS = frozenset({"subject"})
"""Kinds of private value that ``Ledger.find_private`` can find by value (they get a keyed lookup hash)."""


def default_data_dir() -> Path:
    """``$GLASSLOG_DATA_DIR`` if set, else ``./glasslog-data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "glasslog-data")


class Ledger:
    """One append-only Merkle log over a storage back end.

    Open with ``Ledger.create`` (new log) or ``Ledger.open`` (existing one).
    Instances are not thread-safe; open one per thread or process. Several
    processes (on several hosts, with PostgreSQL) may append to the same log:
    batches are serialised by the back end's write lock and each gets its own
    index range and checkpoint.

    Args:
        data_dir: the directory holding the signer key, verifier key and artifacts.
        store: the back end holding the log (``glasslog.storage``).

    Raises:
        LedgerError: the store holds no log (no origin recorded).
    """

    def __init__(self, data_dir: Path, store: LogStore):
        self.data_dir = Path(data_dir)
        self.store = store
        meta = store.meta()
        if "origin" not in meta:
            store.close()
            raise LedgerError(f"{store.location} holds no glasslog log (no origin recorded); run 'glasslog init'")
        self.origin: str = meta["origin"]
        self.verifier = Verifier.parse(meta["verifier_key"])
        self._lookup_key = bytes.fromhex(meta["lookup_key"])
        self._signer: Signer | None = None
        self._frontier: tuple[int, list[tuple[int, bytes]]] | None = None
        self._size_floor = 0  # a size the log is known to have reached: it only grows (spares a read per proof)
        self.group: GroupCommit | None = None
        """If set, ``append`` joins concurrent appends of other threads into one transaction (see ``GroupCommit``)."""

    # ----------------------------------------------------------------- set up
    @classmethod
    def create(cls, data_dir: str | os.PathLike, origin: str, store: str | None = None) -> Ledger:
        """Create a new log: Ed25519 signer key (mode 0600), verifier key, and the log in its back end.

        Args:
            data_dir: directory for the keys and artifacts (created if needed;
                must not hold a log yet). With no ``store``, the log's SQLite
                database goes here too.
            origin: the log's origin, e.g. ``bank.example/credit-decisions``;
                also the signing key's name.
            store: where the log's database is: None for the data directory's
                SQLite file, or a ``postgresql://`` URL (``$GLASSLOG_STORE``).

        Raises:
            LedgerError: a log already exists there, or the origin is invalid.
        """
        from ..storage import create_store  # run-time only: storage imports this package

        data_dir = Path(data_dir)
        if not origin or any(c.isspace() for c in origin) or "+" in origin or not origin.isprintable():
            raise LedgerError(f"origin {origin!r} must be non-empty printable text without spaces or '+'")
        key_path = data_dir / "log.key"
        if key_path.exists() or (store is None and (data_dir / "log.db").exists()):
            raise LedgerError(f"{data_dir} already holds a log; open it instead of creating it")
        # The data directory holds the signer key, the database (inputs, subject ids, salts, flag texts) and
        # artifacts: private from the moment it exists.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (data_dir / "artifacts").mkdir(mode=0o700, exist_ok=True)
        signer = generate_signer(origin)
        verifier_key = str(signer.verifier())
        meta = {"origin": origin, "verifier_key": verifier_key, "lookup_key": secrets.token_hex(32),
                "schema": "1", "created_at": utc_now()}
        backend = create_store(store, data_dir, meta)  # refuses a store that holds a log already
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(str(signer) + "\n")
        os.chmod(key_path, 0o600)
        (data_dir / "log.vkey").write_text(verifier_key + "\n")
        ledger = cls(data_dir, backend)
        ledger._signer = signer
        with backend.write() as tx:
            ledger._put_checkpoint(tx, 0, merkle.EMPTY_ROOT, signer)
        return ledger

    @classmethod
    def open(cls, data_dir: str | os.PathLike, store: str | None = None) -> Ledger:
        """Open an existing log.

        Args:
            data_dir: the log's data directory (keys, artifacts; with no
                ``store``, its SQLite database).
            store: None for the data directory's SQLite file, or a
                ``postgresql://`` URL.

        Raises:
            LedgerError: there is no log there (a database that is not a
                glasslog log is left untouched).
        """
        from ..storage import open_store  # run-time only: storage imports this package

        return cls(Path(data_dir), open_store(store, Path(data_dir)))

    def close(self) -> None:
        """Release the back end's connections."""
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def verifier_key(self) -> str:
        """The log's verifier key string ``name+keyhash+base64``."""
        return str(self.verifier)

    def signer(self) -> Signer:
        """Load the signer key, checking its file mode and that it matches the log.

        Raises:
            KeyFileError: missing, unreadable, group/other-accessible,
                malformed, or not the key whose verifier key the log recorded.
        """
        if self._signer is None:
            path = self.data_dir / "log.key"
            try:
                st = path.stat()
            except FileNotFoundError:
                raise KeyFileError(f"signer key file {path} is missing; only a log's operator can append") from None
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyFileError(
                    f"signer key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be readable by its owner only"
                    f" (chmod 600 {path})"
                )
            try:
                signer = Signer.parse(path.read_text(encoding="utf-8"))
            except (NoteError, UnicodeDecodeError) as exc:
                raise KeyFileError(f"signer key file {path} is corrupt: {exc}") from None
            except OSError as exc:
                raise KeyFileError(f"signer key file {path} cannot be read: {exc.strerror or exc}") from None
            if str(signer.verifier()) != self.verifier_key:
                raise KeyFileError(f"signer key file {path} does not match this log's verifier key {self.verifier_key}")
            self._signer = signer
        return self._signer

    # ------------------------------------------------------------------ reads
    @property
    def size(self) -> int:
        """Tree size: number of entries in the log."""
        n = self.store.size()
        if n > self._size_floor:
            self._size_floor = n
        return n

    def signed_size(self) -> int:
        """Tree size of the latest signed checkpoint."""
        return self.store.signed_size()

    def entry(self, index: int) -> bytes:
        """The bytes of entry ``index``.

        Raises:
            IndexError: no such entry.
            LedgerError: the stored entry is not bytes (the database was edited).
        """
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1 << 62:
            raise IndexError(f"no entry {index}; the log has {self.size} entries")
        data = self.store.entry(index)
        if data is None:
            raise IndexError(f"no entry {index}; the log has {self.size} entries")
        if not isinstance(data, bytes):
            raise LedgerError(f"entry {index} is stored as {type(data).__name__}, not bytes: the database was edited;"
                              " run 'glasslog verify log'")
        return data

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Iterate ``(index, bytes)`` for entries ``start`` .. ``end - 1``.

        Values are yielded as stored; a row edited into text comes out as
        ``str`` so that audits can report it.
        """
        end = self.size if end is None else end
        yield from self.store.entries(start, end)

    def typed_entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, str, bytes]]:
        """Iterate ``(index, stored type, data)``: for audits that check the stored type against the entry."""
        end = self.size if end is None else end
        yield from self.store.typed_entries(start, end)

    def entries_of_type(self, kind: str, start: int = 0) -> Iterator[tuple[int, dict]]:
        """Iterate ``(index, object)`` of entries of one type, in log order."""
        for idx, _, data in self.store.entries_of_types([kind], start, None):
            yield idx, json.loads(data)

    def entries_of_types(self, kinds: Sequence[str], start: int = 0, end: int | None = None) -> Iterator[tuple[int, str, bytes]]:
        """Iterate ``(index, type, bytes)`` of entries of the given types in [start, end), in log order."""
        yield from self.store.entries_of_types(list(kinds), start, end)

    def _check_size(self, tree_size: int | None) -> int:
        if tree_size is not None and 0 <= tree_size <= self._size_floor:
            return tree_size  # within a size the log has reached, so within it now: no read (one round trip on a server)
        size = self.size
        if tree_size is None:
            return size
        if not 0 <= tree_size <= size:
            raise ValueError(f"tree size {tree_size} is outside 0..{size} (the log's current size)")
        return tree_size

    def leaf_hash(self, index: int) -> bytes:
        """Stored leaf hash of entry ``index``.

        Raises:
            IndexError: no such entry.
        """
        size = self.size
        if not 0 <= index < size:
            raise IndexError(f"no entry {index}; the log has {size} entries")
        return self.store.hashes([(0, index)])[(0, index)]

    def root(self, tree_size: int | None = None) -> bytes:
        """Root hash of the tree of the first ``tree_size`` entries (default: all)."""
        n = self._check_size(tree_size)
        if n == 0:
            return merkle.EMPTY_ROOT
        parts = merkle.root_plan(n)
        return merkle.subtree_hash_from(parts, self.store.hashes(parts))

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """Inclusion proof (audit path) of entry ``index`` in the tree of ``tree_size``.

        RFC 9162 2.1.3.1; reads O(log n) stored hashes.

        Raises:
            ValueError: ``tree_size`` beyond the log, or ``index`` outside it.
        """
        n = self._check_size(tree_size)
        try:
            plan = merkle.inclusion_proof_plan(index, n)
        except merkle.ProofError as exc:
            raise ValueError(str(exc)) from None
        return merkle.build_proof(plan, self.store.hashes)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from ``old_size`` to ``new_size`` (default: current size).

        RFC 9162 2.1.4.1; reads O(log n) stored hashes.
        """
        n = self._check_size(new_size)
        try:
            plan = merkle.consistency_proof_plan(old_size, n)
        except merkle.ProofError as exc:
            raise ValueError(str(exc)) from None
        return merkle.build_proof(plan, self.store.hashes)

    def inclusion_proofs(self, indexes: Sequence[int], tree_size: int) -> dict[int, list[bytes]]:
        """Inclusion proofs of many entries in the tree of ``tree_size``, as ``inclusion_proof`` gives them.

        The proofs of neighbouring entries share most of their hashes: each
        level's stored hashes are read in runs (one read per run) instead of
        one read per proof.

        Raises:
            ValueError: an index outside the tree, or ``tree_size`` beyond the log.
            LedgerError: a stored hash is missing (a damaged database).
        """
        self._check_size(tree_size)
        try:
            plans = {i: merkle.inclusion_proof_plan(i, tree_size) for i in indexes}
        except merkle.ProofError as exc:
            raise ValueError(str(exc)) from None
        by_level: dict[int, set[int]] = {}
        for plan in plans.values():
            for parts in plan:
                for level, index in parts:
                    by_level.setdefault(level, set()).add(index)
        hashes: dict[tuple[int, int], bytes] = {}
        for level, wanted in by_level.items():
            ordered = sorted(wanted)
            start = prev = ordered[0]
            for index in [*ordered[1:], None]:
                if index is not None and index - prev <= 64:
                    prev = index
                    continue
                for k, h in self.store.stored_hashes(level, start, prev + 1):
                    if k in wanted:
                        hashes[(level, k)] = h
                if index is not None:
                    start = prev = index
        missing = [key for level, wanted in by_level.items() for key in ((level, k) for k in wanted) if key not in hashes]
        if missing:
            raise LedgerError(f"stored hash at level {missing[0][0]}, index {missing[0][1]} is missing: the database is damaged")
        return {i: merkle.build_proof(plan, lambda keys: hashes) for i, plan in plans.items()}

    def checkpoint(self, tree_size: int | None = None) -> str:
        """The signed checkpoint note at ``tree_size`` (default: the latest).

        Raises:
            LookupError: no checkpoint was signed at that size.
        """
        note = self.store.checkpoint(tree_size)
        if note is None:
            raise LookupError(f"no signed checkpoint at tree size {tree_size}")
        return note

    def checkpoint_covering(self, index: int) -> str:
        """The earliest signed checkpoint whose tree includes entry ``index``.

        Raises:
            LookupError: no checkpoint covers it yet.
        """
        note = self.store.checkpoint_covering(index)
        if note is None:
            raise LookupError(f"no signed checkpoint covers entry {index}")
        return note

    def checkpoints(self) -> Iterator[tuple[int, bytes, str, str]]:
        """Iterate all kept checkpoints as ``(tree_size, root, note, created_at)``, oldest first."""
        yield from self.store.checkpoints()

    def tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        """Bytes of hash tile ``tile/<level>/<index>[.p/<width>]`` (C2SP tlog-tiles).

        Raises:
            LookupError: the tile is not yet (or not at that width) in the log.
        """
        first = index * TILE_WIDTH
        tree_level = level * TILE_HEIGHT
        available = self.signed_size() >> tree_level
        if not 1 <= width <= TILE_WIDTH or first + width > available:
            raise LookupError(f"tile {level}/{index} of width {width} is beyond the signed tree")
        data = b"".join(h for _, h in self.store.stored_hashes(tree_level, first, first + width))
        if len(data) != 32 * width:
            raise LedgerError(f"tile {level}/{index}: stored hashes are missing; the database is damaged")
        return data

    def entry_bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        """Bytes of entry bundle ``tile/entries/<index>[.p/<width>]`` (C2SP tlog-tiles)."""
        first = index * TILE_WIDTH
        if not 1 <= width <= TILE_WIDTH or first + width > self.signed_size():
            raise LookupError(f"entry bundle {index} of width {width} is beyond the signed tree")
        return encode_entry_bundle([data for _, data in self.entries(first, first + width)])

    def stored_hashes(self, level: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Iterate ``(index, hash)`` of stored hashes at ``level`` for indexes in [start, end)."""
        yield from self.store.stored_hashes(level, start, end)

    # ----------------------------------------------------------------- writes
    def _frontier_hashes(self, tx: WriteTx, n: int) -> list[tuple[int, bytes]]:
        """``(level, hash)`` of the perfect subtrees making up the tree of size n."""
        if self._frontier is not None and self._frontier[0] == n:
            return list(self._frontier[1])
        parts = merkle.root_plan(n)
        hashes = tx.hashes(parts) if parts else {}
        return [(level, hashes[(level, index)]) for level, index in parts]

    def validate(self, entries: Sequence[Entry | dict | bytes]) -> list[Entry]:
        """Validate a batch's entries (``Entry`` objects, JSON objects or canonical bytes).

        Raises:
            EntryError: an entry is malformed, non-canonical or fails its schema
                (the message names the entry's batch position and field).
        """
        validated: list[Entry] = []
        for i, e in enumerate(entries):
            try:
                if isinstance(e, Entry):
                    validated.append(e)
                elif isinstance(e, dict):
                    validated.append(Entry.from_object(e))
                else:
                    validated.append(Entry.from_bytes(e))
            except EntryError as exc:
                raise EntryError(exc.detail, field=exc.field, index=i) from None
        return validated

    def append(
        self,
        entries: Sequence[Entry | dict | bytes],
        private_values: Sequence[PrivateValue] = (),
        within: Callable[[WriteTx, int], Any] | None = None,
    ) -> AppendResult:
        """Append a batch of entries, all or nothing, and sign a checkpoint covering it.

        With ``self.group`` set, the batch may be committed together with
        other threads' batches in one transaction and one checkpoint (group
        commit); it is still all or nothing on its own, and this returns only
        once it is durable.

        Args:
            entries: validated ``Entry`` objects, or JSON objects / canonical
                bytes to be validated here.
            private_values: values committed to by entries of this batch, to
                be stored beside the log in the same transaction.
            within: called as ``within(tx, first_index)`` inside the batch's
                write transaction (a ``glasslog.storage.WriteTx``), for side
                rows that must exist exactly when the batch does (receipt
                tokens, keys) and checks that must see the log as the batch
                extends it. If it raises, nothing of this batch is written.

        Returns:
            The indexes given and the new signed checkpoint.

        Raises:
            EntryError: an entry is malformed, non-canonical or fails its
                schema (the message names the entry and field). Nothing is written.
            KeyFileError: the signer key cannot be used. Nothing is written.
            ValueError: an empty batch, a commitment given twice, or a private value that does not point
                into the batch, whose salt and value do not open its
                commitment, or whose entry does not hold that commitment.
                Nothing is written.
            glasslog.storage.StorageError: the back end failed; nothing is written.
        """
        request = self._prepare(entries, private_values, within)
        if self.group is not None:
            return self.group.submit(self, request)
        commit_batches(self, [request])
        return request.outcome()

    def _prepare(self, entries, private_values, within) -> _Batch:
        """Validate a batch before it joins a transaction (so a bad batch never fails another)."""
        if not entries:
            raise ValueError("a batch must hold at least one entry")
        validated = self.validate(entries)
        if len({pv.commitment for pv in private_values}) != len(private_values):
            raise ValueError("a commitment is given more than once in the batch: every private value needs its own fresh salt")
        for pv in private_values:
            if not 0 <= pv.batch_position < len(validated):
                raise ValueError(f"private value {pv.commitment} points at batch position {pv.batch_position}, outside the batch")
            if not check_commitment(pv.commitment, pv.salt, pv.value):
                raise ValueError(f"private value {pv.kind!r} at batch position {pv.batch_position}: salt and value do not"
                                 f" open its commitment {pv.commitment}")
            if json.dumps(pv.commitment).encode() not in validated[pv.batch_position].data:
                raise ValueError(f"private value {pv.kind!r}: entry {pv.batch_position} of the batch does not hold its"
                                 f" commitment {pv.commitment}")
        self.signer()  # fail before joining a group, not inside it
        sha256 = hashlib.sha256
        return _Batch(validated, [sha256(b"\x00" + e.data).digest() for e in validated], list(private_values), within)

    def _put_checkpoint(self, tx: WriteTx, tree_size: int, root: bytes, signer: Signer) -> str:
        note = sign_note(Checkpoint(self.origin, tree_size, root).text(), signer)
        tx.put_checkpoint(tree_size, root, note, utc_now())
        return note

    def open_checkpoint(self, note: str) -> Checkpoint:
        """Verify a signed checkpoint against this log's verifier key and origin."""
        return open_checkpoint(note, self.verifier, self.origin)

    # --------------------------------------------------------- private values
    def _lookup(self, kind: str, value: bytes) -> bytes:
        return hmac.new(self._lookup_key, kind.encode() + b"\x00" + value, hashlib.sha256).digest()

    def private_value(self, commitment: str, entry_index: int | None = None) -> tuple[str, bytes, bytes] | None:
        """``(kind, salt, value_bytes)`` for a commitment, or ``None`` if unknown or erased.

        With ``entry_index`` (the entry holding the commitment) this is one
        keyed read; without it, a scan of the private values (they are keyed
        by entry index, not by commitment).
        """
        return self.store.private_value(commitment, entry_index)

    def private_values_for(self, indexes: Sequence[int]) -> dict[int, dict[str, tuple[str, bytes, bytes]]]:
        """Private values of entries, as ``{index: {kind: (commitment, salt, value)}}`` (erased ones left out)."""
        return self.store.private_values_for(list(indexes))

    def private_values_between(self, start: int, end: int, kinds: Sequence[str]) -> Iterator[tuple[int, str, bytes]]:
        """Iterate ``(entry index, kind, value bytes)`` of the private values of entries ``start`` .. ``end - 1``
        whose kind is in ``kinds``, in index order (erased ones left out).

        One range read, whose key starts with the entry index: what monitors
        use to open a million decisions' inputs.
        """
        yield from self.store.private_values_between(start, end, list(kinds))

    def erased_for(self, indexes: Sequence[int]) -> dict[int, set[str]]:
        """Kinds of private values whose erasure was recorded, as ``{index: {kind, ...}}``."""
        return self.store.erased_for(list(indexes))

    def erasure_of(self, commitment: str) -> tuple[str, str] | None:
        """``(erased_at, reason)`` if the private value with this commitment was erased, else None."""
        return self.store.erasure_of(commitment)

    def find_private(self, kind: str, value: bytes) -> list[int]:
        """Indexes of entries committing to a private value of a kind in ``LOOKUP_KINDS`` (a subject id), oldest first.

        Raises:
            ValueError: ``kind`` is not looked up by value.
        """
        if kind not in LOOKUP_KINDS:
            raise ValueError(f"private values of kind {kind!r} are not indexed by value; only {sorted(LOOKUP_KINDS)} are")
        return self.store.find_private(kind, self._lookup(kind, value))

    def erase_private(self, commitment: str, reason: str, entry_index: int | None = None) -> bool:
        """Erase a private value and its salt (e.g. a GDPR Art. 17 request), and every copy derived from it.

        The entry and its commitment stay in the log, so every proof and the
        whole-log audit still verify; the value can no longer be recovered or
        checked. Returns False if the commitment is unknown or already erased.
        ``entry_index``, the entry holding the commitment, makes finding it a
        keyed read instead of a scan.

        The erasure is recorded as an ``erasure`` entry on the log first (the
        commitment, the value's kind, the entry holding it, when, and the
        reason, e.g. the request it answers; never the value), so that replay
        and audits can tell a recorded erasure from a value deleted beside the
        log. The reason is public.

        Raises:
            ValueError: no reason given.
            KeyFileError: the signer key cannot be used (nothing is erased).
        """
        if not reason or not reason.strip():
            raise ValueError("an erasure needs a reason")
        found = self.store.private_value(commitment, entry_index)
        if found is None:
            return False
        at = utc_now()
        entry = erasure_entry(time=at, commitment=commitment, kind=found[0], reason=reason,
                              entry=None if entry_index is None else int(entry_index))
        self.append([entry])
        return self.store.erase_private(commitment, entry_index, reason, at)
