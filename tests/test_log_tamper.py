"""The whole-log audit reports each kind of tampering at the right index or checkpoint.

A log of 400 entries in 10 batches (checkpoints at 0, 40, ..., 400) is copied
and its SQLite file edited the way someone with write access to the database
would: entries deleted from the tail or the middle, entries renumbered to
close the gap, two entries swapped, a strip of stored hashes removed, a
middle checkpoint removed (caught through the witnesses' cosignatures), the
whole file rolled back to an older copy (caught against a checkpoint kept
outside the log), the database re-keyed and re-signed (caught with the key
given on the command line, never the database's own).
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from typer.testing import CliRunner

from glasslog.cli import app as cli
from glasslog.ledger import Ledger, utc_now
from glasslog.ledger.note import Checkpoint, Verifier, generate_signer, open_checkpoint, sign_note
from glasslog.storage.strips import strip_id
from glasslog.verify import audit_log

ORIGIN = "bank.example/tamper"
runner = CliRunner()


def deployments(a: int, b: int) -> list[dict]:
    return [{"type": "deployment", "v": 1, "deployment": f"d{i}", "visibility": "public-service", "description": "t",
             "time": utc_now()} for i in range(a, b)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("tamper") / "log"
    with Ledger.create(d, ORIGIN) as lg:
        for k in range(10):
            lg.append(deployments(40 * k, 40 * k + 40))
    return d


def tampered(base, tmp_path, *sql: str):
    d = tmp_path / "copy"
    shutil.copytree(base, d)
    con = sqlite3.connect(d / "log.db")
    for s in sql:
        con.execute(s)
    con.commit()
    con.close()
    return d


def audit(d, **kw):
    with Ledger.open(d) as lg:
        return audit_log(lg, **kw)


def test_untouched_log_verifies(base):
    r = audit(base)
    assert r.ok and r.first_bad_index is None and r.checkpoints == 11


@pytest.mark.parametrize("sql, first_bad, says", [
    (["DELETE FROM entries WHERE idx >= 397"], 397, "entries from 397 on were deleted"),
    (["DELETE FROM entries WHERE idx >= 360"], 360, "only 360 are stored"),
    (["DELETE FROM entries WHERE idx BETWEEN 100 AND 102"], 100, "entries 100..102 are missing"),
    (["DELETE FROM entries WHERE idx = 300"], 300, "entries 300..300 are missing"),
    (["DELETE FROM entries WHERE idx = 100", "UPDATE entries SET idx = idx - 1 WHERE idx > 100"], 100, "entry 100 does not match"),
    (["DELETE FROM entries WHERE idx BETWEEN 250 AND 259", "UPDATE entries SET idx = idx - 10 WHERE idx > 259"], 250,
     "entry 250 does not match"),
    (["UPDATE entries SET idx = -1 WHERE idx = 150", "UPDATE entries SET idx = 150 WHERE idx = 151",
      "UPDATE entries SET idx = 151 WHERE idx = -1"], 150, "entry 150 does not match"),
    ([f"DELETE FROM hashes WHERE id = {strip_id(0, 96)}"], 96, "level 0, indexes 96..127 (entries 96..127) are missing"),
    ([f"DELETE FROM hashes WHERE id = {strip_id(1, 32)}"], 64, "level 1, indexes 32..63 (entries 64..127) are missing"),
    ([f"DELETE FROM hashes WHERE id = {strip_id(3, 0)}"], 0, "level 3, indexes 0..31 (entries 0..255) are missing"),
    ([f"DELETE FROM hashes WHERE id = {strip_id(0, 384)}"], 384, "level 0, indexes 384..399"),
    (["DELETE FROM checkpoints WHERE tree_size = 400"], 360, "entries 360..399 are not covered"),
])
def test_tamper_reported_at_the_right_index(base, tmp_path, sql, first_bad, says):
    d = tampered(base, tmp_path, *sql)
    r = audit(d)
    assert not r.ok
    assert r.first_bad_index == first_bad, r.problems
    assert any(says in p for p in r.problems), r.problems
    res = runner.invoke(cli, ["verify", "log", "-d", str(d), "--key-file", str(base / "log.vkey")])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and f"FAILED: first bad index {first_bad}" in text and "None" not in text


@pytest.mark.parametrize("sql, checkpoint, says", [
    (["UPDATE checkpoints SET root = zeroblob(32) WHERE tree_size = 160"], 160, "checkpoint row at tree size 160"),
    (["UPDATE checkpoints SET note = replace(note, char(10) || '200' || char(10), char(10) || '201' || char(10))"
      " WHERE tree_size = 200"], 200, "checkpoint at tree size 200"),
])
def test_checkpoint_tamper_names_the_checkpoint(base, tmp_path, sql, checkpoint, says):
    d = tampered(base, tmp_path, *sql)
    r = audit(d)
    assert not r.ok and r.bad_checkpoint == checkpoint and any(says in p for p in r.problems), r.problems
    res = runner.invoke(cli, ["verify", "log", "-d", str(d), "--key-file", str(base / "log.vkey")])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and f"checkpoint at tree size {checkpoint}" in text and "None" not in text


def test_removed_middle_checkpoint_named_through_the_cosignatures(base, tmp_path):
    d = tampered(base, tmp_path)
    with Ledger.open(d) as lg:
        for size in (200, 400):
            lg.store.put_cosignature(size, "witness.example/w1+00000000+BAAA", "\u2014 witness.example/w1 AAAA\n", utc_now())
    assert audit(d).ok
    con = sqlite3.connect(d / "log.db")
    con.execute("DELETE FROM checkpoints WHERE tree_size = 200")
    con.commit()
    con.close()
    r = audit(d)
    assert not r.ok and r.missing_checkpoints == [200] and r.bad_checkpoint == 200
    assert any("tree size 200" in p and "removed" in p for p in r.problems)


def test_rollback_to_an_older_file_caught_against_a_kept_checkpoint(base, tmp_path):
    """The operator restores an older copy of the database (or the write-ahead file is lost): alone it looks clean."""
    old = tmp_path / "old"
    with Ledger.create(old, "bank.example/rollback") as lg:
        lg.append(deployments(0, 300))
    snapshot = tmp_path / "snapshot"
    shutil.copytree(old, snapshot)
    with Ledger.open(old) as lg:
        lg.append(deployments(300, 345))
        kept_note = lg.checkpoint()
        vkey = lg.verifier_key
    shutil.rmtree(old)
    shutil.copytree(snapshot, old)  # rolled back to 300 entries, every hash and checkpoint consistent
    assert audit(old).ok
    kept = open_checkpoint(kept_note, Verifier.parse(vkey))
    r = audit(old, kept=kept)
    assert not r.ok and r.first_bad_index == 300 and "rolled back" in " ".join(r.problems)
    kept_file = tmp_path / "kept.note"
    kept_file.write_text(kept_note)
    res = runner.invoke(cli, ["verify", "log", "-d", str(old), "--key", vkey, "--checkpoint", str(kept_file)])
    assert res.exit_code == 1 and "first bad index 300" in " ".join(res.output.split())


def test_key_comes_from_outside_the_database(base, tmp_path):
    """The database is re-keyed: every checkpoint re-signed with a new key, the new key written into its meta table."""
    d = tampered(base, tmp_path)
    vkey = (base / "log.vkey").read_text().strip()
    forger = generate_signer(ORIGIN)
    con = sqlite3.connect(d / "log.db")
    rows = con.execute("SELECT tree_size, root FROM checkpoints").fetchall()
    for size, root in rows:
        con.execute("UPDATE checkpoints SET note = ? WHERE tree_size = ?",
                    (sign_note(Checkpoint(ORIGIN, size, bytes(root)).text(), forger), size))
    con.execute("UPDATE meta SET value = ? WHERE key = 'verifier_key'", (str(forger.verifier()),))
    con.commit()
    con.close()
    # with the database's own key it looks fine, and the command says what it trusted
    res = runner.invoke(cli, ["verify", "log", "-d", str(d)])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "warning" in text and "stored in the database" in text
    # with the key published independently, every checkpoint fails
    res = runner.invoke(cli, ["verify", "log", "-d", str(d), "--key", vkey])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "re-keyed" in text and "checkpoint at tree size 40" in text
    # the genuine log passes with the given key and says so
    res = runner.invoke(cli, ["verify", "log", "-d", str(base), "--key", vkey])
    assert res.exit_code == 0 and "with the verifier key given" in " ".join(res.output.split())


# ---------------------------------------------------------------- against a checkpoint kept outside the log
def _kept_log(tmp_path, n_batches=10):
    d = tmp_path / "live"
    with Ledger.create(d, "bank.example/kept") as lg:
        for k in range(n_batches):
            lg.append(deployments(40 * k, 40 * k + 40))
    return d, (d / "log.vkey").read_text().strip()


def _verify(d, vkey, *extra):
    res = runner.invoke(cli, ["verify", "log", "-d", str(d), "--key", vkey, *extra])
    return res.exit_code, " ".join(res.output.split())


def test_truncated_log_passes_alone_and_fails_against_the_witnessed_checkpoint(tmp_path):
    """Entries, hashes, checkpoints and cosignatures beyond 320 deleted consistently: alone the log looks whole."""
    from glasslog.storage.strips import LEVEL_SHIFT, STRIP

    d, vkey = _kept_log(tmp_path)
    (tmp_path / "kept.note").write_text(Ledger.open(d).checkpoint())  # what GET /checkpoint served at 400 entries
    con = sqlite3.connect(d / "log.db")
    n = 320
    con.execute("DELETE FROM entries WHERE idx >= ?", (n,))
    con.execute("DELETE FROM checkpoints WHERE tree_size > ?", (n,))
    con.execute("DELETE FROM cosignatures WHERE tree_size > ?", (n,))
    for sid, strip in con.execute("SELECT id, strip FROM hashes").fetchall():
        level, start = sid >> LEVEL_SHIFT, (sid & ((1 << LEVEL_SHIFT) - 1)) * STRIP
        keep = max(0, min(STRIP, (n >> level) - start))
        if keep == 0:
            con.execute("DELETE FROM hashes WHERE id = ?", (sid,))
        else:
            con.execute("UPDATE hashes SET strip = ? WHERE id = ?", (bytes(strip)[: 32 * keep], sid))
    con.commit()
    con.close()
    assert _verify(d, vkey)[0] == 0
    code, text = _verify(d, vkey, "--checkpoint", str(tmp_path / "kept.note"))
    assert code == 1 and "first bad index 320, checkpoint at tree size 400" in text
    assert "the kept checkpoint has 400 entries but the log holds 320" in text


def test_log_whose_write_ahead_file_was_lost_fails_against_the_witnessed_checkpoint(tmp_path):
    """The database file copied while the last appends were still only in log.db-wal (never checkpointed into it)."""
    d, vkey = _kept_log(tmp_path, 5)
    lost = tmp_path / "lost"
    lg = Ledger.open(d)
    try:
        lg.append(deployments(200, 240))
        lg.append(deployments(240, 280))
        kept = lg.checkpoint()
        assert (d / "log.db-wal").stat().st_size > 0
        shutil.copytree(d, lost, ignore=shutil.ignore_patterns("log.db-wal", "log.db-shm"))
    finally:
        lg.close()
    (tmp_path / "kept.note").write_text(kept)
    with Ledger.open(lost) as copy:
        assert copy.size < 280
        held = copy.size
    assert _verify(lost, vkey)[0] == 0
    code, text = _verify(lost, vkey, "--checkpoint", str(tmp_path / "kept.note"))
    assert code == 1 and f"first bad index {held}, checkpoint at tree size 280" in text and "write-ahead" in text


def test_rolled_back_copy_fails_against_the_witness_state_on_this_machine(tmp_path):
    """The witness runs beside the log: the checkpoint it last cosigned (its own witness.db) is the kept one."""
    from glasslog.witness.client import format_request
    from glasslog.witness.core import Witness

    d, vkey = _kept_log(tmp_path, 6)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(d, snapshot)
    w = Witness.init(tmp_path / "witness", "witness.example/w1")
    try:
        w.add_log("bank.example/kept", vkey)
        with Ledger.open(d) as lg:
            w.add_checkpoint(format_request(0, [], lg.checkpoint()))
            lg.append(deployments(240, 300))
            w.add_checkpoint(format_request(240, lg.consistency_proof(240, 300), lg.checkpoint()))
    finally:
        w.close()
    assert _verify(d, vkey, "--witness-dir", str(tmp_path / "witness"))[0] == 0
    assert _verify(snapshot, vkey)[0] == 0
    code, text = _verify(snapshot, vkey, "--witness-dir", str(tmp_path / "witness"))
    assert code == 1 and "first bad index 240, checkpoint at tree size 300" in text and "rolled back" in text


def test_deleted_checkpoint_with_its_cosignature_row_fails_against_a_receipt(tmp_path):
    """The middle checkpoint and its cosignature row both deleted: nothing left in the database names it, so alone the
    log passes; a receipt (or saved GET /checkpoint) that carries it makes the audit fail, naming it."""
    import json

    d, vkey = _kept_log(tmp_path)
    with Ledger.open(d) as lg:
        lg.store.put_cosignature(200, "witness.example/w1+00000000+BAAA", "\u2014 witness.example/w1 AAAA\n", utc_now())
        # a receipt handed out when the log had 200 entries carries the checkpoint at 200
        receipt = {"origin": "bank.example/kept", "index": 150, "tree_size": 200, "checkpoint": lg.checkpoint(200),
                   "inclusion_proof": [], "entry": ""}
    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    con = sqlite3.connect(d / "log.db")
    con.execute("DELETE FROM checkpoints WHERE tree_size = 200")
    con.execute("DELETE FROM cosignatures WHERE tree_size = 200")
    con.commit()
    con.close()
    assert _verify(d, vkey)[0] == 0  # nothing signed in the database refers to the removed checkpoint
    code, text = _verify(d, vkey, "--checkpoint", str(tmp_path / "receipt.json"))
    assert code == 1 and "Log verification FAILED: checkpoint at tree size 200" in text
    assert "the kept checkpoint at tree size 200 is no longer in the log" in text and "None" not in text


def test_kept_checkpoint_of_another_history_names_the_checkpoint_not_none(tmp_path):
    d, vkey = _kept_log(tmp_path, 3)
    fork = tmp_path / "fork"
    shutil.copytree(d, fork)
    with Ledger.open(fork) as lg:
        lg.append(deployments(900, 940))
        note = lg.checkpoint()
    with Ledger.open(d) as lg:
        lg.append(deployments(120, 200))
    (tmp_path / "fork.note").write_text(note)
    code, text = _verify(d, vkey, "--checkpoint", str(tmp_path / "fork.note"))
    assert code == 1 and "FAILED: checkpoint at tree size 160" in text and "not the one the kept checkpoint signed" in text
    assert "None" not in text


def test_kept_checkpoint_from_a_url(tmp_path):
    """--checkpoint URL: e.g. the live server's GET /checkpoint while a restored copy is checked."""
    import http.server
    import threading

    d, vkey = _kept_log(tmp_path, 4)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(d, snapshot)
    with Ledger.open(d) as lg:
        lg.append(deployments(160, 200))
        body = lg.checkpoint().encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/checkpoint"
        code, text = _verify(snapshot, vkey, "--checkpoint", url)
        assert code == 1 and "checkpoint at tree size 200" in text and "holds 160" in text
        assert _verify(d, vkey, "--checkpoint", url)[0] == 0
    finally:
        srv.shutdown()
    code, text = _verify(d, vkey, "--checkpoint", url)  # nothing serves it any more: exit 2, one line
    assert code == 2 and "cannot fetch the checkpoint" in text


def test_verify_checkpoint_fails_when_the_log_no_longer_holds_it(tmp_path):
    """A receipt holder's kept checkpoint: the log still extends it, but removed it (and its cosignature row)."""
    d, vkey = _kept_log(tmp_path, 6)
    with Ledger.open(d) as lg:
        (tmp_path / "kept.note").write_text(lg.checkpoint(120))
    res = runner.invoke(cli, ["verify", "checkpoint", str(tmp_path / "kept.note"), "--key", vkey, "-d", str(d)])
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(d / "log.db")
    con.execute("DELETE FROM checkpoints WHERE tree_size = 120")
    con.execute("DELETE FROM cosignatures WHERE tree_size = 120")
    con.commit()
    con.close()
    res = runner.invoke(cli, ["verify", "checkpoint", str(tmp_path / "kept.note"), "--key", vkey, "-d", str(d)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "no longer holds it: the checkpoint was removed" in text and "tree size 120" in text
