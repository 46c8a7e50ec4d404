"""The glasslog HTTP server: tiles any verifier can read, a JSON API with a view
for each overseer, weights disclosure by tier, the kill switch, and the web
register for people.

Read API for verifiers (no credentials; an ``Authorization`` header is
ignored there, as by any static file server), C2SP tlog-tiles:
``GET /checkpoint``, ``GET /tile/<L>/<N>[.p/<W>]``, ``GET /tile/entries/<N>[.p/<W>]``.

JSON API under ``/v1`` (see ``docs/openapi.json``, regenerated with
``glasslog serve --write-openapi docs/openapi.json``). Credentials:
``Authorization: Bearer glk_...`` (API key) or ``Bearer grt_...`` (a subject's
receipt token); none for the public.

Where things are:

- ``routes/``: one module per resource (see ``routes/__init__.py``);
- ``deps``: the app's state, this thread's connection to the log, the caller
  and role checks, strict query strings, rate limits and caches; the
  concurrency model;
- ``schemas``: the model bases and patterns the route modules share;
- ``problems``: RFC 9457 problem+json errors and the exception handlers;
- ``middleware``: body size limits, gzip, strict JSON bodies;
- ``web``: the web register's aggregates, published reports and template helpers;
- this module: ``create_app``, which only wires them together.
"""


from pathlib import Path

from fastapi import FastAPI

from .. import __version__
from ..ledger import Ledger
from . import middleware, problems
from .cosigning import attach_cosigning
from .deps import ServerState
from .routes import API_ROUTERS, otlp, pages

__all__ = ["create_app", "app_from_env"]


def create_app(data_dir: str | Path, store: str | None = None) -> FastAPI:
    """Build the app for the log in ``data_dir`` (keys, artifacts) and ``store``.

    Args:
        data_dir: the log's data directory.
        store: the log's database URL when it is not the data directory's
            SQLite file (default ``$GLASSLOG_STORE``).

    Raises:
        LedgerError: there is no log there.
    """
    data_dir = Path(data_dir)
    Ledger.open(data_dir, store).close()  # fail now, not on the first request
    app = FastAPI(
        title="glasslog",
        version=__version__,
        description="A verifiable, append-only log of a deployed model's decisions, bound to its weights, "
                    "with a view for each overseer. Verifier endpoints follow C2SP tlog-tiles. "
                    "Errors are RFC 9457 application/problem+json.",
        docs_url=None,  # no Swagger UI / ReDoc: they load scripts from a CDN on the console's origin; see /openapi.json
        redoc_url=None,
    )
    app.state.glasslog = ServerState(data_dir, store)
    middleware.install(app)
    problems.install(app, page_not_found=pages.page_not_found)
    # The routers' routes are added to the app's own list, not with include_router: since FastAPI 0.137 an
    # included router is one lazy node of app.routes, and the 405 handler (every method of a path) and the
    # tests read the routes from that list.
    for router in API_ROUTERS:
        app.router.routes.extend(router.routes)
    app.router.routes.extend(otlp.router.routes)  # OTLP/HTTP receiver (glasslog.ingest): POST /v1/traces, /v1/logs
    app.mount("/static", pages.static_files(), name="static")
    app.router.routes.extend(pages.router.routes)
    attach_cosigning(app, data_dir, store)  # witnesses' cosignatures, beside the write path (cosigning.py)
    return app


def app_from_env() -> FastAPI:
    """App factory for multi-worker uvicorn: the data directory comes from ``$GLASSLOG_DATA_DIR``."""
    from ..ledger import default_data_dir

    return create_app(default_data_dir())
