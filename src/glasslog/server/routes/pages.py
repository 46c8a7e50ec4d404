"""The web register: server-rendered pages for people.

Pages (HTML, Jinja2 templates in ``templates/``, CSS and JavaScript in
``static/``; no build step, no external assets):

- ``/``: the register: the log (origin, verifier key, tree size, latest
  checkpoint), models in service, deployments, charts of decisions over time,
  output distribution and realised against claimed accuracy;
- ``/models/{fingerprint}``: a model's card, claimed metrics, disclosure
  policy, status history with reasons and logged weight downloads by role;
- ``/decisions`` (filter by model, deployment, time and output; paginated)
  and ``/decisions/{index}``: decisions' public fields, with a flag form;
- ``/generations`` (filter by model and deployment; paginated) and
  ``/generations/{index}``: a generative model's outputs as the public sees
  them (``glasslog.access.policy.generation_view``): the text where the
  deployment is public-service, the commitment otherwise; model, deployment,
  sampling, token counts, activation commitments, receipt link, flag form;
- ``/flags`` (ranked by ``glasslog.oversight.flags``, with their ratings and
  forms to flag and rate; ``static/flags.js`` posts to ``/v1/flags``) and
  ``/findings`` (monitors' and audits' findings, without their evidence);
- ``/reports``, ``/reports/{kind}/{name}``: audit and scenario-lab reports
  published in ``<data dir>/reports/`` (see ``web.list_reports``), served as
  written under a policy that allows no script;
- ``/receipt``: verifies a receipt in the browser (``static/verify.js``,
  WebCrypto Ed25519 and SHA-256), from a pasted or uploaded file, a receipt
  token (``/receipt#token=grt_...``: the fragment never reaches the server) or
  an index (``/receipt?index=N``: a public-service decision's receipt);
- ``/console``: the supervisory authority's console (triage, findings with
  evidence, monitors, replay, audit reports, suspend and reinstate); the API
  key is typed into the page, kept in ``sessionStorage`` and sent as a bearer
  token to ``/v1``; it is never put in a URL.

Unknown pages get an HTML 404 when a browser asks (``Accept: text/html``;
``page_not_found``, given to ``problems.install``); the API and the verifier
endpoints keep their problem+json. The static files are mounted at
``/static`` by ``create_app`` (``static_files``).

Public pages render only what the public view of the JSON API shows (see
``glasslog.server.web``). Every page is sent with a strict
Content-Security-Policy (scripts and styles from this origin only).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, timedelta
from importlib import resources
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ...access import PUBLIC, decision_view
from ...access.policy import generation_view
from ...ledger import merkle
from ...oversight.flags import MAX_TEXT_CHARS, address_identity
from ...records import FLAG_CATEGORIES, RATINGS
from ...registry import RegistryError
from .. import charts
from ..deps import ServerState, State, api_router, state_of
from ..web import (
    DISCLOSURE_TEXT,
    PAGE_SIZE,
    REPORT_HEADERS,
    REPORT_KINDS,
    REPORT_NAME,
    SECURITY_HEADERS,
    RegisterStats,
    label_text,
    list_reports,
    nice_time,
    output_summary,
    short_fp,
    time_series,
    wilson_interval,
)

__all__ = ["router", "page_not_found", "static_files"]

router = api_router()

_FINGERPRINT = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")
_UINT = re.compile(r"^(0|[1-9][0-9]{0,17})$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_PACKAGE = resources.files("glasslog.server")
_ENV = Environment(loader=FileSystemLoader(str(_PACKAGE / "templates")), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_ENV.filters.update(short_fp=short_fp, nice_time=nice_time, label_text=label_text, pct=lambda x: f"{x:.1%}",
                    tojson_pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False))
_ENV.globals.update(disclosure_text=DISCLOSURE_TEXT)


def static_files() -> StaticFiles:
    """The pages' CSS and JavaScript (``static/``), for ``app.mount("/static", ...)``."""
    return StaticFiles(directory=str(_PACKAGE / "static"))


def _stats(s: ServerState) -> RegisterStats:
    """The app's aggregates (one per app, refreshed incrementally)."""
    return s.shared("register-stats", RegisterStats)


def page(request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
    """Render ``template`` with the security headers (every page's response)."""
    c = state_of(request).ctx()
    values.setdefault("origin", c.ledger.origin)
    values.setdefault("nav", template.split(".")[0])
    html = _ENV.get_template(template).render(request=request, **values)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "error.html", status=status, title=title, message=message, nav="")


def page_not_found(request: Request) -> HTMLResponse | None:
    """The HTML 404 for a browser asking for a page that does not exist; None for the API and the verifier
    endpoints (they keep their problem+json) and for clients that do not ask for HTML."""
    path = request.url.path
    wants_html = "text/html" in request.headers.get("accept", "")
    if (request.method != "GET" or not wants_html
            or path.startswith(("/v1/", "/tile/", "/checkpoint", "/static/", "/openapi"))):
        return None
    if path.startswith(("/docs", "/redoc")):
        return error_page(request, 404, "No interactive API docs here",
                          "Interactive API docs are not served: they would load scripts from another site. The "
                          "JSON API is described at /openapi.json and, with worked examples, in docs/API.md.")
    return error_page(request, 404, "Page not found",
                      "There is no page at this address. The register's pages are listed in the menu above.")


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
@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def home(request: Request, s: State) -> HTMLResponse:
    c = s.ctx()
    stats = _stats(s).refresh(c)
    counts, per_minute = stats.snapshot()
    names = model_names(c)
    deployments = c.deployments.list()
    per_dep = Counter()
    per_model = Counter()
    for (fp, dep), k in counts.items():
        per_dep[dep] += k.decisions
        per_model[fp] += k.decisions
    series, unit = time_series(per_minute)
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
                reports=list_reports(s.data_dir)[:5], log={"origin": c.ledger.origin, "verifier_key": c.ledger.verifier_key,
                                           "tree_size": c.ledger.signed_size(), "checkpoint": c.ledger.checkpoint()},
                models=models, deployments=[{"d": d, "decisions": per_dep.get(d.name, 0)} for d in deployments],
                series=series, unit=unit,
                time_chart=charts.time_bars(f"Decisions per {unit}, all deployments", series, unit) if series else None,
                labels_by_dep=labels_by_dep, accuracy=acc,
                accuracy_chart=charts.accuracy_chart("Realised accuracy (95% interval) against the claimed accuracy (dashed)",
                                                     acc) if acc else None)


@router.get("/models/{fingerprint}", include_in_schema=False, response_class=HTMLResponse)
def model_page(request: Request, s: State, fingerprint: str) -> HTMLResponse:
    c = s.ctx()
    if not _FINGERPRINT.match(fingerprint):
        return error_page(request, 404, "No such model", "A model is named by its fingerprint: 'sha256:' and 64 hex "
                          "digits (or a unique prefix of at least 12 hex digits).")
    try:
        m = c.registry.get(fingerprint)
    except RegistryError as exc:
        return error_page(request, 404, "No such model", str(exc))
    stats = _stats(s).refresh(c)
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
    generations, more_generations = generation_rows(c, model=m.fingerprint, limit=10)
    return page(request, "model.html", nav="home", m=m, card=card, downloads=sorted(downloads.items()),
                flags=flags, findings=finding_rows(c, model=m.fingerprint), generations=generations,
                more_generations=more_generations is not None,
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


def _model_filter(c, value: str, errors: dict[str, str]) -> str | None:
    """The fingerprint a list page's ``model`` filter names, or None (none given; or unknown, then noted in
    ``errors["model"]``)."""
    if not value:
        return None
    try:
        model = c.registry.get(value).fingerprint if _FINGERPRINT.match(value) else None
    except RegistryError:
        model = None
    if model is None:
        errors["model"] = "no such model: choose one from the list"
    return model


@router.get("/decisions", include_in_schema=False, response_class=HTMLResponse)
def decisions_page(request: Request, s: State) -> HTMLResponse:
    c = s.ctx()
    q = request.query_params
    errors: dict[str, str] = {}
    form = {k: q.get(k, "").strip() for k in ("model", "deployment", "since", "until", "output", "after")}
    models = c.registry.list()
    deployments = c.deployments.list()
    public = [d.name for d in deployments if d.public]
    model = _model_filter(c, form["model"], errors)
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
    stats = _stats(s).refresh(c)
    counts, _ = stats.snapshot()
    private_counts = Counter()
    for (fp, dep), k in counts.items():
        if dep not in public:
            private_counts[dep] += k.decisions
    keep = {k: v for k, v in form.items() if v and k != "after"}
    return page(request, "decisions.html", status=400 if errors else 200, form=form, errors=errors, rows=rows,
                models=models, public=public, private_counts=sorted(private_counts.items()), next_after=next_after,
                keep=keep, page_size=PAGE_SIZE)


def _signed_entry_or_page(request: Request, c, index: str, kind: str) -> tuple[int, bytes, dict] | HTMLResponse:
    """``(index, bytes, entry)`` of the signed entry a ``/decisions/{index}`` or ``/generations/{index}`` page names,
    or the 404 page saying why not (not a number, beyond the signed log, another type of entry)."""
    if not _UINT.match(index):
        return error_page(request, 404, f"No such {kind}", f"A {kind} is named by its index in the log: a "
                          "non-negative decimal number.")
    i = int(index)
    if i >= c.ledger.signed_size():
        return error_page(request, 404, f"No such {kind}", f"There is no entry {i} in the signed log "
                          f"(tree size {c.ledger.signed_size()}).")
    data = c.ledger.entry(i)
    entry = json.loads(data)
    if entry.get("type") != kind:
        return error_page(request, 404, f"Not a {kind}", f"Entry {i} is a {entry.get('type')} entry, not a {kind}.")
    return i, data, entry


@router.get("/decisions/{index}", include_in_schema=False, response_class=HTMLResponse)
def decision_page(request: Request, s: State, index: str) -> HTMLResponse:
    c = s.ctx()
    found = _signed_entry_or_page(request, c, index, "decision")
    if isinstance(found, HTMLResponse):
        return found
    i, data, entry = found
    d = c.deployments.find(entry["deployment"])
    view = _public_decision(i, entry, c, {})
    flags, _ = flag_rows(c, decision=i)
    return page(request, "decision.html", nav="decisions", v=view, entry=entry, public=bool(d and d.public),
                leaf_hash=merkle.leaf_hash(data).hex(), deployment=d, flags=flags, categories=FLAG_CATEGORIES,
                max_text=MAX_TEXT_CHARS, models=[])


# ------------------------------------------------------------ generations
def _public_generation(i: int, entry: dict, names: dict[str, str], c=None) -> dict:
    view = generation_view(PUBLIC, i, entry, {})  # the public view opens nothing: the text only where it is logged
    if c is not None:
        view["outcomes"] = [{"index": oi, "time": o["time"], "outcome": o.get("outcome"), "public": "outcome" in o}
                            for oi in c.index.outcomes_of(i) for o in [json.loads(c.ledger.entry(oi))]]
    fp = view.get("model")
    view["model_name"] = names.get(fp, short_fp(fp)) if fp else "(unregistered model)"
    if isinstance(view.get("output"), list):
        view["output"] = "\n\n".join(str(t) for t in view["output"])
    return view


def generation_rows(c, model: str | None = None, deployment: str | None = None, after: int = -1,
                    limit: int = PAGE_SIZE) -> tuple[list[dict], int | None]:
    """Public views of signed generations (oldest first) after ``after``, and the ``after`` of the next page."""
    names = model_names(c)
    signed = c.ledger.signed_size()
    rows: list[dict] = []
    for i, e in c.ledger.entries_of_type("generation", after + 1):
        if i >= signed:
            break
        if (model is not None and e.get("model") != model) or (deployment is not None and e.get("deployment") != deployment):
            continue
        if len(rows) == limit:
            return rows, rows[-1]["index"]
        rows.append(_public_generation(i, e, names))
    return rows, None


@router.get("/generations", include_in_schema=False, response_class=HTMLResponse)
def generations_page(request: Request, s: State) -> HTMLResponse:
    c = s.ctx()
    q = request.query_params
    form = {k: q.get(k, "").strip() for k in ("model", "deployment", "after")}
    errors: dict[str, str] = {}
    model = _model_filter(c, form["model"], errors)
    deployments = c.deployments.list()
    if form["deployment"] and form["deployment"] not in {d.name for d in deployments}:
        errors["deployment"] = "no such deployment: choose one from the list"
    after = -1
    if form["after"]:
        if _UINT.match(form["after"]):
            after = int(form["after"])
        else:
            errors["after"] = "must be a generation's index"
    rows, next_after = ([], None) if errors else generation_rows(c, model, form["deployment"] or None, after)
    keep = {k: v for k, v in form.items() if v and k != "after"}
    return page(request, "generations.html", status=400 if errors else 200, form=form, errors=errors, rows=rows,
                next_after=next_after, keep=keep, models=c.registry.list(), deployments=deployments,
                page_size=PAGE_SIZE)


@router.get("/generations/{index}", include_in_schema=False, response_class=HTMLResponse)
def generation_page(request: Request, s: State, index: str) -> HTMLResponse:
    c = s.ctx()
    found = _signed_entry_or_page(request, c, index, "generation")
    if isinstance(found, HTMLResponse):
        return found
    i, data, entry = found
    d = c.deployments.find(entry["deployment"])
    view = _public_generation(i, entry, model_names(c), c)
    flags, _ = flag_rows(c, decision=i)
    return page(request, "generation.html", nav="generations", v=view, entry=entry, public=bool(d and d.public),
                leaf_hash=merkle.leaf_hash(data).hex(), deployment=d, flags=flags, categories=FLAG_CATEGORIES,
                max_text=MAX_TEXT_CHARS, models=[])


# ------------------------------------------------------------ flags and findings
def flag_rows(c, model: str | None = None, decision: int | None = None, limit: int | None = None) -> tuple[list[dict], Any]:
    fl = c.flags
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
                     "model": f.model, "model_name": names.get(f.model, short_fp(f.model)),
                     "decision": None if f.generation is not None else f.decision, "generation": f.generation,
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


def audit_reports(data_dir) -> list[dict]:
    return [{"url": r["url"], "title": r["title"], "note": f"{r['created'][:10]}"
             + (f", {r['alerts']} alerting of {r['findings']} findings" if r["findings"] is not None else "")}
            for r in list_reports(data_dir, "audits")]


@router.get("/reports", include_in_schema=False, response_class=HTMLResponse)
def reports_page(request: Request, s: State) -> HTMLResponse:
    return page(request, "reports.html", reports=list_reports(s.data_dir))


@router.get("/reports/{kind}/{name}", include_in_schema=False)
def report_file(request: Request, s: State, kind: str, name: str) -> Response:
    path = s.data_dir / "reports" / kind / name / "report.html"
    if kind not in REPORT_KINDS or not REPORT_NAME.match(name) or not path.is_file():
        return error_page(request, 404, "No such report", "Published reports are listed on the reports page.")
    return Response(path.read_bytes(), media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)


@router.get("/flags", include_in_schema=False, response_class=HTMLResponse)
def flags_page(request: Request, s: State) -> HTMLResponse:
    c = s.ctx()
    rows, board = flag_rows(c)
    # The rating forms post as the public, whom the API knows by address: no form where the API would refuse
    # (the viewer's own flags; flags whose text is not public), the reason instead.
    viewer = address_identity(request.client.host if request.client else "unknown")
    fl = c.flags
    for r in rows:
        r["own"] = fl.is_reporter(r["index"], viewer)
    return page(request, "flags.html", rows=rows, board=board, categories=FLAG_CATEGORIES, ratings=RATINGS,
                max_text=MAX_TEXT_CHARS, models=c.registry.list(), flag_model=request.query_params.get("model", ""),
                flag_decision=request.query_params.get("decision", ""))


@router.get("/findings", include_in_schema=False, response_class=HTMLResponse)
def findings_page(request: Request, s: State) -> HTMLResponse:
    c = s.ctx()
    return page(request, "findings.html", rows=finding_rows(c))


# ------------------------------------------------------------ receipts and the console
@router.get("/receipt", include_in_schema=False, response_class=HTMLResponse)
def receipt_page(request: Request, s: State) -> HTMLResponse:
    c = s.ctx()
    index = request.query_params.get("index", "")
    kind = request.query_params.get("kind", "decision")
    if index and not _UINT.match(index):
        return error_page(request, 400, "Not a decision index", "index must be a decision's index in the log: "
                          "a non-negative decimal number.")
    if kind not in ("decision", "generation"):
        return error_page(request, 400, "Not a kind of output", "kind must be decision (the default) or generation.")
    return page(request, "receipt.html", verifier_key=c.ledger.verifier_key, index=index, kind=kind, categories=FLAG_CATEGORIES,
                max_text=MAX_TEXT_CHARS, models=[])


@router.get("/console", include_in_schema=False, response_class=HTMLResponse)
def console_page(request: Request, s: State) -> HTMLResponse:
    c = s.ctx()
    findings = [r["index"] for r in finding_rows(c)]
    return page(request, "console.html", findings_json=json.dumps(findings), reports_json=json.dumps(audit_reports(s.data_dir)))
