"""The read side for verifiers, C2SP tlog-tiles: ``GET /checkpoint``, ``GET /tile/<L>/<N>[.p/<W>]``,
``GET /tile/entries/<N>[.p/<W>]``.

No credentials: an ``Authorization`` header is ignored here, and so is a query
string, as by any static file server or CDN. Tiles and entry bundles never
change once served (``Cache-Control: immutable``); the checkpoint is cached
for 2 seconds.

The endpoints are ``async def``: each is a few indexed reads of the log (WAL
readers never wait for the writer), cheaper than the hop to a worker thread
and back that a plain ``def`` costs (FastAPI runs both the endpoint and its
response validation in the pool).
"""


import gzip

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response

from ...ledger.tiles import TilePathError, parse_tile_path
from ...ledger.witnesses import cosigned_checkpoint
from ..deps import State, api_router
from ..problems import errors, not_found

__all__ = ["router", "IMMUTABLE"]

IMMUTABLE = "public, max-age=31536000, immutable"

router = api_router()


def _accepts_gzip(request: Request) -> bool:
    """True if the request's Accept-Encoding admits gzip (RFC 9110 section 12.5.3; ``gzip;q=0`` refuses it)."""
    for part in request.headers.get("accept-encoding", "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


@router.get("/checkpoint", response_class=PlainTextResponse, tags=["verifiers"], responses=errors(),
            summary="Latest signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)")
async def get_checkpoint(s: State) -> Response:
    return PlainTextResponse(cosigned_checkpoint(s.ctx().ledger), media_type="text/plain; charset=utf-8",
                             headers={"Cache-Control": "public, max-age=2"})


@router.get("/tile/{path:path}", tags=["verifiers"], summary="C2SP tlog-tiles hash tile or entry bundle",
            response_class=Response,
            responses={200: {"description": "the tile's bytes",
                             "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                       **errors(404)})
async def get_tile(path: str, request: Request, s: State) -> Response:
    try:
        ref = parse_tile_path("tile/" + path)
    except TilePathError as exc:
        raise not_found(str(exc)) from None
    headers = {"Cache-Control": IMMUTABLE}
    ledger = s.ctx().ledger
    try:
        if not ref.is_entries:
            return Response(ledger.tile(ref.level, ref.index, ref.width), media_type="application/octet-stream",
                            headers=headers)
        headers["Vary"] = "Accept-Encoding"
        if not _accepts_gzip(request):
            return Response(ledger.entry_bundle(ref.index, ref.width), media_type="application/octet-stream",
                            headers=headers)
        headers["Content-Encoding"] = "gzip"
        # A bundle's bytes never change, full or partial (entries are append-only): compress each once.
        key = (ref.index, ref.width)
        data = s.bundle_cache.get(key)
        if data is None:
            data = s.bundle_cache.put(key, gzip.compress(ledger.entry_bundle(ref.index, ref.width), 1, mtime=0))
    except LookupError as exc:
        raise not_found(str(exc)) from None
    return Response(data, media_type="application/octet-stream", headers=headers)
