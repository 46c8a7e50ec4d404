"""Audit reports: HTML (with plots), Markdown and JSON, from the result objects of ``glasslog.audit``.

The report is separate from the audits: any list of result objects (each with
``kind``, ``findings`` and ``to_dict()``) becomes an :class:`AuditReport`;
``write`` renders it. Plots are matplotlib figures (Agg backend) embedded in
the HTML as base64 PNG; the HTML is rendered with jinja2 (autoescaped) and
needs no network or script.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..findings import SEVERITY_ORDER, Finding, clean_json
from ..ledger import utc_now
from ..markdown import cell as _md
from ..markdown import markdown_to_html

__all__ = ["AuditReport", "Notes", "StageFindings", "build_report"]

_TITLES = {
    "group": "Error rates by group", "claims": "Claimed vs realised", "blackbox": "Black-box audit (query access)",
    "reliance": "Feature reliance (weights)", "shortcut": "Shortcut / spurious features", "leakage": "Leakage",
    "site": "Does the model know the site?", "training_data": "Training data fingerprint",
    "deceptive": "Deceptive-accuracy demonstration", "notes": "Notes", "stage": "Findings",
}


def section_heading(name: str, r: Any) -> str:
    """A section's heading: its kind's title, plus what it covers when the name says more than the kind
    (``group_sex`` -> ``Error rates by group: sex``; ``leakage`` -> ``Leakage``; ``notes`` -> ``Notes``)."""
    kind = getattr(r, "kind", "")
    title = _TITLES.get(kind, name)
    if kind == "group":
        return f"{title}: {r.attribute}"
    if name in (kind, title, ""):
        return title
    return f"{title}: {name.removeprefix(kind + '_')}"


@dataclass
class AuditReport:
    """An audit's results and findings, ready to write.

    Attributes:
        title: the report's title.
        context: what was audited (model, deployment, role, data source ...), JSON-ready.
        sections: ``(name, result)`` pairs; results are the objects the audit functions return.
        created: RFC 3339 UTC time.
    """

    title: str
    context: dict
    sections: list[tuple[str, Any]]
    created: str = field(default_factory=utc_now)

    @property
    def findings(self) -> list[Finding]:
        """Every finding, alerts first, by severity (worst first)."""
        out: list[Finding] = []
        for _, r in self.sections:
            out.extend(getattr(r, "findings", []) or [])
        return sorted(out, key=lambda f: (not f.alert, -SEVERITY_ORDER[f.severity]))

    def merged_findings(self) -> list[tuple[Finding, list[str]]]:
        """Every finding with the headings of the sections it comes from, alerts first, worst first; identical findings
        (same check, statistic, value, verdict, severity, summary and evidence) from several sections listed once."""
        seen: dict[str, tuple[Finding, list[str]]] = {}
        for name, r in self.sections:
            for f in getattr(r, "findings", []) or []:
                key = json.dumps(f.to_dict(), sort_keys=True)
                if key in seen:
                    if section_heading(name, r) not in seen[key][1]:
                        seen[key][1].append(section_heading(name, r))
                else:
                    seen[key] = (f, [section_heading(name, r)])
        return sorted(seen.values(), key=lambda p: (not p[0].alert, -SEVERITY_ORDER[p[0].severity]))

    @property
    def unmeasured(self) -> str | None:
        """Why nothing could be measured (e.g. ``nothing could be measured for role public: ...``), or None."""
        return next((r.unmeasured for _, r in self.sections if getattr(r, "unmeasured", None)), None)

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"title": self.title, "created": self.created, "context": self.context,
                           "measured": self.unmeasured is None, "unmeasured": self.unmeasured,
                           "findings": [{**f.to_dict(), "from": src} for f, src in self.merged_findings()],
                           "sections": [{"name": n, **r.to_dict()} for n, r in self.sections]})

    def markdown(self) -> str:
        """The report as Markdown: context, findings table, one summary table per section."""
        lines = [f"# {self.title}", "", f"Created {self.created}.", ""]
        for k, v in self.context.items():
            lines.append(f"- **{k}**: {v}")
        if self.unmeasured:
            lines += ["", f"**{_md(self.unmeasured[0].upper() + self.unmeasured[1:])}.** There are no findings: this report does"
                          " not clear the model."]
        lines += ["", "## Findings", "", "| severity | verdict | check | statistic | value | summary | from |",
                  "|---|---|---|---|---:|---|---|"]
        for f, src in self.merged_findings():
            value = "" if f.value is None else f"{f.value:.4g}"
            lines.append(f"| {f.severity} | {f.verdict} | `{f.check}` | {_md(f.statistic)} | {value} | {_md(f.summary)} |"
                         f" {_md('; '.join(src))} |")
        for name, r in self.sections:
            lines += ["", f"## {section_heading(name, r)}", ""]
            lines += _section_markdown(r)
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """The report as one self-contained HTML page with embedded PNG plots."""
        import jinja2

        env = jinja2.Environment(autoescape=True)
        sections = []
        for name, r in self.sections:
            sections.append({"name": name, "title": section_heading(name, r),
                             "plots": [_png(fig) for fig in _figures(r)], "body": markdown_to_html(_section_markdown(r))})
        return env.from_string(_HTML).render(report=self, findings=self.merged_findings(), sections=sections)

    def write(self, out_dir: str | Path, formats: tuple[str, ...] = ("html", "md", "json")) -> dict[str, Path]:
        """Write ``report.html``, ``report.md`` and ``report.json`` into ``out_dir`` (created); returns format -> path.

        Raises:
            ValueError: an unknown format.
            OSError: the directory cannot be created or written.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for fmt in formats:
            if fmt not in ("html", "md", "json"):
                raise ValueError(f"format must be html, md or json, got {fmt!r}")
            path = out / f"report.{fmt}"
            text = self.html() if fmt == "html" else self.markdown() if fmt == "md" else json.dumps(self.to_dict(), indent=2) + "\n"
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            paths[fmt] = path
        return paths


def build_report(results: dict[str, Any] | list[tuple[str, Any]], *, title: str = "glasslog audit",
                 context: dict | None = None) -> AuditReport:
    """An ``AuditReport`` from named results (a dict or ``(name, result)`` pairs)."""
    items = list(results.items()) if isinstance(results, dict) else list(results)
    return AuditReport(title, clean_json(context or {}), items)


SEVERITY_RULES = (
    "Severity rules: each group's rate over the reference group's, with a percentile-bootstrap interval"
    " Bonferroni-adjusted over (groups - 1) x 4 metrics; alert when the ratio is outside the four-fifths band 0.8-1.25"
    " (US EEOC, 29 CFR 1607.4(D)) and the adjusted interval excludes 1 (outside the band but not significant: insufficient"
    " data); high when the whole interval is outside the band and the ratio outside 0.6-1.67, medium when the whole"
    " interval is outside the band, low otherwise (glasslog's one group-comparison rule, glasslog.stats.groups).")
"""The group audit's severity rules, printed in every report with a group section (see ``glasslog.audit.group``)."""


SITE_COLUMNS = {"n": "rows", "base_rate": "base rate (share positive)", "accuracy": "model accuracy (95% Wilson interval)",
                "roc_auc": "ROC AUC", "mean_score_pos": "mean score, positive outcomes",
                "mean_score_neg": "mean score, negative outcomes"}
"""Headings of the site table's columns (``SiteAudit.by_site``) in reports."""


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _section_markdown(r: Any) -> list[str]:
    kind = getattr(r, "kind", "")
    rows: list[str] = []
    if kind == "group":
        meaning = r.extra.get("positive_meaning")
        favourable = r.extra.get("favourable")
        rows += [f"Attribute **{r.attribute}**, {r.n} rows, reference group {r.reference} (the largest, or as given; fixed"
                 f" before any rate is looked at); {r.confidence:.0%} intervals from {r.n_boot} bootstrap draws.", "",
                 f"Positive = {r.positive}" + (f" ({meaning})" if meaning else "") + ": the selection rate is the share"
                 " predicted positive" + (f"; a higher selection rate is {favourable} for the people decided on"
                                          if favourable else "") + ".", "",
                 (f"Left out of the ratios for having fewer than {r.min_group_size} rows: "
                  + ", ".join(f"{g} (n={int(r.by_group.loc[g, 'n'])})" for g in r.small_groups) + "."
                  if r.small_groups else f"No group has fewer than {r.min_group_size} rows."), "",
                 SEVERITY_RULES, "",
                 "| group | n | TP | FP | TN | FN | selection rate | FPR | FNR | PPV | accuracy |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for g, row in r.by_group.iterrows():
            cells = [f"{row[m]:.3f} ({row[m + '_lo']:.3f}-{row[m + '_hi']:.3f})" if np.isfinite(row[m]) and np.isfinite(row[m + '_lo'])
                     else _fmt(row[m]) for m in ("selection_rate", "false_positive_rate", "false_negative_rate",
                                                 "positive_predictive_value", "accuracy")]
            rows.append(f"| {_md(g)} | {int(row['n'])} | {int(row['tp'])} | {int(row['fp'])} | {int(row['tn'])} | {int(row['fn'])} | "
                        + " | ".join(cells) + " |")
    elif kind == "claims":
        rows += ["| metric | claimed | realised | interval | n | method |", "|---|---:|---:|---|---:|---|"]
        for c in r.checks:
            ci = f"{c.ci[0]:.3f}-{c.ci[1]:.3f}" if c.ci else ""
            rows.append(f"| {_md(c.metric)} | {c.claimed:.3f} | {_fmt(c.realised)} | {ci} | {c.n} | {_md(c.method)} |")
    elif kind == "blackbox":
        rows += [f"Queries used: {r.queries} rows ({', '.join(f'{k}: {v}' for k, v in r.queries_by_test.items())}).", "",
                 "| attribute | kind | flip rate | interval | mean score change | queries |", "|---|---|---:|---|---:|---:|"]
        for c in r.counterfactual:
            rows.append(f"| {_md(c.attribute)} | {c.kind} | {c.flip_rate:.3f} | {c.ci[0]:.3f}-{c.ci[1]:.3f} | {c.mean_abs_score_change:.3f} | {c.queries} |")
    elif kind == "reliance":
        rows += [f"SHAP: {r.shap_method} ({r.shap_output}), {r.n_explained} rows; permutation importance: {r.scoring}, {r.n} rows.",
                 "", "| feature | share of mean abs SHAP | mean abs SHAP | permutation importance (sd) |", "|---|---:|---:|---:|"]
        for f, row in r.table().head(12).iterrows():
            rows.append(f"| {_md(f)} | {row['shap_share']:.3f} | {row['shap_mean_abs']:.4f} | {row['permutation_mean']:.4f} ({row['permutation_std']:.4f}) |")
    elif kind == "shortcut":
        table = r.label_association.copy()
        table["prediction"] = r.prediction_association
        if len(r.reliance_share):
            table["reliance share"] = r.reliance_share
        order = table["reliance share"].sort_values(ascending=False).index if "reliance share" in table else table.index
        rows += ["Label association per segment (ROC AUC of the feature alone, folded to 0.5-1), association with the model's"
                 " prediction, reliance share.", "", "| feature | " + " | ".join(_md(c) for c in table.columns) + " |",
                 "|---|" + "---:|" * len(table.columns)]
        for f in list(order)[:12]:
            rows.append(f"| {_md(f)} | " + " | ".join(_md(_fmt(v)) for v in table.loc[f]) + " |")
    elif kind == "leakage":
        top = r.association.sort_values(ascending=False).head(8)
        rows += ["| feature | label association |", "|---|---:|"] + [f"| {_md(k)} | {v:.3f} |" for k, v in top.items()]
        if r.duplicates is not None:
            rows += ["", f"Test rows duplicated in training: {r.duplicates}."]
        if r.batch:
            rows += ["", f"Batch dependence: largest score change {r.batch['max_abs_diff']:.2g} over {r.batch['queries']} queries."]
    elif kind == "site":
        table = r.by_site.copy()
        if {"accuracy", "accuracy_lo", "accuracy_hi"} <= set(table.columns):
            table["accuracy"] = [f"{a:.3f} ({lo:.3f}-{hi:.3f})" for a, lo, hi in
                                 zip(table["accuracy"], table["accuracy_lo"], table["accuracy_hi"])]
            table = table.drop(columns=["accuracy_lo", "accuracy_hi"])
        rows += [f"Site predicted from the inputs: AUC {r.site_auc:.3f}, accuracy {r.site_accuracy:.3f} (chance {r.chance:.3f}).", "",
                 "| site | " + " | ".join(_md(SITE_COLUMNS.get(c, c)) for c in table.columns) + " |",
                 "|---|" + "---:|" * len(table.columns)]
        for s, row in table.iterrows():
            rows.append(f"| {_md(s)} | " + " | ".join(_md(_fmt(v)) for v in row) + " |")
    elif kind == "training_data":
        rows.append(f"{'Matches' if r.ok else 'Does NOT match'}: registered {r.registered}, computed {r.computed} ({r.rows} rows).")
    elif kind == "deceptive":
        rows += [f"Claimed accuracy {r.claimed['accuracy']:.3f}; realised {r.realised['accuracy']:.3f} (95% CI"
                 f" {r.realised['accuracy_ci'][0]:.3f}-{r.realised['accuracy_ci'][1]:.3f}, n={r.realised['n']}); the same"
                 f" pipeline trained without the artefact: {r.honest_accuracy:.3f}.", "",
                 "| access level | who | detected | when | checks | key numbers | queries |", "|---|---|---|---|---|---|---:|"]
        for d in r.detection:
            rows.append(f"| {d.level} | {_md(d.who)} | {'yes' if d.detected else 'no'} | {d.when} | {', '.join(d.checks)} |"
                        f" {_md(d.statistic)} | {'' if d.queries is None else d.queries} |")
    elif kind == "stage":
        rows.append(r.description)
    elif kind == "notes":
        rows += [f"- {n}" for n in r.notes]
    return rows


def _figures(r: Any) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = getattr(r, "kind", "")
    figs = []
    if kind == "group":
        metrics = ("selection_rate", "false_positive_rate", "false_negative_rate", "positive_predictive_value")
        groups = list(r.by_group.index)
        fig, ax = plt.subplots(figsize=(8, 3.6))
        width = 0.8 / len(groups)
        for k, g in enumerate(groups):
            vals = r.by_group.loc[g, list(metrics)].to_numpy(dtype=float)
            lo = vals - r.by_group.loc[g, [m + "_lo" for m in metrics]].to_numpy(dtype=float)
            hi = r.by_group.loc[g, [m + "_hi" for m in metrics]].to_numpy(dtype=float) - vals
            ax.bar(np.arange(len(metrics)) + k * width, vals, width, yerr=np.nan_to_num([lo, hi]), capsize=2,
                   label=f"{g} (n={int(r.by_group.loc[g, 'n'])})")
        ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2, ["selection rate", "FPR", "FNR", "PPV"])
        ax.set_ylim(0, 1)
        ax.set_title(f"by {r.attribute} (95% bootstrap intervals)")
        ax.legend(fontsize=7, ncol=2)
        figs.append(fig)
    elif kind == "reliance":
        t = r.table().head(10)[::-1]
        fig, ax = plt.subplots(figsize=(8, 3.6))
        ax.barh([f[:40] for f in t.index], t["shap_share"])
        ax.set_xlabel("share of mean |SHAP|")
        figs.append(fig)
    elif kind == "claims" and r.checks:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        for k, c in enumerate(r.checks):
            if c.realised is not None and c.ci:
                ax.errorbar([c.realised], [k], xerr=[[c.realised - c.ci[0]], [c.ci[1] - c.realised]], fmt="o", color="C0",
                            label="realised (interval)" if k == 0 else None)
            ax.plot([c.claimed], [k], "rx", markersize=9, label="claimed" if k == 0 else None)
        ax.set_yticks(range(len(r.checks)), [c.metric for c in r.checks])
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7)
        figs.append(fig)
    elif kind == "blackbox" and r.counterfactual:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        ax.barh([c.attribute[:40] for c in r.counterfactual], [c.flip_rate for c in r.counterfactual])
        ax.set_xlabel("share of decisions that flip when only this attribute changes")
        ax.set_xlim(0, 1)
        figs.append(fig)
    elif kind == "site":
        sites = [str(x) for x in r.by_site.index]
        fig, ax = plt.subplots(figsize=(6, 2.8))
        ax.bar(np.arange(len(sites)) - 0.2, r.by_site["base_rate"], 0.4, label="base rate")
        if "accuracy" in r.by_site:
            acc = r.by_site["accuracy"].to_numpy(dtype=float)
            err = [acc - r.by_site["accuracy_lo"].to_numpy(dtype=float), r.by_site["accuracy_hi"].to_numpy(dtype=float) - acc]
            ax.bar(np.arange(len(sites)) + 0.2, acc, 0.4, yerr=err, capsize=3, label="model accuracy (95% interval)")
        ax.set_xticks(range(len(sites)), sites)
        ax.set_ylim(0, 1)
        ax.set_title(f"site predicted from the inputs: AUC {r.site_auc:.3f}")
        ax.legend(fontsize=7)
        figs.append(fig)
    elif kind == "deceptive":
        dec = [t for t in r.timeline if t["stage"] == "decisions"]
        outc = [t for t in r.timeline if t["stage"] == "outcomes"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
        x = [t["decisions"] for t in dec]
        a1.plot(x, [t["public_positive_rate"] for t in dec], "o-", label="logged positive rate (public)")
        a1.fill_between(x, [t["public_ci"][0] for t in dec], [t["public_ci"][1] for t in dec], alpha=0.2)
        a1.axhline(r.claimed["positive_rate"], color="r", ls="--", label="claimed positive rate")
        a1.plot(x, [t["researcher_flip_rate"] for t in dec], "s-", label="researchers' flip rate (dormant artefact)")
        a1.set_xlabel("decisions logged")
        a1.set_ylim(0, 1)
        a1.legend(fontsize=7)
        xo = [t["outcomes"] for t in outc]
        a2.plot(xo, [t["realised_accuracy"] for t in outc], "o-", label="realised accuracy")
        a2.fill_between(xo, [t["realised_ci"][0] for t in outc], [t["realised_ci"][1] for t in outc], alpha=0.2)
        a2.axhline(r.claimed["accuracy"], color="r", ls="--", label="claimed accuracy")
        a2.set_xlabel("outcomes recorded")
        a2.set_ylim(0.4, 1)
        a2.legend(fontsize=7)
        figs.append(fig)
    return figs


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ report.title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
.critical,.high{background:#fdd}.medium{background:#ffe9c7}.low{background:#fff8d0}.ok{color:#555}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;font-size:.85em}img{max-width:100%}
</style></head><body>
<h1>{{ report.title }}</h1>
<p>Created {{ report.created }}.</p>
<ul>{% for k, v in report.context.items() %}<li><b>{{ k }}</b>: {{ v }}</li>{% endfor %}</ul>
{% if report.unmeasured %}<p class="high"><b>{{ report.unmeasured[0]|upper }}{{ report.unmeasured[1:] }}.</b> There are no findings: this report does not clear the model.</p>{% endif %}
<h2>Findings</h2>
<table><tr><th>severity</th><th>verdict</th><th>check</th><th>statistic</th><th>value</th><th>summary</th><th>access</th><th>from</th></tr>
{% for f, src in findings %}<tr class="{{ f.severity if f.alert else 'ok' }}"><td>{{ f.severity }}</td><td>{{ f.verdict }}</td>
<td><code>{{ f.check }}</code></td><td>{{ f.statistic }}</td><td>{{ '%.4g'|format(f.value) if f.value is not none else '' }}</td>
<td>{{ f.summary }}</td><td>{{ f.access }}</td><td>{{ src|join('; ') }}</td></tr>{% endfor %}
</table>
{% for s in sections %}<h2>{{ s.title }}</h2>
{% for p in s.plots %}<img alt="{{ s.title }} plot" src="data:image/png;base64,{{ p }}">{% endfor %}
{{ s.body }}
{% endfor %}
</body></html>
"""


@dataclass
class Notes:
    """Plain notes for a report (e.g. a check that was skipped and why); carries no findings."""

    notes: list[str]
    findings: list = field(default_factory=list)
    unmeasured: str | None = None
    """Set when the audit could measure nothing (no visible decisions, inputs, outcomes or weights): the reason."""

    kind = "notes"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "notes": list(self.notes), "unmeasured": self.unmeasured}


@dataclass
class StageFindings:
    """Findings made at one stage of a run (e.g. the researchers' check after 30 decisions), with a sentence saying
    which data they came from; no table of its own."""

    description: str
    findings: list = field(default_factory=list)

    kind = "stage"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description, "findings": [f.to_dict() for f in self.findings]}
