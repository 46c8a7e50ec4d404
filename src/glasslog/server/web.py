"""What the web register's pages show, apart from the routes (``routes/pages.py``): aggregates over the log
(``RegisterStats``), the reports published beside it (``list_reports``), and presentation helpers for the
templates (short fingerprints, times, labels, output summaries, disclosure policies in words).

Public pages render only what the public view of the JSON API shows
(``glasslog.access.decision_view`` with the public principal): commitments,
never input values or subject ids; outputs and outcomes only for
public-service deployments. The aggregates follow the same rule: counts for
every deployment, labels and realised accuracy for public-service ones.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..stats import wilson_interval

__all__ = ["RegisterStats", "time_series", "list_reports", "wilson_interval", "PAGE_SIZE", "SECURITY_HEADERS", "REPORT_KINDS",
           "REPORT_HEADERS", "REPORT_NAME", "DISCLOSURE_TEXT", "short_fp", "nice_time", "label_text", "output_summary"]

PAGE_SIZE = 50
"""Decisions per page of ``/decisions``."""

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
"""Headers sent with every page: no inline script or style, no third-party requests, no framing."""


# ------------------------------------------------------------------ aggregates
@dataclass
class _Counts:
    decisions: int = 0
    with_outcome: int = 0
    correct: int = 0
    labels: Counter = field(default_factory=Counter)


class RegisterStats:
    """Aggregates over the signed log for the public pages, updated incrementally.

    Counts decisions per deployment and model and per minute (all
    deployments: counts are public), output labels per model and deployment,
    and, from public outcomes, realised accuracy (public-service deployments
    only: outputs and outcomes of private deployments are commitments, which
    the public pages never open). Each refresh reads only the decisions and
    outcomes appended since the last one (the log is append-only); outcomes
    recorded twice for a decision count once, with the latest value.

    Thread-safe: one instance per app, refreshed under a lock with the
    calling thread's connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.upto = 0
        self.counts: dict[tuple[str, str], _Counts] = defaultdict(_Counts)  # (model, deployment) -> counts
        self.per_minute: dict[str, Counter] = defaultdict(Counter)  # deployment -> "YYYY-MM-DDTHH:MM" -> decisions
        self._outcome: dict[int, tuple[tuple[str, str], bool]] = {}  # public decision -> (key, correct)

    def refresh(self, c) -> RegisterStats:
        """Bring the aggregates up to the signed tree size of ``c.ledger`` (``c``: the server's ``Context``)."""
        c.index.refresh()
        signed = c.ledger.signed_size()
        with self._lock:
            if signed <= self.upto:
                return self
            public = {d.name for d in c.deployments.list() if d.public}
            rows = [(d.model, d.deployment, d.time, d.label) for d in c.index.decisions_between(self.upto, signed)]
            for model, deployment, time, label in rows:
                k = self.counts[(model, deployment)]
                k.decisions += 1
                self.per_minute[deployment][time[:16]] += 1
                if deployment in public:
                    k.labels[label if label is not None else "null"] += 1
            outcomes = [(i, o) for i, o in c.ledger.entries_of_type("outcome", self.upto) if i < signed and "outcome" in o]
            decisions = sorted({o["decision"] for _, o in outcomes})
            known = {i: (d.model, d.deployment, d.label) for i, d in c.index.decisions_at(decisions).items()}
            for _, o in outcomes:
                found = known.get(o["decision"])
                if found is None or found[1] not in public:
                    continue
                key = (found[0], found[1])
                correct = found[2] is not None and json.dumps(o["outcome"]) == found[2]
                previous = self._outcome.get(o["decision"])
                k = self.counts[key]
                if previous is not None:
                    k.with_outcome -= 1
                    k.correct -= previous[1]
                k.with_outcome += 1
                k.correct += correct
                self._outcome[o["decision"]] = (key, correct)
            self.upto = signed
        return self

    def snapshot(self) -> tuple[dict[tuple[str, str], _Counts], dict[str, Counter]]:
        """Copies of the counts and the per-minute series, consistent with each other."""
        with self._lock:
            counts = {k: _Counts(v.decisions, v.with_outcome, v.correct, Counter(v.labels)) for k, v in self.counts.items()}
            return counts, {d: Counter(c) for d, c in self.per_minute.items()}


def time_series(per_minute: dict[str, Counter], deployments: list[str] | None = None) -> tuple[list[tuple[str, int]], str]:
    """Decisions per bucket over the given deployments, bucketed by minute, hour or day to give at most ~60 bars."""
    total: Counter = Counter()
    for d, series in per_minute.items():
        if deployments is None or d in deployments:
            total.update(series)
    if not total:
        return [], "day"
    first, last = min(total), max(total)
    span = datetime.fromisoformat(last) - datetime.fromisoformat(first)
    if span <= timedelta(hours=1):
        unit, width, step = "minute", 16, timedelta(minutes=1)
    elif span <= timedelta(days=2):
        unit, width, step = "hour", 13, timedelta(hours=1)
    else:
        unit, width, step = "day", 10, timedelta(days=1)
    buckets: Counter = Counter()
    for minute, n in total.items():
        buckets[minute[:width]] += n
    fmt = {16: "%Y-%m-%dT%H:%M", 13: "%Y-%m-%dT%H", 10: "%Y-%m-%d"}[width]
    out, t, end = [], datetime.strptime(first[:width], fmt), datetime.strptime(last[:width], fmt)
    while t <= end and len(out) < 400:  # fill empty buckets, so gaps show
        key = t.strftime(fmt)
        out.append((key.replace("T", " ") + (":00" if unit == "hour" else ""), buckets.get(key, 0)))
        t += step
    return out, unit


# ------------------------------------------------------------------ published reports
REPORT_KINDS = {"audits": "Audit", "scenarios": "Scenario lab"}
"""Kinds of report published beside the log: ``<data dir>/reports/<kind>/<name>/report.html``."""

REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
"""Headers of a published report: its own inline styles and embedded images, no script, sandboxed."""

REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HTML_TITLE = re.compile(rb"<title>([^<]{1,300})</title>", re.IGNORECASE)


def list_reports(data_dir, kind: str | None = None) -> list[dict]:
    """The reports published beside the log, newest first.

    A report is published by writing it (``glasslog audit ... --out`` or ``glasslog scenarios run --out``) into
    ``<data dir>/reports/audits/<name>/`` or ``<data dir>/reports/scenarios/<name>/``: whatever is there is public.
    ``<name>``: letters, digits, ``.``, ``_`` and ``-``, at most 100 characters.

    Returns:
        dicts with ``kind``, ``kind_title``, ``name``, ``url``, ``title`` (the report's HTML title), ``created``
        (``report.json``'s ``created``, else the file's modification time, RFC 3339 UTC) and, for audits,
        ``findings`` and ``alerts`` (counts from ``report.json``; None if it is absent or unreadable).
    """
    from pathlib import Path

    out = []
    for k, kind_title in REPORT_KINDS.items():
        if kind is not None and k != kind:
            continue
        base = Path(data_dir) / "reports" / k
        if not base.is_dir():
            continue
        for sub in base.iterdir():
            html = sub / "report.html"
            if not REPORT_NAME.match(sub.name) or not sub.is_dir() or not html.is_file():
                continue
            try:
                head = html.open("rb").read(8192)
            except OSError:
                continue
            m = _HTML_TITLE.search(head)
            title = m.group(1).decode("utf-8", "replace").strip() if m else sub.name
            created = datetime.fromtimestamp(html.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            findings = alerts = None
            results = sub / "results.json"  # a scenario-lab report: name the scenarios it ran
            if results.is_file():
                try:
                    data = json.loads(results.read_text(encoding="utf-8"))
                    ids = [str(x.get("id")) for x in data.get("scenarios", []) if isinstance(x, dict) and x.get("id")]
                    if ids:
                        title = f"{title}: {', '.join(ids)}"
                except (OSError, ValueError, AttributeError):
                    pass
            meta = sub / "report.json"
            if meta.is_file():
                try:
                    data = json.loads(meta.read_text(encoding="utf-8"))
                    if isinstance(data, dict):
                        created = data.get("created") if isinstance(data.get("created"), str) else created
                        if isinstance(data.get("findings"), list):
                            findings = len(data["findings"])
                            alerts = sum(1 for f in data["findings"] if isinstance(f, dict) and f.get("verdict") == "alert")
                except (OSError, ValueError):
                    pass
            out.append({"kind": k, "kind_title": kind_title, "name": sub.name, "url": f"/reports/{k}/{sub.name}",
                        "title": title, "created": created, "findings": findings, "alerts": alerts})
    return sorted(out, key=lambda r: r["created"], reverse=True)


# ------------------------------------------------------------------ presentation helpers
def short_fp(fp: str | None) -> str:
    """``sha256:1a2b3c4d5e6f...`` -> ``1a2b3c4d5e6f`` (the first 12 hex digits)."""
    return (fp or "").removeprefix("sha256:")[:12]


def nice_time(t: str | None) -> str:
    """``2026-05-04T10:31:22.123456Z`` -> ``2026-05-04 10:31:22 UTC``."""
    if not t:
        return ""
    return t[:19].replace("T", " ") + " UTC"


def label_text(label: str | None) -> str:
    """A label as the index stores it (JSON text) -> text for a page."""
    if label is None or label == "null":
        return "(none)"
    try:
        value = json.loads(label)
    except (json.JSONDecodeError, TypeError):
        return str(label)
    return value if isinstance(value, str) else json.dumps(value)


def output_summary(output: Any, card: dict | None) -> str:
    """One line describing a decision's output: its label and the probability of the positive class, if given."""
    if output is None:
        return "(not public)"
    label = output.get("label") if isinstance(output, dict) else output
    text = label if isinstance(label, str) else json.dumps(label)
    proba = output.get("proba") if isinstance(output, dict) else None
    out = (card or {}).get("output") or {}
    classes, positive = out.get("classes"), out.get("positive")
    if isinstance(proba, list) and isinstance(classes, list) and positive in classes and len(proba) == len(classes):
        p = proba[classes.index(positive)]
        if isinstance(p, (int, float)) and not isinstance(p, bool):
            text += f" (P[{json.dumps(positive)}] = {p:.2f})"
    return text


DISCLOSURE_TEXT = {
    "closed": "closed: nobody may download the weights through this server",
    "supervisors": "supervisors: only the supervisory authority may download the weights",
    "researchers": "researchers: supervisors and research institutions may download the weights",
    "developers": "developers: supervisors, researchers and downstream developers may download the weights",
    "public": "public: anyone may download the weights",
}
