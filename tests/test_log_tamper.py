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
    r = audit(tampered(base, tmp_path, *sql))
    assert not r.ok
    assert r.first_bad_index == first_bad, r.problems
    assert any(says in p for p in r.problems), r.problems


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
    assert not r.ok and r.missing_checkpoints == [200]
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
