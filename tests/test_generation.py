"""Generations on the record: TOPLOC commitments, capture, replay (honest and tampered), bad input.

Uses the small test causal LM built from a config with a fixed seed (nothing is downloaded).
"""

from __future__ import annotations

import base64
import json
import os
import random
import time

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch", reason="the llm extra (torch, transformers, safetensors, model-signing) is not installed")
pytest.importorskip("transformers", reason="the llm extra is not installed")
pytest.importorskip("model_signing", reason="the llm extra is not installed")

from glasslog.capture import InputError, ModelNotActiveError, open_log, receipt  # noqa: E402
from glasslog.capture.generator import render_prompt, wrap_generator  # noqa: E402
from glasslog.demo.generative import register_model_dir  # noqa: E402
from glasslog.demo.testmodels import build_causal_lm, load_causal_lm, perturbed_copy  # noqa: E402
from glasslog.ledger import Entry, EntryError  # noqa: E402
from glasslog.ledger.receipt import Receipt  # noqa: E402
from glasslog.registry import Registry  # noqa: E402
from glasslog.verify import generation_replay as gr  # noqa: E402
from glasslog.verify import toploc  # noqa: E402
from glasslog.verify.receipts import verify_receipt  # noqa: E402

torch.set_num_threads(1)  # tiny models: one thread is faster, and two oversubscribe a shared 2-core machine badly

# Fixed thresholds for the tamper tests (the calibrated ones are measured in test_calibration_* and bench/).
STRICT = gr.Thresholds(exp_mismatches=1, mant_err_mean=0.1, mant_err_median=1.0, logit_gap=1e-4, logprob_z=-6.0)


# --------------------------------------------------------------------------------------------------------- TOPLOC


def _literal_newton(x, y):
    """The reference's Newton divided differences expanded to monomial coefficients, transcribed literally (slow)."""
    P, n = toploc.PRIME, len(x)
    dd = [v % P for v in y]
    for k in range(1, n):
        for i in range(n - 1, k - 1, -1):
            dd[i] = ((dd[i] - dd[i - 1]) % P) * pow((x[i] - x[i - k]) % P, P - 2, P) % P
    coeffs, factor = [0] * n, [0] * n
    factor[0] = 1
    for i in range(n):
        for j in range(i + 1):
            coeffs[j] = (coeffs[j] + dd[i] * factor[j]) % P
        if i + 1 < n:
            minus, prev = (-x[i]) % P, factor[0]
            factor[0] = prev * minus % P
            for k in range(1, i + 2):
                old = factor[k]
                factor[k] = (prev + old * minus) % P
                prev = old
    return coeffs


def test_vectorised_interpolation_equals_the_reference_arithmetic():
    rng = random.Random(5)
    for _ in range(3):
        x = rng.sample(range(40000), 128)
        y = [rng.randrange(65536) for _ in x]
        ours = toploc.interpolate(np.array([x]), np.array([y]))[0]
        assert list(ours) == _literal_newton(x, y)
        assert (toploc.evaluate(ours, np.array(x)) == np.array(y) % toploc.PRIME).all()


def test_master_polynomial_is_exact():
    # the product tree uses float64 (Toeplitz products, FFT for long factors): check it against exact integers
    rng = random.Random(9)
    for k in (1, 5, 64, 128, 128, 128):
        x = rng.sample(range(toploc.PRIME), k)
        exact = [1]
        for xi in x:  # multiply by (X - xi)
            exact = [((exact[j - 1] if j else 0) - xi * (exact[j] if j < len(exact) else 0)) % toploc.PRIME
                     for j in range(len(exact) + 1)]
        assert list(toploc._master(np.array([x]))[0]) == exact


def test_commitment_bytes_match_the_reference_readme_vector():
    # PrimeIntellect-ai/toploc README: build_proofs_base64(..., decode_batching_size=3, topk=4) -> first proof.
    # Its polynomial takes, on 0..79, values of magnitude in (2, 3.5) exactly at 35, 63, 70 and 79 (the
    # top 4 of 80 normal draws); a chunk with those values there and small ones elsewhere must encode to the same bytes.
    proof = base64.b64decode("/9kbQitnukt1bQ==")
    m, coeffs = toploc.decode(proof, k=4)
    assert m == 65497
    values = toploc.evaluate(coeffs, np.arange(80)).astype(np.uint16)
    as_float = torch.from_numpy(values.astype(np.int16)).view(torch.bfloat16).float()
    top = sorted(int(i) for i in torch.nonzero(as_float.abs().lt(3.5) & as_float.abs().gt(2)).flatten())
    assert top == [35, 63, 70, 79]
    chunk = torch.full((80,), 0.01, dtype=torch.bfloat16).view(torch.uint16).numpy().copy()
    chunk[top] = values[top]
    assert toploc.encode(chunk, k=4) == proof


def test_commitment_is_258_bytes_and_encodes_fast():
    h = torch.randn(32 * 384).to(torch.bfloat16).view(torch.uint16).numpy()
    c = toploc.encode(h)
    assert len(c) == toploc.COMMITMENT_BYTES == 258
    times = []
    for _ in range(20):
        t = time.perf_counter()
        toploc.encode(h)
        times.append(time.perf_counter() - t)
    assert sorted(times)[len(times) // 2] < 0.005  # measured about 0.5 ms on 2 shared cores; pure Python takes ~30 ms
    assert toploc.check_bits(h, c).exact


def test_malformed_commitments_are_refused():
    good = toploc.encode(torch.randn(4096).to(torch.bfloat16).view(torch.uint16).numpy())
    with pytest.raises(toploc.CommitmentError, match="258 bytes"):
        toploc.decode(good[:-2])
    with pytest.raises(toploc.CommitmentError, match="modulus"):
        toploc.decode(b"\x00\x01" + good[2:])
    with pytest.raises(toploc.CommitmentError, match="coefficient"):
        toploc.decode(good[:2] + b"\xff\xff" + good[4:])
    with pytest.raises(toploc.CommitmentError, match="base64"):
        toploc.from_b64("not base64!")


# ------------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_causal_lm(tmp_path_factory.mktemp("lm") / "seed0", seed=0)


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory):
    return build_causal_lm(tmp_path_factory.mktemp("lm") / "seed1", seed=1)


@pytest.fixture()
def setup(tmp_path, model_dir):
    log = open_log(tmp_path / "data", create=True, origin="test.example/generations")
    fp = register_model_dir(log, model_dir, name="test-lm", version="1")
    return log, fp


def _gen(log, fp, model_dir, dep="t/public", visibility="public-service"):
    return wrap_generator(log, fp, dep, model_dir=model_dir, visibility=visibility)


# --------------------------------------------------------------------------------------------------------- capture


def test_generation_entries_receipts_and_honest_replay(setup, model_dir, tmp_path):
    log, fp = setup
    pub = _gen(log, fp, model_dir)
    res = pub.generate(["Dear applicant,", [{"role": "user", "content": "Summarise the case."}]],
                       subject_ids=["case-1", None], max_new_tokens=70)
    assert [r.index for r in res] == [pub.last_batch.first_index, pub.last_batch.first_index + 1]
    e = json.loads(log.entry(res[0].index))
    assert e["type"] == "generation" and e["output"] == res[0].text and e["output_tokens"] == res[0].tokens
    assert e["tokens"] == {"prompt": res[0].prompt_tokens, "output": 70}
    assert len(e["activations"]["commitments"]) == 1 + -(-69 // 32) == 4
    assert all(len(base64.b64decode(c)) == 258 for c in e["activations"]["commitments"])
    assert e["sampling"]["do_sample"] is False and e["runtime"]["dtype"] == "float32"
    assert e["runtime"]["torch"] == torch.__version__ and "subject" in e
    assert "subject" not in json.loads(log.entry(res[1].index))
    priv = _gen(log, fp, model_dir, dep="t/private", visibility="private")
    sampled = priv.generate(["The committee finds"], max_new_tokens=40, do_sample=True, temperature=0.8, top_p=0.9)
    pe = json.loads(log.entry(sampled[0].index))
    assert "output" not in pe and "output_tokens" not in pe and pe["output_commitment"].startswith("sha256:")
    assert pe["sampling"]["seed"] is not None  # drawn and logged
    r = receipt(log, res[0].index)
    rep = verify_receipt(Receipt.from_json(r.to_json()), log.verifier_key)
    assert rep.ok, rep.checks
    assert {c.name for c in rep.checks} >= {"prompt commitment", "subject commitment"}
    from typer.testing import CliRunner

    from glasslog.cli import app

    path = tmp_path / "r.json"
    path.write_text(r.to_json())
    out = CliRunner().invoke(app, ["verify", "receipt", str(path), "--key", log.verifier_key])
    said = " ".join(out.output.split())
    assert out.exit_code == 0 and "whose generation: case-1" in said and "whose decision" not in said, said
    report = gr.replay_generations(log, model_dir=model_dir)
    assert report.ok and report.checked == 3 and report.failed == 0, report.to_dict()
    assert report.exact + report.within_tolerance == 3


def test_honest_rerun_in_other_batch_shapes_verifies(setup, model_dir):
    log, fp = setup
    g = _gen(log, fp, model_dir)
    g.generate(gr.calibration_prompts(6, seed=3), max_new_tokens=40)  # a padded batch of 6
    for batch in (1, 3):
        report = gr.replay_generations(log, model_dir=model_dir, batch=batch, thresholds=STRICT)
        assert report.ok and report.checked == 6, report.to_dict()


def test_suspended_model_is_refused(setup, model_dir):
    log, fp = setup
    g = _gen(log, fp, model_dir)
    Registry(log).set_status(fp, "suspended", "kill switch test")
    size = log.size
    with pytest.raises(ModelNotActiveError, match="suspended"):
        g.generate(["Hello"], max_new_tokens=5)
    with pytest.raises(ModelNotActiveError, match="suspended"):
        _gen(log, fp, model_dir)
    assert log.size == size


def test_prompt_over_context_length_is_refused(setup, model_dir):
    log, fp = setup
    g = _gen(log, fp, model_dir)
    size = log.size
    with pytest.raises(InputError, match="context length of 512"):
        g.generate(["x" * 500], max_new_tokens=20)
    import logging

    from transformers.utils import logging as tf_logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    level = tf_logging.get_verbosity()
    tf_logging.set_verbosity_warning()  # transformers' default (another module may have lowered it)
    tf_logging.get_logger().addHandler(handler)
    try:
        with pytest.raises(InputError, match="context length of 512"):  # over the tokenizer's maximum: no warning first
            g.generate(["x y " * 2000], max_new_tokens=20)
        with pytest.raises(InputError, match="context length of 512"):
            g.generate([[{"role": "user", "content": "x y " * 2000}]], max_new_tokens=20)
    finally:
        tf_logging.get_logger().removeHandler(handler)
        tf_logging.set_verbosity(level)
    assert not [m for m in seen if "Token indices sequence length" in m], seen
    with pytest.raises(InputError, match="prompt"):
        g.generate([123], max_new_tokens=5)
    assert log.size == size


def test_malformed_commitment_in_a_receipt_is_reported(setup, model_dir):
    log, fp = setup
    g = _gen(log, fp, model_dir)
    idx = g.generate(["Hello"], max_new_tokens=8)[0].index
    d = json.loads(receipt(log, idx).to_json())
    entry = json.loads(base64.b64decode(d["entry"]))
    for bad, problem in ((entry["activations"]["commitments"][0][:-8], "258 bytes"), ("%%%", "base64"),
                         (base64.b64encode(b"\x00\x01" + bytes(256)).decode(), "modulus")):
        tampered = json.loads(json.dumps(entry))
        tampered["activations"]["commitments"][0] = bad
        from glasslog.ledger import canonical_json

        d2 = {**d, "entry": base64.b64encode(canonical_json(tampered)).decode()}
        rep = verify_receipt(Receipt.from_dict(d2), log.verifier_key)
        assert not rep.ok
        assert rep.checks[-1].name == "entry format" and problem in rep.checks[-1].detail
        assert "activations.commitments[0]" in rep.checks[-1].detail
    wrong_count = json.loads(json.dumps(entry))
    wrong_count["activations"]["commitments"].append(entry["activations"]["commitments"][0])
    with pytest.raises(EntryError, match="expected 2"):
        Entry.from_object(wrong_count)


# --------------------------------------------------------------------------------------------------------- tampers


def _honest(model_dir, texts, sampling, batch=4, lm=None):
    m, tok = load_causal_lm(model_dir)
    return gr._generate(lm or m, tok, texts, batch, sampling), m, tok


def _failed(lm, tok, ids, outs, coms, sampling, th=STRICT):
    return [r for r in gr._replay_all(lm, tok, ids, outs, coms, sampling, th)]


GREEDY = {"max_new_tokens": 48, "do_sample": False}
TEXTS = ["The applicant requests a review of", "Notice of decision:", "Summary of the assessment for the court"]


def test_each_tamper_kind_is_detected(model_dir, other_dir, tmp_path):
    (ids, outs, coms), lm, tok = _honest(model_dir, TEXTS, GREEDY)
    assert all(r.status != "failed" for r in _failed(lm, tok, ids, outs, coms, GREEDY))  # honest passes
    # a different model (another seed) generated, logged as the registered one
    other, _ = load_causal_lm(other_dir)
    i2, o2, c2 = gr._generate(other, tok, TEXTS, 4, GREEDY)
    res = _failed(lm, tok, i2, o2, c2, GREEDY)
    assert all(r.status == "failed" and r.first_failing_chunk == 0 for r in res), [r.reason for r in res]
    # noise on one layer's weights (1 % of each matrix's spread)
    noisy, _ = load_causal_lm(perturbed_copy(model_dir, tmp_path / "noisy", scale=0.01, seed=1))
    i3, o3, c3 = gr._generate(noisy, tok, TEXTS, 4, GREEDY)
    res = _failed(lm, tok, i3, o3, c3, GREEDY)
    assert all(r.status == "failed" for r in res), [r.reason for r in res]
    # published Llama-3.1-8B thresholds let this corrupted layer's activations pass on a model this small
    assert not any(r.first_failing_chunk is not None for r in _failed(lm, tok, i3, o3, c3, GREEDY, gr.TOPLOC_PAPER))
    # a changed prompt token: generated from the altered prompt, the original logged
    altered = [t[:5] + ("x" if t[5] != "x" else "y") + t[6:] for t in TEXTS]
    i4, o4, c4 = gr._generate(lm, tok, altered, 4, GREEDY)
    res = _failed(lm, tok, ids, o4, c4, GREEDY)
    assert all(r.status == "failed" and r.first_failing_chunk == 0 for r in res), [r.reason for r in res]
    # two output tokens swapped
    swapped = []
    for o in outs:
        o = list(o)
        a = next(k for k in range(1, len(o)) if o[k] != o[0])
        o[0], o[a] = o[a], o[0]
        swapped.append(o)
    res = _failed(lm, tok, ids, swapped, coms, GREEDY)
    assert all(r.status == "failed" for r in res), [r.reason for r in res]
    assert all(r.first_failing_token == 0 or r.first_failing_chunk is not None for r in res)
    # sampled at temperature 1.0, logged as greedy
    i6, o6, c6 = gr._generate(lm, tok, TEXTS, 4, {"max_new_tokens": 48, "do_sample": True, "temperature": 1.0, "seed": 3})
    res = _failed(lm, tok, i6, o6, c6, GREEDY)
    assert all(r.status == "failed" and "not the argmax" in r.reason for r in res), [r.reason for r in res]


def test_sampled_generation_verifies_and_a_hotter_sample_fails(model_dir):
    claimed = {"max_new_tokens": 64, "do_sample": True, "temperature": 0.5, "top_p": 0.9, "seed": 4}
    (ids, outs, coms), lm, tok = _honest(model_dir, TEXTS, claimed)
    assert all(r.status != "failed" for r in _failed(lm, tok, ids, outs, coms, claimed))
    hot = {**claimed, "temperature": 2.0, "top_p": None}
    i2, o2, c2 = gr._generate(lm, tok, TEXTS, 4, hot)
    res = _failed(lm, tok, i2, o2, c2, claimed)
    assert all(r.status == "failed" and r.first_failing_token is not None for r in res), [r.reason for r in res]


def test_calibration_goes_on_the_record(setup, model_dir, tmp_path):
    log, fp = setup
    ev = gr.calibrate(log, fp, model_dir, work_dir=tmp_path / "cal", prompts=6, max_new_tokens=33)
    assert ev["false_alarms"] == 0 and ev["held_out_trials"] == 36  # 3 held-out prompts x 6 runs x 2 replay shapes
    assert ev["detection_rate"] == 1.0, ev["perturbed"]
    found = gr.calibration_for(log, fp)
    assert found == ev
    g = _gen(log, fp, model_dir)
    g.generate(["Hello there"], max_new_tokens=40)
    report = gr.replay_generations(log, model_dir=model_dir)
    assert report.ok and report.calibrated == {fp: True}


def test_tampered_directory_is_not_replayed_as_the_registered_model(setup, model_dir, tmp_path):
    log, fp = setup
    g = _gen(log, fp, model_dir)
    g.generate(["Hello"], max_new_tokens=10)
    bad = perturbed_copy(model_dir, tmp_path / "bad", scale=0.01)
    report = gr.replay_generations(log, model_dir=bad)
    assert not report.ok and report.unchecked == 1 and "fingerprint" in report.errors[0]
    report = gr.replay_generations(log, model_dir=bad, check_fingerprint=False, thresholds=STRICT)
    assert report.failed == 1


def test_directory_with_another_tokenizer_or_files_is_refused_before_loading(setup, model_dir, tmp_path, monkeypatch):
    import shutil

    from glasslog.capture import generator
    from glasslog.registry import ArtifactError
    from glasslog.registry.oms import TamperedFileError, TokenizerMismatchError

    log, fp = setup
    monkeypatch.setattr(generator, "_load", lambda path: pytest.fail("a refused directory was loaded"))
    size = log.size
    swapped = tmp_path / "swapped"
    shutil.copytree(model_dir, swapped)
    tok = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = sorted(vocab)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # two tokens swapped: the model would see other ids
    (swapped / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(TokenizerMismatchError, match="tokenizer.json differs"):
        _gen(log, fp, swapped)
    extra = tmp_path / "extra"
    shutil.copytree(model_dir, extra)
    (extra / "model-00002-of-00002.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    with pytest.raises(TamperedFileError, match="model-00002-of-00002.safetensors"):
        _gen(log, fp, extra)
    missing = tmp_path / "missing"
    shutil.copytree(model_dir, missing)
    (missing / "generation_config.json").unlink()
    with pytest.raises(TamperedFileError, match="generation_config.json"):
        _gen(log, fp, missing)
    pickled = tmp_path / "pickled"
    shutil.copytree(model_dir, pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ArtifactError, match=r"pickle-format weights \['pytorch_model.bin'\]: refused, never loaded"):
        _gen(log, fp, pickled)
    assert log.size == size


def test_render_prompt_uses_the_chat_template(model_dir):
    _, tok = load_causal_lm(model_dir)
    ids = render_prompt(tok, {"messages": [{"role": "user", "content": "Hi"}]})
    assert tok.decode(ids) == "<|user|>\nHi\n<|assistant|>\n"


def test_decoding_options_of_the_model_config_do_not_leak_into_logged_generations(model_dir):
    # a model directory's generation_config.json may set e.g. a repetition penalty that transformers would apply
    # silently; capture turns such options off, so replay (logged parameters only) reproduces the output
    lm, tok = load_causal_lm(model_dir)
    lm.generation_config.repetition_penalty = 3.0
    lm.generation_config.no_repeat_ngram_size = 2
    (ids, outs, coms) = gr._generate(lm, tok, TEXTS, 4, GREEDY)
    assert all(r.status == "exact" for r in _failed(lm, tok, ids, outs, coms, GREEDY))
