"""``glasslog demo llm``: a downstream developer's adaptation of a foundation model, end to end (see glasslog.demo.llm)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..errors import EXIT_FAILED, EXIT_OK
from ..verify.log_audit import failure_where
from .common import USER_ERRORS as _INPUT_ERRORS
from .common import fail as _fail
from .common import out
from .common import print_json as _print_json
from .common import stage_progress as _stage_progress
from .common import verdict_mark as _mark

__all__ = ["demo_llm"]


def demo_llm(data_dir: Path, origin: str | None, seed: int, generative: bool, json_out: bool) -> None:
    """Run ``glasslog.demo.llm.run_llm_demo`` with a progress bar, print the summary, exit 0 if every check passed."""
    from ..demo.llm import DEFAULT_ORIGIN, run_llm_demo

    try:
        with _stage_progress() as progress:
            summary = run_llm_demo(data_dir, origin=origin or DEFAULT_ORIGIN, seed=seed, generative=generative,
                                   progress=progress)
    except (*_INPUT_ERRORS, RuntimeError) as exc:
        _fail(str(exc))
    if json_out:
        _print_json(summary.to_dict())
    else:
        _print(summary)
    raise typer.Exit(EXIT_OK if summary.ok else EXIT_FAILED)


def _print(s) -> None:
    out.rule("[bold]glasslog demo llm: a downstream developer adapts a foundation model")
    f, h = s.foundation, s.head
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("log", f"{s.origin} ({s.data_dir})")
    t.add_row("verifier key", s.verifier_key)
    t.add_row("foundation model", f"{f['name']}: {f['fingerprint']} ({'registered now' if f['registered_now'] else 'already registered'},"
                                  f" entry {f['registered_index']})")
    t.add_row("", f"OMS root digest computed with model_signing over {f['files']} files ({f['bytes']:,} bytes); tokenizer"
                  f" {f['tokenizer'][:23]}...; context length {f['context_length']} tokens; publisher signature:"
                  f" {f['signature']['signer'] if f['signature'] else 'none shipped (verify one with --signer-key at registration)'}")
    t.add_row("adaptation (head)", f"{h['name']} {h['version']}: {h['fingerprint']}"
                                   f" ({'registered now' if h['registered_now'] else 'already registered'}, entry {h['registered_index']})")
    t.add_row("deployment", s.deployment)
    t.add_row("decisions", f"{s.decisions} defendants scored in {s.batches} batches, entries {s.first_index}..; each names"
                           " both fingerprints (model = head, foundation = encoder)")
    t.add_row("outcomes", f"{s.outcomes} recorded")
    t.add_row("log size", f"{s.tree_size} entries, latest checkpoint at tree size {s.tree_size}")
    out.print(t)
    m = Table(title="Claimed vs realised")
    m.add_column("metric")
    m.add_column("claimed (evaluation split)", justify="right")
    m.add_column("realised (deployment outcomes)", justify="right")
    lo, hi = s.realised["accuracy_95ci"]
    m.add_row("head accuracy", f"{s.claimed['accuracy']:.3f}",
              f"{s.realised['accuracy']:.3f}  (95% CI {lo:.3f}-{hi:.3f}, n={s.realised['n']})")
    auc = s.realised["roc_auc"]
    m.add_row("head ROC AUC", f"{s.claimed['roc_auc']:.3f}", "n/a" if auc is None else f"{auc:.3f}")
    for name, value in f["claimed"].items():
        m.add_row(f"foundation: {name}", f"{value:.3f}", "(a claim about the encoder; see its card)")
    out.print(m)
    v = Table(title="Verification")
    v.add_column("check")
    v.add_column("result")
    v.add_column("detail", overflow="fold")
    v.add_row("receipts (offline, verifier key only)", _mark(s.receipts_ok and s.receipts_name_both),
              f"{s.receipts_checked} sampled, each naming head and foundation; one saved to {s.receipt_file}")
    a = s.log_audit
    v.add_row("whole log", _mark(a["ok"]), f"{a['tree_size']} entries rehashed, {a['checkpoints']} checkpoints checked"
              + ("" if a["ok"] else f"; {failure_where(a['first_bad_index'], a.get('bad_checkpoint'))}: {a['problems'][0]}"))
    r = s.replay
    v.add_row("replay: embeddings + head from the registered weights", _mark(r["ok"]),
              f"{r['matched']}/{r['checked']} outputs reproduced, max |diff| {r['max_abs_diff']:.1e}"
              f" (tolerance {r['encoder_tolerance']:.0e}, calibrated on honest reruns vs altered weights)")
    out.print(v)
    _print_generative(s)
    seconds = sum(s.timings.values())
    stages = ", ".join(f"{k.split(':')[0]} {v:.1f}" for k, v in s.timings.items())
    out.print(f"[dim]time: {seconds:.1f} s ({stages})[/]", highlight=False)
    out.print(f"Check a receipt as its subject would, with only the published verifier key:\n"
              f"  glasslog verify receipt {s.receipt_file} --key-file {Path(s.data_dir) / 'log.vkey'}\n"
              f"  (this demo log has no witnesses, so nothing rules out a split view; on a witnessed log add"
              f" --witness-key KEY for each witness you trust)\n"
              f"Register your own model directory (safetensors, config, tokenizer) the same way:\n"
              f"  glasslog models register DIR --card card.json [--signer-key publisher.pub]", highlight=False)


def _print_generative(s) -> None:
    g = s.generative
    if g is None:
        out.print(f"[bold]Generative half:[/] {s.generative_note}", highlight=False)
        return
    out.rule("[bold]generative half: a small causal LM (test model)")
    if g.get("error"):
        out.print(f"[bold red]FAILED[/]: {g['error']}", highlight=False)
        return
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    model = g.get("test_model") or {}
    if model:
        t.add_row("test model", f"{model.get('fingerprint')} (seed {model.get('seed')})")
    gens = g.get("generations") or []
    if gens:
        by_dep: dict[str, int] = {}
        for x in gens:
            by_dep[x.get("deployment", "?")] = by_dep.get(x.get("deployment", "?"), 0) + 1
        t.add_row("generations", "; ".join(f"{n} in {d}" for d, n in by_dep.items()))
    cal = g.get("calibration") or {}
    if cal:
        bound = cal.get("false_alarm_upper_95")
        t.add_row("replay calibration (on the model's record)",
                  f"{cal.get('prompts')} prompts x {cal.get('max_new_tokens')} tokens, generation batches"
                  f" {cal.get('batch_shapes', {}).get('generate')}: {cal.get('false_alarms')} false alarms in"
                  f" {cal.get('held_out_trials')} held-out honest replays"
                  + (f" (95% upper bound {bound:.1%})" if isinstance(bound, float) else "")
                  + f"; perturbed copies detected {cal.get('detection_rate', 0):.0%}")
    rep, tam = g.get("replay") or {}, g.get("tampered_replay") or {}
    if rep:
        t.add_row("replay (activation commitments, tokens)", _mark(bool(rep.get("ok"))))
    if tam:
        caught = not tam.get("ok", True)
        t.add_row("replay against a tampered copy", "[green]caught[/]" if caught else "[bold red]NOT caught[/]")
    wm = g.get("watermark") or {}
    for det in (wm.get("watermarked") or [])[:3]:
        t.add_row(f"watermark, generation {det.get('index', '?')} (marked)",
                  _detection(det) + (f" (prompt {det['prompt']!r})" if det.get("prompt") else ""))
    plain = wm.get("not_watermarked")
    if isinstance(plain, dict):
        t.add_row(f"watermark, generation {plain.get('index', '?')} (unmarked)",
                  _detection(plain) + " (public deployment, decoded without the key)")
    out.print(t)
    out.print(s.generative_note, highlight=False)


def _detection(det: dict) -> str:
    """One watermark detection of the summary: the verdict, green pairs of scored, and the exact p-value."""
    p = det.get("p_value")
    if not isinstance(p, float):
        return str(det)[:120]
    verdict = "detected" if det.get("detected") else "not detected"
    lp = det.get("log10_p")
    shown = f"10^{lp:.1f}" if p == 0.0 and isinstance(lp, float) else f"{p:.3g}"  # below float range: its logarithm
    return f"{verdict}: {det.get('green')} of {det.get('scored')} token pairs green, p = {shown}"
