"""RFC 9162 Merkle tree hashing, proof construction and proof verification.

This module is pure: it knows nothing about storage. Proof *construction* is
expressed over a ``HashSource``: a callable that returns the stored hashes of
perfect, aligned subtrees ``(level, index)`` (the subtree covering leaves
``index * 2**level .. (index + 1) * 2**level - 1``). A store that keeps every
such hash for the leaves it holds can then build any proof for any tree size
by reading O(log n) hashes and never recomputing the tree.

Sources:
- RFC 9162 section 2.1.1 (hashing), 2.1.3 (inclusion proofs and their
  verification), 2.1.4 (consistency proofs and their verification).
- C2SP merkle-tree.md, which restates the same algorithms and fixes the
  empty-tree cases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import LogIntegrityError

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "range_decomposition",
    "subtree_hash_from",
    "inclusion_proof_plan",
    "consistency_proof_plan",
    "build_proof",
    "root_plan",
    "Integration",
    "integrate",
    "verify_inclusion",
    "verify_consistency",
    "root_from_inclusion_proof",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string (RFC 9162 2.1.1)."""

_sha256 = hashlib.sha256


class ProofError(LogIntegrityError, ValueError):
    """A proof, root or tree size failed verification or is malformed."""


def leaf_hash(entry: bytes) -> bytes:
    """Return the leaf hash SHA-256(0x00 || entry) of one entry (RFC 9162 2.1.1).

    Args:
        entry: the entry's bytes (for glasslog, canonical JSON).

    Returns:
        32 bytes.
    """
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash SHA-256(0x01 || left || right) (RFC 9162 2.1.1)."""
    return _sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Compute the Merkle tree hash of a whole list of leaf hashes in memory.

    Used by the whole-log audit and by tests; stores answer roots from stored
    hashes instead. Runs in O(n) hashes and O(log n) extra memory.

    Args:
        leaf_hashes: the leaf hashes, 32 bytes each, in log order.

    Returns:
        The 32-byte root; ``EMPTY_ROOT`` for an empty list.
    """
    # Keep a stack of perfect subtrees, merged as in a binary counter; the
    # final right-to-left fold gives RFC 9162's MTH for any size.
    stack: list[tuple[int, bytes]] = []
    for h in leaf_hashes:
        level = 0
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))
    if not stack:
        return EMPTY_ROOT
    root = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        root = node_hash(h, root)
    return root


def range_decomposition(start: int, end: int) -> list[tuple[int, int]]:
    """Split leaves [start, end) into the perfect subtrees RFC 9162 hashes it by.

    ``start`` must be aligned the way RFC 9162's recursion aligns it (a
    multiple of the largest power of two not above ``end - start``), which
    holds for every range that appears in MTH, PATH and SUBPROOF.

    Returns:
        ``(level, index)`` pairs, largest first. MTH(D[start:end]) is
        ``node(p0, node(p1, ... node(p_{k-2}, p_{k-1})))`` over their hashes.
    """
    parts: list[tuple[int, int]] = []
    size = end - start
    pos = start
    while size:
        level = size.bit_length() - 1
        parts.append((level, pos >> level))
        pos += 1 << level
        size -= 1 << level
    return parts


def subtree_hash_from(parts: Sequence[tuple[int, int]], hashes: dict[tuple[int, int], bytes]) -> bytes:
    """Fold the hashes of a ``range_decomposition`` into the range's MTH."""
    h = hashes[parts[-1]]
    for key in reversed(parts[:-1]):
        h = node_hash(hashes[key], h)
    return h


# A proof plan is a list of items, one per proof hash; each item is the
# range_decomposition of the subtree whose hash that proof element is.
ProofPlan = list[list[tuple[int, int]]]


def root_plan(tree_size: int) -> list[tuple[int, int]]:
    """Perfect subtrees whose stored hashes give the root of ``tree_size`` leaves."""
    return range_decomposition(0, tree_size)


def inclusion_proof_plan(index: int, tree_size: int) -> ProofPlan:
    """Plan the inclusion proof (audit path) PATH(index, D[tree_size]).

    RFC 9162 2.1.3.1. Raises ``ProofError`` if ``index`` is not in
    ``0 <= index < tree_size``.
    """
    if not 0 <= index < tree_size:
        raise ProofError(f"index {index} is outside a tree of size {tree_size}")
    plan: ProofPlan = []
    lo, hi = 0, tree_size
    # Walk root to leaf, recording siblings; the proof lists them leaf to root.
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if index < lo + k:
            plan.append(range_decomposition(lo + k, hi))
            hi = lo + k
        else:
            plan.append(range_decomposition(lo, lo + k))
            lo = lo + k
    plan.reverse()
    return plan


def consistency_proof_plan(old_size: int, new_size: int) -> ProofPlan:
    """Plan the consistency proof PROOF(old_size, D[new_size]).

    RFC 9162 2.1.4.1. The proof is empty when ``old_size`` is 0 or equals
    ``new_size``. Raises ``ProofError`` if ``old_size > new_size`` or a size is
    negative.
    """
    if old_size < 0 or new_size < 0:
        raise ProofError("tree sizes must not be negative")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    plan: ProofPlan = []
    lo, hi, m, include_self = 0, new_size, old_size, True
    # Iterative SUBPROOF(m, D[lo:hi], b); m counts leaves of the old tree in [lo, hi).
    while True:
        n = hi - lo
        if m == n:
            if not include_self:
                plan.append(range_decomposition(lo, hi))
            break
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            plan.append(range_decomposition(lo + k, hi))
            hi = lo + k
        else:
            plan.append(range_decomposition(lo, lo + k))
            lo, m, include_self = lo + k, m - k, False
    plan.reverse()
    return plan


def build_proof(plan: ProofPlan, get_hashes: Callable[[Iterable[tuple[int, int]]], dict[tuple[int, int], bytes]]) -> list[bytes]:
    """Turn a proof plan into proof hashes with one batched read of stored hashes.

    Args:
        plan: from ``inclusion_proof_plan`` or ``consistency_proof_plan``.
        get_hashes: returns ``{(level, index): 32-byte hash}`` for the keys asked.
    """
    keys = {key for parts in plan for key in parts}
    hashes = get_hashes(keys) if keys else {}
    return [subtree_hash_from(parts, hashes) for parts in plan]


@dataclass(frozen=True)
class Integration:
    """What ``integrate`` computed for one batch.

    Attributes:
        levels: ``levels[L]`` lists the new stored hashes of level ``L`` (the
            perfect subtrees completed by the batch), in index order; level 0
            holds the batch's leaf hashes.
        first: ``first[L]`` is the index (at level ``L``) of ``levels[L][0]``.
        frontier: ``(level, hash)`` of the perfect subtrees making up the new
            tree, largest (leftmost) first: the next batch's ``frontier``.
        tree_size: the new tree size.
        root: the new root hash (RFC 9162 MTH of the whole tree).
    """

    levels: list[list[bytes]]
    first: list[int]
    frontier: list[tuple[int, bytes]]
    tree_size: int
    root: bytes

    def stored_hashes(self) -> Iterator[tuple[int, int, bytes]]:
        """Iterate ``(level, index, hash)`` over every new stored hash."""
        for level, hashes in enumerate(self.levels):
            start = self.first[level]
            for k, h in enumerate(hashes):
                yield level, start + k, h


def integrate(tree_size: int, frontier: Sequence[tuple[int, bytes]], leaf_hashes: Sequence[bytes]) -> Integration:
    """Integrate a batch of leaf hashes into a tree: the Merkle write step, with no storage.

    The same step as Go's ``tlog.StoredHashes`` and Tessera's ``Integrate``:
    each leaf is pushed onto the frontier (the stack of complete perfect
    subtrees, as ``root_plan`` lists them), merging equal-level neighbours
    with ``node_hash``; every merge completes a subtree whose hash is stored
    once and never changes.

    Args:
        tree_size: entries already in the tree.
        frontier: ``(level, hash)`` of ``root_plan(tree_size)``'s subtrees, in
            that order (empty for the empty tree).
        leaf_hashes: the batch's leaf hashes, in log order (at least one).

    Returns:
        An ``Integration``: the new stored hashes per level, the new frontier,
        tree size and root.

    Raises:
        ProofError: the frontier does not match ``tree_size`` (wrong levels or
            hash sizes), or the batch is empty.
    """
    if not leaf_hashes:
        raise ProofError("a batch to integrate must hold at least one leaf hash")
    expected = [level for level, _ in root_plan(tree_size)]
    if [level for level, _ in frontier] != expected:
        raise ProofError(f"frontier levels {[lv for lv, _ in frontier]} do not make a tree of size {tree_size} ({expected})")
    for level, h in frontier:
        _check_hash(h, f"frontier hash at level {level}")
    stack = list(frontier)
    levels: list[list[bytes]] = [list(leaf_hashes)]
    first = [tree_size]
    pos = tree_size
    sha256 = _sha256
    for h in leaf_hashes:
        _check_hash(h, "leaf hash")
        level = 0
        while stack and stack[-1][0] == level:
            h = sha256(b"\x01" + stack.pop()[1] + h).digest()
            level += 1
            if level == len(levels):
                levels.append([])
                first.append(pos >> level)
            levels[level].append(h)
        stack.append((level, h))
        pos += 1
    root = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        root = node_hash(h, root)
    return Integration(levels, first, stack, pos, root)


def _check_size(value: int, what: str) -> None:
    """Sizes and indexes are non-negative ints: not bools, floats or None (a proof checked against a guessed size proves nothing)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ProofError(f"{what} must not be negative, got {value}")


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte hash, got {size}")


def root_from_inclusion_proof(index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Recompute the root implied by an inclusion proof (RFC 9162 2.1.3.2 steps 1-4).

    Raises:
        ProofError: index out of range, a hash that is not 32 bytes, or a
            proof with too many or too few hashes for the tree size.
    """
    _check_size(index, "index")
    _check_size(tree_size, "tree size")
    if index >= tree_size:
        raise ProofError(f"index {index} is outside a tree of size {tree_size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, tree_size - 1, bytes(leaf)
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof hash {i}")
        if sn == 0:
            raise ProofError(f"inclusion proof has too many hashes ({len(proof)}) for index {index} in a tree of size {tree_size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof has too few hashes ({len(proof)}) for index {index} in a tree of size {tree_size}")
    return r


def verify_inclusion(index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Verify that ``leaf`` is the leaf hash at ``index`` in the tree with ``root``.

    RFC 9162 section 2.1.3.2.

    Args:
        index: leaf index, from 0.
        tree_size: number of leaves of the tree ``root`` commits to.
        leaf: 32-byte leaf hash (``leaf_hash(entry)``).
        proof: the audit path, leaf to root, 32 bytes each.
        root: 32-byte root hash of the tree of ``tree_size`` leaves.

    Raises:
        ProofError: the proof is malformed or does not lead to ``root``.
    """
    _check_hash(root, "root hash")
    if root_from_inclusion_proof(index, tree_size, leaf, proof) != root:
        raise ProofError(f"inclusion proof for index {index} does not match the root of tree size {tree_size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Verify that the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 section 2.1.4.2, with the equal-size cases of C2SP
    merkle-tree.md (an empty proof and equal roots; the empty tree's root
    must be ``EMPTY_ROOT``). From the empty tree to a larger one there is
    nothing to prove, and like transparency-dev/merkle this refuses it.

    Raises:
        ProofError: the proof is malformed or inconsistent, a size is not a
            non-negative int, or ``old_size`` is 0 and ``new_size`` is not.
    """
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError(f"consistency proof between equal tree sizes must be empty, got {len(proof)} hashes")
        if old_size == 0 and (old_root != EMPTY_ROOT or new_root != EMPTY_ROOT):
            raise ProofError("the root of the empty tree must be SHA-256 of the empty string")
        if old_root != new_root:
            raise ProofError(f"roots differ at equal tree size {old_size}")
        return
    if old_size == 0:
        # As transparency-dev/merkle: every tree extends the empty one, so such a "proof" would accept any new root.
        raise ProofError("a consistency proof from the empty tree is meaningless: every tree extends it; "
                         "compare against a checkpoint of a non-empty tree")
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    if not proof:
        raise ProofError(f"consistency proof from tree size {old_size} to {new_size} must not be empty")
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof hash {i}")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof has too many hashes ({len(proof)}) for sizes {old_size} -> {new_size}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof has too few hashes ({len(proof)}) for sizes {old_size} -> {new_size}")
    if fr != old_root:
        raise ProofError(f"consistency proof does not match the old root of tree size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not match the new root of tree size {new_size}")
