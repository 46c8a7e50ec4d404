"""Reported ``embeddings`` operations as ``decision`` entries, where the deployment declares it.

A deployment declared with ``embeddings: decision`` (``glasslog deployments declare NAME --embeddings decision``,
``POST /v1/deployments``) logs each embeddings span its applications report as one ``decision`` entry; any other
deployment skips them (not logged, not refused: counted in the OTLP response, which says how to opt in).

The entry (``source: "otlp"``, ``operation: "embeddings"``):

| field | what |
|---|---|
| ``model`` | the registered model the reported name resolved to (fingerprint attribute, ``name:version`` or name, as for generations); a decision names a registered model, so a span naming an unregistered one is rejected with the reason |
| ``input`` | commitment to ``{"texts": [...]}`` when the application captured the input, else to ``{"captured": false, "span": ...}`` (``captured.input`` says which) |
| ``output`` / ``output_commitment`` | ``{"embeddings": n, "dimensions": d}`` (either may be null), public or committed as the deployment's visibility says; the vectors themselves are never logged |
| ``reported_model``, ``provider``, ``tokens``, ``span``, ``service`` | as reported |

Duplicates are keyed by trace and span id like generations. A suspended or withdrawn model's span is logged and
raises one ``model-not-active`` finding per deployment and model, as for generations. Self-reported, like everything
that arrives by OTLP: glasslog did not run the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ledger import Entry, EntryError, PrivateValue, commit, utc_now
from ..ledger.commitments import fresh_salts
from ..records import ABSENT, reported_decision_entry
from . import genai

if TYPE_CHECKING:
    from .ingestor import Ingestor, IngestResult, _Pending

__all__ = ["append_embeddings", "embeddings_entry", "queue_embeddings"]


def embeddings_entry(p: _Pending, fingerprint: str, visibility: str, now: str, position: int,
                     salts: list[bytes]) -> tuple[dict, list[PrivateValue]]:
    """The ``decision`` entry of one reported embeddings operation and its private values (see module docstring).

    Args:
        p: the pending span (``record`` an ``EmbeddingsRecord``).
        fingerprint: the registered model's fingerprint.
        visibility: the deployment's visibility (``public-service``: output in the clear).
        position: the entry's place in its batch; salts: two fresh salts.
    """
    from .ingestor import _short, nanos_to_time

    rec = p.record
    span: dict[str, Any] = {"trace_id": p.trace_id.hex(), "span_id": p.span_id.hex()}
    start, end = nanos_to_time(p.start), nanos_to_time(p.end)
    if start:
        span["start"] = start
    if end:
        span["end"] = end
    captured = rec.texts is not None
    value = {"texts": rec.texts} if captured else {"captured": False, "span": span}
    c_in, s_in, v_in = commit(value, salts[0])
    private = [PrivateValue(position, "input", c_in, s_in, v_in)]
    output = {"embeddings": rec.count, "dimensions": rec.dimensions}
    public, c_out = ABSENT, None
    if visibility == "public-service":
        public = output
    else:
        c_out, s_out, v_out = commit(output, salts[1])
        private.append(PrivateValue(position, "output", c_out, s_out, v_out))
    entry = reported_decision_entry(
        model=fingerprint, deployment=p.deployment, time=now, input=c_in, source="otlp", operation="embeddings",
        captured={"input": captured},
        reported_model={k: v[:200] for k, v in (("request", rec.request_model), ("response", rec.response_model)) if v},
        span=span, convention=rec.convention, output=public, output_commitment=c_out,
        provider=_short(rec.provider) or None, service=_short(p.service) or None,
        encoding_formats=rec.encoding_formats or None,
        tokens=None if rec.input_tokens is None else {"input": rec.input_tokens})
    return entry, private


def append_embeddings(ing: Ingestor, items: list[_Pending], result: IngestResult) -> None:
    """Append the decisions of not-yet-logged embeddings spans in one batch (their ``ingested`` keys in the same
    transaction), then one ``model-not-active`` finding per deployment and inactive model.

    Raises:
        StorageConflict: a concurrent request logged one of them meanwhile (the caller retries without it).
    """
    from .ingestor import _finding

    now = utc_now()
    salts = fresh_salts(2 * len(items))
    entries: list[Entry] = []
    private: list[PrivateValue] = []
    placed = []
    for p in items:
        rec = p.record
        model = ing.models.resolve(rec.request_model, rec.response_model, fingerprint=rec.fingerprint)
        where = f"span {p.span_id.hex()} (embeddings)"
        if model is None:
            ing._reject(result, f"{where}: model {rec.request_model or rec.response_model!r} is not registered; an "
                                "embeddings decision names a registered model (glasslog models register)")
            continue
        pos = len(entries)
        try:
            obj, pv = embeddings_entry(p, model.fingerprint, ing.deployments.get(p.deployment).visibility, now, pos,
                                       salts[2 * pos: 2 * pos + 2])
            entries.append(Entry.from_object(obj, checked=True))  # built (and checked) by its records builder
        except EntryError as exc:
            ing._reject(result, f"{where}: cannot be logged: {exc}")
            continue
        private.extend(pv)
        placed.append((p, model))
    if not entries:
        return

    def within(tx, first: int) -> None:
        tx.put_ingested([(p.deployment, p.key, first + k) for k, (p, _) in enumerate(placed)])

    with ing.lock:
        appended = ing.ledger.append(entries, private, within=within)
    indexes = list(appended.indexes)
    result.logged.extend(indexes)
    ing._refresh_raised()
    findings = []
    for (p, model), index in zip(placed, indexes):
        key = ("model-not-active", p.deployment, model.fingerprint)
        if model.status != "active" and key not in ing._raised:
            ing._raised.add(key)
            findings.append(_finding(now, "model-not-active", p.deployment, model.fingerprint, "monitor", "monitor",
                                     "alert", "high", {"status": model.status, "decision": index, "source": "otlp",
                                                       "note": "the application reported an embeddings operation of a"
                                                               f" model that is {model.status} on this log"}))
    if findings:
        with ing.lock:
            result.findings.extend(ing.ledger.append(findings).indexes)


def queue_embeddings(ing: Ingestor, sv, deployment: tuple[str | None, str | None], out: list[_Pending],
                     result: IngestResult) -> bool:
    """Queue an embeddings span (``glasslog.ingest.otlp.SpanView``) as a decision if its deployment (``(name,
    problem)``) declares ``embeddings: decision``.

    Returns:
        True if it was queued or rejected; False: skip it (not logged; the response says how to opt in).
    """
    from .identity import span_key, valid_ids
    from .ingestor import _Pending

    name, _ = deployment
    if name is None or ing.deployments.get(name).embeddings != "decision":
        result.hints.add(f"embeddings are not logged in deployment {name!r}: declare one with --embeddings decision"
                         " to log them as decisions" if name else "embeddings are logged only in a declared deployment")
        return False
    where = f"span {sv.span_id.hex() or '?'} ({sv.name or 'unnamed'})"
    bad = valid_ids(sv.trace_id, sv.span_id)
    try:
        if bad:
            raise genai.MissingAttribute(bad)
        record = genai.map_embeddings(sv.attrs, sv.resource)
    except genai.MissingAttribute as exc:
        ing._reject(result, f"{where}: {exc}")
        return True
    service = sv.resource.get("service.name")
    out.append(_Pending(name, span_key(sv.trace_id, sv.span_id), record, service if isinstance(service, str) else None,
                        sv.trace_id, sv.span_id, sv.start, sv.end))
    return True
