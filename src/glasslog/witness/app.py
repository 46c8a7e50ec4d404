"""The witness's HTTP service (Starlette): C2SP tlog-witness ``POST /add-checkpoint``.

Also ``GET /`` (the witness's name, verifier key and the logs it follows with
the size it last cosigned), for operators and for logs adding the witness.
Bodies are read up to ``MAX_BODY_BYTES`` and refused with 413 past that,
declared or streamed. The checks and the SQLite write run in the thread
pool; their atomicity comes from the store's write lock, so several workers
or processes over one state file are safe.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .core import MAX_BODY_BYTES, Witness, WitnessError

__all__ = ["create_witness_app"]


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise WitnessError(400, "Content-Length must be a decimal number")
        if int(declared) > MAX_BODY_BYTES:
            raise WitnessError(413, f"request body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise WitnessError(413, f"request body is over the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_witness_app(directory: str | Path) -> Starlette:
    """The ASGI app of the witness in ``directory`` (made by ``Witness.init``).

    Raises:
        ValueError: no usable witness there.
    """
    witness = Witness(directory)

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _read_body(request)
            cosignature = await run_in_threadpool(witness.add_checkpoint, body)
        except WitnessError as exc:
            headers = {"Connection": "close"} if exc.status == 413 else None
            return Response(exc.message if exc.message.endswith("\n") else exc.message + "\n", status_code=exc.status,
                            media_type=exc.content_type, headers=headers)
        return PlainTextResponse(cosignature, media_type="text/plain; charset=utf-8")

    async def info(request: Request) -> Response:
        logs = await run_in_threadpool(witness.store.logs)
        return JSONResponse({"name": witness.verifier.name, "verifier_key": witness.verifier_key,
                             "logs": [{"origin": o, "verifier_key": k, "tree_size": s.tree_size if s else 0}
                                      for o, k, s in logs]})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        witness.close()

    app = Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"]), Route("/", info, methods=["GET"])],
                    lifespan=lifespan)
    app.state.witness = witness
    return app
