"""Receipts: what the person a decision is about gets.

A receipt holds the entry bytes, the entry's index, a signed checkpoint and
the inclusion proof of the entry in that checkpoint's tree; optionally the
salts and values that open the entry's commitments to the subject's own
private values. It is verified offline with the log's verifier key alone
(``glasslog.verify.verify_receipt``): no trust in the server is needed.

File format (JSON, ``format: "glasslog-receipt/v1"``); binary fields are
standard base64::

    {"format": "glasslog-receipt/v1", "origin": "...", "index": 17,
     "entry": "<b64 entry bytes>", "tree_size": 1000,
     "checkpoint": "<signed note text>", "inclusion_proof": ["<b64>", ...],
     "private": {"input": {"salt": "<b64>", "value": "<b64 canonical JSON>"}, ...},
     "previous": {"checkpoint": "<signed note>", "consistency_proof": ["<b64>", ...]}}

``previous`` is optional: a receipt refreshed to a newer (cosigned)
checkpoint keeps the checkpoint it had before and the consistency proof from
it to the new one, so whoever checks it also sees that the log only grew in
between (``glasslog.ledger.witnesses.refresh_receipt``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError

__all__ = ["RECEIPT_FORMAT", "Receipt", "ReceiptFormatError"]

RECEIPT_FORMAT = "glasslog-receipt/v1"


class ReceiptFormatError(BadInputError):
    """A receipt file is not valid JSON or a field is missing or malformed."""


def _b64(value, name: str) -> bytes:
    if not isinstance(value, str):
        raise ReceiptFormatError(f"receipt field '{name}' must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ReceiptFormatError(f"receipt field '{name}' is not valid base64") from None
    return raw


@dataclass(frozen=True)
class Receipt:
    """A receipt for one entry (see module docstring).

    Attributes:
        origin: the log's origin.
        index: the entry's index.
        entry: the entry's canonical JSON bytes.
        tree_size: size of the tree the checkpoint commits to (> index).
        checkpoint: the signed checkpoint note.
        inclusion_proof: audit path, 32-byte hashes, leaf to root.
        private: kind -> (salt, value bytes) openings of the entry's commitments.
        previous: for a refreshed receipt, ``(earlier signed checkpoint, consistency
            proof from its tree size to tree_size)``; else None.
    """

    origin: str
    index: int
    entry: bytes
    tree_size: int
    checkpoint: str
    inclusion_proof: tuple[bytes, ...]
    private: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    previous: tuple[str, tuple[bytes, ...]] | None = None

    def to_dict(self) -> dict:
        d = {
            "format": RECEIPT_FORMAT,
            "origin": self.origin,
            "index": self.index,
            "entry": base64.b64encode(self.entry).decode(),
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint,
            "inclusion_proof": [base64.b64encode(p).decode() for p in self.inclusion_proof],
        }
        if self.private:
            d["private"] = {k: {"salt": base64.b64encode(s).decode(), "value": base64.b64encode(v).decode()}
                            for k, (s, v) in sorted(self.private.items())}
        if self.previous is not None:
            d["previous"] = {"checkpoint": self.previous[0],
                             "consistency_proof": [base64.b64encode(p).decode() for p in self.previous[1]]}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        """Write the receipt as a JSON file, readable by its owner only (mode 0600) from the moment it is created:
        a receipt may carry the subject's inputs and identifier.

        Raises:
            OSError: the file cannot be written.
        """
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode under O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def from_dict(cls, d: dict) -> Receipt:
        """Parse a receipt dict strictly.

        Raises:
            ReceiptFormatError: wrong format tag, or a missing or malformed field.
        """
        if not isinstance(d, dict):
            raise ReceiptFormatError("a receipt must be a JSON object")
        if d.get("format") != RECEIPT_FORMAT:
            raise ReceiptFormatError(f"receipt field 'format' must be {RECEIPT_FORMAT!r}, got {d.get('format')!r}")
        for name, kind in (("origin", str), ("index", int), ("tree_size", int), ("checkpoint", str), ("inclusion_proof", list)):
            if name not in d:
                raise ReceiptFormatError(f"receipt field '{name}' is missing")
            if not isinstance(d[name], kind) or isinstance(d[name], bool):
                raise ReceiptFormatError(f"receipt field '{name}' must be {kind.__name__}")
        if d["index"] < 0 or d["tree_size"] <= d["index"]:
            raise ReceiptFormatError("receipt fields 'index' and 'tree_size' must satisfy 0 <= index < tree_size")
        private = {}
        raw_private = d.get("private")
        if raw_private is None:
            raw_private = {}
        if not isinstance(raw_private, dict):
            raise ReceiptFormatError("receipt field 'private' must be an object mapping each kind to its salt and value")
        for kind, opening in raw_private.items():
            if not isinstance(opening, dict):
                raise ReceiptFormatError(f"receipt field 'private.{kind}' must be an object with salt and value")
            private[kind] = (_b64(opening.get("salt"), f"private.{kind}.salt"), _b64(opening.get("value"), f"private.{kind}.value"))
        previous = None
        if d.get("previous") is not None:
            prev = d["previous"]
            if (not isinstance(prev, dict) or not isinstance(prev.get("checkpoint"), str)
                    or not isinstance(prev.get("consistency_proof"), list)):
                raise ReceiptFormatError("receipt field 'previous' must be an object with 'checkpoint' (text) and"
                                         " 'consistency_proof' (a list)")
            previous = (prev["checkpoint"], tuple(_b64(p, f"previous.consistency_proof[{i}]")
                                                  for i, p in enumerate(prev["consistency_proof"])))
        return cls(
            origin=d["origin"], index=d["index"], entry=_b64(d.get("entry"), "entry"), tree_size=d["tree_size"],
            checkpoint=d["checkpoint"],
            inclusion_proof=tuple(_b64(p, f"inclusion_proof[{i}]") for i, p in enumerate(d["inclusion_proof"])),
            private=private, previous=previous,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Receipt:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReceiptFormatError(f"receipt is not valid JSON: {exc}") from None
        return cls.from_dict(d)

    @classmethod
    def load(cls, path: str | Path) -> Receipt:
        """Read a receipt file.

        Raises:
            ReceiptFormatError: unreadable or malformed.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ReceiptFormatError(f"cannot read receipt file {path}: {exc.strerror}") from None
        return cls.from_json(data)
