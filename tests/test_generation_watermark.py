"""Watermarks: declaration with a key commitment, detection with exact p-values, reveal, replay of watermarked output,
the CLI (detect, verify replay over generations) and bad input."""

from __future__ import annotations

import json
import math
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch", reason="the llm extra (torch, transformers, safetensors, model-signing) is not installed")
pytest.importorskip("transformers", reason="the llm extra is not installed")
pytest.importorskip("model_signing", reason="the llm extra is not installed")
from scipy.stats import binom  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from glasslog import watermark as wmk  # noqa: E402
from glasslog.capture import open_log  # noqa: E402
from glasslog.capture.generator import wrap_generator  # noqa: E402
from glasslog.cli import app  # noqa: E402
from glasslog.demo.generative import register_model_dir  # noqa: E402
from glasslog.demo.testmodels import build_causal_lm  # noqa: E402
from glasslog.registry import Deployments  # noqa: E402
from glasslog.verify import generation_replay as gr  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.parametrize("n,k,p", [(200, 60, 0.25), (200, 70, 0.25), (100, 40, 0.25), (300, 100, 0.25), (50, 30, 0.5),
                                   (1000, 270, 0.25)])
def test_binomial_tail_is_exact_at_moderate_z(n, k, p):
    ours = math.exp(wmk.log_binom_sf(k, n, p))
    ref = float(binom.sf(k - 1, n, p))
    assert ours == pytest.approx(ref, rel=1e-9)


def test_binomial_tail_is_finite_and_nonzero_far_beyond_z_15():
    for n, k in ((200, 150), (200, 200), (400, 300), (2000, 1500)):
        z = (k - 0.25 * n) / math.sqrt(n * 0.25 * 0.75)
        assert z > 15
        lp = wmk.log_binom_sf(k, n, 0.25)
        assert math.isfinite(lp)
        if lp > -700:
            assert 0 < math.exp(lp) < 1e-40
    # 200 of 200 green: exactly 0.25**200
    assert wmk.log_binom_sf(200, 200, 0.25) == pytest.approx(200 * math.log(0.25), rel=1e-12)
    # far below float range the log stays exact (2000 of 2000: 0.25**2000 = 10**-1204.1)
    assert wmk.log_binom_sf(2000, 2000, 0.25) / math.log(10) == pytest.approx(-1204.12, abs=0.01)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_causal_lm(tmp_path_factory.mktemp("lm") / "seed0", seed=0)


@pytest.fixture()
def marked(tmp_path, model_dir):
    data = tmp_path / "data"
    log = open_log(data, create=True, origin="test.example/watermarks")
    fp = register_model_dir(log, model_dir, name="test-lm", version="1")
    Deployments(log).declare("t/marked", "private", "watermarked")
    wm = wmk.declare(log, "t/marked", gamma=0.25, delta=2.0)
    gen = wrap_generator(log, fp, "t/marked", model_dir=model_dir)
    return log, fp, wm, gen, data


def test_declared_watermark_is_committed_detected_and_revealed(marked, model_dir):
    log, fp, wm, gen, _ = marked
    decl = json.loads(log.entry(wm.declared_index))
    assert decl["type"] == "watermark" and decl["key_commitment"] == wm.key_commitment
    assert wm.key.hex() not in log.entry(wm.declared_index).decode()  # only the commitment is on the log
    res = gen.generate(["Please draft a reply to", "Explain the outcome:"], max_new_tokens=200, do_sample=True,
                       temperature=1.0, seed=11)
    assert json.loads(log.entry(res[0].index))["watermark"] == wm.key_commitment
    for r in res:
        d = wmk.detect(log, "t/marked", r.text, gen.tokenizer)
        assert d.detected and d.p_value < 1e-3 and d.key_commitment == wm.key_commitment
        assert d.p_value == pytest.approx(float(binom.sf(d.green - 1, d.scored, 0.25)), rel=1e-9)
    # text the deployment did not write: no detection
    plain = wrap_generator(log, fp, "t/plain", model_dir=model_dir, visibility="public-service")
    other = plain.generate(["Please draft a reply to"], max_new_tokens=200, do_sample=True, temperature=1.0, seed=11)
    assert not wmk.detect(log, "t/marked", other[0].text, gen.tokenizer).detected
    # the replay recomputes the biased logits with the key and verifies the watermarked samples
    report = gr.replay_generations(log, model_dir=model_dir)
    assert report.ok and report.failed == 0, report.to_dict()
    # reveal: key, configuration and salt in the clear, checked against the declaration by anyone
    idx = wmk.reveal(log, "t/marked")
    rev = json.loads(log.entry(idx))
    assert wmk.check_reveal(rev) and rev["secret"]["key"] == wm.key.hex()
    with pytest.raises(wmk.ConflictError if hasattr(wmk, "ConflictError") else Exception):
        wmk.reveal(log, "t/marked")


def test_detect_on_a_deployment_without_a_watermark_is_refused(marked, model_dir):
    log, fp, wm, gen, data = marked
    wrap_generator(log, fp, "t/none", model_dir=model_dir)
    with pytest.raises(wmk.NoWatermarkError, match="declared no watermark"):
        wmk.detect(log, "t/none", "some text", gen.tokenizer)
    with pytest.raises(wmk.NoWatermarkError, match="unknown deployment"):
        wmk.detect(log, "t/nowhere", "some text", gen.tokenizer)
    r = CliRunner().invoke(app, ["watermark", "detect", "--deployment", "t/none", "--text", "abc", "-d", str(data)])
    assert r.exit_code == 2 and "declared no watermark" in r.output
    with pytest.raises(wmk.WatermarkError, match="fewer than two tokens"):
        wmk.detect(log, "t/marked", "a", gen.tokenizer)
    size = log.size
    with pytest.raises(Exception, match="one per deployment"):
        wmk.declare(log, "t/marked")
    assert log.size == size


def test_cli_detect_and_verify_replay(marked, model_dir):
    log, fp, wm, gen, data = marked
    res = gen.generate(["Please draft a reply to"], max_new_tokens=200, do_sample=True, temperature=1.0, seed=5)
    runner = CliRunner()
    r = runner.invoke(app, ["watermark", "detect", "--deployment", "t/marked", "--text", res[0].text,
                            "--model-dir", str(model_dir), "-d", str(data), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["detected"] and d["key_commitment"] == wm.key_commitment and d["scored"] > 50 and 0 < d["p_value"] < 1e-3
    r = runner.invoke(app, ["verify", "replay", "-d", str(data), "--model-dir", str(model_dir), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)  # stderr has the trust-root warning (no --key)
    assert rep["generations"]["ok"] and rep["generations"]["checked"] == 1
    r = runner.invoke(app, ["verify", "replay", "-d", str(data), "--model-dir", str(model_dir)])
    assert r.exit_code == 0 and "Generation replay verified" in r.output and "calibration" in r.output


def test_cli_detect_refuses_a_model_dir_that_is_not_the_registered_model(marked, model_dir, tmp_path):
    import shutil

    log, fp, wm, gen, data = marked
    res = gen.generate(["Please draft a reply to"], max_new_tokens=120, do_sample=True, temperature=1.0, seed=5)
    text = tmp_path / "text.txt"
    text.write_text(res[0].text, encoding="utf-8")
    permuted = tmp_path / "permuted"
    shutil.copytree(model_dir, permuted)
    tj = json.loads((permuted / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tj["model"]["vocab"]
    words = list(vocab)[10:]
    ids = [vocab[w] for w in words]
    for w, i in zip(words, ids[1:] + ids[:1]):  # the same tokens, other ids
        vocab[w] = i
    (permuted / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    runner = CliRunner()
    base = ["watermark", "detect", "--deployment", "t/marked", "--text-file", str(text), "-d", str(data)]
    r = runner.invoke(app, [*base, "--model-dir", str(permuted)])
    assert r.exit_code == 2, r.output
    assert "tokenizer.json" in r.output and "does not match" in r.output and "detected" not in r.output
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    r = runner.invoke(app, [*base, "--model-dir", str(empty)])
    assert r.exit_code == 2 and "not a model directory" in r.output and "config.json" in r.output, r.output
    assert "Couldn't instantiate" not in r.output
    (empty / "config.json").write_text("{}")
    r = runner.invoke(app, [*base, "--model-dir", str(empty)])
    assert r.exit_code == 2 and "no .safetensors weights" in r.output, r.output
    r = runner.invoke(app, [*base, "--model-dir", str(model_dir)])  # the registered directory still detects
    assert r.exit_code == 0 and "watermark detected" in r.output, r.output


def test_cli_watermark_declare_needs_the_deployment_declared_first_as_the_readme_says(tmp_path):
    from pathlib import Path

    runner = CliRunner()
    data = str(tmp_path / "data")
    assert runner.invoke(app, ["init", "--origin", "test.example/wm-cli", "-d", data]).exit_code == 0
    r = runner.invoke(app, ["watermark", "declare", "--deployment", "acme.example/assistant", "-d", data])
    assert r.exit_code == 2 and "unknown deployment 'acme.example/assistant': declare it first" in r.output, r.output
    r = runner.invoke(app, ["deployments", "declare", "acme.example/assistant", "--visibility", "private", "-d", data])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["watermark", "declare", "--deployment", "acme.example/assistant", "-d", data, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["key_commitment"].startswith("sha256:"), r.output
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    first = readme.index("glasslog deployments declare acme.example/assistant --visibility private\n")
    assert first < readme.index("glasslog watermark declare --deployment acme.example/assistant", first)


def test_run_generative_demo_appends_and_summarises(tmp_path, monkeypatch):
    from glasslog.demo import generative
    from glasslog.demo.generative import TEST_MODEL_NOTE, run_generative

    small = {**generative.DEMO_CALIBRATION, "prompts": 6, "max_new_tokens": 33}  # smaller still, for the test
    monkeypatch.setattr(generative, "DEMO_CALIBRATION", small)

    log = open_log(tmp_path / "data", create=True, origin="test.example/demo")
    said, counts = [], []
    s = run_generative(log, tmp_path / "data", seed=0,
                       progress=lambda message, *c: (said.append(message), counts.append(c) if c else None))
    assert "TEST MODEL" in said[0] and "your own model directory" in said[0]
    assert s["test_model"]["note"] == TEST_MODEL_NOTE.format(seed=0)
    assert s["calibration"]["false_alarms"] == 0 and s["calibration"]["detection_rate"] == 1.0
    cal = s["calibration"]  # its size and the false-alarm rate's exact upper bound are on the record
    assert cal["prompts"] == 6 and cal["batch_shapes"] == {"generate": [4, 1], "replay": [1, 4]}
    assert cal["held_out_trials"] == 3 * 2 * 2 * 2 and cal["false_alarm_upper_95"] == pytest.approx(1 - 0.05 ** (1 / 24), abs=1e-6)
    assert counts[0] == (0, 1) and counts[-1][0] == counts[-1][1] == 2 * 2 * (1 + 2 * 2) + 2 * 3  # Rich progress steps
    assert s["replay"]["ok"] and s["replay"]["checked"] == 5 and s["replay"]["failed"] == 0
    assert not s["tampered_replay"]["ok"] and s["tampered_replay"]["failed"] == 1
    assert all(d["detected"] for d in s["watermark"]["watermarked"])
    assert not s["watermark"]["not_watermarked"]["detected"]
    # the CLI shows the calibration passes as a bar: a stage label that leaves room for it in 80 columns
    from types import SimpleNamespace

    from glasslog.cli.common import out
    from glasslog.cli.demo_llm import _print_generative
    from glasslog.demo.llm import _stage

    assert all(len(f"generative: {_stage(m)}") <= 56 for m in said), [m for m in said if len(_stage(m)) > 44]
    assert _stage(said[0]) == "The generative model here is a TEST MODEL" and "calibrating replay (passes)" in said
    with out.capture() as cap:
        _print_generative(SimpleNamespace(generative=s, generative_note="note"))
    shown = " ".join(cap.get().split())
    marked_rows = [f"watermark, generation {d['index']} (marked)" for d in s["watermark"]["watermarked"]]
    assert len(set(marked_rows)) == 2 and all(r in shown for r in marked_rows), shown
    assert f"watermark, generation {s['watermark']['not_watermarked']['index']} (unmarked)" in shown
    assert shown.count("watermark, marked text") == 0 and "token pairs green" in shown
    size = log.size
    s2 = run_generative(log, tmp_path / "data", seed=0)  # re-running appends; the calibration on the record is reused
    assert log.size > size and s2["test_model"]["fingerprint"] == s["test_model"]["fingerprint"]
    assert s2["calibration"] == s["calibration"] and s2["replay"]["ok"]
    assert min(g["index"] for g in s2["generations"]) >= size


def test_http_watermark_detect_for_supervisors(marked, model_dir):
    from fastapi.testclient import TestClient

    from glasslog.access.keys import KeyStore
    from glasslog.server.app import create_app

    log, fp, wm, gen, data = marked
    res = gen.generate(["Please draft a reply to"], max_new_tokens=200, do_sample=True, temperature=1.0, seed=5)
    wrap_generator(log, fp, "t/none", model_dir=model_dir)
    keys = KeyStore(log)
    _, sup = keys.create("supervisor", "sup")
    _, res_key = keys.create("researcher", "res")
    client = TestClient(create_app(data))
    h = {"Authorization": f"Bearer {sup}"}
    r = client.post("/v1/watermark/detect", json={"deployment": "t/marked", "text": res[0].text}, headers=h)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["detected"] and d["key_commitment"] == wm.key_commitment and 0 < d["p_value"] < 1e-3 and d["tokens"] == 200
    r = client.post("/v1/watermark/detect", json={"deployment": "t/none", "text": "abc"}, headers=h)
    assert r.status_code == 404 and "declared no watermark" in r.json()["detail"]
    r = client.post("/v1/watermark/detect", json={"deployment": "t/marked", "text": "a"}, headers=h)
    assert r.status_code == 422
    r = client.post("/v1/watermark/detect", json={"deployment": "t/marked", "text": res[0].text},
                    headers={"Authorization": f"Bearer {res_key}"})
    assert r.status_code == 403


def test_cli_verify_calibrate_puts_thresholds_on_the_record(marked, model_dir):
    log, fp, wm, gen, data = marked
    r = CliRunner().invoke(app, ["verify", "calibrate", fp[:19], "-d", str(data), "--model-dir", str(model_dir),
                                 "--prompts", "4", "--tokens", "33", "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.output)
    assert ev["false_alarms"] == 0 and ev["detection_rate"] == 1.0
    assert gr.calibration_for(log, fp) == ev
    r = CliRunner().invoke(app, ["verify", "calibrate", "sha256:" + "0" * 64, "-d", str(data)])
    assert r.exit_code == 2 and "unknown model" in r.output
