"""``glasslog serve``: the HTTP API and web register (FastAPI + uvicorn)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..ledger import DATA_DIR_ENV, LedgerError
from .common import DEFAULT_DIR, DataDir, err, out
from .common import fail as _fail


def serve(
    data_dir: DataDir = DEFAULT_DIR,
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="Trust X-Forwarded-For / X-Forwarded-Proto from these proxy addresses (comma-separated), e.g. the "
             "HTTPS reverse proxy in front of the server. Default: trust none, so per-address limits count the "
             "connecting address and a client cannot choose its own.")] = None,
    openapi: Annotated[Path | None, typer.Option("--write-openapi", help="Write the OpenAPI spec to this file and exit.")] = None,
    commit_window_ms: Annotated[float | None, typer.Option(
        "--commit-window-ms", min=0, max=1000,
        help="Group commit: milliseconds the first of several concurrent appends waits for others before committing "
             "them in one transaction (default 0: whatever queued while the last commit synced).")] = None,
    commit_max_entries: Annotated[int | None, typer.Option(
        "--commit-max-entries", min=1, help="Group commit: most entries in one transaction (default 5000).")] = None,
    header_timeout: Annotated[float, typer.Option(
        "--header-timeout", min=0.1, help="Seconds a connection may take to send a complete request head; a slower"
                                          " client is disconnected.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        "--body-timeout", min=0.1, help="Seconds a request may take to send its body (model uploads: ten times this);"
                                        " a slower one is answered 408 and disconnected.")] = 30.0,
) -> None:
    """Serve the log over HTTP: C2SP tiles for verifiers and the JSON API (FastAPI + uvicorn)."""
    import os

    from ..server import create_app
    from ..server.deps import COMMIT_MAX_ENV, COMMIT_WINDOW_ENV
    from ..server.timeouts import BODY_TIMEOUT_ENV, HEADER_TIMEOUT_ENV, head_protocol

    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)  # every worker process reads them
    os.environ[BODY_TIMEOUT_ENV] = str(body_timeout)

    if commit_window_ms is not None:  # through the environment, so that every worker process gets them
        os.environ[COMMIT_WINDOW_ENV] = str(commit_window_ms)
    if commit_max_entries is not None:
        os.environ[COMMIT_MAX_ENV] = str(commit_max_entries)
    try:
        application = create_app(data_dir)
    except LedgerError as exc:
        _fail(str(exc))
    if openapi is not None:
        openapi.write_text(json.dumps(application.openapi(), indent=2, sort_keys=True) + "\n")
        out.print(f"wrote {openapi}")
        return
    import socket

    import uvicorn

    try:  # say so plainly now, instead of uvicorn's exit after the banner
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server using the port? try --port)")
    err.print(f"glasslog serving {data_dir} on http://{host}:{port}  (register: /; verifiers: /checkpoint, /tile/...; API: /v1, spec: /openapi.json, docs/API.md)")
    # uvicorn trusts forwarded headers from 127.0.0.1 by default: any local process could then pick its address.
    proxy = ({"proxy_headers": True, "forwarded_allow_ips": forwarded_allow_ips} if forwarded_allow_ips
             else {"proxy_headers": False})
    if workers > 1:

        os.environ[DATA_DIR_ENV] = str(data_dir)
        # uvicorn kills a worker that does not answer its health check within 5 s by default: on a loaded machine a
        # worker still importing the stack is killed and respawned forever, and the server never answers
        uvicorn.run("glasslog.server.app:app_from_env", host=host, port=port, workers=workers, factory=True,
                    log_level="warning", timeout_graceful_shutdown=30, http=head_protocol(),
                    timeout_worker_healthcheck=120, **proxy)
    else:
        uvicorn.run(application, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30,
                    http=head_protocol(), **proxy)


