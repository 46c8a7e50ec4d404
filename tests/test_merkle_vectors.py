"""The Merkle tree against Go's sumdb/tlog vectors and transparency-dev/merkle testdata."""

from __future__ import annotations

import base64
import json

import pytest

from glasslog.ledger import merkle
from glasslog.ledger.merkle import ProofError

from .conftest import VECTORS, load_vector


def b64(s):
    return base64.b64decode(s) if s is not None else None


def entry_data(i: int) -> bytes:
    return f"entry {i}\n".encode()


@pytest.fixture(scope="module")
def vec():
    return load_vector("merkle.json")


@pytest.fixture(scope="module")
def leaves(vec):
    n = max(max(r["tree_size"] for r in vec["roots"]), max(c["new_size"] for c in vec["consistency"]))
    return [merkle.leaf_hash(entry_data(i)) for i in range(n)]


class MemoryHashes:
    """Stored hashes of every complete perfect subtree, like the SQLite store keeps."""

    def __init__(self, leaves):
        self.h = {}
        level_hashes = list(leaves)
        level = 0
        while level_hashes:
            for i, x in enumerate(level_hashes):
                self.h[(level, i)] = x
            level_hashes = [merkle.node_hash(level_hashes[i], level_hashes[i + 1]) for i in range(0, len(level_hashes) - 1, 2)]
            level += 1
        self.reads = 0

    def get(self, keys):
        keys = list(keys)
        self.reads += len(keys)
        return {k: self.h[k] for k in keys}


def test_roots(vec, leaves):
    assert len(vec["roots"]) > 80
    for r in vec["roots"]:
        n = r["tree_size"]
        assert merkle.root_from_leaf_hashes(leaves[:n]) == b64(r["root"]), n


def test_roots_from_stored_hashes(vec, leaves):
    store = MemoryHashes(leaves)
    for r in vec["roots"]:
        n = r["tree_size"]
        if n == 0:
            continue
        parts = merkle.root_plan(n)
        assert merkle.subtree_hash_from(parts, store.get(parts)) == b64(r["root"])


def test_inclusion_proofs_generated_and_verified(vec, leaves):
    store = MemoryHashes(leaves)
    assert len(vec["inclusion"]) == 470
    for case in vec["inclusion"]:
        i, n = case["index"], case["tree_size"]
        want = [b64(p) for p in case["proof"]]
        store.reads = 0
        got = merkle.build_proof(merkle.inclusion_proof_plan(i, n), store.get)
        assert got == want, (i, n)
        assert store.reads <= 2 * n.bit_length() + 2  # O(log n) stored hashes read
        assert b64(case["leaf_hash"]) == leaves[i]
        merkle.verify_inclusion(i, n, leaves[i], want, b64(case["root"]))
        if want:  # a one-bit change anywhere in the proof must fail
            bad = list(want)
            bad[-1] = bytes([bad[-1][0] ^ 1]) + bad[-1][1:]
            with pytest.raises(ProofError):
                merkle.verify_inclusion(i, n, leaves[i], bad, b64(case["root"]))


def test_consistency_proofs_generated_and_verified(vec, leaves):
    store = MemoryHashes(leaves)
    assert len(vec["consistency"]) == 973
    for case in vec["consistency"]:
        m, n = case["old_size"], case["new_size"]
        want = [b64(p) for p in case["proof"]]
        store.reads = 0
        got = merkle.build_proof(merkle.consistency_proof_plan(m, n), store.get)
        assert got == want, (m, n)
        assert store.reads <= 2 * n.bit_length() + 2
        merkle.verify_consistency(m, n, b64(case["old_root"]), b64(case["new_root"]), want)
        if m != n:
            with pytest.raises(ProofError):
                merkle.verify_consistency(m, n, b64(case["old_root"]), b64(case["new_root"]), want[:-1])
            with pytest.raises(ProofError):
                merkle.verify_consistency(m, n, b64(case["old_root"]), b64(case["new_root"]), want + [want[0]])


def _cases(kind):
    base = VECTORS / "transparency-dev-merkle" / "testdata" / kind
    return [pytest.param(p, id=str(p.relative_to(base))) for p in sorted(base.rglob("*.json"))]


@pytest.mark.parametrize("path", _cases("inclusion"))
def test_transparency_dev_inclusion(path):
    c = json.loads(path.read_text())
    proof = [b64(p) for p in (c["proof"] or [])]
    args = (c["leafIdx"], c["treeSize"], b64(c["leafHash"]), proof, b64(c["root"]))
    if c["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"))
def test_transparency_dev_consistency(path):
    c = json.loads(path.read_text())
    proof = [b64(p) for p in (c["proof"] or [])]
    args = (c["size1"], c["size2"], b64(c["root1"]), b64(c["root2"]), proof)
    if c["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_transparency_dev_case_count():
    base = VECTORS / "transparency-dev-merkle" / "testdata"
    cases = [json.loads(p.read_text()) for p in base.rglob("*.json")]
    assert len(cases) == 196
    assert sum(c["wantErr"] for c in cases) > 150


def test_consistency_from_the_empty_tree_is_refused():
    # transparency-dev/merkle: "consistency proof from empty tree is meaningless"; an empty proof would accept any root
    any_root = merkle.leaf_hash(b"anything")
    with pytest.raises(ProofError, match="empty tree is meaningless"):
        merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, any_root, [])
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])  # equal sizes: still fine


@pytest.mark.parametrize("bad", [None, 1.0, True, "3", -1])
def test_sizes_and_indexes_must_be_non_negative_ints(bad):
    leaf = merkle.leaf_hash(b"x")
    with pytest.raises(ProofError, match="tree size|index"):
        merkle.verify_inclusion(0, bad, leaf, [], leaf)
    with pytest.raises(ProofError, match="index"):
        merkle.verify_inclusion(bad, 1, leaf, [], leaf)
    with pytest.raises(ProofError, match="tree size"):
        merkle.verify_consistency(bad, 2, leaf, leaf, [leaf])
    with pytest.raises(ProofError, match="tree size"):
        merkle.verify_consistency(1, bad, leaf, leaf, [leaf])
