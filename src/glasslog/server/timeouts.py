"""Slow clients: a deadline for a request's head (the protocol) and for its body (ASGI middleware).

A client that opens a connection and sends its request line and headers a
byte at a time would otherwise hold the connection (and a slot of the
server's) for as long as it likes: uvicorn's keep-alive timeout stops once
any byte arrives. ``glasslog serve`` runs uvicorn with ``HEAD_PROTOCOLS``:
uvicorn's own HTTP protocols plus one timer per connection, armed when the
connection opens and after each response, that closes the connection if no
complete request head arrived by then (``$GLASSLOG_HEADER_TIMEOUT`` seconds,
default ``DEFAULT_HEADER_TIMEOUT``). ``BodyTimeout`` gives each request body a
deadline (``$GLASSLOG_BODY_TIMEOUT``, default ``DEFAULT_BODY_TIMEOUT``; ten
times that for model uploads): past it the request is answered ``408`` and the
connection closed.
"""

from __future__ import annotations

import asyncio
import os

from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEADER_TIMEOUT_ENV", "BODY_TIMEOUT_ENV", "DEFAULT_HEADER_TIMEOUT", "DEFAULT_BODY_TIMEOUT", "header_timeout",
           "body_timeout", "H11WithHeadTimeout", "head_protocol", "BodyTimeout", "has_body"]

HEADER_TIMEOUT_ENV = "GLASSLOG_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "GLASSLOG_BODY_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to send a complete request head (request line and headers)."""
DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a request may take to send its whole body (model uploads: ten times this)."""


def _seconds(env: str, default: float) -> float:
    try:
        value = float(os.environ.get(env, default))
    except ValueError:
        return default
    return value if value > 0 else default


def header_timeout() -> float:
    return _seconds(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT)


def body_timeout() -> float:
    return _seconds(BODY_TIMEOUT_ENV, DEFAULT_BODY_TIMEOUT)


class _HeadTimeout:
    """Mixin for a uvicorn HTTP protocol: close a connection that has not sent a complete request head in time."""

    _head_timer = None
    _head_cycle = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._arm_head_timer()  # before: a pipelined request found now starts a new cycle, which the timer then spares
        super().on_response_complete()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_cycle = self.cycle
        self._head_timer = self.loop.call_later(header_timeout(), self._head_expired)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        waiting = self.cycle is self._head_cycle and (self.cycle is None or self.cycle.response_complete)
        if waiting and not self.transport.is_closing():
            self.transport.close()


class H11WithHeadTimeout(_HeadTimeout, H11Protocol):
    """uvicorn's h11 protocol with the request-head deadline."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpTools

    class HttpToolsWithHeadTimeout(_HeadTimeout, _HttpTools):
        """uvicorn's httptools protocol with the request-head deadline."""
except ImportError:  # pragma: no cover - httptools is optional
    HttpToolsWithHeadTimeout = None


def head_protocol() -> type:
    """The protocol ``glasslog serve`` runs: httptools (uvicorn's default when installed) or h11, with the deadline."""
    return HttpToolsWithHeadTimeout or H11WithHeadTimeout


class BodyTimeout:
    """ASGI middleware: a request body not received within its deadline is answered 408 and the connection closed."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not has_body(scope):
            return await self.app(scope, receive, send)  # no body to wait for: nothing to time
        limit = body_timeout() * (10 if scope["path"] == "/v1/models" else 1)
        deadline: float | None = None
        done = False

        async def timed():
            nonlocal deadline, done
            if done:  # the body is in: later receives wait for a disconnect, with no deadline
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + limit
            try:
                # a timer on this task, not asyncio.wait_for (which wraps each receive in a new task)
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise StarletteHTTPException(408, f"the request body was not received within {limit:g} s",
                                             headers={"Connection": "close"}) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        return await self.app(scope, timed, send)


def has_body(scope) -> bool:
    """Whether an HTTP request declares a body: a ``Transfer-Encoding``, or a ``Content-Length`` other than 0.

    Without either, HTTP/1.1 says the request has no body (RFC 9112 section 6.3), and uvicorn reads none.
    """
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b" \t0") != b""):
            return True
    return False
