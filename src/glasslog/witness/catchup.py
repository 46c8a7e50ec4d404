"""A witness catching up on its own: fetch the log's checkpoint and tiles, prove consistency, cosign.

A witness normally waits for the log to send ``add-checkpoint`` with a proof.
One that fell behind (it was down, or the log stopped asking it) can instead
pull: read the log's newest checkpoint (``GET <log>/checkpoint``, C2SP
tlog-tiles), build the consistency proof from the size it last cosigned by
reading the hash tiles that hold the proof's subtrees (``GET
<log>/tile/<L>/<N>[.p/<W>]``), and put both through the same checks and the
same atomic store as a pushed request (``Witness.add_checkpoint``). Nothing
fetched is trusted: the checkpoint must carry the log's signature and the
tile hashes must make a proof that verifies against the witness's own state.

Source: C2SP tlog-tiles (tile height 8: a tile at level T holds the tree-level
8T hashes 256N .. 256N+W-1 of the tree the checkpoint commits to).
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from ..ledger import merkle
from ..ledger.note import NoteError, parse_checkpoint, split_note
from ..ledger.tiles import TILE_HEIGHT, TILE_WIDTH, tile_path
from .client import format_request
from .core import Witness, WitnessError

__all__ = ["CatchUp", "catch_up", "proof_from_tiles"]

MAX_FETCH = 1 << 20


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - the operator names the log's URL
        data = r.read(MAX_FETCH + 1)
    if len(data) > MAX_FETCH:
        raise WitnessError(400, f"{url} answered more than {MAX_FETCH} bytes")
    return data


def proof_from_tiles(old: int, new: int, fetch_tile) -> list[bytes]:
    """The RFC 9162 consistency proof ``old`` -> ``new`` from hash tiles of the tree of size ``new``.

    Args:
        fetch_tile: ``fetch_tile(level, index, width) -> bytes`` (32 * width bytes).

    Raises:
        WitnessError: a tile is short.
    """
    cache: dict[tuple[int, int, int], bytes] = {}

    def hashes(keys):
        out = {}
        for level, index in keys:
            t, r = divmod(level, TILE_HEIGHT)
            first = index << r  # the tree-level-8t hashes this subtree spans: [first, first + 2**r)
            n_tile, offset = divmod(first, TILE_WIDTH)
            width = min(TILE_WIDTH, (new >> (t * TILE_HEIGHT)) - n_tile * TILE_WIDTH)
            key = (t, n_tile, width)
            if key not in cache:
                data = fetch_tile(t, n_tile, width)
                if len(data) != 32 * width:
                    raise WitnessError(422, f"tile {t}/{n_tile} of width {width} holds {len(data)} bytes")
                cache[key] = data
            data = cache[key]
            span = [data[32 * k : 32 * k + 32] for k in range(offset, offset + (1 << r))]
            out[(level, index)] = merkle.root_from_leaf_hashes(span)  # a perfect subtree: pairwise node hashes
        return out

    return merkle.build_proof(merkle.consistency_proof_plan(old, new), hashes)


@dataclass(frozen=True)
class CatchUp:
    """What ``catch_up`` did: from which size to which, and the cosignature line (None if nothing was new)."""

    origin: str
    old_size: int
    new_size: int
    cosignature: str | None


def catch_up(witness: Witness, origin: str, log_url: str, timeout: float = 30.0) -> CatchUp:
    """Bring the witness's view of ``origin`` up to the log's newest checkpoint, fetched from ``log_url``.

    Raises:
        WitnessError: the log is not followed (404), its checkpoint is not signed by a trusted key (403),
            is for another origin or malformed (400), or is not consistent with what this witness cosigned
            (409 / 422); as for a pushed request.
        OSError: the log could not be reached.
    """
    base = log_url.rstrip("/")
    note = _get(base + "/checkpoint", timeout).decode("utf-8", "replace")
    try:
        text, _ = split_note(note)
        cp = parse_checkpoint(text)
    except NoteError as exc:
        raise WitnessError(400, f"the log's checkpoint is malformed: {exc}") from None
    if cp.origin != origin:
        raise WitnessError(400, f"the log at {base} serves origin {cp.origin!r}, not {origin!r}")
    state = witness.store.state(origin)
    old = state.tree_size if state is not None else 0
    if state is not None and cp.tree_size == old and cp.root_hash == state.root:
        return CatchUp(origin, old, old, None)
    if cp.tree_size < old:
        raise WitnessError(409, f"the log's newest checkpoint has {cp.tree_size} entries; this witness cosigned {old}:"
                                " the log was rolled back or forked")

    def fetch(level: int, index: int, width: int) -> bytes:
        return _get(f"{base}/{tile_path(level, index, width)}", timeout)

    proof = proof_from_tiles(old, cp.tree_size, fetch) if 0 < old < cp.tree_size else []
    line = witness.add_checkpoint(format_request(old, proof, note))
    return CatchUp(origin, old, cp.tree_size, line)
