"""Whole-log audit: recompute every hash from the stored entries and check every checkpoint.

What it detects, and how it reports the first bad index:

- an entry edited, deleted, inserted or reordered in the database file:
  its recomputed leaf hash differs from the stored one (or an index is
  missing), reported at that index;
- the same, with the stored hashes rewritten to match: the recomputed root
  at the next signed checkpoint differs from the signed root; the first bad
  index is then known to lie between the last good checkpoint and that one,
  and the report gives that range;
- a checkpoint whose signature fails, or two checkpoints that are not
  consistent (RFC 9162 2.1.4 proof between each and the next);
- entries not covered by any signed checkpoint, or checkpoints beyond the
  stored entries (entries truncated), reported at the first missing index;
- stored hashes that are missing (a strip deleted), reported at the first
  entry the missing hash covers;
- a checkpoint a witness cosigned that the log no longer holds (a middle
  checkpoint removed), named by its tree size;
- against a checkpoint kept outside the log (``kept``, e.g. a witnessed one
  from a receipt or a witness): a log rolled back, truncated or that lost its
  write-ahead file (fewer entries than the kept checkpoint), or a fork (a
  different root at its size);
- an entry filed under another type than the one it holds (which would hide
  a decision or a status change from indexes), an entry stored as text,
  and decisions by a model (or on a foundation model) that was not active at that point of the log
  (the kill switch bypassed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..ledger import EntryError, Ledger, merkle
from ..ledger.entries import Entry
from ..ledger.note import Checkpoint, NoteError, Verifier, open_checkpoint

__all__ = ["LogAuditReport", "audit_log", "audit_entry"]


@dataclass
class LogAuditReport:
    """Result of ``audit_log``.

    Attributes:
        ok: no problem found.
        tree_size: entries examined.
        checkpoints: signed checkpoints checked.
        first_bad_index: lowest index known to be bad, or None.
        problems: human-readable findings, most important first.
        key_source: ``given`` (checkpoints checked with a key from outside the
            database) or ``database`` (with the key the database itself holds).
        missing_checkpoints: tree sizes of checkpoints that witnesses cosigned
            but the log no longer holds.
        resumed_from: with ``resume_audit``, the tree size verified before
            (entries below it were not re-read); None for a whole-log audit.
        bad_checkpoint: tree size of the first checkpoint found bad or missing
            when no entry index can be named, else None.
    """

    ok: bool
    tree_size: int
    checkpoints: int
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)
    key_source: str = "database"
    missing_checkpoints: list[int] = field(default_factory=list)
    resumed_from: int | None = None
    bad_checkpoint: int | None = None

    def to_dict(self) -> dict:
        return vars(self).copy()

    def where(self) -> str:
        """Where a failed audit went wrong, for one line of output: the first bad index and/or the checkpoint's
        tree size, or "see the problems" when neither can be named (never "None")."""
        return failure_where(self.first_bad_index, self.bad_checkpoint)


def failure_where(first_bad_index: int | None, bad_checkpoint: int | None) -> str:
    """``"first bad index 12, checkpoint at tree size 256"`` from a report's two places, whichever are known;
    ``"see the problems"`` when neither is (e.g. a signature that does not verify under the given key)."""
    parts = []
    if first_bad_index is not None:
        parts.append(f"first bad index {first_bad_index}")
    if bad_checkpoint is not None:
        parts.append(f"checkpoint at tree size {bad_checkpoint}")
    return ", ".join(parts) if parts else "see the problems"


class FoundProblems:
    """What an audit found so far: messages (the first 50, then one line saying more were found), indexes known to be
    bad, and lower bounds of ranges known to hold a bad index. Shared by ``audit_log`` and ``resume_audit``."""

    LIMIT = 50

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.bad: list[int] = []
        self.suspect: list[int] = []

    def flag(self, index: int, message: str, exact: bool = True) -> None:
        """Record a problem at ``index`` (``exact``: that index is bad; otherwise a bad index lies at or after it)."""
        (self.bad if exact else self.suspect).append(index)
        if len(self.problems) < self.LIMIT:
            self.problems.append(message)
        elif len(self.problems) == self.LIMIT:
            self.problems.append("... further problems not listed")


def audit_log(ledger: Ledger, *, check_entries: bool = True, progress: Callable[[str, int, int], None] | None = None,
              verifier: Verifier | None = None, kept: Checkpoint | Sequence[Checkpoint] | None = None) -> LogAuditReport:
    """Audit the whole log (see module docstring).

    Args:
        ledger: the log.
        check_entries: also check each entry is canonical JSON of a known
            type (about 20 microseconds per entry).
        progress: called as ``progress(stage, done, total)``.
        verifier: the log's verifier key from a copy published independently
            of the database; None trusts the key the database holds (which
            whoever can rewrite the database can replace).
        kept: checkpoints kept outside the log (already verified by the
            caller, e.g. with a witness policy); the log must extend and hold
            each.

    Returns:
        The report; memory use is about 100 bytes per entry.
    """
    found = FoundProblems()
    problems, bad, suspect, flag = found.problems, found.bad, found.suspect, found.flag

    # A live log keeps growing while it is audited: the checkpoints are read first, then the size, so that every
    # checkpoint read signs entries that exist (each batch stores its entries and checkpoint in one transaction);
    # entries and hashes appended later are left out, and told apart from deleted ones by the log's size now.
    checkpoints = list(ledger.checkpoints())
    size = ledger.size
    report = LogAuditReport(ok=False, tree_size=size, checkpoints=0, key_source="database" if verifier is None else "given")
    if verifier is not None and str(verifier) != ledger.verifier_key:
        problems.append(f"the database names the verifier key {ledger.verifier_key}, not the key given ({verifier}): "
                        "the database was re-keyed or is another log")
    key = verifier if verifier is not None else ledger.verifier
    leaves: list[bytes] = []
    expected = 0
    statuses: dict[str, str] = {}  # model fingerprint -> status as of the current index
    for idx, stored_type, data in ledger.typed_entries(0, size):
        if idx != expected:
            flag(expected, f"entries {expected}..{idx - 1} are missing (deleted from the database)")
            leaves.extend([b""] * (idx - expected))
            expected = idx
        if not isinstance(data, bytes):
            flag(idx, f"entry {idx} is stored as {type(data).__name__}, not bytes: the database was edited")
            data = data.encode("utf-8") if isinstance(data, str) else bytes(str(data), "utf-8")
        if check_entries:
            audit_entry(idx, stored_type, data, statuses, flag)
        leaves.append(merkle.leaf_hash(data))
        expected += 1
        if progress and idx % 10000 == 0:
            progress("entries", idx, size)
    if progress:
        progress("entries", size, size)

    # Level 0 against stored leaf hashes, then every higher level.
    levels = [leaves]
    while len(levels[-1]) > 1:
        prev = levels[-1]
        levels.append([merkle.node_hash(prev[i], prev[i + 1]) for i in range(0, len(prev) - 1, 2)])
    for level, hashes in enumerate(levels):
        present = 0  # stored hashes at this level must be exactly indexes 0 .. len(hashes) - 1
        for index, stored in ledger.stored_hashes(level, 0, len(hashes) + (1 << 20)):
            if index > present and present < len(hashes):
                end = min(index, len(hashes))
                flag(present << level, f"stored hashes at level {level}, indexes {present}..{end - 1} (entries"
                                       f" {present << level}..{(end << level) - 1}) are missing: the database is damaged")
            present = index + 1
            if index >= len(hashes):
                if ledger.size > (index << level):  # appended since the audit began, not left behind by a deletion
                    break
                flag(max(index << level, size), f"stored hash at level {level}, index {index} (entries {index << level}.."
                                                f"{((index + 1) << level) - 1}) has no entry behind it: entries from"
                                                f" {max(index << level, size)} on were deleted")
                break
            elif stored != hashes[index]:
                if level == 0:
                    flag(index, f"entry {index} does not match its stored leaf hash: it was edited, replaced or moved")
                else:
                    flag(index << level, f"stored interior hash at level {level}, index {index} does not match the entries",
                         exact=False)
                    break
        if present < len(hashes):
            flag(present << level, f"stored hashes at level {level}, indexes {present}..{len(hashes) - 1} (entries"
                                   f" {present << level}..{(len(hashes) << level) - 1}) are missing: the database is damaged")
        if progress:
            progress("hashes", level + 1, len(levels))

    def get(keys):
        out = {}
        for level, index in keys:
            out[(level, index)] = levels[level][index]
        return out

    def root_at(n: int) -> bytes:
        if n == 0:
            return merkle.EMPTY_ROOT
        parts = merkle.root_plan(n)
        return merkle.subtree_hash_from(parts, get(parts))

    bad_checkpoints: list[int] = []  # tree sizes of checkpoints found bad, missing or not matched
    previous = None  # (size, root) of the last checkpoint that verified
    beyond = False  # a signed checkpoint covers more entries than are stored
    last_good_size = 0
    for n, (tree_size, stored_root, note, _created) in enumerate(checkpoints):
        report.checkpoints += 1
        try:
            cp = open_checkpoint(note, key, ledger.origin)
        except NoteError as exc:
            problems.append(f"checkpoint at tree size {tree_size}: {exc}")
            bad_checkpoints.append(tree_size)
            continue
        if cp.tree_size != tree_size or cp.root_hash != stored_root:
            problems.append(f"checkpoint row at tree size {tree_size} does not match its signed note (size {cp.tree_size})")
            bad_checkpoints.append(tree_size)
        if cp.tree_size > size:
            flag(size, f"signed checkpoint covers {cp.tree_size} entries but only {size} are stored: entries were truncated")
            bad_checkpoints.append(cp.tree_size)
            beyond = True
            continue
        if root_at(cp.tree_size) != cp.root_hash:
            lo = last_good_size
            flag(lo, f"entries in [{lo}, {cp.tree_size}) differ from what the checkpoint at tree size {cp.tree_size} signed",
                 exact=False)
            bad_checkpoints.append(cp.tree_size)
        else:
            last_good_size = cp.tree_size
        if previous is not None and previous[0] > 0:  # the empty tree is a prefix of every tree: nothing to prove
            old_size, old_root = previous
            try:
                proof = merkle.build_proof(merkle.consistency_proof_plan(old_size, cp.tree_size), get)
                merkle.verify_consistency(old_size, cp.tree_size, old_root, cp.root_hash, proof)
            except (merkle.ProofError, IndexError) as exc:
                problems.append(f"checkpoints at tree sizes {old_size} and {cp.tree_size} are not consistent: {exc}")
                bad_checkpoints.append(cp.tree_size)
        previous = (cp.tree_size, cp.root_hash)
        if progress and n % 1000 == 0:
            progress("checkpoints", n, len(checkpoints))
    held = {n for n, *_ in ledger.checkpoints()}  # read now: a checkpoint cosigned since the audit began is held too
    cosigned_sizes = getattr(ledger.store, "cosigned_sizes", None)
    for n in (cosigned_sizes() if cosigned_sizes else []):
        if n not in held:
            report.missing_checkpoints.append(n)
            bad_checkpoints.append(n)
            problems.append(f"the checkpoint at tree size {n}, which witnesses cosigned, is no longer in the log: it was removed")
            if n > size:
                flag(size, f"witnesses cosigned tree size {n} but the log holds {size} entries: it was rolled back or truncated")
    kepts = [] if kept is None else [kept] if isinstance(kept, Checkpoint) else list(kept)
    for kept in kepts:  # noqa: B020 - each kept checkpoint in turn
        if kept.origin != ledger.origin:
            problems.append(f"the kept checkpoint is for log {kept.origin!r}, not {ledger.origin!r}")
            bad_checkpoints.append(kept.tree_size)
        elif kept.tree_size > size:
            flag(size, f"the kept checkpoint has {kept.tree_size} entries but the log holds {size}: it was rolled back,"
                       " truncated or lost its write-ahead file")
            bad_checkpoints.append(kept.tree_size)
        elif root_at(kept.tree_size) != kept.root_hash:
            problems.append(f"the log's tree at size {kept.tree_size} is not the one the kept checkpoint signed: a fork or"
                            " a rewrite")
            bad_checkpoints.append(kept.tree_size)
        elif kept.tree_size > 0 and kept.tree_size not in held:
            problems.append(f"the kept checkpoint at tree size {kept.tree_size} is no longer in the log (its entries"
                            " are): it was removed")
            report.missing_checkpoints.append(kept.tree_size)
            bad_checkpoints.append(kept.tree_size)
    if previous is None:
        flag(0, "the log has no valid signed checkpoint")
    elif previous[0] < size and not beyond and not any(n >= size for n, *_ in ledger.checkpoints()):
        flag(previous[0], f"entries {previous[0]}..{size - 1} are not covered by any signed checkpoint")

    report.first_bad_index = min(bad) if bad else (min(suspect) if suspect else None)
    report.bad_checkpoint = min(bad_checkpoints) if bad_checkpoints else None
    report.problems = problems
    report.ok = not problems
    return report


def audit_entry(idx: int, stored_type: str, data: bytes, statuses: dict[str, str],
                flag: Callable[[int, str], None]) -> None:
    """Check one entry's body: canonical JSON of a known type, filed under its own type, and a decision made by
    (and on a foundation model) that was active at that point of the log.

    Args:
        idx: the entry's index.
        stored_type: the type column it is filed under.
        data: its bytes.
        statuses: model fingerprint -> status as of ``idx``; updated by model entries.
        flag: called as ``flag(index, message)`` for each problem.
    """
    try:
        obj = Entry.from_bytes(data).object()
    except EntryError as exc:
        flag(idx, f"entry {idx} is malformed: {exc}")
        return
    if obj.get("type") != stored_type:
        flag(idx, f"entry {idx} is a {obj.get('type')} entry but is filed as {stored_type!r}: the type column was edited")
    if obj["type"] == "model":
        statuses[obj["model"]] = obj["status"]
    elif obj["type"] == "decision":
        status = statuses.get(obj["model"])
        if status is None:
            flag(idx, f"decision {idx} names model {obj['model'][:19]}..., which is not registered before it")
        elif status != "active":
            flag(idx, f"decision {idx} was made by model {obj['model'][:19]}... while it was {status}")
        if "foundation" in obj:  # a head on a foundation model: the foundation must have been active too
            base = statuses.get(obj["foundation"])
            if base is None:
                flag(idx, f"decision {idx} names foundation model {obj['foundation'][:19]}..., which is not"
                          " registered before it")
            elif base != "active":
                flag(idx, f"decision {idx} was made on foundation model {obj['foundation'][:19]}... while it"
                          f" was {base}")
