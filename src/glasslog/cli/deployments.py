"""``glasslog deployments declare|list``: where a model's outputs are logged, and whether they are public."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import DEFAULT_DIR, DataDir, JsonOut, out
from .common import fail as _fail
from .common import open_ledger as _open
from .common import print_json as _print_json

deployments_app = typer.Typer(help="Deployments: where decisions and generations are logged, public-service or private.",
                              no_args_is_help=True)


@deployments_app.command("declare")
def declare(
    name: Annotated[str, typer.Argument(help="The deployment's name, e.g. acme.example/assistant.")],
    visibility: Annotated[str, typer.Option(help="public-service (outputs public) or private (outputs committed; the "
                                                 "public sees counts).")],
    description: Annotated[str, typer.Option(help="What the deployment is, in plain words.")] = "",
    embeddings: Annotated[str, typer.Option(help="What its applications' reported embeddings operations (OTLP spans) "
                                                 "become: skip (not logged) or decision (decision entries naming the "
                                                 "registered embedding model). Fixed at declaration.")] = "skip",
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Declare a deployment (a deployment entry on the log); declaring it again identically is a no-op."""
    from ..errors import GlasslogError
    from ..registry import Deployments

    ledger = _open(data_dir)
    try:
        d = Deployments(ledger).declare(name, visibility, description, embeddings)
    except GlasslogError as exc:
        _fail(str(exc))
    if json_out:
        _print_json(d.to_dict())
        return
    extra = ", embeddings logged as decisions" if d.embeddings == "decision" else ""
    out.print(f"deployment {d.name} ({d.visibility}{extra}), declared at entry {d.declared_index}")


@deployments_app.command("list")
def list_(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOut = False) -> None:
    """List declared deployments."""
    from ..registry import Deployments

    items = Deployments(_open(data_dir)).list()
    if json_out:
        _print_json([d.to_dict() for d in items])
        return
    t = Table(title="Deployments")
    for col in ("name", "visibility", "embeddings", "declared at", "description"):
        t.add_column(col)
    for d in items:
        t.add_row(d.name, d.visibility, d.embeddings, str(d.declared_index), d.description)
    out.print(t)
