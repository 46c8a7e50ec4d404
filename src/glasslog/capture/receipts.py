"""Receipts: what a subject gets for a logged entry (the entry, its index, a signed checkpoint, an inclusion proof)."""

from __future__ import annotations

from collections.abc import Sequence

from ..ledger import Ledger
from ..ledger.receipt import Receipt

__all__ = ["receipt", "receipts_at", "receipts_for_subject"]


def receipt(ledger: Ledger, index: int, *, include_private: bool = True) -> Receipt:
    """Build the receipt of entry ``index`` against the latest signed checkpoint.

    Args:
        include_private: include the salts and values opening the entry's
            commitments (what the subject needs to check their own inputs).

    Raises:
        IndexError: no such entry.
        LookupError: the entry is not covered by a signed checkpoint.
    """
    from ..ledger.witnesses import receipt_checkpoint

    ledger.entry(index)  # IndexError if there is none; LedgerError if it was edited
    note = receipt_checkpoint(ledger, index)  # the newest cosigned checkpoint covering it, with its cosignatures
    cp = ledger.open_checkpoint(note)
    return receipts_at(ledger, [index], cp.tree_size, note, include_private=include_private)[0]


def receipts_at(ledger: Ledger, indexes: Sequence[int], tree_size: int, checkpoint: str, *,
                include_private: bool = True) -> list[Receipt]:
    """Build the receipts of entries ``indexes`` against one signed checkpoint, together.

    The entries and their private values are read in one query each and the
    inclusion proofs with ``Ledger.inclusion_proofs`` (neighbouring entries
    share most of their hashes): for a batch just appended, against the
    checkpoint its ``AppendResult`` carries.

    Args:
        tree_size: the size of the checkpoint's tree (above every index).
        checkpoint: the signed checkpoint note (not re-verified: the caller
            has it from the log, e.g. ``ledger.checkpoint()`` or an append).
        include_private: include the salts and values opening the entries'
            commitments.

    Returns:
        One receipt per index, in the order given.

    Raises:
        ValueError: an index outside the tree.
    """
    if not indexes:
        return []
    entries = dict(ledger.entries(min(indexes), max(indexes) + 1))
    opened = ledger.private_values_for(indexes) if include_private else {}
    proofs = ledger.inclusion_proofs(indexes, tree_size)
    out = []
    for i in indexes:
        private = {kind: (salt, value) for kind, (_, salt, value) in opened.get(i, {}).items()}
        out.append(Receipt(ledger.origin, i, entries[i], tree_size, checkpoint, tuple(proofs[i]), private))
    return out


def receipts_for_subject(ledger: Ledger, subject_id: str) -> list[Receipt]:
    """Receipts of every decision about ``subject_id``, oldest first."""
    from ..ledger import canonical_json

    return [receipt(ledger, i) for i in ledger.find_private("subject", canonical_json(subject_id))]
