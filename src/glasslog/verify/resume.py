"""Resuming the whole-log audit from a checkpoint verified before (``glasslog verify log --resume``).

A verifier that audited the log up to tree size ``n`` keeps, outside the log,
a small state: the log's origin and verifier key, ``n``, the root hash it
verified at ``n``, the frontier (the ``log2 n`` perfect-subtree hashes that
make up the tree of size ``n``, as ``merkle.root_plan`` lists them) and the
signed checkpoint. Resuming then

- re-reads and re-hashes only the entries from ``n`` on (each checked as the
  whole-log audit checks it: canonical JSON, filed under its own type, made by
  an active model), and compares each new leaf hash with the stored one;
- integrates the new leaf hashes into the kept frontier (``merkle.integrate``)
  and compares the root at every newer checkpoint with the root that
  checkpoint signs, so the new tree is an extension of the verified one by
  construction, whatever the database holds;
- checks the log's own consistency proof (RFC 9162 2.1.4) from the verified
  checkpoint to the newest one, built from the stored hashes;
- fails, naming the verified size, when the log now holds fewer entries than
  were verified (rolled back, truncated, or a lost write-ahead file), or its
  checkpoint at that size signs another root (a fork).

What it does not re-check: the bodies of the entries below ``n`` (and the
stored hashes not on the consistency proof). An edit to an old entry made
after the earlier verification is found only by a whole-log audit. This is
the standard trade-off of append-only logs: a witness or monitor keeps only
the last checkpoint it verified and checks each new one by a consistency
proof (C2SP tlog-witness; RFC 9162 section 8.3), because what was verified
once is committed to by the kept root, and no later checkpoint can change it
without failing that proof.

The state file is JSON, mode 0600 (in a 0700 directory), written atomically
(a temporary file renamed over it). Its default place is
``$XDG_STATE_HOME/glasslog/verified/<origin>.json`` (``~/.local/state`` when
the variable is unset).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError, GlasslogError
from ..ledger import Ledger, merkle, utc_now
from ..ledger.note import Checkpoint, NoteError, Verifier, open_checkpoint
from .log_audit import FoundProblems, LogAuditReport, audit_entry

__all__ = ["VerifierState", "default_state_path", "resume_audit", "state_after_audit"]

CHUNK = 1 << 16
"""Entries read, hashed and integrated per step (bounds memory to a few MB whatever the log's size)."""


def default_state_path(origin: str) -> Path:
    """``$XDG_STATE_HOME/glasslog/verified/<origin with unsafe characters replaced>.json``."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", origin).strip("._") or "log"
    return base / "glasslog" / "verified" / f"{slug}.json"


@dataclass(frozen=True)
class VerifierState:
    """What a verifier keeps from an audit to resume from it.

    Attributes:
        origin: the log's origin line.
        verifier_key: the log's verifier key the checkpoints were checked with.
        key_source: ``given`` (from outside the database) or ``database``.
        tree_size: entries verified.
        root: the root hash verified at ``tree_size`` (32 bytes).
        frontier: ``(level, hash)`` of ``merkle.root_plan(tree_size)``'s subtrees, in that order.
        checkpoint: the signed checkpoint at ``tree_size``.
        verified_at: when (UTC, RFC 3339).
        full_audit_at: when the last whole-log audit behind this state ran.
        models: model fingerprint -> status as of ``tree_size`` (so that new decisions are checked against the
            models active then without reading the old entries again).
    """

    origin: str
    verifier_key: str
    key_source: str
    tree_size: int
    root: bytes
    frontier: tuple[tuple[int, bytes], ...]
    checkpoint: str
    verified_at: str
    full_audit_at: str
    models: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> str:
        d = {"version": 1, "origin": self.origin, "verifier_key": self.verifier_key, "key_source": self.key_source,
             "tree_size": self.tree_size, "root": base64.b64encode(self.root).decode(),
             "frontier": [[lv, base64.b64encode(h).decode()] for lv, h in self.frontier], "checkpoint": self.checkpoint,
             "verified_at": self.verified_at, "full_audit_at": self.full_audit_at, "models": dict(self.models)}
        return json.dumps(d, indent=1) + "\n"

    @classmethod
    def load(cls, path: Path) -> VerifierState | None:
        """The state in ``path``, or None if there is no such file.

        Raises:
            BadInputError: the file is unreadable or malformed, its frontier does not make its root, or its
                checkpoint does not open with its key at its size and root (it is rejected, never repaired).
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"cannot read the verifier state {path}: {exc}") from None
        try:
            d = json.loads(text)
            if d.get("version") != 1:
                raise ValueError(f"unknown version {d.get('version')!r}")
            size = d["tree_size"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError("tree_size must be a positive integer")
            frontier = tuple((int(lv), base64.b64decode(h, validate=True)) for lv, h in d["frontier"])
            state = cls(str(d["origin"]), str(d["verifier_key"]), str(d["key_source"]), size,
                        base64.b64decode(d["root"], validate=True), frontier, str(d["checkpoint"]),
                        str(d["verified_at"]), str(d["full_audit_at"]),
                        tuple((str(k), str(v)) for k, v in dict(d.get("models", {})).items()))
            if [lv for lv, _ in frontier] != [lv for lv, _ in merkle.root_plan(size)] or any(len(h) != 32 for _, h in frontier):
                raise ValueError(f"the frontier does not make a tree of size {size}")
            if _frontier_root(list(frontier)) != state.root:
                raise ValueError("the frontier does not hash to the root")
            cp = open_checkpoint(state.checkpoint, Verifier.parse(state.verifier_key), state.origin)
            if (cp.tree_size, cp.root_hash) != (size, state.root):
                raise ValueError("the checkpoint is not the one at its size and root")
        except (ValueError, KeyError, TypeError, NoteError) as exc:
            raise BadInputError(f"the verifier state {path} is malformed ({exc}); it is not repaired: delete it to start"
                                " over with a whole-log audit") from None
        return state

    def save(self, path: Path) -> None:
        """Write the state to ``path`` (mode 0600, directory 0700), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _frontier_root(frontier: list[tuple[int, bytes]]) -> bytes:
    if not frontier:
        return merkle.EMPTY_ROOT
    root = frontier[-1][1]
    for _, h in reversed(frontier[:-1]):
        root = merkle.node_hash(h, root)
    return root


def state_after_audit(ledger: Ledger, report: LogAuditReport, verifier: Verifier | None) -> VerifierState | None:
    """The state to keep after a whole-log audit that passed: the newest checkpoint it checked, with its frontier
    (read from the stored hashes, which the audit has just checked). None if the audit failed or the log is empty."""
    if not report.ok:
        return None
    key = verifier if verifier is not None else ledger.verifier
    newest = None
    for size, _root, note, _ in ledger.checkpoints():
        if 0 < size <= report.tree_size:
            newest = (size, note)
    if newest is None:
        return None
    size, note = newest
    cp = open_checkpoint(note, key, ledger.origin)
    parts = merkle.root_plan(size)
    hashes = ledger.store.hashes(parts)
    frontier = tuple((lv, hashes[(lv, ix)]) for lv, ix in parts)
    if _frontier_root(list(frontier)) != cp.root_hash:
        return None  # the stored hashes moved since the audit read them: keep nothing rather than a wrong state
    models = {}
    for _idx, _type, data in ledger.entries_of_types(["model"], 0, size):
        obj = json.loads(data)
        models[obj["model"]] = obj["status"]
    now = utc_now()
    return VerifierState(ledger.origin, str(key), report.key_source, size, cp.root_hash, frontier, note, now, now,
                         tuple(models.items()))


def resume_audit(ledger: Ledger, state: VerifierState, *, verifier: Verifier | None = None, check_entries: bool = True,
                 progress: Callable[[str, int, int], None] | None = None,
                 kept: Checkpoint | Sequence[Checkpoint] | None = None) -> tuple[LogAuditReport, VerifierState | None]:
    """Audit only what the log added since ``state`` (see module docstring).

    Args:
        ledger: the log.
        state: what an earlier audit verified (``VerifierState.load``).
        verifier: the log's verifier key given now; None uses the state's (a copy kept outside the database).
        check_entries: also check each new entry's body (as ``audit_log``).
        progress: called as ``progress(stage, done, total)``.
        kept: checkpoints kept outside the log (already verified by the caller); the log must extend each.

    Returns:
        ``(report, new state)``; the new state is None unless the report is ok.

    Raises:
        BadInputError: the state is for another log, or was verified with another key than ``verifier``.
    """
    if state.origin != ledger.origin:
        raise BadInputError(f"the verifier state is for log {state.origin!r}, not {ledger.origin!r}")
    key = verifier if verifier is not None else Verifier.parse(state.verifier_key)
    if str(key) != state.verifier_key:
        raise BadInputError(f"the verifier state was verified with key {state.verifier_key}, not the key given ({key}):"
                            " pass the same key, or another --state-file to start over with a whole-log audit")
    found = FoundProblems()
    problems, bad, suspect, flag = found.problems, found.bad, found.suspect, found.flag
    n0 = state.tree_size

    checkpoints = [(n, note) for n, _r, note, _ in ledger.checkpoints() if n >= n0]  # before the size: see audit_log
    size = ledger.size
    key_source = "given" if verifier is not None else state.key_source
    report = LogAuditReport(ok=False, tree_size=size, checkpoints=0, key_source=key_source, resumed_from=n0)
    if str(key) != ledger.verifier_key:
        problems.append(f"the database names the verifier key {ledger.verifier_key}, not the key verified before ({key}):"
                        " the database was re-keyed or is another log")

    def mark(n: int) -> None:  # a checkpoint found bad or missing; the report names the smallest
        report.bad_checkpoint = n if report.bad_checkpoint is None else min(report.bad_checkpoint, n)

    def finish() -> tuple[LogAuditReport, VerifierState | None]:
        report.first_bad_index = min(bad) if bad else (min(suspect) if suspect else None)
        report.problems = problems
        report.ok = not problems
        return report, new_state if report.ok else None

    new_state: VerifierState | None = None
    if size < n0:
        flag(size, f"the log holds {size} entries, fewer than the {n0} verified before (checkpoint at tree size {n0},"
                   f" verified {state.verified_at}): it was rolled back, truncated or lost its write-ahead file")
        mark(n0)
        return finish()
    # Every checkpoint from the verified one on: signature, then its size as a boundary to compare roots at.
    signed: dict[int, bytes] = {}
    notes: dict[int, str] = {}
    for n, note in checkpoints:
        report.checkpoints += 1
        try:
            cp = open_checkpoint(note, key, ledger.origin)
        except NoteError as exc:
            problems.append(f"checkpoint at tree size {n}: {exc}")
            bad.append(max(n - 1, 0))
            mark(n)
            continue
        if cp.tree_size != n:
            problems.append(f"checkpoint row at tree size {n} does not match its signed note (size {cp.tree_size})")
            mark(n)
            continue
        if n > size:
            flag(size, f"signed checkpoint covers {n} entries but only {size} are stored: entries were truncated")
            continue
        signed[n] = cp.root_hash
        notes[n] = note
    if n0 not in signed:
        mark(n0)
        problems.append(f"the checkpoint at tree size {n0}, verified before ({state.verified_at}), is no longer in the"
                        " log: it was removed, or the log was forked or rewritten")
    elif signed[n0] != state.root:
        mark(n0)
        problems.append(f"the log's checkpoint at tree size {n0} signs another root than the one verified before: the"
                        " log was forked or rewritten")
    base_differs = n0 not in signed or signed[n0] != state.root
    if base_differs and size >= n0:
        where = _locate_divergence(ledger, state)
        if where is not None:
            if where[0] is not None:
                flag(where[0], where[1])
            else:
                problems.append(where[1])
    kepts = [] if kept is None else [kept] if isinstance(kept, Checkpoint) else list(kept)
    boundaries = sorted(set(signed) - {n0} | {k.tree_size for k in kepts if n0 < k.tree_size <= size})
    # Re-hash the new entries, compare with the stored leaf hashes, integrate into the kept frontier.
    statuses: dict[str, str] = dict(state.models)  # as of n0, kept in the state: the old entries are not read again
    frontier = list(state.frontier)
    tree = n0
    roots: dict[int, bytes] = {n0: state.root}
    frontiers: dict[int, tuple[tuple[int, bytes], ...]] = {n0: state.frontier}
    last_good = n0
    cuts = sorted(set(boundaries) | {size})
    differing: list[int] = []
    expected = n0
    for cut in cuts:
        while tree < cut:
            end = min(cut, tree + CHUNK)
            stored = dict(ledger.stored_hashes(0, tree, end))
            leaves: list[bytes] = []
            for idx, stored_type, data in ledger.typed_entries(tree, end):
                if idx != expected:
                    flag(expected, f"entries {expected}..{idx - 1} are missing (deleted from the database)")
                    leaves.extend(b"\0" * 32 for _ in range(idx - expected))
                    expected = idx
                if not isinstance(data, bytes):
                    flag(idx, f"entry {idx} is stored as {type(data).__name__}, not bytes: the database was edited")
                    data = data.encode("utf-8") if isinstance(data, str) else bytes(str(data), "utf-8")
                if check_entries:
                    audit_entry(idx, stored_type, data, statuses, flag)
                h = merkle.leaf_hash(data)
                if idx not in stored:
                    flag(idx, f"the stored leaf hash of entry {idx} is missing: the database is damaged")
                elif stored[idx] != h:
                    flag(idx, f"entry {idx} does not match its stored leaf hash: it was edited, replaced or moved")
                leaves.append(h)
                expected += 1
            if expected < end:
                flag(expected, f"entries {expected}..{end - 1} are missing (deleted from the database)")
                leaves.extend(b"\0" * 32 for _ in range(end - expected))
                expected = end
            step = merkle.integrate(tree, frontier, leaves)
            frontier, tree = list(step.frontier), step.tree_size
            if progress:
                progress("new entries", tree - n0, size - n0)
        if cut == size and cut not in signed:
            break
        root = _frontier_root(frontier)
        roots[cut] = root
        frontiers[cut] = tuple(frontier)
        if cut in signed and root != signed[cut]:
            mark(cut)
            differing.append(cut)
            if not base_differs and len(differing) == 1:  # the later ones follow from the first: counted, not listed
                flag(last_good, f"entries in [{last_good}, {cut}) differ from what the checkpoint at tree size {cut}"
                                " signed", exact=False)
        elif cut in signed:
            last_good = cut
    if len(differing) > (0 if base_differs else 1):
        later = differing if base_differs else differing[1:]
        problems.append(f"{len(later)} later signed checkpoint{'s' if len(later) > 1 else ''} (tree sizes {later[0]}.."
                        f"{later[-1]}) sign{'' if len(later) > 1 else 's'} trees built on that other history")
    for kept in kepts:
        if kept.origin != ledger.origin:
            problems.append(f"the kept checkpoint is for log {kept.origin!r}, not {ledger.origin!r}")
        elif kept.tree_size > size:
            flag(size, f"the kept checkpoint has {kept.tree_size} entries but the log holds {size}: it was rolled back,"
                       " truncated or lost its write-ahead file")
            mark(kept.tree_size)
        elif kept.tree_size >= n0:
            if roots.get(kept.tree_size) != kept.root_hash:
                problems.append(f"the log's tree at size {kept.tree_size} is not the one the kept checkpoint signed: a"
                                " fork or a rewrite")
                mark(kept.tree_size)
            elif kept.tree_size not in signed:
                problems.append(f"the kept checkpoint at tree size {kept.tree_size} is no longer in the log (its entries"
                                " are): it was removed")
                report.missing_checkpoints.append(kept.tree_size)
                mark(kept.tree_size)
        elif kept.tree_size > 0:
            try:
                proof = ledger.consistency_proof(kept.tree_size, n0)
                merkle.verify_consistency(kept.tree_size, n0, kept.root_hash, state.root, proof)
            except (merkle.ProofError, ValueError, LookupError) as exc:
                problems.append(f"the kept checkpoint at tree size {kept.tree_size} is not consistent with the one"
                                f" verified before at {n0}: {exc}")
                mark(kept.tree_size)
    newest = max(signed) if signed else None
    if newest is not None and newest > n0 and not base_differs:
        try:  # the proof the log serves to witnesses and receipt holders, from what is stored
            proof = ledger.consistency_proof(n0, newest)
            merkle.verify_consistency(n0, newest, state.root, signed[newest], proof)
        except (merkle.ProofError, ValueError, LookupError) as exc:
            problems.append(f"the log's consistency proof from the checkpoint verified before (tree size {n0}) to its"
                            f" newest (tree size {newest}) fails: {exc}")
            mark(newest)
    cosigned_sizes = getattr(ledger.store, "cosigned_sizes", None)
    if cosigned_sizes:
        held = {n for n, _ in checkpoints} | {n for n, *_ in ledger.checkpoints() if n > size}
        for n in cosigned_sizes():
            if n >= n0 and n not in held:
                report.missing_checkpoints.append(n)
                mark(n)
                problems.append(f"the checkpoint at tree size {n}, which witnesses cosigned, is no longer in the log: it"
                                " was removed")
    if (newest or 0) < size:
        latest = ledger.open_checkpoint(ledger.checkpoint()).tree_size  # the log may have grown since
        if latest < size:
            flag(newest or n0, f"entries {newest or n0}..{size - 1} are not covered by any signed checkpoint")
    if newest is not None and newest in frontiers:
        new_state = VerifierState(state.origin, state.verifier_key, state.key_source, newest, signed[newest],
                                  frontiers[newest], notes[newest], utc_now(), state.full_audit_at,
                                  tuple(statuses.items()) if newest == size and check_entries
                                  else _statuses_at(ledger, state, newest))
    return finish()


def _locate_divergence(ledger: Ledger, state: VerifierState) -> tuple[int | None, str] | None:
    """Where a log whose tree at the verified size is not the verified one first differs, as far as can be proven
    without the old entries: the kept frontier holds the roots of the perfect subtrees of the verified tree
    (RFC 9162 2.1.1 decomposition), so the first of those whose stored hash differs holds the first differing
    entry. Returns ``(index, message)`` when that subtree is one leaf, ``(None, message naming the range)`` when it
    is larger, None when the stored hashes cannot tell."""
    n0 = state.tree_size
    parts = merkle.root_plan(n0)
    try:
        stored = ledger.store.hashes(parts)
    except (LookupError, ValueError, GlasslogError):
        return None
    for (level, ix), (_lv, kept) in zip(parts, state.frontier, strict=False):
        if stored.get((level, ix)) == kept:
            continue
        start, end = ix << level, (ix + 1) << level
        if end - start == 1:
            return start, f"entry {start} is the first that differs from the tree verified before: the log's history diverges there"
        return None, (f"the first entry that differs from the tree verified before is in [{start}, {end}) (the stored"
                      " hashes place it there; --resume does not re-read old entries: run without --resume, against a"
                      " copy you trust, to name it)")
    return None


def _statuses_at(ledger: Ledger, state: VerifierState, size: int) -> tuple[tuple[str, str], ...]:
    """Model statuses as of ``size`` (>= the state's size): the state's, updated by the model entries after it."""
    models = dict(state.models)
    for _idx, _type, data in ledger.entries_of_types(["model"], state.tree_size, size):
        obj = json.loads(data)
        models[obj["model"]] = obj["status"]
    return tuple(models.items())
