"""Calibration of generation replay thresholds per registered model (``calibrate``; see ``generation_replay``).

Honest reruns of the model under different batch shapes give the largest deviations replay must accept; perturbed
copies (noise on one layer's weights, another seed of the same architecture) give the deviations it must refuse.
The thresholds, the false-alarm rate measured on held-out honest reruns (with its exact one-sided 95 % upper bound,
Clopper-Pearson) and the detection rate on the perturbed copies go on the model's record as a ``finding`` entry
(check ``replay-calibration``). The default is the full calibration (24 prompts, 64 tokens, generation batches of
8, 3 and 1); ``glasslog demo llm`` runs a smaller one and says so on the record (``prompts``, ``batch_shapes``,
``held_out_trials``, ``false_alarm_upper_95``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..ledger import Ledger, utc_now
from ..records import finding_entry
from . import toploc
from .generation_replay import (
    _LOOSE,
    GenerationResult,
    Thresholds,
    _chunk_stats,
    _fails,
    _generate,
    _replay_all,
    calibration_prompts,
)

__all__ = ["calibrate", "false_alarm_upper_bound"]


def false_alarm_upper_bound(alarms: int, trials: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a binomial rate (Clopper-Pearson): with 0 alarms, 1 - (1 - c)^(1/n).

    Raises:
        ValueError: ``trials`` < 1 or ``alarms`` outside 0..trials.
    """
    if trials < 1 or not 0 <= alarms <= trials:
        raise ValueError(f"need 0 <= alarms <= trials and trials >= 1, got {alarms} of {trials}")
    if alarms == trials:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, alarms + 1, trials - alarms))


def calibrate(ledger: Ledger | None, fingerprint: str | None, model_dir: str | os.PathLike, *, work_dir: str | os.PathLike,
              prompts: int = 24, max_new_tokens: int = 64, log: bool = True, seed: int = 0,
              gen_batches: Sequence[int] = (8, 3, 1), replay_batches: Sequence[int] = (1, 4),
              progress: Callable[[int, int], None] | None = None) -> dict:
    """Calibrate replay thresholds for one model and (``log``) record them as a ``finding`` entry on its record.

    Honest reruns: the calibration prompts generated (greedy and sampled) in each of ``gen_batches`` (default a
    padded batch of 8, batches of 3 and one at a time), each replayed in each of ``replay_batches`` (alone and in
    padded batches of 4). Thresholds: the largest honest deviation on
    the first half of the prompts, plus a margin (1 exponent mismatch, 1 mantissa unit, twice the logit gap, z
    floor 2 below the lowest seen, never above -6). The false-alarm rate is measured on the held-out half; the
    detection rate on perturbed copies (noise of 1 % and 0.3 % of the weights' spread on the middle layer, and
    the same architecture from another seed) replaying the honest generations' commitments.

    Args:
        prompts, max_new_tokens: how many calibration prompts (half fit the thresholds, half measure false alarms)
            and tokens per generation.
        gen_batches, replay_batches: the batch shapes of the honest reruns (the first generation shape also feeds
            the perturbed copies).
        progress: called as ``progress(done, total)`` after each generation or replay pass.

    Returns:
        The evidence dict (thresholds, honest maxima, perturbed minima, rates with the false-alarm rate's exact
        upper bound, counts, batch shapes).

    Raises:
        ValueError: no batch shapes, or fewer than 2 prompts.
    """
    import torch

    from ..demo.testmodels import build_causal_lm, load_causal_lm, perturbed_copy

    gen_batches, replay_batches = [int(b) for b in gen_batches], [int(b) for b in replay_batches]
    if not gen_batches or not replay_batches or min(gen_batches + replay_batches) < 1 or prompts < 2:
        raise ValueError("calibration needs at least 2 prompts and one generation and one replay batch shape (>= 1)")
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    meta = cfg.get("glasslog_test_model")
    total = 2 * len(gen_batches) * (1 + 2 * len(replay_batches)) + 2 * (3 if meta else 2)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    lm, tok = load_causal_lm(model_dir)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    texts = calibration_prompts(prompts, seed)
    half = len(texts) // 2
    greedy = {"max_new_tokens": max_new_tokens, "do_sample": False}
    sampled = {"max_new_tokens": max_new_tokens, "do_sample": True, "temperature": 1.0, "seed": 1234 + seed}
    honest: dict[str, list[list[GenerationResult]]] = {"fit": [], "held-out": []}
    runs = []
    for sampling in (greedy, sampled):
        for gen_batch in gen_batches:
            ids, outs, coms = _generate(lm, tok, texts, gen_batch, sampling)
            runs.append((sampling, ids, outs, coms))
            step()
            for replay_batch in replay_batches:
                res = _replay_all(lm, tok, ids, outs, coms, sampling, _LOOSE, replay_batch)
                honest["fit"].append(res[:half])
                honest["held-out"].append(res[half:])
                step()
    fit = _chunk_stats([r for rs in honest["fit"] for r in rs])
    # perturbed copies replay the honest generations' commitments (statistics first, verdicts once thresholds are set)
    copies = {"layer-noise-1%": perturbed_copy(model_dir, work / "noise-1", scale=0.01, seed=seed + 1),
              "layer-noise-0.3%": perturbed_copy(model_dir, work / "noise-03", scale=0.003, seed=seed + 2)}
    if meta:
        copies["other-seed"] = build_causal_lm(work / "other-seed", seed=int(meta["seed"]) + 1000, size=meta["size"])
    perturbed_runs: dict[str, list[GenerationResult]] = {}
    for name, path in copies.items():
        plm, _ = load_causal_lm(path)
        res = []
        for sampling, ids, outs, coms in runs[:1] + runs[len(gen_batches):len(gen_batches) + 1]:  # first shape's runs
            res += _replay_all(plm, tok, ids, outs, coms, sampling, _LOOSE)
            step()
        perturbed_runs[name] = res
        del plm
    # the mean mantissa error carries the fine signal: its threshold sits halfway between the largest honest value
    # and the 5th percentile of the perturbed copies' (per generation, largest chunk), at least one step (1/k) above
    # the honest maximum; exponent mismatches and the median (integer steps) get one step of margin
    trial_means = [max((c["mant_err_mean"] for c in r.chunks), default=0.0) for rs in perturbed_runs.values() for r in rs]
    q = float(np.percentile(trial_means, 5)) if trial_means else math.inf
    h = float(fit["mant_err_mean"])
    mean_t = h + max((q - h) / 2, 1.0 / toploc.TOPK) if q < math.inf else h + 1.0
    th = Thresholds(exp_mismatches=int(fit["exp_mismatches"]) + 1, mant_err_mean=round(mean_t, 6),
                    mant_err_median=float(fit["mant_err_median"]) + 1.0,
                    logit_gap=max(2 * float(fit["logit_gap"]), 1e-4),
                    logprob_z=min(float(fit["logprob_z"]) - 2.0, -6.0), calibrated=True)
    # false alarms on held-out honest reruns
    held = [r for rs in honest["held-out"] for r in rs]
    rechecked = []
    for sampling, ids, outs, coms in runs:
        for replay_batch in replay_batches:
            rechecked += _replay_all(lm, tok, ids[half:], outs[half:], coms[half:], sampling, th, replay_batch)
            step()
    false_alarms = sum(r.status == "failed" for r in rechecked)
    perturbed = {}
    for name, res in perturbed_runs.items():
        detected = sum(_fails(r, th) for r in res)
        perturbed[name] = {"trials": len(res), "detected": detected,
                           "min_mant_err_mean": min(max((c["mant_err_mean"] for c in r.chunks), default=0.0) for r in res)}
    torch.set_grad_enabled(True)
    evidence = {
        "thresholds": {k: v for k, v in th.to_dict().items() if k != "calibrated"},
        "honest_max": fit,
        "false_alarm_rate": false_alarms / max(len(rechecked), 1),
        "false_alarms": false_alarms, "held_out_trials": len(rechecked),
        "false_alarm_upper_95": round(false_alarm_upper_bound(false_alarms, max(len(rechecked), 1)), 6),
        "honest_fit_trials": sum(len(rs) for rs in honest["fit"]), "held_out_max": _chunk_stats(held),
        "perturbed": perturbed, "perturbed_mant_err_mean_p5": q,
        "detection_rate": sum(p["detected"] for p in perturbed.values()) / max(sum(p["trials"] for p in perturbed.values()), 1),
        "batch_shapes": {"generate": gen_batches, "replay": replay_batches}, "prompts": len(texts),
        "max_new_tokens": max_new_tokens, "topk": toploc.TOPK, "chunk": toploc.CHUNK,
    }
    if log and ledger is not None and fingerprint is not None:
        ledger.append([finding_entry(time=utc_now(), source="audit", check="replay-calibration", model=fingerprint,
                                     statistic="false-alarm rate on held-out honest reruns",
                                     value=evidence["false_alarm_rate"], verdict="ok" if false_alarms == 0 else "alert",
                                     severity="info" if false_alarms == 0 else "medium", by_role="supervisor",
                                     evidence=evidence)])
    return evidence
