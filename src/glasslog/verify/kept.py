"""Checkpoints a verifier holds outside the log, to detect rollback, truncation, lost write-ahead files and removal.

A log's database, read alone, cannot show that it was rolled back to an
older copy, truncated consistently, or lost its write-ahead file: every hash
and checkpoint left in it is consistent. What shows it is a checkpoint kept
elsewhere, that the log must still extend (and still hold). C2SP
tlog-witness has no read API, so a verifier takes the newest witnessed
checkpoint from where it really has one:

- a file holding a cosigned checkpoint note (saved from the log's
  ``GET /checkpoint``) or a receipt (JSON; its checkpoint is used);
- the log's ``GET /checkpoint`` URL itself (only useful when the log served
  is not the database being checked, e.g. a backup checked against the live
  server);
- the witness's own state, when the witness runs on the same machine: the
  checkpoint it last cosigned for the log's origin, in ``<dir>/witness.db``.

``read_kept`` returns the note text; the caller checks it with the log's key
(and a witness policy) before handing it to ``audit_log`` / ``resume_audit``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import BadInputError

__all__ = ["read_kept", "witness_state_note", "MAX_NOTE"]

MAX_NOTE = 64 * 1024
"""Largest checkpoint note (or receipt) read, in bytes."""


def read_kept(source: str, timeout: float = 10.0) -> str:
    """The checkpoint note held in ``source``: an http(s) URL, a note file or a receipt file.

    Raises:
        BadInputError: unreadable, too large, not UTF-8, or a receipt without a checkpoint.
    """
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=timeout) as r:  # noqa: S310 - the verifier names the URL
                data = r.read(MAX_NOTE + 1)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            raise BadInputError(f"cannot fetch the checkpoint from {source}: {exc}") from None
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(MAX_NOTE + 1)
        except OSError as exc:
            raise BadInputError(f"cannot read the checkpoint file {source}: {exc.strerror}") from None
    if len(data) > MAX_NOTE:
        raise BadInputError(f"{source} is larger than {MAX_NOTE} bytes: not a checkpoint or a receipt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{source} is not UTF-8 text: not a checkpoint or a receipt") from None
    if not text.strip():
        raise BadInputError(f"{source} is empty: not a signed checkpoint note")
    if text.lstrip().startswith("{"):
        try:
            note = json.loads(text).get("checkpoint")
        except (ValueError, AttributeError):
            note = None
        if not isinstance(note, str):
            raise BadInputError(f"{source} is JSON but not a receipt with a checkpoint")
        text = note
    _check_shape(text, source)
    return text


def _check_shape(note: str, source: str) -> None:
    """A malformed note is bad input (exit 2), told apart from a well-formed one whose signature or history fails."""
    from ..ledger.note import NoteError, parse_checkpoint, split_note

    try:
        body, _ = split_note(note, malformed=[])  # junk lines of unknown keys are the signature check's business
        parse_checkpoint(body)
    except NoteError as exc:
        raise BadInputError(f"{source} is not a well-formed signed checkpoint note: {exc}") from None


def witness_state_note(directory: str | Path, origin: str) -> str | None:
    """The checkpoint the witness in ``directory`` last cosigned for ``origin`` (None: it never cosigned one).

    Raises:
        BadInputError: ``directory`` holds no witness state database.
    """
    from ..storage.witness import WITNESS_DB, WitnessStore

    path = Path(directory) / WITNESS_DB
    if not path.is_file():
        raise BadInputError(f"no witness state in {directory} ({WITNESS_DB} not found)")
    store = WitnessStore(path)
    try:
        state = store.state(origin)
    finally:
        store.close()
    return None if state is None else state.note
