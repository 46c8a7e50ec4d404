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

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import records
from ..records import utc_now
from .cosignature import CosignatureVerifier, add_signature_lines
from .note import NoteError

if TYPE_CHECKING:
    from .log import Ledger
    from .receipt import Receipt

__all__ = ["WitnessConfig", "witness_entry", "active_witnesses", "cosigned_checkpoint", "receipt_checkpoint",
           "refresh_receipt", "WITNESS_STATUS_FILE", "read_witness_status", "write_witness_status", "note_refusal", "fork_hint",
           "MAX_REFUSALS"]


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
        ValueError: the URL is not http(s) or the event is unknown (``EntryError``, a ``ValueError``: the entry's
            schema refuses it, e.g. a URL with spaces).
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


# ---------------------------------------------------------------- what the witnesses last answered
WITNESS_STATUS_FILE = "witness-status.json"
"""In the log's data directory: per witness (by verifier key) what it last answered and the refusals it gave."""
MAX_REFUSALS = 20
"""Distinct refusals kept per witness (the oldest dropped beyond); a repeated one is counted on its record."""


def read_witness_status(data_dir: str | os.PathLike) -> dict[str, dict]:
    """The cosigning thread's record of each witness, by verifier key (empty if none was written yet).

    Each record: ``url``, ``tree_size`` (largest size it cosigned), ``ok`` (its last answer was a cosignature),
    ``at`` (last answer), ``error`` (the last failure, while not ok), ``refusals``: distinct refusals, each
    ``{"status": HTTP status or "unreachable", "reason", "first_at", "last_at", "count"}``, oldest first.
    A damaged file reads as empty (it is a record, not a source of trust).
    """
    try:
        data = json.loads((Path(data_dir) / WITNESS_STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def write_witness_status(data_dir: str | os.PathLike, status: dict[str, dict]) -> None:
    """Write the record atomically (a temporary file renamed over it), mode 0600."""
    path = Path(data_dir) / WITNESS_STATUS_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(status, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def fork_hint(status: int | str, reason: str) -> str:
    """``" (possible fork: ...)"`` for a witness's refusal that a fork would cause, else ``""``.

    A 422 "consistency proof does not verify" means the checkpoint does not extend the tree the witness cosigned
    before (C2SP tlog-witness): the log shown to it then and the one asking now are not one history -- a fork or a
    rewrite, unless the log served a wrong proof.
    """
    text = f"{status} {reason}"
    if "consistency proof does not verify" in text and "422" in text:
        return (" (possible fork: this checkpoint does not extend the tree the witness cosigned before; compare the"
                " witness's last cosigned checkpoint with this log's history, verify log --checkpoint)")
    return ""


def note_refusal(refusals: list[dict], status: int | str, reason: str, at: str) -> list[dict]:
    """``refusals`` with one more: counted on the record with the same status and reason, else appended (at most
    ``MAX_REFUSALS``, the oldest dropped). Returns the new list."""
    out = [dict(r) for r in refusals]
    for r in out:
        if r.get("status") == status and r.get("reason") == reason:
            r["count"] = int(r.get("count", 1)) + 1
            r["last_at"] = at
            out.remove(r)
            out.append(r)  # most recent last
            return out
    out.append({"status": status, "reason": reason, "first_at": at, "last_at": at, "count": 1})
    return out[-MAX_REFUSALS:]
