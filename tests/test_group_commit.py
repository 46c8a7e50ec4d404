"""Group commit: concurrent appends of one process's threads share a transaction and a checkpoint,
each caller gets its own indexes only once they are durable, and one caller's failure never fails another's."""

from __future__ import annotations

import json
import threading

import pytest

from glasslog.ledger import GroupCommit, Ledger, merkle

ORIGIN = "test.example/group-commit"
MODEL = "sha256:" + "ab" * 32
INPUT = "sha256:" + "cd" * 32


def decision(thread: int, i: int) -> dict:
    return {"type": "decision", "v": 1, "model": MODEL, "deployment": "credit-eu", "time": "2026-12-05T08:00:00Z",
            "input": INPUT, "output": {"thread": thread, "i": i}}


@pytest.fixture
def log_dir(tmp_path):
    Ledger.create(tmp_path / "log", ORIGIN).close()
    return tmp_path / "log"


def run_threads(log_dir, commit: GroupCommit, n_threads: int, per_thread: int, fail_on=None):
    results: dict[tuple[int, int], object] = {}
    errors: dict[tuple[int, int], BaseException] = {}
    barrier = threading.Barrier(n_threads)

    def worker(t: int) -> None:
        with Ledger.open(log_dir) as lg:
            lg.group = commit
            barrier.wait()
            for i in range(per_thread):
                within = None
                if fail_on is not None and fail_on(t, i):
                    def within(tx, first, t=t, i=i):
                        raise ValueError(f"refused batch {t}/{i}")
                try:
                    results[(t, i)] = lg.append([decision(t, i), decision(t, i + 1000)], within=within)
                except ValueError as exc:
                    errors[(t, i)] = exc

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, errors


def test_concurrent_appends_share_checkpoints_and_each_gets_its_own_entries(log_dir):
    results, errors = run_threads(log_dir, GroupCommit(window=0.002), n_threads=8, per_thread=25)
    assert not errors and len(results) == 200
    with Ledger.open(log_dir) as lg:
        assert lg.size == 400
        seen = set()
        for (t, i), res in results.items():
            assert len(res.indexes) == 2
            got = [json.loads(lg.entry(k))["output"] for k in res.indexes]
            assert got == [{"thread": t, "i": i}, {"thread": t, "i": i + 1000}]
            seen.update(res.indexes)
            # the checkpoint returned covers the caller's entries: its proof verifies against that checkpoint
            cp = lg.open_checkpoint(res.checkpoint)
            for k in res.indexes:
                merkle.verify_inclusion(k, cp.tree_size, merkle.leaf_hash(lg.entry(k)),
                                        lg.inclusion_proof(k, cp.tree_size), cp.root_hash)
        assert seen == set(range(400))
        checkpoints = list(lg.checkpoints())
        # fewer checkpoints than batches: batches were committed together (1 is the empty tree's)
        assert len(checkpoints) - 1 < 200
        for size, root, _, _ in checkpoints:
            assert lg.root(size) == root


def test_a_failing_batch_fails_alone(log_dir):
    commit = GroupCommit(window=0.02)  # a long window so that the failing batches share groups with good ones
    results, errors = run_threads(log_dir, commit, n_threads=6, per_thread=10, fail_on=lambda t, i: (t + i) % 4 == 0)
    expected_failures = {(t, i) for t in range(6) for i in range(10) if (t + i) % 4 == 0}
    assert set(errors) == expected_failures
    assert all("refused batch" in str(e) for e in errors.values())
    assert len(results) == 60 - len(expected_failures)
    with Ledger.open(log_dir) as lg:
        assert lg.size == 2 * len(results)
        outputs = {json.dumps(json.loads(d)["output"], sort_keys=True) for _, d in lg.entries()}
        for t, i in expected_failures:
            assert json.dumps({"i": i, "thread": t}, sort_keys=True) not in outputs
        groups = [size for size, *_ in lg.checkpoints()]
        assert len(groups) - 1 < len(results)  # some groups held several batches, failing ones among them


def test_result_only_after_durable(log_dir):
    commit = GroupCommit()
    with Ledger.open(log_dir) as writer, Ledger.open(log_dir) as reader:
        writer.group = commit
        res = writer.append([decision(0, 0)])
        # another connection sees the batch and its checkpoint the moment append returns
        assert reader.size == res.tree_size and reader.checkpoint(res.tree_size) == res.checkpoint


def test_bad_settings_refused():
    with pytest.raises(ValueError, match="window"):
        GroupCommit(window=-1)
    with pytest.raises(ValueError, match="max_entries"):
        GroupCommit(max_entries=0)


def test_one_decision_per_request_over_http_is_group_committed(tmp_path):
    """64 concurrent one-decision POSTs to a real `glasslog serve`: every one acknowledged once, its receipt verifying
    against its own checkpoint, in fewer checkpoints than requests."""
    import concurrent.futures
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx
    import numpy as np

    from glasslog.access import KeyStore
    from glasslog.demo.run import run_demo
    from glasslog.registry import Registry, load_artifact
    from glasslog.verify import verify_receipt

    try:
        from glasslog.datasets import load_german_credit
    except ImportError:  # before the datasets package
        from glasslog.datasets.german_credit import load_german_credit

    data = tmp_path / "log"
    summary = run_demo(data)
    with Ledger.open(data) as lg:
        _, token = KeyStore(lg).create("operator", "group commit test")
        model = Registry(lg).get(summary.model)
        estimator = load_artifact(Registry(lg).artifact(model.fingerprint), model.fingerprint)
        start_size = lg.size
        start_checkpoints = len(list(lg.checkpoints()))
    X, _ = load_german_credit()
    X = X[model.card.feature_names].head(64)
    proba = estimator.predict_proba(X)
    rows = json.loads(X.to_json(orient="records"))
    labels = [c.item() if hasattr(c, "item") else c for c in estimator.classes_]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "from glasslog.cli import main; main()", "serve", "--data-dir", str(data),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "GLASSLOG_COMMIT_WINDOW_MS": "5"})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/checkpoint", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(server.stderr.read().decode() if server.poll() is not None else "server did not start")

        def post(i: int) -> dict:
            body = {"model": summary.model, "deployment": summary.deployment,
                    "rows": [{"input": rows[i], "output": {"label": labels[int(np.argmax(proba[i]))],
                                                           "proba": [float(x) for x in proba[i]]},
                              "subject_id": f"gc-{i}"}]}
            r = httpx.post(base + "/v1/decisions", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            assert r.status_code == 201, r.text
            return r.json()

        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(post, range(64)))
    finally:
        server.terminate()
        server.wait(30)
    indexes = [a["decisions"][0]["index"] for a in answers]
    assert sorted(indexes) == list(range(start_size, start_size + 64))
    from glasslog.ledger.receipt import Receipt

    for a in answers:
        assert verify_receipt(Receipt.from_dict(a["decisions"][0]["receipt"]), summary.verifier_key).ok
    with Ledger.open(data) as lg:
        assert lg.size == start_size + 64
        added = len(list(lg.checkpoints())) - start_checkpoints
        assert 1 <= added < 64, added  # requests shared transactions and checkpoints
