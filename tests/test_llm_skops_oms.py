"""A skops file fingerprinted as a one-file OMS manifest (new registrations, stated in the card); old ones unchanged.

The root digest is compared with what ``model_signing`` signs for a folder holding the one file ``model.skops``.
Existing registrations (SHA-256 of the bytes) and a log written before keep verifying and loading as they did.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace

import pytest

pytest.importorskip("model_signing", reason="the llm extra is not installed (pip install 'glasslog[llm]')")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from glasslog.cli import app  # noqa: E402
from glasslog.ledger import Ledger  # noqa: E402
from glasslog.registry import ArtifactError, Feature, Registry, RegistryError, dump_model  # noqa: E402
from glasslog.verify.log_audit import audit_log  # noqa: E402

from .test_llm_registry import ec_keypair, make_card, oms_subject_digest, sign_dir  # noqa: E402


def skops_bytes(c: float = 1.0) -> bytes:
    return dump_model(LogisticRegression(C=c).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]))


def card(version: str, **extra):
    return make_card(version=version, features=(Feature("x"),), output={"classes": [0, 1]}, extra=extra)


@pytest.fixture
def lg(tmp_path):
    ledger = Ledger.create(tmp_path / "log", "provider.example/models")
    yield ledger
    ledger.close()


def test_oms_file_fingerprint_equals_model_signing_and_is_stated(tmp_path, lg):
    data, old_data = skops_bytes(), skops_bytes(0.5)
    old = Registry(lg).register_artifact(old_data, card("old"))  # the default: unchanged
    assert old.fingerprint == "sha256:" + hashlib.sha256(old_data).hexdigest() and old.artifact is None
    new = Registry(lg).register_artifact(data, card("new"), oms=True)
    # model_signing's own signature over a folder holding the one file carries the same root digest
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "model.skops").write_bytes(data)
    private, _ = ec_keypair(tmp_path)
    assert new.fingerprint == "sha256:" + oms_subject_digest(sign_dir(folder, private, tmp_path / "one.sig"))
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    assert new.fingerprint != sha and new.artifact_sha256 == sha and not new.is_directory
    assert new.artifact["format"] == "oms-file" and new.artifact["files"] == {"model.skops": sha}
    assert new.card.extra["fingerprint_scheme"] == "oms-file"  # stated in the card, on the record
    entry = json.loads(lg.entry(new.registered_index))
    assert entry["card"]["extra"]["fingerprint_scheme"] == "oms-file" and entry["artifact"]["root_digest"] == new.fingerprint
    # loads and downloads check the file's digest; both kinds load
    reg = Registry(lg)
    assert reg.load(new.fingerprint).predict([[3.0]])[0] == 1 and reg.load(old.fingerprint).predict([[0.0]])[0] == 0
    assert reg.download(new.fingerprint)[0] == data
    assert audit_log(lg).ok
    # one byte changed in the stored copy: refused by load and download, naming the fingerprint
    stored = reg.artifact_path(new.fingerprint)
    raw = bytearray(stored.read_bytes())
    raw[-1] ^= 1
    stored.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="refusing"):
        reg.load(new.fingerprint)
    with pytest.raises(ArtifactError, match=new.fingerprint):
        reg.download(new.fingerprint)


def test_card_chooses_the_scheme_cli_path_and_bad_scheme_refused(tmp_path, lg):
    data = skops_bytes(2.0)
    path = tmp_path / "m.skops"
    path.write_bytes(data)
    size = lg.size
    with pytest.raises(RegistryError, match="fingerprint_scheme"):
        Registry(lg).register_artifact(data, card("x", fingerprint_scheme="md5"))
    with pytest.raises(RegistryError, match="fingerprint_scheme"):
        Registry(lg).register_artifact(data, card("x", fingerprint_scheme="oms-file"), oms=False)
    assert lg.size == size
    lg.close()
    card_file = tmp_path / "card.json"
    card_file.write_text(json.dumps(card("cli", fingerprint_scheme="oms-file").to_dict()))
    r = CliRunner().invoke(app, ["models", "register", str(path), "--card", str(card_file), "-d", str(tmp_path / "log"),
                                 "--json"])
    assert r.exit_code == 0, r.output
    fp = json.loads(r.output)["fingerprint"]
    reopened = Ledger.open(tmp_path / "log")
    try:
        m = Registry(reopened).get(fp)
        assert m.artifact["format"] == "oms-file" and m.artifact_sha256 == "sha256:" + hashlib.sha256(data).hexdigest()
    finally:
        reopened.close()


def test_a_log_written_before_keeps_verifying_and_loading(tmp_path):
    """A log of SHA-256-fingerprinted skops models (the German Credit demo's registration) reads as before."""
    from glasslog.demo.run import run_demo

    d = tmp_path / "demo"
    summary = run_demo(d)
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    lg = Ledger.open(copy)
    try:
        m = Registry(lg).get(summary.model)
        assert m.artifact is None and m.artifact_sha256 == m.fingerprint
        raw = Registry(lg).artifact_path(m.fingerprint).read_bytes()
        assert m.fingerprint == "sha256:" + hashlib.sha256(raw).hexdigest()
        assert Registry(lg).load(m.fingerprint) is not None
        assert audit_log(lg).ok
        assert replace(m.card).extra.get("fingerprint_scheme") is None
    finally:
        lg.close()
