"""``verify replay``'s trust root: the replayed decisions must be the ones the log signed, with a key from outside.

Replay alone proves the registered weights reproduce what the database
holds; these tests show it also checks that what the database holds is what
the log's checkpoint signs, with the verifier key given on the command line
(never the database's own), and that without one it says so.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from typer.testing import CliRunner

from glasslog import capture
from glasslog.cli import app as cli
from glasslog.datasets.german_credit import credit_model, german_credit_features, load_german_credit, split
from glasslog.ledger import Ledger
from glasslog.ledger.note import Checkpoint, generate_signer, sign_note
from glasslog.registry import ClaimedMetrics, ModelCard, Registry, fingerprint_frame
from glasslog.verify.anchor import signed_entries

ORIGIN = "bank.example/trust-root"
runner = CliRunner()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    X, y = load_german_credit()
    train, evaluation, deploy = split(len(X), 0)
    model = credit_model(X, 0).fit(X.iloc[train], y.iloc[train])
    card = ModelCard(name="scorecard", version="t", provider="tests", intended_use="tests",
                     features=german_credit_features(X), output={"classes": [0, 1], "positive": 1},
                     training_data_fingerprint=fingerprint_frame(X.iloc[train]),
                     claimed=ClaimedMetrics({"accuracy": 0.755}, fingerprint_frame(X.iloc[evaluation]), len(evaluation)))
    d = tmp_path_factory.mktemp("trust") / "log"
    with Ledger.create(d, ORIGIN) as lg:
        record = Registry(lg).register(model, card)
        wrapped = capture.wrap(lg, record.fingerprint, "bank.example/credit", visibility="public-service")
        wrapped.predict_proba(X.iloc[deploy[:12]])
        wrapped.predict_proba(X.iloc[deploy[12:20]])
        decisions = [i for i, _ in lg.entries_of_type("decision")]
    return d, decisions


def replay(d, *extra):
    res = runner.invoke(cli, ["verify", "replay", "-d", str(d), *extra])
    return res.exit_code, " ".join(res.output.split())


def copy(d, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(d, out)
    return out


def test_replay_with_the_key_given_says_so(logged):
    d, decisions = logged
    vkey = (d / "log.vkey").read_text().strip()
    code, text = replay(d, "--key", vkey)
    assert code == 0, text
    assert f"{len(decisions)} decisions and generations are in the tree the checkpoint at tree size" in text
    assert "checked with the verifier key given" in text and "warning" not in text
    res = runner.invoke(cli, ["verify", "replay", "-d", str(d), "--key-file", str(d / "log.vkey"), "--json"])
    signed = json.loads(res.output)["signed"]
    assert res.exit_code == 0 and signed["key_source"] == "given" and signed["checked"] == len(decisions)


def test_replay_without_a_key_warns_that_it_trusts_the_stored_key(logged):
    d, _ = logged
    code, text = replay(d)
    assert code == 0 and "warning" in text and "stored in the database" in text


def test_replay_of_an_edited_decision_fails_at_its_index(logged, tmp_path):
    """A decision rewritten in the database: it still replays, but its leaf hash, recomputed from its bytes, is not in the
    signed tree (whatever the stored hashes say)."""
    d, decisions = logged
    target = decisions[5]
    c = copy(d, tmp_path)
    con = sqlite3.connect(c / "log.db")
    data = con.execute("SELECT data FROM entries WHERE idx = ?", (target,)).fetchone()[0]
    con.execute("UPDATE entries SET data = ? WHERE idx = ?", (bytes(data).replace(b"bank.example/credit",
                                                                                b"bank.example/credix"), target))
    con.commit()
    con.close()
    code, text = replay(c, "--key-file", str(d / "log.vkey"))
    assert code == 1 and f"first bad index {target}" in text and f"entry {target} is not the one the checkpoint" in text


def test_replay_of_a_re_keyed_database_fails_with_the_published_key(logged, tmp_path):
    """Every checkpoint re-signed with a new key and that key written into the database: only the key given catches it."""
    d, _ = logged
    c = copy(d, tmp_path)
    forger = generate_signer(ORIGIN)
    con = sqlite3.connect(c / "log.db")
    for size, root in con.execute("SELECT tree_size, root FROM checkpoints").fetchall():
        con.execute("UPDATE checkpoints SET note = ? WHERE tree_size = ?",
                    (sign_note(Checkpoint(ORIGIN, size, bytes(root)).text(), forger), size))
    con.execute("UPDATE meta SET value = ? WHERE key = 'verifier_key'", (str(forger.verifier()),))
    con.commit()
    con.close()
    assert replay(c)[0] == 0  # with the database's own key it passes, with a warning
    code, text = replay(c, "--key-file", str(d / "log.vkey"))
    assert code == 1 and "re-keyed" in text and "does not open with the verifier key" in text


def test_signed_entries_counts_what_it_checked(logged):
    d, decisions = logged
    with Ledger.open(d) as lg:
        r = signed_entries(lg, ("decision",))
    assert r.ok and r.key_source == "database" and r.checked == len(decisions) and r.uncovered == 0
