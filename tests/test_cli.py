"""The `glasslog` command line: the demo, every command, exit codes and bad input."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from glasslog.cli import app
from glasslog.ledger import merkle
from glasslog.ledger.note import Verifier, open_checkpoint

runner = CliRunner()


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo") / "data"
    r = run("demo", "--data-dir", d, "--json")
    assert r.exit_code == 0, r.output
    return d, json.loads(r.stdout)


@pytest.fixture
def copy_of_demo(demo_dir, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(demo_dir[0], d)
    return d


def test_demo_summary_has_real_figures(demo_dir):
    _, s = demo_dir
    assert s["ok"] is True
    assert s["decisions"] == 300 and s["outcomes"] == 300 and s["batches"] == 10
    assert s["tree_size"] == 602  # registration, deployment declaration, 300 decisions, 300 outcomes
    assert s["claimed"]["accuracy"] == pytest.approx(0.755)
    assert s["claimed"]["roc_auc"] == pytest.approx(0.7798, abs=1e-4)
    assert s["realised"]["accuracy"] == pytest.approx(223 / 300)
    assert s["realised"]["claim_within_interval"] is True
    assert s["log_audit"]["ok"] and s["log_audit"]["checkpoints"] == 14  # empty tree, registration, declaration, 10 batches, outcomes
    assert s["replay"]["matched"] == 300 and s["replay"]["max_abs_diff"] <= 1e-9
    assert s["receipts_ok"] and os.path.exists(s["receipt_file"])


def test_demo_rerun_appends_a_new_deployment(copy_of_demo):
    r = run("demo", "--data-dir", copy_of_demo, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["deployment"].endswith("/deployment-2")
    assert s["model_registered_now"] is False
    assert s["tree_size"] == 1203 and s["log_audit"]["ok"]


def test_demo_human_output(tmp_path):
    r = run("demo", "--data-dir", tmp_path / "d")
    assert r.exit_code == 0, r.output
    assert "Claimed vs realised" in r.stdout and "verified" in r.stdout and "FAILED" not in r.stdout


def test_console_script_installed():
    exe = shutil.which("glasslog", path=os.path.dirname(sys.executable))
    assert exe, "the glasslog console script is not installed next to this Python"
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "verify" in r.stdout


def test_init(tmp_path):
    d = tmp_path / "log"
    r = run("init", "--origin", "agency.example/risk", "--data-dir", d)
    assert r.exit_code == 0, r.output
    vkey = (d / "log.vkey").read_text().strip()
    assert vkey in r.stdout and Verifier.parse(vkey).name == "agency.example/risk"
    assert stat.S_IMODE((d / "log.key").stat().st_mode) == 0o600
    r = run("init", "--origin", "agency.example/risk", "--data-dir", d)
    assert r.exit_code == 2 and "already holds a log" in r.output
    assert run("init", "--origin", "has space", "--data-dir", tmp_path / "x").exit_code == 2
    r = run("checkpoint", "--data-dir", d, "--json")
    assert json.loads(r.stdout)["tree_size"] == 0


def test_data_dir_from_environment(demo_dir):
    r = run("checkpoint", "--json", env={"GLASSLOG_DATA_DIR": str(demo_dir[0])})
    assert r.exit_code == 0 and json.loads(r.stdout)["tree_size"] == 602


def test_checkpoint_entry_and_proofs_verify(demo_dir):
    d, s = demo_dir
    vkey = Verifier.parse(s["verifier_key"])
    note = run("checkpoint", "--data-dir", d).stdout
    cp = open_checkpoint(note, vkey)
    assert cp.tree_size == 602
    e = json.loads(run("entry", "5", "--data-dir", d, "--json").stdout)
    assert e["entry"]["type"] == "decision"
    p = json.loads(run("prove", "inclusion", "5", "--data-dir", d, "--json").stdout)
    merkle.verify_inclusion(5, 602, base64.b64decode(p["leaf_hash"]), [base64.b64decode(x) for x in p["proof"]], cp.root_hash)
    c = json.loads(run("prove", "consistency", "100", "--data-dir", d, "--json").stdout)
    merkle.verify_consistency(100, 602, base64.b64decode(c["old_root"]), cp.root_hash, [base64.b64decode(x) for x in c["proof"]])


@pytest.mark.parametrize("args,message", [
    (["entry", "602"], "no entry 602"),
    (["prove", "inclusion", "700"], "outside"),
    (["prove", "inclusion", "5", "--tree-size", "5"], "outside"),
    (["prove", "consistency", "700"], "larger"),
    (["prove", "inclusion", "5", "--tree-size", "9999"], "outside"),
    (["checkpoint", "--tree-size", "7"], "no signed checkpoint"),
    (["models", "show", "sha256:000000000000"], "unknown model"),
    (["models", "show", "sha256:0000"], "too short"),
    (["entry", "abc"], "Usage"),
])
def test_bad_usage_exits_2(demo_dir, args, message):
    r = run(*args, "--data-dir", demo_dir[0])
    assert r.exit_code == 2
    assert message in r.output


def test_missing_log_exits_2(tmp_path):
    r = run("checkpoint", "--data-dir", tmp_path / "nothing")
    assert r.exit_code == 2 and "glasslog init" in r.output


def test_verify_receipt_good_tampered_malformed(demo_dir, tmp_path):
    d, s = demo_dir
    good = s["receipt_file"]
    r = run("verify", "receipt", good, "--data-dir", d)
    assert r.exit_code == 0 and "Receipt verified" in r.stdout
    r = run("verify", "receipt", good, "--key", s["verifier_key"], "--data-dir", tmp_path)
    assert r.exit_code == 0
    receipt = json.loads(open(good).read())
    raw = bytearray(base64.b64decode(receipt["entry"]))
    raw[raw.index(b'"deployment":"') + 14] ^= 1
    receipt["entry"] = base64.b64encode(bytes(raw)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(receipt))
    r = run("verify", "receipt", bad, "--data-dir", d, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["ok"] is False
    (tmp_path / "junk.json").write_text("{not json")
    assert run("verify", "receipt", tmp_path / "junk.json", "--data-dir", d).exit_code == 2
    assert run("verify", "receipt", tmp_path / "absent.json", "--data-dir", d).exit_code == 2
    r = run("verify", "receipt", good, "--key", "not-a-key", "--data-dir", d)
    assert r.exit_code == 2 and "malformed verifier key" in r.output
    r = run("verify", "receipt", good, "--key", (d / "log.key").read_text(), "--data-dir", d)
    assert r.exit_code == 2 and "PRIVATE signing key" in r.output
    other = run("init", "--origin", "bank.example/credit-decisions", "--data-dir", tmp_path / "other", "--json")
    r = run("verify", "receipt", good, "--key", json.loads(other.stdout)["verifier_key"], "--data-dir", d)
    assert r.exit_code == 1 and "NOT verified" in r.stdout
    r = run("verify", "receipt", good, "--data-dir", tmp_path / "nowhere")
    assert r.exit_code == 2 and "no verifier key" in r.output


def test_receipt_export(demo_dir, tmp_path):
    d, _ = demo_dir
    r = run("receipt", "--subject", "applicant-0001", "--out", tmp_path / "mine", "--data-dir", d)
    files = list((tmp_path / "mine").glob("receipt-*.json"))
    assert r.exit_code == 0 and len(files) >= 1
    assert run("verify", "receipt", files[0], "--data-dir", d).exit_code == 0
    assert run("receipt", "--subject", "nobody", "--data-dir", d).exit_code == 2
    assert run("receipt", "--data-dir", d).exit_code == 2
    r = run("receipt", "5", "--out", tmp_path / "new" / "deeper" / "r.json", "--data-dir", d)
    assert r.exit_code == 0 and (tmp_path / "new" / "deeper" / "r.json").is_file()
    assert "created the missing directory" in r.output  # not silently
    r = run("receipt", "5", "--out", tmp_path / "mine", "--data-dir", d)
    assert r.exit_code == 0 and (tmp_path / "mine" / "receipt-5.json").is_file()
    r = run("receipt", "--subject", "applicant-0001", "--out", tmp_path / "new" / "deeper" / "r.json", "--data-dir", d)
    assert r.exit_code == 2 and "is a file" in r.output
    r = run("entry", "99999999999999999999", "--data-dir", d)
    assert r.exit_code == 2 and "no entry" in r.output
    (tmp_path / "afile").write_text("x")
    assert run("init", "--origin", "a.test/b", "--data-dir", tmp_path / "afile").exit_code == 2


def test_verify_log_and_replay(copy_of_demo):
    d = copy_of_demo
    assert run("verify", "log", "--data-dir", d).exit_code == 0
    r = run("verify", "replay", "--data-dir", d, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["matched"] == 300
    db = sqlite3.connect(d / "log.db")
    data = db.execute("SELECT data FROM entries WHERE idx = 123").fetchone()[0]
    db.execute("UPDATE entries SET data = ? WHERE idx = 123", (data.replace(b'"time":"2', b'"time":"1'),))
    db.commit()
    r = run("verify", "log", "--data-dir", d, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["first_bad_index"] == 123


def test_models_and_kill_switch(copy_of_demo):
    d = copy_of_demo
    models = json.loads(run("models", "list", "--data-dir", d, "--json").stdout)
    assert len(models) == 1 and models[0]["status"] == "active"
    fp = models[0]["fingerprint"]
    shown = json.loads(run("models", "show", fp[:20], "--data-dir", d, "--json").stdout)
    assert shown["card"]["claimed"]["metrics"]["accuracy"] == pytest.approx(0.755)
    assert run("models", "show", fp[:20], "--data-dir", d).exit_code == 0
    r = run("models", "set-status", fp, "suspended", "--reason", "supervisory review", "--data-dir", d)
    assert r.exit_code == 0
    assert json.loads(run("models", "list", "--data-dir", d, "--json").stdout)[0]["status"] == "suspended"
    size = json.loads(run("checkpoint", "--data-dir", d, "--json").stdout)["tree_size"]
    r = run("demo", "--data-dir", d)
    assert r.exit_code == 2 and "suspended" in r.output
    assert json.loads(run("checkpoint", "--data-dir", d, "--json").stdout)["tree_size"] == size  # nothing written
    assert run("models", "set-status", fp, "paused", "--reason", "x", "--data-dir", d).exit_code == 2
    assert run("models", "set-status", fp, "active", "--data-dir", d).exit_code == 2  # --reason is required


def test_key_file_permissions_are_enforced(copy_of_demo):
    d = copy_of_demo
    os.chmod(d / "log.key", 0o644)
    fp = json.loads(run("models", "list", "--data-dir", d, "--json").stdout)[0]["fingerprint"]
    before = json.loads(run("checkpoint", "--data-dir", d, "--json").stdout)["tree_size"]
    r = run("models", "set-status", fp, "suspended", "--reason", "x", "--data-dir", d)
    assert r.exit_code == 2 and "0644" in r.output and "chmod 600" in r.output
    assert json.loads(run("checkpoint", "--data-dir", d, "--json").stdout)["tree_size"] == before
    os.chmod(d / "log.key", 0o600)
    (d / "log.key").write_text("PRIVATE+KEY+garbage\n")
    os.chmod(d / "log.key", 0o600)
    r = run("models", "set-status", fp, "suspended", "--reason", "x", "--data-dir", d)
    assert r.exit_code == 2 and "corrupt" in r.output


def test_verify_kept_checkpoint(copy_of_demo, tmp_path):
    d = copy_of_demo
    kept = tmp_path / "kept.note"
    kept.write_text(run("checkpoint", "--data-dir", d).stdout)
    assert run("demo", "--data-dir", d).exit_code == 0  # the log grows
    r = run("verify", "checkpoint", kept, "--key-file", d / "log.vkey", "--data-dir", d, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["ok"] and (res["old_size"], res["new_size"]) == (602, 1203)
    # a checkpoint the log never signed (forged root) or from another key fails
    forged = kept.read_text().replace(kept.read_text().splitlines()[2], base64.b64encode(b"\x01" * 32).decode())
    kept.write_text(forged)
    r = run("verify", "checkpoint", kept, "--key-file", d / "log.vkey", "--data-dir", d)
    assert r.exit_code == 1 and "NOT consistent" in r.stdout


def test_keys_create_list_revoke(copy_of_demo):
    d = copy_of_demo
    r = run("keys", "create", "--role", "supervisor", "--name", "Financial supervisory authority", "--data-dir", d, "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["token"].startswith(f"glk_{created['key_id']}_") and created["role"] == "supervisor"
    listed = json.loads(run("keys", "list", "--data-dir", d, "--json").stdout)
    assert [k["key_id"] for k in listed] == [created["key_id"]] and "token" not in listed[0]
    db = sqlite3.connect(d / "log.db")
    stored = db.execute("SELECT secret_hash FROM api_keys").fetchone()[0]
    assert created["token"].split("_", 2)[2].encode() not in stored  # only a hash is stored
    from glasslog.access import AuthError, KeyStore
    from glasslog.ledger import Ledger

    with Ledger.open(d) as lg:
        assert KeyStore(lg).authenticate(created["token"]).role == "supervisor"
    assert run("keys", "revoke", created["key_id"], "--data-dir", d).exit_code == 0
    with Ledger.open(d) as lg, pytest.raises(AuthError, match="revoked"):
        KeyStore(lg).authenticate(created["token"])
    assert run("keys", "revoke", created["key_id"], "--data-dir", d).exit_code == 2
    r = run("keys", "create", "--role", "public", "--name", "x", "--data-dir", d)
    assert r.exit_code == 2 and "role must be one of" in r.output
    r = run("keys", "create", "--role", "researcher", "--name", "x", "--deployment", "nope", "--data-dir", d)
    assert r.exit_code == 2


def test_serve_says_plainly_when_the_port_is_taken(tmp_path):
    import socket

    assert run("init", "-d", tmp_path / "log", "--origin", "example.org/serve").exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run("serve", "-d", tmp_path / "log", "--port", port)
    assert r.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.output and "serving" not in r.output


def test_serve_trusts_forwarded_headers_only_from_named_proxies(tmp_path, monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    assert run("init", "-d", tmp_path / "log", "--origin", "example.org/proxy").exit_code == 0
    assert run("serve", "-d", tmp_path / "log", "--port", 0).exit_code == 0
    assert calls[-1]["proxy_headers"] is False and "forwarded_allow_ips" not in calls[-1]
    assert run("serve", "-d", tmp_path / "log", "--port", 0, "--forwarded-allow-ips", "10.0.0.5").exit_code == 0
    assert calls[-1]["proxy_headers"] is True and calls[-1]["forwarded_allow_ips"] == "10.0.0.5"
