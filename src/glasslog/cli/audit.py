"""``glasslog audit ...``: audits with and without the weights, written as reports (HTML, Markdown, JSON).

Commands: ``csv`` (a labelled CSV), ``compas`` (the shipped ProPublica data), ``site``
(multi-source data: does the model know the site?),
``model`` (a registered model against its log, as one role), ``suspend`` (a
supervisor suspends a model citing a finding), ``deceptive`` (the
deceptive-accuracy demonstration).

Exit codes: 0 no finding at or above ``--fail-on``; 1 at least one such
finding (the audit found a problem), or nothing could be measured (``audit
model`` as a role that sees no decisions, inputs, outcomes or weights: an audit
that measured nothing does not clear the model, so a script gating on exit 0
never takes it for a pass); 2 bad usage or input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from ..audit.recording import AuditInputError, record_findings, severity_at_least, suspend_from_finding
from ..errors import EXIT_FAILED, EXIT_OK
from ..findings import Finding
from ..ledger import EntryError, Ledger, LedgerError
from ..records import SEVERITIES
from ..registry import RegistryError
from ..stats.labels import positive_class
from .common import USER_ERRORS, DataDir, PlainWhenPiped, Trust, TrustRecorded, check_out
from .common import fail as _fail
from .common import progress_bar as _progress
from .common import stage_progress as _stage_progress

app = typer.Typer(help="Audits with and without the weights: error rates by group, shortcut features, leakage,"
                       " claimed vs realised accuracy.", no_args_is_help=True)

out = PlainWhenPiped()
err = PlainWhenPiped(stderr=True)
_ERRORS = USER_ERRORS

OutDir = Annotated[Path | None, typer.Option("--out", "-o", help="Write report.html, report.md and report.json here.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")]
FailOn = Annotated[str, typer.Option("--fail-on", help=f"Exit 1 if a finding alerts at this severity or worse ({', '.join(SEVERITIES)}).")]
Seed = Annotated[int, typer.Option(help="Bootstrap and sampling seed.")]
NBoot = Annotated[int, typer.Option("--n-boot", help="Bootstrap draws for the intervals.")]


def _check_severity(value: str, option: str) -> str:
    if value not in SEVERITIES:
        _fail(f"{option} must be one of {', '.join(SEVERITIES)}, got {value!r}")
    return value


def _check_common(n_boot: int | None = None, seed: int | None = None) -> None:
    """Refuse --n-boot under the minimum and --seed outside numpy's / scikit-learn's range (exit 2, naming the option)."""
    from ..audit.group import MIN_BOOT

    if n_boot is not None and n_boot < MIN_BOOT:
        _fail(f"--n-boot: must be at least {MIN_BOOT} bootstrap draws (the intervals are Bonferroni-adjusted and reach far"
              f" into the tails), got {n_boot}")
    if seed is not None and not 0 <= seed < 2**32:
        _fail(f"--seed: must be an integer from 0 to {2**32 - 1}, got {seed}")


def published_reports_dir(out_dir: Path) -> Path | None:
    """The data dir whose public ``reports/`` folder ``out_dir`` lies in (the web register serves it at /reports), or None.

    ``out_dir`` is resolved (symlinks, ``..``); a folder counts when an ancestor named ``reports`` sits beside a
    ``log.db``.
    """
    resolved = Path(out_dir).resolve()
    for parent in (resolved, *resolved.parents):
        if parent.name == "reports" and (parent.parent / "log.db").exists():
            return parent.parent
    return None


def _check_publish(out_dir: Path | None, role: str, publish: bool) -> None:
    """Refuse (exit 2) to write a non-public role's report into a log's public reports folder without ``--publish``."""
    if out_dir is None or role == "public" or publish:
        return
    data_dir = published_reports_dir(out_dir)
    if data_dir is not None:
        _fail(f"--out {out_dir} is in {data_dir / 'reports'}, which the web register serves publicly at /reports: this"
              f" report is written with role {role}'s access, so the group figures, outcomes and inputs of a private"
              " deployment would become public. Give --publish to publish it anyway, or write it elsewhere.")


def _finish(report, out_dir: Path | None, json_out: bool, fail_on: str, extra_lines: list[str] = ()) -> NoReturn:
    paths = {}
    if out_dir is not None:
        check_out(out_dir)
        try:
            paths = report.write(out_dir)
        except OSError as exc:
            _fail(f"cannot write the report to {out_dir}: {exc.strerror or exc}")
    findings = report.findings
    failing = [f for f in findings if f.alert and severity_at_least(f.severity, fail_on)]
    unmeasured = report.unmeasured
    code = EXIT_FAILED if failing or unmeasured else EXIT_OK
    if json_out:
        data = report.to_dict()
        data["written"] = {k: str(v) for k, v in paths.items()}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        _print_findings(report.title, findings)
        for line in extra_lines:
            out.print(line, highlight=False)
        if paths:
            out.print(f"report written: {', '.join(str(p) for p in paths.values())}", highlight=False)
        if unmeasured:
            out.print(f"[bold red]{unmeasured}[/]. (exit {EXIT_FAILED}: an audit that measured nothing does not clear the"
                      " model)", highlight=False)
        else:
            out.print(f"{len([f for f in findings if f.alert])} alerting findings, {len(failing)} at or above {fail_on}"
                      f" (exit {code}).")
    raise typer.Exit(code)


def _print_findings(title: str, findings: list[Finding]) -> None:
    t = Table(title=title, show_lines=False)
    for col in ("severity", "check", "value", "summary"):
        t.add_column(col, overflow="fold")
    for f in findings:
        if not f.alert:
            continue
        style = {"critical": "bold red", "high": "red", "medium": "yellow"}.get(f.severity, "")
        t.add_row(f"[{style}]{f.severity}[/]" if style else f.severity, f.check, "" if f.value is None else f"{f.value:.4g}",
                  f.summary)
    ok = [f for f in findings if not f.alert]
    if t.row_count:
        out.print(t)
    if ok:
        out.print(f"({len(ok)} checks passed or had too little data; see the report)")


def _read_csv(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        _fail(f"no such file: {path}")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        _fail(f"cannot read {path} as CSV: {exc}")


def _parse_positive(value: str, column) -> Any:
    """The positive value in the column's own type (``1`` for an integer column, text otherwise)."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
        try:
            return int(value)
        except ValueError:
            _fail(f"--positive {value!r}: the column holds integers")
    if pd.api.types.is_float_dtype(column):
        try:
            return float(value)
        except ValueError:
            _fail(f"--positive {value!r}: the column holds numbers")
    return value


@app.command("csv")
def audit_csv(
    file: Annotated[Path, typer.Argument(help="Labelled CSV: one row per decision, with outcome, prediction and group columns.")],
    label: Annotated[str, typer.Option("--label", help="Outcome column.")],
    prediction: Annotated[str, typer.Option("--prediction", help="Binary prediction column (same values as the label).")],
    group: Annotated[list[str], typer.Option("--group", help="Group column (repeatable), e.g. --group race --group sex.")],
    positive: Annotated[str, typer.Option(help="The positive outcome value, e.g. 1 or bad.")] = "1",
    reference: Annotated[str | None, typer.Option(help="Reference group for the ratios (default: the largest).")] = None,
    min_group_size: Annotated[int, typer.Option(help="Groups smaller than this are left out of the between-group ratios.")] = 50,
    n_boot: NBoot = 1000,
    seed: Seed = 0,
    out_dir: OutDir = None,
    json_out: JsonOut = False,
    fail_on: FailOn = "high",
) -> None:
    """Error rates by group (confusion matrix, FPR, FNR, PPV, selection rate, ratios with bootstrap intervals) of a labelled CSV."""
    from ..audit.group import group_audit_frame
    from ..audit.report import build_report

    _check_severity(fail_on, "--fail-on")
    _check_common(n_boot, seed)
    frame = _read_csv(file)
    if label not in frame.columns:
        _fail(f"--label: no column {label!r} in {file}; columns are {list(frame.columns)[:30]}")
    try:
        results = group_audit_frame(frame, label, prediction, group, positive=_parse_positive(positive, frame[label]),
                                    reference=reference, n_boot=n_boot, seed=seed, min_group_size=min_group_size)
    except AuditInputError as exc:
        _fail(str(exc))
    if not any(f.verdict != "insufficient-data" for r in results.values() for f in getattr(r, "findings", None) or []):
        from ..audit.report import Notes

        why = (f"nothing could be measured in {file.name}: no group of --min-group-size {min_group_size} rows or more"
               " has the outcomes and predictions a rate needs")  # as audit model: say so, exit 1
        results = {**results, "notes": Notes([why], unmeasured=why)}
    report = build_report(results, title=f"Group error-rate audit of {file.name}",
                          context={"data": str(file), "rows": len(frame), "label": label, "prediction": prediction,
                                   "positive": positive, "groups": ", ".join(group)})
    _finish(report, out_dir, json_out, fail_on)


@app.command("compas")
def audit_compas(
    unfiltered: Annotated[bool, typer.Option(help="All 7,214 rows instead of ProPublica's filtered 6,172.")] = False,
    n_boot: NBoot = 1000,
    seed: Seed = 0,
    out_dir: OutDir = None,
    json_out: JsonOut = False,
    fail_on: FailOn = "high",
) -> None:
    """Group audit of the shipped ProPublica COMPAS data: Medium/High score as the high-risk prediction, by race and by sex."""
    from ..audit.group import group_audit_frame
    from ..audit.report import build_report
    from ..datasets.compas import load_compas

    _check_severity(fail_on, "--fail-on")
    _check_common(n_boot, seed)
    df = load_compas(filtered=not unfiltered)
    try:
        # Black defendants against white ones first: the comparison ProPublica reported ("Machine Bias", 2016)
        results = {**group_audit_frame(df, "two_year_recid", "high_risk", ["race"], n_boot=n_boot, seed=seed,
                                       reference="Caucasian", lead="African-American"),
                   **group_audit_frame(df, "two_year_recid", "high_risk", ["sex"], n_boot=n_boot, seed=seed)}
    except AuditInputError as exc:
        _fail(str(exc))
    from ..audit.group import name_the_harmed

    for audit in results.values():
        audit.extra.update(positive_meaning="1 = COMPAS score Medium or High (predicted) / re-offended within two years"
                                            " (outcome)", favourable="unfavourable")
        name_the_harmed(audit, positive_is_favourable=False)
    report = build_report(results, title="COMPAS two-year recidivism: error rates by race and sex",
                          context={"data": "ProPublica compas-scores-two-years.csv (shipped; see audit/data/README.md)",
                                   "rows": len(df), "filters": "none" if unfiltered else "ProPublica's standard filters",
                                   "prediction": "score_text Medium or High", "outcome": "two_year_recid"})
    _finish(report, out_dir, json_out, fail_on)


@app.command("site")
def audit_site(
    file: Annotated[Path, typer.Argument(help="Labelled CSV from several sources: inputs, outcome and a site column.")],
    label: Annotated[str, typer.Option("--label", help="Outcome column.")],
    site: Annotated[str, typer.Option("--site", help="Column naming each row's source (hospital, branch, batch ...).")],
    positive: Annotated[str, typer.Option(help="The positive outcome value.")] = "1",
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Columns that are not inputs (ids ...); repeatable.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Also score the rows with this registered model (by fingerprint).")] = None,
    data_dir: DataDir = Path("glasslog-data"),
    seed: Seed = 0,
    out_dir: OutDir = None,
    json_out: JsonOut = False,
    fail_on: FailOn = "high",
) -> None:
    """Does the model know the site? How well the inputs predict the source, and (with --model) performance and scores by source."""
    from ..audit.report import build_report
    from ..audit.site import site_audit

    _check_severity(fail_on, "--fail-on")
    _check_common(seed=seed)
    frame = _read_csv(file)
    for opt, col in (("--label", label), ("--site", site), *(("--exclude", c) for c in exclude or [])):
        if col not in frame.columns:
            _fail(f"{opt}: no column {col!r} in {file}; columns are {list(frame.columns)[:30]}")
    X = frame.drop(columns=[label, site, *(exclude or [])])
    query = None
    context = {"data": str(file), "rows": len(frame), "label": label, "site": site}
    if model is not None:
        from ..registry import Registry

        try:
            ledger = Ledger.open(data_dir)
            record = Registry(ledger).get(model)
            estimator = Registry(ledger).load(record.fingerprint)
        except _ERRORS as exc:
            _fail(str(exc))
        missing = [f for f in record.card.feature_names if f not in X.columns]
        if missing:
            _fail(f"{file} lacks the model's features {missing}")
        X = X[record.card.feature_names]
        _, pos = positive_class(record.card.output)
        idx = list(estimator.classes_).index(pos) if pos in list(estimator.classes_) else -1
        query = lambda f: estimator.predict_proba(f)[:, idx]  # noqa: E731  (the prediction API: outputs only)
        context["model"] = record.fingerprint
    try:
        result = site_audit(X, frame[label], frame[site], query=query, positive=_parse_positive(positive, frame[label]),
                            seed=seed, model=context.get("model"))
    except AuditInputError as exc:
        where = {"site": f"--site column {site!r}", "y": f"--label column {label!r}", "positive": "--positive",
                 "seed": "--seed", "X": f"{file}"}.get(exc.field, f"column {exc.field!r}")
        _fail(f"{where}: {exc.problem}")
    report = build_report([("site", result)], title=f"Does the model know the site? {file.name}", context=context)
    _finish(report, out_dir, json_out, fail_on)


@app.command("model")
def audit_model(
    fingerprint: Annotated[str | None, typer.Argument(help="Model fingerprint or unique prefix (see glasslog models list);"
                                                          " optional when the log holds one model.")] = None,
    data_dir: DataDir = Path("glasslog-data"),
    deployment: Annotated[str | None, typer.Option(help="Only this deployment.")] = None,
    role: Annotated[str, typer.Option(help="Audit as: public, developer, researcher, supervisor or operator.")] = "supervisor",
    group: Annotated[list[str] | None, typer.Option("--group", help="Group attribute (repeatable); sex and age_group are derived for German Credit.")] = None,
    training_data: Annotated[Path | None, typer.Option("--training-data", help="CSV of the registered training data (features and label).")] = None,
    label_column: Annotated[str | None, typer.Option("--label-column", help="Label column of --training-data.")] = None,
    record: Annotated[bool, typer.Option("--record", help="Append the alerting findings to the log as finding entries (one batch).")] = False,
    suspend_on: Annotated[str | None, typer.Option("--suspend-on-severity", help="Supervisors: suspend the model citing the first recorded finding at this severity or worse.")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="Allow --out inside the log's public reports folder"
                                                            " (<data dir>/reports/) for a role other than public: its"
                                                            " figures become public on the web register.")] = False,
    n_boot: NBoot = 1000,
    seed: Seed = 0,
    out_dir: OutDir = None,
    trust: Trust = None,
    trust_recorded: TrustRecorded = False,
    json_out: JsonOut = False,
    fail_on: FailOn = "high",
) -> None:
    """Audit a registered model against its log with what ROLE may see: claims, groups, black-box, and white-box if the policy gives ROLE the weights.

    Exit 0: no finding at or above --fail-on. Exit 1: such a finding, or nothing could be measured for ROLE (e.g. the
    public on a private deployment: no decisions, inputs or weights visible); the terminal and the report say why.
    Exit 2: bad usage or input.
    """
    from ..audit.report import build_report
    from ..audit.run import audit_logged_model

    _check_severity(fail_on, "--fail-on")
    _check_common(n_boot, seed)
    if suspend_on is not None:
        _check_severity(suspend_on, "--suspend-on-severity")
        if role != "supervisor":
            _fail(f"--suspend-on-severity: only a supervisor may suspend a model; --role is {role!r}")
        record = True
    _check_publish(out_dir, role, publish)
    try:
        ledger = Ledger.open(data_dir)
    except LedgerError as exc:
        _fail(str(exc))
    if fingerprint is None:
        from ..registry import Registry

        models = Registry(ledger).list()
        if len(models) != 1:
            _fail(f"the log holds {len(models)} models; name one: "
                  + (", ".join(f"{m.fingerprint[:19]} ({m.card.name} {m.card.version})" for m in models[:10]) or "none registered"))
        fingerprint = models[0].fingerprint
    train = _read_csv(training_data) if training_data is not None else None
    try:
        with _progress() as bar:
            task = bar.add_task("auditing", total=None)
            results = audit_logged_model(ledger, fingerprint, deployment=deployment, principal=role, groups=group or [],
                                         training_data=train, label_column=label_column, seed=seed, n_boot=n_boot,
                                         trusted=tuple(trust or ()), trust_recorded=trust_recorded)
            bar.update(task, completed=1, total=1)
    except _ERRORS as exc:
        _fail(str(exc))
    claims = results["claims"]
    model_fp = claims.findings[0].model if claims.findings else fingerprint
    report = build_report(results, title=f"Audit of model {model_fp[:19]}... as {role}",
                          context={"log": ledger.origin, "model": model_fp, "deployment": deployment or "all", "role": role,
                                   "tree_size": ledger.size})
    lines = [f"claimed vs realised ({claims.n} outcomes): " + (", ".join(
        f"{c.metric} {c.claimed:.3f} vs {c.realised:.3f}" + (f" ({c.ci[0]:.3f}-{c.ci[1]:.3f})" if c.ci else "")
        for c in claims.checks if c.realised is not None) or "nothing to compare")]
    lines += [f"note: {n}" for n in results["notes"].notes]
    if record:
        alerts = [f for f in report.findings if f.alert]
        already = _already_recorded(ledger, alerts, role, model_fp, deployment)
        if already:
            lines.append(f"{len(already)} alerting findings already on the log for this model and check (identical"
                         f" evidence), not recorded again: entries {', '.join(str(i) for i in already.values())}")
        new_alerts = [f for f in alerts if id(f) not in already]
        try:
            rec = record_findings(ledger, new_alerts, role, model=model_fp, deployment=deployment)
        except EntryError as exc:
            _fail(f"findings could not be recorded (nothing written): {exc}")
        alerts = new_alerts
        if rec is None:
            lines.append("no new alerting findings to record" if already else "no alerting findings to record")
        else:
            lines.append(f"recorded {len(rec.indexes)} finding entries: {rec.first_index}..{rec.tree_size - 1}")
            if suspend_on is not None:
                cite = next((i for i, f in zip(rec.indexes, alerts) if severity_at_least(f.severity, suspend_on)), None)
                if cite is None:
                    lines.append(f"no finding at or above {suspend_on}: the model stays as it is")
                else:
                    try:
                        s = suspend_from_finding(ledger, cite, by=role)
                    except (RegistryError, AuditInputError) as exc:
                        lines.append(f"[red]not suspended[/]: {exc}")
                    else:
                        lines.append(f"[bold]model suspended[/] (entry {s.first_index}), citing finding entry {cite}")
    _finish(report, out_dir, json_out, fail_on, lines)


def _already_recorded(ledger: Ledger, findings: list[Finding], role: str, model: str,
                      deployment: str | None) -> dict[int, int]:
    """``id(finding) -> entry index`` of findings already on the log: same model, deployment, check, statistic, verdict,
    severity, value, threshold, role and evidence (everything but the time)."""
    def key(entry: dict) -> str:
        return json.dumps({k: v for k, v in entry.items() if k != "time"}, sort_keys=True)

    on_log: dict[str, int] = {}
    for i, e in ledger.entries_of_type("finding"):
        if e.get("source") == "audit" and e.get("model") == model:
            on_log[key(e)] = i
    out = {}
    for f in findings:
        entry = f.entry(role)
        entry.setdefault("model", model)
        if deployment and "deployment" not in entry:
            entry["deployment"] = deployment
        if key(entry) in on_log:
            out[id(f)] = on_log[key(entry)]
    return out


@app.command("suspend")
def audit_suspend(
    finding: Annotated[int, typer.Argument(help="Entry index of a recorded finding that names the model.")],
    reason: Annotated[str, typer.Option(help="Why the model is suspended (required): added to the citation on the record.")],
    role: Annotated[str, typer.Option(help="Who suspends; only supervisor may.")] = "supervisor",
    data_dir: DataDir = Path("glasslog-data"),
) -> None:
    """Suspend the model a finding is about (the kill switch), citing the finding and a --reason: one status entry on the log."""
    if not reason.strip():
        _fail("--reason: say why the model is suspended (it goes on the public record); got an empty reason")
    try:
        ledger = Ledger.open(data_dir)
        result = suspend_from_finding(ledger, finding, reason=reason, by=role)
    except PermissionError as exc:
        _fail(str(exc))
    except _ERRORS as exc:
        _fail(str(exc))
    entry = json.loads(ledger.entry(result.first_index))
    out.print(f"model {entry['model'][:19]}... suspended (entry {result.first_index}): {entry['reason']}", highlight=False)


@app.command("deceptive")
def audit_deceptive(
    data_dir: Annotated[Path, typer.Option("--data-dir", "-d", help="A fresh directory for the demonstration's log.")] = Path("glasslog-deceptive-demo"),
    seed: Seed = 0,
    no_suspend: Annotated[bool, typer.Option("--no-suspend", help="Do not suspend the model at the end.")] = False,
    out_dir: OutDir = None,
    json_out: JsonOut = False,
    fail_on: FailOn = "high",
) -> None:
    """The deceptive-accuracy demonstration on German Credit: what each access level finds, and when.

    Exit 1 when a finding alerts at --fail-on or worse, like the other audit commands: the demonstration's model is
    deceptive by design, so at the default (high) it exits 1; that is the audit working. Exit 2: bad usage.
    """
    from ..audit.report import build_report
    from ..scenarios.deceptive import run_deceptive_demo

    _check_severity(fail_on, "--fail-on")
    _check_common(seed=seed)
    try:
        with _stage_progress() as progress:
            demo = run_deceptive_demo(data_dir, seed=seed, suspend=not no_suspend, progress=progress)
    except _ERRORS as exc:
        _fail(str(exc))
    report = build_report(demo.report_sections(),
                          title="Deceptive accuracy: who sees it, and when",
                          context={"log": f"{demo.origin} ({demo.data_dir})", "model": demo.model, "deployment": demo.deployment})
    try:
        paths = report.write(out_dir) if out_dir is not None else {}
    except OSError as exc:
        _fail(f"cannot write the report to {out_dir}: {exc.strerror or exc}")
    alerts = [f for f, _ in report.merged_findings() if f.alert]
    failing = [f for f in alerts if severity_at_least(f.severity, fail_on)]
    code = EXIT_FAILED if failing else EXIT_OK
    if json_out:
        data = demo.to_dict()
        data["findings"] = report.to_dict()["findings"]
        data["written"] = {k: str(v) for k, v in paths.items()}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        raise typer.Exit(code)
    lo, hi = demo.realised["accuracy_ci"]
    out.print(f"claimed accuracy {demo.claimed['accuracy']:.3f} (validation, n=150); realised {demo.realised['accuracy']:.3f}"
              f" (95% CI {lo:.3f}-{hi:.3f}, n={demo.realised['n']}); same pipeline without the artefact {demo.honest_accuracy:.3f}")
    t = Table(title="Who finds it, and when")
    for col in ("access", "who", "found", "when", "key numbers"):
        t.add_column(col, overflow="fold")
    for r in demo.detection:
        t.add_row(r.level, r.who, "[green]yes[/]" if r.detected else "[red]no[/]", r.when,
                  r.statistic + (f" ({r.queries} queries)" if r.queries else ""))
    out.print(t)
    if demo.suspended_at is not None:
        out.print(f"the supervisor suspended the model at entry {demo.suspended_at}, citing finding entry"
                  f" {demo.detection[0].finding_indexes[0]} (recorded before deployment)")
    if paths:
        out.print(f"report written: {', '.join(str(p) for p in paths.values())}", highlight=False)
    out.print(f"{len(alerts)} alerting findings, {len(failing)} at or above {fail_on} (exit {code}: the demonstration's"
              " model is deceptive by design)." if failing else f"{len(alerts)} alerting findings, none at or above"
              f" {fail_on} (exit {code}).")
    raise typer.Exit(code)
