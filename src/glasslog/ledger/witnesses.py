"""The log side of witnessing: which witnesses a log asks, and its checkpoints with their cosignatures.

Which witnesses a log asks to cosign is on the log itself: ``witness``
entries (``event`` ``add`` or ``remove``, the witness's URL and its
cosignature/v1 verifier key), so adding or dropping a witness is as public
and as permanent as any decision. The cosignatures the witnesses return are
kept beside the log in a side table (``LogStore.put_cosignature``) and
appended to the checkpoint as extra signature lines when it is served
(``GET /checkpoint``) or put in a receipt: a C2SP signed note with several
signatures, which clients that do not know the witnesses read as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import records
from ..records import utc_now
from .cosignature import CosignatureVerifier, add_signature_lines
from .note import NoteError

if TYPE_CHECKING:
    from .log import Ledger
    from .receipt import Receipt

__all__ = ["WitnessConfig", "witness_entry", "active_witnesses", "cosigned_checkpoint", "receipt_checkpoint",
           "refresh_receipt"]


@dataclass(frozen=True)
class WitnessConfig:
    """A witness the log asks to cosign (from its ``witness`` entries).

    Attributes:
        url: the witness's submission prefix (``/add-checkpoint`` is appended).
        key: its cosignature/v1 verifier key string.
        name: the key's name.
        added_at: index of the entry that added it.
    """

    url: str
    key: str
    name: str
    added_at: int


def witness_entry(event: str, url: str, key: str) -> dict:
    """The ``witness`` entry adding or removing a witness.

    Raises:
        NoteError: the key is not a cosignature/v1 verifier key.
        ValueError: the URL is not http(s) or the event is unknown.
    """
    verifier = CosignatureVerifier.parse(key)
    if event not in ("add", "remove"):
        raise ValueError(f"event must be add or remove, got {event!r}")
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"witness URL {url!r} must start with http:// or https://")
    return records.witness_entry(event=event, url=url, key=str(verifier), time=utc_now())


def active_witnesses(ledger: Ledger) -> list[WitnessConfig]:
    """The witnesses added and not removed since, oldest first (a later add of the same key replaces its URL)."""
    active: dict[str, WitnessConfig] = {}
    for idx, obj in ledger.entries_of_type("witness"):
        try:
            key = str(CosignatureVerifier.parse(obj["key"]))
        except (NoteError, KeyError):
            continue
        if obj.get("event") == "add":
            active.pop(key, None)
            active[key] = WitnessConfig(obj["url"], key, key.split("+", 1)[0], idx)
        elif obj.get("event") == "remove":
            active.pop(key, None)
    return list(active.values())


def _cosignatures(ledger: Ledger, size: int) -> list[tuple[str, str, str]]:
    get = getattr(ledger.store, "cosignatures", None)  # a back end that does not keep cosignatures yet serves none
    return get(size) if get is not None else []


def cosigned_checkpoint(ledger: Ledger, tree_size: int | None = None) -> str:
    """The signed checkpoint at ``tree_size`` (default: the latest) with every stored cosignature appended.

    Raises:
        LookupError: no checkpoint at that size.
    """
    note = ledger.checkpoint(tree_size)
    size = tree_size if tree_size is not None else ledger.open_checkpoint(note).tree_size
    lines = [line for _, line, _ in _cosignatures(ledger, size)]
    if not lines:
        return note
    try:
        return add_signature_lines(note, lines)
    except NoteError:
        return note  # a damaged side table must not stop the log from serving its own checkpoint


def receipt_checkpoint(ledger: Ledger, index: int) -> str:
    """The checkpoint to put in a receipt for entry ``index``: the newest cosigned one that covers it, with its
    cosignatures; if none is cosigned yet, the newest one covering it (cosignatures follow within seconds, and
    a receipt can be refreshed later).

    Raises:
        LookupError: no checkpoint covers the entry.
    """
    latest = getattr(ledger.store, "latest_cosigned_size", None)  # a back end without the side table yet: none
    size = latest(index + 1) if latest is not None else None
    if size is not None:
        try:
            return cosigned_checkpoint(ledger, size)
        except LookupError:
            pass
    note = ledger.checkpoint()
    if ledger.open_checkpoint(note).tree_size <= index:
        note = ledger.checkpoint_covering(index)
    return cosigned_checkpoint(ledger, ledger.open_checkpoint(note).tree_size)


def refresh_receipt(ledger: Ledger, old: Receipt) -> Receipt:
    """The same receipt against the log's newest cosigned checkpoint covering the entry, with a consistency proof.

    The new receipt keeps the old one's private openings and carries, as
    ``previous``, the old checkpoint and the consistency proof from it to the
    new one: a verifier checks both checkpoints' signatures and that the log
    only grew in between.

    Raises:
        LedgerError: the receipt is for another log, or the log no longer holds its entry at its index.
        LookupError: no checkpoint covers the entry.
        ValueError: the log is now smaller than the receipt's tree (it was rolled back).
    """
    from .errors import LedgerError
    from .receipt import Receipt

    if old.origin != ledger.origin:
        raise LedgerError(f"the receipt is for log {old.origin!r}, not {ledger.origin!r}")
    try:
        held = ledger.entry(old.index)
    except IndexError:
        raise LedgerError(f"the log no longer holds entry {old.index}, which the receipt names") from None
    if held != old.entry:
        raise LedgerError(f"the log holds other bytes at entry {old.index} than the receipt: it was rewritten")
    note = receipt_checkpoint(ledger, old.index)
    size = ledger.open_checkpoint(note).tree_size
    if size < old.tree_size:
        raise ValueError(f"the log's newest checkpoint covers {size} entries, fewer than the receipt's {old.tree_size}:"
                         " it was rolled back")
    proof = ledger.consistency_proof(old.tree_size, size)
    inclusion = ledger.inclusion_proof(old.index, size)
    return Receipt(old.origin, old.index, old.entry, size, note, tuple(inclusion), dict(old.private),
                   previous=(old.checkpoint, tuple(proof)))
