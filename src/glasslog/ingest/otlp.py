"""OTLP/HTTP request bodies in, OTLP responses out: decoding only, no web framework and no log.

- Bodies are ``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest`` of
  the ``opentelemetry-proto`` package, as binary protobuf
  (``application/x-protobuf``) or OTLP/JSON (``application/json``), optionally
  gzip-compressed (``Content-Encoding: gzip``).
- OTLP/JSON writes trace and span ids as hex (the OTLP specification); some
  exporters send the protobuf JSON mapping's base64 instead. Both are read:
  a 32-character trace id or 16-character span id is hex, a 24- or
  12-character one base64.
- Nothing here is hashed: the raw bytes of a request are not canonical (field
  order, unknown fields, default values and JSON spelling all vary), so the
  log is built from the decoded values (``glasslog.ingest.ingestor``).
- Errors carry the HTTP status the OTLP specification asks for (400 bad data,
  413 too large, 415 unsupported media type or encoding) and are answered
  with a ``google.rpc.Status`` in the request's own encoding
  (``status_body``, ``Content-Type`` that of the request: protobuf unless it
  names JSON); successes with the export response, whose
  ``partial_success`` counts the rejected items and explains them. Retryable
  (the specification's 429, 502, 503, 504) only when retrying can help.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

__all__ = ["MAX_BODY_BYTES", "MAX_DECODED_BYTES", "OtlpError", "PROTOBUF", "JSON", "decode_request", "attributes",
           "any_value", "iter_spans", "iter_log_records", "export_response", "status_body", "media_type",
           "response_format"]

MAX_BODY_BYTES = 20 * 1024 * 1024
"""Largest request body accepted as sent (compressed or not), in bytes: the OTLP specification's recommended default
(20 MiB). An SDK exporter does not split a batch the server refuses with 413, and must not retry it, so a lower limit
would drop whole batches of 512 spans that carry message content."""
MAX_DECODED_BYTES = 20 * 1024 * 1024
"""Largest request body after gzip decompression, in bytes (the specification limits it "including after
decompression"; a small gzip body can expand a thousandfold)."""

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA = {"application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF, "application/json": JSON}


class OtlpError(Exception):
    """A request that cannot be decoded; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def media_type(content_type: str | None) -> str:
    """The OTLP encoding named by a ``Content-Type`` header (parameters such as ``charset`` ignored).

    Raises:
        OtlpError: 415 for anything but protobuf or JSON.
    """
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in _MEDIA:
        raise OtlpError(415, f"Content-Type {kind or '(none)'!r} is not supported: send application/x-protobuf or"
                             " application/json (OTLP/HTTP)")
    return _MEDIA[kind]


def _gunzip(body: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, MAX_DECODED_BYTES + 1)
    except zlib.error as exc:
        raise OtlpError(400, f"the body is not valid gzip: {exc}") from None
    if len(out) > MAX_DECODED_BYTES or d.unconsumed_tail:
        raise OtlpError(413, f"the body expands to more than {MAX_DECODED_BYTES} bytes when decompressed")
    if not d.eof:
        raise OtlpError(400, "the gzip body is truncated")
    return out


_ID_FIELDS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}
_HEX_RE = re.compile(r"[0-9a-fA-F]*")


def _fix_ids(obj: Any, depth: int = 0) -> None:
    """Rewrite hex ids (OTLP/JSON) to base64 (protobuf's JSON mapping) in place; base64 ids of the right size are left
    as they are, and anything else (``"xyz"``, 31 hex digits, base64 of 5 bytes) is emptied, so that the item is
    refused for having no valid id instead of being read as the bytes some base64 decoder makes of it."""
    if depth > 12:
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            size = _ID_FIELDS.get(key)
            if size is not None and isinstance(value, str):
                if len(value) == 2 * size and _HEX_RE.fullmatch(value):
                    obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
                elif value:
                    try:
                        b64_or_hex(value, size)
                    except ValueError:
                        obj[key] = ""
            elif isinstance(value, (dict, list)):
                _fix_ids(value, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, (dict, list)):
                _fix_ids(value, depth + 1)


def decode_request(body: bytes, content_type: str | None, content_encoding: str | None, signal: str):
    """Decode an OTLP/HTTP export request.

    Args:
        signal: ``traces`` or ``logs``.

    Returns:
        ``(request message, encoding)`` with encoding ``PROTOBUF`` or ``JSON``.

    Raises:
        OtlpError: 415 (content type or encoding), 413 (too large), 400 (not a valid message).
    """
    fmt = media_type(content_type)
    encoding = (content_encoding or "identity").strip().lower()
    if len(body) > MAX_BODY_BYTES:
        raise OtlpError(413, f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    if encoding == "gzip":
        body = _gunzip(body)
    elif encoding not in ("identity", ""):
        raise OtlpError(415, f"Content-Encoding {encoding!r} is not supported: send gzip or no encoding")
    message = ExportTraceServiceRequest() if signal == "traces" else ExportLogsServiceRequest()
    if fmt == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OtlpError(400, f"the body is not a valid protobuf {type(message).__name__}: {exc or 'malformed'}") from None
        return message, fmt
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise OtlpError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpError(400, f"the body must be a JSON object (an OTLP/JSON {type(message).__name__})")
    _fix_ids(data)
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise OtlpError(400, f"the body is not a valid OTLP/JSON {type(message).__name__}: {exc}") from None
    return message, fmt


def any_value(v) -> Any:
    """An OTLP ``AnyValue`` as a Python value (arrays as lists, key-value lists as dicts, bytes as bytes)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return bytes(v.bytes_value)
    return None


def attributes(kvs) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict (a repeated key: the last one)."""
    out: dict[str, Any] = {}
    for kv in kvs:  # the scalar kinds inline: this runs for every attribute of every span
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "string_value":
            out[kv.key] = v.string_value
        elif kind == "int_value":
            out[kv.key] = v.int_value
        elif kind == "double_value":
            out[kv.key] = v.double_value
        elif kind == "bool_value":
            out[kv.key] = v.bool_value
        else:
            out[kv.key] = any_value(v)
    return out


@dataclass
class SpanView:
    """One span of a request, with its resource's attributes."""

    resource: dict[str, Any]
    resource_index: int
    trace_id: bytes
    span_id: bytes
    name: str
    start: int
    end: int
    attrs: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]


def iter_spans(request: ExportTraceServiceRequest) -> Iterator[SpanView]:
    """Every span of an export request, in order."""
    for r, rs in enumerate(request.resource_spans):
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                events = [(ev.name, attributes(ev.attributes)) for ev in sp.events] if sp.events else []
                yield SpanView(resource, r, bytes(sp.trace_id), bytes(sp.span_id), sp.name, sp.start_time_unix_nano,
                               sp.end_time_unix_nano, attributes(sp.attributes), events)


@dataclass
class LogView:
    """One log record of a request, with its resource's attributes."""

    resource: dict[str, Any]
    resource_index: int
    event_name: str
    trace_id: bytes
    span_id: bytes
    time: int
    attrs: dict[str, Any]
    body: Any


def iter_log_records(request: ExportLogsServiceRequest) -> Iterator[LogView]:
    """Every log record of an export request, in order (the event name from ``event_name`` or ``event.name``)."""
    for r, rl in enumerate(request.resource_logs):
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                attrs = attributes(rec.attributes)
                name = getattr(rec, "event_name", "") or attrs.get("event.name") or ""
                body = any_value(rec.body) if rec.HasField("body") else None
                yield LogView(resource, r, str(name), bytes(rec.trace_id), bytes(rec.span_id),
                              rec.time_unix_nano or rec.observed_time_unix_nano, attrs, body)


def export_response(signal: str, rejected: int, message: str, fmt: str) -> bytes:
    """The export response: empty when everything was accepted without a warning, else ``partial_success``."""
    resp = ExportTraceServiceResponse() if signal == "traces" else ExportLogsServiceResponse()
    if rejected or message:
        ps = resp.partial_success
        if signal == "traces":
            ps.rejected_spans = rejected
        else:
            ps.rejected_log_records = rejected
        ps.error_message = message
    if fmt == JSON:
        return json_format.MessageToJson(resp, indent=None).encode()
    return resp.SerializeToString()


def response_format(content_type: str | None) -> str:
    """The encoding of an answer to a request with this ``Content-Type``: JSON if it names JSON, else protobuf (also
    for an unsupported type, so that an OTLP client can decode the refusal)."""
    return JSON if "json" in (content_type or "").lower() else PROTOBUF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 408: 4, 409: 6, 413: 8, 415: 3, 422: 3, 429: 8, 500: 13, 502: 14,
               503: 14, 504: 4}


def status_body(http_status: int, message: str, fmt: str) -> bytes:
    """A ``google.rpc.Status`` (code, message) for an error response, in the request's encoding.

    Encoded here (two fields) rather than with ``googleapis-common-protos``: field 1 ``code`` (gRPC code, varint),
    field 2 ``message`` (string).
    """
    code = _GRPC_CODES.get(http_status, 2)
    if fmt == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def hex_id(raw: bytes) -> str:
    return raw.hex()


def b64_or_hex(value: str, size: int) -> bytes:
    """An id given as hex or base64 (for tools that take ids from users)."""
    if len(value) == 2 * size and _HEX_RE.fullmatch(value):
        return bytes.fromhex(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{value!r} is neither {2 * size} hex digits nor base64 of {size} bytes") from None
    if len(raw) != size:
        raise ValueError(f"{value!r} decodes to {len(raw)} bytes, not {size}")
    return raw
