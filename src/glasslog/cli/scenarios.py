"""``glasslog scenarios ...``: list, show and run the scenario lab.

Exit codes: 0 done, 2 bad input (unknown scenario, reps out of range, an
unwritable output directory); ``--json`` prints data as JSON.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..scenarios.schema import ScenarioError, load_scenario, scenario_ids
from .common import PlainWhenPiped, check_out
from .common import fail as _fail

__all__ = ["scenarios_app"]

scenarios_app = typer.Typer(help="The scenario lab: AI-risk scenarios under each access regime, measured with glasslog.",
                            no_args_is_help=True)
out = PlainWhenPiped()
err = PlainWhenPiped(stderr=True)

MAX_REPS = 200
"""At about 1.5 s per world run (2 busy cores) and 40 world runs per repetition of all four scenarios, 200
repetitions take about 3.5 hours; more than that is a batch job, not a command."""


@scenarios_app.command("list")
def list_scenarios(json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False) -> None:
    """List the shipped scenarios."""
    try:
        rows = [load_scenario(i) for i in scenario_ids()]
    except ScenarioError as exc:
        _fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps([{"id": s.id, "version": s.version, "title": s.title, "data": s.data} for s in rows], indent=2) + "\n")
        return
    t = Table("id", "version", "data", "title")
    for s in rows:
        t.add_row(s.id, str(s.version), s.data, s.title)
    out.print(t)


@scenarios_app.command("show")
def show(scenario: Annotated[str, typer.Argument(help="Scenario id (see `glasslog scenarios list`).")],
         json_out: Annotated[bool, typer.Option("--json", help="Print the validated scenario file as JSON.")] = False) -> None:
    """Show one scenario: description, mechanism, evidence (citations with their figures), actors, parameters."""
    try:
        s = load_scenario(scenario)
    except ScenarioError as exc:
        _fail(str(exc))
    if json_out:
        sys.stdout.write(json.dumps(s.model_dump(mode="json"), indent=2) + "\n")
        return
    out.print(f"[bold]{s.title}[/] ({s.id} v{s.version}, data: {s.data})\n")
    out.print(" ".join(s.description.split()) + "\n")
    out.print("[bold]Mechanism.[/] " + " ".join(s.mechanism.split()) + "\n", highlight=False)
    out.print("[bold]Evidence[/]", highlight=False)
    for c in s.evidence:
        out.print(f"- [{c.key}] {c.authors} ({c.year}). {c.title}. {c.where}", markup=False, highlight=False)
        for f in c.figures:
            value = f"{f.value:g}" if isinstance(f.value, float) else str(f.value)
            out.print(f"    {f.what}: {value} {f.unit}".rstrip(), markup=False, highlight=False)
        if c.note:
            out.print(f"    note: {' '.join(c.note.split())}", markup=False, highlight=False)
    out.print()
    t = Table("actor", "method", "needs")
    for a, m in s.methods():
        t.add_row(f"{a.role}: {a.name}", m.name, ", ".join(m.needs))
    out.print(t)
    p = Table("parameter", "value", "unit", "source")
    for q in s.parameters:
        p.add_row(q.name, str(q.value), q.unit, q.source)
    out.print(p)


@scenarios_app.command("run")
def run(
    scenario: Annotated[list[str] | None, typer.Option("--scenario", "-s", help="Scenario id; repeat for several (default: all).")] = None,
    reps: Annotated[int, typer.Option("--reps", "-n", help="Repetitions per scenario and regime.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed; the same seed gives the same report.")] = 0,
    lag_months: Annotated[float | None, typer.Option("--lag-months", help="Lag of the widely available models behind the frontier,"
                                                     " in months (default: each scenario's lag_months, 4).")] = None,
    out_dir: Annotated[str, typer.Option("--out", "-o", help="Where the report is written (a directory).")] = "scenario-report",
    no_sensitivity: Annotated[bool, typer.Option("--no-sensitivity", help="Skip the sensitivity runs.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Run the scenarios under every access regime and write report.md, report.html and results.json."""
    from ..scenarios.report import to_json, write_report
    from ..scenarios.runner import run_lab

    if not 1 <= reps <= MAX_REPS:
        _fail(f"--reps must be between 1 and {MAX_REPS}, got {reps} (each repetition of all four scenarios is 40 world"
              f" runs of about 1.5 s: {MAX_REPS} take about 3.5 hours)")
    if not out_dir.strip():
        _fail("--out: an empty path; give the directory the report is written to")
    out_dir = Path(out_dir)
    if seed < 0:
        _fail(f"--seed must be a non-negative integer, got {seed}")
    if lag_months is not None and (not math.isfinite(lag_months) or not 0 <= lag_months <= 120):
        _fail(f"--lag-months must be between 0 and 120, got {lag_months}")
    ids = list(dict.fromkeys(scenario or []))
    try:
        all_ids = scenario_ids()
    except ScenarioError as exc:
        _fail(str(exc))
    for i in ids or all_ids:
        try:
            load_scenario(i)
        except ScenarioError as exc:
            _fail(f"--scenario: {exc}")
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--out: {out_dir} exists and is not a directory")
    check_out(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"--out: cannot create {out_dir}: {exc.strerror or exc}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("scenario lab", total=None)

        def tick(label: str, n: int, total: int) -> None:
            progress.update(task, description=label, total=total, advance=n)

        res = run_lab(ids or None, reps=reps, seed=seed, lag_months=lag_months, progress=tick, sensitivity=not no_sensitivity)
    try:
        md, html, js = write_report(res, out_dir)
    except OSError as exc:
        _fail(f"--out: cannot write the report: {exc}")
    if json_out:
        sys.stdout.write(json.dumps(to_json(res), indent=2, sort_keys=True) + "\n")
        return
    t = Table("scenario", "regime", "detected", "decisions to detection (median, detected runs)", "harm before detection (mean)",
              "harm over the run (mean)", "false alarms (control)", title=f"scenario lab, {reps} reps, seed {seed}, {res.seconds:.0f} s")
    for sr in res.scenarios:
        for g, s in sr.regimes.items():
            t.add_row(sr.scenario.id, g, f"{100 * s.detect_p:.0f} %",
                      "–" if s.time_median is None else f"{s.time_median:.0f} (n={s.detected_n})",
                      "–" if s.harm_mean is None else f"{s.harm_mean:.1f}",
                      "–" if s.harm_total_mean is None else f"{s.harm_total_mean:.1f}", f"{100 * s.false_alarm_p:.0f} %")
    out.print(t)
    out.print(f"report: {md}  {html}  {js}")
