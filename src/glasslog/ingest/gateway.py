"""``glasslog gateway --upstream URL``: an OpenAI-compatible reverse proxy that puts every completion on the log.

An application that calls a model through the OpenAI API (vLLM, llama.cpp
server, Ollama, ``transformers serve``, ...) points its client at the gateway
instead (``OpenAI(base_url="http://gateway:8300/v1")``). The gateway:

- forwards ``POST /v1/chat/completions`` and ``POST /v1/completions`` (and
  ``GET /v1/models``) to the upstream unchanged: same body bytes, same
  ``Authorization`` and other end-to-end headers; the upstream's answer comes
  back unchanged too;
- resolves the request's ``model`` to a registered model (``--model
  NAME=FINGERPRINT`` aliases, else the card's name, ``name:version`` or the
  fingerprint) and enforces its status: a suspended or withdrawn model's
  requests are refused with an OpenAI-shaped error (HTTP 403, code
  ``model_not_active``) and nothing is forwarded, the kill switch at the
  gateway; a model that is not registered is refused the same way (404,
  ``model_not_found``) unless the gateway runs with ``--allow-unregistered``,
  which logs it as such and raises a finding;
- logs each successful completion as a ``generation`` entry
  (``source: "gateway"``) before the response is complete: the request's
  messages or prompt committed, the output in the clear (public-service) or
  committed (private), token usage, sampling parameters and seed, response
  id, finish reasons, and a commitment to the subject named in an
  ``X-Glasslog-Subject`` header;
- hands back a receipt: headers ``X-Glasslog-Index`` (the entry's index) and
  ``X-Glasslog-Receipt-Token`` (a receipt token, ``grt_...``); ``GET
  /v1/receipt`` with ``Authorization: Bearer grt_...`` returns the entry and
  its full receipt (checkpoint, inclusion proof, the private values opened);
- streams (``"stream": true``) are forwarded event by event as they arrive
  and logged once the upstream's stream ends, before the end reaches the
  client: the receipt comes as an SSE comment line (``: glasslog
  {"index": ..., "receipt_token": ...}``), which SSE clients skip, just
  before ``data: [DONE]`` (or the end of the stream). A client that
  disconnects midway stops the upstream request (as it would have directly)
  and what was generated so far is logged with ``incomplete:
  "client-disconnected"``; a stream the upstream breaks off is logged with
  ``incomplete: "upstream-error"``;
- an unreachable upstream is a 502 with an OpenAI-shaped error (code
  ``upstream_unreachable``) and nothing is logged; an upstream error status
  is passed through unchanged and nothing is logged; a 2xx answer that is not
  a completion (malformed JSON) is a 502 (``upstream_malformed``), not logged.

The gateway sees what went over the wire, not what ran upstream: the entry
names the model the upstream reported, and binding it to the registered
weights needs replay. It is a plain ASGI app (no framework on the hot path)
over one ``httpx.AsyncClient`` with keep-alive; appends run in a few writer
threads, each with its own connection to the log, joined by group commit.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..access import AuthError, KeyStore, new_receipt_token, store_receipt_tokens
from ..capture.generator import reported_generation
from ..errors import GlasslogError
from ..ledger import Entry, GroupCommit, Ledger, utc_now
from ..records import finding_entry
from ..registry import Deployments, Registry
from ..storage import StorageUnavailable
from .ingestor import ModelResolver
from .openai_wire import StreamState as _StreamState
from .openai_wire import jsonable as _jsonable
from .openai_wire import outputs as _outputs
from .openai_wire import prompt_value as _prompt_value
from .openai_wire import split_events as _split_events
from .openai_wire import text as _text
from .openai_wire import uint as _uint

__all__ = ["Gateway", "GatewayConfig", "MAX_REQUEST_BYTES", "RECEIPT_COMMENT"]

MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""Largest request body the gateway reads, in bytes."""

RECEIPT_COMMENT = b": glasslog "
"""Prefix of the SSE comment line that carries a stream's receipt (index and receipt token, JSON)."""

_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
        b"transfer-encoding", b"upgrade", b"host", b"content-length", b"accept-encoding", b"x-glasslog-subject"}
_HOP_OUT = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}
_SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "seed", "n", "stop",
             "frequency_penalty", "presence_penalty")


@dataclass
class GatewayConfig:
    """How the gateway runs (see ``glasslog gateway --help``)."""

    data_dir: Path
    upstream: str
    deployment: str
    store: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    allow_unregistered: bool = False
    timeout: float = 600.0
    provider: str | None = None


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.kind, self.param = status, message, code, kind, param


def _error(status: int, message: str, code: str, kind: str = "invalid_request_error", param: str | None = None):
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class _Logged:
    index: int
    token: str


class Gateway:
    """The gateway's ASGI app (``uvicorn.run(Gateway(config))``)."""

    def __init__(self, config: GatewayConfig):
        self.config = config
        self.upstream = config.upstream.rstrip("/")
        parts = urlsplit(self.upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--upstream must be an http:// or https:// URL, got {config.upstream!r}")
        self._upstream_path = parts.path.rstrip("/")
        self._reader = Ledger.open(config.data_dir, config.store)  # the event loop's reads (model status, receipts)
        deployment = Deployments(self._reader).find(config.deployment)
        if deployment is None:
            self._reader.close()
            raise ValueError(f"deployment {config.deployment!r} is not declared on this log: declare it first"
                             " (POST /v1/deployments, or glasslog.registry.Deployments)")
        self.visibility = deployment.visibility
        self.models = ModelResolver(Registry(self._reader), config.aliases)
        # a few writer threads, each with its own connection to the log, whose concurrent appends share one
        # transaction, one sync and one signed checkpoint (group commit)
        self._writer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="glasslog-gateway-writer")
        self._group = GroupCommit(window=0.0)
        self._writer_local = threading.local()
        self._client: httpx.AsyncClient | None = None
        self._raised: set[str] = set()
        self._raised_lock = threading.Lock()
        self.pending: set[asyncio.Future] = set()

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path in ("/v1/chat/completions", "/v1/completions") and method == "POST":
                return await self._completion(scope, receive, send, "chat" if "chat" in path else "text_completion")
            if path == "/v1/receipt" and method == "GET":
                return await self._receipt(scope, send)
            if path.startswith("/v1/") and method == "GET":
                return await self._passthrough(scope, receive, send)
            status, body = _error(404, f"the glasslog gateway does not serve {method} {path}", "not_found")
            return await _json(send, status, body)
        except _Refused as r:
            status, body = _error(r.status, r.message, r.code, r.kind, r.param)
            return await _json(send, status, body)
        except (GlasslogError, ValueError, OSError) as exc:  # the log refused or failed: the output is withheld
            unavailable = isinstance(exc, StorageUnavailable)
            status, body = _error(503 if unavailable else 500, f"the completion could not be put on the log, so it is"
                                  f" withheld: {type(exc).__name__}: {exc}", "log_unavailable" if unavailable else "log_failed",
                                  "server_error")
            try:
                return await _json(send, status, body)
            except RuntimeError:
                return  # a stream had started: the client sees it end without its receipt

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout, connect=10.0),
                                             limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
        return self._client

    async def aclose(self) -> None:
        """Wait for pending appends (streams whose client left), close the upstream client and the log."""
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        self._writer.shutdown(wait=True)
        self._reader.close()

    # ------------------------------------------------------------------ helpers
    def _forward_headers(self, scope) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in scope["headers"] if k not in _HOP]

    def _url(self, scope) -> str:
        path = scope["path"]
        if self._upstream_path.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        query = scope.get("query_string") or b""
        return self.upstream + path + (("?" + query.decode("latin-1")) if query else "")

    async def _read_body(self, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "the client went away before sending its request", "client_disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                raise _Refused(413, f"request body over {MAX_REQUEST_BYTES} bytes", "request_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _check_model(self, requested: Any):
        """The registered model a request names (None: unregistered, allowed), or refused (``_Refused``)."""
        if not isinstance(requested, str) or not requested:  # an upstream with a default model would answer unlogged
            raise _Refused(400, "'model' is required (text naming a registered model): the gateway forwards no request"
                                " whose model it cannot check (nothing was forwarded)", "model_required", param="model")
        model = self.models.resolve(requested)
        if model is None:
            if not self.config.allow_unregistered:
                raise _Refused(404, f"model {requested!r} is not registered on this glasslog log, so the gateway does not"
                                    " forward its requests (register it, map it with --model NAME=FINGERPRINT, or run"
                                    " the gateway with --allow-unregistered)", "model_not_found", param="model")
            return None
        if model.status != "active":
            last = model.history[-1]
            raise _Refused(403, f"model {model.card.name} {model.card.version} ({model.fingerprint[:19]}...) is"
                                f" {model.status} since log entry {last.index} ({last.reason}): its requests are refused"
                                " and nothing was forwarded", "model_not_active", param="model")
        return model

    # ------------------------------------------------------------------ completions
    async def _completion(self, scope, receive, send, operation: str) -> None:
        raw = await self._read_body(receive)
        try:
            request = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            request = None
        if not isinstance(request, dict):  # what glasslog cannot read it cannot log, nor check against the kill switch
            raise _Refused(400, "the request body is not a JSON object: the gateway reads every request to log its"
                                " completion and check its model, so it forwards none it cannot read (nothing was"
                                " forwarded)", "invalid_json")
        model = self._check_model(request.get("model"))
        subject = _header(scope, b"x-glasslog-subject")
        if request.get("stream") is True:
            return await self._stream(scope, receive, send, raw, request, model, operation, subject)
        try:
            resp = await self.client().post(self._url(scope), content=raw, headers=self._forward_headers(scope))
        except httpx.HTTPError as exc:
            raise _Refused(502, f"the upstream {self.upstream} is unreachable: {type(exc).__name__}: {exc}"
                                " (nothing was logged)", "upstream_unreachable", "upstream_error") from None
        body = resp.content
        headers = _response_headers(resp)
        if resp.status_code // 100 != 2:
            return await _raw(send, resp.status_code, headers, body)  # the upstream's own error, passed through
        try:
            completion = json.loads(body)
            if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
                raise ValueError("no choices")
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise _Refused(502, f"the upstream {self.upstream} answered {resp.status_code} with a body that is not a"
                                " completion (malformed JSON); nothing was logged", "upstream_malformed",
                           "upstream_error") from None
        outputs = _outputs(completion, operation)
        logged = await self._log(request, completion, outputs, model, operation, subject, None)
        headers += [(b"x-glasslog-index", str(logged.index).encode()), (b"x-glasslog-receipt-token", logged.token.encode()),
                    (b"x-glasslog-receipt", b"/v1/receipt")]
        await _raw(send, resp.status_code, headers, body)

    async def _passthrough(self, scope, receive, send) -> None:
        await self._read_body(receive)
        try:
            resp = await self.client().get(self._url(scope), headers=self._forward_headers(scope))
        except httpx.HTTPError as exc:
            raise _Refused(502, f"the upstream {self.upstream} is unreachable: {type(exc).__name__}: {exc}",
                           "upstream_unreachable", "upstream_error") from None
        await _raw(send, resp.status_code, _response_headers(resp), resp.content)

    async def _stream(self, scope, receive, send, raw: bytes, request: dict, model, operation: str,
                      subject: str | None) -> None:
        client = self.client()
        req = client.build_request("POST", self._url(scope), content=raw, headers=self._forward_headers(scope))
        try:
            resp = await client.send(req, stream=True)
        except httpx.HTTPError as exc:
            raise _Refused(502, f"the upstream {self.upstream} is unreachable: {type(exc).__name__}: {exc}"
                                " (nothing was logged)", "upstream_unreachable", "upstream_error") from None
        try:
            if resp.status_code // 100 != 2:
                body = await resp.aread()
                return await _raw(send, resp.status_code, _response_headers(resp), body)
            disconnected = asyncio.Event()

            async def watch() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        disconnected.set()
                        return

            watcher = asyncio.ensure_future(watch())
            acc = _StreamState(operation)
            incomplete: str | None = None
            started = False
            buffer = b""
            chunks = resp.aiter_bytes()
            try:
                while True:
                    nxt = asyncio.ensure_future(chunks.__anext__())
                    stop = asyncio.ensure_future(disconnected.wait())
                    done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                    if nxt not in done or disconnected.is_set():
                        nxt.cancel()
                        incomplete = "client-disconnected"
                        break
                    stop.cancel()
                    try:
                        chunk = nxt.result()
                    except StopAsyncIteration:
                        break
                    except httpx.HTTPError:
                        incomplete = "upstream-error"
                        break
                    if not started:
                        await send({"type": "http.response.start", "status": resp.status_code,
                                    "headers": _response_headers(resp)})
                        started = True
                    buffer += chunk
                    events, buffer = _split_events(buffer)
                    out = []
                    for ev in events:
                        if acc.feed(ev):  # data: [DONE]: held back until the generation is logged
                            acc.done_event = ev
                            continue
                        out.append(ev)
                    if out:
                        await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
                if buffer.strip() and incomplete is None:
                    if acc.feed(buffer):
                        acc.done_event = buffer
                    elif not disconnected.is_set():
                        await send({"type": "http.response.body", "body": buffer, "more_body": True})
                if acc.malformed and incomplete is None:
                    incomplete = "upstream-malformed-chunk"
            finally:
                watcher.cancel()
            if not started:
                await send({"type": "http.response.start", "status": resp.status_code, "headers": _response_headers(resp)})
                started = True
            completion = acc.completion()
            outputs = _outputs(completion, operation)
            if incomplete == "client-disconnected":
                # the client is gone: log what was generated, without holding anything up
                fut = asyncio.ensure_future(self._log(request, completion, outputs, model, operation, subject, incomplete))
                self.pending.add(fut)
                fut.add_done_callback(self.pending.discard)
                return
            logged = await self._log(request, completion, outputs, model, operation, subject, incomplete)
            tail = RECEIPT_COMMENT + json.dumps({"index": logged.index, "receipt_token": logged.token,
                                                 "receipt": "/v1/receipt"}).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": tail + (acc.done_event or b""), "more_body": False})
        finally:
            await resp.aclose()

    # ------------------------------------------------------------------ the log
    async def _log(self, request: dict, completion: dict, outputs: list[dict] | None, model, operation: str,
                   subject: str | None, incomplete: str | None) -> _Logged:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._append, request, completion, outputs, model, operation,
                                          subject, incomplete)

    def _ledger(self) -> Ledger:
        lg = getattr(self._writer_local, "ledger", None)
        if lg is None:
            lg = self._writer_local.ledger = Ledger.open(self.config.data_dir, self.config.store)
            lg.group = self._group
        return lg

    def _append(self, request: dict, completion: dict, outputs, model, operation: str, subject: str | None,
                incomplete: str | None) -> _Logged:
        ledger = self._ledger()
        prompt = _prompt_value(request, operation)
        usage = completion.get("usage") if isinstance(completion.get("usage"), dict) else {}
        tokens = None
        if usage:
            tokens = {"prompt": _uint(usage.get("prompt_tokens")), "output": _uint(usage.get("completion_tokens"))}
        sampling = {k: request[k] for k in _SAMPLING if k in request and _jsonable(request[k])}
        if "max_completion_tokens" in sampling:
            sampling.setdefault("max_tokens", sampling.pop("max_completion_tokens"))
        if isinstance(sampling.get("seed"), int) and sampling["seed"] < 0:
            sampling.pop("seed")
        elif "seed" in sampling and not isinstance(sampling["seed"], int):
            sampling.pop("seed")
        reasons = [c.get("finish_reason") for c in completion.get("choices") or [] if isinstance(c, dict)
                   and isinstance(c.get("finish_reason"), str)]
        entry, private = reported_generation(
            source="gateway", deployment=self.config.deployment, visibility=self.visibility, operation=operation,
            model=model.fingerprint if model else None,
            reported_model={k: v[:200] for k, v in (("request", request.get("model")), ("response", completion.get("model")))
                            if isinstance(v, str) and v} or {"request": "unknown"},
            prompt=prompt, output=outputs, subject=subject or None, tokens=tokens, sampling=sampling or None,
            provider=self.config.provider, response_id=_text(completion.get("id"), 500), finish_reasons=reasons or None,
            incomplete=incomplete, upstream=self.upstream[:200])
        tokens_out: list[str] = []

        def within(tx, first: int) -> None:
            tokens_out.append(new_receipt_token(first))
            store_receipt_tokens(tx, tokens_out)

        done = ledger.append([Entry.from_object(entry, checked=True)], private, within=within)
        if model is None:
            self._unregistered_finding(ledger, request.get("model"), done.first_index)
        return _Logged(done.first_index, tokens_out[0])

    def _unregistered_finding(self, ledger: Ledger, name: Any, index: int) -> None:
        name = str(name)[:200]
        with self._raised_lock:
            if name in self._raised:
                return
            self._raised.add(name)
        ledger.append([finding_entry(time=utc_now(), source="monitor", check="unregistered-model",
                                     deployment=self.config.deployment, statistic="count", verdict="alert",
                                     severity="medium", by_role="monitor",
                                     evidence={"reported_model": name, "generation": index, "source": "gateway",
                                               "note": "the gateway forwarded requests for a model that is not registered"
                                                       " on this log (--allow-unregistered); they are logged without a"
                                                       " model fingerprint"})])

    # ------------------------------------------------------------------ receipts
    async def _receipt(self, scope, send) -> None:
        auth = _header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip().startswith("grt_"):
            status, body = _error(401, "send the receipt token from X-Glasslog-Receipt-Token: Authorization: Bearer grt_...",
                                  "unauthorized", "authentication_error")
            return await _json(send, status, body)
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(self._writer, self._receipt_for, token.strip())
        except AuthError as exc:
            status, body = _error(401, str(exc), "unauthorized", "authentication_error")
            return await _json(send, status, body)
        except (GlasslogError, LookupError) as exc:
            status, body = _error(404, str(exc), "not_found")
            return await _json(send, status, body)
        await _json(send, 200, out)

    def _receipt_for(self, token: str) -> dict:
        from ..capture import receipt

        ledger = self._ledger()
        who = KeyStore(ledger).authenticate(token)
        if who.role != "subject" or who.entry_index is None:
            raise AuthError("this is for receipt tokens (grt_...)")
        rc = receipt(ledger, who.entry_index, include_private=True)
        return {"index": who.entry_index, "generation": json.loads(rc.entry), "receipt": rc.to_dict(),
                "verifier_key": ledger.verifier_key}


# ---------------------------------------------------------------------- pure helpers
def _header(scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


def _response_headers(resp: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.multi_items()
            if k.lower() not in _HOP_OUT]


async def _raw(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _json(send, status: int, obj: Any) -> None:
    await _raw(send, status, [(b"content-type", b"application/json")], json.dumps(obj).encode())
