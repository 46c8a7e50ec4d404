"""Decoded OTLP requests onto the log: who sent them, which deployment and model, one generation entry per span.

Identity. A request is sent with an operator API key. A key bound to a
deployment (``glasslog keys create --role operator --deployment NAME``)
logs everything it sends in that deployment; a resource that names another
one (``glasslog.deployment``) is refused. An unbound operator key names the
deployment per resource: ``glasslog.deployment``, else ``service.name``. The
deployment must be declared (its visibility decides whether outputs are
public or committed). ``service.name`` is kept on each entry.

Models. ``gen_ai.request.model`` (or the response model) is resolved against
the registered models: by OMS fingerprint when a ``glasslog.model.fingerprint``
attribute (span or resource) names one, else by the card's name (or
``name:version``). A span naming a model that is not registered is still
logged, without ``model`` and with the names as reported, and raises one
``unregistered-model`` finding per deployment and model name; a span of a
suspended or withdrawn model is logged and raises a ``model-not-active``
finding (the application went on using it).

What is logged. Spans whose operation is a generation (``chat``,
``text_completion``, ``generate_content``) become ``generation`` entries with
``source: "otlp"`` (``glasslog.capture.generator.reported_generation``): the
prompt committed, the output public or committed by the deployment's
visibility, content only where the application captured it; content sent
apart as log records is attached whichever arrives first
(``glasslog.ingest.content``). Embeddings spans become ``decision`` entries
where the deployment declares it (``glasslog.ingest.embeddings``). Other spans
(HTTP, database, agent and tool spans, embeddings elsewhere, unknown operation
names) are not logged and not refused: an application exports all its spans to one
endpoint, and refusing some would make its exporter retry. The response says
how many were skipped and why. A GenAI span that cannot be logged (no model
named, no valid ids, malformed messages, no deployment) is rejected, counted
in ``partial_success`` with the reason.

Duplicates and conflicts. A span is keyed by its trace and span id in its
deployment (the ``ingested`` side table, written in the batch's own
transaction), with a digest of what it says (``_Pending.seen_keys``): the same
span sent twice, in one request or in two, even concurrently, is logged once;
the same span id sent again with other attributes is rejected as a conflict
(``partial_success`` names it; the logged entry is never overwritten). A span
whose operation was logged first from its
``gen_ai.client.inference.operation.details`` log record adds what that
record lacked (token counts, response id, finish reasons, its start and end,
content) as a ``part: "span"`` entry naming the operation's entry.

Token counts. A ``gen_ai.usage.*`` (or ``llm.token_count.*``) value that is
not a non-negative integer ("lots", -5) rejects the span, naming the
attribute: a wrong count is not dropped silently.

Evaluations. ``gen_ai.evaluation.result`` events (span events, or log records
on ``/v1/logs`` carrying the span's context) and OpenInference
``evaluations.N.evaluation.*`` attributes become ``finding`` entries with
``source: "application"``, linked to the generation's index
(``evidence.generation``). The label decides the verdict: a failing label
(``fail``, ``incorrect``, ``hallucinated``, ``toxic``, ... see
``FAILING_LABELS``) is an ``alert`` and goes to the triage queue, a passing one
is ``ok``, anything else ``insufficient-data``. Explanations are committed,
not published.

Everything here is self-reported by the application: glasslog checks the
record's form and who sent it, not that the named model produced the text.
Binding a generation to the weights needs replay.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from ..access import Principal
from ..capture.generator import reported_generation
from ..errors import AccessError
from ..ledger import Entry, EntryError, Ledger, PrivateValue, commit, utc_now
from ..ledger.commitments import fresh_salts
from ..records import finding_entry
from ..registry import Deployments, RegisteredModel, Registry
from ..storage import StorageConflict
from . import genai
from .content import ContentGroup, late_span_content, log_content, part_keys, record_key
from .embeddings import append_embeddings, queue_embeddings
from .identity import ModelResolver, deployment_for, nanos_to_time, span_key, valid_ids
from .otlp import iter_log_records, iter_spans

__all__ = ["Ingestor", "IngestResult", "FAILING_LABELS", "PASSING_LABELS", "ModelResolver", "deployment_for",
           "span_key", "nanos_to_time"]

FAILING_LABELS = frozenset({"fail", "failed", "failure", "false", "incorrect", "wrong", "irrelevant", "unsafe", "toxic",
                            "harmful", "hallucinated", "hallucination", "bad", "no", "reject", "rejected", "negative",
                            "unfaithful", "inaccurate", "not relevant", "violation", "biased"})
"""Evaluation labels (case-insensitive) that make an application's evaluation an ``alert``."""
PASSING_LABELS = frozenset({"pass", "passed", "true", "correct", "relevant", "safe", "good", "yes", "ok", "accept",
                            "accepted", "positive", "faithful", "accurate", "factual", "grounded"})
"""Evaluation labels (case-insensitive) that make an application's evaluation ``ok``."""

DETAILS_EVENT = "gen_ai.client.inference.operation.details"
"""A log record carrying a whole GenAI operation (current conventions): logged like its span, under the same key."""


@dataclass
class IngestResult:
    """What one export request did."""

    logged: list[int] = field(default_factory=list)
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    findings: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hints: set[str] = field(default_factory=set)

    def message(self) -> str:
        """The ``partial_success.error_message``: rejections first, then what was skipped (empty if neither)."""
        parts = []
        if self.problems:
            shown = self.problems[:5]
            more = len(self.problems) - len(shown)
            parts.append(f"{self.rejected} rejected: " + "; ".join(shown) + (f"; and {more} more" if more else ""))
        if self.skipped:
            parts.append("not logged (not generations): " + ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())))
        if self.duplicates:
            parts.append(f"{self.duplicates} already logged (duplicate span ids)")
        if self.conflicts:
            parts.append(f"{self.conflicts} conflicting (a span id already logged with other attributes: rejected)")
        parts.extend(sorted(self.hints))
        return ". ".join(parts)

    def to_dict(self) -> dict:
        return {"logged": self.logged, "duplicates": self.duplicates, "rejected": self.rejected,
                "conflicts": self.conflicts, "skipped": self.skipped,
                "findings": self.findings, "problems": self.problems}


@dataclass
class _Pending:
    deployment: str
    key: bytes
    record: genai.GenAIRecord
    service: str | None
    trace_id: bytes
    span_id: bytes
    start: int
    end: int
    content: int | list[int] | None = None  # the span's content parts, logged before it (glasslog.ingest.content)
    from_span: bool = True  # False: a details log record standing in for its span
    _seen: tuple[bytes, bytes] | None = field(default=None, repr=False, compare=False)

    def seen_keys(self) -> tuple[bytes, bytes]:
        """The ``ingested`` keys saying this span was received (``b"span"`` + key) and with which attributes (``b"spansum"``
        + key + 16 bytes of a SHA-256 over its record and times): a resend with the same digest is a duplicate, with
        another one a conflict."""
        if self._seen is None:  # first called before the record's content is trimmed (_not_yet_ingested): as sent
            digest = hashlib.sha256(json.dumps([asdict(self.record), self.start, self.end], sort_keys=True,
                                               default=str).encode()).digest()[:16]
            self._seen = (b"span" + self.key, b"spansum" + self.key + digest)
        return self._seen


class Ingestor:
    """Logs decoded OTLP requests on one log (one instance per thread: it holds the thread's ``Ledger``).

    Args:
        ledger: the log.
        lock: held around each append (the server's per-process append lock), or None.
        aliases: extra model names -> fingerprints.
    """

    def __init__(self, ledger: Ledger, lock: threading.Lock | None = None, aliases: dict[str, str] | None = None):
        self.ledger = ledger
        self.registry = Registry(ledger)
        self.deployments = Deployments(ledger)
        self.models = ModelResolver(self.registry, aliases)
        self.lock = lock or threading.Lock()
        self._raised: set[tuple] = set()
        self._findings_upto = 0

    # ------------------------------------------------------------------ traces
    def ingest_traces(self, request, principal: Principal) -> IngestResult:
        """Log the generations of an ``ExportTraceServiceRequest`` (see module docstring).

        Raises:
            AccessError: the caller is not an operator.
        """
        if principal.role != "operator":
            raise AccessError(f"role {principal.role} may not send telemetry; it needs an operator key")
        result = IngestResult()
        pending: list[_Pending] = []
        embeddings: list[_Pending] = []
        resource_deployments: dict[int, tuple[str | None, str | None]] = {}
        for sv in iter_spans(request):
            where = f"span {sv.span_id.hex() or '?'} ({sv.name or 'unnamed'})"
            try:
                record = genai.map_span(sv.attrs, sv.events, sv.resource)
            except genai.NotGenAI as exc:
                if exc.operation == "embeddings":
                    if sv.resource_index not in resource_deployments:
                        resource_deployments[sv.resource_index] = self._deployment(principal, sv.resource)
                    if queue_embeddings(self, sv, resource_deployments[sv.resource_index], embeddings, result):
                        continue
                key = exc.operation or "non-GenAI spans"
                result.skipped[key] = result.skipped.get(key, 0) + 1
                continue
            except genai.MissingAttribute as exc:
                self._reject(result, f"{where}: {exc}")
                continue
            bad = valid_ids(sv.trace_id, sv.span_id)
            if bad:
                self._reject(result, f"{where}: {bad}")
                continue
            if sv.resource_index not in resource_deployments:
                resource_deployments[sv.resource_index] = self._deployment(principal, sv.resource)
            deployment, problem = resource_deployments[sv.resource_index]
            if deployment is None:
                self._reject(result, f"{where}: {problem}")
                continue
            service = sv.resource.get("service.name")
            pending.append(_Pending(deployment, span_key(sv.trace_id, sv.span_id), record,
                                    service if isinstance(service, str) else None, sv.trace_id, sv.span_id,
                                    sv.start, sv.end))
        self._log_generations(pending, result)
        self._log_generations(embeddings, result, lambda items, res: append_embeddings(self, items, res))
        return result

    def _deployment(self, principal: Principal, resource: dict) -> tuple[str | None, str | None]:
        try:
            name = deployment_for(principal, resource)
        except ValueError as exc:
            return None, str(exc)
        if self.deployments.find(name) is None:
            return None, (f"deployment {name!r} is not declared: declare it (POST /v1/deployments) or send with an"
                          " operator key bound to a declared deployment")
        return name, None

    @staticmethod
    def _reject(result: IngestResult, problem: str) -> None:
        result.rejected += 1
        result.problems.append(problem)

    @classmethod
    def _conflict(cls, result: IngestResult, p: _Pending, index: int | None) -> None:
        result.conflicts += 1
        where = f"entry {index}" if index is not None else "an earlier span of this request"
        cls._reject(result, f"span {p.span_id.hex()}: conflict: this span id was already logged ({where}) with other "
                            "attributes; the logged entry is kept, not overwritten")

    def _log_generations(self, pending: list[_Pending], result: IngestResult, append=None) -> None:
        if not pending:
            return
        append = append or self._append_generations
        unique: dict[tuple[str, bytes], _Pending] = {}
        for p in pending:
            first = unique.get((p.deployment, p.key))
            if first is None:
                unique[(p.deployment, p.key)] = p
            elif p.from_span and first.from_span and isinstance(p.record, genai.GenAIRecord) \
                    and p.seen_keys()[1] != first.seen_keys()[1]:
                self._conflict(result, p, None)
            else:
                result.duplicates += 1
        for attempt in (0, 1):
            fresh, late = self._not_yet_ingested(list(unique.values()), result if attempt == 0 else None)
            if late:  # the operation is logged from its details record: the span adds what that entry lacks
                late_span_content(self, late, result)
            if not fresh:
                return
            try:
                append(fresh, result)
                return
            except StorageConflict:
                if attempt:  # a concurrent request logged some of them meanwhile, twice over: give up on this batch
                    raise
                unique = {(p.deployment, p.key): p for p in fresh}

    def _not_yet_ingested(self, items: list[_Pending], result: IngestResult | None):
        """``(not yet logged, [(logged, its index)])``; the fresh ones learn their content part logged before them."""
        by_dep: dict[str, list[_Pending]] = {}
        for p in items:
            by_dep.setdefault(p.deployment, []).append(p)
        fresh, late = [], []
        for dep, ps in by_dep.items():
            spans = [p for p in ps if p.from_span and isinstance(p.record, genai.GenAIRecord)]
            is_span = {id(p) for p in spans}
            known = self.ledger.store.ingested(dep, [k for p in ps for k in (p.key, b"content" + p.key)]
                                               + [k for p in spans for k in p.seen_keys()])
            # content parts logged before their span: which of input and output they hold
            parts = self.ledger.store.ingested(dep, [k for p in ps if b"content" + p.key in known and p.key not in known
                                                     for k in part_keys(p.key)])
            for p in ps:
                if p.key in known:
                    if result is None:
                        continue
                    seen, same = p.seen_keys() if id(p) in is_span else (None, None)
                    if same is not None and same in known:
                        result.duplicates += 1  # this very span, resent
                    elif seen is not None and seen in known:
                        self._conflict(result, p, known[p.key])  # this span id, resent with other attributes
                    elif id(p) in is_span:  # the operation was logged from its details record: the span adds what it lacked
                        late.append((p, known[p.key]))
                    else:
                        result.duplicates += 1
                else:
                    has_input, has_output = part_keys(p.key)
                    linked = sorted({i for i in (known.get(b"content" + p.key), parts.get(has_input),
                                                 parts.get(has_output)) if i is not None})
                    p.content = linked[0] if len(linked) == 1 else (linked or None)
                    if isinstance(p.record, genai.GenAIRecord):  # content already in a part is not logged again
                        p.record.prompt = None if has_input in parts else p.record.prompt
                        p.record.output = None if has_output in parts else p.record.output
                    fresh.append(p)
        return fresh, late

    def _append_generations(self, items: list[_Pending], result: IngestResult) -> None:
        now = utc_now()
        salts = fresh_salts(2 * len(items))
        entries: list[Entry] = []
        private: list[PrivateValue] = []
        placed: list[tuple[_Pending, RegisteredModel | None]] = []
        visibility: dict[str, str] = {}
        resolved: dict[tuple, RegisteredModel | None] = {}
        for p in items:
            rec = p.record
            names = (rec.request_model, rec.response_model, rec.fingerprint)
            if names not in resolved:
                resolved[names] = self.models.resolve(rec.request_model, rec.response_model, fingerprint=rec.fingerprint)
            model = resolved[names]
            if p.deployment not in visibility:
                visibility[p.deployment] = self.deployments.get(p.deployment).visibility
            pos = len(entries)
            tokens = None
            if rec.input_tokens is not None or rec.output_tokens is not None:
                tokens = {"prompt": rec.input_tokens, "output": rec.output_tokens}
            span = {"trace_id": p.trace_id.hex(), "span_id": p.span_id.hex()}
            start, end = nanos_to_time(p.start), nanos_to_time(p.end)
            if start:
                span["start"] = start
            if end:
                span["end"] = end
            try:
                entry, pv = reported_generation(
                    source="otlp", deployment=p.deployment, visibility=visibility[p.deployment], operation=rec.operation,
                    model=model.fingerprint if model else None,
                    reported_model={k: v[:200] for k, v in (("request", rec.request_model), ("response", rec.response_model))
                                    if v},
                    prompt=rec.prompt, output=rec.output, time=now, position=pos, salts=salts[2 * pos: 2 * pos + 2],
                    tokens=tokens, sampling=rec.sampling or None, provider=_short(rec.provider),
                    response_id=_short(rec.response_id, 500), finish_reasons=rec.finish_reasons,
                    conversation=_short(rec.conversation, 500), span=span, service=_short(p.service),
                    convention=rec.convention, content=p.content)
                entries.append(Entry.from_object(entry, checked=True))  # checked by its records builder
            except EntryError as exc:
                self._reject(result, f"span {p.span_id.hex()}: cannot be logged: {exc}")
                continue
            private.extend(pv)  # built with position = this entry's place in the batch
            placed.append((p, model))
        if not entries:
            return
        rows: list[tuple[str, bytes, int]] = []

        def within(tx, first: int) -> None:
            tx.put_ingested([(p.deployment, key, first + k) for k, (p, _) in enumerate(placed)
                             for key in ((p.key, *p.seen_keys()) if p.from_span and isinstance(p.record, genai.GenAIRecord)
                                         else (p.key,))])

        with self.lock:
            appended = self.ledger.append(entries, private, within=within)
        indexes = list(appended.indexes)
        result.logged.extend(indexes)
        rows = [(p.deployment, p.key, i) for (p, _), i in zip(placed, indexes)]
        self._findings_after(placed, indexes, rows, result)

    # ------------------------------------------------------------------ findings
    def _refresh_raised(self) -> None:
        size = self.ledger.size
        for _, _, data in self.ledger.entries_of_types(("finding",), self._findings_upto, size):
            obj = json.loads(data)
            if obj.get("check") in ("unregistered-model", "model-not-active"):
                ev = obj.get("evidence") or {}
                self._raised.add((obj.get("check"), obj.get("deployment"), ev.get("reported_model") or obj.get("model")))
        self._findings_upto = size

    def _findings_after(self, placed, indexes: list[int], rows, result: IngestResult) -> None:
        """Unregistered or inactive models and the spans' evaluations, as findings in a second batch (they name the
        generations' indexes, known only now)."""
        objs: list[dict] = []
        private: list[PrivateValue] = []
        self._refresh_raised()
        now = utc_now()
        for (p, model), index in zip(placed, indexes):
            rec = p.record
            if model is None:
                name = rec.request_model or rec.response_model
                key = ("unregistered-model", p.deployment, name)
                if key not in self._raised:
                    self._raised.add(key)
                    objs.append(_finding(now, "unregistered-model", p.deployment, None, "monitor", "monitor", "alert", "medium",
                                         {"reported_model": name, "generation": index, "source": "otlp",
                                          "note": "a span named a model that is not registered on this log; its "
                                                  "generations are logged without a model fingerprint"}))
            elif model.status != "active":
                key = ("model-not-active", p.deployment, model.fingerprint)
                if key not in self._raised:
                    self._raised.add(key)
                    objs.append(_finding(now, "model-not-active", p.deployment, model.fingerprint, "monitor", "monitor",
                                         "alert", "high", {"status": model.status, "generation": index, "source": "otlp",
                                                           "note": "the application reported a generation of a model that"
                                                                   f" is {model.status} on this log"}))
            for ev in rec.evaluations:
                obj, pv = _evaluation_finding(now, ev, p.deployment, model, index, p.trace_id, p.span_id, len(objs))
                objs.append(obj)
                private.extend(pv)
        if objs:
            with self.lock:
                done = self.ledger.append(objs, private)
            result.findings.extend(done.indexes)

    # ------------------------------------------------------------------ logs
    def ingest_logs(self, request, principal: Principal) -> IngestResult:
        """Log what an ``ExportLogsServiceRequest`` carries for oversight: ``gen_ai.evaluation.result`` events as
        findings linked to their generation; ``gen_ai.client.inference.operation.details`` events and the older
        per-message events (``genai.CONTENT_EVENTS``) as their span's generation or its content, whichever arrives first
        (``glasslog.ingest.content``). Other log records are not logged (counted as skipped).

        Raises:
            AccessError: the caller is not an operator.
        """
        if principal.role != "operator":
            raise AccessError(f"role {principal.role} may not send telemetry; it needs an operator key")
        result = IngestResult()
        resource_deployments: dict[int, tuple[str | None, str | None]] = {}
        evaluations: list[tuple[str, bytes, genai.Evaluation, bytes, bytes]] = []
        groups: dict[tuple[str, bytes], ContentGroup] = {}
        for lv in iter_log_records(request):
            content = lv.event_name == DETAILS_EVENT or lv.event_name in genai.CONTENT_EVENTS
            if not content and lv.event_name != "gen_ai.evaluation.result":
                key = lv.event_name or "log records without an event name"
                result.skipped[key] = result.skipped.get(key, 0) + 1
                continue
            if lv.resource_index not in resource_deployments:
                resource_deployments[lv.resource_index] = self._deployment(principal, lv.resource)
            deployment, problem = resource_deployments[lv.resource_index]
            where = f"log record {lv.event_name} (span {lv.span_id.hex() or 'none'})"
            if deployment is None:
                self._reject(result, f"{where}: {problem}")
                continue
            attrs = dict(lv.attrs)
            if isinstance(lv.body, dict):
                for k, v in lv.body.items():
                    attrs.setdefault(k, v)
            if content:
                bad = valid_ids(lv.trace_id, lv.span_id)
                if bad:
                    self._reject(result, f"{where}: {bad} (content is logged with its span)")
                    continue
                group = groups.get((deployment, span_key(lv.trace_id, lv.span_id)))
                if group is None:
                    group = groups[(deployment, span_key(lv.trace_id, lv.span_id))] = ContentGroup(
                        deployment, lv.trace_id, lv.span_id, lv.resource)
                if lv.event_name == DETAILS_EVENT:
                    group.details.append((record_key(lv, attrs), attrs, lv.time))
                else:
                    group.events.append((record_key(lv, attrs), lv.event_name, attrs))
                continue
            ev = genai.evaluation_from(attrs)
            if ev is None:
                self._reject(result, f"{where}: gen_ai.evaluation.name is missing")
                continue
            evaluations.append((deployment, record_key(lv, attrs), ev, lv.trace_id, lv.span_id))
        log_content(self, list(groups.values()), result)
        self._log_evaluations(evaluations, result)
        return result

    def _log_evaluations(self, evaluations, result: IngestResult) -> None:
        unique = {}
        for item in evaluations:
            if (item[0], item[1]) in unique:
                result.duplicates += 1
            else:
                unique[(item[0], item[1])] = item
        items = list(unique.values())
        known: dict[str, dict[bytes, int]] = {}
        for dep in {i[0] for i in items}:
            ks = [i[1] for i in items if i[0] == dep] + [span_key(i[3], i[4]) for i in items if i[0] == dep]
            known[dep] = self.ledger.store.ingested(dep, ks)
        objs, private, keys = [], [], []
        now = utc_now()
        for dep, key, ev, trace_id, span_id in items:
            if key in known[dep]:
                result.duplicates += 1
                continue
            generation = known[dep].get(span_key(trace_id, span_id)) if trace_id and span_id else None
            fp = None
            if generation is not None:
                fp = json.loads(self.ledger.entry(generation)).get("model")
            model = self.registry.get(fp) if fp else None
            obj, pv = _evaluation_finding(now, ev, dep, model, generation, trace_id, span_id, len(objs))
            objs.append(obj)
            private.extend(pv)
            keys.append((dep, key))
        if not objs:
            return

        def within(tx, first: int) -> None:
            tx.put_ingested([(dep, key, first + k) for k, (dep, key) in enumerate(keys)])

        with self.lock:
            done = self.ledger.append(objs, private, within=within)
        result.findings.extend(done.indexes)


def _short(value: str | None, limit: int = 200) -> str | None:
    if value is None:
        return None
    value = value[:limit] if value.isprintable() else "".join(c for c in value if c.isprintable())[:limit]
    return value or None


def _finding(now: str, check: str, deployment: str, model: str | None, source: str, by_role: str, verdict: str,
             severity: str, evidence: dict, statistic: str = "count", value: float | None = None) -> dict:
    return finding_entry(time=now, source=source, check=check, deployment=deployment, statistic=statistic,
                         verdict=verdict, severity=severity, by_role=by_role, evidence=evidence, model=model, value=value)


def _verdict(ev: genai.Evaluation) -> tuple[str, str]:
    if ev.error:
        return "insufficient-data", "info"
    label = (ev.label or "").strip().lower()
    if label in FAILING_LABELS:
        return "alert", "medium"
    if label in PASSING_LABELS:
        return "ok", "info"
    return "insufficient-data", "info"


def _evaluation_finding(now: str, ev: genai.Evaluation, deployment: str, model: RegisteredModel | None,
                        generation: int | None, trace_id: bytes, span_id: bytes, position: int):
    verdict, severity = _verdict(ev)
    evidence: dict[str, Any] = {"evaluation": ev.name, "generation": generation, "convention": ev.convention}
    if trace_id and span_id:
        evidence["span"] = {"trace_id": trace_id.hex(), "span_id": span_id.hex()}
    if ev.label is not None:
        evidence["label"] = _short(ev.label)
    if ev.response_id:
        evidence["response_id"] = _short(ev.response_id, 500)
    if ev.error:
        evidence["error"] = _short(ev.error)
    private = []
    if ev.explanation:
        c, s, v = commit({"explanation": ev.explanation})
        evidence["explanation"] = c
        private.append(PrivateValue(position, "explanation", c, s, v))
    obj = _finding(now, f"evaluation/{_short(ev.name, 180)}", deployment, model.fingerprint if model else None,
                   "application", "operator", verdict, severity, evidence,
                   statistic="score" if ev.score is not None else "label", value=ev.score)
    return obj, private
