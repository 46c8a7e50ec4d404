"""The scenario lab's report: Markdown and HTML (matplotlib plots embedded), written from a ``LabResult``.

Every figure in the report is read from the runs; the sentences under
"How access changes it" and "Insights" are generated from those figures by
fixed rules (which regime is lowest, whether the difference between the
intervals is clear), never written in advance. The Markdown holds no time
stamp, so the same seed gives byte-identical Markdown.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment

from ..markdown import markdown_to_html
from .plots import lab_plots
from .regimes import REGIME_LABELS, REGIMES, roles_with_weights
from .runner import LabResult, ScenarioResult, offrecord_share

__all__ = ["render_markdown", "render_html", "write_report", "rerun_command"]

MEASURED_VS_MODELLED = """\
**Measured** (glasslog's own components run on each scenario's data): every decision is logged through the capture
SDK into a real log (RFC 9162 Merkle tree, signed checkpoints) in a temporary directory; models are registered with
the regime's disclosure policy on their cards; overseers hold real API keys and read only their access-policy view
of the log; a method that needs weights asks for them through the access policy and, if refused, does not run;
alerts are `finding` entries; suspensions are `model` status entries and the capture SDK's refusals. Detection
probability and time (in decisions), harm before detection, false alarms on a clean control run with the same random
streams, queries used by black-box audits, the kill switch (decisions logged after a suspension), and the cost to game
(queries without weights, steps with them, queries with a surrogate) are counted from those runs. Scenarios 3 and 4
run on the real German Credit data.

**Modelled** (assumptions stated in each scenario's parameters): the behaviour that creates each problem (gaming, dormant
triggers and the shock, the shortcut in the provider's data, the developer's population), who flags and how raters
rate, and everything off the record: the share of use on copies and substitutes that never log, and so the share of
use a suspension actually stops. The capability lag of the widely available models enters only through modelled
quantities (substitutes) and through the surrogate a gamer trains (its training rows shrink with the lag), whose
transfer to the deployed model is then measured.
"""


def _f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _count(x: Any, one: str, many: str) -> str:
    """``1 query``, ``24 queries``, ``– queries`` (no value)."""
    if x is None:
        return f"– {many}"
    return f"{x:.0f} {one if round(float(x)) == 1 else many}"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _clearly_lower(a_hi: float | None, b_lo: float | None) -> bool:
    return a_hi is not None and b_lo is not None and a_hi < b_lo


_GIVEN_TO = {"supervisors": "supervisory authorities", "researchers": "research institutions",
             "developers": "downstream developers", "open": "everyone (open weights)"}

DEFINITIONS = """**Definitions.** *Decisions to detection*: decisions logged from the problem's start (the onset: the first gaming
quarter in scenario 1, the first decision otherwise) to the first alert naming a model with the problem; an alert
raised before the start counts as 0 and the run is counted under *alerts before the start*. The median and
interquartile range are over **detected runs only** (their number is shown); undetected runs have no time.
*Harm before detection*: harm units logged before that alert; an **undetected run contributes all its harm over the
run**. *Harm over the run*: every harm unit logged, with the suspensions that followed alerts in force. *False alarm*:
an alert naming a model without the problem (on the clean control run: every alert). A check that alerts as often on
clean control runs as on problem runs is not evidence of detection, even when it is counted as the detecting alert.
"""


def _comparisons(sr: ScenarioResult) -> list[str]:
    """Sentences comparing regimes, generated from the measured figures."""
    r = sr.regimes
    lines = []
    c, o = r.get("closed"), r.get("open")
    if c and o:
        lines.append(f"Open vs closed weights: detected in {_pct(o.detect_p)} of runs (closed: {_pct(c.detect_p)}); "
                     f"median decisions to detection {_f(o.time_median, 0)} (closed: {_f(c.time_median, 0)}); "
                     f"harm before detection {_f(o.harm_mean, 1)} (closed: {_f(c.harm_mean, 1)}); "
                     f"harm over the run {_f(o.harm_total_mean, 1)} (closed: {_f(c.harm_total_mean, 1)}); "
                     f"false alarms in {_pct(o.false_alarm_p)} of control runs (closed: {_pct(c.false_alarm_p)}).")
    prev = None
    for g in REGIMES:
        s = r.get(g)
        if s is None:
            continue
        if prev is not None:
            change = []
            if s.detect_p != prev.detect_p:
                change.append(f"detection {_pct(prev.detect_p)} -> {_pct(s.detect_p)}")
            if s.harm_mean != prev.harm_mean:
                change.append(f"harm before detection {_f(prev.harm_mean, 1)} -> {_f(s.harm_mean, 1)}")
            if s.harm_total_mean != prev.harm_total_mean:
                change.append(f"harm over the run {_f(prev.harm_total_mean, 1)} -> {_f(s.harm_total_mean, 1)}")
            if s.false_alarm_p != prev.false_alarm_p:
                change.append(f"false alarms {_pct(prev.false_alarm_p)} -> {_pct(s.false_alarm_p)}")
            added = sorted(set(s.methods_used) - set(prev.methods_used))
            what = f" (new methods in use: {', '.join(added)})" if added else ""
            lines.append(f"Giving the weights also to {_GIVEN_TO[g]}: "
                         + ("; ".join(change) if change else "no measured change") + what + ".")
        prev = s
    return lines


def _apart(items: list[tuple[float | None, float | None, float | None]]) -> tuple[int, int] | None:
    """Indexes (low, high) of the lowest and highest means when their 95 % intervals do not overlap, else None."""
    xs = [(i, m, lo, hi) for i, (m, lo, hi) in enumerate(items) if m is not None]
    if len(xs) < 2:
        return None
    low = min(xs, key=lambda x: x[1])
    high = max(xs, key=lambda x: x[1])
    return (low[0], high[0]) if _clearly_lower(low[3], high[2]) else None


def _signature(regimes: dict[str, dict]) -> tuple:
    """What a conclusion about regimes rests on: do detection / harm before detection differ, and which regimes are lowest."""
    det = {g: v["detect_p"] for g, v in regimes.items()}
    harm = {g: v["harm_mean"] for g, v in regimes.items() if v["harm_mean"] is not None}
    lowest = frozenset(g for g, v in harm.items() if v == min(harm.values())) if harm else frozenset()
    return (len(set(det.values())) > 1, len(set(harm.values())) > 1, lowest)


def _overturned_by(sr: ScenarioResult, res: LabResult | None) -> list[str]:
    """Sensitivity runs of this scenario under which the comparison of regimes comes out differently."""
    if res is None:
        return []
    main = _signature({g: {"detect_p": s.detect_p, "harm_mean": s.harm_mean} for g, s in sr.regimes.items()})
    out = []
    for run in res.sensitivity:
        if run["scenario"] != sr.scenario.id or set(run["regimes"]) != set(sr.regimes):
            continue
        sig = _signature(run["regimes"])
        if sig != main:
            det = [v["detect_p"] for v in run["regimes"].values()]
            harm = [v["harm_mean"] for v in run["regimes"].values() if v["harm_mean"] is not None]
            lowest = ", ".join(sorted(sig[2]))
            runs = f"{run['reps']} run{'s' if run['reps'] != 1 else ''} per regime"
            out.append(f"{run['parameter']} = {run['value']:g} (default {run['default']:g}; {runs}):"
                       f" detection {_pct(min(det))}-{_pct(max(det))}, harm before detection"
                       f" {_f(min(harm), 1)}-{_f(max(harm), 1)} across regimes, lowest under {lowest}")
    return out


def _method_evidence(sr: ScenarioResult) -> list[str]:
    """For each check that raised false alarms: how often on clean control runs vs problem runs, pooled over regimes."""
    from ..stats import wilson_interval as wilson

    r = sr.regimes
    out = []
    methods = sorted({m for s in r.values() for m in s.alerts_by_method})
    detections = sum(s.detected_n for s in r.values())
    for m in methods:
        ran = [s for s in r.values() if m in s.methods_used]
        c = sum(s.alerts_by_method.get(m, {}).get("control", 0) for s in ran)
        nc = sum(s.controls for s in ran)
        p = sum(s.alerts_by_method.get(m, {}).get("problem", 0) for s in ran)
        n_p = sum(s.reps for s in ran)
        if c == 0 or nc == 0 or n_p == 0:
            continue
        first = sum(s.first_detector.get(m, 0) for s in r.values())
        firsts = f"; it raised the detecting alert in {first} of the {detections} detected runs" if first else ""
        if c / nc >= p / n_p:
            out.append(f"False alarms: {m} alerted in {c}/{nc} clean control runs and in {p}/{n_p} problem runs (over the"
                       f" regimes where it ran): it fires at least as often without the problem, so its alerts are not"
                       f" evidence of detection{firsts}.")
        elif _clearly_lower(wilson(c, nc)[1], wilson(p, n_p)[0]):
            out.append(f"False alarms: {m} alerted in {c}/{nc} clean control runs against {p}/{n_p} problem runs;"
                       f" clearly more often with the problem (95 % intervals apart){firsts}.")
        else:
            out.append(f"False alarms: {m} alerted in {c}/{nc} clean control runs against {p}/{n_p} problem runs; the 95 %"
                       f" intervals overlap, so at these repetitions its alerts are weak evidence of detection{firsts}.")
    return out


def _insights(sr: ScenarioResult, res: LabResult | None = None) -> list[str]:
    r = sr.regimes
    gs = list(r)
    out = []
    n = min(s.reps for s in r.values())
    det_apart = _apart([(s.detect_p, s.detect_lo, s.detect_hi) for s in r.values()])
    tot_apart = _apart([(s.harm_total_mean, s.harm_total_lo, s.harm_total_hi) for s in r.values()])
    harm_apart = _apart([(s.harm_mean, s.harm_lo, s.harm_hi) for s in r.values()])
    overturn = _overturned_by(sr, res)
    caveat = (" This depends on the assumptions: the comparison comes out differently at " + "; at ".join(overturn) + "."
              if overturn else "")
    tots = [s.harm_total_mean for s in r.values() if s.harm_total_mean is not None]
    dets = [s.detect_p for s in r.values()]
    if det_apart is None and tot_apart is None:
        same = len(set(tots)) <= 1 and len(set(dets)) <= 1
        out.append((f"Every regime measured the same detection ({_pct(dets[0])}) and harm over the run ({_f(tots[0], 1)}):"
                    " access to the weights made no measured difference." if same else
                    f"Neither detection ({_pct(min(dets))}-{_pct(max(dets))}) nor harm over the run"
                    f" ({_f(min(tots), 1)}-{_f(max(tots), 1)}) differs clearly between regimes: their 95 % intervals overlap"
                    f" at {n} runs per regime, so this run does not rank the regimes.") + caveat)
    else:
        if det_apart is not None:
            lo, hi = (r[gs[i]] for i in det_apart)
            out.append(f"Detection is clearly higher under {hi.regime} ({_pct(hi.detect_p)} [{_pct(hi.detect_lo)},"
                       f" {_pct(hi.detect_hi)}]) than under {lo.regime} ({_pct(lo.detect_p)} [{_pct(lo.detect_lo)},"
                       f" {_pct(lo.detect_hi)}]), {n} runs each.")
        if tot_apart is not None:
            lo, hi = (r[gs[i]] for i in tot_apart)
            out.append(f"Harm over the run is clearly lower under {lo.regime} ({_f(lo.harm_total_mean, 1)}"
                       f" [{_f(lo.harm_total_lo, 1)}, {_f(lo.harm_total_hi, 1)}]) than under {hi.regime}"
                       f" ({_f(hi.harm_total_mean, 1)} [{_f(hi.harm_total_lo, 1)}, {_f(hi.harm_total_hi, 1)}]).")
        else:
            out.append(f"Harm over the run ({_f(min(tots), 1)}-{_f(max(tots), 1)}) does not differ clearly between regimes"
                       " (95 % intervals overlap).")
        if caveat:
            out[-1] += caveat
    if harm_apart is not None:
        lo, hi = (r[gs[i]] for i in harm_apart)
        out.append(f"Harm before detection is clearly lower under {lo.regime} ({_f(lo.harm_mean, 1)} [{_f(lo.harm_lo, 1)},"
                   f" {_f(lo.harm_hi, 1)}]) than under {hi.regime} ({_f(hi.harm_mean, 1)} [{_f(hi.harm_lo, 1)}, {_f(hi.harm_hi, 1)}]).")
    out += _method_evidence(sr)
    firsts: dict[str, int] = {}
    for s in r.values():
        for m, k in s.first_detector.items():
            firsts[m] = firsts.get(m, 0) + k
    if firsts:
        top = max(firsts, key=lambda m: (firsts[m], m))
        out.append(f"The detector that raised the detecting alert most often: {top} ({firsts[top]} runs over all regimes).")
    refused = {g: s.methods_refused for g, s in r.items()}
    if refused.get("closed"):
        out.append(f"In the closed regime the access policy refused the weights for {len(refused['closed'])} actor/method pairs"
                   f" ({', '.join(refused['closed'])}).")
    if all(s.logged_after_suspension == 0 for s in r.values()):
        k = sum(s.refused_after_suspension for s in r.values())
        out.append(f"Every suspension stopped all logged use: 0 decisions were logged after a suspension; the capture SDK"
                   f" refused {k} attempts. What it does not stop is the off-record share (modelled, below).")
    if sr.gaming:
        g = sr.gaming
        out.append(f"Cost to game a refusal (medians): {_count(g['blackbox']['median_queries'], 'query', 'queries')} to the"
                   f" deployed model without the weights; with them {_count(g['whitebox']['median_steps'], 'input change', 'input changes')}"
                   f" found offline and 0 queries; with a surrogate at the frontier"
                   f" {_count(g['surrogate_frontier']['median_queries'], 'query', 'queries')}, lagging"
                   f" {_count(g['surrogate_lagging']['median_queries'], 'query', 'queries')}.")
    return out


def _regime_table(sr: ScenarioResult) -> str:
    rows = []
    for g, s in sr.regimes.items():
        rows.append([g, str(s.reps), f"{_pct(s.detect_p)} [{_pct(s.detect_lo)}, {_pct(s.detect_hi)}]", str(s.detected_n),
                     f"{_f(s.time_median, 0)} [{_f(s.time_q1, 0)}, {_f(s.time_q3, 0)}]", str(s.runs_alert_before_onset),
                     f"{_f(s.harm_mean, 1)} [{_f(s.harm_lo, 1)}, {_f(s.harm_hi, 1)}]",
                     f"{_f(s.harm_total_mean, 1)} [{_f(s.harm_total_lo, 1)}, {_f(s.harm_total_hi, 1)}]",
                     f"{_pct(s.false_alarm_p)} [{_pct(s.false_alarm_lo)}, {_pct(s.false_alarm_hi)}]",
                     ", ".join(f"{m} ({k})" for m, k in s.first_detector.items()) or "–",
                     f"{s.logged_after_suspension} / {s.refused_after_suspension}"])
    return _table(["regime", "problem runs (n)", "detected [95 % CI]", "detected runs",
                   "decisions to detection, median [IQR], detected runs only", "runs with an alert before the start",
                   "harm before detection, mean [95 % CI]", "harm over the run, mean [95 % CI]",
                   "control runs with a false alarm [95 % CI]", "first detector (runs)",
                   "logged / refused after suspension"], rows)


def _false_alarm_table(sr: ScenarioResult) -> str:
    """Per check and regime: control runs it alerted in (false alarms) and problem runs it alerted in on a problem model."""
    methods = sorted({m for s in sr.regimes.values() for m in s.alerts_by_method})
    if not methods:
        return "No check raised an alert in any run."
    rows = []
    for m in methods:
        cells = []
        for s in sr.regimes.values():
            if m not in s.methods_used:
                cells.append("did not run")
                continue
            a = s.alerts_by_method.get(m, {"problem": 0, "control": 0})
            cells.append(f"{a['control']}/{s.controls} clean · {a['problem']}/{s.reps} problem")
        rows.append([m] + cells)
    return _table(["check"] + list(sr.regimes), rows)


def _actor_table(sr: ScenarioResult) -> str:
    rows = []
    for actor, method in sr.scenario.methods():
        cells = []
        for g in REGIMES:
            s = sr.regimes.get(g)
            if s is None:
                cells.append("–")
            elif "weights" not in method.needs:
                cells.append("yes")
            elif f"{actor.role}/{method.name}" in s.methods_refused:
                cells.append("refused (no weights)")
            elif f"{actor.role}/{method.name}" in s.methods_granted:
                cells.append("weights granted")
            else:
                cells.append("never asked")
        rows.append([f"{actor.role} ({actor.name})", method.name, ", ".join(method.needs)] + cells)
    return _table(["actor", "method", "needs"] + list(REGIMES), rows)


def _offrecord_table(sr: ScenarioResult, lag: float) -> str:
    rows = []
    for g, s in sr.regimes.items():
        rows.append([g, _pct(s.offrecord["frontier"]), _pct(s.offrecord["lagging"]), _pct(s.stops_use["frontier"]),
                     _pct(s.stops_use["lagging"])])
    return _table(["regime", "off-record share, frontier", f"off-record share, lagging {lag:g} months",
                   "use a suspension stops, frontier", f"use a suspension stops, lagging {lag:g} months"], rows)


def _gaming_table(g: dict) -> str:
    names = {"blackbox": "black-box (queries only)", "whitebox": "white-box (the weights)",
             "surrogate_frontier": "surrogate at the frontier", "surrogate_lagging": "surrogate lagging"}
    rows = [[names[k], str(v["applicants"]), f"{_pct(v['success'])} [{_pct(v['success_lo'])}, {_pct(v['success_hi'])}]",
             _f(v["median_queries"], 0), _f(v["mean_queries"], 1), _f(v["median_steps"], 0)] for k, v in g.items()]
    return _table(["gamer's access", "refused applicants", "flipped [95 % CI]", "queries to the deployed model, median",
                   "queries, mean", "changes made, median"], rows)


def _params_table(sr: ScenarioResult) -> str:
    rows = [[p.name, _f(p.value) if isinstance(p.value, float) else str(p.value), p.unit, p.source,
             ", ".join(f"{v:g}" for v in p.sensitivity) or "–", p.description] for p in sr.scenario.parameters]
    return _table(["parameter", "value", "unit", "source", "sensitivity runs", "meaning"], rows)


def _evidence(sr: ScenarioResult) -> str:
    out = []
    for c in sr.scenario.evidence:
        figs = "; ".join(f"{f.what}: {f.value:g} {f.unit}".strip() if isinstance(f.value, float) else f"{f.what}: {f.value} {f.unit}"
                         for f in c.figures)
        line = f"- [{c.key}] {c.authors} ({c.year}). *{c.title}*. {c.where}."
        if figs:
            line += f" Figures: {figs}."
        if c.note:
            line += f" {c.note}"
        out.append(line)
    return "\n".join(out)


def _matrix(res: LabResult) -> str:
    rows = []
    for sr in res.scenarios:
        cells = [f"{_pct(s.detect_p)} [{_pct(s.detect_lo)}, {_pct(s.detect_hi)}] / {_f(s.time_median, 0)} ({s.detected_n} detected)"
                 f" / {_f(s.harm_mean, 1)} [{_f(s.harm_lo, 1)}, {_f(s.harm_hi, 1)}]"
                 f" / {_f(s.harm_total_mean, 1)} [{_f(s.harm_total_lo, 1)}, {_f(s.harm_total_hi, 1)}]" for s in sr.regimes.values()]
        rows.append([sr.scenario.id, str(min(s.reps for s in sr.regimes.values()))] + cells)
    return _table(["scenario", "runs per regime (n)"] + [g for g in REGIMES], rows)


def _modelled_sensitivity(res: LabResult) -> str:
    """Every declared sensitivity value of a parameter that moves only modelled quantities (computed, no new runs)."""
    from .runner import MODELLED_ONLY

    rows = []
    for sr in res.scenarios:
        p = {q.name: q.value for q in sr.scenario.parameters}
        lag = float(p["lag_months"]) if math.isnan(res.lag_months) else res.lag_months
        for q in sr.scenario.parameters:
            if q.name not in MODELLED_ONLY or q.name == "lag_months" or not q.sensitivity:
                continue
            for v in (q.value, *q.sensitivity):
                shares = [_pct(offrecord_share(p | {q.name: v}, g, lag)) for g in REGIMES]
                label = f"{q.name} = {float(v):g}" + (" (default)" if v == q.value else "")
                rows.append([sr.scenario.id, label] + shares)
    if not rows:
        return ""
    return ("Off-record share (modelled, at each scenario's lag) under every declared value of the parameters that move"
            " only modelled quantities (computed from the formula, no runs needed):\n\n"
            + _table(["scenario", "assumption"] + list(REGIMES), rows))


def _lag_table(res: LabResult) -> str:
    """Off-record share as the lag moves; scenarios with the same formula and parameters share one row."""
    values = sorted({0.0, 4.0, 12.0, 24.0} | {float(v) for sr in res.scenarios for q in sr.scenario.parameters
                                             if q.name == "lag_months" for v in (q.value, *q.sensitivity)})
    groups: dict[tuple, list[str]] = {}
    for sr in res.scenarios:
        p = {q.name: q.value for q in sr.scenario.parameters}
        key = tuple(tuple(_pct(offrecord_share(p, g, v)) for v in values) for g in REGIMES)
        groups.setdefault(key, []).append(sr.scenario.id)
    rows = []
    for key, ids in groups.items():
        for g, cells in zip(REGIMES, key):
            rows.append([", ".join(ids), g] + list(cells))
    return ("Off-record share (modelled) as the lag of the widely available models moves (months; 4 is the default from"
            " Epoch AI 2026, 12 the 2024 figure, 24 the seed's sensitivity case). Scenarios whose off-record parameters are"
            " the same share one set of rows:\n\n" + _table(["scenarios", "regime"] + [f"lag {v:g}" for v in values], rows))


def _sensitivity(res: LabResult) -> str:
    parts = []
    if res.sensitivity:
        rows = []
        for s in res.sensitivity:
            cells = [f"{_pct(v['detect_p'])} [{_pct(v.get('detect_lo'))}, {_pct(v.get('detect_hi'))}] /"
                     f" {_f(v['harm_mean'], 1)} [{_f(v.get('harm_lo'), 1)}, {_f(v.get('harm_hi'), 1)}]" for v in s["regimes"].values()]
            rows.append([s["scenario"], f"{s['parameter']} = {s['value']:g} (default {s['default']:g})", str(s["reps"])] + cells)
        parts.append("Detection probability [95 % Wilson] / harm before detection [95 % bootstrap] under other values of the"
                     " assumptions that change what is measured (new runs, at the repetitions shown; compare with the main"
                     " tables):\n\n" + _table(["scenario", "assumption", "runs per regime (n)"] + list(REGIMES), rows))
    elif not res.sensitivity_on:
        parts.append("The sensitivity runs were skipped (`--no-sensitivity`): no conclusion above has been checked against"
                     " other values of its assumptions. The modelled tables below need no runs.")
    modelled = _modelled_sensitivity(res)
    if modelled:
        parts.append(modelled)
    if res.scenarios:
        parts.append(_lag_table(res))
    return "\n\n".join(parts)


def rerun_command(res: LabResult) -> str:
    """The shell command that reproduces ``res`` (every option the run used, quoted for a POSIX shell)."""
    import shlex

    return shlex.join(["glasslog", "scenarios", "run", *res.rerun_args()])


def render_markdown(res: LabResult) -> str:
    """The report as Markdown (no time stamp: byte-identical for a seed)."""
    lag_text = "each scenario's lag_months" if math.isnan(res.lag_months) else f"{res.lag_months:g} months"
    out = ["# glasslog scenario lab\n",
           f"Repetitions per scenario and regime: {res.reps} (each a problem run and a clean control run); seed {res.seed};"
           f" lag of the widely available models: {lag_text}.\n",
           f"Run it again with `{rerun_command(res)}` (add `--out DIR` for where to write it).\n",
           "**Most numbers behind these scenarios are assumptions.** Each scenario's parameters table names the source of"
           " every parameter; those marked *assumption* (the large majority) are the author's choices, not measurements,"
           " and the sensitivity section shows how the conclusions move with some of them.\n",
           "## What is measured and what is modelled\n", MEASURED_VS_MODELLED, DEFINITIONS,
           "## Access regimes\n",
           _table(["regime", "meaning", "roles that may download the weights (access policy)"],
                  [[g, REGIME_LABELS[g], ", ".join(sorted(roles_with_weights(g))) or "none"] for g in REGIMES]) + "\n",
           "Capability: *frontier* (the widely available models are as capable as the deployed one) or *lagging* by the"
           " lag above (Epoch AI: about 4 months since January 2026, about 3 months in 2023-2025, about a year in 2024).\n"]
    for n, sr in enumerate(res.scenarios, 1):
        sc = sr.scenario
        lag = float(sc.parameter("lag_months")) if math.isnan(res.lag_months) else res.lag_months
        out += [f"## Scenario {n}: {sc.title}\n", f"Scenario file `{sc.id}` version {sc.version}; data: {sc.data}.\n",
                "### The scenario\n", sc.description.strip() + "\n", "**Mechanism.** " + " ".join(sc.mechanism.split()) + "\n",
                "### Evidence\n", _evidence(sr) + "\n",
                "### Who can do what under each regime\n", _actor_table(sr) + "\n",
                "A cell for a method that needs the weights is what the access policy answered when that actor's own"
                " method asked for them (no actor uses another's download); *never asked*: the method had nothing left"
                " to examine when its turn came (e.g. every model already suspended).\n",
                "### Results by regime (measured)\n", _regime_table(sr) + "\n",
                "Definitions of these columns: see *Definitions* at the top. The capability lag of the widely available"
                " models does not enter any figure in this table: it changes only the modelled off-record share and the"
                " surrogate's training rows in the cost to game.\n",
                "### Which check raised the alerts (false-alarm breakdown)\n",
                "Per check and regime: clean control runs in which it raised an alert (each a false alarm) and problem runs"
                " in which it raised an alert naming a model with the problem.\n\n" + _false_alarm_table(sr) + "\n",
                "### How access changes it: open vs closed, and by who gets the weights\n",
                "\n".join(f"- {s}" for s in _comparisons(sr)) + "\n",
                "### Off the record and revocation (modelled)\n", _offrecord_table(sr, lag) + "\n"]
        if sr.gaming:
            out += ["### Cost to game the model (measured on German Credit)\n", _gaming_table(sr.gaming) + "\n",
                    "An outsider games with the weights only in the open regime; in every other regime the outsider's"
                    " cost is the black-box one, or the surrogate's when a widely available model of that capability exists.\n"]
        out += ["### Insights\n", "\n".join(f"- {s}" for s in _insights(sr, res)) + "\n",
                "### Measured and modelled in this scenario\n",
                "Measured:\n" + "\n".join(f"- {m}" for m in sc.measured) + "\n\nModelled:\n" + "\n".join(f"- {m}" for m in sc.modelled) + "\n",
                "### Parameters\n", _params_table(sr) + "\n"]
    out += ["## Cross-scenario matrix\n",
            "Each cell: detected [95 % Wilson] / median decisions to detection (detected runs only, their number) /"
            " harm before detection, mean [95 % bootstrap] / harm over the run, mean [95 % bootstrap].\n",
            _matrix(res) + "\n", "## Sensitivity\n", _sensitivity(res) + "\n",
            "Intervals: Wilson 95 % for proportions; bootstrap percentile 95 % (2000 resamples, fixed seed; never below 0"
            " for the non-negative harm counts) for means; interquartile range for times; n is shown beside each.\n"]
    return "\n".join(out)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>glasslog scenario lab</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left}
th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 .2em}</style></head><body>
{% for block in blocks %}{% if block.kind == 'html' %}{{ block.text }}{% else %}<img alt="{{ block.alt }}" src="data:image/png;base64,{{ block.text }}">{% endif %}
{% endfor %}</body></html>
"""


def render_html(res: LabResult, markdown: str | None = None) -> str:
    """The report as one self-contained HTML page: the Markdown's content with the plots embedded after each results table."""
    md = markdown if markdown is not None else render_markdown(res)
    plots = lab_plots(res)
    blocks: list[dict] = []
    sections = md.split("\n## ")
    blocks.append({"kind": "html", "text": markdown_to_html(sections[0])})
    anchors = ("### Which check raised the alerts", "### Insights")  # results plot after the results table, gaming after its table
    for sec in sections[1:]:
        sr = next((x for x in res.scenarios if sec.startswith("Scenario") and f"`{x.scenario.id}`" in sec.split("\n", 2)[2][:200]),
                  None)
        if sr is None:
            blocks.append({"kind": "html", "text": markdown_to_html("## " + sec)})
            continue
        sid = sr.scenario.id
        alts = [f"{sid}: bar charts by regime of the share of problem runs detected (95 % Wilson intervals), mean harm"
                f" before detection (95 % bootstrap intervals) and the share of clean control runs with a false alarm",
                f"{sid}: mean queries to the deployed model needed to flip a refused applicant, by the gamer's access"
                f" (black-box, white-box, surrogate at the frontier, surrogate lagging)"]
        rest, head = sec, "## "
        for k, png in enumerate(plots.get(sid, [])):
            cut = rest.find("\n" + anchors[min(k, 1)])
            if cut < 0:
                cut = len(rest)
            blocks.append({"kind": "html", "text": markdown_to_html(head + rest[:cut])})
            blocks.append({"kind": "img", "text": png, "alt": alts[min(k, 1)]})
            rest, head = rest[cut + 1:], ""
        blocks.append({"kind": "html", "text": markdown_to_html(head + rest)})
    return Environment(autoescape=False).from_string(_HTML).render(blocks=blocks)


def write_report(res: LabResult, out_dir: str | Path) -> tuple[Path, Path, Path]:
    """Write ``report.md``, ``report.html`` and ``results.json`` into ``out_dir`` (created if needed).

    Returns:
        The three paths.

    The three files are written into a temporary directory inside ``out_dir``
    and then renamed into place, so a failed write leaves no partial report.

    Raises:
        OSError: the directory cannot be created or written.
    """
    import json
    import os
    import shutil
    import tempfile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = render_markdown(res)
    texts = {"report.md": md, "report.html": render_html(res, md),
             "results.json": json.dumps(to_json(res), indent=2, sort_keys=True) + "\n"}
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out))  # all three written first, then renamed into place
    try:
        for name, text in texts.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for name in texts:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "report.md", out / "report.html", out / "results.json"


def to_json(res: LabResult) -> dict:
    """The lab's figures as JSON (what ``--json`` prints and ``results.json`` holds); no time stamps or durations."""
    from dataclasses import asdict

    return {"reps": res.reps, "seed": res.seed, "lag_months": None if math.isnan(res.lag_months) else res.lag_months,
            "scenarios": [{"id": sr.scenario.id, "version": sr.scenario.version,
                           "regimes": {g: asdict(s) for g, s in sr.regimes.items()}, "gaming": sr.gaming} for sr in res.scenarios],
            "sensitivity": res.sensitivity}
