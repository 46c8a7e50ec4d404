"""Server-rendered web pages: the public register, the receipt page and the supervisor console.

Pages (HTML, Jinja2 templates in ``templates/``, CSS and JavaScript in
``static/``; no build step, no external assets):

- ``/``: the register: the log (origin, verifier key, tree size, latest
  checkpoint), models in service, deployments, charts of decisions over time,
  output distribution and realised against claimed accuracy;
- ``/models/{fingerprint}``: a model's card, claimed metrics, disclosure
  policy, status history with reasons and logged weight downloads by role;
- ``/decisions`` (filter by model, deployment, time and output; paginated)
  and ``/decisions/{index}``: decisions' public fields, with a flag form;
- ``/flags`` (ranked by ``glasslog.oversight.flags``, with their ratings and
  forms to flag and rate; ``static/flags.js`` posts to ``/v1/flags``) and
  ``/findings`` (monitors' and audits' findings, without their evidence);
- ``/reports``, ``/reports/{kind}/{name}``: audit and scenario-lab reports
  published in ``<data dir>/reports/`` (see ``list_reports``), served as
  written under a policy that allows no script;
- ``/receipt``: verifies a receipt in the browser (``static/verify.js``,
  WebCrypto Ed25519 and SHA-256), from a pasted or uploaded file, a receipt
  token (``/receipt#token=grt_...``: the fragment never reaches the server) or
  an index (``/receipt?index=N``: a public-service decision's receipt);
- ``/console``: the supervisory authority's console (triage, findings with
  evidence, monitors, replay, audit reports, suspend and reinstate); the API
  key is typed into the page, kept in ``sessionStorage`` and sent as a bearer
  token to ``/v1``; it is never put in a URL.

Unknown pages get an HTML 404 when a browser asks (``Accept: text/html``);
the API and the verifier endpoints keep their problem+json.

Public pages render only what the public view of the JSON API shows
(``glasslog.access.decision_view`` with the public principal): commitments,
never input values or subject ids; outputs and outcomes only for
public-service deployments. Every page is sent with a strict
Content-Security-Policy (scripts and styles from this origin only).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..access import PUBLIC, decision_view
from ..ledger import merkle
from ..ledger.entries import FLAG_CATEGORIES, RATINGS
from ..oversight.flags import MAX_TEXT_CHARS, Flags, address_identity
from ..registry import RegistryError
from . import charts

__all__ = ["register", "RegisterStats", "list_reports", "wilson_interval", "PAGE_SIZE", "SECURITY_HEADERS", "REPORT_KINDS"]

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

_FINGERPRINT = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")
_UINT = re.compile(r"^(0|[1-9][0-9]{0,17})$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion (E. B. Wilson, JASA 22, 1927).

    Args:
        successes: number of successes (correct decisions), ``0 <= successes <= n``.
        n: number of trials (decisions with an outcome).

    Returns:
        ``(low, high)`` as fractions; ``(0.0, 1.0)`` when ``n == 0``.
    """
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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


def _time_series(per_minute: dict[str, Counter], deployments: list[str] | None = None) -> tuple[list[tuple[str, int]], str]:
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

_REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
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
            if not _REPORT_NAME.match(sub.name) or not sub.is_dir() or not html.is_file():
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


# ------------------------------------------------------------------ the route module
def register(app: FastAPI, kit) -> None:
    """Add the web pages and their static files to ``app`` (see the module docstring).

    Args:
        app: the FastAPI app built by ``create_app``.
        kit: its ``ServerKit`` (``ctx()`` gives this thread's ledger, registry, deployments and index).
    """
    package = resources.files("glasslog.server")
    env = Environment(loader=FileSystemLoader(str(package / "templates")), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(short_fp=short_fp, nice_time=nice_time, label_text=label_text, pct=lambda x: f"{x:.1%}",
                       tojson_pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False))
    env.globals.update(disclosure_text=DISCLOSURE_TEXT)
    stats = RegisterStats()
    static_dir = package / "static"
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")

    def page(request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
        c = kit.ctx()
        values.setdefault("origin", c.ledger.origin)
        values.setdefault("nav", template.split(".")[0])
        html = env.get_template(template).render(request=request, **values)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return page(request, "error.html", status=status, title=title, message=message, nav="")

    # A browser asking for a page that does not exist gets an HTML page; the API and the verifier endpoints
    # keep their problem+json (the app's own handler).
    api_handler = app.exception_handlers.get(StarletteHTTPException)

    async def on_http(request: Request, exc: StarletteHTTPException):
        path = request.url.path
        wants_html = "text/html" in request.headers.get("accept", "")
        if (exc.status_code == 404 and request.method == "GET" and wants_html and api_handler is not None
                and not path.startswith(("/v1/", "/tile/", "/checkpoint", "/static/", "/openapi"))):
            if path.startswith(("/docs", "/redoc")):
                return error_page(request, 404, "No interactive API docs here",
                                  "Interactive API docs are not served: they would load scripts from another site. The "
                                  "JSON API is described at /openapi.json and, with worked examples, in docs/API.md.")
            return error_page(request, 404, "Page not found",
                              "There is no page at this address. The register's pages are listed in the menu above.")
        if api_handler is None:
            raise exc
        return await api_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, on_http)

    def model_names(c) -> dict[str, str]:
        return {m.fingerprint: f"{m.card.name} {m.card.version}" for m in c.registry.list()}

    def accuracy_rows(c, counts, names: dict[str, str], model: str | None = None) -> list[dict]:
        rows = []
        for (fp, dep), k in sorted(counts.items()):
            if k.with_outcome == 0 or (model is not None and fp != model):
                continue
            try:
                claimed = c.registry.get(fp).card.claimed.metrics.get("accuracy")
            except RegistryError:
                claimed = None
            lo, hi = wilson_interval(k.correct, k.with_outcome)
            rows.append({"model": fp, "deployment": dep, "label": f"{names.get(fp, short_fp(fp))} in {dep}"
                         if model is None else dep, "realised": k.correct / k.with_outcome, "lo": lo, "hi": hi,
                         "claimed": claimed, "n": k.with_outcome, "correct": k.correct})
        return rows

    # ------------------------------------------------------------ the register
    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        c = kit.ctx()
        stats.refresh(c)
        counts, per_minute = stats.snapshot()
        names = model_names(c)
        deployments = c.deployments.list()
        per_dep = Counter()
        per_model = Counter()
        for (fp, dep), k in counts.items():
            per_dep[dep] += k.decisions
            per_model[fp] += k.decisions
        series, unit = _time_series(per_minute)
        labels_by_dep = []
        for d in deployments:
            if not d.public:
                continue
            merged = Counter()
            for (fp, dep), k in counts.items():
                if dep == d.name:
                    merged.update(k.labels)
            if merged:
                items = [(label_text(lab), n) for lab, n in sorted(merged.items())]
                labels_by_dep.append({"deployment": d.name, "items": items,
                                      "chart": charts.horizontal_bars(f"Outputs of {d.name}", items)})
        acc = accuracy_rows(c, counts, names)
        models = []
        for m in c.registry.list():
            models.append({"m": m, "decisions": per_model.get(m.fingerprint, 0)})
        top_flags, _ = flag_rows(c, limit=5)
        return page(request, "home.html", top_flags=top_flags, findings=finding_rows(c, limit=5),
                    reports=list_reports(kit.data_dir)[:5], log={"origin": c.ledger.origin, "verifier_key": c.ledger.verifier_key,
                                               "tree_size": c.ledger.signed_size(), "checkpoint": c.ledger.checkpoint()},
                    models=models, deployments=[{"d": d, "decisions": per_dep.get(d.name, 0)} for d in deployments],
                    series=series, unit=unit,
                    time_chart=charts.time_bars(f"Decisions per {unit}, all deployments", series, unit) if series else None,
                    labels_by_dep=labels_by_dep, accuracy=acc,
                    accuracy_chart=charts.accuracy_chart("Realised accuracy (95% interval) against the claimed accuracy (dashed)",
                                                         acc) if acc else None)

    @app.get("/models/{fingerprint}", include_in_schema=False, response_class=HTMLResponse)
    def model_page(request: Request, fingerprint: str) -> HTMLResponse:
        c = kit.ctx()
        if not _FINGERPRINT.match(fingerprint):
            return error_page(request, 404, "No such model", "A model is named by its fingerprint: 'sha256:' and 64 hex "
                              "digits (or a unique prefix of at least 12 hex digits).")
        try:
            m = c.registry.get(fingerprint)
        except RegistryError as exc:
            return error_page(request, 404, "No such model", str(exc))
        stats.refresh(c)
        counts, per_minute = stats.snapshot()
        downloads = Counter()
        for i, e in c.ledger.entries_of_type("access"):
            if e.get("model") == m.fingerprint and e.get("action") == "weights-download":
                downloads[e["role"]] += 1
        public = {d.name for d in c.deployments.list() if d.public}
        by_dep = [{"deployment": dep, "decisions": k.decisions, "public": dep in public,
                   "labels": [(label_text(lab), n) for lab, n in sorted(k.labels.items())]}
                  for (fp, dep), k in sorted(counts.items()) if fp == m.fingerprint]
        acc = accuracy_rows(c, counts, {}, model=m.fingerprint)
        card = m.card.to_dict()
        flags, _ = flag_rows(c, model=m.fingerprint)
        return page(request, "model.html", nav="home", m=m, card=card, downloads=sorted(downloads.items()),
                    flags=flags, findings=finding_rows(c, model=m.fingerprint),
                    by_dep=by_dep, accuracy=acc,
                    accuracy_chart=charts.accuracy_chart("Realised accuracy (95% interval) against the claimed accuracy (dashed)",
                                                         acc) if acc else None)

    # ------------------------------------------------------------ decisions
    def _public_decision(i: int, entry: dict, c, cards: dict) -> dict:
        card = cards.get(entry["model"])
        if card is None:
            try:
                card = cards[entry["model"]] = c.registry.get(entry["model"]).card.to_dict()
            except RegistryError:
                card = cards[entry["model"]] = {}
        view = decision_view(PUBLIC, i, entry, {}, None)  # the public view opens nothing
        outcomes = []
        for oi in c.index.outcomes_of(i):
            o = json.loads(c.ledger.entry(oi))
            outcomes.append({"index": oi, "time": o["time"], "outcome": o.get("outcome"), "public": "outcome" in o})
        view["outcomes"] = outcomes
        view["output_text"] = output_summary(view.get("output"), card)
        view["model_name"] = f"{card.get('name', '?')} {card.get('version', '')}".strip()
        view["meaning"] = (card.get("output") or {}).get("meaning")
        return view

    @app.get("/decisions", include_in_schema=False, response_class=HTMLResponse)
    def decisions_page(request: Request) -> HTMLResponse:
        c = kit.ctx()
        q = request.query_params
        errors: dict[str, str] = {}
        form = {k: q.get(k, "").strip() for k in ("model", "deployment", "since", "until", "output", "after")}
        models = c.registry.list()
        deployments = c.deployments.list()
        public = [d.name for d in deployments if d.public]
        model = None
        if form["model"]:
            try:
                model = c.registry.get(form["model"]).fingerprint if _FINGERPRINT.match(form["model"]) else None
            except RegistryError:
                model = None
            if model is None:
                errors["model"] = "no such model: choose one from the list"
        visible = public
        if form["deployment"]:
            if form["deployment"] not in {d.name for d in deployments}:
                errors["deployment"] = "no such deployment: choose one from the list"
            elif form["deployment"] not in public:
                errors["deployment"] = ("this deployment is private: its decisions' outputs are commitments, and the "
                                        "public sees counts only (see the register)")
            else:
                visible = [form["deployment"]]
        since = until = None
        for name in ("since", "until"):
            if form[name]:
                try:
                    if not _DAY.match(form[name]):
                        raise ValueError
                    day = date.fromisoformat(form[name])
                except ValueError:
                    errors[name] = "must be a date such as 2026-05-04"
                    continue
                if name == "since":
                    since = f"{day.isoformat()}T00:00:00Z"
                else:
                    until = f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"  # the whole 'until' day is included
        if since and until and since >= until:
            errors["until"] = "must not be before 'from'"
        label = None
        if form["output"]:
            if len(form["output"]) > 200:
                errors["output"] = "at most 200 characters"
            else:
                try:
                    label = json.dumps(json.loads(form["output"]))
                except (json.JSONDecodeError, RecursionError):
                    label = json.dumps(form["output"])
        after = -1
        if form["after"]:
            if _UINT.match(form["after"]):
                after = int(form["after"])
            else:
                errors["after"] = "must be a decision index"
        rows, next_after = [], None
        if not errors:
            found = c.index.search(model=model, deployments=visible, since=since, until=until, label=label, after=after,
                                   limit=PAGE_SIZE + 1)
            signed = c.ledger.signed_size()
            found = [i for i in found if i < signed]
            more = len(found) > PAGE_SIZE
            found = found[:PAGE_SIZE]
            cards: dict = {}
            rows = [_public_decision(i, json.loads(c.ledger.entry(i)), c, cards) for i in found]
            next_after = found[-1] if more and found else None
        stats.refresh(c)
        counts, _ = stats.snapshot()
        private_counts = Counter()
        for (fp, dep), k in counts.items():
            if dep not in public:
                private_counts[dep] += k.decisions
        keep = {k: v for k, v in form.items() if v and k != "after"}
        return page(request, "decisions.html", status=400 if errors else 200, form=form, errors=errors, rows=rows,
                    models=models, public=public, private_counts=sorted(private_counts.items()), next_after=next_after,
                    keep=keep, page_size=PAGE_SIZE)

    @app.get("/decisions/{index}", include_in_schema=False, response_class=HTMLResponse)
    def decision_page(request: Request, index: str) -> HTMLResponse:
        c = kit.ctx()
        if not _UINT.match(index):
            return error_page(request, 404, "No such decision", "A decision is named by its index in the log: a "
                              "non-negative decimal number.")
        i = int(index)
        if i >= c.ledger.signed_size():
            return error_page(request, 404, "No such decision", f"There is no entry {i} in the signed log "
                              f"(tree size {c.ledger.signed_size()}).")
        data = c.ledger.entry(i)
        entry = json.loads(data)
        if entry.get("type") != "decision":
            return error_page(request, 404, "Not a decision", f"Entry {i} is a {entry.get('type')} entry, not a decision.")
        d = c.deployments.find(entry["deployment"])
        view = _public_decision(i, entry, c, {})
        flags, _ = flag_rows(c, decision=i)
        return page(request, "decision.html", nav="decisions", v=view, entry=entry, public=bool(d and d.public),
                    leaf_hash=merkle.leaf_hash(data).hex(), deployment=d, flags=flags, categories=FLAG_CATEGORIES,
                    max_text=MAX_TEXT_CHARS, models=[])

    # ------------------------------------------------------------ flags and findings
    def flags_of(c):
        """This thread's ``Flags``: the oversight routes' one when they made it (``Context.oversight``), else ours;
        kept on the context, since it reads the log incrementally."""
        pair = getattr(c, "oversight", None)
        if pair is not None:
            return pair[0]
        fl = getattr(c, "_web_flags", None)
        if fl is None:
            fl = c._web_flags = Flags(c.ledger, c.registry, c.deployments)
        return fl

    def flag_rows(c, model: str | None = None, decision: int | None = None, limit: int | None = None) -> tuple[list[dict], Any]:
        fl = flags_of(c)
        summaries, board = fl.board()
        names = model_names(c)
        rows = []
        for s in summaries:
            f = s.flag
            if (model is not None and f.model != model) or (decision is not None and f.decision != decision):
                continue
            state, text = fl.text(f.index)
            if state == "shown" and not fl.may_read_text(f.index, "public", own=False):
                state, text = "private", None  # a subject's words about a private decision: reporter and supervisors only
            rows.append({"index": f.index, "rank": s.score.rank, "category": f.category, "by_role": f.by_role, "time": f.time,
                         "model": f.model, "model_name": names.get(f.model, short_fp(f.model)), "decision": f.decision,
                         "deployment": f.deployment, "reporters": s.reporters, "score": s.score, "text_state": state,
                         "text": text})
            if limit is not None and len(rows) >= limit:
                break
        return rows, board

    def finding_rows(c, model: str | None = None, limit: int | None = None) -> list[dict]:
        names = model_names(c)
        signed = c.ledger.signed_size()
        rows = []
        for i, e in c.ledger.entries_of_type("finding"):
            if i >= signed or (model is not None and e.get("model") != model):
                continue
            rows.append({"index": i, **e, "model_name": names.get(e.get("model"), short_fp(e.get("model")))})
        rows.reverse()  # newest first
        return rows[:limit] if limit is not None else rows

    def audit_reports(c) -> list[dict]:
        return [{"url": r["url"], "title": r["title"], "note": f"{r['created'][:10]}"
                 + (f", {r['alerts']} alerting of {r['findings']} findings" if r["findings"] is not None else "")}
                for r in list_reports(kit.data_dir, "audits")]

    @app.get("/reports", include_in_schema=False, response_class=HTMLResponse)
    def reports_page(request: Request) -> HTMLResponse:
        return page(request, "reports.html", reports=list_reports(kit.data_dir))

    @app.get("/reports/{kind}/{name}", include_in_schema=False)
    def report_file(request: Request, kind: str, name: str) -> Response:
        path = kit.data_dir / "reports" / kind / name / "report.html"
        if kind not in REPORT_KINDS or not _REPORT_NAME.match(name) or not path.is_file():
            return error_page(request, 404, "No such report", "Published reports are listed on the reports page.")
        return Response(path.read_bytes(), media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)

    @app.get("/flags", include_in_schema=False, response_class=HTMLResponse)
    def flags_page(request: Request) -> HTMLResponse:
        c = kit.ctx()
        rows, board = flag_rows(c)
        # The rating forms post as the public, whom the API knows by address: no form where the API would refuse
        # (the viewer's own flags; flags whose text is not public), the reason instead.
        viewer = address_identity(request.client.host if request.client else "unknown")
        fl = flags_of(c)
        for r in rows:
            r["own"] = fl.is_reporter(r["index"], viewer)
        return page(request, "flags.html", rows=rows, board=board, categories=FLAG_CATEGORIES, ratings=RATINGS,
                    max_text=MAX_TEXT_CHARS, models=c.registry.list(), flag_model=request.query_params.get("model", ""),
                    flag_decision=request.query_params.get("decision", ""))

    @app.get("/findings", include_in_schema=False, response_class=HTMLResponse)
    def findings_page(request: Request) -> HTMLResponse:
        c = kit.ctx()
        return page(request, "findings.html", rows=finding_rows(c))

    # ------------------------------------------------------------ receipts and the console
    @app.get("/receipt", include_in_schema=False, response_class=HTMLResponse)
    def receipt_page(request: Request) -> HTMLResponse:
        c = kit.ctx()
        index = request.query_params.get("index", "")
        if index and not _UINT.match(index):
            return error_page(request, 400, "Not a decision index", "index must be a decision's index in the log: "
                              "a non-negative decimal number.")
        return page(request, "receipt.html", verifier_key=c.ledger.verifier_key, index=index, categories=FLAG_CATEGORIES,
                    max_text=MAX_TEXT_CHARS, models=[])

    @app.get("/console", include_in_schema=False, response_class=HTMLResponse)
    def console_page(request: Request) -> HTMLResponse:
        c = kit.ctx()
        findings = [r["index"] for r in finding_rows(c)]
        return page(request, "console.html", findings_json=json.dumps(findings), reports_json=json.dumps(audit_reports(c)))
