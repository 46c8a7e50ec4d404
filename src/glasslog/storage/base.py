"""The storage interface: what the log, the access keys, the flags and the read
model need from a back end, and nothing about how a back end keeps it.

``glasslog.ledger.Ledger`` holds the algorithm (hashing, proofs, signing,
validation); a ``LogStore`` holds the bytes. Every back end (``sqlite/``, the
embedded default, and ``postgres/``) implements these protocols and passes
the same behaviour suite (``tests/storage``). Nothing outside ``storage/``
writes SQL or imports a database driver.

Stored hashes are addressed as ``(level, index)``: the hash of the perfect,
aligned subtree covering leaves ``index * 2**level .. (index + 1) * 2**level - 1``
(see ``glasslog.ledger.merkle``). How a back end lays them out is its own
business (both shipped back ends keep strips of 32, see ``strips.py``).

Guarantees every back end gives:

- a write transaction (``LogStore.write``) holds the log's write lock from
  its first statement to its end: appends are serialised across threads,
  processes and hosts, and ``WriteTx.tree_size`` is the size the batch
  starts at;
- when ``write``'s block exits normally, the batch (entries, hashes, private
  values, side-table rows, checkpoint) is durable; if it raises, nothing of
  it is stored;
- ``WriteTx.put_checkpoint`` is a compare-and-swap on the latest checkpoint:
  it fails unless the tree grows from the size the transaction started at,
  so two writers can never sign two different trees of the same size;
- erasing a private value erases every copy of it the back end keeps (the
  read model's labels and the columnar copy included).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import ConflictError
from ..ledger.errors import LedgerError

if TYPE_CHECKING:  # the columnar copy needs numpy and pandas; a witness imports storage without them
    from .columnar import ColumnStore

__all__ = [
    "StorageError",
    "StorageUnavailable",
    "StorageConflict",
    "TransactionAborted",
    "PrivateRow",
    "ApiKeyRow",
    "DecisionRow",
    "WriteTx",
    "ReadModel",
    "LogStore",
    "HashKey",
]

HashKey = tuple[int, int]
"""``(level, index)`` of a stored hash."""


class StorageError(LedgerError):
    """The back end failed or holds data it should not (a damaged database)."""


class StorageUnavailable(StorageError):
    """The back end is busy or unreachable (lock timeout, server down); retrying later may succeed."""

    retry_after = 1


class TransactionAborted(StorageError):
    """The database ended the whole write transaction (not just a savepoint): nothing of it is stored."""


class StorageConflict(ConflictError, StorageError):
    """A write conflicts with what is stored (a duplicate key, a lost compare-and-swap)."""


@dataclass(frozen=True)
class PrivateRow:
    """One private value as stored beside the log.

    Attributes:
        entry_index: index of the entry holding the commitment.
        kind: what it is (``input``, ``subject``, ``output``, ``flag_text``, ...).
        commitment: the commitment string the entry holds.
        salt: 32-byte salt.
        value: canonical JSON bytes of the value.
        lookup: keyed hash for finding the value by value (``None`` for kinds
            that are not looked up).
    """

    entry_index: int
    kind: str
    commitment: str
    salt: bytes
    value: bytes
    lookup: bytes | None = None


@dataclass(frozen=True)
class ApiKeyRow:
    """An API key as stored (the secret's SHA-256, never the secret)."""

    key_id: str
    name: str
    role: str
    secret_hash: bytes
    deployments: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None


@dataclass(frozen=True)
class DecisionRow:
    """One decision in the read model (derived from the log, rebuilt on demand).

    ``label`` is the JSON text of the output label, opened from the private
    output where the log holds only its commitment; erasing that output
    erases the label too.
    """

    idx: int
    model: str
    deployment: str
    time: str
    label: str | None
    has_subject: bool


@runtime_checkable
class WriteTx(Protocol):
    """One write transaction holding the log's write lock (see ``LogStore.write``).

    Side tables that must change exactly when a batch is appended (receipt
    tokens, API keys) are written through it; checks that must see the log as
    the batch will extend it (flag de-duplication, triage conflicts) read
    through it.
    """

    tree_size: int
    """Size of the log when the lock was taken: the batch's first index."""

    def hashes(self, keys: Iterable[HashKey]) -> dict[HashKey, bytes]:
        """Stored hashes, as ``hashes`` on the store but inside the transaction.

        Raises:
            StorageError: a hash is missing (a damaged database).
        """

    def savepoint(self) -> AbstractContextManager[None]:
        """A savepoint inside the transaction: if the block raises, what it wrote is rolled back and the
        transaction goes on (how a group commit keeps one caller's failed batch from failing the others).

        Raises:
            TransactionAborted: the database ended the whole transaction meanwhile.
        """

    def write_batch(self, first_index: int, entries: Sequence[tuple[str, bytes]],
                    levels: Sequence[Sequence[bytes]], first: Sequence[int], private: Sequence[PrivateRow]) -> None:
        """Store a batch: entries ``(type, bytes)`` from ``first_index`` on, the new
        stored hashes (``merkle.Integration.levels`` / ``first``) and private values.

        Any part may be empty: a group commit writes each caller's entries and
        private values first, then the group's hashes in one call.

        Raises:
            StorageConflict: an index or a private value's key is taken.
            StorageError: the stored hashes the batch extends are missing.
        """

    def put_checkpoint(self, tree_size: int, root: bytes, note: str, created_at: str) -> None:
        """Store the signed checkpoint of the batch: a compare-and-swap from ``self.tree_size``.

        Raises:
            StorageConflict: the latest checkpoint is no longer at ``self.tree_size``
                or one of ``tree_size`` exists.
        """

    def entries_of_types(self, types: Sequence[str], start: int, end: int) -> Iterator[tuple[int, str, bytes]]:
        """``(index, type, bytes)`` of entries in [start, end) with a type in ``types``, in log order."""

    def put_receipt_tokens(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store receipt token hashes ``(entry index, sha256 of the secret)``.

        Raises:
            StorageConflict: an entry already has a token.
        """

    def put_ingested(self, rows: Sequence[tuple[str, bytes, int]]) -> None:
        """Store ``(deployment, key, entry index)`` of ingested telemetry (``glasslog.ingest``): an OTLP span's key is
        its trace id and span id (24 bytes), so the same span delivered again is logged once.

        Raises:
            StorageConflict: a key of that deployment is stored already (a duplicate delivered concurrently).
        """

    def put_api_key(self, key: ApiKeyRow) -> None:
        """Store a new API key.

        Raises:
            StorageConflict: the key id is taken.
        """

    def revoke_api_key(self, key_id: str, at: str) -> bool:
        """Mark an active key revoked at ``at``; False if there is no active key with that id."""

    def copy_private(self, rows: Sequence[tuple[PrivateRow, str | None, str | None]]) -> None:
        """Store private values as another store holds them (``glasslog.storage.migrate``): ``(row, erased_at,
        reason)``, as ``LogStore.private_rows`` gives them; an erased row keeps its commitment and erasure record,
        with no salt, value or lookup hash.

        Raises:
            StorageConflict: a private value's key is taken.
        """


@runtime_checkable
class ReadModel(Protocol):
    """The derived search index over decisions, outcomes and leaf hashes.

    Derived from the log (the source of truth) by ``glasslog.server.index``;
    stored by the back end so that every server process shares it, and
    reached by erasure.
    """

    def indexed_upto(self) -> int:
        """Tree size up to which entries have been indexed."""

    def add(self, start: int, upto: int, decisions: Sequence[DecisionRow], outcomes: Sequence[tuple[int, int]],
            leaves: Sequence[tuple[bytes, int]]) -> bool:
        """Add the rows derived from entries [start, upto), atomically.

        Returns False (and adds nothing) if another process indexed past
        ``start`` meanwhile.
        """

    def index_of_leaf(self, leaf_hash: bytes) -> int | None:
        """Index of the first entry with this leaf hash, or None."""

    def search(self, *, model: str | None, deployments: Sequence[str] | None, since: str | None, until: str | None,
               label: str | None, after: int, limit: int) -> list[int]:
        """Decision indexes matching every given filter, ascending, after ``after``."""

    def outcomes_of(self, decision: int) -> list[int]:
        """Indexes of outcome entries for a decision, ascending."""

    def deployment_stats(self, deployment: str) -> tuple[int, int, int, str | None, str | None, dict[str, int]]:
        """``(decisions, with subject, outcomes, first time, last time, decisions per day)`` of a deployment."""

    def label_counts(self, deployment: str) -> dict[str, int]:
        """Decisions per label text (``"null"`` for none) of a deployment."""

    def decisions_between(self, start: int, end: int) -> list[DecisionRow]:
        """Indexed decisions with index in [start, end), ascending."""

    def decisions_at(self, indexes: Sequence[int]) -> dict[int, DecisionRow]:
        """Indexed decisions at these indexes (absent ones left out)."""


@runtime_checkable
class LogStore(Protocol):
    """Everything one log keeps in a back end. One instance per thread."""

    location: str
    """Where the store is, for messages (a path or a URL without its password)."""

    read_model: ReadModel

    columnar: ColumnStore
    """The columnar copy monitors and audits read (``glasslog.storage.columnar``): decoded inputs, outputs and
    outcomes per deployment in chunks of arrays, built on first use from where it stopped, scrubbed by erasure."""

    def meta(self) -> dict[str, str]:
        """The log's settings: ``origin``, ``verifier_key``, ``lookup_key`` (hex), ``created_at``."""

    def write(self) -> AbstractContextManager[WriteTx]:
        """Begin a write transaction holding the log's write lock; commit on normal exit, roll back on error.

        Raises:
            StorageUnavailable: the lock could not be taken in time.
        """

    # ------------------------------------------------------------ entries, hashes, checkpoints
    def size(self) -> int:
        """Number of entries stored."""

    def signed_size(self) -> int:
        """Tree size of the latest checkpoint."""

    def entry(self, index: int) -> bytes | str | None:
        """Bytes of one entry (``str`` if the database was edited into text), or None."""

    def entries(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(index, bytes)`` of entries in [start, end), in order."""

    def typed_entries(self, start: int, end: int) -> Iterator[tuple[int, str, bytes]]:
        """``(index, stored type, bytes)`` of entries in [start, end), in order."""

    def entries_of_types(self, types: Sequence[str], start: int, end: int | None) -> Iterator[tuple[int, str, bytes]]:
        """``(index, type, bytes)`` of entries in [start, end) with a type in ``types``, in order."""

    def hashes(self, keys: Iterable[HashKey]) -> dict[HashKey, bytes]:
        """Stored hashes at these keys.

        Raises:
            StorageError: one is missing (a damaged database).
        """

    def stored_hashes(self, level: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(index, hash)`` of the stored hashes at ``level`` in [start, end) that exist, in order."""

    def checkpoint(self, tree_size: int | None) -> str | None:
        """The signed note at ``tree_size`` (None: the latest), or None."""

    def checkpoint_covering(self, index: int) -> str | None:
        """The earliest signed note whose tree includes entry ``index``, or None."""

    def checkpoints(self) -> Iterator[tuple[int, bytes, str, str]]:
        """``(tree_size, root, note, created_at)`` of every checkpoint, oldest first."""

    # ------------------------------------------------------------ witness cosignatures (a side table)
    # Cosignatures (C2SP tlog-cosignature) that witnesses returned for the log's checkpoints, stored by the server's
    # background cosigning thread (glasslog.server.cosigning), never in an append's transaction. One row per
    # (tree size, witness verifier key); a later put for the same pair replaces the row. Back ends: sqlite/store.py
    # implements these; postgres/ must mirror them (a table ``cosignatures(tree_size bigint, witness text, line text,
    # at text, primary key (tree_size, witness))``) and pass the same tests (tests/test_witnessed_log.py).
    def put_cosignature(self, tree_size: int, witness: str, line: str, at: str) -> None:
        """Store witness ``witness``'s (its verifier key string) cosignature line on the checkpoint at ``tree_size``."""

    def cosignatures(self, tree_size: int) -> list[tuple[str, str, str]]:
        """``(witness verifier key, signature line, stored at)`` of the cosignatures on the checkpoint at ``tree_size``."""

    def witness_sizes(self) -> dict[str, int]:
        """The largest tree size each witness (by verifier key) has cosigned."""

    def latest_cosigned_size(self, min_size: int) -> int | None:
        """The largest tree size >= ``min_size`` whose checkpoint has a cosignature, or None."""

    def cosigned_sizes(self) -> list[int]:
        """Every tree size with a stored cosignature, ascending (the whole-log audit checks each still has its checkpoint)."""

    # ------------------------------------------------------------ private values
    def private_value(self, commitment: str, entry_index: int | None) -> tuple[str, bytes, bytes] | None:
        """``(kind, salt, value)`` of an unerased private value, or None."""

    def private_values_for(self, indexes: Sequence[int]) -> dict[int, dict[str, tuple[str, bytes, bytes]]]:
        """``{index: {kind: (commitment, salt, value)}}`` of unerased private values of these entries."""

    def private_values_between(self, start: int, end: int, kinds: Sequence[str]) -> Iterator[tuple[int, str, bytes]]:
        """``(index, kind, value)`` of unerased private values of kinds ``kinds`` for entries in [start, end), in order."""

    def erased_for(self, indexes: Sequence[int]) -> dict[int, set[str]]:
        """``{index: {kind, ...}}`` of erased private values of these entries."""

    def erasure_of(self, commitment: str) -> tuple[str, str] | None:
        """``(erased_at, reason)`` if the private value with this commitment was erased, else None."""

    def find_private(self, kind: str, lookup: bytes) -> list[int]:
        """Indexes of entries with an unerased private value of ``kind`` whose lookup hash is ``lookup``, ascending."""

    def erase_private(self, commitment: str, entry_index: int | None, reason: str, at: str) -> bool:
        """Erase a private value's salt and value and every derived copy (the read model's label).

        Returns False if the commitment is unknown or already erased.
        """

    # ------------------------------------------------------------ side tables
    def api_keys(self) -> list[ApiKeyRow]:
        """Every API key, revoked ones included, oldest first."""

    def api_key(self, key_id: str) -> ApiKeyRow | None:
        """One API key by id, or None."""

    def receipt_token_hash(self, entry_index: int) -> bytes | None:
        """The stored hash of a decision's receipt token, or None."""

    def ingested(self, deployment: str, keys: Sequence[bytes]) -> dict[bytes, int]:
        """``{key: entry index}`` of the keys among ``keys`` already ingested for ``deployment`` (see ``WriteTx.put_ingested``)."""

    def legacy_receipt_token(self, token_hash: bytes) -> int | None:
        """Entry index of a first-release receipt token (hashed whole), or None."""

    def secret(self, name: str, new_value: bytes) -> bytes:
        """A per-log secret by name (e.g. the flags' pseudonym key), stored as ``new_value`` on first use."""

    # ------------------------------------------------------------ for copying a log (glasslog.storage.migrate)
    def private_rows(self, start: int, end: int) -> Iterator[tuple[PrivateRow, str | None, str | None]]:
        """``(row, erased_at, reason)`` of every private value of entries in [start, end), erased ones included
        (their salt, value and lookup are None), by entry index then kind."""

    def receipt_tokens(self) -> Iterator[tuple[int, bytes]]:
        """``(entry index, token hash)`` of every stored receipt token hash, in index order."""

    def ingested_rows(self) -> Iterator[tuple[str, bytes, int]]:
        """``(deployment, key, entry index)`` of every ingested-telemetry key (``WriteTx.put_ingested``), by entry index."""

    def secrets(self) -> dict[str, bytes]:
        """Every per-log secret, by name."""

    def close(self) -> None:
        """Release connections."""
