"""``glasslog demo``: the main job, end to end on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import EXIT_FAILED, EXIT_OK
from ..verify.log_audit import failure_where
from .common import DEFAULT_DIR, DataDir, JsonOut, out
from .common import USER_ERRORS as _INPUT_ERRORS
from .common import fail as _fail
from .common import print_json as _print_json
from .common import stage_progress as _stage_progress
from .common import verdict_mark as _mark


def demo(
    which: Annotated[str, typer.Argument(metavar="[credit|llm]", help="credit (default): a credit-scoring deployment on"
                                         " German Credit. llm: a downstream developer adapts a foundation model"
                                         " (all-MiniLM-L6-v2) on COMPAS text, then a generative test model (needs"
                                         " the llm extra).")] = "credit",
    data_dir: DataDir = DEFAULT_DIR,
    origin: Annotated[str | None, typer.Option(help="Origin if the log is created now (default:"
                                               " bank.example/credit-decisions; llm: agency.example/pretrial-decisions).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data split and the model.")] = 0,
    no_generative: Annotated[bool, typer.Option("--no-generative", help="llm: skip the generative half.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Run a deployment end to end and verify it: credit scoring (default) or a foundation-model adaptation (llm)."""
    if which == "llm":
        from .demo_llm import demo_llm

        demo_llm(data_dir, origin, seed, not no_generative, json_out)
        return
    if which != "credit":
        _fail(f"unknown demo {which!r}: choose credit or llm")
    origin = origin or "bank.example/credit-decisions"
    from ..demo.run import run_demo

    try:
        with _stage_progress() as progress:
            summary = run_demo(data_dir, origin=origin, seed=seed, progress=progress)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json(summary.to_dict())
    else:
        _print_demo(summary)
    raise typer.Exit(EXIT_OK if summary.ok else EXIT_FAILED)


def _print_demo(s) -> None:
    out.rule("[bold]glasslog demo: credit scoring on German Credit")
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("log", f"{s.origin} ({s.data_dir})")
    t.add_row("verifier key", s.verifier_key)
    t.add_row("model", f"{s.model} ({'registered now' if s.model_registered_now else 'already registered'})")
    t.add_row("deployment", s.deployment)
    t.add_row("decisions", f"{s.decisions} applicants scored in {s.batches} batches, entries {s.first_index}..")
    t.add_row("outcomes", f"{s.outcomes} recorded")
    t.add_row("log size", f"{s.tree_size} entries, latest checkpoint at tree size {s.tree_size}")
    out.print(t)
    m = Table(title="Claimed vs realised", show_lines=False)
    m.add_column("metric")
    m.add_column("claimed (evaluation split)", justify="right")
    m.add_column("realised (deployment outcomes)", justify="right")
    lo, hi = s.realised["accuracy_95ci"]
    m.add_row("accuracy", f"{s.claimed['accuracy']:.3f}", f"{s.realised['accuracy']:.3f}  (95% CI {lo:.3f}-{hi:.3f}, n={s.realised['n']})")
    m.add_row("ROC AUC", f"{s.claimed['roc_auc']:.3f}", f"{s.realised['roc_auc']:.3f}")
    out.print(m)
    v = Table(title="Verification", show_lines=False)
    v.add_column("check")
    v.add_column("result")
    v.add_column("detail", overflow="fold")
    v.add_row("receipts (offline, verifier key only)", _mark(s.receipts_ok), f"{s.receipts_checked} sampled; one saved to {s.receipt_file}")
    a = s.log_audit
    v.add_row("whole log", _mark(a["ok"]), f"{a['tree_size']} entries rehashed, {a['checkpoints']} checkpoints checked"
              + ("" if a["ok"] else f"; {failure_where(a['first_bad_index'], a.get('bad_checkpoint'))}: {a['problems'][0]}"))
    r = s.replay
    v.add_row("replay against registered weights", _mark(r["ok"]),
              f"{r['matched']}/{r['checked']} outputs reproduced, max |diff| {r['max_abs_diff']:.1e} (tolerance {r['tolerance']:.0e})")
    out.print(v)
    out.print(f"Check a receipt as its subject would, with only the published verifier key:\n"
              f"  glasslog verify receipt {s.receipt_file} --key-file {Path(s.data_dir) / 'log.vkey'}\n"
              f"  (this demo log has no witnesses, so nothing rules out a split view; on a witnessed log add"
              f" --witness-key KEY for each witness you trust)", highlight=False)


