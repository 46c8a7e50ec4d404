"""The layout of stored hashes shared by the shipped back ends: strips of 32.

The hash of every perfect, aligned subtree is stored once, when it completes,
and never changes: about 2 hashes per entry. They are kept in *strips* of 32
consecutive hashes of one level (one row of up to 1,024 bytes, id =
``level << 48 | index // 32``); the last strip of a level grows batch by batch
until it holds 32. Strips keep the row count per entry low (appends are
dominated by row inserts) while a proof still reads only the O(log n) strips
that hold its hashes, in one query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from .base import HashKey, StorageError

__all__ = ["LEVEL_SHIFT", "STRIP", "STRIP_BYTES", "CACHED_LEVEL", "strip_id", "strip_rows", "hashes_from_strips",
           "iter_strip", "StripCache"]

LEVEL_SHIFT = 48  # strip id = level << 48 | strip; 2**48 leaves per log is plenty
STRIP = 32  # hashes per stored row
STRIP_BYTES = STRIP * 32
CACHED_LEVEL = 8  # full strips from this level up are cached in memory (few: n / 2**13 rows)
CACHE_ROWS = 16384  # at most 16 MiB of cached strips per store


def strip_id(level: int, index: int) -> int:
    """Row id of the strip holding the stored hash at (level, index)."""
    return (level << LEVEL_SHIFT) | (index // STRIP)


def strip_rows(levels: Sequence[Sequence[bytes]], first: Sequence[int],
               existing: Callable[[list[int]], dict[int, bytes]]) -> list[tuple[int, bytes]]:
    """Rows ``(id, strip)`` to upsert for a batch's new stored hashes: partial strips extended, new strips added.

    Args:
        levels, first: from ``merkle.Integration``.
        existing: reads the current strips with the given ids (the partial ones the batch extends).

    Raises:
        StorageError: a partial strip the batch extends is missing or short (a damaged database).
    """
    partial = [strip_id(level, start) for level, start in enumerate(first) if start % STRIP and levels[level]]
    current = existing(partial) if partial else {}
    rows = []
    for level, new in enumerate(levels):
        if not new:
            continue
        start = first[level]
        sid = strip_id(level, start)
        old = current.get(sid, b"") if start % STRIP else b""
        data = (old if isinstance(old, bytes) else b"") + b"".join(new)
        if len(data) != ((start % STRIP) + len(new)) * 32:
            raise StorageError(f"stored hashes at level {level} before index {start} are missing: the database is damaged")
        for k in range(0, len(data), STRIP_BYTES):
            rows.append((sid + k // STRIP_BYTES, data[k : k + STRIP_BYTES]))
    return rows


def hashes_from_strips(keys: Iterable[HashKey], strips: dict[int, bytes]) -> dict[HashKey, bytes]:
    """Pick the hashes at ``keys`` out of strips read by id.

    Raises:
        StorageError: one is missing (a damaged database).
    """
    out = {}
    for level, index in keys:
        strip = strips.get(strip_id(level, index))
        offset = (index % STRIP) * 32
        h = strip[offset : offset + 32] if isinstance(strip, bytes) else b""
        if len(h) != 32:
            raise StorageError(f"stored hash at level {level}, index {index} is missing: the database is damaged")
        out[(level, index)] = h
    return out


def iter_strip(sid: int, strip: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """``(index, hash)`` of the hashes of one strip whose index is in [start, end)."""
    if not isinstance(strip, bytes):
        return
    base = (sid & ((1 << LEVEL_SHIFT) - 1)) * STRIP
    for k in range(0, len(strip) - 31, 32):
        index = base + k // 32
        if start <= index < end:
            yield index, strip[k : k + 32]


class StripCache:
    """Full strips of the upper levels, kept in memory: they never change and every proof needs some."""

    def __init__(self) -> None:
        self._rows: dict[int, bytes] = {}

    def split(self, ids: Iterable[int]) -> tuple[dict[int, bytes], list[int]]:
        """``(cached strips, ids still to read)``."""
        found, wanted = {}, []
        for sid in set(ids):
            hit = self._rows.get(sid)
            if hit is None:
                wanted.append(sid)
            else:
                found[sid] = hit
        return found, wanted

    def offer(self, sid: int, strip) -> None:
        """Keep a strip just read if it is full and from a cached level."""
        if (sid >> LEVEL_SHIFT) >= CACHED_LEVEL and len(self._rows) < CACHE_ROWS \
                and isinstance(strip, bytes) and len(strip) == STRIP_BYTES:
            self._rows[sid] = strip
