"""``glasslog monitor``: run the monitors over the log, once or on a schedule, and list findings.

    glasslog monitor run --role supervisor               # every monitor, findings appended to the log
    glasslog monitor run --every 3600                    # once an hour until Ctrl-C
    glasslog monitor run --role public --dry-run --json  # what the public's monitors find, nothing recorded
    glasslog monitor findings --verdict alert            # findings on the log
    glasslog monitor show 612                            # one finding in full

Exit codes (``run``): 0 no alert, 1 at least one alert (a check failed), 2
bad usage or input. With ``--every`` the loop ends on Ctrl-C (SIGINT) or
SIGTERM after the run in progress has been recorded, and exits 1 if any of
its runs alerted, else 0.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..access.policy import MONITOR_ROLES
from ..ledger import DATA_DIR_ENV, EntryError, KeyFileError, Ledger, LedgerError
from ..oversight.monitors import MONITORS, MonitorConfig, MonitorConfigError, MonitorRun, list_findings, run_monitors
from ..oversight.views import ColumnCursor, MonitorViewError
from .common import PlainWhenPiped
from .common import fail as _fail

__all__ = ["monitor_app", "explain"]

monitor_app = typer.Typer(help="Monitors: checker programs over the log (performance, drift, disparity, Goodhart, anomalies).",
                          no_args_is_help=True)
out = PlainWhenPiped()
err = PlainWhenPiped(stderr=True)

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar=DATA_DIR_ENV, help="Where the log lives.", show_default=True)]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_VERDICT_STYLE = {"alert": "[bold red]alert[/]", "ok": "[green]ok[/]", "insufficient-data": "[yellow]insufficient-data[/]"}


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _config(alpha: float, monitors: str | None, reference_size: int, reference_deployment: str | None, window: int | None,
            favourable: str | None, groups: str | None, min_psi: float, gap_seconds: float | None,
            burst_seconds: float | None) -> MonitorConfig:
    chosen = tuple(m.strip() for m in monitors.split(",") if m.strip()) if monitors is not None else MONITORS
    if not chosen:
        _fail(f"--monitors must name some of {', '.join(MONITORS)}, got {monitors!r}")
    parsed_groups: dict = {}
    if groups:
        try:
            parsed_groups = json.loads(groups)
        except json.JSONDecodeError as exc:
            _fail(f"--groups must be JSON such as '{{\"age_in_years\": {{\"bins\": [25]}}}}': {exc}")
        if not isinstance(parsed_groups, dict):
            _fail("--groups must be a JSON object: feature -> {\"bins\": [...]} or {\"map\": {...}}")
    try:
        return MonitorConfig(alpha=alpha, monitors=chosen, reference_size=reference_size,
                             reference_deployment=reference_deployment, window=window,
                             favourable=None if favourable is None else _json_value(favourable), groups=parsed_groups,
                             min_psi=min_psi, gap_seconds=gap_seconds, burst_seconds=burst_seconds)
    except MonitorConfigError as exc:
        _fail(str(exc))


def _short(text: str | None, width: int = 42) -> str:
    if not text:
        return ""
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _g(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _ci(pair: Any) -> str:
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        return f"{_g(pair[0])}-{_g(pair[1])}"
    return "-"


def explain(f: dict) -> str:
    """One line saying what a finding's figure is and what it was held against (for tables).

    Args:
        f: a finding as a dict (``Finding.to_dict()`` or a ``list_findings`` row): ``check``,
            ``statistic``, ``value``, ``threshold``, ``verdict`` and ``evidence``.

    Returns:
        e.g. ``"accuracy 0.743, 98.3% CI 0.679-0.799; claim 0.755 within the consistent range 0.652-0.84"``;
        for ``insufficient-data``, the reason.
    """
    ev = f.get("evidence") or {}
    check, value, threshold, verdict = f.get("check", ""), f.get("value"), f.get("threshold"), f.get("verdict")
    if ev.get("truncated"):
        return f"{f.get('statistic')} {_g(value)} (evidence truncated: {ev.get('reason')})"
    if verdict == "insufficient-data" and ev.get("reason"):
        return f"insufficient data: {ev['reason']}"
    if check in ("performance.accuracy", "performance.roc_auc"):
        a = ev.get("alpha_per_check") or ev.get("alpha") or 0.05
        claimed, rng = ev.get("claimed"), ev.get("claim_consistent_range") or [None, None]
        inside = isinstance(claimed, (int, float)) and None not in rng and rng[0] <= claimed <= rng[1]
        return (f"{f.get('statistic')} {_g(value)}, {100 * (1 - a):.3g}% CI {_ci(ev.get('realised_ci'))}; claim {_g(claimed)} "
                f"{'within' if inside else 'outside'} the range consistent with it {_ci(rng)}")
    if check == "performance.calibration":
        return (f"Spiegelhalter p-value {_g(value)} (alert below {_g(threshold)}); observed rate {_g(ev.get('observed_rate'))}"
                f" vs mean predicted {_g(ev.get('mean_predicted'))}")
    if check.startswith("drift."):
        drifted = ev.get("drifted") or []
        return (f"smallest Bonferroni-adjusted p-value {_g(value)} (alert below {_g(threshold)}); max PSI {_g(ev.get('psi_max'))}"
                + (f"; drifted: {', '.join(drifted)}" if drifted else ""))
    if check.startswith("disparity."):
        metric = check.split(".", 1)[1].replace("_", " ")
        shown, ref = ev.get("worst_group"), ev.get("reference_group")
        row = (ev.get("groups") or {}).get(shown) or {}
        text = (f"{metric} ratio {_g(value)} ({shown} vs reference {ref}), interval {_ci(row.get('ratio_ci'))} "
                f"(Bonferroni over {ev.get('comparisons_in_family')}); alert outside {_ci(ev.get('band'))} "
                f"when the interval excludes 1")
        return text + ("; outside the band but not significant" if ev.get("note") else "")
    if check == "goodhart":
        return f"intersection-union p-value {_g(value)} (alert below {_g(threshold)}); proxy {ev.get('proxy')}"
    if check == "anomaly.order":
        return f"{_g(value)} timestamps out of order or outcomes before their decision (tolerance {_g(ev.get('tolerance_seconds'))} s)"
    if check == "anomaly.future":
        return f"{_g(value)} timestamps more than {_g(ev.get('tolerance_seconds'))} s after the run"
    if check == "anomaly.gap":
        return f"longest gap {_g(value)} s between batches (alert above {_g(threshold)} s)"
    if check == "anomaly.burst":
        return f"Poisson tail p-value {_g(value)} of the busiest bin (alert below {_g(threshold)})"
    return f"{f.get('statistic')} {_g(value)} (threshold {_g(threshold)})"


def _label(f) -> str:
    attr = f.evidence.get("attribute") or f.evidence.get("proxy")
    return f"{f.check} ({attr})" if attr else f.check


def _print_run(run: MonitorRun, recorded: range | None) -> None:
    out.print(f"[bold]Monitor run as {run.role}[/]: {run.decisions:,} decisions read in {run.load_seconds:.2f} s, "
              f"checked in {run.check_seconds:.2f} s; {len(run.alerts)} alert(s) among {len(run.findings)} findings")
    pairs: dict[tuple[str, str], list] = {}
    for f in run.findings:
        pairs.setdefault((f.deployment, f.model), []).append(f)
    for (dep, model), found in pairs.items():
        t = Table(title=f"{dep}  (model {model[:19]}...)", title_justify="left")
        for col in ("check", "verdict", "severity", "value", "statistic, interval, threshold"):
            t.add_column(col, justify="right" if col == "value" else "left", overflow="fold")
        for f in found:
            t.add_row(_label(f), _VERDICT_STYLE.get(f.verdict, f.verdict), f.severity, _fmt(f.value), explain(f.to_dict()))
        out.print(t)
    for f in run.alerts:
        detail = f.evidence.get("direction") or ", ".join(f.evidence.get("drifted", []) or []) or \
            ", ".join(f.evidence.get("significant", []) or []) or f"{f.statistic} = {_fmt(f.value)}"
        out.print(f"  [red]alert[/] {_label(f)}: {detail}", highlight=False)
    for s in run.skipped:
        out.print(f"  [dim]skipped {s['monitor']} for {_short(s['deployment'])}: {s['reason']}[/]", highlight=False)
    if recorded is not None:
        if len(recorded):
            out.print(f"recorded {len(recorded)} finding entries at indexes {recorded.start}..{recorded.stop - 1}")
        else:
            out.print("nothing to record")
    elif run.findings:
        out.print("[dim]nothing recorded (--dry-run)[/]")


def _signature(run: MonitorRun, alerts_only: bool) -> str:
    """What a run found, without its time (the entry's, and the run's own wherever evidence repeats it, e.g.
    ``run_time``): two runs over an unchanged log give the same signature."""

    def scrub(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: scrub(x) for k, x in v.items() if k not in ("time", "run_time") and x != run.time}
        if isinstance(v, list):
            return [scrub(x) for x in v]
        return v

    return json.dumps([scrub(e) for e in run.entries(only_alerts=alerts_only)], sort_keys=True, default=str)


def _once(data_dir: Path, role: str, cfg: MonitorConfig, deployments: list[str] | None, granted: list[str], dry_run: bool,
          alerts_only: bool, quiet: bool, last: str | None = None, cursor: ColumnCursor | None = None
          ) -> tuple[MonitorRun, range | None, str]:
    """One run; its findings are recorded unless ``dry_run`` or they are the same as ``last`` (the previous run's
    signature, with ``--every``): an unchanged log gets no identical findings again. ``cursor`` (with ``--every``)
    keeps what the previous runs read, so this one reads only the decisions added since."""
    try:
        ledger = Ledger.open(data_dir)
    except LedgerError as exc:
        _fail(str(exc))
    try:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=err, transient=True, disable=quiet)
        with progress as bar:
            tasks: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            run = run_monitors(ledger, role, cfg, deployments=deployments, granted=granted, progress=report, cursor=cursor)
        recorded = None
        signature = _signature(run, alerts_only)
        if not dry_run and signature != last:
            result = run.record(ledger, only_alerts=alerts_only)
            recorded = result.indexes if result is not None else range(0)
        elif not dry_run:
            recorded = range(0)
        return run, recorded, signature
    except (MonitorViewError, MonitorConfigError, EntryError, KeyFileError, LedgerError) as exc:
        _fail(str(exc))
    finally:
        ledger.close()


@monitor_app.command("run")
def run_cmd(
    data_dir: DataDir = Path("glasslog-data"),
    role: Annotated[str, typer.Option(help=f"Run as this role: {', '.join(MONITOR_ROLES)}; each sees only what it may.")] = "supervisor",
    deployment: Annotated[list[str] | None, typer.Option(help="Only this deployment (repeatable).")] = None,
    granted: Annotated[list[str] | None, typer.Option(help="For --role developer: a deployment its key is granted (repeatable).")] = None,
    monitors: Annotated[str | None, typer.Option(help=f"Comma-separated subset of {','.join(MONITORS)}.")] = None,
    alpha: Annotated[float, typer.Option(help="Family-wise significance level of each monitor, a fraction.")] = 0.05,
    reference_size: Annotated[int, typer.Option(help="Reference window: the first N decisions (at most half).")] = 1000,
    reference_deployment: Annotated[str | None, typer.Option(help="Reference window: all decisions of this deployment.")] = None,
    window: Annotated[int | None, typer.Option(help="Current window: the latest N decisions (default: all after the reference).")] = None,
    favourable: Annotated[str | None, typer.Option(help="Favourable output label for selection rates (JSON, e.g. 0).")] = None,
    groups: Annotated[str | None, typer.Option(help="Protected groups as JSON, e.g. '{\"age_in_years\": {\"bins\": [25]}}'.")] = None,
    min_psi: Annotated[float, typer.Option(help="A feature drifts only if its PSI is also at least this.")] = 0.0,
    gap_seconds: Annotated[float | None, typer.Option(help="Fixed gap threshold in seconds (default: statistical).")] = None,
    burst_seconds: Annotated[float | None, typer.Option(help="Bin width for bursts in seconds (default: 10 median intervals).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Do not record findings on the log.")] = False,
    alerts_only: Annotated[bool, typer.Option("--alerts-only", help="Record only findings that alert.")] = False,
    every: Annotated[float | None, typer.Option(help="Run again every SECONDS until Ctrl-C; exit 1 if any run alerted.",
                                                min=1.0)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (one object per run).")] = False,
) -> None:
    """Run the monitors as a role and record their findings (one atomic append per run)."""
    if role not in MONITOR_ROLES:
        _fail(f"--role must be one of {', '.join(MONITOR_ROLES)}, got {role!r}")
    if granted and role != "developer":
        _fail(f"--granted applies to --role developer only, not {role}")
    cfg = _config(alpha, monitors, reference_size, reference_deployment, window, favourable, groups, min_psi, gap_seconds,
                  burst_seconds)
    if every is None:
        run, recorded, _ = _once(data_dir, role, cfg, deployment, granted or [], dry_run, alerts_only, json_out)
        if json_out:
            sys.stdout.write(json.dumps({**run.to_dict(), "rows_read": run.rows_read, "recorded": list(recorded) if recorded is not None else None}) + "\n")
        else:
            _print_run(run, recorded)
        raise typer.Exit(EXIT_FAILED if run.alerts else EXIT_OK)

    stop = threading.Event()

    def ask_stop(signum, frame) -> None:  # finish the run in progress, then leave
        if not stop.is_set():
            err.print("[dim]stopping after the current run ...[/]")
        stop.set()

    previous = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    runs = alerted = 0
    last: str | None = None
    cursor = ColumnCursor()  # each run reads only the decisions and outcomes added since the last
    try:
        while not stop.is_set():
            run, recorded, signature = _once(data_dir, role, cfg, deployment, granted or [], dry_run, alerts_only, json_out,
                                             last, cursor)
            unchanged, last = signature == last, signature
            runs += 1
            alerted += bool(run.alerts)
            if json_out:
                sys.stdout.write(json.dumps({**run.to_dict(), "rows_read": run.rows_read, "recorded": list(recorded) if recorded is not None else None}) + "\n")
                sys.stdout.flush()
            else:
                _print_run(run, recorded)
                if unchanged and not dry_run:
                    out.print("[dim]the same findings as the last run: not recorded again[/]")
                out.print(f"[dim]{run.rows_read:,} decision and outcome rows read from storage (only those added since the "
                          f"last run); next run in {every:g} s (Ctrl-C to stop)[/]")
            stop.wait(every)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    err.print(f"monitor schedule stopped after {runs} run(s), {alerted} with alerts")
    raise typer.Exit(EXIT_FAILED if alerted else EXIT_OK)


@monitor_app.command("findings")
def findings_cmd(
    data_dir: DataDir = Path("glasslog-data"),
    deployment: Annotated[str | None, typer.Option(help="Only findings about this deployment.")] = None,
    check: Annotated[str | None, typer.Option(help="Only this check, or checks starting with it (e.g. drift).")] = None,
    verdict: Annotated[str | None, typer.Option(help="Only this verdict: alert, ok or insufficient-data.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List monitor findings recorded on the log, newest first."""
    if verdict is not None and verdict not in ("alert", "ok", "insufficient-data"):
        _fail(f"--verdict must be alert, ok or insufficient-data, got {verdict!r}")
    try:
        ledger = Ledger.open(data_dir)
    except LedgerError as exc:
        _fail(str(exc))
    try:
        found = list_findings(ledger, deployment=deployment, check=check, verdict=verdict, limit=limit)
    finally:
        ledger.close()
    if json_out:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    t = Table(title=f"Monitor findings ({len(found)} shown, newest first)")
    for col in ("index", "time", "check", "verdict", "severity", "value", "statistic, interval, threshold", "by"):
        t.add_column(col, justify="right" if col in ("index", "value") else "left", overflow="fold")
    for f in found:
        evidence = f.get("evidence") or {}
        attr = evidence.get("attribute") or evidence.get("proxy")
        t.add_row(str(f["index"]), f["time"][:16].replace("T", " "), f["check"] + (f" ({attr})" if attr else ""),
                  _VERDICT_STYLE.get(f["verdict"], f["verdict"]), f["severity"], _fmt(f.get("value")), explain(f), f["by_role"])
    out.print(t)
    out.print("[dim]one finding in full: glasslog monitor show INDEX[/]")


@monitor_app.command("show")
def show_cmd(
    index: Annotated[int, typer.Argument(help="The finding's entry index (from 'glasslog monitor findings').", min=0)],
    data_dir: DataDir = Path("glasslog-data"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the finding entry as JSON.")] = False,
) -> None:
    """Show one finding: what it says, its window and its evidence."""
    try:
        ledger = Ledger.open(data_dir)
    except LedgerError as exc:
        _fail(str(exc))
    try:
        if index >= ledger.size:
            _fail(f"no entry {index} in the log (size {ledger.size})")
        obj = json.loads(ledger.entry(index))
    finally:
        ledger.close()
    if obj.get("type") != "finding":
        _fail(f"entry {index} is a {obj.get('type')} entry, not a finding")
    f = {"index": index, **{k: v for k, v in obj.items() if k not in ("type", "v")}}
    if json_out:
        sys.stdout.write(json.dumps(f, indent=2) + "\n")
        return
    evidence = f.get("evidence") or {}
    attr = evidence.get("attribute") or evidence.get("proxy")
    out.print(f"[bold]finding {index}[/]: {f['check']}{f' ({attr})' if attr else ''} "
              f"{_VERDICT_STYLE.get(f['verdict'], f['verdict'])}, severity {f['severity']}", highlight=False)
    out.print(f"  deployment {f.get('deployment')}, model {f.get('model', '-')}, by {f['by_role']} ({f.get('source')}) at {f['time']}",
              highlight=False)
    out.print(f"  {f['statistic']} = {_fmt(f.get('value'))}, threshold {_fmt(f.get('threshold'))}", highlight=False)
    out.print(f"  {explain(f)}", highlight=False)
    for k in ("direction", "note"):
        if evidence.get(k):
            out.print(f"  {k}: {evidence[k]}", highlight=False)
    out.print("  window: " + json.dumps(f.get("window")), highlight=False)
    out.print("  evidence:", highlight=False)
    out.print_json(json.dumps(evidence))
