"""Replay of logged generations against the registered weights, within tolerances calibrated per model.

For each ``generation`` entry this opens the prompt commitment (and, for
private deployments, the output commitment) with the values beside the log,
renders the prompt with the registered tokenizer and chat template, runs one
prefill of prompt + logged output tokens with the registered weights, and
checks two things:

1. Activations (TOPLOC): each chunk's recomputed top-128 last-hidden-state
   values against the logged commitment: bfloat16 exponent mismatches, mean
   and median mantissa error, each against the model's threshold.
2. Tokens (commitments bind activations, not token identity): a greedy
   generation's every output token must be the argmax of the (watermark-biased,
   where the deployment declared a watermark) logits at its step, allowing
   only near-ties within the calibrated logit gap; a sampled token must lie in
   the support the logged temperature / top-k / top-p leave, and the output's
   total log-probability under the logged sampling distribution must not be far
   below what that distribution gives (a z-score against its own mean and
   variance, floor calibrated).

Each generation is reported as ``exact`` (every chunk bit-identical, every
token check passed), ``within-tolerance`` or ``failed`` with the reason and
the first failing token or chunk.

Transformer inference is not bit-reproducible across batch shapes and
padding, so thresholds come from ``calibrate``: honest reruns of the model
under several batch shapes (generated in a padded batch of 8, in batches of
3 and alone; replayed alone and in padded batches) set the tolerated
deviation, perturbed copies (noise on one layer, a model from another seed)
show what must fail; the thresholds, the measured false-alarm rate on held-out
honest reruns and the detection rate on the perturbed copies go on the
model's record as a ``finding`` entry (check ``replay-calibration``).
Published thresholds for Llama-3.1-8B (``TOPLOC_PAPER``) are the fallback and
are reported as uncalibrated: on small models they let a corrupted layer pass.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ledger import Ledger
from ..ledger.commitments import check_commitment
from . import toploc

__all__ = ["Thresholds", "TOPLOC_PAPER", "GenerationResult", "GenerationReplayReport", "forward", "check_generation",
           "replay_generations", "calibrate", "calibration_for", "calibration_prompts"]


@dataclass(frozen=True)
class Thresholds:
    """Largest deviations accepted per chunk / per generation.

    Attributes:
        exp_mismatches: top-k entries whose bfloat16 sign/exponent differs from the committed value.
        mant_err_mean, mant_err_median: mantissa error (7-bit units) where exponents agree.
        logit_gap: how far (in logits) a greedy token may be below the argmax (near-ties between batch shapes).
        logprob_z: lowest z-score accepted for a sampled output's total log-probability.
        calibrated: set by ``calibrate`` for this model; False for the published fallback.
    """

    exp_mismatches: int
    mant_err_mean: float
    mant_err_median: float
    logit_gap: float = 1e-3
    logprob_z: float = -6.0
    calibrated: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Thresholds:
        return cls(int(d["exp_mismatches"]), float(d["mant_err_mean"]), float(d["mant_err_median"]),
                   float(d.get("logit_gap", 1e-3)), float(d.get("logprob_z", -6.0)), bool(d.get("calibrated", False)))


TOPLOC_PAPER = Thresholds(exp_mismatches=128 - 90, mant_err_mean=10.0, mant_err_median=8.0, calibrated=False)
"""The published Llama-3.1-8B thresholds (at least 90 of 128 exponents match, mantissa error mean <= 10, median <= 8)."""


@dataclass
class GenerationResult:
    """The replay verdict for one generation."""

    index: int
    status: str  # exact | within-tolerance | failed | unchecked | not-checked (self-reported: nothing to replay)
    reason: str = ""
    first_failing_token: int | None = None
    first_failing_chunk: int | None = None
    chunks: list[dict] = field(default_factory=list)
    greedy: bool = True
    logprob_z: float | None = None
    max_logit_gap: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerationReplayReport:
    """Result of ``replay_generations``. ``unchecked``: generations glasslog produced that could not be checked (no
    model directory, a missing value): ``ok`` is False. ``self_reported``: generations reported by an application or
    the gateway (``source``), which carry no activations or token ids to replay: not checked, documented as such, and
    not a failure (``ok`` is unaffected)."""

    ok: bool = True
    checked: int = 0
    exact: int = 0
    within_tolerance: int = 0
    failed: int = 0
    unchecked: int = 0
    self_reported: int = 0
    total: int = 0
    calibrated: dict = field(default_factory=dict)
    results: list[GenerationResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if k != "results"}
        d["results"] = [r.to_dict() for r in self.results]
        return d


# ---------------------------------------------------------------------------------------------------------- forward


def forward(lm, sequences: Sequence[Sequence[int]], *, batch: int = 1, pad_id: int = 0) -> list[tuple[Any, Any]]:
    """Last hidden state (T, d) and logits (T, V) of each token sequence, in one prefill each.

    ``batch`` > 1 runs sequences together, right-padded (another batch shape: numerically close, not identical).
    """
    import torch

    out: list[tuple[Any, Any]] = []
    with torch.inference_mode():
        for s in range(0, len(sequences), batch):
            group = [list(x) for x in sequences[s: s + batch]]
            width = max(len(g) for g in group)
            ids = torch.full((len(group), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for i, g in enumerate(group):
                ids[i, : len(g)] = torch.tensor(g)
                mask[i, : len(g)] = 1
            res = lm(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
            for i, g in enumerate(group):
                out.append((res.hidden_states[-1][i, : len(g)], res.logits[i, : len(g)].float()))
    return out


# ------------------------------------------------------------------------------------------------------- the checks


def _sampling_logprobs(logits, sampling: dict):
    """Log-probabilities (V,) rows of the logged sampling distribution (temperature, top-k, top-p), -inf outside."""
    import torch

    x = logits / float(sampling.get("temperature") or 1.0)
    top_k = sampling.get("top_k")
    if top_k:
        kth = torch.topk(x, min(int(top_k), x.shape[-1]), dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, -math.inf)
    top_p = sampling.get("top_p")
    if top_p is not None and top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=True, dim=-1)
        probs = torch.softmax(sorted_x, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass strictly before each token
        remove_sorted = before > top_p + 1e-6  # HF keeps the token that crosses top_p; a little slack for rounding
        remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
        x = x.masked_fill(remove, -math.inf)
    return torch.log_softmax(x, dim=-1)


def check_generation(hidden, logits, prompt_tokens: int, output: Sequence[int], commitments: Sequence[bytes],
                     sampling: dict, thresholds: Thresholds, *, index: int = -1, green: Callable[[int], Any] | None = None,
                     delta: float = 0.0, suppress: Sequence[int] = ()) -> GenerationResult:
    """Check one generation given its recomputed last hidden state and logits (prompt + output positions).

    Args:
        green: previous token -> boolean green mask (V,) of the deployment's watermark, when it has one;
            the logged logits had ``delta`` added there.
        suppress: token ids the registered generation config suppresses (``suppress_tokens``).
    """
    import torch

    n = len(output)
    result = GenerationResult(index, "exact", greedy=not sampling.get("do_sample", False))
    try:
        checks = toploc.check_hidden(hidden[: prompt_tokens + max(n - 1, 0)], prompt_tokens, max(n - 1, 0), commitments)
    except toploc.CommitmentError as exc:
        result.status, result.reason = "failed", f"activation commitments: {exc}"
        return result
    result.chunks = [c.to_dict() for c in checks]
    for j, c in enumerate(checks):
        over = []
        if c.exp_mismatches > thresholds.exp_mismatches:
            over.append(f"{c.exp_mismatches} exponent mismatches > {thresholds.exp_mismatches}")
        if c.mant_err_mean > thresholds.mant_err_mean:
            over.append(f"mantissa error mean {c.mant_err_mean:.3g} > {thresholds.mant_err_mean:g}")
        if c.mant_err_median > thresholds.mant_err_median:
            over.append(f"mantissa error median {c.mant_err_median:.3g} > {thresholds.mant_err_median:g}")
        if over:
            where = "the prompt" if j == 0 else f"output tokens {(j - 1) * toploc.CHUNK}..{min(j * toploc.CHUNK, n - 1) - 1}"
            result.status = "failed"
            result.first_failing_chunk = j
            result.reason = f"activations of chunk {j} ({where}) differ from the commitment: {'; '.join(over)}"
            return result
    exact = all(c.exact for c in checks)
    if n:
        step_logits = logits[prompt_tokens - 1: prompt_tokens - 1 + n].float().clone()
        if suppress:
            step_logits[:, list(suppress)] = -math.inf
        if green is not None and delta:
            # the token before output token i is the last prompt token (i = 0, passed as -1) or output token i - 1
            prev = [-1] + [int(t) for t in output[:-1]]
            rows = [torch.as_tensor(green(p)) for p in prev]
            step_logits = step_logits + delta * torch.stack(rows).to(step_logits.dtype)
        toks = torch.tensor(list(output), dtype=torch.long)
        if result.greedy:
            top = step_logits.max(dim=-1).values
            mine = step_logits.gather(1, toks[:, None])[:, 0]
            gap = top - mine
            result.max_logit_gap = float(gap.max())
            bad = torch.nonzero(gap > thresholds.logit_gap).flatten()
            if bad.numel():
                i = int(bad[0])
                result.status, result.first_failing_token = "failed", i
                result.reason = (f"greedy output token {i} ({int(toks[i])}) is not the argmax ({int(step_logits[i].argmax())});"
                                 f" {float(gap[i]):.3g} logits below it")
                return result
            if float(gap.max()) > 0:
                exact = False
        else:
            lp = _sampling_logprobs(step_logits, sampling)
            mine = lp.gather(1, toks[:, None])[:, 0]
            outside = torch.nonzero(torch.isinf(mine)).flatten()
            if outside.numel():
                i = int(outside[0])
                result.status, result.first_failing_token = "failed", i
                result.reason = (f"sampled output token {i} ({int(toks[i])}) is outside the top-k/top-p support of the"
                                 " logged sampling parameters")
                return result
            p = lp.exp()
            safe = torch.where(torch.isinf(lp), torch.zeros_like(lp), lp)
            mean = (p * safe).sum(-1)
            var = (p * safe * safe).sum(-1) - mean * mean
            z = float((mine.sum() - mean.sum()) / math.sqrt(max(float(var.sum()), 1e-12)))
            result.logprob_z = z
            if z < thresholds.logprob_z:
                result.status = "failed"
                result.first_failing_token = int(torch.argmin(mine - mean))
                result.reason = (f"the output is far less likely than sampling with the logged parameters gives"
                                 f" (log-probability z = {z:.2f} < {thresholds.logprob_z:g}); least likely at token"
                                 f" {result.first_failing_token}")
                return result
    if not exact:
        result.status = "within-tolerance"
    return result


# ------------------------------------------------------------------------------------------------------ the ledger


def calibration_for(ledger: Ledger, fingerprint: str) -> dict | None:
    """The evidence of the model's latest ``replay-calibration`` finding (thresholds, rates), or None."""
    latest = None
    for _, obj in ledger.entries_of_type("finding"):
        if obj.get("check") == "replay-calibration" and obj.get("model") == fingerprint:
            latest = obj.get("evidence")
    return latest


def _thresholds_for(ledger: Ledger, fingerprint: str) -> Thresholds:
    ev = calibration_for(ledger, fingerprint)
    if ev and "thresholds" in ev:
        return Thresholds.from_dict({**ev["thresholds"], "calibrated": True})
    return TOPLOC_PAPER


def _open(ledger: Ledger, index: int, entry: dict, private: dict) -> tuple[dict | None, dict | None, str]:
    """(prompt value, output {"text","tokens"}, problem)."""
    values = private.get(index, {})
    opened = {}
    for kind, field_name in (("prompt", "prompt"), ("output", "output_commitment")):
        if field_name not in entry:
            continue
        got = values.get(kind)
        if got is None:
            return None, None, f"the {kind} value beside the log is missing or erased"
        commitment, salt, value = got
        if commitment != entry[field_name] or not check_commitment(entry[field_name], salt, value):
            return None, None, f"the stored {kind} value does not open the logged commitment"
        opened[kind] = json.loads(value)
    output = opened.get("output") or {"text": entry.get("output"), "tokens": entry.get("output_tokens")}
    return opened.get("prompt"), output, ""


def replay_generations(ledger: Ledger, *, indexes: Sequence[int] | None = None, model: str | None = None,
                       deployment: str | None = None, model_dirs: dict[str, str | os.PathLike] | None = None,
                       model_dir: str | os.PathLike | None = None, check_fingerprint: bool = True,
                       thresholds: Thresholds | None = None, batch: int = 1,
                       progress: Callable[[int, int], None] | None = None) -> GenerationReplayReport:
    """Replay logged generations (see module docstring).

    Args:
        indexes / model / deployment: which generations (default all).
        model_dirs: fingerprint -> model directory; ``model_dir`` serves every model. Each directory is checked
            against the fingerprint unless ``check_fingerprint`` is False (for deliberately tampered copies).
        thresholds: override the model's calibrated thresholds.
        batch: prefill this many generations together (another batch shape).
    """
    from .. import watermark as wmk
    from ..capture.generator import directory_fingerprint, render_prompt
    from ..demo.testmodels import load_causal_lm

    report = GenerationReplayReport()
    if indexes is not None:
        rows = []
        for i in indexes:
            obj = json.loads(ledger.entry(i))
            if obj.get("type") != "generation":
                report.errors.append(f"entry {i} is a {obj.get('type')} entry, not a generation")
                continue
            rows.append((i, obj))
    else:
        rows = list(ledger.entries_of_type("generation"))
    rows = [(i, e) for i, e in rows if (model is None or e.get("model") == model) and (deployment is None or e["deployment"] == deployment)]
    report.total = len(rows)
    for i, e in rows:  # reported by an application (OTLP) or seen by the gateway: no activations or token ids to check
        if e.get("source") is not None:
            report.results.append(GenerationResult(i, "not-checked", f"self-reported generation (source {e['source']}): no"
                                                   " activation commitments or token ids to replay"))
            report.self_reported += 1
    rows = [(i, e) for i, e in rows if e.get("source") is None]
    private = ledger.private_values_for([i for i, _ in rows]) if rows else {}
    by_model: dict[str, list[tuple[int, dict]]] = {}
    for i, e in rows:
        by_model.setdefault(e["model"], []).append((i, e))
    done = 0
    for fp, items in by_model.items():
        path = (model_dirs or {}).get(fp) or model_dir
        if path is None:
            finder = getattr(__import__("glasslog.registry", fromlist=["Registry"]).Registry(ledger), "model_dir", None)
            path = finder(fp) if finder else None
        if path is None:
            report.errors.append(f"model {fp}: no model directory given (--model-dir)")
            report.unchecked += len(items)
            report.results += [GenerationResult(i, "unchecked", "no model directory for its model") for i, _ in items]
            continue
        if check_fingerprint:
            actual = directory_fingerprint(path)
            if actual != fp:
                report.errors.append(f"model {fp}: directory {path} has fingerprint {actual}")
                report.unchecked += len(items)
                report.results += [GenerationResult(i, "unchecked", "the model directory does not match the fingerprint")
                                   for i, _ in items]
                continue
        lm, tok = load_causal_lm(path)
        th = thresholds or _thresholds_for(ledger, fp)
        report.calibrated[fp] = th.calibrated
        watermarks: dict[str, Any] = {}
        prepared = []
        for i, e in items:
            prompt, output, problem = _open(ledger, i, e, private)
            if problem:
                report.results.append(GenerationResult(i, "unchecked", problem))
                report.unchecked += 1
                continue
            ids = render_prompt(tok, prompt)
            if len(ids) != e["tokens"]["prompt"]:
                report.results.append(GenerationResult(i, "failed", f"the prompt renders to {len(ids)} tokens with the"
                                                       f" registered tokenizer, the entry says {e['tokens']['prompt']}",
                                                       first_failing_chunk=0))
                report.failed += 1
                report.checked += 1
                continue
            toks = [int(t) for t in output["tokens"]]
            prepared.append((i, e, ids, toks))
        outs = forward(lm, [ids + toks for _, _, ids, toks in prepared], batch=batch,
                       pad_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
        for (i, e, ids, toks), (hidden, logits) in zip(prepared, outs):
            green, delta = None, 0.0
            if e.get("watermark"):
                dep = e["deployment"]
                if dep not in watermarks:
                    try:
                        watermarks[dep] = wmk.active_watermark(ledger, dep)
                    except wmk.NoWatermarkError:
                        watermarks[dep] = None
                wm = watermarks[dep]
                if wm is None or wm.key_commitment != e["watermark"]:
                    report.results.append(GenerationResult(i, "unchecked", "the deployment's watermark key is not"
                                                           " available here to recompute the biased logits"))
                    report.unchecked += 1
                    continue
                vocab = logits.shape[-1]
                last_prompt = ids[-1]

                def green(p, wm=wm, vocab=vocab, lp=last_prompt):
                    return wmk.green_mask(wm.key, lp if p == -1 else p, vocab, wm.gamma)
                delta = wm.delta
            commits = [toploc.from_b64(c) if _well_formed(c) else c for c in e["activations"]["commitments"]]
            r = check_generation(hidden, logits, len(ids), toks, commits, e["sampling"], th, index=i, green=green, delta=delta,
                                 suppress=suppressed(lm))
            report.results.append(r)
            report.checked += 1
            if r.status == "exact":
                report.exact += 1
            elif r.status == "within-tolerance":
                report.within_tolerance += 1
            else:
                report.failed += 1
            done += 1
            if progress:
                progress(done, report.total)
    report.results.sort(key=lambda r: r.index)
    report.ok = report.failed == 0 and report.unchecked == 0 and not report.errors
    return report


def _well_formed(c: str) -> bool:
    try:
        toploc.from_b64(c)
        return True
    except toploc.CommitmentError:
        return False


# ------------------------------------------------------------------------------------------------------- calibration

_WORDS = ("the applicant loan decision letter review appeal benefit claim record notice court model output report"
          " summary assessment office citizen request data risk score policy reason right appeal date case").split()


def calibration_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic prompts of varied length (8 to about 120 characters)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = rng.choice(_WORDS, size=int(rng.integers(2, 20)))
        out.append(" ".join(words).capitalize() + ":")
    return out


def _chunk_stats(results: list[GenerationResult]) -> dict:
    chunks = [c for r in results for c in r.chunks]
    return {"exp_mismatches": max((c["exp_mismatches"] for c in chunks), default=0),
            "mant_err_mean": max((c["mant_err_mean"] for c in chunks), default=0.0),
            "mant_err_median": max((c["mant_err_median"] for c in chunks), default=0.0),
            "logit_gap": max((r.max_logit_gap for r in results), default=0.0),
            "logprob_z": min((r.logprob_z for r in results if r.logprob_z is not None), default=0.0)}


_LOOSE = Thresholds(128, 2.0**64, 2.0**64, math.inf, -math.inf, False)


def _generate(gen_lm, tok, prompts: list[str], batch: int, sampling: dict):
    """Generate with the capture path's code (without logging) in batches of ``batch``: (prompt ids, outputs, commitments)."""
    from ..capture.generator import CapturedGenerator

    shim = CapturedGenerator(None, None, "", gen_lm, tok, None, Path("."))  # type: ignore[arg-type]
    ids, outs, coms = [], [], []
    for s in range(0, len(prompts), batch):
        _, i, o, c, _ = shim.run(prompts[s: s + batch], **sampling)
        ids += i
        outs += o
        coms += c
    return ids, outs, coms


def _fails(r: GenerationResult, th: Thresholds) -> bool:
    """Would a result gathered with loose thresholds fail under ``th``? (chunk statistics and token checks)"""
    if r.status == "failed":  # the loose run only fails on token checks or malformed commitments
        return True
    if any(c["exp_mismatches"] > th.exp_mismatches or c["mant_err_mean"] > th.mant_err_mean
           or c["mant_err_median"] > th.mant_err_median for c in r.chunks):
        return True
    if r.greedy and r.max_logit_gap > th.logit_gap:
        return True
    return r.logprob_z is not None and r.logprob_z < th.logprob_z


def _replay_all(lm, tok, ids, outs, coms, sampling, th, batch=1):
    fw = forward(lm, [a + b for a, b in zip(ids, outs)], batch=batch, pad_id=tok.pad_token_id or 0)
    return [check_generation(h, lg, len(a), b, c, sampling, th, suppress=suppressed(lm))
            for (h, lg), a, b, c in zip(fw, ids, outs, coms)]


def suppressed(lm) -> list[int]:
    """Token ids the model's registered generation config suppresses while decoding."""
    return [int(t) for t in (getattr(getattr(lm, "generation_config", None), "suppress_tokens", None) or [])]


def calibrate(ledger: Ledger | None, fingerprint: str | None, model_dir: str | os.PathLike, *, work_dir: str | os.PathLike,
              **options: Any) -> dict:
    """Calibrate replay thresholds for one model; see ``glasslog.verify.generation_calibration.calibrate``."""
    from .generation_calibration import calibrate as run

    return run(ledger, fingerprint, model_dir, work_dir=work_dir, **options)
