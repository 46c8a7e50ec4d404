"""What every ``glasslog`` command shares: options, consoles, failing with a message, opening the log, JSON output.

Exit codes (every command, defined once in ``glasslog.errors``): 0 success,
1 a check failed or found something, 2 bad usage or input.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, GlasslogError
from ..ledger import DATA_DIR_ENV, Ledger, LedgerError

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "USER_ERRORS", "DataDir", "JsonOut", "Trust", "TrustRecorded", "DEFAULT_DIR", "out", "err",
           "fail", "check_out", "open_ledger", "PlainWhenPiped", "plain_table", "print_json", "progress_bar", "stage_progress", "verdict_mark", "b64"]

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar=DATA_DIR_ENV, show_default=True,
                                       help="Where the log lives (keys, artifacts; and its SQLite database unless --store "
                                            "names another).")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Trust = Annotated[list[str] | None, typer.Option("--trust", help="An extra skops type you reviewed and trust for loading"
                                                 " registered weights (as skops names it); repeatable.")]
TrustRecorded = Annotated[bool, typer.Option("--trust-recorded", help="Also trust the skops types recorded with each"
                                             " model's registration (see glasslog models show).")]
DEFAULT_DIR = Path("glasslog-data")

USER_ERRORS = (GlasslogError, OSError, ValueError, LookupError)
"""What a command reports as one line and exit 2 (or the error's own exit code) instead of a traceback.

``GlasslogError`` is the rule; ``ValueError`` and ``LookupError`` stay because
libraries under the domain code (pandas, scikit-learn, skops) refuse bad input with them."""

class PlainWhenPiped(Console):
    """A Rich console whose tables, when the output is not a terminal (a pipe, a file) and ``$COLUMNS`` is not set,
    are printed in a plain layout: one line per row, columns aligned with spaces, no box and no wrapping (at Rich's
    default 80 columns wide tables were folded into unreadable cells)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        import os

        from rich.table import Table

        if not self.is_terminal and "COLUMNS" not in os.environ and any(isinstance(o, Table) for o in objects):
            for o in objects:
                if isinstance(o, Table):
                    super().print(plain_table(o), soft_wrap=True, highlight=False)
                else:
                    super().print(o, **kwargs)
            return
        if not self.is_terminal and "COLUMNS" not in os.environ:
            kwargs.setdefault("soft_wrap", True)  # redirected: one message, one line (no folding at 80 columns)
        super().print(*objects, **kwargs)


def plain_table(table) -> Any:
    """``table`` as plain text: its title, a header line and one line per row, columns padded to their widest cell."""
    from rich.text import Text

    def text(cell: Any) -> str:
        if isinstance(cell, Text):
            return cell.plain
        if isinstance(cell, str):
            return Text.from_markup(cell).plain
        return str(cell)

    cols = table.columns
    header = [text(c.header) for c in cols]
    rows = [[text(c) for c in col._cells] for col in cols]
    n = max((len(r) for r in rows), default=0)
    cells = [[rows[j][i] if i < len(rows[j]) else "" for j in range(len(cols))] for i in range(n)]
    lines = [*([header] if table.show_header else []), *cells]
    widths = [max((len(line[j].replace("\n", " ")) for line in lines), default=0) for j in range(len(cols))]
    out = [text(table.title)] if table.title else []
    for line in lines:
        out.append("  ".join(c.replace("\n", " ").ljust(w) for c, w in zip(line, widths)).rstrip())
    return Text("\n".join(out))


out = PlainWhenPiped()
err = PlainWhenPiped(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` to standard error and exit with ``code`` (default 2, bad usage or input)."""
    # one line however long (a terminal wraps it; a pipe or log gets it whole); messages may hold [brackets]
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fail_with(exc: BaseException) -> NoReturn:
    """Report an error caught as ``USER_ERRORS``: its message, and its kind's exit code (``glasslog.errors``)."""
    if isinstance(exc, OSError) and not isinstance(exc, GlasslogError):
        fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    fail(str(exc), getattr(exc, "exit_code", EXIT_USAGE))


def check_out(path: Path, option: str = "--out") -> None:
    """Create the missing parent directories of an output path and say so on standard error: a typo must not
    silently create a directory tree. A parent that exists as a file is refused (exit 2)."""
    parent = Path(path).expanduser().absolute().parent
    if parent.is_dir():
        return
    if parent.exists():
        fail(f"{option} {path}: {parent} is not a directory")
    try:
        parent.mkdir(parents=True)
    except OSError as exc:
        fail(f"{option} {path}: cannot create the directory {parent}: {exc.strerror or exc}")
    err.print(f"note: {option}: created the missing directory {parent}", highlight=False, soft_wrap=True)


def open_ledger(data_dir: Path) -> Ledger:
    """Open the log in ``data_dir`` (its database: ``--store`` / ``$GLASSLOG_STORE`` if set), or exit 2 saying why."""
    try:
        return Ledger.open(data_dir)
    except LedgerError as exc:
        fail(str(exc))


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to standard output (values JSON cannot hold are written as text)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def progress_bar() -> Progress:
    """A transient Rich progress bar on standard error (description, bar, done/total, elapsed)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


@contextmanager
def stage_progress(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A transient progress bar per stage, and the ``progress(stage, done, total)`` callback domain functions take.

    The domain reports stages by name (e.g. "scoring applicants", 30, 300); each new name gets its own bar.
    ``quiet`` hides the bars (the callback still works).
    """
    bar = progress_bar()
    bar.disable = quiet
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield report


def verdict_mark(ok: bool) -> str:
    """Rich markup for a check's outcome in a summary table: green "verified" or bold red "FAILED"."""
    return "[green]verified[/]" if ok else "[bold red]FAILED[/]"


def b64(b: bytes) -> str:
    """Standard base64 text of ``b``."""
    return base64.b64encode(b).decode()
