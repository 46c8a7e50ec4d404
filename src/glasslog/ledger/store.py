"""The append-only log on SQLite: entries, stored tree hashes, signed checkpoints
and the private values beside the log.

Layout of a data directory::

    <data-dir>/log.db        SQLite database (WAL): entries, hashes, checkpoints,
                             private values, meta
    <data-dir>/log.key       signer key (C2SP note key), mode 0600
    <data-dir>/log.vkey      verifier key string, public
    <data-dir>/artifacts/    model artifacts, named by fingerprint

Stored hashes: the hash of every perfect, aligned subtree that is complete
(level L, index k covering leaves k*2**L .. (k+1)*2**L - 1) is stored once,
when it completes, and never changes. That is about 2 hashes per entry. They
are kept in *strips* of 32 consecutive hashes of one level (one row of up to
1,024 bytes, id = level << 48 | k // 32); the last strip of a level grows
batch by batch until it holds 32. Strips keep the row count per entry low
(appends are dominated by SQLite row inserts) while a proof still reads only
the O(log n) strips that hold its hashes, and
it lets the store answer the root, an inclusion proof or a consistency proof
for *any* tree size up to the current one by reading O(log n) hashes in one
query (see ``merkle.inclusion_proof_plan``), and serve C2SP tiles as they are.

Durability: the database runs in WAL mode with ``synchronous=FULL``; a batch
is one transaction holding its entries, its new hashes, its private values
and its signed checkpoint. When ``append`` returns, the batch has been synced
to disk and survives a process crash or power loss; if ``append`` raises,
nothing of the batch is in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import merkle
from .commitments import check_commitment
from .entries import Entry, EntryError, utc_now
from .note import Checkpoint, NoteError, Signer, Verifier, generate_signer, open_checkpoint, sign_note
from .tiles import TILE_HEIGHT, TILE_WIDTH, encode_entry_bundle

__all__ = [
    "Ledger",
    "LedgerError",
    "KeyFileError",
    "PrivateValue",
    "AppendResult",
    "LOOKUP_KINDS",
    "DATA_DIR_ENV",
    "default_data_dir",
]

DATA_DIR_ENV = "GLASSLOG_DATA_DIR"
"""Environment variable naming the data directory."""

_LEVEL_SHIFT = 48  # hash row id = level << 48 | strip; 2**48 leaves per log is plenty
_STRIP = 32  # hashes per stored row
_STRIP_BYTES = _STRIP * 32
_CACHED_LEVEL = 8  # full strips from this level up are cached in memory
_STRIP_CACHE_ROWS = 16384  # at most 16 MiB of cached strips per Ledger

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
"""
# Private values are keyed by (entry index, kind), so a batch's rows go to the
# end of the table: a key such as the (random) commitment costs a random B-tree
# page per row written, which measured as most of a decision batch's
# write-ahead log. For the same reason only the kinds in LOOKUP_KINDS get a
# lookup hash (an index by value, for "all decisions about this subject").

LOOKUP_KINDS = frozenset({"subject"})
"""Kinds of private value that ``Ledger.find_private`` can find by value."""

_FIRST_PRIVATE_VALUES = "commitment TEXT PRIMARY KEY"  # the first release's table, migrated on open


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a log written by an earlier release to this schema, in one transaction (entries and hashes are untouched)."""
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
            "FROM private_values_first_release ORDER BY entry_index, kind".format(",".join(f"'{k}'" for k in sorted(LOOKUP_KINDS))))
        conn.execute("DROP TABLE private_values_first_release")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class LedgerError(RuntimeError):
    """The log cannot be created, opened or used as asked."""


class KeyFileError(LedgerError):
    """The signer key file is missing, malformed or readable by others."""


def default_data_dir() -> Path:
    """``$GLASSLOG_DATA_DIR`` if set, else ``./glasslog-data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "glasslog-data")


def _strip_id(level: int, index: int) -> int:
    """Row id of the strip holding the stored hash at (level, index)."""
    return (level << _LEVEL_SHIFT) | (index // _STRIP)


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
        tree_size: tree size after the batch.
        checkpoint: the signed checkpoint note covering the batch.
    """

    first_index: int
    tree_size: int
    checkpoint: str

    @property
    def indexes(self) -> range:
        return range(self.first_index, self.tree_size)


class Ledger:
    """One append-only Merkle log stored in a data directory.

    Open with ``Ledger.create`` (new log) or ``Ledger.open`` (existing one).
    Instances are not thread-safe; open one per thread or process. Several
    processes may append to the same log: batches are serialised by SQLite's
    write lock and each gets its own index range and checkpoint.
    """

    def __init__(self, data_dir: Path, conn: sqlite3.Connection):
        self.data_dir = data_dir
        self._db = conn
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if "origin" not in meta:
            raise LedgerError(f"{data_dir} holds no glasslog log (no origin recorded); run 'glasslog init'")
        self.origin: str = meta["origin"]
        self.verifier = Verifier.parse(meta["verifier_key"])
        self._lookup_key = bytes.fromhex(meta["lookup_key"])
        self._signer: Signer | None = None
        self._frontier: tuple[int, list[tuple[int, bytes]]] | None = None
        self._strip_cache: dict[int, bytes] = {}

    # ----------------------------------------------------------------- set up
    @staticmethod
    def _connect(db_path: Path) -> sqlite3.Connection:
        # check_same_thread=False: a Ledger may be handed between threads (e.g. a
        # server's worker pool) as long as one thread uses it at a time.
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Overwrite deleted content with zeros, so that an erased private value
        # does not survive in free space of the database file (not every SQLite
        # build has this on by default).
        conn.execute("PRAGMA secure_delete=ON")
        return conn

    @classmethod
    def create(cls, data_dir: str | os.PathLike, origin: str) -> Ledger:
        """Create a new log: database, Ed25519 signer key (mode 0600), verifier key.

        Args:
            data_dir: directory to create or reuse (must not hold a log yet).
            origin: the log's origin, e.g. ``bank.example/credit-decisions``;
                also the signing key's name.

        Raises:
            LedgerError: a log already exists there, or the origin is invalid.
        """
        data_dir = Path(data_dir)
        if not origin or any(c.isspace() for c in origin) or "+" in origin or not origin.isprintable():
            raise LedgerError(f"origin {origin!r} must be non-empty printable text without spaces or '+'")
        key_path, db_path = data_dir / "log.key", data_dir / "log.db"
        if db_path.exists() or key_path.exists():
            raise LedgerError(f"{data_dir} already holds a log; open it instead of creating it")
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "artifacts").mkdir(exist_ok=True)
        signer = generate_signer(origin)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(str(signer) + "\n")
        os.chmod(key_path, 0o600)
        verifier_key = str(signer.verifier())
        (data_dir / "log.vkey").write_text(verifier_key + "\n")
        conn = cls._connect(db_path)
        conn.executescript(_SCHEMA)
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("origin", origin), ("verifier_key", verifier_key), ("lookup_key", secrets.token_hex(32)),
                 ("schema", "1"), ("created_at", utc_now())],
            )
        ledger = cls(data_dir, conn)
        ledger._signer = signer
        ledger._commit_checkpoint(0, merkle.EMPTY_ROOT)
        return ledger

    @classmethod
    def open(cls, data_dir: str | os.PathLike) -> Ledger:
        """Open an existing log.

        Raises:
            LedgerError: there is no log in ``data_dir`` (no ``log.db``, or a
                ``log.db`` that is not a glasslog log; such a file is left untouched).
        """
        data_dir = Path(data_dir)
        db_path = data_dir / "log.db"
        if not db_path.is_file():
            raise LedgerError(f"no log at {data_dir} (missing {db_path.name}); create one with 'glasslog init'")
        # Look before configuring: a database that is not a glasslog log must be
        # left exactly as it is (no WAL switch, no tables added).
        probe = sqlite3.connect(db_path, isolation_level=None, timeout=30.0)
        try:
            is_log = probe.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"no log at {data_dir}: {db_path.name} is not a glasslog database ({exc})") from None
        finally:
            probe.close()
        if not is_log:
            raise LedgerError(f"no log at {data_dir}: {db_path.name} holds no glasslog log; create one with 'glasslog init'")
        conn = cls._connect(db_path)
        try:
            _migrate(conn)
            conn.executescript(_SCHEMA)
            return cls(data_dir, conn)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

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
        row = self._db.execute("SELECT MAX(idx) FROM entries").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def signed_size(self) -> int:
        """Tree size of the latest signed checkpoint."""
        return self._db.execute("SELECT MAX(tree_size) FROM checkpoints").fetchone()[0] or 0

    def entry(self, index: int) -> bytes:
        """The bytes of entry ``index``.

        Raises:
            IndexError: no such entry.
        """
        if not isinstance(index, int) or not 0 <= index < 1 << 62:
            raise IndexError(f"no entry {index}; the log has {self.size} entries")
        row = self._db.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise IndexError(f"no entry {index}; the log has {self.size} entries")
        if not isinstance(row[0], bytes):
            raise LedgerError(f"entry {index} is stored as {type(row[0]).__name__}, not bytes: the database was edited;"
                              " run 'glasslog verify log'")
        return row[0]

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Iterate ``(index, bytes)`` for entries ``start`` .. ``end - 1``.

        Values are yielded as stored; a row edited into another SQLite type
        (TEXT) comes out as ``str`` so that audits can report it.
        """
        end = self.size if end is None else end
        cur = self._db.execute("SELECT idx, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        yield from cur

    def entries_of_type(self, kind: str, start: int = 0) -> Iterator[tuple[int, dict]]:
        """Iterate ``(index, object)`` of entries of one type, in log order."""
        cur = self._db.execute("SELECT idx, data FROM entries WHERE type = ? AND idx >= ? ORDER BY idx", (kind, start))
        for idx, data in cur:
            yield idx, json.loads(data)

    def _strips(self, ids: Iterable[int]) -> dict[int, bytes]:
        # Full strips never change, so those of the upper levels (few: n / 2**13
        # rows from level 8 up) are kept in memory; every proof needs some of them.
        cache = self._strip_cache
        found: dict[int, bytes] = {}
        wanted = []
        for sid in set(ids):
            hit = cache.get(sid)
            if hit is None:
                wanted.append(sid)
            else:
                found[sid] = hit
        for chunk in range(0, len(wanted), 500):
            part = wanted[chunk : chunk + 500]
            q = f"SELECT id, strip FROM hashes WHERE id IN ({','.join('?' * len(part))})"
            for sid, strip in self._db.execute(q, part):
                found[sid] = strip
                if (sid >> _LEVEL_SHIFT) >= _CACHED_LEVEL and len(cache) < _STRIP_CACHE_ROWS \
                        and isinstance(strip, bytes) and len(strip) == _STRIP_BYTES:
                    cache[sid] = strip
        return found

    def _get_hashes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        keys = list(keys)
        strips = self._strips(_strip_id(level, index) for level, index in keys)
        out = {}
        for level, index in keys:
            strip = strips.get(_strip_id(level, index))
            offset = (index % _STRIP) * 32
            h = strip[offset : offset + 32] if isinstance(strip, bytes) else b""
            if len(h) != 32:
                raise LedgerError(f"stored hash at level {level}, index {index} is missing: the database is damaged")
            out[(level, index)] = h
        return out

    def _check_size(self, tree_size: int | None) -> int:
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
        return self._get_hashes([(0, index)])[(0, index)]

    def root(self, tree_size: int | None = None) -> bytes:
        """Root hash of the tree of the first ``tree_size`` entries (default: all)."""
        n = self._check_size(tree_size)
        if n == 0:
            return merkle.EMPTY_ROOT
        parts = merkle.root_plan(n)
        return merkle.subtree_hash_from(parts, self._get_hashes(parts))

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
        return merkle.build_proof(plan, self._get_hashes)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from ``old_size`` to ``new_size`` (default: current size).

        RFC 9162 2.1.4.1; reads O(log n) stored hashes.
        """
        n = self._check_size(new_size)
        try:
            plan = merkle.consistency_proof_plan(old_size, n)
        except merkle.ProofError as exc:
            raise ValueError(str(exc)) from None
        return merkle.build_proof(plan, self._get_hashes)

    def checkpoint(self, tree_size: int | None = None) -> str:
        """The signed checkpoint note at ``tree_size`` (default: the latest).

        Raises:
            LookupError: no checkpoint was signed at that size.
        """
        if tree_size is None:
            row = self._db.execute("SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1").fetchone()
        else:
            row = self._db.execute("SELECT note FROM checkpoints WHERE tree_size = ?", (tree_size,)).fetchone()
        if row is None:
            raise LookupError(f"no signed checkpoint at tree size {tree_size}")
        return row[0]

    def checkpoint_covering(self, index: int) -> str:
        """The earliest signed checkpoint whose tree includes entry ``index``."""
        row = self._db.execute(
            "SELECT note FROM checkpoints WHERE tree_size > ? ORDER BY tree_size LIMIT 1", (index,)
        ).fetchone()
        if row is None:
            raise LookupError(f"no signed checkpoint covers entry {index}")
        return row[0]

    def checkpoints(self) -> Iterator[tuple[int, bytes, str, str]]:
        """Iterate all kept checkpoints as ``(tree_size, root, note, created_at)``, oldest first."""
        yield from self._db.execute("SELECT tree_size, root, note, created_at FROM checkpoints ORDER BY tree_size")

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
        data = b"".join(h for _, h in self.stored_hashes(tree_level, first, first + width))
        if len(data) != 32 * width:
            raise LedgerError(f"tile {level}/{index}: stored hashes are missing; the database is damaged")
        return data

    def entry_bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        """Bytes of entry bundle ``tile/entries/<index>[.p/<width>]`` (C2SP tlog-tiles)."""
        first = index * TILE_WIDTH
        if not 1 <= width <= TILE_WIDTH or first + width > self.signed_size():
            raise LookupError(f"entry bundle {index} of width {width} is beyond the signed tree")
        return encode_entry_bundle([data for _, data in self.entries(first, first + width)])

    # ----------------------------------------------------------------- writes
    def _frontier_hashes(self, n: int) -> list[tuple[int, bytes]]:
        """``(level, hash)`` of the perfect subtrees making up the tree of size n."""
        if self._frontier is not None and self._frontier[0] == n:
            return list(self._frontier[1])
        parts = merkle.root_plan(n)
        hashes = self._get_hashes(parts) if parts else {}
        return [(level, hashes[(level, index)]) for level, index in parts]

    def append(
        self,
        entries: Sequence[Entry | dict | bytes],
        private_values: Sequence[PrivateValue] = (),
        within: Callable[[sqlite3.Connection, int], None] | None = None,
    ) -> AppendResult:
        """Append a batch of entries, all or nothing, and sign a checkpoint covering it.

        Args:
            entries: validated ``Entry`` objects, or JSON objects / canonical
                bytes to be validated here.
            private_values: values committed to by entries of this batch, to
                be stored beside the log in the same transaction.
            within: called as ``within(connection, first_index)`` inside the
                batch's transaction, for rows beside the log that must exist
                exactly when the batch does (receipt tokens, indexes). If it
                raises, the batch is rolled back.

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
            sqlite3.Error: storage failed; the transaction is rolled back.
        """
        if not entries:
            raise ValueError("a batch must hold at least one entry")
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
        signer = self.signer()
        sha256 = hashlib.sha256
        leaf_hashes = [sha256(b"\x00" + e.data).digest() for e in validated]

        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            n = self.size
            stack = self._frontier_hashes(n)
            # New stored hashes per level, in index order; levels[L] starts at index first[L].
            levels: list[list[bytes]] = [leaf_hashes]
            first = [n]
            pos = n
            for h in leaf_hashes:
                level = 0
                while stack and stack[-1][0] == level:
                    h = sha256(b"\x01" + stack.pop()[1] + h).digest()
                    level += 1
                    if level == len(levels):
                        levels.append([])
                        first.append(pos >> level)
                    levels[level].append(h)
                stack.append((level, h))
                pos += 1
            root = stack[-1][1]
            for _, h in reversed(stack[:-1]):
                root = merkle.node_hash(h, root)
            new_size = n + len(validated)
            db.executemany(
                "INSERT INTO entries(idx, type, data) VALUES (?, ?, ?)",
                [(n + i, e.type, e.data) for i, e in enumerate(validated)],
            )
            db.executemany("INSERT OR REPLACE INTO hashes(id, strip) VALUES (?, ?)", self._strip_rows(levels, first))
            if private_values:
                db.executemany(
                    "INSERT INTO private_values(commitment, kind, entry_index, salt, value, lookup) VALUES (?, ?, ?, ?, ?, ?)",
                    [(pv.commitment, pv.kind, n + pv.batch_position, pv.salt, pv.value,
                      self._lookup(pv.kind, pv.value) if pv.kind in LOOKUP_KINDS else None)
                     for pv in private_values],
                )
            if within is not None:
                within(db, n)
            note = self._insert_checkpoint(new_size, root, signer)
            db.execute("COMMIT")
        except BaseException:
            self._frontier = None
            self._rollback()
            raise
        self._frontier = (new_size, stack)
        return AppendResult(n, new_size, note)

    def _strip_rows(self, levels: list[list[bytes]], first: list[int]) -> list[tuple[int, bytes]]:
        """Rows (id, strip) to upsert for new hashes: partial strips extended, new strips added."""
        partial = [_strip_id(level, start) for level, start in enumerate(first) if start % _STRIP]
        existing = self._strips(partial) if partial else {}
        rows = []
        for level, new in enumerate(levels):
            if not new:
                continue
            start = first[level]
            sid = _strip_id(level, start)
            data = existing.get(sid, b"") + b"".join(new)
            if len(data) != ((start % _STRIP) + len(new)) * 32:
                raise LedgerError(f"stored hashes at level {level} before index {start} are missing: the database is damaged")
            for k in range(0, len(data), _STRIP_BYTES):
                rows.append((sid + k // _STRIP_BYTES, data[k : k + _STRIP_BYTES]))
        return rows

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so itself."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _insert_checkpoint(self, tree_size: int, root: bytes, signer: Signer) -> str:
        note = sign_note(Checkpoint(self.origin, tree_size, root).text(), signer)
        self._db.execute(
            "INSERT INTO checkpoints(tree_size, root, note, created_at) VALUES (?, ?, ?, ?)",
            (tree_size, root, note, utc_now()),
        )
        return note

    def _commit_checkpoint(self, tree_size: int, root: bytes) -> str:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            note = self._insert_checkpoint(tree_size, root, self.signer())
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
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
        keyed read; without it, a scan of the private values (they are not
        indexed by commitment, see the schema note).
        """
        where, params = "commitment = ? AND erased_at IS NULL", [commitment]
        if entry_index is not None:
            where, params = "entry_index = ? AND " + where, [entry_index, commitment]
        row = self._db.execute(f"SELECT kind, salt, value FROM private_values WHERE {where}", params).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def private_values_for(self, indexes: Sequence[int]) -> dict[int, dict[str, tuple[str, bytes, bytes]]]:
        """Private values of entries, as ``{index: {kind: (commitment, salt, value)}}`` (erased ones left out)."""
        out: dict[int, dict[str, tuple[str, bytes, bytes]]] = {}
        ids = list(indexes)
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            q = (f"SELECT entry_index, kind, commitment, salt, value FROM private_values "
                 f"WHERE erased_at IS NULL AND entry_index IN ({','.join('?' * len(part))})")
            for idx, kind, commitment, salt, value in self._db.execute(q, part):
                out.setdefault(idx, {})[kind] = (commitment, salt, value)
        return out

    def private_values_between(self, start: int, end: int, kinds: Sequence[str]) -> Iterator[tuple[int, str, bytes]]:
        """Iterate ``(entry index, kind, value bytes)`` of the private values of entries ``start`` .. ``end - 1``
        whose kind is in ``kinds``, in index order (erased ones left out).

        One range read of the table, whose key starts with the entry index: what
        monitors use to open a million decisions' inputs (``private_values_for``
        looks indexes up 500 at a time, with their commitments and salts).
        """
        kinds = list(kinds)
        if not kinds or end <= start:
            return
        q = (f"SELECT entry_index, kind, value FROM private_values WHERE entry_index >= ? AND entry_index < ? "
             f"AND kind IN ({','.join('?' * len(kinds))}) AND erased_at IS NULL ORDER BY entry_index")
        yield from self._db.execute(q, (start, end, *kinds))

    def erased_for(self, indexes: Sequence[int]) -> dict[int, set[str]]:
        """Kinds of private values whose erasure was recorded, as ``{index: {kind, ...}}``."""
        out: dict[int, set[str]] = {}
        ids = list(indexes)
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            q = (f"SELECT entry_index, kind FROM private_values "
                 f"WHERE erased_at IS NOT NULL AND entry_index IN ({','.join('?' * len(part))})")
            for idx, kind in self._db.execute(q, part):
                out.setdefault(idx, set()).add(kind)
        return out

    def typed_entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, str, bytes]]:
        """Iterate ``(index, type column, data)``: for audits that check the stored type against the entry."""
        end = self.size if end is None else end
        yield from self._db.execute("SELECT idx, type, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))

    def find_private(self, kind: str, value: bytes) -> list[int]:
        """Indexes of entries committing to a private value of a kind in ``LOOKUP_KINDS`` (a subject id), oldest first.

        Raises:
            ValueError: ``kind`` is not looked up by value.
        """
        if kind not in LOOKUP_KINDS:
            raise ValueError(f"private values of kind {kind!r} are not indexed by value; only {sorted(LOOKUP_KINDS)} are")
        rows = self._db.execute(
            "SELECT entry_index FROM private_values WHERE lookup = ? AND kind = ? AND erased_at IS NULL ORDER BY entry_index",
            (self._lookup(kind, value), kind),
        )
        return [r[0] for r in rows]

    def erase_private(self, commitment: str, reason: str, entry_index: int | None = None) -> bool:
        """Erase a private value and its salt (e.g. a GDPR Art. 17 request).

        The entry and its commitment stay in the log, so every proof and the
        whole-log audit still verify; the value can no longer be recovered or
        checked. Returns False if the commitment is unknown or already erased.

        The old bytes are overwritten with zeros in the database file
        (``secure_delete``), and the write-ahead log, which still holds the
        pages as they were, is checkpointed and truncated. That checkpoint
        waits (up to the busy timeout) for other connections' reads to finish;
        if one is still reading then, the old pages stay in the WAL until the
        next checkpoint overwrites them.

        ``entry_index``, the entry holding the commitment, makes finding it a
        keyed read instead of a scan (as for ``private_value``).
        """
        if not reason:
            raise ValueError("an erasure needs a reason")
        where, params = "commitment = ? AND erased_at IS NULL", [commitment]
        if entry_index is not None:
            where, params = "entry_index = ? AND " + where, [entry_index, commitment]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                "UPDATE private_values SET salt = NULL, value = NULL, lookup = NULL, erased_at = ?, erasure_reason = ?"
                f" WHERE {where}", [utc_now(), reason, *params])
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        erased = cur.rowcount == 1
        if erased:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return erased

    # ------------------------------------------------------- raw audit access
    def stored_hashes(self, level: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """Iterate ``(index, hash)`` of stored hashes at ``level`` for indexes in [start, end)."""
        if end <= start:
            return
        cur = self._db.execute(
            "SELECT id, strip FROM hashes WHERE id >= ? AND id <= ? ORDER BY id",
            (_strip_id(level, start), _strip_id(level, end - 1)),
        )
        mask = (1 << _LEVEL_SHIFT) - 1
        for sid, strip in cur:
            base = (sid & mask) * _STRIP
            if not isinstance(strip, bytes):
                continue
            for k in range(0, len(strip) - 31, 32):
                index = base + k // 32
                if start <= index < end:
                    yield index, strip[k : k + 32]

    def execute(self, sql: str, params: Sequence = ()) -> sqlite3.Cursor:
        """Run SQL on the log's database (for the registry's tables beside the log)."""
        return self._db.execute(sql, params)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db
