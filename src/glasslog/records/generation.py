"""Generative-model entries: ``generation`` entries captured by glasslog (with TOPLOC activation commitments),
generations reported by applications (OTLP spans, the gateway), and deployments' watermarks; each with its one
builder and its schema check."""

from __future__ import annotations

import re
from typing import Any

from ._base import EntryError, _choice, _digest, _index, _name, _one_of, _require, _time, stamp

__all__ = ["ACTIVATION_SCHEME", "REPORTED_SOURCES", "REPORTED_OPERATIONS", "WATERMARK_EVENTS", "generation_entry",
           "reported_generation_entry", "watermark_entry"]

ACTIVATION_SCHEME = "toploc"
_TOPLOC_PRIME = 65497
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def _activation_commitments(obj: dict, output_tokens: int) -> None:
    """TOPLOC commitments: base64 of 2 + 2*topk bytes (modulus in (2**15, 65497], coefficients < 65497), one for the
    prompt and one per ``chunk`` output tokens."""
    import base64
    import binascii

    act = _require(obj, "activations", dict)
    if act.get("scheme") != ACTIVATION_SCHEME:
        raise EntryError(f"must be {ACTIVATION_SCHEME!r}, got {act.get('scheme')!r}", field="activations.scheme")
    topk = _require(act, "topk", int, "activations.")
    chunk = _require(act, "chunk", int, "activations.")
    if not 1 <= topk <= 4096 or not 1 <= chunk <= 4096:
        raise EntryError("topk and chunk must be between 1 and 4096", field="activations")
    items = _require(act, "commitments", list, "activations.")
    expected = 1 + -(-output_tokens // chunk)
    if len(items) != expected:
        raise EntryError(f"{len(items)} commitments for {output_tokens} output tokens in chunks of {chunk};"
                         f" expected {expected} (one for the prompt, one per chunk)", field="activations.commitments")
    size = 2 + 2 * topk
    for i, item in enumerate(items):
        name = f"activations.commitments[{i}]"
        if not isinstance(item, str) or not _B64.match(item):
            raise EntryError("must be a base64 string", field=name)
        try:
            raw = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise EntryError("is not valid base64", field=name) from None
        if len(raw) != size:
            raise EntryError(f"must be {size} bytes (a 2-byte modulus and {topk} 2-byte coefficients), got {len(raw)}", field=name)
        modulus = int.from_bytes(raw[:2], "big")
        if not 2**15 < modulus <= _TOPLOC_PRIME:
            raise EntryError(f"modulus {modulus} is outside (32768, {_TOPLOC_PRIME}]", field=name)
        if any(int.from_bytes(raw[j:j + 2], "big") >= _TOPLOC_PRIME for j in range(2, size, 2)):
            raise EntryError(f"a coefficient is not below {_TOPLOC_PRIME}", field=name)


def _check_generation(obj: dict) -> None:
    """One output of a generative model: the prompt as a commitment, the output in the clear (public-service, with its
    token ids) or as a commitment (private), token counts, sampling parameters and seed, the runtime (library versions,
    dtype) and TOPLOC activation commitments; optionally a subject commitment and the deployment's watermark key
    commitment."""
    if obj.get("source") is not None:
        _check_reported_generation(obj)
        return
    _digest(obj, "model")
    _name(obj, "deployment")
    _time(obj)
    _digest(obj, "prompt")
    _digest(obj, "subject", optional=True)
    _digest(obj, "watermark", optional=True)
    _one_of(obj, "output", "output_commitment")
    tokens = _require(obj, "tokens", dict)
    counts = {}
    for key in ("prompt", "output"):
        counts[key] = _require(tokens, key, int, "tokens.")
        if counts[key] < 0:
            raise EntryError("must be >= 0", field=f"tokens.{key}")
    if "output" in obj:
        if not isinstance(obj["output"], str):
            raise EntryError("must be the generated text", field="output")
        ids = _require(obj, "output_tokens", list)
        if len(ids) != counts["output"] or not all(type(t) is int and t >= 0 for t in ids):
            raise EntryError(f"must be the {counts['output']} output token ids", field="output_tokens")
    elif "output_tokens" in obj:
        raise EntryError("a private generation's tokens are in its output commitment, not in the entry", field="output_tokens")
    sampling = _require(obj, "sampling", dict)
    if not isinstance(sampling.get("do_sample"), bool):
        raise EntryError("must be true or false", field="sampling.do_sample")
    seed = sampling.get("seed")
    if seed is not None and (type(seed) is not int or seed < 0):
        raise EntryError("must be a non-negative integer or null", field="sampling.seed")
    runtime = _require(obj, "runtime", dict)
    for key in ("torch", "transformers", "dtype"):
        _require(runtime, key, str, "runtime.")
    _activation_commitments(obj, counts["output"])


def generation_entry(*, model: str, deployment: str, time: str, prompt: str, tokens: dict, sampling: dict,
                     runtime: dict, activations: dict, output: str | None = None, output_tokens: list[int] | None = None,
                     output_commitment: str | None = None, subject: str | None = None,
                     watermark: str | None = None) -> dict[str, Any]:
    """The ``generation`` entry of an output glasslog generated itself.

    Args:
        model: the fingerprint; prompt, subject: commitments; watermark: the deployment's watermark key commitment.
        tokens: ``{"prompt": n, "output": n}`` token counts.
        output, output_tokens: the text and its token ids (public-service), or
        output_commitment: their commitment (private).
        sampling: the sampling parameters (``do_sample``, ``seed``...); runtime: ``torch``, ``transformers``,
            ``dtype``...
        activations: TOPLOC commitments: ``scheme`` (``ACTIVATION_SCHEME``), ``topk``, ``chunk``, ``commitments``
            (base64, one for the prompt and one per ``chunk`` output tokens).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("generation", _check_generation, {
        "model": model, "deployment": deployment, "time": time, "prompt": prompt, "tokens": tokens,
        "sampling": sampling, "runtime": runtime, "activations": activations, "output": output,
        "output_tokens": output_tokens, "output_commitment": output_commitment, "subject": subject,
        "watermark": watermark})


REPORTED_SOURCES = ("otlp", "gateway")
"""Where a self-reported generation came from: an application's OTLP span, or the OpenAI-compatible gateway."""
REPORTED_OPERATIONS = ("chat", "text_completion", "generate_content")
_HEX = {"trace_id": 32, "span_id": 16}


def _optional_text(obj: dict, key: str, limit: int = 200) -> None:
    if obj.get(key) is not None:
        value = _require(obj, key, str)
        if not value or len(value) > limit or not value.isprintable():
            raise EntryError(f"must be printable text of 1 to {limit} characters", field=key)


def _check_reported_generation(obj: dict) -> None:
    """A generation glasslog did not run: reported by the application (``source: "otlp"``, an OpenTelemetry GenAI
    span) or seen on the wire by the gateway (``source: "gateway"``). There are no activation commitments, token ids
    or runtime: binding it to the weights needs replay. ``model`` is the registered model the reported name resolved
    to, absent for an unregistered one; ``reported_model`` keeps the names as reported. ``captured`` says whether the
    input and output content reached glasslog: the prompt is committed (``prompt``) and the output is in the clear
    (public-service) or committed (private) only where it did.

    ``part: "content"`` marks content that arrived apart from its operation (OTLP log records linked to a span by its
    trace and span id): it names its ``span``, and its operation's entry (``generation``, an index) when that was
    already on the log; ``operation`` and ``reported_model`` only where the records carrying it named them. An
    operation's entry may name its content parts logged before it (``content``: an index, or a list of indexes when
    there are several, ascending).

    ``part: "span"`` is the operation's span arriving after a details record logged the operation: it names the
    operation's entry (``generation``) and carries what that entry lacked (token counts, response id, finish reasons,
    the span's start and end times, content), never a value the entry already holds."""
    _choice(obj, "source", REPORTED_SOURCES)
    _digest(obj, "model", optional=True)
    _name(obj, "deployment")
    _time(obj)
    part = obj.get("part")
    if part is not None and part not in ("content", "span"):
        raise EntryError(f"must be 'content', 'span' or absent, got {part!r}", field="part")
    _choice(obj, "operation", REPORTED_OPERATIONS, optional=part is not None)
    if part is None or obj.get("reported_model") is not None:
        reported = _require(obj, "reported_model", dict)
        for key in ("request", "response"):
            _optional_text(reported, key)
        if reported.get("request") is None and reported.get("response") is None:
            raise EntryError("must name the requested or the response model", field="reported_model")
    if part is None:
        content = obj.get("content")
        if isinstance(content, list):
            if len(content) < 2 or any(type(i) is not int or i < 0 for i in content) or content != sorted(set(content)):
                raise EntryError("must be an entry index or a list of two or more ascending entry indexes",
                                 field="content")
        else:
            _index(obj, "content", optional=True)
    else:
        _require(obj, "span", dict)
        _index(obj, "generation", optional=True)
    captured = _require(obj, "captured", dict)
    for key in ("input", "output"):
        if not isinstance(captured.get(key), bool):
            raise EntryError("must be true or false", field=f"captured.{key}")
    _digest(obj, "prompt", optional=True)
    if captured["input"] != ("prompt" in obj):
        raise EntryError("a prompt commitment is there exactly when the input was captured", field="prompt")
    _digest(obj, "subject", optional=True)
    has_output, has_commitment = "output" in obj, "output_commitment" in obj
    if has_output and has_commitment:
        raise EntryError("at most one of 'output' (public) and 'output_commitment' is allowed", field="output")
    if captured["output"] != (has_output or has_commitment):
        raise EntryError("the output (or its commitment) is there exactly when it was captured", field="output")
    if has_output:
        out = obj["output"]
        if not isinstance(out, str) and not (isinstance(out, list) and out and all(isinstance(t, str) for t in out)):
            raise EntryError("must be the generated text (a list of texts for several choices)", field="output")
    elif has_commitment:
        _digest(obj, "output_commitment")
    for key in ("output_tokens", "activations", "runtime"):
        if key in obj:
            raise EntryError(f"a reported generation has no {key}: glasslog did not run the model", field=key)
    tokens = obj.get("tokens")
    if tokens is not None:
        _require(obj, "tokens", dict)
        for key, value in tokens.items():
            if key not in ("prompt", "output") or (value is not None and (type(value) is not int or value < 0)):
                raise EntryError("token counts are prompt and output, each a non-negative integer or null", field=f"tokens.{key}")
    if obj.get("sampling") is not None:
        seed = _require(obj, "sampling", dict).get("seed")
        if seed is not None and (type(seed) is not int or seed < 0):
            raise EntryError("must be a non-negative integer or null", field="sampling.seed")
    _optional_text(obj, "provider")
    _optional_text(obj, "response_id", 500)
    _optional_text(obj, "conversation", 500)
    _optional_text(obj, "incomplete")
    reasons = obj.get("finish_reasons")
    if reasons is not None and not (isinstance(reasons, list) and all(isinstance(r, str) and len(r) <= 100 for r in reasons)):
        raise EntryError("must be a list of texts", field="finish_reasons")
    span = obj.get("span")
    if span is not None:
        _require(obj, "span", dict)
        for key, digits in _HEX.items():
            if not isinstance(span.get(key), str) or not re.fullmatch(f"[0-9a-f]{{{digits}}}", span[key]):
                raise EntryError(f"must be {digits} lowercase hex digits", field=f"span.{key}")


def reported_generation_entry(*, source: str, deployment: str, time: str, operation: str | None,
                              reported_model: dict | None, captured: dict, model: str | None = None,
                              prompt: str | None = None,
                              subject: str | None = None, output: str | list[str] | None = None,
                              output_commitment: str | None = None, tokens: dict | None = None,
                              sampling: dict | None = None, provider: str | None = None,
                              response_id: str | None = None, finish_reasons: list[str] | None = None,
                              conversation: str | None = None, span: dict | None = None, incomplete: str | None = None,
                              service: str | None = None, convention: str | None = None,
                              upstream: str | None = None, part: str | None = None, generation: int | None = None,
                              content: int | list[int] | None = None) -> dict[str, Any]:
    """The ``generation`` entry of a generation glasslog did not run (``source``: ``otlp`` or ``gateway``).

    Args:
        reported_model: ``{"request": name, "response": name}`` as reported (at least one).
        captured: ``{"input": bool, "output": bool}``: whether the content reached glasslog.
        model: the registered model the name resolved to (None: unregistered).
        prompt, subject, output_commitment: commitments; output: the text (a list for several choices).
        tokens, sampling, provider, response_id, finish_reasons, conversation, span, incomplete, service, convention,
            upstream: as reported; None values are left out.
        part: ``"content"`` for content that arrived apart from its operation (``operation`` and ``reported_model``
            may then be None; ``span`` is required), ``"span"`` for a span arriving after its details record;
            generation: that operation's entry, when known;
        content: on an operation's entry, its content part logged before it (an index), or a list of them.

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("generation", _check_reported_generation, {
        "source": source, "deployment": deployment, "time": time, "operation": operation,
        "reported_model": reported_model, "captured": captured, "model": model, "prompt": prompt, "subject": subject,
        "output": output, "output_commitment": output_commitment, "tokens": tokens, "sampling": sampling,
        "provider": provider, "response_id": response_id, "finish_reasons": finish_reasons,
        "conversation": conversation, "span": span, "incomplete": incomplete, "service": service,
        "convention": convention, "upstream": upstream, "part": part, "generation": generation, "content": content})


WATERMARK_EVENTS = ("declare", "reveal")


def _check_watermark(obj: dict) -> None:
    """A deployment's watermark: ``declare`` logs the scheme and a commitment to the secret key and configuration;
    ``reveal`` later publishes key, configuration and salt so anyone can check past claims."""
    _time(obj)
    _choice(obj, "event", WATERMARK_EVENTS)
    _name(obj, "deployment")
    _name(obj, "scheme")
    _digest(obj, "key_commitment")
    if obj["event"] == "reveal":
        _index(obj, "declaration")
        _require(obj, "salt", str)
        _require(obj, "secret", dict)


def watermark_entry(*, event: str, deployment: str, scheme: str, key_commitment: str, time: str,
                    declaration: int | None = None, salt: str | None = None,
                    secret: dict | None = None) -> dict[str, Any]:
    """The ``watermark`` entry: ``declare`` (scheme and key commitment) or ``reveal`` (also the ``declaration``'s
    index, the base64 ``salt`` and the ``secret`` key and configuration, which open the commitment).

    Raises:
        EntryError: a field fails the schema (named).
    """
    return stamp("watermark", _check_watermark, {
        "event": event, "deployment": deployment, "scheme": scheme, "key_commitment": key_commitment,
        "declaration": declaration, "salt": salt, "secret": secret, "time": time})
