"""PostgreSQL with several processes: crashes, concurrent writers (the SDK and HTTP servers), and migration.

(a) Writer processes append in a loop and report each batch the moment
    ``append`` returns; the PostgreSQL server is SIGKILLed and restarted under
    them, then the writers themselves are SIGKILLed mid-run. Every batch a
    writer was told is durable must be in the log, at the indexes it was
    given, and the whole-log audit must pass.
(b) Two processes appending with ``Ledger.append`` and two posting decisions
    over HTTP to ``glasslog serve`` (a subprocess on the same database),
    all at once: every acknowledged decision is in the log exactly once, the
    checkpoints are consistent and the audit passes.
(c) A SQLite log made by the demo is migrated to PostgreSQL: same roots and
    notes at every checkpoint, receipts from the old log verify against the
    new one, private values open, erased ones stay erased.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from glasslog.ledger import Ledger, LedgerError, canonical_json
from glasslog.ledger.merkle import leaf_hash, root_from_leaf_hashes
from glasslog.verify import audit_log

from .test_behaviour import model_entry

MODEL = "sha256:" + "ab" * 32

# Shared by the writer processes and the test (exec'd in both): what writer w appends as its k-th batch; and the
# start gate (with $GLASSLOG_TEST_GO set, a writer starts once that file exists, so that all start together).
COMMON = '''
import os as _os, time as _time

def gate(pace):
    go = _os.environ.get("GLASSLOG_TEST_GO")
    while go and not _os.path.exists(go):
        _time.sleep(0.01)

def batch(w, k, model, deployment):
    return [{"type": "decision", "v": 1, "model": model, "deployment": deployment, "time": "2026-12-05T08:00:00Z",
             "input": "sha256:" + "cd" * 32, "output": {"w": w, "k": k, "j": j}} for j in range(1 + k % 3)]
'''

LEDGER_WRITER = COMMON + '''
import sys, time
from glasslog.storage.postgres import store as pgstore
pgstore.WAIT_SECONDS = float(sys.argv[4])
from glasslog.ledger import Ledger
from glasslog.storage import StorageError

data_dir, url, w, count, model, deployment = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
pace = float(sys.argv[8]) if len(sys.argv) > 8 else 0.0
lg = Ledger.open(data_dir, store=url)
print("ready", flush=True)
gate(pace)
k = 0
while count == 0 or k < count:
    try:
        r = lg.append(batch(w, k, model, deployment))
        print("ack", w, k, r.first_index, len(r.indexes), flush=True)
        time.sleep(pace)
    except StorageError as exc:  # the server is away: not acknowledged, go on
        print("err", w, k, type(exc).__name__, flush=True)
        time.sleep(0.05)
    k += 1
print("done", flush=True)
'''

HTTP_WRITER = COMMON + '''
import json, sys, urllib.error, urllib.request
base, token, model, deployment, w, count, rows_file = sys.argv[1:8]
w, count = int(w), int(count)
rows = json.loads(open(rows_file).read())
print("ready", flush=True)
gate(0)
for k in range(count):
    body = {"model": model, "deployment": deployment,
            "rows": [{"input": rows[(w * 131 + k * 7 + j) % len(rows)], "subject_id": f"http-{w}-{k}-{j}"} for j in range(3)]}
    req = urllib.request.Request(base + "/v1/decisions", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            out = json.loads(resp.read())
        print("ack", w, k, out["first_index"], len(body["rows"]), flush=True)
    except urllib.error.HTTPError as exc:
        print("err", w, k, exc.code, exc.read()[:300], flush=True)
print("done", flush=True)
'''


def _batch_fn():
    ns: dict = {}
    exec(COMMON, ns)  # noqa: S102 - our own constant
    return ns["batch"]


class Child:
    """A writer process whose stdout lines are collected by a thread (so that a killed writer's last lines are kept)."""

    def __init__(self, script: str, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.stderr = ""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by a kill is not an acknowledgement
                self.lines.append(line.strip())

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def acks(self) -> list[tuple[int, int, int, int]]:
        return [tuple(int(x) for x in line.split()[1:5]) for line in list(self.lines) if line.startswith("ack ")]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "ready" not in self.lines:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.finish(0)
                raise AssertionError(f"writer did not start: {self.stderr}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.finish()

    def finish(self, timeout: float = 300) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.join(10)
        self._err.join(10)
        return code


def _check_checkpoints(lg: Ledger) -> None:
    leaves = [leaf_hash(d) for _, d in lg.entries()]
    sizes = []
    for size, root, note, _ in lg.checkpoints():
        assert root == root_from_leaf_hashes(leaves[:size]) == lg.open_checkpoint(note).root_hash
        sizes.append(size)
    assert sizes[-1] == lg.size == len(leaves)
    report = audit_log(lg)
    assert report.ok, report.problems


# ------------------------------------------------------------------ (a) crashes
def test_acknowledged_batches_survive_server_and_writer_crashes(pg_server, pg_url, tmp_path):
    data_dir = tmp_path / "log"
    with Ledger.create(data_dir, "test.example/crash", store=pg_url) as lg:
        lg.append([model_entry()])
    writers = [Child(LEDGER_WRITER, data_dir, pg_url, w, 3, 0, MODEL, "credit-eu") for w in range(3)]
    try:
        for wr in writers:
            wr.wait_ready()
        time.sleep(2)
        before_crash = [len(wr.acks()) for wr in writers]
        pg_server.kill()  # SIGKILL the postmaster and every backend, mid-transaction
        time.sleep(1)
        pg_server.start()  # crash recovery
        time.sleep(3)
        writers[0].kill()  # a writer killed mid-run
        time.sleep(3)
        after_restart = [len(wr.acks()) for wr in writers]
    finally:
        pg_server.start()
        for wr in writers:
            wr.kill()
    assert all(n > 0 for n in before_crash), [wr.stderr for wr in writers]
    assert all(a > b for a, b in zip(after_restart[1:], before_crash[1:])), "writers did not resume after the restart"
    assert any(ln.startswith("err") for wr in writers for ln in wr.lines), "the writers never saw the server away"
    for wr in writers:
        assert "Traceback" not in wr.stderr, wr.stderr
    batch = _batch_fn()
    with Ledger.open(data_dir, store=pg_url) as lg:
        acknowledged = 0
        for wr in writers:
            for w, k, first, count in wr.acks():
                expected = [canonical_json(e) for e in batch(w, k, MODEL, "credit-eu")]
                assert count == len(expected)
                assert [lg.entry(i) for i in range(first, first + count)] == expected, (w, k)
                acknowledged += count
        assert lg.size >= 1 + acknowledged  # unacknowledged batches (cut by a crash at commit) may be there too
        _check_checkpoints(lg)
        assert "database system was not properly shut down" in pg_server.log_text() or \
            "redo starts" in pg_server.log_text() or "crash" in pg_server.log_text().lower()


# ------------------------------------------------------------------ (b) SDK and HTTP writers together
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_on(store_url: str | None, data_dir: Path, monkeypatch):
    from glasslog.demo.run import run_demo

    if store_url is None:
        monkeypatch.delenv("GLASSLOG_STORE", raising=False)
    else:
        monkeypatch.setenv("GLASSLOG_STORE", store_url)
    summary = run_demo(data_dir)
    assert summary.ok
    return summary


def test_sdk_and_http_writers_together(pg_url, tmp_path, monkeypatch):
    from glasslog.access import KeyStore
    from glasslog.datasets.german_credit import load_german_credit
    from glasslog.registry import Registry

    data_dir = tmp_path / "log"
    summary = _demo_on(pg_url, data_dir, monkeypatch)
    with Ledger.open(data_dir, store=pg_url) as lg:
        _, token = KeyStore(lg).create("operator", "Bank operations")
        card = Registry(lg).get(summary.model).card
        initial = lg.size
    X, _ = load_german_credit()
    (tmp_path / "rows.json").write_text(X[card.feature_names].head(60).to_json(orient="records"))

    port = _free_port()
    env = {**os.environ, "GLASSLOG_STORE": pg_url}
    server = subprocess.Popen([str(Path(sys.executable).with_name("glasslog")), "serve", "-d", str(data_dir),
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/checkpoint", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"glasslog serve did not start: {server.stderr.read() if server.poll() is not None else ''}")
            time.sleep(0.2)
        warm = {"model": summary.model, "deployment": summary.deployment,
                "rows": [{"input": json.loads((tmp_path / "rows.json").read_text())[0]}]}
        req = urllib.request.Request(base + "/v1/decisions", data=json.dumps(warm).encode(), method="POST",
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:  # the server loads the model on its first batch
            assert r.status == 201
        initial += 1
        go = tmp_path / "go"
        genv = {**os.environ, "GLASSLOG_TEST_GO": str(go)}
        writers = [Child(LEDGER_WRITER, data_dir, pg_url, w, 30, 40, summary.model, summary.deployment, 0.02, env=genv)
                   for w in (0, 1)]
        writers += [Child(HTTP_WRITER, base, token, summary.model, summary.deployment, w, 25, tmp_path / "rows.json",
                          env=genv) for w in (2, 3)]
        for wr in writers:
            wr.wait_ready()
        go.touch()
        codes = [wr.finish() for wr in writers]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for wr, code in zip(writers, codes):
        assert code == 0 and not [ln for ln in wr.lines if ln.startswith("err")], (wr.lines[-5:], wr.stderr)
        assert "done" in wr.lines
    batch = _batch_fn()
    with Ledger.open(data_dir, store=pg_url) as lg:
        total = 0
        for wr in writers[:2]:
            assert len(wr.acks()) == 40
            for w, k, first, count in wr.acks():
                expected = [canonical_json(e) for e in batch(w, k, summary.model, summary.deployment)]
                assert [lg.entry(i) for i in range(first, first + count)] == expected
                total += count
        for wr in writers[2:]:
            assert len(wr.acks()) == 25
            for w, k, first, count in wr.acks():
                for j in range(count):
                    found = lg.find_private("subject", canonical_json(f"http-{w}-{k}-{j}"))
                    assert found == [first + j], (w, k, j, found)  # present, once, where it was acknowledged
                    assert json.loads(lg.entry(first + j))["type"] == "decision"
                total += count
        assert lg.size == initial + total  # nothing but the acknowledged decisions
        sdk = [first for wr in writers[:2] for _, _, first, _ in wr.acks()]
        http = [first for wr in writers[2:] for _, _, first, _ in wr.acks()]
        assert min(http) < max(sdk) and min(sdk) < max(http), "the writers did not run at the same time"
        _check_checkpoints(lg)


# ------------------------------------------------------------------ (c) migration
def test_migrate_a_sqlite_demo_log_to_postgres(pg_url, tmp_path, monkeypatch):
    from glasslog.access import KeyStore
    from glasslog.capture import receipts_at
    from glasslog.storage.migrate import migrate
    from glasslog.verify import verify_receipt

    data_dir = tmp_path / "log"
    assert _demo_on(None, data_dir, monkeypatch).ok
    with Ledger.open(data_dir) as old:
        _, token = KeyStore(old).create("supervisor", "Financial Supervisory Authority")
        decisions = [i for i, _ in old.entries_of_type("decision")]
        private = old.private_values_for(decisions)
        erased_index = decisions[5]
        erased_commitment = private[erased_index]["subject"][0]
        assert old.erase_private(erased_commitment, "GDPR Art. 17 request", erased_index)
        old_checkpoints = list(old.checkpoints())
        sample = decisions[::37]
        receipts = [receipts_at(old, [i], size, note)[0] for i in sample
                    for size, _, note, _ in [next(c for c in old_checkpoints if c[0] > i)]]
        old_private = old.private_values_for(decisions)
        old_root = old.root()

    with Ledger.open(data_dir) as old:
        old_entries = len(list(old.entries()))
    result = migrate(str(data_dir), pg_url, data_dir)
    assert result["entries"] == old_entries and result["root"] == old_root.hex()
    # the old SQLite file is retired: nothing can append to it any more (two logs growing under one key would fork)
    assert result["source_retired_as"].endswith("log.db.migrated") and not (data_dir / "log.db").exists()
    with pytest.raises(LedgerError, match="moved to PostgreSQL at postgresql://"):
        Ledger.open(data_dir)
    assert result["checkpoints"] == len(old_checkpoints) and result["erased_private_values"] == 1
    assert "@" in result["to"] and result["api_keys"] == 1

    with Ledger.open(data_dir, store=pg_url) as new:
        assert list(new.checkpoints()) == old_checkpoints  # same sizes, roots, notes (byte for byte), times
        for size, root, _, _ in old_checkpoints:
            assert new.root(size) == root
        for r in receipts:  # receipts handed out by the old log verify against the new one
            assert verify_receipt(r, new.verifier_key).ok
            assert new.checkpoint(r.tree_size) == r.checkpoint
            assert tuple(new.inclusion_proof(r.index, r.tree_size)) == r.inclusion_proof
            assert new.entry(r.index) == r.entry
        assert new.private_values_for(decisions) == old_private
        for i in sample:
            for kind, (commitment, salt, value) in new.private_values_for([i])[i].items():
                assert new.private_value(commitment, i) == (kind, salt, value)
        assert new.private_value(erased_commitment, erased_index) is None
        assert new.erased_for([erased_index]) == {erased_index: {"subject"}}
        assert new.erasure_of(erased_commitment)[1] == "GDPR Art. 17 request"
        assert KeyStore(new).authenticate(token).role == "supervisor"
        assert audit_log(new).ok
        new.append([json.loads(new.entry(decisions[0]))])  # the copy goes on with the same signer key
        assert new.root() == root_from_leaf_hashes([leaf_hash(d) for _, d in new.entries()])
    with pytest.raises(Exception, match="moved to PostgreSQL"):
        migrate(str(data_dir), pg_url, data_dir)
