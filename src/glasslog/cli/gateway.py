"""``glasslog gateway --upstream URL``: the OpenAI-compatible gateway that logs every completion (``glasslog.ingest.gateway``)."""

from __future__ import annotations

import re
import socket
from typing import Annotated

import typer

from ..errors import GlasslogError
from .common import DEFAULT_DIR, DataDir, err
from .common import fail as _fail


def gateway(
    upstream: Annotated[str, typer.Option(help="The OpenAI-compatible server to forward to, e.g. http://127.0.0.1:8001 "
                                               "(vLLM, llama.cpp server, Ollama, transformers serve).")],
    deployment: Annotated[str, typer.Option(help="The declared deployment its completions are logged in (its visibility "
                                                 "decides whether outputs are public or committed).")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="NAME=FINGERPRINT: the registered model a request's 'model' name stands for (repeatable). "
                        "Without one, names are matched to registered cards (name, name:version) or fingerprints.")] = None,
    allow_unregistered: Annotated[bool, typer.Option(
        help="Forward and log requests for models that are not registered (logged as such, with a finding) "
             "instead of refusing them.")] = False,
    provider: Annotated[str | None, typer.Option(help="Provider name recorded on each entry, e.g. vllm.")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8300,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the upstream.")] = 600.0,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Put an OpenAI-compatible gateway in front of a model server: requests are forwarded unchanged, every
    completion is logged as a generation entry with a receipt (X-Glasslog-Index, X-Glasslog-Receipt-Token;
    GET /v1/receipt), and a suspended model's requests are refused (nothing is forwarded)."""
    import os

    from ..ingest.gateway import Gateway, GatewayConfig
    from ..storage import STORE_ENV

    aliases = {}
    for item in model or []:
        name, sep, fp = item.rpartition("=")
        if not sep or not name or not re.fullmatch(r"sha256:[0-9a-f]{64}", fp):
            _fail(f"--model must be NAME=sha256:<64 hex digits>, got {item!r}")
        aliases[name] = fp
    try:
        app = Gateway(GatewayConfig(data_dir, upstream, deployment, store=os.environ.get(STORE_ENV) or None, aliases=aliases,
                                    allow_unregistered=allow_unregistered, timeout=timeout, provider=provider))
    except (GlasslogError, ValueError) as exc:
        _fail(str(exc))
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server using the port? try --port)")
    import uvicorn

    err.print(f"glasslog gateway on http://{host}:{port}/v1 -> {upstream}; logging completions in deployment {deployment!r}"
              f" of {data_dir}")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30, lifespan="on")


__all__ = ["gateway", "DEFAULT_DIR"]
