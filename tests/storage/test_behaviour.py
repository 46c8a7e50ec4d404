"""The storage behaviour suite: one set of guarantees, checked on every back end (``store_kind``: SQLite, PostgreSQL).

Every check recomputes what it compares against: roots from the entry bytes
(``merkle.root_from_leaf_hashes``), proofs with the RFC 9162 verifiers,
checkpoints opened with the log's verifier key, "nothing was written" as
everything observable through the interface being equal before and after.
"""

from __future__ import annotations

import json
import random
import threading

import pytest

from glasslog.access.keys import AuthError, KeyStore, new_receipt_token, store_receipt_tokens
from glasslog.ledger import Ledger, LedgerError, PrivateValue, canonical_json, commit, merkle
from glasslog.ledger.group_commit import commit_batches
from glasslog.ledger.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from glasslog.server.index import SearchIndex
from glasslog.storage import ApiKeyRow, StorageConflict
from glasslog.verify import audit_log

T0 = "2026-11-29T08:00:00Z"
MODEL = "sha256:" + "ab" * 32
MODEL_2 = "sha256:" + "ef" * 32
INPUT = "sha256:" + "cd" * 32
_DROP = object()


def model_entry(model: str = MODEL) -> dict:
    return {"type": "model", "v": 1, "event": "register", "model": model, "time": T0, "card": {}, "status": "active"}


def decision(i: int, **fields) -> dict:
    obj = {"type": "decision", "v": 1, "model": MODEL, "deployment": "credit-eu", "time": T0, "input": INPUT,
           "output": {"i": i, "score": 0.5}}
    obj.update(fields)
    return {k: v for k, v in obj.items() if v is not _DROP}


def leaves_of(lg: Ledger) -> list[bytes]:
    return [leaf_hash(data) for _, data in lg.entries()]


def observe(lg: Ledger) -> tuple:
    """Everything a batch could have written, as seen through the storage interface."""
    s = lg.store
    n = lg.size + 8
    return (
        lg.size, s.size(), lg.signed_size(), lg.root(),
        [c[:3] for c in lg.checkpoints()],
        list(lg.typed_entries(0, n)),
        [list(s.stored_hashes(level, 0, n)) for level in range(8)],
        lg.private_values_for(range(n)), lg.erased_for(range(n)),
        s.api_keys(),
        [s.receipt_token_hash(i) for i in range(n)],
    )


# ------------------------------------------------------------------ appends, roots, proofs
def test_appends_roots_and_sizes(store_kind):
    lg = store_kind
    assert (lg.size, lg.signed_size(), lg.root()) == (0, 0, merkle.EMPTY_ROOT)
    rng = random.Random(1)
    leaves: list[bytes] = []
    for b in range(40):
        batch = [decision(len(leaves) + k) for k in range(rng.choice([1, 1, 2, 3, 7, 31, 32, 33, 64]))]
        result = lg.append(batch)
        assert result.first_index == len(leaves)
        leaves += [leaf_hash(canonical_json(e)) for e in batch]
        assert result.tree_size == lg.size == lg.store.size() == lg.signed_size() == len(leaves)
        assert lg.root() == root_from_leaf_hashes(leaves)
        assert lg.open_checkpoint(result.checkpoint).root_hash == lg.root()
    for k in range(len(leaves) + 1):
        assert lg.root(k) == root_from_leaf_hashes(leaves[:k]), k
    assert [lg.leaf_hash(i) for i in range(len(leaves))] == leaves


def test_inclusion_and_consistency_proofs_verify(store_kind):
    lg = store_kind
    rng = random.Random(2)
    while lg.size < 600:
        lg.append([decision(lg.size + k) for k in range(rng.randint(1, 40))])
    leaves = leaves_of(lg)
    roots = {n: root_from_leaf_hashes(leaves[:n]) for n in range(len(leaves) + 1)}
    for n in (1, 2, 3, 7, 8, 31, 32, 33, 255, 256, 257, 511, 512, 513, lg.size):
        assert lg.root(n) == roots[n]
        indexes = range(n) if n <= 40 else rng.sample(range(n), 40)
        for i in indexes:
            verify_inclusion(i, n, leaves[i], lg.inclusion_proof(i, n), roots[n])
        batch = lg.inclusion_proofs(list(indexes), n)
        assert batch == {i: lg.inclusion_proof(i, n) for i in indexes}
        for m in ([*range(1, n + 1)] if n <= 40 else [1, n - 1, n, *rng.sample(range(1, n), 20)]):
            verify_consistency(m, n, roots[m], roots[n], lg.consistency_proof(m, n))


def test_proofs_while_the_log_grows(store_kind, open_ledger):
    """A reader's cached hashes (PostgreSQL keeps the tree's right edge in memory) never stand in for newer ones."""
    writer, reader = store_kind, open_ledger()
    rng = random.Random(3)
    leaves: list[bytes] = []
    for _ in range(60):
        batch = [canonical_json(decision(len(leaves) + k)) for k in range(rng.choice([1, 2, 5, 17, 40]))]
        writer.append(batch)
        leaves += [leaf_hash(e) for e in batch]
        n = len(leaves)
        root = root_from_leaf_hashes(leaves)
        assert reader.root(n) == root
        for i in {0, n - 1, n // 2, rng.randrange(n)}:
            verify_inclusion(i, n, leaves[i], reader.inclusion_proof(i, n), root)
        m = rng.randint(0, n)
        verify_consistency(m, n, root_from_leaf_hashes(leaves[:m]), root, reader.consistency_proof(m, n))


def test_tiles_and_stored_hashes(store_kind):
    lg = store_kind
    while lg.size < 600:
        lg.append([decision(lg.size + k) for k in range(100)])
    leaves = leaves_of(lg)
    assert lg.tile(0, 0) == b"".join(leaves[:256])
    assert lg.tile(0, 2, 600 - 512) == b"".join(leaves[512:600])
    with pytest.raises(LookupError):
        lg.tile(0, 2, 600 - 511)
    level1 = [merkle.node_hash(leaves[i], leaves[i + 1]) for i in range(0, 600, 2)]
    assert [h for _, h in lg.stored_hashes(1, 0, 300)] == level1
    assert [i for i, _ in lg.stored_hashes(0, 100, 140)] == list(range(100, 140))
    assert list(lg.stored_hashes(0, 600, 700)) == []


def test_entries_are_stored_byte_for_byte(store_kind):
    lg = store_kind
    objs = [decision(0, deployment="crédit-ü 😀 ümlaut", output={"text": "a\"b\\c\u0001\u2028", "n": -0.0001}),
            decision(1, output={"long": "x" * 20000}),
            decision(2, output=[1, 2.5, None, True, {"z": 1, "a": [{}]}])]
    raw = [canonical_json(o) for o in objs]
    lg.append([model_entry()])
    lg.append(raw)
    assert [lg.entry(i) for i in range(1, 4)] == raw
    assert [d for _, d in lg.entries(1, 4)] == raw
    assert [(i, t) for i, t, _ in lg.typed_entries()] == [(0, "model"), (1, "decision"), (2, "decision"), (3, "decision")]
    assert [(i, d) for i, _, d in lg.entries_of_types(["decision"], 2)] == [(2, raw[1]), (3, raw[2])]
    assert [i for i, _ in lg.entries_of_type("model")] == [0]
    assert [i for i, _, _ in lg.entries_of_types(["model", "decision"], 0, 2)] == [0, 1]
    assert all(isinstance(lg.store.entry(i), bytes) for i in range(4))
    assert lg.store.entry(4) is None
    with pytest.raises(IndexError):
        lg.entry(4)
    assert audit_log(lg).ok


# ------------------------------------------------------------------ atomicity
def test_a_failing_within_leaves_nothing(store_kind):
    lg = store_kind
    KeyStore(lg).create("operator", "Bank operations")
    lg.append([model_entry(), decision(0)])
    before = observe(lg)
    c, salt, value = commit({"age": 41})

    def within(tx, first):
        store_receipt_tokens(tx, [new_receipt_token(first)])
        tx.put_api_key(ApiKeyRow("0123456789ab", "someone", "researcher", b"h" * 32, (), T0))
        raise RuntimeError("the application changed its mind")

    with pytest.raises(RuntimeError):
        lg.append([decision(1, input=c)], [PrivateValue(0, "input", c, salt, value)], within=within)
    assert observe(lg) == before
    # the next batch goes where the failed one would have gone, on the right tree
    result = lg.append([decision(2)])
    assert result.first_index == before[0]
    assert lg.root() == root_from_leaf_hashes(leaves_of(lg))


def test_an_invalid_private_value_leaves_nothing(store_kind):
    lg = store_kind
    lg.append([decision(0)])
    before = observe(lg)
    c, salt, value = commit({"age": 41})
    with pytest.raises(ValueError):
        lg.append([decision(1, input=c)], [PrivateValue(0, "input", c, bytes(32), value)])
    with pytest.raises(ValueError):
        lg.append([decision(1)], [PrivateValue(0, "input", c, salt, value)])  # the entry does not hold it
    assert observe(lg) == before


def test_a_storage_conflict_inside_the_batch_leaves_nothing(store_kind):
    lg = store_kind
    tokens = {}

    def first_tokens(tx, first):
        tokens[first] = new_receipt_token(first)
        store_receipt_tokens(tx, [tokens[first]])

    lg.append([decision(0)], within=first_tokens)
    before = observe(lg)

    def duplicate(tx, first):
        store_receipt_tokens(tx, [new_receipt_token(first), new_receipt_token(0)])  # entry 0 has a token already

    with pytest.raises(StorageConflict):
        lg.append([decision(1)], within=duplicate)
    assert observe(lg) == before
    assert KeyStore(lg).authenticate(tokens[0]).entry_index == 0


def test_put_checkpoint_is_a_compare_and_swap(store_kind):
    lg = store_kind
    lg.append([decision(0), decision(1)])
    before = observe(lg)
    note = lg.checkpoint()
    with pytest.raises(StorageConflict):  # a checkpoint of this size exists
        with lg.store.write() as tx:
            tx.put_checkpoint(tx.tree_size, lg.root(), note, T0)
    entry = canonical_json(decision(2))
    with pytest.raises(StorageConflict):  # the second checkpoint of one batch: the first moved the latest
        with lg.store.write() as tx:
            n = tx.tree_size
            parts = merkle.root_plan(n)
            hashes = tx.hashes(parts)
            step = merkle.integrate(n, [(lv, hashes[(lv, i)]) for lv, i in parts], [leaf_hash(entry)])
            tx.write_batch(n, [("decision", entry)], step.levels, step.first, [])
            tx.put_checkpoint(n + 1, step.root, note, T0)
            tx.put_checkpoint(n + 1, step.root, note, T0)
    assert observe(lg) == before


def test_a_second_writer_does_not_trust_its_cached_frontier(store_kind, open_ledger):
    a, b = store_kind, open_ledger()
    b.append([model_entry()])  # b caches its frontier at size 1
    for k in range(3):
        a.append([decision(10 + k), decision(20 + k)])
    result = b.append([decision(99)])
    assert result.first_index == 7 and result.tree_size == 8
    for lg in (a, b):
        assert lg.root() == root_from_leaf_hashes(leaves_of(lg))
        assert lg.open_checkpoint(lg.checkpoint()).root_hash == lg.root()
    a.append([decision(100)])
    assert audit_log(b).ok and b.size == 9


def test_concurrent_writers(store_kind, open_ledger):
    store_kind.append([model_entry()])
    writers = [open_ledger() for _ in range(4)]
    acknowledged: dict[int, list[tuple[range, list[bytes]]]] = {w: [] for w in range(4)}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run(w: int) -> None:
        try:
            start.wait()
            rng = random.Random(w)
            for k in range(50):
                batch = [canonical_json(decision(w * 1000 + k * 10 + j)) for j in range(rng.randint(1, 3))]
                acknowledged[w].append((writers[w].append(batch).indexes, batch))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    lg = store_kind
    seen = [0]
    for w in range(4):
        assert len(acknowledged[w]) == 50
        for indexes, batch in acknowledged[w]:
            assert [lg.entry(i) for i in indexes] == batch
            seen.extend(indexes)
    assert sorted(seen) == list(range(lg.size))  # no gaps, no duplicates
    leaves = leaves_of(lg)
    sizes = []
    for size, root, note, _ in lg.checkpoints():
        assert root == root_from_leaf_hashes(leaves[:size]) == lg.open_checkpoint(note).root_hash
        sizes.append(size)
    assert sizes == sorted(set(sizes)) and sizes[-1] == lg.size and len(sizes) == 1 + 1 + 200
    report = audit_log(lg)
    assert report.ok, report.problems


# ------------------------------------------------------------------ checkpoints
def test_checkpoints_by_size_and_covering(store_kind):
    lg = store_kind
    sizes = [0]
    for n in (3, 1, 5, 2):
        sizes.append(lg.append([decision(sizes[-1] + k) for k in range(n)]).tree_size)
    assert sizes == [0, 3, 4, 9, 11]
    listed = list(lg.checkpoints())
    assert [c[0] for c in listed] == sizes
    for size, root, note, created_at in listed:
        assert lg.checkpoint(size) == note
        cp = lg.open_checkpoint(note)
        assert (cp.tree_size, cp.root_hash) == (size, root) and root == lg.root(size)
        assert created_at.endswith("Z")
    assert lg.checkpoint() == listed[-1][2]
    with pytest.raises(LookupError):
        lg.checkpoint(5)
    expected = {0: 3, 2: 3, 3: 4, 4: 9, 8: 9, 9: 11, 10: 11}
    for index, size in expected.items():
        assert lg.open_checkpoint(lg.checkpoint_covering(index)).tree_size == size
    with pytest.raises(LookupError):
        lg.checkpoint_covering(11)


# ------------------------------------------------------------------ private values and erasure
def _private_decisions(lg: Ledger, subjects: list[str]) -> list[dict]:
    """Append one decision per subject with private input, subject and output; returns what was committed."""
    rows, entries, private = [], [], []
    for k, subject in enumerate(subjects):
        opened = {kind: commit(v) for kind, v in
                  (("input", {"age": 30 + k}), ("subject", subject), ("output", {"label": "deny" if k % 2 else "approve"}))}
        entries.append(decision(k, input=opened["input"][0], subject=opened["subject"][0], output=_DROP,
                                output_commitment=opened["output"][0]))
        private += [PrivateValue(k, kind, c, s, v) for kind, (c, s, v) in opened.items()]
        rows.append(opened)
    first = lg.append(entries, private).first_index
    for k, row in enumerate(rows):
        row["index"] = first + k
    return rows


def test_private_values_and_erasure(store_kind):
    lg = store_kind
    lg.append([model_entry()])
    rows = _private_decisions(lg, ["alice", "bob", "alice"])
    idx = [r["index"] for r in rows]
    assert idx == [1, 2, 3]
    for r in rows:
        for kind in ("input", "subject", "output"):
            c, salt, value = r[kind]
            assert lg.private_value(c, r["index"]) == (kind, salt, value)
            assert lg.private_value(c) == (kind, salt, value)
    for_ = lg.private_values_for(idx + [0, 99])
    assert set(for_) == set(idx)
    assert for_[2]["subject"] == rows[1]["subject"]
    between = list(lg.private_values_between(0, 4, ["output", "input"]))
    assert between == [(r["index"], kind, r[kind][2]) for r in rows for kind in ("input", "output")]
    assert list(lg.private_values_between(2, 3, ["subject"])) == [(2, "subject", rows[1]["subject"][2])]
    alice = canonical_json("alice")
    assert lg.find_private("subject", alice) == [1, 3]
    assert lg.find_private("subject", canonical_json("carol")) == []
    with pytest.raises(ValueError):
        lg.find_private("input", alice)

    c_subject = rows[2]["subject"][0]
    assert lg.erasure_of(c_subject) is None
    assert lg.erase_private(c_subject, "GDPR Art. 17 request", entry_index=3) is True
    assert lg.erase_private(c_subject, "again", entry_index=3) is False
    assert lg.erase_private("sha256:" + "00" * 32, "unknown") is False
    c_input = rows[0]["input"][0]
    assert lg.erase_private(c_input, "by commitment only") is True
    assert lg.private_value(c_subject, 3) is None and lg.private_value(c_subject) is None
    assert lg.private_value(c_input) is None
    assert lg.find_private("subject", alice) == [1]
    assert lg.erased_for(idx) == {1: {"input"}, 3: {"subject"}}
    at, reason = lg.erasure_of(c_subject)
    assert reason == "GDPR Art. 17 request" and at.endswith("Z")
    assert set(lg.private_values_for([3])[3]) == {"input", "output"}
    assert [(i, k) for i, k, _ in lg.private_values_between(0, 4, ["input"])] == [(2, "input"), (3, "input")]
    # the log itself is untouched
    assert audit_log(lg).ok
    assert lg.root() == root_from_leaf_hashes(leaves_of(lg))


def test_erasing_an_output_erases_the_read_models_label(store_kind, open_ledger):
    lg = store_kind
    lg.append([model_entry()])
    rows = _private_decisions(lg, ["alice", "bob"])  # outputs: approve, deny
    lg.append([decision(5, deployment="public-eu", output={"label": "deny"})])
    index = SearchIndex(lg)
    assert index.refresh() == 4
    assert index.search(label='"deny"') == [2, 3]
    assert index.search(label='"approve"') == [1]
    lg.erase_private(rows[1]["output"][0], "subject asked", entry_index=2)
    assert index.search(label='"deny"') == [3]
    assert index.decisions_at([2])[2].label is None
    other = SearchIndex(open_ledger())  # another process's view of the same read model
    assert other.search(label='"deny"') == [3]
    assert index.label_counts("credit-eu") == {'"approve"': 1, "null": 1}


def test_read_model(store_kind, open_ledger):
    lg = store_kind
    lg.append([model_entry(), model_entry(MODEL_2)])
    times = ["2026-11-29T08:00:00Z", "2026-11-29T09:30:00.5Z", "2026-11-30T10:00:00Z", "2026-12-01T00:00:00Z"]
    batch = [decision(k, time=t, model=MODEL if k % 2 == 0 else MODEL_2, output={"label": k % 3},
                      **({"subject": INPUT} if k < 2 else {})) for k, t in enumerate(times)]
    lg.append(batch)
    index = SearchIndex(lg)
    assert index.refresh() == 6
    lg.append([{"type": "outcome", "v": 1, "decision": 2, "outcome": 1, "time": times[3]},
               {"type": "outcome", "v": 1, "decision": 2, "outcome": 0, "time": times[3]},
               decision(9, deployment="other", time=times[0], output={"label": 0})])
    assert index.search() == [2, 3, 4, 5, 8]
    assert index.search(after=2, limit=2) == [3, 4]
    assert index.search(model=MODEL_2) == [3, 5]
    assert index.search(deployments=["credit-eu"]) == [2, 3, 4, 5]
    assert index.search(deployments=[]) == []
    assert index.search(deployments=["other", "nowhere"]) == [8]
    assert index.search(since="2026-11-29T09:30:00.5Z", until="2026-12-01T00:00:00Z") == [3, 4]
    assert index.search(label="0") == [2, 5, 8]
    assert index.outcomes_of(2) == [6, 7] and index.outcomes_of(3) == []
    stats = index.stats("credit-eu")
    assert stats == {"decisions": 4, "decisions_with_subject": 2, "outcomes": 2, "first": times[0], "last": times[3],
                     "decisions_per_day": {"2026-11-29": 2, "2026-11-30": 1, "2026-12-01": 1}}
    assert index.label_counts("credit-eu") == {"0": 2, "1": 1, "2": 1}
    assert index.index_of_leaf(lg.leaf_hash(6)) == 6
    assert index.index_of_leaf(b"\x00" * 32) is None
    assert [d.idx for d in index.decisions_between(3, 6)] == [3, 4, 5]
    assert {i: d.has_subject for i, d in index.decisions_at([2, 3, 4, 6]).items()} == {2: True, 3: True, 4: False}
    # a read model add is refused when another process indexed past its start
    model = lg.store.read_model
    assert model.indexed_upto() == 9
    assert model.add(5, 9, [], [], []) is False
    other = SearchIndex(open_ledger())
    assert other.refresh() == 9 and other.search(label="0") == [2, 5, 8]


# ------------------------------------------------------------------ side tables
def test_api_keys_receipt_tokens_and_secrets(store_kind):
    lg = store_kind
    keys = KeyStore(lg)
    researcher, token = keys.create("researcher", "University lab")
    developer, dev_token = keys.create("developer", "Downstream developer", ["credit-eu", "other"])
    assert [k.key_id for k in keys.list()] == sorted([researcher.key_id, developer.key_id],
                                                       key=lambda k: [x.created_at for x in keys.list()
                                                                      if x.key_id == k][0])
    p = keys.authenticate(dev_token)
    assert (p.role, p.name, p.deployments) == ("developer", "Downstream developer", ("credit-eu", "other"))
    assert keys.authenticate(token).role == "researcher"
    revoked = keys.revoke(researcher.key_id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthError):
        keys.authenticate(token)
    with pytest.raises(LookupError):
        keys.revoke(researcher.key_id)
    assert lg.store.api_key(researcher.key_id).revoked_at == revoked.revoked_at
    assert lg.store.api_key("ffffffffffff") is None
    assert [json.loads(d)["event"] for _, _, d in lg.entries_of_types(["key"])] == ["issue", "issue", "revoke"]

    issued = []

    def tokens(tx, first):
        issued.extend(new_receipt_token(first + k) for k in range(2))
        store_receipt_tokens(tx, issued)

    result = lg.append([decision(0), decision(1)], within=tokens)
    for k, t in enumerate(issued):
        assert keys.authenticate(t).entry_index == result.first_index + k
    with pytest.raises(AuthError):
        keys.authenticate(issued[0][:-1] + ("A" if issued[0][-1] != "A" else "B"))
    assert lg.store.receipt_token_hash(result.first_index + 5) is None
    assert lg.store.legacy_receipt_token(b"\x00" * 32) is None

    assert lg.store.secret("pseudonym", b"first") == b"first"
    assert lg.store.secret("pseudonym", b"second") == b"first"
    assert lg.store.secret("other", b"x") == b"x"
    assert lg.store.secrets() == {"pseudonym": b"first", "other": b"x"}
    assert list(lg.store.receipt_tokens())[0][0] == result.first_index


def test_witness_cosignatures(store_kind):
    s = store_kind.store
    assert (s.cosignatures(3), s.witness_sizes(), s.latest_cosigned_size(0), s.cosigned_sizes()) == ([], {}, None, [])
    s.put_cosignature(3, "w2+0000aaaa+key2", "— w2 sig-a", "2026-12-05T10:00:00Z")
    s.put_cosignature(3, "w1+0000bbbb+key1", "— w1 sig-b", "2026-12-05T10:00:01Z")
    s.put_cosignature(7, "w1+0000bbbb+key1", "— w1 sig-c", "2026-12-05T10:00:02Z")
    s.put_cosignature(3, "w2+0000aaaa+key2", "— w2 sig-d", "2026-12-05T10:00:03Z")  # replaces the first
    assert s.cosignatures(3) == [("w1+0000bbbb+key1", "— w1 sig-b", "2026-12-05T10:00:01Z"),
                                 ("w2+0000aaaa+key2", "— w2 sig-d", "2026-12-05T10:00:03Z")]
    assert s.witness_sizes() == {"w1+0000bbbb+key1": 7, "w2+0000aaaa+key2": 3}
    assert (s.latest_cosigned_size(0), s.latest_cosigned_size(4), s.latest_cosigned_size(8)) == (7, 7, None)
    assert s.cosigned_sizes() == [3, 7]


# ------------------------------------------------------------------ opening and creating
def test_create_refuses_a_store_holding_a_log_and_open_needs_one(store_kind, store_url, tmp_path):
    with pytest.raises(LedgerError, match="already holds a log"):
        Ledger.create(store_kind.data_dir, "other.example/log", store=store_url)
    if store_url is not None:  # another data directory, same database
        with pytest.raises(LedgerError, match="already holds"):
            Ledger.create(tmp_path / "elsewhere", "other.example/log", store=store_url)
        assert not (tmp_path / "elsewhere" / "log.key").exists()
    else:
        with pytest.raises(LedgerError, match="no log"):
            Ledger.open(tmp_path / "nothing-here")
        assert not (tmp_path / "nothing-here" / "log.db").exists()
    with Ledger.open(store_kind.data_dir, store=store_url) as again:
        assert again.origin == store_kind.origin and again.verifier_key == store_kind.verifier_key


# ------------------------------------------------------------------ copying a log to another back end
def test_copy_log_to_another_store(store_kind, tmp_path):
    from glasslog.storage import create_store
    from glasslog.storage.migrate import copy_log

    lg = store_kind
    keys = KeyStore(lg)
    _, token = keys.create("supervisor", "Authority")
    revoked, _ = keys.create("researcher", "Lab")
    keys.revoke(revoked.key_id)
    receipts = []
    lg.append([model_entry()], within=lambda tx, first: None)
    rows = _private_decisions(lg, ["alice", "bob", "carol"])

    def with_token(tx, first):
        receipts.append(new_receipt_token(first))
        store_receipt_tokens(tx, receipts[-1:])

    for k in range(30):
        lg.append([decision(100 + k)], within=with_token)
    span = bytes(range(24))
    otel_index = lg.append([decision(200)], within=lambda tx, first: tx.put_ingested([("otel", span, first)])).first_index
    lg.erase_private(rows[1]["subject"][0], "asked", entry_index=rows[1]["index"])
    lg.store.secret("pseudonym", b"k" * 32)
    lg.store.put_cosignature(lg.size, "w1+0000bbbb+key1", "— w1 sig", "2026-12-05T10:00:00Z")

    meta = {k: v for k, v in lg.store.meta().items() if k != "index_upto"}
    (tmp_path / "copy").mkdir()
    target = create_store(None, tmp_path / "copy", meta)  # a SQLite file, from either back end
    summary = copy_log(lg, target)
    assert {k: summary[k] for k in ("entries", "checkpoints", "private_values", "erased_private_values", "api_keys",
                                    "receipt_tokens", "secrets", "ingested", "cosignatures")} == {
        "entries": lg.size, "checkpoints": len(list(lg.checkpoints())), "private_values": 8, "erased_private_values": 1,
        "api_keys": 2, "receipt_tokens": 30, "secrets": 1, "ingested": 1, "cosignatures": 1}
    copy = Ledger(lg.data_dir, target)
    assert copy.root() == lg.root() and summary["root"] == lg.root().hex()
    assert list(copy.checkpoints()) == list(lg.checkpoints())
    assert list(copy.typed_entries()) == list(lg.typed_entries())
    assert copy.private_values_for(range(lg.size)) == lg.private_values_for(range(lg.size))
    assert copy.erased_for(range(lg.size)) == {rows[1]["index"]: {"subject"}}
    assert copy.erasure_of(rows[1]["subject"][0]) == lg.erasure_of(rows[1]["subject"][0])
    assert copy.find_private("subject", canonical_json("alice")) == [rows[0]["index"]]
    assert copy.find_private("subject", canonical_json("bob")) == []
    copied_keys = KeyStore(copy)
    assert copied_keys.authenticate(token).role == "supervisor"
    assert [copied_keys.authenticate(t).entry_index for t in receipts] == [KeyStore(lg).authenticate(t).entry_index
                                                                          for t in receipts]
    assert target.api_key(revoked.key_id).revoked_at == lg.store.api_key(revoked.key_id).revoked_at
    assert target.secret("pseudonym", b"other") == b"k" * 32
    assert list(target.ingested_rows()) == list(lg.store.ingested_rows()) == [("otel", span, otel_index)]
    assert target.ingested("otel", [span]) == {span: otel_index}
    assert target.cosignatures(lg.size) == [("w1+0000bbbb+key1", "— w1 sig", "2026-12-05T10:00:00Z")]
    assert audit_log(copy).ok
    # the copy appends where the source would have: same signer key, same tree
    copy.append([decision(999)])
    assert copy.root() == root_from_leaf_hashes(leaves_of(copy))
    with pytest.raises(LedgerError, match="already holds a log"):
        copy_log(lg, target)
    copy.close()


def test_a_failing_batch_of_a_group_commit_fails_alone(store_kind):
    """Each batch of a group is written in a savepoint: a statement the database refuses (which, on PostgreSQL,
    aborts the transaction up to the savepoint) or a raising callback rolls back that batch alone."""
    lg = store_kind
    tokens = {}

    def token(tx, first):
        tokens[first] = new_receipt_token(first)
        store_receipt_tokens(tx, [tokens[first]])

    lg.append([model_entry()], within=token)
    c, salt, value = commit("dora")

    def duplicate(tx, first):
        store_receipt_tokens(tx, [new_receipt_token(first), new_receipt_token(0)])  # entry 0 has a token already

    def refuse(tx, first):
        raise ValueError("refused")

    batches = [lg._prepare([decision(1), decision(2)], (), token),
               lg._prepare([decision(3, subject=c)], [PrivateValue(0, "subject", c, salt, value)], duplicate),
               lg._prepare([decision(4)], (), token),
               lg._prepare([decision(5)], (), refuse),
               lg._prepare([decision(6)], (), token)]
    commit_batches(lg, batches)
    assert isinstance(batches[1].error, StorageConflict) and isinstance(batches[3].error, ValueError)
    good = [batches[k].outcome() for k in (0, 2, 4)]
    assert [list(r.indexes) for r in good] == [[1, 2], [3], [4]]
    assert [json.loads(d)["output"]["i"] for _, d in lg.entries(1, lg.size)] == [1, 2, 4, 6]
    assert lg.find_private("subject", canonical_json("dora")) == []
    assert sorted(tokens) == [0, 1, 3, 4]
    keys = KeyStore(lg)
    for first in (0, 1, 3, 4):
        assert keys.authenticate(tokens[first]).entry_index == first
    assert lg.store.receipt_token_hash(5) is None
    assert lg.root() == root_from_leaf_hashes(leaves_of(lg))
    assert audit_log(lg).ok
    assert lg.append([decision(7)]).first_index == 5
