"""What a GenAI span says, mapped onto one record whatever convention the application's instrumentation follows.

Three families of names are read (the first one present wins, in this order):

| what | OpenTelemetry GenAI (current) | GenAI v1.36 and before, OpenLLMetry | OpenInference |
|---|---|---|---|
| operation | ``gen_ai.operation.name`` | same; ``llm.request.type`` | ``openinference.span.kind`` = ``LLM`` |
| provider | ``gen_ai.provider.name`` | ``gen_ai.system`` | ``llm.provider``, ``llm.system`` |
| requested model | ``gen_ai.request.model`` | same | ``llm.model_name`` |
| response model | ``gen_ai.response.model`` | same | ``llm.model_name`` |
| response id | ``gen_ai.response.id`` | same | |
| finish reasons | ``gen_ai.response.finish_reasons`` | ``gen_ai.completion.N.finish_reason`` | |
| token usage | ``gen_ai.usage.input_tokens`` / ``output_tokens`` | ``gen_ai.usage.prompt_tokens`` / ``completion_tokens`` | ``llm.token_count.prompt`` / ``completion`` |
| sampling | ``gen_ai.request.temperature``, ``top_p``, ``top_k``, ``max_tokens``, ``seed``, ``frequency_penalty``, ``presence_penalty``, ``stop_sequences``, ``choice.count`` | same | ``llm.invocation_parameters`` (JSON) |
| conversation | ``gen_ai.conversation.id`` | | ``session.id`` |
| input | ``gen_ai.system_instructions`` + ``gen_ai.input.messages`` | events ``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message``; event ``gen_ai.content.prompt`` (``gen_ai.prompt``); ``gen_ai.prompt.N.role`` / ``.content`` | ``llm.input_messages.N.message.role`` / ``.content`` (or ``.contents.M.message_content.text``), ``llm.prompts``, else ``input.value`` |
| output | ``gen_ai.output.messages`` | event ``gen_ai.choice``; event ``gen_ai.content.completion`` (``gen_ai.completion``); ``gen_ai.completion.N.role`` / ``.content`` | ``llm.output_messages.N.message.role`` / ``.content``, else ``output.value`` |
| evaluations | event ``gen_ai.evaluation.result`` (``gen_ai.evaluation.name``, ``score.value``, ``score.label``, ``explanation``) | | ``evaluations.N.evaluation.*`` / ``annotations.N.annotation.*`` (``name``, ``score``, ``label``, ``explanation``) |

Messages become ``{"role", "content"}`` with text content where every part is
text, else ``{"role", "parts"}`` with the parts as reported (tool calls,
images by reference, ...). Content is only what the application captured:
instrumentations leave it out unless told to record it (e.g.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), and then the record
has no input or output, and the log says so.

Operations: ``chat``, ``text_completion`` and ``generate_content`` are
generations; ``embeddings`` are mapped by ``map_embeddings`` (logged as
decisions where the deployment declares it); anything else (``invoke_agent``,
``execute_tool``, an unknown name, an OpenInference ``CHAIN`` or ``TOOL``
span) is not a generation. Spans with no GenAI or OpenInference attribute at
all are not GenAI spans.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GENERATION_OPERATIONS", "GenAIRecord", "Evaluation", "NotGenAI", "classify", "map_span", "evaluation_from",
           "MissingAttribute", "EmbeddingsRecord", "map_embeddings", "CONTENT_EVENTS", "content_from_events"]

GENERATION_OPERATIONS = ("chat", "text_completion", "generate_content")
"""``gen_ai.operation.name`` values logged as ``generation`` entries."""

MAX_TEXT = 1_000_000
"""Longest attribute text read, in characters (longer texts are refused: the entry would not fit anyway)."""


class MissingAttribute(ValueError):
    """A GenAI span lacks an attribute a generation needs (the message names it)."""


@dataclass
class Evaluation:
    """One evaluation of a generation, as the application reported it."""

    name: str
    score: float | None = None
    label: str | None = None
    explanation: str | None = None
    response_id: str | None = None
    error: str | None = None
    convention: str = "gen_ai"


@dataclass
class GenAIRecord:
    """One GenAI operation as reported (see module docstring)."""

    operation: str
    convention: str
    request_model: str | None = None
    response_model: str | None = None
    provider: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    conversation: str | None = None
    prompt: dict | None = None
    output: list[dict] | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    fingerprint: str | None = None


class NotGenAI(Exception):
    """The span is not a GenAI generation; ``reason`` says what it is."""

    def __init__(self, reason: str, operation: str | None = None):
        super().__init__(reason)
        self.reason, self.operation = reason, operation


def _str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        if len(v) > MAX_TEXT:
            raise MissingAttribute(f"an attribute text is {len(v)} characters; at most {MAX_TEXT} are read")
        return v
    if isinstance(v, (bytes, bytearray)):
        return None
    return str(v)


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v if 0 <= v < 2**53 else None
    if isinstance(v, float) and v.is_integer() and 0 <= v < 2**53:
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"[0-9]{1,15}", v):
        return int(v)
    return None


def _count(attrs: dict, *names: str) -> int | None:
    """A token count from the first of ``names`` present: a non-negative integer (or its decimal text).

    Raises:
        MissingAttribute: the count is something else ("lots", -5, 2.5): the span is rejected, naming the attribute
            (a wrong count is not silently dropped).
    """
    for n in names:
        v = attrs.get(n)
        if v is not None and v != "":
            count = _int(v)
            if count is None:
                raise MissingAttribute(f"{n} must be a non-negative integer token count, got {str(v)[:40]!r}")
            return count
    return None


def _num(v: Any) -> float | int | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return v if v == v and abs(v) < 1e15 else None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and abs(f) < 1e15 else None


def _json(v: Any) -> Any:
    """A structured attribute: given as JSON text (most SDKs) or as an OTLP array / kvlist value."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except (json.JSONDecodeError, RecursionError):
            return v
    return v


def _first(attrs: dict, *names: str) -> Any:
    for n in names:
        v = attrs.get(n)
        if v is not None and v != "":
            return v
    return None


def _indexed(attrs: dict, prefix: str) -> dict[int, dict[str, Any]]:
    """``prefix.N.rest`` attributes as ``{N: {rest: value}}`` (OpenLLMetry and OpenInference flatten lists this way)."""
    first = prefix + ".0."
    if not any(k.startswith(first) for k in attrs):
        return {}  # lists are flattened from index 0: no item 0, no list (most spans carry none of these families)
    out: dict[int, dict[str, Any]] = {}
    plen = len(prefix) + 1
    for k, v in attrs.items():
        if k.startswith(prefix + "."):
            idx, _, rest = k[plen:].partition(".")
            if idx.isdigit() and rest:
                out.setdefault(int(idx), {})[rest] = v
    return dict(sorted(out.items()))


def _message(role: Any, content: Any = None, parts: Any = None, **extra: Any) -> dict:
    """A normalised message: text content where every part is text, else the parts as reported."""
    msg: dict[str, Any] = {"role": _str(role) or "user"}
    if parts is not None and not isinstance(parts, list):
        parts = [parts]
    if parts is not None:
        texts = [p.get("content", p.get("text")) for p in parts if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) == len(parts) and all(isinstance(t, str) for t in texts):
            msg["content"] = "".join(texts)
        else:
            msg["parts"] = _plain(parts)
    elif isinstance(content, str):
        msg["content"] = content
    elif content is not None:
        content = _json(content)
        if isinstance(content, list):
            return _message(role, parts=[p if isinstance(p, dict) else {"type": "text", "content": str(p)} for p in content],
                            **extra)
        msg["content"] = content if isinstance(content, str) else json.dumps(_plain(content), sort_keys=True)
    for k, v in extra.items():
        if v is not None and v != "" and v != []:
            msg[k] = _plain(v)
    return msg


def _plain(v: Any) -> Any:
    """JSON-ready copy (floats that are not finite become text; bytes become hex)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    return v


def _messages_from_semconv(value: Any) -> list[dict] | None:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` (current conventions): ``[{"role", "parts": [...]}]``."""
    value = _json(value)
    if value is None:
        return None
    if not isinstance(value, list):
        raise MissingAttribute("gen_ai.input.messages / gen_ai.output.messages must be a list of messages")
    out = []
    for m in value:
        if not isinstance(m, dict):
            raise MissingAttribute("a message in gen_ai.*.messages is not an object")
        parts = m.get("parts")
        if type(parts) is list and m.get("content") is None and m.get("name") is None and all(
                type(p) is dict and p.get("type") == "text" and type(p.get("content")) is str for p in parts):
            msg = {"role": str(m.get("role") or "user"), "content": "".join(p["content"] for p in parts)}  # the usual case
            if isinstance(m.get("finish_reason"), str) and m["finish_reason"]:
                msg["finish_reason"] = m["finish_reason"]
            out.append(msg)
            continue
        out.append(_message(m.get("role"), m.get("content"), parts, finish_reason=m.get("finish_reason"),
                            name=m.get("name")))
    return out


def _system_instructions(value: Any) -> list[dict]:
    value = _json(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}]
    return [_message("system", parts=value if isinstance(value, list) else [value])]


_LEGACY_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _legacy_event_messages(events: list[tuple[str, dict]]) -> tuple[list[dict] | None, list[dict] | None]:
    """Input and output messages from span events of the v1.36-and-before conventions."""
    inputs: list[dict] = []
    outputs: list[tuple[int, dict]] = []
    for name, a in events:
        body = a.get("body") if isinstance(a.get("body"), dict) else a
        if name in _LEGACY_EVENTS:
            inputs.append(_message(body.get("role") or _LEGACY_EVENTS[name], body.get("content"),
                                   tool_calls=body.get("tool_calls"), id=body.get("id")))
        elif name == "gen_ai.choice":
            msg = _json(body.get("message")) or {}
            if not isinstance(msg, dict):
                msg = {"content": msg}
            idx = _int(body.get("index")) or 0
            outputs.append((idx, _message(msg.get("role") or "assistant", msg.get("content", body.get("content")),
                                          finish_reason=body.get("finish_reason"), tool_calls=msg.get("tool_calls"))))
        elif name == "gen_ai.content.prompt" and body.get("gen_ai.prompt") is not None:
            inputs.extend(_loose_messages(body["gen_ai.prompt"], "user"))
        elif name == "gen_ai.content.completion" and body.get("gen_ai.completion") is not None:
            outputs.extend(enumerate(_loose_messages(body["gen_ai.completion"], "assistant")))
    return (inputs or None), ([m for _, m in sorted(outputs, key=lambda t: t[0])] or None)


def _loose_messages(value: Any, role: str) -> list[dict]:
    """A prompt or completion given as text or as a JSON list of messages (conventions before v1.28)."""
    value = _json(value)
    if isinstance(value, list):
        return [_message(m.get("role") or role, m.get("content"), m.get("parts")) if isinstance(m, dict)
                else _message(role, str(m)) for m in value]
    if isinstance(value, dict):
        return [_message(value.get("role") or role, value.get("content"), value.get("parts"))]
    return [_message(role, _str(value))]


def _indexed_messages(attrs: dict, prefix: str, role_key: str, content_key: str, default_role: str,
                      contents_prefix: str | None = None) -> list[dict] | None:
    items = _indexed(attrs, prefix)
    if not items:
        return None
    out = []
    for _, m in items.items():
        content = m.get(content_key)
        if content is None and contents_prefix:
            parts = _indexed(m, contents_prefix)
            if parts:
                content = "".join(str(p.get("message_content.text", "")) for p in parts.values())
        out.append(_message(m.get(role_key) or default_role, content,
                            finish_reason=m.get("finish_reason"), tool_calls=m.get("tool_calls")))
    return out


def _value_messages(value: Any, mime: Any, role: str) -> list[dict] | dict | None:
    """OpenInference ``input.value`` / ``output.value``: text, or JSON (a request or response body)."""
    if value is None:
        return None
    if mime == "application/json":
        body = _json(value)
        if isinstance(body, dict):
            if isinstance(body.get("messages"), list):
                return _loose_messages(body["messages"], role)
            if isinstance(body.get("prompt"), str):
                return {"text": body["prompt"]}
            if isinstance(body.get("choices"), list):
                out = []
                for c in body["choices"]:
                    if isinstance(c, dict):
                        msg = c.get("message") if isinstance(c.get("message"), dict) else {"content": c.get("text")}
                        out.append(_message(msg.get("role") or role, msg.get("content"), finish_reason=c.get("finish_reason")))
                return out
    return [_message(role, _str(value) if not isinstance(value, (dict, list)) else json.dumps(_plain(value)))]


def classify(attrs: dict) -> tuple[str, str]:
    """``(operation, convention)`` of a span, or raise ``NotGenAI``."""
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str) and op:
        return op, "gen_ai"
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        k = kind.upper()
        if k == "LLM":
            if "llm.input_messages.0.message.role" in attrs or _first(attrs, "llm.input_messages") is not None:
                return "chat", "openinference"
            if any(key.startswith("llm.prompts") for key in attrs):
                return "text_completion", "openinference"
            return "chat", "openinference"
        if k == "EMBEDDING":
            return "embeddings", "openinference"
        raise NotGenAI(f"an OpenInference {k} span, not a generation", k.lower())
    rtype = attrs.get("llm.request.type")
    if isinstance(rtype, str) and rtype:
        mapped = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}.get(rtype, rtype)
        return mapped, "openllmetry"
    if any(k.startswith("gen_ai.") for k in attrs):
        raise MissingAttribute("gen_ai.operation.name is missing (a span with gen_ai.* attributes must name its operation)")
    raise NotGenAI("not a GenAI span")


def map_span(attrs: dict, events: list[tuple[str, dict]], resource: dict) -> GenAIRecord:
    """Map one GenAI span (attributes, events as ``(name, attributes)``, resource attributes) to a record.

    Raises:
        NotGenAI: not a GenAI span, or a GenAI operation that is not a generation (``reason`` says which).
        MissingAttribute: a generation span without a model name, or with malformed message attributes.
    """
    operation, convention = classify(attrs)
    if operation not in GENERATION_OPERATIONS:
        raise NotGenAI(f"operation {operation!r} is not a generation", operation)
    rec = GenAIRecord(operation, convention)
    rec.request_model = _str(_first(attrs, "gen_ai.request.model", "llm.model_name"))
    rec.response_model = _str(_first(attrs, "gen_ai.response.model", "llm.model_name"))
    if rec.request_model is None and rec.response_model is None:
        raise MissingAttribute("gen_ai.request.model is missing (no requested or response model is named)")
    rec.provider = _str(_first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"))
    rec.response_id = _str(attrs.get("gen_ai.response.id"))
    fr = attrs.get("gen_ai.response.finish_reasons")
    if fr is not None:
        fr = _json(fr)
        rec.finish_reasons = [str(x) for x in fr] if isinstance(fr, list) else [str(fr)]
    rec.input_tokens = _count(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
    rec.output_tokens = _count(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                               "llm.token_count.completion")
    rec.conversation = _str(_first(attrs, "gen_ai.conversation.id", "session.id"))
    rec.fingerprint = _str(_first(attrs, "glasslog.model.fingerprint")) or _str(resource.get("glasslog.model.fingerprint"))
    rec.sampling = _sampling(attrs)
    _content(rec, attrs, events)
    if rec.finish_reasons is None and rec.output:
        reasons = [m["finish_reason"] for m in rec.output if isinstance(m.get("finish_reason"), str)]
        rec.finish_reasons = reasons or None
    rec.evaluations = [e for name, a in events if name == "gen_ai.evaluation.result"
                       for e in [evaluation_from(a)] if e is not None] + _openinference_evaluations(attrs)
    return rec


_SAMPLING = tuple(("gen_ai.request." + name, key, conv) for name, key, conv in (
    ("temperature", "temperature", _num), ("top_p", "top_p", _num), ("top_k", "top_k", _num),
    ("max_tokens", "max_tokens", _int), ("seed", "seed", _int), ("frequency_penalty", "frequency_penalty", _num),
    ("presence_penalty", "presence_penalty", _num), ("choice.count", "n", _int)))


def _sampling(attrs: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key, conv in _SAMPLING:
        v = attrs.get(name)
        if v is not None:
            v = conv(v)
            if v is not None:
                out[key] = v
    stop = attrs.get("gen_ai.request.stop_sequences")
    if stop is not None:
        stop = _json(stop)
        out["stop"] = [str(s) for s in stop] if isinstance(stop, list) else [str(stop)]
    params = _json(attrs.get("llm.invocation_parameters"))
    if isinstance(params, dict):
        for key, conv in (("temperature", _num), ("top_p", _num), ("top_k", _num), ("max_tokens", _int),
                          ("max_completion_tokens", _int), ("seed", _int), ("frequency_penalty", _num),
                          ("presence_penalty", _num), ("n", _int)):
            v = conv(params.get(key))
            if v is not None:
                out.setdefault("max_tokens" if key == "max_completion_tokens" else key, v)
    return out


def _content(rec: GenAIRecord, attrs: dict, events: list[tuple[str, dict]]) -> None:
    """Input and output content, from whichever convention carries it."""
    inputs = _messages_from_semconv(attrs.get("gen_ai.input.messages"))
    system = _system_instructions(attrs.get("gen_ai.system_instructions"))
    outputs = _messages_from_semconv(attrs.get("gen_ai.output.messages"))
    if inputs is None:
        inputs = _indexed_messages(attrs, "gen_ai.prompt", "role", "content", "user")
    if outputs is None:
        outputs = _indexed_messages(attrs, "gen_ai.completion", "role", "content", "assistant")
    if inputs is None or outputs is None:
        ev_in, ev_out = _legacy_event_messages(events)
        inputs = inputs if inputs is not None else ev_in
        outputs = outputs if outputs is not None else ev_out
    if inputs is None:
        inputs = _indexed_messages(attrs, "llm.input_messages", "message.role", "message.content", "user",
                                   "message.contents")
    if outputs is None:
        outputs = _indexed_messages(attrs, "llm.output_messages", "message.role", "message.content", "assistant",
                                    "message.contents")
    prompt_text = None
    if inputs is None:
        prompts = attrs.get("llm.prompts")
        indexed = _indexed(attrs, "llm.prompts")
        if indexed:
            prompt_text = "".join(str(p.get("prompt.text", "")) for p in indexed.values())
        elif prompts is not None:
            prompts = _json(prompts)
            prompt_text = "".join(map(str, prompts)) if isinstance(prompts, list) else _str(prompts)
    if inputs is None and prompt_text is None:
        value = _value_messages(attrs.get("input.value"), attrs.get("input.mime_type"), "user")
        if isinstance(value, dict):
            prompt_text = value["text"]
        else:
            inputs = value
    if outputs is None:
        value = _value_messages(attrs.get("output.value"), attrs.get("output.mime_type"), "assistant")
        outputs = value if isinstance(value, list) else None
    if system and inputs is not None:
        inputs = system + inputs
    elif system and inputs is None and prompt_text is None:
        inputs = system
    if prompt_text is not None and inputs is None:
        rec.prompt = {"text": prompt_text}
    elif inputs is not None:
        if rec.operation == "text_completion" and len(inputs) == 1 and isinstance(inputs[0].get("content"), str) \
                and set(inputs[0]) == {"role", "content"}:
            rec.prompt = {"text": inputs[0]["content"]}
        else:
            rec.prompt = {"messages": inputs}
    rec.output = outputs


def evaluation_from(a: dict) -> Evaluation | None:
    """A ``gen_ai.evaluation.result`` event's attributes (or log record attributes) as an ``Evaluation``; None without a name."""
    name = _str(a.get("gen_ai.evaluation.name"))
    if not name:
        return None
    return Evaluation(name=name[:200], score=_num(a.get("gen_ai.evaluation.score.value")),
                      label=_str(a.get("gen_ai.evaluation.score.label")),
                      explanation=_str(a.get("gen_ai.evaluation.explanation")),
                      response_id=_str(a.get("gen_ai.response.id")), error=_str(a.get("error.type")))


def _openinference_evaluations(attrs: dict) -> list[Evaluation]:
    if "evaluations.0.evaluation.name" not in attrs and "annotations.0.annotation.name" not in attrs:
        return []  # item 0 names the first evaluation; none, no evaluations
    out = []
    for prefix, inner in (("evaluations", "evaluation"), ("annotations", "annotation")):
        for _, e in _indexed(attrs, prefix).items():
            name = _str(e.get(f"{inner}.name"))
            if name:
                out.append(Evaluation(name=name[:200], score=_num(e.get(f"{inner}.score")), label=_str(e.get(f"{inner}.label")),
                                      explanation=_str(e.get(f"{inner}.explanation")), convention="openinference"))
    return out


@dataclass
class EmbeddingsRecord:
    """One reported ``embeddings`` operation (logged as a decision where the deployment declares it)."""

    convention: str
    request_model: str | None = None
    response_model: str | None = None
    provider: str | None = None
    fingerprint: str | None = None
    input_tokens: int | None = None
    dimensions: int | None = None
    encoding_formats: list[str] | None = None
    texts: list[str] | None = None
    count: int | None = None


def map_embeddings(attrs: dict, resource: dict) -> EmbeddingsRecord:
    """Map an ``embeddings`` span (``gen_ai.operation.name`` = ``embeddings``, OpenLLMetry's ``llm.request.type`` =
    ``embedding`` or an OpenInference ``EMBEDDING`` span) to a record. The input texts are there only where the
    application captured them (OpenInference ``embedding.embeddings.N.embedding.text``; ``gen_ai.input.messages``;
    ``input.value``); vectors are never read (only their number and dimension).

    Raises:
        NotGenAI: not an embeddings span.
        MissingAttribute: no model named, or malformed input messages.
    """
    operation, convention = classify(attrs)
    if operation != "embeddings":
        raise NotGenAI(f"operation {operation!r} is not embeddings", operation)
    rec = EmbeddingsRecord(convention)
    rec.request_model = _str(_first(attrs, "gen_ai.request.model", "embedding.model_name", "llm.model_name"))
    rec.response_model = _str(_first(attrs, "gen_ai.response.model", "embedding.model_name", "llm.model_name"))
    if rec.request_model is None and rec.response_model is None:
        raise MissingAttribute("gen_ai.request.model is missing (no requested or response model is named)")
    rec.provider = _str(_first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"))
    rec.fingerprint = _str(_first(attrs, "glasslog.model.fingerprint")) or _str(resource.get("glasslog.model.fingerprint"))
    rec.input_tokens = _int(_first(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"))
    rec.dimensions = _int(attrs.get("gen_ai.embeddings.dimension.count"))
    formats = _json(attrs.get("gen_ai.request.encoding_formats"))
    if formats is not None:
        rec.encoding_formats = [str(f)[:50] for f in formats][:10] if isinstance(formats, list) else [str(formats)[:50]]
    items = _indexed(attrs, "embedding.embeddings")
    if items:
        texts = [m.get("embedding.text") for m in items.values()]
        rec.texts = [_str(t) or "" for t in texts] if any(t is not None for t in texts) else None
        vectors = [m.get("embedding.vector") for m in items.values()]
        rec.count = len(items)
        first = next((v for v in vectors if isinstance(v, list)), None)
        if rec.dimensions is None and first is not None:
            rec.dimensions = len(first)
    if rec.texts is None:
        messages = _messages_from_semconv(attrs.get("gen_ai.input.messages"))
        if messages is not None:
            rec.texts = [m["content"] if isinstance(m.get("content"), str) else json.dumps(m, sort_keys=True)
                         for m in messages]
        elif attrs.get("input.value") is not None:
            value = _json(attrs["input.value"]) if attrs.get("input.mime_type") == "application/json" else attrs["input.value"]
            if isinstance(value, dict) and "input" in value:
                value = value["input"]
            rec.texts = [str(v) for v in value] if isinstance(value, list) else [_str(value) or ""]
    if rec.count is None and rec.texts is not None:
        rec.count = len(rec.texts)
    return rec


CONTENT_EVENTS = frozenset({*_LEGACY_EVENTS, "gen_ai.choice", "gen_ai.content.prompt", "gen_ai.content.completion"})
"""Events (span events or log records) that carry a GenAI operation's input or output messages in the conventions
before ``gen_ai.client.inference.operation.details``."""


def content_from_events(events: list[tuple[str, dict]]) -> tuple[dict | None, list[dict] | None]:
    """``(prompt, output)`` from content events as ``(name, attributes and body)``: the prompt as
    ``{"messages": [...]}`` and the output messages, each None where no event carried it.

    Raises:
        MissingAttribute: an event's text is over ``MAX_TEXT``.
    """
    inputs, outputs = _legacy_event_messages(events)
    return ({"messages": inputs} if inputs else None), outputs
