"""The scenario lab's report: Markdown and HTML (matplotlib plots embedded), written from a ``LabResult``.

Every figure in the report is read from the runs; the sentences under
"How access changes it" and "Insights" are generated from those figures by
fixed rules (which regime is lowest, whether the difference between the
intervals is clear), never written in advance. The Markdown holds no time
stamp, so the same seed gives byte-identical Markdown.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment

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


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _clearly_lower(a_hi: float | None, b_lo: float | None) -> bool:
    return a_hi is not None and b_lo is not None and a_hi < b_lo


def _comparisons(sr: ScenarioResult) -> list[str]:
    """Sentences comparing regimes, generated from the measured figures."""
    r = sr.regimes
    lines = []
    c, o = r.get("closed"), r.get("open")
    if c and o:
        lines.append(f"Open vs closed weights: detected in {_pct(o.detect_p)} of runs (closed: {_pct(c.detect_p)}); "
                     f"median decisions to detection {_f(o.time_median, 0)} (closed: {_f(c.time_median, 0)}); "
                     f"harm before detection {_f(o.harm_mean, 1)} (closed: {_f(c.harm_mean, 1)}); "
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
            if s.false_alarm_p != prev.false_alarm_p:
                change.append(f"false alarms {_pct(prev.false_alarm_p)} -> {_pct(s.false_alarm_p)}")
            added = sorted(set(s.methods_used) - set(prev.methods_used))
            what = f" (new methods in use: {', '.join(added)})" if added else ""
            lines.append(f"Giving the weights also to {REGIME_LABELS[g].split('(')[0].replace('weights to ', '').strip()}: "
                         + ("; ".join(change) if change else "no measured change") + what + ".")
        prev = s
    return lines


def _insights(sr: ScenarioResult) -> list[str]:
    r = sr.regimes
    out = []
    harms = {g: s.harm_mean for g, s in r.items() if s.harm_mean is not None}
    if harms:
        best = min(harms.values())
        lows = [g for g, v in harms.items() if v == best]
        out.append(f"Least harm before detection: {', '.join(lows)} ({_f(best, 1)} on average).")
        worst = max(harms, key=lambda g: harms[g])
        if _clearly_lower(r[lows[0]].harm_hi, r[worst].harm_lo):
            out.append(f"The difference to {worst} ({_f(harms[worst], 1)}) is larger than both 95 % intervals.")
        elif len(set(harms.values())) > 1:
            out.append(f"The 95 % intervals of {lows[0]} and {worst} overlap: at these repetitions the regimes are not clearly apart.")
        else:
            out.append("Every regime measured the same harm: access to the weights did not change what was found in time.")
    firsts = {}
    for g, s in r.items():
        for m, k in s.first_detector.items():
            firsts[m] = firsts.get(m, 0) + k
    if firsts:
        top = max(firsts, key=lambda m: (firsts[m], m))
        out.append(f"The detector that found the problem first most often: {top} ({firsts[top]} runs over all regimes).")
    refused = {g: s.methods_refused for g, s in r.items()}
    if refused.get("closed"):
        out.append(f"In the closed regime the access policy refused the weights for {len(refused['closed'])} actor/method pairs"
                   f" ({', '.join(refused['closed'])}).")
    if all(s.logged_after_suspension == 0 for s in r.values()):
        n = sum(s.refused_after_suspension for s in r.values())
        out.append(f"Every suspension stopped all logged use: 0 decisions were logged after a suspension; the capture SDK"
                   f" refused {n} attempts. What it does not stop is the off-record share (modelled, below).")
    if sr.gaming:
        g = sr.gaming
        out.append(f"Cost to game a refusal: median {_f(g['blackbox']['median_queries'], 0)} queries without the weights,"
                   f" {_f(g['whitebox']['median_steps'], 0)} steps and 0 queries with them; with a surrogate at the frontier"
                   f" {_f(g['surrogate_frontier']['median_queries'], 0)} queries, lagging {_f(g['surrogate_lagging']['median_queries'], 0)}.")
    return out


def _regime_table(sr: ScenarioResult) -> str:
    rows = []
    for g, s in sr.regimes.items():
        rows.append([g, f"{_pct(s.detect_p)} [{_pct(s.detect_lo)}, {_pct(s.detect_hi)}]",
                     f"{_f(s.time_median, 0)} [{_f(s.time_q1, 0)}, {_f(s.time_q3, 0)}]",
                     f"{_f(s.harm_mean, 1)} [{_f(s.harm_lo, 1)}, {_f(s.harm_hi, 1)}]", _f(s.harm_total_mean, 1),
                     f"{_pct(s.false_alarm_p)} [{_pct(s.false_alarm_lo)}, {_pct(s.false_alarm_hi)}]",
                     ", ".join(f"{m} ({k})" for m, k in s.first_detector.items()) or "–",
                     f"{s.logged_after_suspension} / {s.refused_after_suspension}"])
    return _table(["regime", "detected [95 % CI]", "decisions to detection, median [IQR]", "harm before detection, mean [95 % CI]",
                   "harm over the run", "control runs with a false alarm [95 % CI]", "first detector (runs)",
                   "logged / refused after suspension"], rows)


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
        cells = [f"{_pct(s.detect_p)} / {_f(s.time_median, 0)} / {_f(s.harm_mean, 1)}" for s in sr.regimes.values()]
        rows.append([sr.scenario.id] + cells)
    return _table(["scenario"] + [g for g in REGIMES], rows)


def _sensitivity(res: LabResult) -> str:
    parts = []
    if res.sensitivity:
        rows = []
        for s in res.sensitivity:
            cells = [f"{_pct(v['detect_p'])} / {_f(v['harm_mean'], 1)}" for v in s["regimes"].values()]
            rows.append([s["scenario"], f"{s['parameter']} = {s['value']:g} (default {s['default']:g})", str(s["reps"])] + cells)
        parts.append("Detection probability / harm before detection under other values of the assumptions that matter most"
                     " (compare with the main tables):\n\n" + _table(["scenario", "assumption", "reps"] + list(REGIMES), rows))
    lag_rows = []
    for sr in res.scenarios:
        p = {q.name: q.value for q in sr.scenario.parameters}
        values = [0.0] + [float(v) for q in sr.scenario.parameters if q.name == "lag_months" for v in q.sensitivity if v != 0]
        values = sorted(set(values) | {float(p["lag_months"])})
        for g in ("closed", "open"):
            lag_rows.append([sr.scenario.id, g] + [_pct(offrecord_share(p, g, v)) for v in values])
    if lag_rows:
        values_hdr = sorted({0.0, 4.0, 12.0, 24.0})
        parts.append("Off-record share (modelled) as the lag of the widely available models moves (months; 4 is the"
                     " default from Epoch AI 2026, 12 the 2024 figure, 24 the seed's sensitivity case):\n\n"
                     + _table(["scenario", "regime"] + [f"lag {v:g}" for v in values_hdr], lag_rows))
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
           "## What is measured and what is modelled\n", MEASURED_VS_MODELLED,
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
                "### How access changes it: open vs closed, and by who gets the weights\n",
                "\n".join(f"- {s}" for s in _comparisons(sr)) + "\n",
                "### Off the record and revocation (modelled)\n", _offrecord_table(sr, lag) + "\n"]
        if sr.gaming:
            out += ["### Cost to game the model (measured on German Credit)\n", _gaming_table(sr.gaming) + "\n",
                    "An outsider games with the weights only in the open regime; in every other regime the outsider's"
                    " cost is the black-box one, or the surrogate's when a widely available model of that capability exists.\n"]
        out += ["### Insights\n", "\n".join(f"- {s}" for s in _insights(sr)) + "\n",
                "### Measured and modelled in this scenario\n",
                "Measured:\n" + "\n".join(f"- {m}" for m in sc.measured) + "\n\nModelled:\n" + "\n".join(f"- {m}" for m in sc.modelled) + "\n",
                "### Parameters\n", _params_table(sr) + "\n"]
    out += ["## Cross-scenario matrix\n",
            "Each cell: detected / median decisions to detection / mean harm before detection.\n",
            _matrix(res) + "\n", "## Sensitivity\n", _sensitivity(res) + "\n",
            "Intervals: Wilson 95 % for proportions; normal-approximation 95 % for means; interquartile range for times.\n"]
    return "\n".join(out)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(res: LabResult) -> dict[str, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, list[str]] = {}
    for sr in res.scenarios:
        gs = list(sr.regimes)
        s = [sr.regimes[g] for g in gs]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        axes[0].bar(gs, [x.detect_p for x in s], yerr=[[x.detect_p - x.detect_lo for x in s], [x.detect_hi - x.detect_p for x in s]],
                    color="#4a7bb7", capsize=3)
        axes[0].set_title("detected (95 % CI)")
        axes[0].set_ylim(0, 1.05)
        hm = [x.harm_mean or 0 for x in s]
        axes[1].bar(gs, hm, yerr=[[max(0, (x.harm_mean or 0) - (x.harm_lo or 0)) for x in s],
                                  [max(0, (x.harm_hi or 0) - (x.harm_mean or 0)) for x in s]], color="#c0504d", capsize=3)
        axes[1].set_title("harm before detection (mean, 95 % CI)")
        axes[2].bar(gs, [x.false_alarm_p for x in s], color="#9bbb59")
        axes[2].set_title("control runs with a false alarm")
        axes[2].set_ylim(0, 1.05)
        for ax in axes:
            ax.tick_params(axis="x", rotation=30)
        plots[sr.scenario.id] = [_png(fig)]
        if sr.gaming:
            fig, ax = plt.subplots(figsize=(6, 3))
            keys = list(sr.gaming)
            ax.bar(keys, [sr.gaming[k]["mean_queries"] or 0 for k in keys], color="#8064a2")
            ax.set_title("queries to the deployed model to flip a refusal (mean)")
            ax.tick_params(axis="x", rotation=20)
            plots[sr.scenario.id].append(_png(fig))
    return plots


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>glasslog scenario lab</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left}
th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 .2em}</style></head><body>
{% for block in blocks %}{% if block.kind == 'html' %}{{ block.text }}{% else %}<img alt="{{ block.alt }}" src="data:image/png;base64,{{ block.text }}">{% endif %}
{% endfor %}</body></html>
"""


def _md_to_html(md: str) -> str:
    """A small Markdown-to-HTML conversion for the constructs this report uses (headings, tables, lists, paragraphs)."""
    import html as h
    import re

    def inline(s: str) -> str:
        s = h.escape(s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", s)
        return s

    out, lines, i = [], md.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("| "):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            cells = [[c.strip() for c in r.strip("|").split(" | ")] for r in rows if not r.startswith("|---")]
            t = "<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0]) + "</tr>"
            t += "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:]) + "</table>"
            out.append(t)
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            para = [line]
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(("#", "|", "- ")):
                i += 1
                para.append(lines[i])
            out.append(f"<p>{inline(' '.join(para))}</p>")
        i += 1
    return "\n".join(out)


def render_html(res: LabResult, markdown: str | None = None) -> str:
    """The report as one self-contained HTML page: the Markdown's content with the plots embedded after each results table."""
    md = markdown if markdown is not None else render_markdown(res)
    plots = _plots(res)
    blocks: list[dict] = []
    sections = md.split("\n## ")
    blocks.append({"kind": "html", "text": _md_to_html(sections[0])})
    for sec in sections[1:]:
        blocks.append({"kind": "html", "text": _md_to_html("## " + sec)})
        for sr in res.scenarios:
            if sec.startswith("Scenario") and f"`{sr.scenario.id}`" in sec.split("\n", 2)[2][:200]:
                for k, png in enumerate(plots.get(sr.scenario.id, [])):
                    blocks.append({"kind": "img", "text": png, "alt": f"{sr.scenario.id} plot {k + 1}"})
    return Environment(autoescape=False).from_string(_HTML).render(blocks=blocks)


def write_report(res: LabResult, out_dir: str | Path) -> tuple[Path, Path, Path]:
    """Write ``report.md``, ``report.html`` and ``results.json`` into ``out_dir`` (created if needed).

    Returns:
        The three paths.

    Raises:
        OSError: the directory cannot be created or written.
    """
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = render_markdown(res)
    md_path, html_path, json_path = out / "report.md", out / "report.html", out / "results.json"
    md_path.write_text(md, encoding="utf-8")
    html_path.write_text(render_html(res, md), encoding="utf-8")
    json_path.write_text(json.dumps(to_json(res), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return md_path, html_path, json_path


def to_json(res: LabResult) -> dict:
    """The lab's figures as JSON (what ``--json`` prints and ``results.json`` holds); no time stamps or durations."""
    from dataclasses import asdict

    return {"reps": res.reps, "seed": res.seed, "lag_months": None if math.isnan(res.lag_months) else res.lag_months,
            "scenarios": [{"id": sr.scenario.id, "version": sr.scenario.version,
                           "regimes": {g: asdict(s) for g, s in sr.regimes.items()}, "gaming": sr.gaming} for sr in res.scenarios],
            "sensitivity": res.sensitivity}
