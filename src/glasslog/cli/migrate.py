"""``glasslog migrate``: copy a log between back ends and prove the copy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..storage import describe, is_url
from .common import DEFAULT_DIR, USER_ERRORS, DataDir, JsonOut, fail, fail_with, out, print_json


def migrate(
    source: Annotated[str, typer.Option("--from", help="The log to copy: its data directory (SQLite) or a postgresql:// URL.")],
    target: Annotated[str, typer.Option("--to", help="An empty PostgreSQL database: postgresql://user@host:port/dbname.")],
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Copy a log to another back end (entries, hashes, checkpoints, private values, keys) and prove the copy has the
    same root at every checkpoint.

    The signer key and artifacts stay where they are: with --from DIR they are in DIR; with a URL, in --data-dir.
    """
    from ..storage.migrate import migrate as copy

    if not is_url(target):
        fail(f"--to must be a postgresql:// URL, got {target!r}")
    keys_dir = Path(source) if not is_url(source) else data_dir
    try:
        summary = copy(source, target, keys_dir)
    except USER_ERRORS as exc:
        fail_with(exc)
    if json_out:
        print_json(summary)
        return
    out.print(f"copied {describe(source)} to {describe(target)}: "
              + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary.items() if isinstance(v, int)))
    if summary.get("source_retired_as"):
        out.print(f"the old SQLite file is retired as {summary['source_retired_as']} (read-only), so nothing can append to "
                  "the old log any more; commands on this data directory now say where its log went", highlight=False)
    out.print(f"every checkpoint's root is the same in both ([green]verified[/]); serve it with: "
              f"glasslog --store '{describe(target)}' serve --data-dir {keys_dir}", highlight=False)
