"""What every request passes through: body size limits, gzip, and strict JSON.

Bodies over ``MAX_BODY_BYTES`` (model uploads: ``MAX_ARTIFACT_BYTES``; OTLP
exports: ``glasslog.ingest.otlp.MAX_BODY_BYTES``, answered as OTLP/HTTP asks)
are refused with 413, whether or not they declare a ``Content-Length``
(``BodyLimit``). Responses of 1 KiB or more are gzip-compressed for clients
that accept it, except tiles (``Compression``). JSON bodies are parsed by
``StrictJSONRoute``, the route class of every route: an object that repeats
a key is refused (422) instead of the last one silently winning.
"""


import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..ingest.otlp import MAX_BODY_BYTES as OTLP_MAX_BODY_BYTES
from .problems import problem_response, short
from .timeouts import BodyTimeout

__all__ = ["MAX_BODY_BYTES", "MAX_ARTIFACT_BYTES", "BodyLimit", "Compression", "StrictJSONRoute", "install"]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest JSON request body accepted, in bytes."""
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
"""Largest model artifact upload accepted, in bytes."""


class Compression(GZipMiddleware):
    """gzip for responses of 1 KiB or more when the client accepts it, except tiles.

    Level 1 (nginx's default): entry bundles and receipts compress about as
    well as at level 9 (8% and 22% larger) for a third of the CPU. Hash tiles
    are random 32-byte hashes, which gzip only makes longer; entry bundles
    are compressed by their endpoint (full ones once, then served from memory).
    """

    def __init__(self, app):
        super().__init__(app, minimum_size=1024, compresslevel=1)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/tile/"):
            return await self.app(scope, receive, send)
        return await super().__call__(scope, receive, send)


class BodyLimit:
    """ASGI middleware: refuse request bodies over the limit (413), declared or streamed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        otlp = scope["path"] in ("/v1/traces", "/v1/logs")  # OTLP/HTTP clients read a google.rpc.Status, not problem+json
        limit = MAX_ARTIFACT_BYTES if scope["path"] == "/v1/models" else OTLP_MAX_BODY_BYTES if otlp else MAX_BODY_BYTES
        declared = chunked = False
        for name, value in scope["headers"]:
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                declared = True
                if not re.fullmatch(rb"[0-9]{1,19}", value):
                    detail = "Content-Length must be a decimal number"
                    refusal = (otlp_refusal(400, detail, _content_type(scope)) if otlp else
                               problem_response(400, "Bad Request", detail, kind="invalid"))
                    return await refusal(scope, receive, send)
                if int(value) > limit:
                    detail = f"request body is {int(value)} bytes; the limit is {limit}"
                    refusal = (otlp_refusal(413, detail, _content_type(scope)) if otlp else
                               problem_response(413, "Content Too Large", detail, kind="too-large"))
                    return await refusal(scope, receive, send)
        if declared and not chunked:
            # uvicorn reads exactly the declared length (more would be the next request): within the limit already
            return await self.app(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, f"request body is over the limit of {limit} bytes")
            return message

        return await self.app(scope, limited, send)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise json.JSONDecodeError(f"duplicate key {short(key)} in an object (RFC 8259 section 4: names should be "
                                       "unique; which one counts would be ambiguous)", "", 0)
        seen[key] = value
    return seen


class StrictJSONRequest(Request):
    """A request whose JSON body is refused if an object repeats a key (instead of the last one silently winning)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = json.loads(body, object_pairs_hook=_unique_keys)
        return self._json


class StrictJSONRoute(APIRoute):
    """Routes that parse JSON bodies with ``StrictJSONRequest``."""

    def get_route_handler(self):
        handle = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handle(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def _content_type(scope) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), "")


def otlp_refusal(status: int, detail: str, content_type: str):
    from .routes.otlp import otlp_refusal as refusal  # the routes import this module

    return refusal(status, detail, content_type)


def install(app: FastAPI) -> None:
    """Add the middleware to ``app`` (the body limit outermost) and make ``StrictJSONRoute`` its route class."""
    app.router.route_class = StrictJSONRoute
    app.add_middleware(Compression)
    app.add_middleware(BodyLimit)
    app.add_middleware(BodyTimeout)  # outermost: a body trickled in slower than its deadline is cut off (408)
