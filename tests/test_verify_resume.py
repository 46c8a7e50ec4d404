"""``glasslog verify log --resume``: a verifier checks only what the log added since it last verified.

The state (tree size, root, frontier, checkpoint) is kept in a 0600 file
outside the log. Resuming re-hashes the new entries into the kept frontier
and checks the log's consistency proof; it fails at the index of a tampered
new entry, and names the verified size when the log was rolled back. It does
not re-read old entries (the documented trade-off): an edit to one is found
only by a whole-log audit.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat

import pytest
from typer.testing import CliRunner

from glasslog.cli import app as cli
from glasslog.ledger import Ledger, utc_now
from glasslog.verify import audit_log
from glasslog.verify.resume import VerifierState, resume_audit, state_after_audit

ORIGIN = "bank.example/resume"
runner = CliRunner()


def deployments(a: int, b: int) -> list[dict]:
    return [{"type": "deployment", "v": 1, "deployment": f"d{i}", "visibility": "public-service", "description": "t",
             "time": utc_now()} for i in range(a, b)]


def verify(d, state, *extra):
    res = runner.invoke(cli, ["verify", "log", "-d", str(d), "--state-file", str(state), *extra])
    return res.exit_code, " ".join(res.output.split())


@pytest.fixture()
def log(tmp_path):
    d = tmp_path / "log"
    with Ledger.create(d, ORIGIN) as lg:
        for k in range(5):
            lg.append(deployments(40 * k, 40 * k + 40))
    return d


def test_resume_after_appends_checks_only_the_new_entries(log, tmp_path):
    vkey = (log / "log.vkey").read_text().strip()
    state = tmp_path / "cfg" / "verified.json"
    code, text = verify(log, state, "--key", vkey)
    assert code == 0 and "200 entries rehashed" in text and "verified tree size 200 kept" in text
    assert stat.S_IMODE(state.stat().st_mode) == 0o600 and stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    kept = json.loads(state.read_text())
    assert kept["tree_size"] == 200 and kept["verifier_key"] == vkey and kept["key_source"] == "given"
    with Ledger.open(log) as lg:
        lg.append(deployments(200, 290))
        lg.append(deployments(290, 300))
    code, text = verify(log, state, "--key", vkey)
    assert code == 0, text
    assert "resumed from the checkpoint verified before at tree size 200: 100 new entries rehashed" in text
    assert "3 signed checkpoints" in text and "warning" not in text
    assert json.loads(state.read_text())["tree_size"] == 300
    # without --key, the key kept in the state (given the first time) is used, without the database-key warning
    code, text = verify(log, state)
    assert code == 0 and "0 new entries rehashed" in text and "warning" not in text
    # a key other than the one verified with is refused, naming both
    other = "bank.example/resume+00000000+" + "A" * 43 + "="
    code, text = verify(log, state, "--key", other)
    assert code == 2


def test_resume_after_a_tampered_new_entry_fails_at_its_index(log, tmp_path):
    state = tmp_path / "s.json"
    assert verify(log, state)[0] == 0
    with Ledger.open(log) as lg:
        lg.append(deployments(200, 260))
    con = sqlite3.connect(log / "log.db")
    con.execute("UPDATE entries SET data = CAST(replace(CAST(data AS TEXT), 'd237', 'dX37') AS BLOB) WHERE idx = 237")
    con.commit()
    con.close()
    code, text = verify(log, state)
    assert code == 1 and "first bad index 237" in text and "entry 237 does not match its stored leaf hash" in text
    assert json.loads(state.read_text())["tree_size"] == 200  # a failed run keeps the old state


def test_resume_after_a_tampered_new_entry_with_rewritten_hashes_names_the_checkpoint(log, tmp_path):
    """The stored leaf hash rewritten too: the root recomputed from the kept frontier differs from the signed one."""
    from glasslog.ledger import merkle

    state = tmp_path / "s.json"
    assert verify(log, state)[0] == 0
    with Ledger.open(log) as lg:
        lg.append(deployments(200, 230))
        lg.append(deployments(230, 260))
        data = lg.entry(240).replace(b"d240", b"dX40")
    with Ledger.open(log) as lg:
        snapshot = {i: h for i, h in lg.stored_hashes(0, 0, 260)}
    snapshot[240] = merkle.leaf_hash(data)
    from glasslog.storage.strips import strip_id
    con = sqlite3.connect(log / "log.db")
    con.execute("UPDATE entries SET data = ? WHERE idx = 240", (data,))
    first = (240 // 32) * 32  # rewrite the level-0 strip holding entry 240 so its stored leaf hash matches
    row = con.execute("SELECT strip FROM hashes WHERE id = ?", (strip_id(0, first),)).fetchone()
    strip = bytearray(row[0])
    strip[32 * (240 - first):32 * (240 - first) + 32] = snapshot[240]
    con.execute("UPDATE hashes SET strip = ? WHERE id = ?", (bytes(strip), strip_id(0, first)))
    con.commit()
    con.close()
    code, text = verify(log, state)
    assert code == 1 and "first bad index 230, checkpoint at tree size 260" in text, text
    assert "entries in [230, 260) differ from what the checkpoint at tree size 260 signed" in text


def test_resume_against_a_rolled_back_log_names_the_verified_size(log, tmp_path):
    state = tmp_path / "s.json"
    snapshot = tmp_path / "snapshot"
    shutil.copytree(log, snapshot)
    with Ledger.open(log) as lg:
        lg.append(deployments(200, 250))
    assert verify(log, state)[0] == 0
    code, text = verify(snapshot, state)  # the operator restored the older copy
    assert code == 1 and "first bad index 200, checkpoint at tree size 250" in text
    assert "holds 200 entries, fewer than the 250 verified before" in text


def test_resume_against_a_fork_after_the_verified_size(log, tmp_path):
    """Same origin and key, same first 200 entries, but another history since: the verified checkpoint differs."""
    state = tmp_path / "s.json"
    fork = tmp_path / "fork"
    shutil.copytree(log, fork)
    with Ledger.open(log) as lg:
        lg.append(deployments(200, 250))
    assert verify(log, state)[0] == 0
    with Ledger.open(fork) as lg:
        lg.append(deployments(900, 960))  # another 60 entries: tree size 260, not 250
    code, text = verify(fork, state)
    assert code == 1 and "checkpoint at tree size 250" in text and "no longer in the log" in text


def test_resume_does_not_re_read_old_entries_a_whole_audit_does(log, tmp_path):
    """The documented trade-off: an old entry edited after it was verified passes --resume, not the whole audit."""
    state = tmp_path / "s.json"
    assert verify(log, state)[0] == 0
    con = sqlite3.connect(log / "log.db")
    con.execute("UPDATE entries SET data = CAST(replace(CAST(data AS TEXT), 'd17', 'dX7') AS BLOB) WHERE idx = 17")
    con.commit()
    con.close()
    assert verify(log, state)[0] == 0
    res = runner.invoke(cli, ["verify", "log", "-d", str(log)])
    assert res.exit_code == 1 and "first bad index 17" in " ".join(res.output.split())


def test_malformed_state_is_rejected_not_repaired(log, tmp_path):
    state = tmp_path / "s.json"
    assert verify(log, state)[0] == 0
    kept = json.loads(state.read_text())
    kept["tree_size"] = 199
    state.write_text(json.dumps(kept))
    code, text = verify(log, state)
    assert code == 2 and "malformed" in text and "not repaired" in text
    state.write_text("{not json")
    assert verify(log, state)[0] == 2


def test_resume_api_round_trip(log, tmp_path):
    with Ledger.open(log) as lg:
        report = audit_log(lg)
        st = state_after_audit(lg, report, None)
        assert st is not None and st.tree_size == 200 and st.root == lg.root(200)
        path = tmp_path / "s.json"
        st.save(path)
        assert VerifierState.load(path) == st
        lg.append(deployments(200, 201))
        r, new = resume_audit(lg, st)
        assert r.ok and r.resumed_from == 200 and new is not None and new.tree_size == 201 and new.root == lg.root(201)


def test_resume_against_a_fork_before_the_verified_size_names_where_it_diverges(tmp_path):
    """The tester's case: verified at 606, a fork (same key, re-signed) that diverges at 605 with ~20 checkpoints
    after: the report names 605 (not 606) and does not list one line per later checkpoint."""
    honest, fork, state = tmp_path / "honest", tmp_path / "fork", tmp_path / "s.json"
    with Ledger.create(honest, ORIGIN) as lg:
        lg.append(deployments(0, 605))
    shutil.copytree(honest, fork)
    with Ledger.open(honest) as lg:
        lg.append(deployments(605, 606))
    assert verify(honest, state)[0] == 0
    with Ledger.open(fork) as lg:
        for k in range(20):
            lg.append(deployments(5000 + 5 * k, 5005 + 5 * k))
    code, text = verify(fork, state)
    assert code == 1
    # the kept frontier of 606 holds subtrees [0,512) .. [604,606): the divergence is proven to lie in the last one
    assert "the first entry that differs from the tree verified before is in [604, 606)" in text, text
    assert "first bad index 606" not in text and "differ from what the checkpoint" not in text
    assert "20 later signed checkpoints (tree sizes 610..705) sign trees built on that other history" in text
    # verified at 607 (frontier ends with the one-leaf subtree [606, 607)), diverging at 606: the index itself
    honest2, fork2, state2 = tmp_path / "honest2", tmp_path / "fork2", tmp_path / "s2.json"
    shutil.copytree(honest, honest2)
    shutil.copytree(honest, fork2)
    with Ledger.open(honest2) as lg:
        lg.append(deployments(606, 607))
    assert verify(honest2, state2)[0] == 0
    with Ledger.open(fork2) as lg:
        lg.append(deployments(7000, 7003))
    code, text = verify(fork2, state2)
    assert code == 1 and "first bad index 606" in text and "entry 606 is the first that differs" in text, text


def test_resume_names_the_range_when_the_divergence_is_inside_a_larger_subtree(tmp_path):
    honest, fork, state = tmp_path / "honest", tmp_path / "fork", tmp_path / "s.json"
    with Ledger.create(honest, ORIGIN) as lg:
        lg.append(deployments(0, 100))
    shutil.copytree(honest, fork)
    with Ledger.open(honest) as lg:
        lg.append(deployments(100, 128))  # verified at 128: one subtree [0, 128)
    assert verify(honest, state)[0] == 0
    with Ledger.open(fork) as lg:
        lg.append(deployments(700, 740))
    code, text = verify(fork, state)
    assert code == 1 and "the first entry that differs from the tree verified before is in [0, 128)" in text, text
    assert "first bad index" not in text  # no index it cannot prove
