"""``glasslog keys create|list|revoke``: API keys for overseers and operators."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import DEFAULT_DIR, DataDir, JsonOut, out
from .common import fail as _fail
from .common import open_ledger as _open
from .common import print_json as _print_json

keys_app = typer.Typer(help="API keys for operators, supervisors, researchers and developers.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="operator, supervisor, researcher or developer.")],
    name: Annotated[str, typer.Option(help="Who holds the key.")],
    deployment: Annotated[list[str] | None, typer.Option(help="For developers: a deployment they may read (repeatable). For an operator key: the one deployment "
                                                                       "its OTLP telemetry is logged in (an ingestion key).")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Issue an API key; the token is printed once and only its hash is stored."""
    from ..access import KeyStore

    ledger = _open(data_dir)
    try:
        record, token = KeyStore(ledger).create(role, name, deployment or [])
    except ValueError as exc:
        _fail(str(exc))
    if json_out:
        _print_json({**record.to_dict(), "token": token})
        return
    out.print(f"key {record.key_id} ({record.role}) for {record.name}; the token is shown once:")
    print(token)


@keys_app.command("list")
def keys_list(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOut = False) -> None:
    """List keys (ids, roles, holders; never secrets)."""
    from ..access import KeyStore

    keys = KeyStore(_open(data_dir)).list()
    if json_out:
        _print_json([k.to_dict() for k in keys])
        return
    t = Table(title="API keys")
    for col in ("key id", "role", "name", "deployments", "created", "revoked"):
        t.add_column(col)
    for k in keys:
        t.add_row(k.key_id, k.role, k.name, ", ".join(k.deployments), k.created_at, k.revoked_at or "")
    out.print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (from keys list).")], data_dir: DataDir = DEFAULT_DIR) -> None:
    """Revoke a key; it stops working at once."""
    from ..access import KeyStore

    try:
        k = KeyStore(_open(data_dir)).revoke(key_id)
    except LookupError as exc:
        _fail(str(exc))
    out.print(f"revoked key {k.key_id} ({k.role}, {k.name}) at {k.revoked_at}")


