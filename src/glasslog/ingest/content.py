"""A span's messages sent as OTLP log records, attached to its generation whichever arrives first.

Current GenAI conventions can send a generation's content apart from its span: the
``gen_ai.client.inference.operation.details`` event (the whole operation, content included), or, before it, one
event per message (``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
``gen_ai.tool.message``, ``gen_ai.choice``; ``gen_ai.content.prompt`` / ``gen_ai.content.completion``), each a log
record on ``POST /v1/logs`` carrying the span's trace and span id. The span and its log records travel in separate
exports (an SDK batches spans and logs apart: the log records usually arrive first), may be resent, and may reach two
server workers at once.

The rule, per deployment and span (keys in the ``ingested`` side table, written in the same transaction as the
entries they name, so a concurrent request conflicts instead of logging twice, and retries):

- **The operation's entry** is keyed by trace and span id. It is logged from the span, or from a details record if
  that arrives first (the details event names the model and operation); the later one is a duplicate, except for
  content the entry lacks (below).
- **Content that finds the operation's entry on the log** and brings a part that entry did not capture (input or
  output) is logged as a content part: a reported ``generation`` entry with ``part: "content"``, ``generation``
  (the operation entry's index), the operation's model and names, and only the missing parts (committed as any
  generation's content: the prompt always, the output public or committed by the deployment's visibility). Parts
  the entry already holds are duplicates, not logged again.
- **Content that arrives before its operation** (message events, which name no model) is logged as a content part
  without ``generation``; the span's entry, logged later, names it (``content``). The first such part is what the
  operation names; every part names the span (``span.trace_id``, ``span.span_id``), which is how a reader joins them.
- Each message record is keyed by its own digest (trace, span, time, event name, attributes), so a resent export is
  logged once, and records of one span split over two exports are both kept. A span's input and its output are each
  logged at most once, on its operation's entry or in one content part (keys ``part_keys``): content arriving again
  in another form (message events, then a details record, then the span with content) adds only what is missing.

Nothing is dropped for arriving in the "wrong" order, and nothing is logged twice. Self-reported, as everything on
OTLP: glasslog checks the form, not that the model wrote the text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ledger import Entry, EntryError
from ..ledger.commitments import fresh_salts
from ..records import utc_now
from ..storage import StorageConflict
from . import genai

if TYPE_CHECKING:
    from .ingestor import Ingestor, IngestResult
    from .otlp import LogView

__all__ = ["ContentGroup", "content_marker", "part_keys", "record_key", "log_content", "late_span_content"]

DETAILS_EVENT = "gen_ai.client.inference.operation.details"


def content_marker(trace_id: bytes, span_id: bytes) -> bytes:
    """The ``ingested`` key naming a span's first content part logged before its operation (31 bytes)."""
    return b"content" + trace_id + span_id


def part_keys(key: bytes) -> tuple[bytes, bytes]:
    """The ``ingested`` keys saying a span's input / output is on the log in a content part (``key``: the span's)."""
    return b"content-input" + key, b"content-output" + key


def record_key(lv: LogView, attrs: dict) -> bytes:
    """The ``ingested`` key of one log record: a SHA-256 over its span, time, event name and attributes."""
    return hashlib.sha256(json.dumps([lv.trace_id.hex(), lv.span_id.hex(), lv.time, lv.event_name, genai._plain(attrs)],
                                     sort_keys=True, default=str).encode()).digest()


@dataclass
class ContentGroup:
    """The content records of one span in one request."""

    deployment: str
    trace_id: bytes
    span_id: bytes
    resource: dict
    details: list[tuple[bytes, dict, int]] = field(default_factory=list)  # (record key, attributes, time)
    events: list[tuple[bytes, str, dict]] = field(default_factory=list)  # (record key, event name, attributes)

    @property
    def service(self) -> str | None:
        s = self.resource.get("service.name")
        return s if isinstance(s, str) else None


def log_content(ing: Ingestor, groups: list[ContentGroup], result: IngestResult) -> None:
    """Log the content records of a request (see module docstring); a concurrent write of the same span is retried
    once against the log as it then is.

    Raises:
        StorageConflict: the second attempt conflicted too (the caller answers 503: a resend logs the rest).
    """
    if not groups:
        return
    for attempt in (0, 1):
        try:
            _log_once(ing, groups, result)
            return
        except StorageConflict:
            if attempt:
                raise


def _log_once(ing: Ingestor, groups: list[ContentGroup], result: IngestResult) -> None:
    from .ingestor import _Pending, span_key

    known: dict[str, dict[bytes, int]] = {}
    for dep in {g.deployment for g in groups}:
        keys = []
        for g in groups:
            if g.deployment == dep:
                keys += [span_key(g.trace_id, g.span_id), content_marker(g.trace_id, g.span_id),
                         *part_keys(span_key(g.trace_id, g.span_id))]
                keys += [k for k, _, _ in g.details] + [k for k, _, _ in g.events]
        known[dep] = ing.ledger.store.ingested(dep, keys)
    operations: list[_Pending] = []
    parts: list[tuple[ContentGroup, dict | None, list[dict] | None, int | None, dict | None, list[bytes]]] = []
    for g in groups:
        seen = known[g.deployment]
        details = [d for d in g.details if d[0] not in seen]
        events = [e for e in g.events if e[0] not in seen]
        result.duplicates += len(g.details) - len(details) + len(g.events) - len(events)
        if not details and not events:
            continue
        generation = seen.get(span_key(g.trace_id, g.span_id))
        where = f"log records of span {g.span_id.hex()}"
        try:
            if details and generation is None:  # the operation itself, first: logged as its span would be
                _, attrs, time = details[0]
                record = genai.map_span(attrs, [(name, a) for _, name, a in events], g.resource)
                operations.append(_Pending(g.deployment, span_key(g.trace_id, g.span_id), record, g.service, g.trace_id,
                                           g.span_id, time, time, from_span=False))
                continue
            prompt, output = _content(details, events, g.resource)
        except genai.NotGenAI as exc:
            result.skipped[exc.operation or DETAILS_EVENT] = result.skipped.get(exc.operation or DETAILS_EVENT, 0) + 1
            continue
        except genai.MissingAttribute as exc:
            ing._reject(result, f"{where}: {exc}")
            continue
        op_entry = json.loads(ing.ledger.entry(generation)) if generation is not None else None
        if op_entry is not None:  # only what the operation's entry lacks
            captured = op_entry.get("captured") or {}
            prompt = None if captured.get("input") else prompt
            output = None if captured.get("output") else output
        has_input, has_output = part_keys(span_key(g.trace_id, g.span_id))
        prompt = None if has_input in seen else prompt  # and not what an earlier content part holds
        output = None if has_output in seen else output
        keys = [k for k, _, _ in details] + [k for k, _, _ in events]
        if prompt is None and not output:
            result.duplicates += len(keys)
            continue
        marker = None if generation is not None or content_marker(g.trace_id, g.span_id) in seen else \
            content_marker(g.trace_id, g.span_id)
        keys += ([marker] if marker else []) + ([has_input] if prompt is not None else []) + ([has_output] if output else [])
        parts.append((g, prompt, output, generation, op_entry, keys))
    if operations:
        ing._log_generations(operations, result)
    if parts:
        _append_parts(ing, parts, result)


def _content(details: list[tuple[bytes, dict, int]], events: list[tuple[bytes, str, dict]],
             resource: dict) -> tuple[dict | None, list[dict] | None]:
    prompt = output = None
    for _, attrs, _ in details:
        rec = genai.map_span(attrs, [], resource)
        prompt = prompt or rec.prompt
        output = output or rec.output
    if events:
        ev_prompt, ev_output = genai.content_from_events([(name, a) for _, name, a in events])
        prompt = prompt or ev_prompt
        output = output or ev_output
    return prompt, output


def _append_parts(ing: Ingestor, parts, result: IngestResult) -> None:
    from ..capture.generator import reported_generation

    now = utc_now()
    salts = fresh_salts(2 * len(parts))
    entries, private, placed = [], [], []
    for g, prompt, output, generation, op_entry, keys, *extra in parts:
        pos = len(entries)
        op = op_entry or {}
        span: dict[str, Any] = {"trace_id": g.trace_id.hex(), "span_id": g.span_id.hex()}
        fields = {"part": "content", "convention": "gen_ai", **(extra[0] if extra else {})}  # a span part: its own fields
        span.update(fields.pop("span_times", {}))
        try:
            obj, pv = reported_generation(
                source="otlp", deployment=g.deployment, visibility=ing.deployments.get(g.deployment).visibility,
                operation=op.get("operation"), model=op.get("model"), reported_model=op.get("reported_model"),
                prompt=prompt, output=output, time=now, position=pos, salts=salts[2 * pos: 2 * pos + 2], span=span,
                service=g.service, generation=generation, **fields)
            entries.append(Entry.from_object(obj, checked=True))  # built (and checked) by its records builder
        except EntryError as exc:
            ing._reject(result, f"log records of span {g.span_id.hex()}: cannot be logged: {exc}")
            continue
        private.extend(pv)
        placed.append((g.deployment, keys))

    if not entries:
        return

    def within(tx, first: int) -> None:
        tx.put_ingested([(dep, key, first + k) for k, (dep, keys) in enumerate(placed) for key in keys])

    with ing.lock:
        appended = ing.ledger.append(entries, private, within=within)
    result.logged.extend(appended.indexes)


def late_span_content(ing: Ingestor, items: list, result: IngestResult) -> None:
    """Spans whose operation is already on the log, logged from a details record that came first: a ``part: "span"``
    entry naming the operation's entry, with what that entry lacks (token counts, response id, finish reasons,
    sampling, provider, conversation, the span's start and end, content not held by the entry or an earlier part),
    once: keyed by the span's ``seen_keys`` (a resend is a duplicate, a different resend a conflict) and
    ``b"spancontent"`` + trace and span id.

    Args:
        items: ``[(pending span, index of its operation's entry)]``.
    """
    from .ingestor import _short, nanos_to_time

    by_dep: dict[str, list] = {}
    for p, index in items:
        by_dep.setdefault(p.deployment, []).append((p, index))
    parts = []
    for dep, ps in by_dep.items():
        known = ing.ledger.store.ingested(dep, [k for p, _ in ps for k in (b"spancontent" + p.key, *part_keys(p.key))])
        for p, index in ps:
            key = b"spancontent" + p.key
            if key in known:  # a span part logged before spans were digested (seen_keys): a resend
                result.duplicates += 1
                continue
            has_input, has_output = part_keys(p.key)
            op_entry = json.loads(ing.ledger.entry(index))
            captured = op_entry.get("captured") or {}
            rec = p.record
            prompt = None if captured.get("input") or has_input in known else rec.prompt
            output = None if captured.get("output") or has_output in known else rec.output
            fields: dict[str, Any] = {"part": "span", "convention": rec.convention}
            tokens = {k: v for k, v in (("prompt", rec.input_tokens), ("output", rec.output_tokens)) if v is not None}
            had = op_entry.get("tokens") or {}
            tokens = {k: v for k, v in tokens.items() if had.get(k) is None}
            for name, value in (("tokens", tokens or None), ("response_id", _short(rec.response_id, 500)),
                                ("finish_reasons", rec.finish_reasons), ("sampling", rec.sampling or None),
                                ("provider", _short(rec.provider)), ("conversation", _short(rec.conversation, 500))):
                if value is not None and op_entry.get(name) is None:
                    fields[name] = value
            times = {k: t for k, t in (("start", nanos_to_time(p.start)), ("end", nanos_to_time(p.end))) if t}
            if times:
                fields["span_times"] = times
            if prompt is None and not output and len(fields) == 2 and not times:
                result.duplicates += 1  # the span adds nothing the entry lacks
                continue
            group = ContentGroup(dep, p.trace_id, p.span_id, {"service.name": p.service} if p.service else {})
            keys = [key, *p.seen_keys()] + ([has_input] if prompt is not None else []) + ([has_output] if output else [])
            parts.append((group, prompt, output, index, op_entry, keys, fields))
    if parts:
        _append_parts(ing, parts, result)
