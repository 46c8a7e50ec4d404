"""What the ``glasslog`` command and its sub-command modules share: failing with a message, opening the log, JSON output.

Exit codes (every command): 0 success, 1 a check failed or found something, 2 bad usage or input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from .ledger import Ledger, LedgerError

EXIT_FAILED = 1
EXIT_USAGE = 2

err = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` to standard error and exit with ``code`` (default 2, bad usage or input)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def open_ledger(data_dir: Path) -> Ledger:
    """Open the log in ``data_dir``, or exit 2 saying why it cannot be opened."""
    try:
        return Ledger.open(data_dir)
    except LedgerError as exc:
        fail(str(exc))


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to standard output (values JSON cannot hold are written as text)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
