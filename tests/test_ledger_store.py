"""Guarantees of the SQLite store (glasslog.ledger.store.Ledger).

Every test here checks recomputed values, never just "no exception": roots
are recomputed from scratch from the stored entry bytes, checkpoints are
opened with the log's verifier key, proofs are verified with the RFC 9162
verifiers, and "nothing was written" means the whole database dump is equal.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from glasslog.ledger import (
    Entry,
    EntryError,
    KeyFileError,
    Ledger,
    LedgerError,
    PrivateValue,
    Signer,
    Verifier,
    canonical_json,
    check_commitment,
    commit,
    merkle,
)
from glasslog.ledger.merkle import EMPTY_ROOT, ProofError, leaf_hash, root_from_leaf_hashes
from glasslog.ledger.note import NoteError, generate_signer, open_checkpoint
from glasslog.storage import StorageConflict, StorageError

ORIGIN = "test.example/log"
T0 = "2026-11-29T08:00:00Z"
MODEL = "sha256:" + "ab" * 32
INPUT = "sha256:" + "cd" * 32


# ---------------------------------------------------------------- helpers
_DROP = object()  # decision(..., field=_DROP) leaves the field out


def decision(i: int, **fields) -> dict:
    """A valid decision entry, distinct for every ``i``."""
    obj = {
        "type": "decision",
        "v": 1,
        "model": MODEL,
        "deployment": "credit-eu",
        "time": T0,
        "input": INPUT,
        "output": {"i": i, "score": 0.5},
    }
    obj.update(fields)
    return {k: v for k, v in obj.items() if v is not _DROP}


def snapshot(lg: Ledger) -> tuple:
    """Everything observable about the stored log: full SQL dump, size, root, checkpoints."""
    return (
        list(lg.store.connection.iterdump()),
        lg.size,
        lg.signed_size(),
        lg.root(),
        len(list(lg.checkpoints())),
    )


def recomputed_root(lg: Ledger, n: int) -> bytes:
    """Root of the first n entries, recomputed from the stored entry bytes (not stored hashes)."""
    return root_from_leaf_hashes([leaf_hash(data) for _, data in lg.entries(0, n)])


def check_stored_hashes(lg: Ledger) -> None:
    """Every complete aligned subtree hash is stored, equals a recompute, and nothing else is stored."""
    n = lg.size
    level_hashes = [leaf_hash(data) for _, data in lg.entries()]
    level = 0
    expected_count = 0
    while level_hashes:
        stored = list(lg.stored_hashes(level, 0, 1 << 47))
        assert stored == list(enumerate(level_hashes)), f"stored hashes at level {level} differ from a recompute"
        expected_count += -(-len(level_hashes) // 32)  # stored in strips of 32 hashes per row
        level_hashes = [merkle.node_hash(level_hashes[i], level_hashes[i + 1]) for i in range(0, len(level_hashes) - 1, 2)]
        level += 1
    assert lg.store.connection.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] == expected_count
    assert expected_count <= 2 * n


def verify_everything(lg: Ledger, *, all_inclusions: bool = True) -> list[tuple[int, bytes]]:
    """Verify every kept checkpoint, every inclusion proof at every checkpoint size and
    consistency between every pair of checkpoints. Returns ``[(tree_size, root)]``."""
    rows = list(lg.checkpoints())
    assert rows, "a log always keeps at least its initial checkpoint"
    assert rows[0][0] == 0 and rows[0][1] == EMPTY_ROOT
    sizes = [r[0] for r in rows]
    assert sizes == sorted(set(sizes))
    assert sizes[-1] == lg.size == lg.signed_size()
    leaves = [leaf_hash(data) for _, data in lg.entries()]
    assert [i for i, _ in lg.entries()] == list(range(lg.size)), "indexes must be 0..size-1 without gaps"
    out = []
    for tree_size, root, note, created_at in rows:
        cp = lg.open_checkpoint(note)
        assert (cp.origin, cp.tree_size, cp.root_hash) == (ORIGIN, tree_size, root)
        assert root == root_from_leaf_hashes(leaves[:tree_size]), f"checkpoint {tree_size} root differs from a recompute"
        assert lg.root(tree_size) == root
        assert lg.checkpoint(tree_size) == note
        assert created_at.endswith("Z")
        indexes = range(tree_size) if all_inclusions else sorted({0, tree_size // 2, tree_size - 1} & set(range(tree_size)))
        for i in indexes:
            merkle.verify_inclusion(i, tree_size, leaves[i], lg.inclusion_proof(i, tree_size), root)
        out.append((tree_size, root))
    for a, (old_size, old_root) in enumerate(out):
        for new_size, new_root in out[a:]:
            if old_size == 0 and new_size > 0:
                continue  # nothing to prove from the empty tree (verify_consistency refuses it)
            merkle.verify_consistency(old_size, new_size, old_root, new_root, lg.consistency_proof(old_size, new_size))
    assert lg.root() == out[-1][1]
    return out


# ----------------------------------------------------- batches and proofs
BATCHES = [1, 1, 2, 3, 5, 8, 13, 31, 64, 1, 127, 300]


def test_batches_get_sequential_indexes_and_verifiable_checkpoints(ledger):
    assert ledger.size == 0 and ledger.root() == EMPTY_ROOT
    first_cp = ledger.open_checkpoint(ledger.checkpoint())
    assert (first_cp.tree_size, first_cp.root_hash) == (0, EMPTY_ROOT)

    expected_sizes = [0]
    notes = {0: ledger.checkpoint()}
    i = 0
    for b, count in enumerate(BATCHES):
        # mix the three accepted forms: dicts, canonical bytes and Entry objects
        batch = []
        for _ in range(count):
            obj = decision(i)
            batch.append([obj, canonical_json(obj), Entry.from_object(obj)][i % 3])
            i += 1
        before = ledger.size
        res = ledger.append(batch)
        assert res.first_index == before
        assert res.tree_size == before + count == ledger.size == ledger.signed_size()
        assert list(res.indexes) == list(range(before, before + count))
        cp = ledger.open_checkpoint(res.checkpoint)
        assert cp.tree_size == ledger.size
        assert cp.root_hash == ledger.root() == recomputed_root(ledger, ledger.size)
        assert ledger.checkpoint() == res.checkpoint
        # the earliest checkpoint covering each entry of the batch is this one
        assert {ledger.checkpoint_covering(k) for k in res.indexes} == {res.checkpoint}
        expected_sizes.append(res.tree_size)
        notes[res.tree_size] = res.checkpoint

    assert i == sum(BATCHES) == ledger.size
    # the earliest checkpoint covering an entry is the one of its batch, also later on
    ends = list(expected_sizes[1:])
    for k in range(ledger.size):
        end = next(e for e in ends if e > k)
        assert ledger.checkpoint_covering(k) == notes[end]
    # every entry is the one appended at that index, byte for byte
    for idx, data in ledger.entries():
        assert data == canonical_json(decision(idx))
        assert ledger.entry(idx) == data
        assert ledger.leaf_hash(idx) == leaf_hash(data)
    # all checkpoints are kept, in order, exactly as returned
    kept = list(ledger.checkpoints())
    assert [r[0] for r in kept] == expected_sizes
    assert {r[0]: r[2] for r in kept} == notes
    check_stored_hashes(ledger)
    out = verify_everything(ledger, all_inclusions=False)
    assert len(out) == len(BATCHES) + 1


def test_every_inclusion_and_consistency_proof_between_checkpoints(ledger):
    i = 0
    for count in [1, 2, 1, 4, 7, 9, 16, 3, 21]:
        ledger.append([decision(i + k) for k in range(count)])
        i += count
    out = verify_everything(ledger)  # every entry at every checkpoint size, every pair
    assert [s for s, _ in out] == [0, 1, 3, 4, 8, 15, 24, 40, 43, 64]
    # a proof against the wrong root or wrong size must fail: the checks above are not vacuous
    (s1, r1), (s2, r2) = out[3], out[5]
    with pytest.raises(ProofError):
        merkle.verify_consistency(s1, s2, r1, r1, ledger.consistency_proof(s1, s2))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(2, s2, ledger.leaf_hash(3), ledger.inclusion_proof(2, s2), r2)


def test_mixed_entry_types_and_entries_of_type(ledger):
    model = {
        "type": "model",
        "v": 1,
        "event": "register",
        "model": MODEL,
        "time": T0,
        "card": {"name": "scorer", "claimed": {"auc": 0.81}},
        "status": "active",
    }
    res = ledger.append([model, decision(0), decision(1)])
    outcome = {"type": "outcome", "v": 1, "decision": res.first_index + 1, "outcome": {"defaulted": False}, "time": T0}
    status = {"type": "model", "v": 1, "event": "status", "model": MODEL, "time": T0, "status": "suspended", "reason": "drift"}
    ledger.append([outcome, status])
    assert [i for i, _ in ledger.entries_of_type("decision")] == [1, 2]
    assert [o["event"] for _, o in ledger.entries_of_type("model")] == ["register", "status"]
    assert [(i, o["decision"]) for i, o in ledger.entries_of_type("outcome")] == [(3, 1)]
    assert ledger.store.connection.execute("SELECT type FROM entries ORDER BY idx").fetchall() == [
        ("model",),
        ("decision",),
        ("decision",),
        ("outcome",),
        ("model",),
    ]
    verify_everything(ledger)


def test_another_writer_between_appends_does_not_confuse_the_frontier_cache(ledger):
    ledger.append([decision(k) for k in range(5)])  # ledger caches its frontier at size 5
    other = Ledger.open(ledger.data_dir)
    try:
        assert other.append([decision(k) for k in range(5, 12)]).first_index == 5
        res = ledger.append([decision(k) for k in range(12, 15)])
        assert (res.first_index, res.tree_size) == (12, 15)
        assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, 15)
        assert other.append([decision(15)]).tree_size == 16
        assert other.root() == ledger.root() == recomputed_root(ledger, 16)
    finally:
        other.close()
    check_stored_hashes(ledger)
    verify_everything(ledger)


# ------------------------------------------------------------ all-or-nothing
def _canon(obj) -> bytes:
    return canonical_json(obj)


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _bad_cases():
    good = _canon(decision(99))
    unsorted = json.dumps({"v": 1, **decision(99)}, separators=(",", ":"), ensure_ascii=False).encode()
    assert unsorted != good and json.loads(unsorted) == decision(99)
    return {
        # name: (bad entry, field named (None: the entry as a whole), words in the message)
        "malformed JSON": (good[:-1], None, "not valid JSON"),
        "not an object": (b"[1,2]", None, "JSON object"),
        "not UTF-8": (good.replace(b"credit-eu", b"credit-\xff"), None, "UTF-8"),
        "not bytes": ("a string", None, "bytes"),
        "extra whitespace": (good.replace(b'"v":1', b'"v": 1'), None, "canonical"),
        "trailing newline": (good + b"\n", None, "canonical"),
        "unsorted keys": (unsorted, None, "canonical"),
        "number form": (good.replace(b'"score":0.5', b'"score":5e-1'), None, "canonical"),
        "escaped string form": (good.replace(b"credit-eu", b"credit\\u002deu"), None, "canonical"),
        "duplicate key": (good.replace(b'"v":1', b'"v":1,"v":1'), None, "canonical"),
        "NaN in dict": (decision(99, output={"score": float("nan")}), "output.score", "NaN"),
        "Infinity in dict": (decision(99, output=float("inf")), "output", "infinity"),
        "-Infinity in list": (decision(99, output=[1, float("-inf")]), "output[1]", "infinity"),
        "NaN literal in bytes": (good.replace(b'"score":0.5', b'"score":NaN'), "output.score", "NaN"),
        "Infinity literal in bytes": (good.replace(b'"score":0.5', b'"score":Infinity'), "output.score", ""),
        "-Infinity literal in bytes": (good.replace(b'"score":0.5', b'"score":-Infinity'), "output.score", ""),
        "overflowing number in bytes": (good.replace(b'"score":0.5', b'"score":1e999'), "output.score", ""),
        "NaN in a model card": (
            {
                "type": "model",
                "v": 1,
                "event": "register",
                "model": MODEL,
                "time": T0,
                "status": "active",
                "card": {"auc": float("nan")},
            },
            "card.auc",
            "NaN",
        ),
        "unknown type": (decision(99, type="verdict"), "type", "unknown entry type"),
        "missing type": (decision(99, type=_DROP), "type", "required"),
        "missing field": (decision(99, deployment=_DROP), "deployment", "required"),
        "missing output": (decision(99, output=_DROP), "output", "required"),
        "empty deployment": (decision(99, deployment=""), "deployment", "empty"),
        "wrong schema version": (decision(99, v=2), "v", "schema version"),
        "schema version as string": (decision(99, v="1"), "v", "int"),
        "schema version as bool": (decision(99, v=True), "v", "integer"),
        "bad input commitment": (decision(99, input="sha256:" + "CD" * 32), "input", "sha256:"),
        "short model digest": (decision(99, model="sha256:abc"), "model", "sha256:"),
        "bad subject commitment": (decision(99, subject="md5:" + "00" * 16), "subject", "sha256:"),
        "bad time format": (decision(99, time="2026-11-29 08:00:00"), "time", "RFC 3339"),
        "time with offset": (decision(99, time="2026-11-29T08:00:00+00:00"), "time", "RFC 3339"),
        "impossible date": (decision(99, time="2026-02-30T08:00:00Z"), "time", ""),
        "over-size entry (object)": (decision(99, output="x" * 70_000), None, "65535"),
        "over-size entry (bytes)": (_canon(decision(99, output="x" * 70_000)), None, "65535"),
        "integer too large": (decision(99, output=2**60), "output", "2**53"),
        "integer too large in bytes": (good.replace(b'"i":99', b'"i":9007199254740993'), "output.i", "2**53"),
        "nested too deeply (object)": (decision(99, output=_nested(5000)), None, "nested too deeply"),
        "nested too deeply (bytes)": (good.replace(b'"score":0.5', b'"score":' + b"[" * 5000 + b"]" * 5000), None, "nested"),
        "negative outcome decision": ({"type": "outcome", "v": 1, "decision": -1, "outcome": 1, "time": T0}, "decision", ">= 0"),
        "bad model status": (
            {"type": "model", "v": 1, "event": "status", "model": MODEL, "time": T0, "status": "paused", "reason": "x"},
            "status",
            "active",
        ),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("name", list(BAD))
def test_one_bad_entry_rejects_the_whole_batch(ledger, name):
    bad, field, words = BAD[name]
    ledger.append([decision(k) for k in range(3)])
    before = snapshot(ledger)
    batch = [decision(10), _canon(decision(11)), Entry.from_object(decision(12)), bad, decision(14)]
    with pytest.raises(EntryError) as info:
        ledger.append(batch)
    err = info.value
    assert err.index == 3
    assert "entry 3 of the batch" in str(err)
    assert err.field == field
    if field is not None:
        assert f"field '{field}'" in str(err)
    assert words.lower() in str(err).lower()
    assert snapshot(ledger) == before
    # the log is unharmed and the next batch gets the next index
    res = ledger.append([decision(3)])
    assert (res.first_index, res.tree_size) == (3, 4)
    verify_everything(ledger)


def test_bad_entry_first_or_last_in_batch(ledger):
    ledger.append([decision(0)])
    before = snapshot(ledger)
    for pos in (0, 4):
        batch = [decision(1 + k) for k in range(5)]
        batch[pos] = decision(50, time="yesterday")
        with pytest.raises(EntryError) as info:
            ledger.append(batch)
        assert (info.value.index, info.value.field) == (pos, "time")
        assert snapshot(ledger) == before


def test_empty_batch_and_stray_private_values_are_refused(ledger):
    ledger.append([decision(0)])
    before = snapshot(ledger)
    with pytest.raises(ValueError):
        ledger.append([])
    c, salt, vb = commit({"income": 1})
    for pos in (-1, 2):
        with pytest.raises(ValueError, match="batch position"):
            ledger.append([decision(1, input=c), decision(2)], [PrivateValue(pos, "input", c, salt, vb)])
    assert snapshot(ledger) == before


def test_signer_failure_mid_batch_leaves_nothing(ledger, monkeypatch):
    ledger.append([decision(k) for k in range(6)])
    before = snapshot(ledger)

    def broken_sign(self, message):
        raise OSError("hardware security module unplugged")

    monkeypatch.setattr(Signer, "sign", broken_sign)
    c, salt, vb = commit({"income": 5})
    with pytest.raises(OSError, match="unplugged"):
        ledger.append([decision(6, input=c), decision(7)], [PrivateValue(0, "input", c, salt, vb)])
    assert snapshot(ledger) == before
    assert ledger.private_value(c) is None
    monkeypatch.undo()
    res = ledger.append([decision(6), decision(7), decision(8)])
    assert (res.first_index, res.tree_size) == (6, 9)
    assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, 9)
    check_stored_hashes(ledger)
    verify_everything(ledger)


@pytest.mark.parametrize("action", ["ABORT", "FAIL", "ROLLBACK"])
@pytest.mark.parametrize("table", ["hashes", "entries", "checkpoints", "private_values"])
def test_storage_failure_mid_batch_leaves_nothing(ledger, table, action):
    ledger.append([decision(k) for k in range(5)])  # the instance now caches a frontier at size 5
    ledger.append([decision(k) for k in range(5, 7)])
    before = snapshot(ledger)
    n_rows = ledger.store.connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    # fail on the 3rd row this batch inserts into entries (1st for the tables it writes one or few rows to:
    # hashes are stored in strips of 32, so a small batch rewrites a few strips)
    nth = 3 if table == "entries" else 1
    ledger.store.connection.execute(
        f"CREATE TEMP TRIGGER fail_midway BEFORE INSERT ON main.{table} "
        f"WHEN (SELECT COUNT(*) FROM main.{table}) >= {n_rows + nth - 1} "
        f"BEGIN SELECT RAISE({action}, 'disk on fire'); END"
    )
    c, salt, vb = commit({"income": 7})
    batch = [decision(7, input=c)] + [decision(k) for k in range(8, 12)]
    with pytest.raises((sqlite3.Error, StorageError), match="disk on fire"):
        ledger.append(batch, [PrivateValue(0, "input", c, salt, vb)])
    assert not ledger.store.connection.in_transaction
    assert snapshot(ledger) == before
    assert ledger.private_value(c) is None
    ledger.store.connection.execute("DROP TRIGGER fail_midway")
    # the same instance appends correctly afterwards (its frontier cache is not stale)
    res = ledger.append(batch, [PrivateValue(0, "input", c, salt, vb)])
    assert (res.first_index, res.tree_size) == (7, 12)
    assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, 12)
    res = ledger.append([decision(12)])
    assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, 13)
    assert ledger.private_value(c) == ("input", salt, vb)
    check_stored_hashes(ledger)
    verify_everything(ledger)


def test_failed_commit_leaves_nothing(ledger):
    ledger.append([decision(k) for k in range(5)])  # the instance now caches a frontier at size 5
    before = snapshot(ledger)
    denied = []

    def no_commit(action, arg1, arg2, dbname, source):
        if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT":
            denied.append(arg1)
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    ledger.store.connection.set_authorizer(no_commit)
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        ledger.append([decision(k) for k in range(5, 8)])
    ledger.store.connection.set_authorizer(None)
    assert denied == ["COMMIT"]
    assert not ledger.store.connection.in_transaction
    assert snapshot(ledger) == before
    # another writer now brings the log to the size the failed batch would have
    # had, with different entries: a cache of the failed batch's frontier would
    # be taken for the real one
    with Ledger.open(ledger.data_dir) as other:
        assert other.append([decision(k, deployment="other") for k in range(5, 8)]).tree_size == 8
    res = ledger.append([decision(8)])
    assert (res.first_index, res.tree_size) == (8, 9)
    assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, 9)
    res = ledger.append([decision(k) for k in range(9, 12)])
    assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, 12)
    check_stored_hashes(ledger)
    verify_everything(ledger)


def test_interrupt_mid_batch_leaves_nothing(ledger, monkeypatch):
    ledger.append([decision(k) for k in range(4)])
    before = snapshot(ledger)
    import glasslog.storage.sqlite.store as sqlite_store

    real = sqlite_store.S.strip_rows

    def interrupted(levels, first, existing):
        real(levels, first, existing)  # inside the batch's transaction, after the entries were inserted
        raise KeyboardInterrupt

    monkeypatch.setattr(sqlite_store.S, "strip_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ledger.append([decision(k) for k in range(4, 9)])
    monkeypatch.undo()
    assert not ledger.store.connection.in_transaction
    assert snapshot(ledger) == before
    res = ledger.append([decision(k) for k in range(4, 9)])
    assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, 9)
    verify_everything(ledger)


# ------------------------------------------------------------ private values
def _decision_with_private(lg: Ledger, i: int, subject_id: str, features: dict):
    ci, si, vi = commit(features)
    cs, ss, vs = commit(subject_id)
    obj = decision(i, input=ci, subject=cs)
    pvs = [PrivateValue(0, "input", ci, si, vi), PrivateValue(0, "subject", cs, ss, vs)]
    return obj, pvs, (ci, si, vi), (cs, ss, vs)


def test_private_values_found_opened_and_erased(ledger):
    ledger.append([decision(0)])
    alice = "subject-ALICE-7f3a9c41"
    feats_1 = {"income": 41000, "note": "FEATURE-MARKER-1"}
    obj1, pv1, inp1, sub1 = _decision_with_private(ledger, 1, alice, feats_1)
    obj2, pv2, _, sub2 = _decision_with_private(ledger, 2, "subject-BOB", {"income": 1})
    pv2 = [PrivateValue(1, p.kind, p.commitment, p.salt, p.value) for p in pv2]
    r1 = ledger.append([obj1, obj2], pv1 + pv2)
    assert list(r1.indexes) == [1, 2]
    obj3, pv3, inp3, sub3 = _decision_with_private(ledger, 3, alice, {"income": 43000})
    r3 = ledger.append([decision(99), obj3], [PrivateValue(1, p.kind, p.commitment, p.salt, p.value) for p in pv3])
    idx3 = r3.first_index + 1
    assert idx3 == 4
    assert sub1[0] != sub3[0], "same subject, fresh salt: commitments differ"

    # the log holds only commitments
    for idx, (c_in, c_sub) in {1: (inp1[0], sub1[0]), 4: (inp3[0], sub3[0])}.items():
        obj = json.loads(ledger.entry(idx))
        assert (obj["input"], obj["subject"]) == (c_in, c_sub)
    assert alice.encode() not in b"".join(d for _, d in ledger.entries())

    subject_key = canonical_json(alice)
    assert ledger.find_private("subject", subject_key) == [1, 4]
    assert ledger.find_private("subject", canonical_json("subject-BOB")) == [2]
    with pytest.raises(ValueError, match="not indexed by value"):
        ledger.find_private("input", subject_key)
    assert ledger.find_private("subject", canonical_json("subject-CAROL")) == []

    got = ledger.private_values_for([1, 2, 4, 0, 999])
    assert set(got) == {1, 2, 4}
    assert got[1] == {"input": inp1, "subject": sub1}
    assert got[4] == {"input": inp3, "subject": sub3}
    for idx, kinds in got.items():
        entry = json.loads(ledger.entry(idx))
        for kind, (c, salt, value) in kinds.items():
            assert entry[kind] == c
            assert check_commitment(c, salt, value)
            assert not check_commitment(c, salt, value + b" ")
            assert ledger.private_value(c) == (kind, salt, value)
            assert ledger.private_value(c, entry_index=idx) == (kind, salt, value)
            assert ledger.private_value(c, entry_index=idx + 1) is None
    lookups = dict(ledger.store.connection.execute("SELECT kind, COUNT(lookup) FROM private_values GROUP BY kind"))
    assert lookups == {"input": 0, "subject": 3}  # only subjects are indexed by value
    assert json.loads(got[1]["input"][2]) == feats_1

    roots_before = verify_everything(ledger)
    entries_before = list(ledger.entries())
    checkpoints_before = list(ledger.checkpoints())

    assert ledger.erase_private(sub1[0], "GDPR Art. 17 request 2026-0042") is True
    assert ledger.erase_private(inp1[0], "GDPR Art. 17 request 2026-0042", entry_index=2) is False  # not that entry's
    assert ledger.erase_private(inp1[0], "GDPR Art. 17 request 2026-0042", entry_index=1) is True
    assert ledger.erase_private(sub1[0], "again") is False
    assert ledger.erase_private("sha256:" + "00" * 32, "unknown") is False
    with pytest.raises(ValueError):
        ledger.erase_private(sub3[0], "")

    assert ledger.find_private("subject", subject_key) == [4]
    assert ledger.private_value(sub1[0]) is None
    assert ledger.private_value(inp1[0]) is None
    got = ledger.private_values_for([1, 2, 4])
    assert 1 not in got and got[4] == {"input": inp3, "subject": sub3} and got[2]["subject"] == sub2
    row = ledger.store.connection.execute(
        "SELECT kind, entry_index, salt, value, lookup, erased_at, erasure_reason FROM private_values WHERE commitment = ?",
        (sub1[0],),
    ).fetchone()
    assert row[:5] == ("subject", 1, None, None, None)
    assert row[5].endswith("Z") and row[6] == "GDPR Art. 17 request 2026-0042"

    assert ledger.erase_private(sub3[0], "GDPR Art. 17 request 2026-0042") is True
    assert ledger.find_private("subject", subject_key) == []

    # the log keeps every entry and checkpoint, every proof verifies; each erasure is an entry after them
    after = list(ledger.entries())
    assert after[: len(entries_before)] == entries_before
    erasures = [json.loads(data) for _, data in after[len(entries_before):]]
    assert [(e["type"], e["commitment"], e["kind"]) for e in erasures] == [
        ("erasure", sub1[0], "subject"), ("erasure", inp1[0], "input"), ("erasure", sub3[0], "subject")]
    assert all("value" not in e and "salt" not in e for e in erasures)
    assert list(ledger.checkpoints())[: len(checkpoints_before)] == checkpoints_before
    assert verify_everything(ledger)[: len(roots_before)] == roots_before
    res = ledger.append([decision(5)])
    assert ledger.open_checkpoint(res.checkpoint).root_hash == recomputed_root(ledger, res.tree_size)
    verify_everything(ledger)


def test_erased_values_do_not_linger_in_the_database_files(ledger):
    assert ledger.store.connection.execute("PRAGMA secure_delete").fetchone()[0] == 1
    secret = "subject-ERASE-ME-0b9e2d77"
    feats = {"income": 1, "marker": "FEATURES-ERASE-ME-51c0"}
    obj, pvs, inp, sub = _decision_with_private(ledger, 0, secret, feats)
    ledger.append([obj], pvs)
    ledger.append([decision(k) for k in range(1, 40)])  # more writes after it, as in real use

    def files() -> bytes:
        return b"".join(p.read_bytes() for p in sorted(ledger.data_dir.glob("log.db*")) if p.is_file())

    assert secret.encode() in files() and sub[1] in files()  # the check below is not vacuous
    assert ledger.erase_private(sub[0], "erasure request")
    assert ledger.erase_private(inp[0], "erasure request")
    on_disk = files()
    for needle in (secret.encode(), b"FEATURES-ERASE-ME-51c0", sub[1], inp[1]):
        assert needle not in on_disk, f"erased bytes {needle[:20]!r} are still on disk"
    verify_everything(ledger)


def test_private_values_must_open_their_commitment_and_belong_to_their_entry(ledger):
    ledger.append([decision(0)])
    before = snapshot(ledger)
    c, salt, vb = commit({"income": 3})
    c2, salt2, vb2 = commit({"income": 4})
    cases = {
        "wrong value": PrivateValue(0, "input", c, salt, vb + b"0"),
        "wrong salt": PrivateValue(0, "input", c, salt2, vb),
        "short salt": PrivateValue(0, "input", c, salt[:16], vb),
        "commitment not in the entry": PrivateValue(1, "input", c, salt, vb),
        "other commitment": PrivateValue(0, "input", c2, salt2, vb2),
    }
    for name, pv in cases.items():
        with pytest.raises(ValueError):
            ledger.append([decision(1, input=c), decision(2)], [pv])
        assert snapshot(ledger) == before, name
    ledger.append([decision(1, input=c)], [PrivateValue(0, "input", c, salt, vb)])
    before = snapshot(ledger)
    # two values of one kind for one entry: refused by the database, nothing written
    c3, salt3, vb3 = commit({"income": 3})
    with pytest.raises(StorageConflict):
        ledger.append([decision(2, input=c3, note=c)], [PrivateValue(0, "input", c3, salt3, vb3), PrivateValue(0, "input", c, salt, vb)])
    assert snapshot(ledger) == before
    # one commitment (a reused salt) for two entries of a batch: refused, nothing written
    with pytest.raises(ValueError, match="more than once"):
        ledger.append([decision(2, input=c3), decision(3, input=c3)],
                      [PrivateValue(0, "input", c3, salt3, vb3), PrivateValue(1, "input", c3, salt3, vb3)])
    assert snapshot(ledger) == before
    verify_everything(ledger)


# ------------------------------------------------------------------ key file
def test_key_files_are_created_private_and_public(tmp_path):
    lg = Ledger.create(tmp_path / "log", ORIGIN)
    try:
        key_path, vkey_path = tmp_path / "log" / "log.key", tmp_path / "log" / "log.vkey"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        vkey = vkey_path.read_text().strip()
        assert vkey == lg.verifier_key
        verifier = Verifier.parse(vkey)
        assert verifier.name == ORIGIN
        signer = Signer.parse(key_path.read_text())
        assert str(signer.verifier()) == vkey
        assert "PRIVATE" not in vkey and vkey not in key_path.read_text()
        res = lg.append([decision(0)])
        # a checkpoint verifies with nothing but the public key file
        cp = open_checkpoint(res.checkpoint, verifier, ORIGIN)
        assert (cp.tree_size, cp.root_hash) == (1, leaf_hash(canonical_json(decision(0))))
        with pytest.raises(NoteError):
            open_checkpoint(res.checkpoint, generate_signer(ORIGIN).verifier(), ORIGIN)
        assert lg.store.connection.execute("SELECT value FROM meta WHERE key = 'verifier_key'").fetchone()[0] == vkey
    finally:
        lg.close()


@pytest.fixture
def closed_log(tmp_path):
    """A log with two batches, closed; returns its directory."""
    d = tmp_path / "log"
    with Ledger.create(d, ORIGIN) as lg:
        lg.append([decision(k) for k in range(3)])
        lg.append([decision(k) for k in range(3, 7)])
    return d


def _assert_append_refused(d: Path, exc_type, *words):
    with Ledger.open(d) as lg:
        before = snapshot(lg)
        with pytest.raises(exc_type) as info:
            lg.append([decision(7), decision(8)])
        for w in words:
            assert w in str(info.value)
        assert snapshot(lg) == before
        assert not lg.store.connection.in_transaction
    with Ledger.open(d) as lg:
        assert snapshot(lg) == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700, 0o601])
def test_key_readable_by_others_is_refused(closed_log, mode):
    key = closed_log / "log.key"
    key.chmod(mode)
    if mode == 0o700:  # owner-only, executable: fine
        with Ledger.open(closed_log) as lg:
            assert lg.append([decision(7)]).tree_size == 8
        return
    _assert_append_refused(closed_log, KeyFileError, "mode", f"{mode:04o}", "chmod 600")
    key.chmod(0o600)
    with Ledger.open(closed_log) as lg:
        res = lg.append([decision(7)])
        assert res.tree_size == 8
        verify_everything(lg)


def _corruptions(d: Path) -> dict[str, bytes]:
    text = (d / "log.key").read_text()
    other = str(generate_signer(ORIGIN)) + "\n"
    other_name = str(generate_signer("other.example/log")) + "\n"
    return {
        "empty": b"",
        "truncated": text[: len(text) // 2].encode(),
        "truncated by one character": text.strip()[:-1].encode() + b"\n",
        "garbage text": b"hello, world\n",
        "garbage bytes": bytes(range(256)),
        "flipped key bit": (text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:]).encode(),
        "verifier key instead": (d / "log.vkey").read_bytes(),
        "a different valid key": other.encode(),
        "a valid key with another name": other_name.encode(),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "truncated",
        "truncated by one character",
        "garbage text",
        "garbage bytes",
        "flipped key bit",
        "verifier key instead",
        "a different valid key",
        "a valid key with another name",
    ],
)
def test_corrupt_key_file_is_refused(closed_log, kind):
    key = closed_log / "log.key"
    good = key.read_bytes()
    key.write_bytes(_corruptions(closed_log)[kind])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    _assert_append_refused(closed_log, KeyFileError, str(key))
    key.write_bytes(good)
    with Ledger.open(closed_log) as lg:
        assert lg.append([decision(7)]).tree_size == 8


def test_missing_key_or_key_path_that_is_a_directory_is_refused(closed_log):
    key = closed_log / "log.key"
    good = key.read_bytes()
    key.unlink()
    _assert_append_refused(closed_log, KeyFileError, "missing")
    key.mkdir(mode=0o700)
    _assert_append_refused(closed_log, KeyFileError, str(key))
    key.rmdir()
    key.write_bytes(good)
    key.chmod(0o600)
    with Ledger.open(closed_log) as lg:
        assert lg.append([decision(7)]).tree_size == 8


def test_reading_needs_no_key(closed_log):
    (closed_log / "log.key").unlink()
    with Ledger.open(closed_log) as lg:
        assert lg.size == 7
        assert lg.entry(4) == canonical_json(decision(4))
        assert [i for i, _ in lg.entries(2, 5)] == [2, 3, 4]
        out = verify_everything(lg)
        assert [s for s, _ in out] == [0, 3, 7]
        assert lg.root(3) == recomputed_root(lg, 3)
        with pytest.raises(KeyFileError):
            lg.signer()


# ---------------------------------------------------------------- durability
_WRITER = textwrap.dedent(
    """
    import sys
    from glasslog.ledger import Ledger
    d, batch, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    lg = Ledger.open(d)
    i = start
    while True:
        res = lg.append([
            {"type": "decision", "v": 1, "model": "sha256:" + "ab" * 32, "deployment": "credit-eu",
             "time": "2026-11-29T08:00:00Z", "input": "sha256:" + "cd" * 32, "output": {"i": i + k, "score": 0.5}}
            for k in range(batch)
        ])
        i = res.tree_size
        print(res.tree_size, flush=True)
    """
)


def test_sigkill_mid_run_loses_no_committed_batch_and_leaves_no_partial_one(tmp_path):
    d = tmp_path / "log"
    Ledger.create(d, ORIGIN).close()
    batch = 37
    rng = random.Random(1234)
    for round_ in range(4):
        with Ledger.open(d) as lg:
            start = lg.size
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(d), str(batch), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        printed = []
        want = rng.randint(3, 25)
        try:
            while len(printed) < want:
                line = proc.stdout.readline()
                assert line, f"writer died early: {proc.stderr.read()}"
                printed.append(int(line))
            time.sleep(rng.random() * 0.02)
            os.kill(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        printed += [int(x) for x in rest.split()]
        assert printed == [start + batch * (k + 1) for k in range(len(printed))]
        with Ledger.open(d) as lg:
            assert lg.size >= printed[-1], "a batch whose append returned was lost"
            assert lg.size % batch == 0, f"partial batch after SIGKILL: size {lg.size}"
            assert lg.size - printed[-1] <= batch, "at most the batch in flight may have landed"
            assert lg.signed_size() == lg.size
            assert [json.loads(data)["output"]["i"] for _, data in lg.entries()] == list(range(lg.size))
            cp = lg.open_checkpoint(lg.checkpoint())
            assert cp.tree_size == lg.size and cp.root_hash == recomputed_root(lg, lg.size)
            sizes = [r[0] for r in lg.checkpoints()]
            assert sizes == list(range(0, lg.size + 1, batch))
            check_stored_hashes(lg)
            # the killed log keeps working
            res = lg.append([decision(k) for k in range(lg.size, lg.size + batch)])
            assert lg.open_checkpoint(res.checkpoint).root_hash == recomputed_root(lg, res.tree_size)
    with Ledger.open(d) as lg:
        verify_everything(lg, all_inclusions=False)


# --------------------------------------------------------------- concurrency
def _concurrent_writer(data_dir: str, worker: int, batches: int, per_batch: int, barrier, results) -> None:
    try:
        lg = Ledger.open(data_dir)
        barrier.wait(timeout=60)
        got = []
        for b in range(batches):
            res = lg.append([decision(-1, output={"worker": worker, "batch": b, "k": k}) for k in range(per_batch)])
            got.append((res.first_index, res.tree_size, res.checkpoint))
        lg.close()
        results.put((worker, got, None))
    except BaseException as exc:  # noqa: BLE001 -- report it, never leave the parent waiting
        results.put((worker, [], repr(exc)))


def test_two_processes_append_concurrently(tmp_path):
    d = tmp_path / "log"
    Ledger.create(d, ORIGIN).close()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_concurrent_writer, args=(str(d), w, 20, 50, barrier, results)) for w in (0, 1)]
    for p in procs:
        p.start()
    reports = {}
    for _ in procs:
        worker, got, error = results.get(timeout=300)
        assert error is None, f"worker {worker} failed: {error}"
        reports[worker] = got
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    with Ledger.open(d) as lg:
        assert lg.size == lg.signed_size() == 2000
        assert [i for i, _ in lg.entries()] == list(range(2000))
        claimed = set()
        for worker, got in reports.items():
            assert len(got) == 20
            for b, (first, size, note) in enumerate(got):
                assert size - first == 50
                assert claimed.isdisjoint(range(first, size))
                claimed.update(range(first, size))
                # each claimed range holds exactly this worker's batch, in order
                outs = [json.loads(data)["output"] for _, data in lg.entries(first, size)]
                assert outs == [{"worker": worker, "batch": b, "k": k} for k in range(50)]
                assert lg.checkpoint(size) == note
            assert [g[0] for g in got] == sorted(g[0] for g in got)
        assert claimed == set(range(2000))
        rows = list(lg.checkpoints())
        assert [r[0] for r in rows] == list(range(0, 2001, 50))
        leaves = [leaf_hash(data) for _, data in lg.entries()]
        for (s1, r1, n1, _), (s2, r2, n2, _) in itertools.pairwise(rows):
            cp1, cp2 = lg.open_checkpoint(n1), lg.open_checkpoint(n2)
            assert (cp1.tree_size, cp1.root_hash, cp2.tree_size, cp2.root_hash) == (s1, r1, s2, r2)
            assert r2 == root_from_leaf_hashes(leaves[:s2])
            if s1:
                merkle.verify_consistency(s1, s2, r1, r2, lg.consistency_proof(s1, s2))
        check_stored_hashes(lg)
        for i in (0, 49, 50, 999, 1000, 1999):
            merkle.verify_inclusion(i, 2000, leaves[i], lg.inclusion_proof(i), lg.root())


# ----------------------------------------------------- create, open, ranges
def test_create_refuses_an_existing_log(tmp_path, ledger):
    ledger.append([decision(0)])
    before = snapshot(ledger)
    key_before = (ledger.data_dir / "log.key").read_bytes()
    with pytest.raises(LedgerError, match="already holds a log"):
        Ledger.create(ledger.data_dir, ORIGIN)
    with pytest.raises(LedgerError, match="already holds a log"):
        Ledger.create(ledger.data_dir, "other.example/log")
    assert snapshot(ledger) == before
    assert (ledger.data_dir / "log.key").read_bytes() == key_before
    # a directory holding only a key is also refused
    d = tmp_path / "keyonly"
    d.mkdir()
    (d / "log.key").write_text("x")
    with pytest.raises(LedgerError):
        Ledger.create(d, ORIGIN)
    assert not (d / "log.db").exists()


@pytest.mark.parametrize(
    "origin", ["", "has space", "a+b", "tab\there", "new\nline", "nul\x00", "bell\x07", "del\x7f", "nbsp\u00a0x", " leading"]
)
def test_create_refuses_invalid_origins(tmp_path, origin):
    d = tmp_path / "log"
    with pytest.raises(LedgerError, match="origin"):
        Ledger.create(d, origin)
    assert not (d / "log.key").exists() and not (d / "log.db").exists()


def test_open_refuses_a_directory_without_a_log(tmp_path):
    with pytest.raises(LedgerError, match="no log"):
        Ledger.open(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(LedgerError, match="no log"):
        Ledger.open(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    # a SQLite file that is not a glasslog log is refused and left as it was
    (tmp_path / "foreign").mkdir()
    foreign = tmp_path / "foreign" / "log.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    dump = list(conn.iterdump())
    conn.close()
    with pytest.raises(LedgerError):
        Ledger.open(tmp_path / "foreign")
    conn = sqlite3.connect(foreign)
    assert list(conn.iterdump()) == dump
    conn.close()


def test_proofs_outside_the_log_raise_value_error(ledger):
    with pytest.raises(ValueError):
        ledger.inclusion_proof(0)
    assert ledger.consistency_proof(0, 0) == []
    ledger.append([decision(k) for k in range(10)])
    n = ledger.size
    for call in (
        lambda: ledger.inclusion_proof(0, n + 1),
        lambda: ledger.inclusion_proof(n),
        lambda: ledger.inclusion_proof(-1),
        lambda: ledger.inclusion_proof(5, 5),
        lambda: ledger.inclusion_proof(0, -1),
        lambda: ledger.consistency_proof(3, n + 1),
        lambda: ledger.consistency_proof(n + 1),
        lambda: ledger.consistency_proof(-1),
        lambda: ledger.consistency_proof(6, 5),
        lambda: ledger.root(n + 1),
        lambda: ledger.root(-1),
    ):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(IndexError):
        ledger.entry(n)
    with pytest.raises(IndexError):
        ledger.leaf_hash(n)
    with pytest.raises(LookupError):
        ledger.checkpoint(5)
    with pytest.raises(LookupError):
        ledger.checkpoint_covering(n)
    # in-range proofs at the edges still work
    leaves = [leaf_hash(d) for _, d in ledger.entries()]
    merkle.verify_inclusion(n - 1, n, leaves[-1], ledger.inclusion_proof(n - 1, n), ledger.root())
    merkle.verify_inclusion(0, 1, leaves[0], ledger.inclusion_proof(0, 1), ledger.root(1))
    assert ledger.inclusion_proof(0, 1) == []
    assert ledger.consistency_proof(n) == []


def test_a_log_of_the_first_release_is_migrated_on_open(tmp_path):
    """Private values of the first release (keyed by commitment) move to the (entry index, kind) table, nothing lost."""
    data_dir = tmp_path / "old"
    ledger = Ledger.create(data_dir, "example.org/old")
    obj, pvs, inp, sub = _decision_with_private(ledger, 0, "subject-OLD-1", {"income": 7})
    ledger.append([obj], pvs)
    root, size = ledger.root(), ledger.size
    conn = ledger.store.connection
    rows = conn.execute("SELECT commitment, kind, entry_index, salt, value, lookup FROM private_values").fetchall()
    # rebuild the table as the first release wrote it (every kind with a lookup hash)
    conn.execute("DROP TABLE private_values")
    conn.execute("CREATE TABLE private_values (commitment TEXT PRIMARY KEY, kind TEXT NOT NULL, entry_index INTEGER NOT NULL,"
                 " salt BLOB, value BLOB, lookup BLOB, erased_at TEXT, erasure_reason TEXT)")
    conn.execute("CREATE INDEX private_values_lookup ON private_values(lookup)")
    conn.execute("CREATE INDEX private_values_entry ON private_values(entry_index)")
    conn.executemany("INSERT INTO private_values(commitment, kind, entry_index, salt, value, lookup) VALUES (?, ?, ?, ?, ?, ?)",
                     [(c, k, i, s, v, lk if lk is not None else b"\x01" * 32) for c, k, i, s, v, lk in rows])
    ledger.close()

    reopened = Ledger.open(data_dir)
    sql = reopened.store.connection.execute("SELECT sql FROM sqlite_master WHERE name = 'private_values'").fetchone()[0]
    assert "WITHOUT ROWID" in sql and "PRIMARY KEY (entry_index, kind)" in sql
    assert reopened.private_values_for([0]) == {0: {"input": inp, "subject": sub}}
    assert reopened.find_private("subject", canonical_json("subject-OLD-1")) == [0]
    assert reopened.store.connection.execute("SELECT COUNT(lookup) FROM private_values WHERE kind = 'input'").fetchone()[0] == 0
    assert (reopened.root(), reopened.size) == (root, size)
    names = {r[0] for r in reopened.store.connection.execute("SELECT name FROM sqlite_master")}
    assert "private_values_first_release" not in names and "private_values_lookup" not in names


def test_data_dir_database_and_receipts_are_private_from_creation(tmp_path, monkeypatch):
    import glasslog.storage.sqlite.store as sqlite_store
    from glasslog.capture import receipt as make_receipt

    monkeypatch.setattr(os, "umask", os.umask)  # restored after the test
    old = os.umask(0o022)  # the usual default: files 0644, directories 0755 unless created otherwise
    try:
        lg = Ledger.create(tmp_path / "d", ORIGIN)
        lg.append([decision(0)])
        for name in ("log.db", "log.db-wal"):
            path = tmp_path / "d" / name
            if path.exists():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "d" / "artifacts").stat().st_mode) == 0o700
        r = make_receipt(lg, 0)
        r.save(tmp_path / "r.json")
        assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o600
        (tmp_path / "old.json").write_text("{}")  # an existing 0644 file is made private when a receipt overwrites it
        r.save(tmp_path / "old.json")
        assert stat.S_IMODE((tmp_path / "old.json").stat().st_mode) == 0o600
        lg.close()
    finally:
        os.umask(old)
    os.chmod(tmp_path / "d" / "log.db", 0o644)
    with pytest.raises(LedgerError, match="^[^(]*log.db has mode 0644.*chmod 600"):
        Ledger.open(tmp_path / "d")
    monkeypatch.setenv(sqlite_store.ALLOW_SHARED_ENV, "1")
    Ledger.open(tmp_path / "d").close()


def test_whole_log_audit_of_a_log_being_written_reports_nothing(tmp_path):
    """The audit of a live log (another writer appending throughout) must not take growth for tampering."""
    import threading

    from glasslog.verify import audit_log

    Ledger.create(tmp_path / "live", ORIGIN).close()
    stop = threading.Event()

    def writer():
        with Ledger.open(tmp_path / "live") as w:
            i = 0
            while not stop.is_set():
                w.append([decision(i + k) for k in range(37)])
                i += 37

    with Ledger.open(tmp_path / "live") as lg:
        lg.append([decision(k) for k in range(500)])
        th = threading.Thread(target=writer)
        th.start()
        try:
            while lg.size <= 500:  # the writer is under way
                time.sleep(0.001)
            reports = [audit_log(lg, check_entries=False) for _ in range(5)]  # the test entries name no registered model
            grown = lg.size
        finally:
            stop.set()
            th.join()
        assert [r.problems for r in reports] == [[]] * 5
        assert all(r.ok for r in reports) and reports[0].tree_size > 500 and grown > reports[0].tree_size
