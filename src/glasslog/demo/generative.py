"""The generative half of ``glasslog demo llm``: a causal LM on the record.

``run_generative(ledger, data_dir)`` builds (once) a small test causal LM from
a config with a fixed seed (``glasslog.demo.testmodels``; nothing is
downloaded), registers its directory, calibrates replay tolerances for it,
logs generations in a public-service deployment without a watermark and in a
private deployment with one, replays them against the registered weights
(activation commitments and token checks), replays a tampered copy to show it
fails, and tests texts for the watermark. Re-running appends; nothing is reset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..ledger import Ledger, utc_now
from ..records import model_entry
from ..registry import Registry, RegistryError

__all__ = ["run_generative", "register_model_dir", "TEST_MODEL_NOTE", "DEMO_CALIBRATION"]

DEMO_CALIBRATION = {"prompts": 8, "max_new_tokens": 32, "gen_batches": (4, 1), "replay_batches": (1, 4)}
"""The demo's replay calibration: smaller than ``glasslog verify calibrate``'s default (24 prompts, 64 tokens,
generation batches 8, 3, 1), so the first run takes about a minute, not ten. Its size goes on the record with the
measured false-alarm rate and its exact 95 % upper bound (32 held-out honest replays: at most about 9 % with none
failing); calibrate a model you rely on with ``glasslog verify calibrate`` (the full default)."""

TEST_MODEL_NOTE = (
    "The generative model here is a TEST MODEL: a 4-layer Llama-architecture causal LM built from a config with random"
    " weights (seed {seed}) and a character-level tokenizer, so its outputs are gibberish. Point the same commands at"
    " your own model directory (safetensors weights, config.json, tokenizer files, chat template, e.g. one written by"
    " save_pretrained): register it with `glasslog models register DIR --card card.json`, then wrap it with"
    " glasslog.capture.wrap_generator(log, fingerprint, deployment, model_dir=DIR), check it with"
    " `glasslog verify replay --model-dir DIR` and test texts with"
    " `glasslog watermark detect --deployment NAME --model-dir DIR --text ...`."
)


def _generative_card(name: str, version: str) -> dict:
    from ..registry.card import fingerprint_bytes

    return {
        "name": name, "version": version, "provider": "glasslog demo",
        "intended_use": "test model for logging, replay and watermark checks; writes gibberish",
        "features": [{"name": "prompt", "type": "categorical", "personal": False, "protected": False,
                      "description": "text or chat messages"}],
        "output": {"kind": "text"},
        "training_data_fingerprint": fingerprint_bytes(b"random initialisation, no training data"),
        "claimed": {"metrics": {"test_model": 1.0}, "evaluation_fingerprint": fingerprint_bytes(b"none"),
                    "evaluation_size": 1},
        "disclosure_policy": "public", "researcher_access_protected": False,
        "extra": {"kind": "causal-lm", "test_model": True},
    }


def register_model_dir(ledger: Ledger, model_dir: str | os.PathLike, *, name: str, version: str) -> str:
    """Register a model directory (or find it registered) and return its fingerprint.

    Uses the registry's directory registration (``Registry.register_directory``) where it exists; otherwise logs
    a ``model`` registration entry with the directory's OMS root digest and a card saying it is a test model.
    """
    from ..capture.generator import directory_fingerprint

    fp = directory_fingerprint(model_dir)
    registry = Registry(ledger)
    try:
        registry.get(fp)
        return fp
    except RegistryError:
        pass
    card = _generative_card(name, version)
    method = getattr(registry, "register_directory", None)
    if method is not None:
        from ..registry.card import ModelCard

        try:
            return method(Path(model_dir), ModelCard.from_dict(card)).fingerprint
        except TypeError:
            pass
    ledger.append([model_entry(event="register", model=fp, card=card, status="active", time=utc_now())])
    return fp

MARKED_PROMPTS = ("Please draft a reply to", "Explain the outcome:")
"""The prompts of the watermarked deployment's generations (each one's detection is a row of the summary)."""


def run_generative(ledger: Ledger, data_dir: str | os.PathLike, seed: int = 0,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Run the generative demo on ``ledger`` (see module docstring) and return a summary dict.

    Args:
        data_dir: where the test model directories are written (``<data_dir>/models/...``).
        seed: the test model's weight seed.
        progress: called with a short message before each step (``progress(message, done, total)`` while calibrating).
    """
    from .. import watermark as wmk
    from ..capture.generator import wrap_generator
    from ..verify import generation_replay as gr
    from .testmodels import build_causal_lm, perturbed_copy

    say = progress or (lambda msg, *counts: None)
    say(TEST_MODEL_NOTE.format(seed=seed))
    root = Path(data_dir) / "models"
    say(f"building the test causal LM (seed {seed})")
    model_dir = build_causal_lm(root / f"test-causal-lm-seed{seed}", seed=seed)
    fp = register_model_dir(ledger, model_dir, name="glasslog-test-causal-lm", version=f"seed-{seed}")
    calibration = gr.calibration_for(ledger, fp)
    if calibration is None:  # once per log: later runs read it from the model's record
        stage = "calibrating replay (passes)"  # short: the bar and its pass count must fit beside it in 80 columns
        say(stage, 0, 1)
        calibration = gr.calibrate(ledger, fp, model_dir, work_dir=root / "calibration", log=True, **DEMO_CALIBRATION,
                                   progress=lambda done, total: say(stage, done, total))
    public = "demo.example/letters/public"
    private = "demo.example/assistant/private"
    say("logging public generations (no watermark)")
    gen = wrap_generator(ledger, fp, public, model_dir=model_dir, visibility="public-service",
                         description="demo: generated letters, outputs public")
    plain = gen.generate(["Dear applicant,", [{"role": "user", "content": "Summarise the decision."}]],
                         subject_ids=["case-1", "case-2"], max_new_tokens=48)
    sampled = gen.generate(["The committee finds"], max_new_tokens=48, do_sample=True, temperature=0.8, top_p=0.95, seed=7)
    from ..registry import Deployments

    Deployments(ledger).declare(private, "private", "demo: assistant, outputs private, watermarked")
    if wmk.declaration(ledger, private) is None:
        wmk.declare(ledger, private, gamma=0.25, delta=2.0)
    say("logging private, watermarked generations")
    wgen = wrap_generator(ledger, fp, private, model_dir=model_dir)
    marked = wgen.generate(list(MARKED_PROMPTS), max_new_tokens=200, do_sample=True,
                           temperature=1.0, seed=11)
    say("replaying against the registered weights")
    indexes = [g.index for g in plain + sampled + marked]
    report = gr.replay_generations(ledger, indexes=indexes, model_dirs={fp: model_dir})
    say("replaying against a tampered copy (noise on one layer)")
    tampered_dir = root / f"tampered-seed{seed}"
    perturbed_copy(model_dir, tampered_dir, kind="layer-noise", scale=0.02, seed=1)
    tampered = gr.replay_generations(ledger, indexes=[plain[0].index], model_dirs={fp: tampered_dir}, check_fingerprint=False)
    say("testing texts for the watermark")
    tok = wgen.tokenizer
    det_marked = [{"index": g.index, "prompt": str(p), **wmk.detect(ledger, private, g.text, tok).to_dict()}
                  for g, p in zip(marked, MARKED_PROMPTS)]
    det_plain = {"index": sampled[0].index, "deployment_logged": public,
                 **wmk.detect(ledger, private, sampled[0].text, tok).to_dict()}
    summary = {
        "test_model": {"directory": str(model_dir), "fingerprint": fp, "seed": seed, "note": TEST_MODEL_NOTE.format(seed=seed)},
        "calibration": calibration,
        "generations": [{"index": g.index, "deployment": d, "text": g.text[:80], "prompt_tokens": g.prompt_tokens,
                         "output_tokens": len(g.tokens), "commitments": len(g.commitments)}
                        for d, gs in ((public, plain + sampled), (private, marked)) for g in gs],
        "replay": report.to_dict(),
        "tampered_replay": tampered.to_dict(),
        "watermark": {"deployment": private, "key_commitment": wgen.watermark.key_commitment,
                      "watermarked": det_marked, "not_watermarked": det_plain},
    }
    return summary
