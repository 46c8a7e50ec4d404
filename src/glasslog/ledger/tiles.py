"""C2SP tlog-tiles paths and bundle encoding (tile height 8).

Source: C2SP tlog-tiles (https://c2sp.org/tlog-tiles). A tile at level L,
index N holds the hashes at tree level 8*L with indexes 256*N .. 256*N+W-1,
concatenated; W = 256 for a full tile, else the path ends in ``.p/<W>``.
Tile indexes are written in 3-digit groups, all but the last prefixed with
``x`` (1234067 -> ``x001/x234/067``). An entry bundle holds each entry as a
2-byte big-endian length followed by the entry bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadInputError

__all__ = ["TILE_HEIGHT", "TILE_WIDTH", "TilePathError", "TileRef", "encode_index", "tile_path", "parse_tile_path", "encode_entry_bundle", "decode_entry_bundle"]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


class TilePathError(BadInputError):
    """A tile path does not follow C2SP tlog-tiles."""


@dataclass(frozen=True)
class TileRef:
    """A tile or entry bundle named by a path.

    Attributes:
        level: tile level (0 = leaf hashes), or ``None`` for an entry bundle.
        index: tile index N.
        width: number of hashes or entries, 1..256.
    """

    level: int | None
    index: int
    width: int

    @property
    def is_entries(self) -> bool:
        return self.level is None


def encode_index(n: int) -> str:
    """Tile index in the tlog-tiles path form (3-digit groups, ``x`` prefixes)."""
    if n < 0:
        raise TilePathError("tile index must not be negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """Path of a hash tile (``level`` >= 0) or entry bundle (``level`` None)."""
    if not 1 <= width <= TILE_WIDTH:
        raise TilePathError(f"tile width must be 1..{TILE_WIDTH}, got {width}")
    head = "tile/entries" if level is None else f"tile/{level}"
    path = f"{head}/{encode_index(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


_PATH = re.compile(r"^tile/(entries|0|[1-9]|[1-5][0-9]|6[0-3])/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?$")


def parse_tile_path(path: str) -> TileRef:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``.

    Raises:
        TilePathError: the path is not in the canonical tlog-tiles form
            (for example ``x000`` groups, a width of 256 written as partial,
            or an index group that is not 3 digits).
    """
    m = _PATH.match(path)
    if not m:
        raise TilePathError(f"not a tlog-tiles path: {path!r}")
    level_text, index_text, width_text = m.groups()
    groups = index_text.split("/")
    if len(groups) > 1 and groups[0] == "x000":
        raise TilePathError(f"tile index has a leading zero group: {path!r}")
    index = int("".join(g.lstrip("x") for g in groups))
    width = int(width_text) if width_text else TILE_WIDTH
    if width_text and width >= TILE_WIDTH:
        raise TilePathError(f"partial tile width must be below {TILE_WIDTH}: {path!r}")
    level = None if level_text == "entries" else int(level_text)
    return TileRef(level, index, width)


def encode_entry_bundle(entries: list[bytes]) -> bytes:
    """Concatenate entries as 2-byte big-endian length + bytes each."""
    out = bytearray()
    for e in entries:
        if len(e) > 0xFFFF:
            raise ValueError(f"entry of {len(e)} bytes does not fit an entry bundle (max 65535)")
        out += len(e).to_bytes(2, "big") + e
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """Split an entry bundle into entries.

    Raises:
        ValueError: a length prefix runs past the end of the data.
    """
    out, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("entry bundle ends inside a length prefix")
        n = int.from_bytes(data[pos : pos + 2], "big")
        if pos + 2 + n > len(data):
            raise ValueError("entry bundle ends inside an entry")
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return out
