"""Offline receipt verification with nothing but the log's verifier key."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..ledger import merkle
from ..ledger.commitments import COMMITMENT_FIELDS, check_commitment
from ..ledger.cosignature import CosignatureVerifier, verify_cosigned
from ..ledger.entries import Entry, canonical_json
from ..ledger.note import NoteError, Verifier, open_checkpoint
from ..ledger.receipt import Receipt
from ..records import EntryError

__all__ = ["Check", "ReceiptReport", "verify_receipt"]


@dataclass(frozen=True)
class Check:
    """One named check with its result and a human-readable detail."""

    name: str
    ok: bool
    detail: str


@dataclass
class ReceiptReport:
    """Result of ``verify_receipt``.

    Attributes:
        ok: every check passed.
        checks: the checks, in the order they ran (later checks are skipped
            when an earlier one makes them meaningless).
        entry: the entry as a JSON object when it parsed, else None.
    """

    ok: bool
    checks: list[Check] = field(default_factory=list)
    entry: dict | None = None
    index: int | None = None
    tree_size: int | None = None
    witnesses: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "index": self.index, "tree_size": self.tree_size, "entry": self.entry,
                "witnesses": self.witnesses, "checks": [vars(c) for c in self.checks]}


def verify_receipt(receipt: Receipt, verifier_key: str | Verifier,
                   witness_keys: Sequence[str | CosignatureVerifier] = (), min_witnesses: int = 0,
                   subject: str | None = None) -> ReceiptReport:
    """Verify a receipt offline.

    Checks, in order: the verifier key parses; the checkpoint is signed by
    that key, well-formed, for the receipt's origin and tree size; the entry
    is canonical JSON of a known type; its leaf hash with the inclusion proof
    leads to the signed root (RFC 9162 2.1.3.2); every private opening in the
    receipt matches the commitment the entry holds.

    Args:
        receipt: the receipt.
        verifier_key: the log's verifier key, obtained from a source the
            person trusts (not from the receipt or the server that issued it).
        witness_keys: cosignature/v1 verifier keys of witnesses the person
            trusts; the report names those that cosigned the checkpoint, and when.
        min_witnesses: how many of them must have cosigned it (C2SP
            tlog-cosignature): a checkpoint shown only to this person (a split
            view) has no cosignature from an honest witness.
        subject: the id of the person the decision should be about; the
            entry's subject commitment must open to it with the receipt's
            salt (so one applicant cannot be handed another's valid receipt).

    Returns:
        A report; ``ok`` is False if any check failed. Never raises for a
        bad receipt.
    """
    report = ReceiptReport(ok=False, index=receipt.index, tree_size=receipt.tree_size)
    add = report.checks.append
    try:
        verifier = verifier_key if isinstance(verifier_key, Verifier) else Verifier.parse(verifier_key)
    except NoteError as exc:
        add(Check("verifier key", False, str(exc)))
        return report
    try:
        cp = open_checkpoint(receipt.checkpoint, verifier, receipt.origin)
    except NoteError as exc:
        add(Check("checkpoint signature", False, str(exc)))
        return report
    add(Check("checkpoint signature", True, f"signed by {verifier.name}+{verifier.key_id.hex()}, tree size {cp.tree_size}"))
    if witness_keys or min_witnesses:
        try:
            policy = verify_cosigned(receipt.checkpoint, verifier, witness_keys, min_witnesses, origin=receipt.origin)
        except NoteError as exc:
            add(Check("witnesses", False, f"witness policy: {exc}"))
            return report
        report.witnesses = [w.to_dict() for w in policy.witnesses]
        detail = policy.summary() + "".join(f"; {n}" for n in policy.notes) + (
            "" if policy.ok else ": " + "; ".join(policy.problems))
        add(Check("witnesses", policy.ok, detail))
        if not policy.ok:
            return report
    if cp.tree_size != receipt.tree_size:
        add(Check("tree size", False, f"receipt says tree size {receipt.tree_size}, the signed checkpoint says {cp.tree_size}"))
        return report
    try:
        Entry.from_bytes(receipt.entry)
        report.entry = json.loads(receipt.entry)
        add(Check("entry format", True, f"canonical JSON, type {report.entry['type']}"))
    except EntryError as exc:
        add(Check("entry format", False, str(exc)))
        return report
    leaf = merkle.leaf_hash(receipt.entry)
    try:
        merkle.verify_inclusion(receipt.index, cp.tree_size, leaf, list(receipt.inclusion_proof), cp.root_hash)
        add(Check("inclusion proof", True, f"entry {receipt.index} is in the signed tree of size {cp.tree_size}"))
    except merkle.ProofError as exc:
        add(Check("inclusion proof", False, str(exc)))
        return report
    if receipt.previous is not None:
        prev_note, prev_proof = receipt.previous
        try:
            prev = open_checkpoint(prev_note, verifier, receipt.origin)
            merkle.verify_consistency(prev.tree_size, cp.tree_size, prev.root_hash, cp.root_hash, list(prev_proof))
        except (NoteError, merkle.ProofError) as exc:
            add(Check("earlier checkpoint", False, f"the receipt's earlier checkpoint: {exc}"))
            return report
        add(Check("earlier checkpoint", True, f"the log at tree size {cp.tree_size} extends the receipt's earlier checkpoint"
                                              f" at tree size {prev.tree_size} (consistency proof of {len(prev_proof)} hashes)"))
    all_ok = True
    for kind, (salt, value) in sorted(receipt.private.items()):
        commitment = report.entry.get(COMMITMENT_FIELDS.get(kind, kind))
        if not isinstance(commitment, str):
            add(Check(f"{kind} commitment", False, f"the entry has no {kind} commitment to open"))
            all_ok = False
        elif check_commitment(commitment, salt, value):
            add(Check(f"{kind} commitment", True, f"the {kind} value in the receipt matches the logged commitment"))
        else:
            add(Check(f"{kind} commitment", False, f"the {kind} value in the receipt does not match the logged commitment"))
            all_ok = False
    if subject is not None:
        check = _subject_check(report.entry, receipt.private.get("subject"), subject)
        add(check)
        all_ok = all_ok and check.ok
    report.ok = all_ok
    return report


def _subject_check(entry: dict, opening: tuple[bytes, bytes] | None, subject: str) -> Check:
    """Whose decision it is: the entry's subject commitment must open, with the receipt's salt, to ``subject``."""
    commitment = entry.get("subject")
    if not isinstance(commitment, str):
        return Check("subject", False, "the entry names no subject, so it is not a decision about you")
    if opening is None:
        return Check("subject", False, "the receipt does not open the entry's subject commitment, so it cannot show whose"
                                       " decision it is")
    salt, value = opening
    if value != canonical_json(subject) or not check_commitment(commitment, salt, value):
        return Check("subject", False, f"the decision is not about {subject!r}: its subject commitment opens to another id")
    return Check("subject", True, f"the decision is about {subject!r}: its subject commitment opens to that id")
