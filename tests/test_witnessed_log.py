"""A witnessed glasslog log, end to end, with real processes on loopback.

The log server (``glasslog serve``) and the witness (``python -m
glasslog.witness serve``) run as subprocesses. The witness is added with
``glasslog witnesses add`` (an entry on the log); the server's background
thread gets each new checkpoint cosigned; ``GET /checkpoint`` and receipts
carry the cosignatures; ``verify receipt`` / ``verify checkpoint`` apply a
k-of-n witness policy. Then a fork: a copy of the log that diverges after
index k, signed with the same key, cannot get its checkpoints cosigned, so
its receipts fail the policy.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glasslog.cli import app as cli
from glasslog.ledger import Ledger, utc_now
from glasslog.ledger.cosignature import Cosigner, verify_cosigned
from glasslog.ledger.witnesses import active_witnesses, cosigned_checkpoint, receipt_checkpoint, witness_entry
from glasslog.server.cosigning import CosigningThread
from glasslog.witness import Witness

from .witness_support import WitnessProcess, free_port, wait_http

ORIGIN = "bank.example/witnessed"
runner = CliRunner()


def text(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def deployments(start: int, end: int, tag: str = "d") -> list[dict]:
    return [{"type": "deployment", "v": 1, "deployment": f"{tag}{i}", "visibility": "public-service",
             "description": "test", "time": utc_now()} for i in range(start, end)]


@pytest.fixture
def witness_proc(tmp_path):
    d = tmp_path / "witness"
    Witness.init(d, "witness.test/w1").close()
    proc = WitnessProcess(d).start()
    yield proc
    proc.stop()


@pytest.fixture
def log_dir(tmp_path):
    d = tmp_path / "log"
    with Ledger.create(d, ORIGIN) as lg:
        lg.append(deployments(0, 5))
    return d


def follow(witness_proc, log_dir) -> str:
    vkey = (log_dir / "log.vkey").read_text().strip()
    w = Witness(witness_proc.dir)
    w.add_log(ORIGIN, vkey)
    key = w.verifier_key
    w.close()
    return key


class LogServer:
    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", "from glasslog.cli import app; app()", "serve", "-d",
                                      str(data_dir), "--port", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=dict(os.environ))
        wait_http(f"http://127.0.0.1:{self.port}/checkpoint", timeout=60, proc=self.proc)

    def checkpoint(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/checkpoint", timeout=5) as r:
            return r.read().decode()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stderr.close()


def wait_for(pred, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def test_witness_entries_and_cli(tmp_path, log_dir, witness_proc):
    key = follow(witness_proc, log_dir)
    r = runner.invoke(cli, ["witnesses", "add", witness_proc.url, "--key", key, "-d", str(log_dir)])
    assert r.exit_code == 0, r.output
    other = Cosigner.generate("other.example/w")
    # a key that is not the witness's own is refused when the witness says who it is
    r = runner.invoke(cli, ["witnesses", "add", witness_proc.url, "--key", str(other.verifier()), "-d", str(log_dir)])
    assert r.exit_code == 2 and "has key" in text(r)
    r = runner.invoke(cli, ["witnesses", "add", "http://127.0.0.1:9", "--key", str(other.verifier()), "-d", str(log_dir)])
    assert r.exit_code == 0, r.output
    with Ledger.open(log_dir) as lg:
        assert [w.name for w in active_witnesses(lg)] == ["witness.test/w1", "other.example/w"]
    r = runner.invoke(cli, ["witnesses", "remove", "other.example/w", "-d", str(log_dir)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["witnesses", "list", "-d", str(log_dir), "--json"])
    assert r.exit_code == 0 and '"witness.test/w1"' in r.output and "other.example" not in r.output
    with Ledger.open(log_dir) as lg:
        kinds = [obj["event"] for _, obj in lg.entries_of_type("witness")]
    assert kinds == ["add", "add", "remove"]
    with pytest.raises(ValueError):
        witness_entry("add", "ftp://x", key)


def test_server_gets_checkpoints_cosigned_and_receipts_carry_them(tmp_path, log_dir, witness_proc):
    wkey = follow(witness_proc, log_dir)
    assert runner.invoke(cli, ["witnesses", "add", witness_proc.url, "--key", wkey, "-d", str(log_dir)]).exit_code == 0
    vkey = (log_dir / "log.vkey").read_text().strip()
    server = LogServer(log_dir)
    try:
        note = wait_for(lambda: (n := server.checkpoint()).count("\u2014 ") == 2 and n)
        policy = verify_cosigned(note, vkey, [wkey], 1)
        assert policy.ok and policy.witnesses[0].name == "witness.test/w1", policy.problems
        # appends by another process are cosigned too, without the append waiting for it
        with Ledger.open(log_dir) as lg:
            t0 = time.perf_counter()
            res = lg.append(deployments(5, 9))
            assert time.perf_counter() - t0 < 2.0
        note = wait_for(lambda: (n := server.checkpoint()).count("\u2014 ") == 2 and f"\n{res.tree_size}\n" in n and n)
        assert verify_cosigned(note, vkey, [wkey], 1).ok
        # a receipt carries the cosigned checkpoint, and verify receipt names the witness
        receipt = tmp_path / "r.json"
        assert runner.invoke(cli, ["receipt", "7", "-o", str(receipt), "-d", str(log_dir)]).exit_code == 0
        r = runner.invoke(cli, ["verify", "receipt", str(receipt), "--key", vkey, "--witness-key", wkey, "-d", str(tmp_path)])
        assert r.exit_code == 0, r.output
        assert "cosigned by witness.test/w1 at" in text(r)
        other = str(Cosigner.generate("other.example/w").verifier())
        r = runner.invoke(cli, ["verify", "receipt", str(receipt), "--key", vkey, "--witness-key", wkey,
                                "--witness-key", other, "--min-witnesses", "2", "-d", str(tmp_path)])
        assert r.exit_code == 1 and "1 cosigned, 2 required" in text(r)
        r = runner.invoke(cli, ["verify", "receipt", str(receipt), "--key", vkey, "--min-witnesses", "1", "-d", str(tmp_path)])
        assert r.exit_code == 2
        # verify checkpoint with the policy: the kept (cosigned) checkpoint, and the log's latest
        kept = tmp_path / "kept.note"
        kept.write_text(note)
        r = runner.invoke(cli, ["verify", "checkpoint", str(kept), "--key", vkey, "--witness-key", wkey, "-d", str(log_dir)])
        assert r.exit_code == 0 and "cosigned by witness witness.test/w1" in text(r), r.output
        with Ledger.open(log_dir) as lg:
            plain = lg.checkpoint()
        kept.write_text(plain)
        r = runner.invoke(cli, ["verify", "checkpoint", str(kept), "--key", vkey, "--witness-key", wkey, "-d", str(log_dir)])
        assert r.exit_code == 1 and "witness policy" in text(r)
        r = runner.invoke(cli, ["witnesses", "list", "-d", str(log_dir)])
        assert "cosigned up to tree size" in text(r)
    finally:
        server.stop()


def test_conflict_is_re_proved_from_the_witness_size(tmp_path, log_dir, witness_proc):
    wkey = follow(witness_proc, log_dir)
    with Ledger.open(log_dir) as lg:
        lg.append([witness_entry("add", witness_proc.url, wkey)])
    t = CosigningThread(log_dir)
    st = t.run_once()[wkey]
    assert st.ok and st.tree_size == 6
    t._close_ledger()
    # the log forgets what the witness cosigned (lost side table): it starts from 0, gets 409 6, re-proves
    con = sqlite3.connect(log_dir / "log.db")
    con.execute("DELETE FROM cosignatures")
    con.commit()
    con.close()
    with Ledger.open(log_dir) as lg:
        lg.append(deployments(10, 20))
    t2 = CosigningThread(log_dir)
    st = t2.run_once()[wkey]
    assert st.ok and st.tree_size == 16, st
    with Ledger.open(log_dir) as lg:
        assert verify_cosigned(cosigned_checkpoint(lg), lg.verifier_key, [wkey], 1).ok
        assert "\u2014 witness.test/w1" in receipt_checkpoint(lg, 3)
    t2._close_ledger()


def test_forked_copy_gets_no_cosignature_and_its_receipts_fail_the_policy(tmp_path, log_dir, witness_proc):
    """A deployer copies its log after index k, shows one copy to supervisors and another to an applicant."""
    wkey = follow(witness_proc, log_dir)
    with Ledger.open(log_dir) as lg:
        lg.append([witness_entry("add", witness_proc.url, wkey)])  # k = 6 entries in common
    fork_dir = tmp_path / "fork"
    shutil.copytree(log_dir, fork_dir)
    with Ledger.open(log_dir) as lg:
        lg.append(deployments(100, 110, "honest"))
    with Ledger.open(fork_dir) as lg:
        lg.append(deployments(100, 110, "forged"))
    honest, forked = CosigningThread(log_dir), CosigningThread(fork_dir)
    assert honest.run_once()[wkey].ok
    st = forked.run_once()[wkey]
    assert not st.ok and st.error and ("different tree" in st.error or "422" in st.error), st
    # growing the fork further does not help either
    with Ledger.open(fork_dir) as lg:
        lg.append(deployments(110, 130, "forged"))
    forked.status[wkey].retry_at = 0
    st = forked.run_once()[wkey]
    assert not st.ok and "422" in st.error, st.error
    vkey = (log_dir / "log.vkey").read_text().strip()
    out = {}
    for name, d in (("honest", log_dir), ("forked", fork_dir)):
        path = tmp_path / f"{name}.json"
        assert runner.invoke(cli, ["receipt", "8", "-o", str(path), "-d", str(d)]).exit_code == 0
        out[name] = runner.invoke(cli, ["verify", "receipt", str(path), "--key", vkey, "--witness-key", wkey,
                                        "--min-witnesses", "1", "-d", str(tmp_path)])
    assert out["honest"].exit_code == 0, out["honest"].output
    assert out["forked"].exit_code == 1 and "0 cosigned, 1 required" in text(out["forked"])
    # without the policy the forked receipt still verifies: the log's key alone cannot tell the copies apart
    path = tmp_path / "forked.json"
    assert runner.invoke(cli, ["verify", "receipt", str(path), "--key", vkey, "-d", str(tmp_path)]).exit_code == 0
    # the witness kept the validly signed fork as evidence
    w = Witness(witness_proc.dir)
    try:
        assert w.store.evidence(ORIGIN)
    finally:
        w.close()
    for t in (honest, forked):
        t._close_ledger()


class ThreadServer:
    """The log's app under uvicorn in a thread (no lifespan: no cosigning thread), on a free loopback port."""

    def __init__(self, data_dir: Path):
        import threading

        import uvicorn

        from glasslog.server import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(data_dir), host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_witness_catches_up_from_the_tiles(tmp_path, log_dir):
    from glasslog.witness import WitnessError
    from glasslog.witness.catchup import catch_up, proof_from_tiles
    from glasslog.witness.client import format_request

    wdir = tmp_path / "w"
    Witness.init(wdir, "witness.test/pull").close()
    w = Witness(wdir)
    vkey = (log_dir / "log.vkey").read_text().strip()
    w.add_log(ORIGIN, vkey)
    fork = tmp_path / "fork"
    shutil.copytree(log_dir, fork)  # the same log, 5 entries, same key: it will diverge
    with Ledger.open(log_dir) as lg:
        w.add_checkpoint(format_request(0, [], lg.checkpoint()))  # the witness saw size 5, then fell behind
        for k in range(3):
            lg.append(deployments(100 + 300 * k, 400 + 300 * k))  # to 905: full and partial tiles at levels 0 and 1
        # the proof built from tiles is the log's own proof, for sizes around tile edges
        tiles = lambda level, index, width: lg.tile(level, index, width)  # noqa: E731
        for old, new in ((5, 905), (256, 905), (255, 512), (300, 301), (1, 905), (512, 768)):
            assert proof_from_tiles(old, new, tiles) == lg.consistency_proof(old, new), (old, new)
    server = ThreadServer(log_dir)
    try:
        result = catch_up(w, ORIGIN, server.url)
        assert (result.old_size, result.new_size) == (5, 905)
        with Ledger.open(log_dir) as lg:
            assert verify_cosigned(lg.checkpoint() + result.cosignature, vkey, [w.verifier_key], 1).ok
        assert catch_up(w, ORIGIN, server.url).cosignature is None  # nothing new
        r = runner.invoke(cli, ["witness", "logs", "--dir", str(wdir)])
        assert "last cosigned tree size 905" in text(r)
    finally:
        server.stop()
    # the forked copy grows past 905 with other entries: its tiles cannot prove consistency with what was cosigned
    with Ledger.open(fork) as lg:
        lg.append(deployments(0, 1000, "forged"))
    server = ThreadServer(fork)
    try:
        with pytest.raises(WitnessError) as e:
            catch_up(w, ORIGIN, server.url)
        assert e.value.status == 422
        r = runner.invoke(cli, ["witness", "catch-up", ORIGIN, "--log-url", server.url, "--dir", str(wdir)])
        assert r.exit_code == 1 and "refused (422)" in text(r)
    finally:
        server.stop()
    assert w.store.state(ORIGIN).tree_size == 905
    w.close()


def test_verify_receipt_subject_says_whose_decision_it_is(tmp_path, log_dir):
    """One applicant cannot be handed another applicant's valid receipt."""
    from glasslog.ledger import PrivateValue
    from glasslog.ledger.commitments import commit

    entries, private = [], []
    for i, who in enumerate(("applicant-0042", "applicant-0043")):
        subject, salt, value = commit(who)
        inp, isalt, ivalue = commit({"income": 1000 + i})
        entries.append({"type": "decision", "v": 1, "model": "sha256:" + "ab" * 32, "deployment": "bank.example/d",
                        "time": utc_now(), "input": inp, "subject": subject, "output": {"label": i}})
        private += [PrivateValue(i, "subject", subject, salt, value), PrivateValue(i, "input", inp, isalt, ivalue)]
    with Ledger.open(log_dir) as lg:
        first = lg.append(entries, private).first_index
    vkey = (log_dir / "log.vkey").read_text().strip()
    paths = []
    for i in (first, first + 1, 2):
        p = tmp_path / f"r{i}.json"
        assert runner.invoke(cli, ["receipt", str(i), "-o", str(p), "-d", str(log_dir)]).exit_code == 0
        paths.append(p)
    mine, other, no_subject = paths
    r = runner.invoke(cli, ["verify", "receipt", str(mine), "--key", vkey, "--subject", "applicant-0042", "-d", str(tmp_path)])
    assert r.exit_code == 0 and "the decision is about 'applicant-0042'" in text(r) and "whose decision: applicant-0042" in text(r)
    r = runner.invoke(cli, ["verify", "receipt", str(other), "--key", vkey, "--subject", "applicant-0042", "-d", str(tmp_path)])
    assert r.exit_code == 1 and "not about 'applicant-0042'" in text(r)
    r = runner.invoke(cli, ["verify", "receipt", str(other), "--key", vkey, "-d", str(tmp_path)])
    assert r.exit_code == 0 and "whose decision: applicant-0043 (give --subject YOUR-ID" in text(r)
    r = runner.invoke(cli, ["verify", "receipt", str(no_subject), "--key", vkey, "--subject", "x", "-d", str(tmp_path)])
    assert r.exit_code == 1 and "names no subject" in text(r)


def test_receipt_refreshed_to_a_newer_cosigned_checkpoint_with_a_consistency_proof(tmp_path, log_dir):
    from glasslog.ledger.receipt import Receipt

    vkey = (log_dir / "log.vkey").read_text().strip()
    old = tmp_path / "old.json"
    assert runner.invoke(cli, ["receipt", "3", "-o", str(old), "-d", str(log_dir)]).exit_code == 0
    w = Cosigner.generate("witness.test/refresh")
    with Ledger.open(log_dir) as lg:
        lg.append(deployments(5, 40))
        note = lg.checkpoint()
        lg.store.put_cosignature(lg.signed_size(), str(w.verifier()), w.cosign(note[: note.index("\n\n") + 1]), utc_now())
    new = tmp_path / "new.json"
    r = runner.invoke(cli, ["receipt", "--refresh", str(old), "-o", str(new), "-d", str(log_dir)])
    assert r.exit_code == 0 and "at tree size 40 (was 5)" in text(r), r.output
    rc = Receipt.load(new)
    assert rc.tree_size == 40 and rc.previous is not None and rc.previous[0] == Receipt.load(old).checkpoint
    assert Receipt.from_json(rc.to_json()) == rc
    r = runner.invoke(cli, ["verify", "receipt", str(new), "--key", vkey, "--witness-key", str(w.verifier()),
                            "-d", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "the log at tree size 40 extends the receipt's earlier checkpoint at tree size 5" in text(r)
    # a consistency proof that does not link the two checkpoints is refused
    d = rc.to_dict()
    d["previous"]["consistency_proof"][0] = base64.b64encode(bytes(32)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    r = runner.invoke(cli, ["verify", "receipt", str(bad), "--key", vkey, "-d", str(tmp_path)])
    assert r.exit_code == 1 and "earlier checkpoint" in text(r)
    # a log that rewrote the entry cannot refresh the receipt
    con = sqlite3.connect(log_dir / "log.db")
    con.execute("UPDATE entries SET data = CAST(REPLACE(CAST(data AS TEXT), 'd3', 'x3') AS BLOB) WHERE idx = 3")
    con.commit()
    con.close()
    r = runner.invoke(cli, ["receipt", "--refresh", str(old), "-d", str(log_dir)])
    assert r.exit_code == 2 and "other bytes at entry 3" in text(r)


def test_refusals_are_listed_and_counted_not_repeated(tmp_path, log_dir, witness_proc):
    """A forked copy keeps asking: `witnesses list` shows each refusal (status, why, when, how often); neither the
    log's record nor the witness's evidence grows a row per retry."""
    wkey = follow(witness_proc, log_dir)
    with Ledger.open(log_dir) as lg:
        lg.append([witness_entry("add", witness_proc.url, wkey)])
    fork_dir = tmp_path / "fork"
    shutil.copytree(log_dir, fork_dir)
    with Ledger.open(log_dir) as lg:
        lg.append(deployments(100, 110, "honest"))
    with Ledger.open(fork_dir) as lg:
        lg.append(deployments(100, 120, "forged"))
    honest, forked = CosigningThread(log_dir), CosigningThread(fork_dir)
    assert honest.run_once()[wkey].ok
    for _ in range(6):
        forked.status.get(wkey) and setattr(forked.status[wkey], "retry_at", 0)
        assert not forked.run_once()[wkey].ok
    for t in (honest, forked):
        t._close_ledger()
    r = runner.invoke(cli, ["witnesses", "list", "-d", str(fork_dir), "--json"])
    [row] = json.loads(r.output)["witnesses"]
    assert r.exit_code == 0 and row["ok"] is False and row["refusals"], row
    assert sum(f["count"] for f in row["refusals"]) == 6 and len(row["refusals"]) <= 2, row["refusals"]
    assert all(f["status"] in (409, 422) and f["first_at"] <= f["last_at"] for f in row["refusals"])
    r = runner.invoke(cli, ["witnesses", "list", "-d", str(fork_dir)])
    assert r.exit_code == 0 and "failing since" in text(r) and "times," in text(r), text(r)
    assert ("answered 422" in text(r)) or ("answered 409" in text(r))
    # a refused consistency proof is labelled a possible fork, in the log's list and in the witness's own
    proof_refusals = [f for f in row["refusals"] if "consistency proof does not verify" in f["reason"]]
    assert proof_refusals and all(f["possible_fork"] for f in proof_refusals), row["refusals"]
    assert "(possible fork: this checkpoint does not extend the tree the witness cosigned before" in text(r)
    r = runner.invoke(cli, ["witness", "logs", "--dir", str(witness_proc.dir)])
    assert r.exit_code == 0 and "possible fork" in text(r), text(r)
    w = Witness(witness_proc.dir)
    try:
        evidence = w.store.evidence(ORIGIN)
    finally:
        w.close()
    assert len(evidence) <= 2 and sum(e["count"] for e in evidence) >= 5, evidence
    # the honest log's record shows no refusal
    r = runner.invoke(cli, ["witnesses", "list", "-d", str(log_dir), "--json"])
    [row] = json.loads(r.output)["witnesses"]
    assert row["ok"] is True and row["refusals"] == [] and row["cosigned_tree_size"] == 16


def test_witness_started_late_is_caught_up_on_a_schedule(tmp_path, log_dir):
    """The witness is down while the log grows; once it starts, the cosigning loop's retries (with backoff) bring it
    up to date without another append."""
    d = tmp_path / "witness"
    Witness.init(d, "witness.test/late").close()
    proc = WitnessProcess(d)
    port = free_port()
    wkey = follow(proc, log_dir)
    with Ledger.open(log_dir) as lg:
        lg.append([witness_entry("add", f"http://127.0.0.1:{port}", wkey)])
    t = CosigningThread(log_dir, interval=0.05, max_backoff=1.0)
    t.start()
    try:
        with Ledger.open(log_dir) as lg:
            for k in range(3):
                lg.append(deployments(10 * k + 10, 10 * k + 20))
            size = lg.size
        wait_for(lambda: (st := t.status.get(wkey)) is not None and st.refusals and st.refusals[-1]["count"] >= 2)
        assert not t.status[wkey].ok and t.status[wkey].refusals[-1]["status"] == "unreachable"
        proc.start(port)  # no append from here on
        wait_for(lambda: t.status[wkey].ok and t.status[wkey].tree_size == size, timeout=15)
    finally:
        t.stop()
        proc.stop()
    with Ledger.open(log_dir) as lg:
        assert verify_cosigned(cosigned_checkpoint(lg), lg.verifier_key, [wkey], 1).ok
    r = runner.invoke(cli, ["witnesses", "list", "-d", str(log_dir), "--json"])
    [row] = json.loads(r.output)["witnesses"]
    assert row["ok"] is True and row["cosigned_tree_size"] == size
    assert row["refusals"][-1]["status"] == "unreachable" and row["refusals"][-1]["count"] >= 2  # kept as history


def test_witnesses_sync_catches_up_a_log_written_without_the_server(tmp_path, log_dir):
    """A log appended by the SDK or CLI has no cosigning thread: `glasslog witnesses sync` does the round."""
    d = tmp_path / "witness"
    Witness.init(d, "witness.test/sync").close()
    proc = WitnessProcess(d)
    port = free_port()
    wkey = follow(proc, log_dir)
    with Ledger.open(log_dir) as lg:
        lg.append([witness_entry("add", f"http://127.0.0.1:{port}", wkey)])
        lg.append(deployments(10, 30))
        size = lg.size
    r = runner.invoke(cli, ["witnesses", "sync", "-d", str(log_dir), "--timeout", "1"])
    assert r.exit_code == 1 and f"behind at 0 of {size}" in text(r) and "unreachable" in text(r), text(r)
    proc.start(port)
    try:
        r = runner.invoke(cli, ["witnesses", "sync", "-d", str(log_dir), "--timeout", "10"])
        assert r.exit_code == 0 and f"cosigned tree size {size}" in text(r), text(r)
    finally:
        proc.stop()
    with Ledger.open(log_dir) as lg:
        assert verify_cosigned(cosigned_checkpoint(lg), lg.verifier_key, [wkey], 1).ok
    r = runner.invoke(cli, ["witnesses", "list", "-d", str(log_dir)])
    assert "unreachable" in text(r) and f"cosigned up to tree size {size} of {size}" in text(r)
