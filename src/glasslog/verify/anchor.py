"""Are the entries a verifier is about to use the ones the log signed? (``verify replay``'s trust root.)

Replaying decisions proves that the registered weights reproduce the logged
outputs; it proves nothing about the log unless the decisions replayed are
the ones the log committed to. ``signed_entries`` checks that: the log's
newest checkpoint must open with the verifier key given (a copy published
independently of the database, never the one the database holds), and every
entry of the given types it covers must be included in that checkpoint's tree
(RFC 9162 2.1.3 inclusion proof of the entry's leaf hash, recomputed from its
bytes, against the signed root). The proofs' hashes come from the database,
but they must hash to the signed root, so a database edited without the log's
key cannot pass. Cost: one inclusion proof per entry checked, built from the
stored hashes in runs (``Ledger.inclusion_proofs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import GlasslogError
from ..ledger import Ledger, merkle
from ..ledger.note import NoteError, Verifier, open_checkpoint

__all__ = ["AnchorReport", "signed_entries"]

BATCH = 4096
"""Entries whose proofs are built together (bounds memory)."""


@dataclass
class AnchorReport:
    """Result of ``signed_entries``.

    Attributes:
        ok: every entry checked is in the signed tree and the checkpoint opened with the key.
        key_source: ``given`` or ``database``.
        tree_size: size of the newest checkpoint checked against (0 if none opened).
        checked: entries proved included.
        uncovered: entries of those types appended after that checkpoint (not yet signed; not checked).
        first_bad_index: the lowest entry index that is not in the signed tree, or None.
        problems: human-readable findings.
    """

    ok: bool
    key_source: str
    tree_size: int = 0
    checked: int = 0
    uncovered: int = 0
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return vars(self).copy()


def signed_entries(ledger: Ledger, kinds: Sequence[str], verifier: Verifier | None = None,
                   progress: Callable[[int, int], None] | None = None) -> AnchorReport:
    """Check that every entry of ``kinds`` up to the newest checkpoint is in the tree that checkpoint signs.

    Args:
        ledger: the log.
        kinds: entry types to check (e.g. ``("decision", "generation")``).
        verifier: the log's verifier key from outside the database; None uses the database's own (reported as
            ``key_source="database"``).
        progress: called as ``progress(done, total)`` (total: the checkpoint's size, as entries are scanned).

    Returns:
        The report (never raises for a tampered log: what is wrong is in ``problems``).
    """
    report = AnchorReport(ok=False, key_source="database" if verifier is None else "given")
    key = verifier if verifier is not None else ledger.verifier
    if verifier is not None and str(verifier) != ledger.verifier_key:
        report.problems.append(f"the database names the verifier key {ledger.verifier_key}, not the key given"
                               f" ({verifier}): the database was re-keyed or is another log")
    try:
        note = ledger.checkpoint()
        cp = open_checkpoint(note, key, ledger.origin)
    except (NoteError, LookupError) as exc:
        report.problems.append(f"the log's newest checkpoint does not open with the verifier key: {exc}")
        return report
    size = report.tree_size = cp.tree_size
    bad: list[int] = []

    def check(batch: list[tuple[int, bytes]]) -> None:
        try:
            proofs = ledger.inclusion_proofs([i for i, _ in batch], size)
        except (ValueError, LookupError, GlasslogError) as exc:  # a damaged database is a finding, not a crash
            bad.append(batch[0][0])
            report.problems.append(f"inclusion proofs for entries {batch[0][0]}..{batch[-1][0]} cannot be built: {exc}")
            return
        for idx, data in batch:
            try:
                merkle.verify_inclusion(idx, size, merkle.leaf_hash(data), proofs[idx], cp.root_hash)
                report.checked += 1
            except merkle.ProofError:
                bad.append(idx)
                if len(report.problems) < 20:
                    report.problems.append(f"entry {idx} is not the one the checkpoint at tree size {size} signed: it was"
                                           " edited or replaced")

    batch: list[tuple[int, bytes]] = []
    for idx, _type, data in ledger.entries_of_types(list(kinds), 0, None):
        if idx >= size:
            report.uncovered += 1
            continue
        batch.append((idx, bytes(data) if not isinstance(data, bytes) else data))
        if len(batch) >= BATCH:
            check(batch)
            batch = []
            if progress:
                progress(idx, size)
    if batch:
        check(batch)
    if progress:
        progress(size, size)
    report.first_bad_index = min(bad) if bad else None
    report.ok = not report.problems
    return report
