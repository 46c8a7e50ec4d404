"""OTLP/HTTP receiver: ``POST /v1/traces`` and ``POST /v1/logs`` (``glasslog.ingest``).

An application instrumented with OpenTelemetry points its OTLP/HTTP exporter
here (``OTEL_EXPORTER_OTLP_ENDPOINT=https://log.example`` and
``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer glk_...``, an operator key,
best one bound to the deployment). Bodies are protobuf or JSON, optionally
gzip. Answers follow the OTLP/HTTP specification: 200 with an export response
(``partial_success`` counts rejected spans and says why, and what was not
logged), 400 for a body that is not a valid message (or a malformed
``Content-Length``), 401/403 for the key, 408 for a body sent too slowly, 413
too large (declared or streamed, before or after decompression), 415 for
another content type or encoding, 503 (with ``Retry-After``) when the log is
busy or a concurrent request wrote the same spans (retrying then logs the
rest once), 500 when the log cannot take the batch. Every error body is a
``google.rpc.Status`` in the request's encoding, never problem+json
(``otlp_refusal`` is also what the server's body-limit middleware answers on
these paths). Only 503 is one the specification's clients retry: a refused
batch is otherwise dropped by the exporter, so nothing is refused that a retry
could fix, and what a failed request logged before failing is kept (spans are
keyed: a resend logs only the rest). What arrives is self-reported by the application.
"""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...access import AuthError
from ...errors import AccessError, BadInputError, ConflictError, GlasslogError, UnavailableError
from ...ingest.ingestor import Ingestor
from ...ingest.otlp import (
    JSON,
    MAX_BODY_BYTES,
    PROTOBUF,
    OtlpError,
    decode_request,
    export_response,
    response_format,
    status_body,
)
from ...storage import StorageUnavailable
from ..deps import ServerState, state_of

__all__ = ["router", "OTLP_PATHS", "otlp_refusal"]

OTLP_PATHS = frozenset({"/v1/traces", "/v1/logs"})
"""The OTLP/HTTP paths: errors there are ``google.rpc.Status`` bodies (``otlp_refusal``)."""
_log = logging.getLogger("glasslog.ingest")

router = APIRouter()

_local = threading.local()

_BODY = {"content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                     JSON: {"schema": {"type": "object", "description": "OTLP/JSON export request"}}},
         "required": True}


def _ingestor(s: ServerState) -> Ingestor:
    """This thread's ingestor for the app (it holds the thread's connection to the log)."""
    cache = getattr(_local, "ingestors", None)
    if cache is None:
        cache = _local.ingestors = {}
    ing = cache.get(id(s))
    if ing is None or ing.ledger is not s.ctx().ledger:
        ing = cache[id(s)] = Ingestor(s.ctx().ledger, s.append_lock)
    return ing


def _reply(status: int, message: str, fmt: str, headers: dict | None = None) -> Response:
    return Response(status_body(status, message, fmt), status_code=status, media_type=fmt, headers=headers)


def otlp_refusal(status: int, message: str, content_type: str | None, headers: dict | None = None) -> Response:
    """An OTLP/HTTP error answer: a ``google.rpc.Status`` with ``message``, in the encoding (and ``Content-Type``) of a
    request with ``content_type`` (``glasslog.ingest.otlp.response_format``)."""
    return _reply(status, message, response_format(content_type), headers)


async def _export(request: Request, signal: str) -> Response:
    ctype = request.headers.get("content-type", "")
    fmt = response_format(ctype)
    s = state_of(request)
    try:
        body = await request.body()
    except StarletteHTTPException as exc:  # the server's body limit or deadline, on a body being streamed
        return _reply(exc.status_code, str(exc.detail), fmt, dict(exc.headers or {}) or None)
    if len(body) > MAX_BODY_BYTES:
        return _reply(413, f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}", fmt)
    authorization = request.headers.get("authorization")
    if not authorization:
        return _reply(401, "send an operator API key: Authorization: Bearer glk_...", fmt,
                      {"WWW-Authenticate": 'Bearer realm="glasslog"'})
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _reply(401, "Authorization must be 'Bearer <operator API key>'", fmt)

    def work():
        message, fmt_ = decode_request(body, ctype, request.headers.get("content-encoding"), signal)
        who = s.ctx().keys.authenticate(token.strip())
        ing = _ingestor(s)
        done = ing.ingest_traces(message, who) if signal == "traces" else ing.ingest_logs(message, who)
        return done, fmt_

    try:
        result, fmt = await run_in_threadpool(work)
    except OtlpError as exc:
        return _reply(exc.status, exc.message, fmt)
    except AuthError as exc:
        return _reply(401, str(exc), fmt)
    except AccessError as exc:
        return _reply(403, str(exc), fmt)
    except (StorageUnavailable, UnavailableError) as exc:
        return _reply(503, f"the log is busy or unreachable, retry later: {exc}", fmt, {"Retry-After": "1"})
    except ConflictError as exc:  # a concurrent request logged some of the same spans twice over: a retry logs the rest
        return _reply(503, f"a concurrent request wrote some of these spans; retry: {exc}", fmt, {"Retry-After": "1"})
    except BadInputError as exc:
        return _reply(400, str(exc), fmt)
    except GlasslogError as exc:  # the log refused the batch (integrity, key): nothing of it was written
        _log.error("OTLP %s export failed: %s", signal, exc)
        return _reply(500, f"the log could not take this request (what it logged before is kept; sending it again logs"
                               f" only the rest): {exc}", fmt)
    except Exception:  # noqa: BLE001 - an OTLP client reads a google.rpc.Status, never an HTML or problem+json page
        _log.exception("OTLP %s export failed", signal)
        return _reply(500, "internal error (what was logged before is kept; sending the request again logs only the rest)",
                      fmt)
    return Response(export_response(signal, result.rejected, result.message(), fmt), media_type=fmt,
                    headers={"X-Glasslog-Logged": str(len(result.logged)), "X-Glasslog-Findings": str(len(result.findings))})


@router.post("/v1/traces", tags=["ingest"], openapi_extra={"requestBody": _BODY},
             summary="OTLP/HTTP trace export (operator key): GenAI generation spans become generation entries",
             responses={200: {"description": "ExportTraceServiceResponse (partial_success when some spans were rejected)"},
                        400: {"description": "not a valid ExportTraceServiceRequest (google.rpc.Status)"},
                        401: {"description": "no or unknown API key"}, 403: {"description": "not an operator key"},
                        408: {"description": "body not received in time"}, 413: {"description": "body too large"},
                        415: {"description": "unsupported Content-Type or encoding"},
                        500: {"description": "the log could not take the request (a resend logs only the rest)"},
                        503: {"description": "the log is busy; retry"}})
async def export_traces(request: Request) -> Response:
    return await _export(request, "traces")


@router.post("/v1/logs", tags=["ingest"], openapi_extra={"requestBody": {**_BODY}},
             summary="OTLP/HTTP log export (operator key): evaluations become findings; content events join their generation",
             responses={200: {"description": "ExportLogsServiceResponse (partial_success when some records were rejected)"},
                        400: {"description": "not a valid ExportLogsServiceRequest (google.rpc.Status)"},
                        401: {"description": "no or unknown API key"}, 403: {"description": "not an operator key"},
                        408: {"description": "body not received in time"}, 413: {"description": "body too large"},
                        415: {"description": "unsupported Content-Type or encoding"},
                        500: {"description": "the log could not take the request (a resend logs only the rest)"},
                        503: {"description": "the log is busy; retry"}})
async def export_logs(request: Request) -> Response:
    return await _export(request, "logs")
