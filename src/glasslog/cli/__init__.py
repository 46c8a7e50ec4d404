"""``glasslog`` command line: one module per command group.

Exit codes (``glasslog.errors``): 0 success, 1 a verification failed, 2 bad
usage or input. The data directory comes from ``--data-dir``, else
``$GLASSLOG_DATA_DIR``, else ``./glasslog-data``; the log's database is the
SQLite file in it unless ``glasslog --store postgresql://...`` (or
``$GLASSLOG_STORE``) names a PostgreSQL database.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from typer.core import TyperGroup, TyperOption

from ..errors import GlasslogError
from ..storage import STORE_ENV, is_url
from ..watermark import cli as watermark_cli
from ..witness import cli as witness_cli
from . import audit, demo, deployments, flags, gateway, keys, log, migrate, models, monitor, scenarios, serve, verify, witnesses
from .common import fail, fail_with

__all__ = ["app", "main"]



def _flag_type(display_type_rich):
    """typer 0.29 labels every option with its annotation's type, flags included ('--help <bool>', '--json <bool>'):
    a flag takes no value, so it gets no type label (as click and earlier typer versions print it)."""

    def wrapped(self, ctx):
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return display_type_rich(self, ctx)

    wrapped.__glasslog__ = True
    return wrapped


if not getattr(TyperOption.display_type_rich, "__glasslog__", False):
    TyperOption.display_type_rich = _flag_type(TyperOption.display_type_rich)


class _Glasslog(TyperGroup):
    """The root command: a ``GlasslogError`` no command caught (e.g. an unusable signer key where a command writes)
    is one line and its kind's exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GlasslogError as exc:
            fail_with(exc)


app = typer.Typer(help="glasslog: a verifiable, append-only log of a deployed model's decisions.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, cls=_Glasslog)


@app.callback()
def _root(
    store: Annotated[str | None, typer.Option(
        "--store", envvar=STORE_ENV, show_envvar=True,
        help="The log's database when it is not the data directory's SQLite file: postgresql://user@host:port/dbname. "
             "Applies to every command.")] = None,
) -> None:
    """glasslog: a verifiable, append-only log of a deployed model's decisions."""
    if store:
        if not is_url(store):
            fail(f"--store must be a postgresql:// URL (leave it out for the data directory's SQLite file), got {store!r}")
        os.environ[STORE_ENV] = store  # every command (and serve's worker processes) opens the log through it


for command in (log.init, demo.demo, log.checkpoint, log.entry, log.receipt, serve.serve, gateway.gateway,
                migrate.migrate):
    app.command()(command)
app.add_typer(log.prove_app, name="prove")
app.add_typer(verify.verify_app, name="verify")
app.add_typer(models.models_app, name="models")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(deployments.deployments_app, name="deployments")
app.add_typer(scenarios.scenarios_app, name="scenarios")
app.add_typer(flags.flags_app, name="flags")
app.add_typer(flags.triage_app, name="triage")
app.add_typer(audit.app, name="audit")
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(witness_cli.app, name="witness")
app.add_typer(watermark_cli.app, name="watermark")
app.add_typer(witnesses.witnesses_app, name="witnesses")


def main() -> None:  # pragma: no cover - console entry point wrapper
    app()
