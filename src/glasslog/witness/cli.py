"""``glasslog witness ...``: run a C2SP tlog-witness (a Typer sub-app, ``app``).

Also runs on its own, without the rest of glasslog's command line (and so
without the model stack): ``python -m glasslog.witness init|add-log|logs|serve``.

Exit codes: 0 success, 2 bad usage or input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .core import KEY_FILE, VKEY_FILE, WITNESS_DIR_ENV, Witness

__all__ = ["app"]

app = typer.Typer(help="Run a witness: cosign other logs' checkpoints after checking they are append-only (C2SP tlog-witness).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

WitnessDir = Annotated[Path, typer.Option("--dir", envvar=WITNESS_DIR_ENV, help="The witness's directory (key and state).",
                                          show_default=True)]
DEFAULT_DIR = Path("glasslog-witness")


def _fail(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _open(directory: Path) -> Witness:
    try:
        return Witness(directory)
    except ValueError as exc:
        _fail(str(exc))


@app.command("init")
def init(
    name: Annotated[str, typer.Option("--name", help="The witness's key name, by convention a URL without scheme, "
                                                      "e.g. witness.example.org/w1.")],
    directory: WitnessDir = DEFAULT_DIR,
) -> None:
    """Make the witness's Ed25519 cosigning key (mode 0600), its verifier key and its state database."""
    try:
        w = Witness.init(directory, name)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"witness {name} created in {directory}\n  private key: {directory / KEY_FILE} (mode 0600; keep it secret)\n"
               f"  verifier key (publish it; logs and verifiers use it): {directory / VKEY_FILE}\n{w.verifier_key}")
    w.close()


@app.command("add-log")
def add_log(
    origin: Annotated[str, typer.Argument(help="The log's origin line, e.g. bank.example/credit-decisions.")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key (name+keyhash+base64), obtained independently.")],
    directory: WitnessDir = DEFAULT_DIR,
) -> None:
    """Follow a log: cosign its checkpoints from now on, each only if consistent with the last."""
    w = _open(directory)
    try:
        added = w.add_log(origin, key)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        w.close()
    typer.echo(f"following {origin} with key {key.strip()}" if added else f"already following {origin} with that key")


@app.command("logs")
def logs(directory: WitnessDir = DEFAULT_DIR) -> None:
    """List the logs this witness follows, the size it last cosigned for each, and the last refusals kept as evidence
    (a refused consistency proof is labelled a possible fork)."""
    from ..ledger.witnesses import fork_hint

    w = _open(directory)
    try:
        rows = w.store.logs()
        evidence = w.store.evidence()
    finally:
        w.close()
    typer.echo(f"witness {w.verifier_key}")
    if not rows:
        typer.echo("follows no log yet: glasslog witness add-log ORIGIN --key VKEY")
    for origin, key, state in rows:
        seen = f"last cosigned tree size {state.tree_size} at {state.updated_at}" if state else "nothing cosigned yet"
        typer.echo(f"  {origin}  {key}  {seen}")
        for e in [e for e in evidence if e["origin"] == origin][-5:]:
            times = f"{e['count']} times, {e['at']} .. {e['last_at']}" if e["count"] > 1 else f"at {e['at']}"
            typer.echo(f"    refused a validly signed checkpoint from old size {e['old_size']} ({times}): {e['reason']}"
                       + fork_hint("", e["reason"]))


@app.command("catch-up")
def catch_up_cmd(
    origin: Annotated[str, typer.Argument(help="The log's origin (one this witness follows).")],
    log_url: Annotated[str, typer.Option("--log-url", help="Where the log serves C2SP tlog-tiles: GET <url>/checkpoint, "
                                                           "<url>/tile/...")],
    directory: WitnessDir = DEFAULT_DIR,
) -> None:
    """Catch up without waiting for the log: fetch its newest checkpoint and the tiles for the consistency proof, check, cosign."""
    from .catchup import catch_up
    from .core import WitnessError

    w = _open(directory)
    try:
        result = catch_up(w, origin, log_url)
    except WitnessError as exc:
        _fail(f"refused ({exc.status}): {exc.message.strip()}", 1)
    except OSError as exc:
        _fail(f"cannot reach the log at {log_url}: {exc}")
    finally:
        w.close()
    if result.cosignature is None:
        typer.echo(f"{origin}: already at tree size {result.new_size}; nothing to cosign")
    else:
        typer.echo(f"{origin}: tree size {result.old_size} -> {result.new_size}, consistent; cosigned:\n{result.cosignature}", nl=False)


@app.command("serve")
def serve(
    directory: WitnessDir = DEFAULT_DIR,
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness) and GET / (who this witness is, what it follows)."""
    import uvicorn

    from .app import create_witness_app

    try:
        application = create_witness_app(directory)
    except ValueError as exc:
        _fail(str(exc))
    sys.stderr.write(f"witness {application.state.witness.verifier_key} serving on http://{host}:{port}/add-checkpoint\n")
    uvicorn.run(application, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)


def main() -> None:  # pragma: no cover - console entry point (glasslog-witness, python -m glasslog.witness)
    name = Path(sys.argv[0]).name
    app(prog_name="python -m glasslog.witness" if name == "__main__.py" else name)
