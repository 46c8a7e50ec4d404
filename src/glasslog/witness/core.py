"""The witness: C2SP tlog-witness ``add-checkpoint``, checked and stored atomically per origin.

Source: C2SP tlog-witness (https://c2sp.org/tlog-witness). The request body is

    old <size>\\n
    <base64 hash>\\n          (0 to 63 consistency proof lines, RFC 6962 2.1.2)
    \\n
    <signed checkpoint note>  (C2SP tlog-checkpoint in a signed note, any number of signatures)

and the answers are, in the order the checks run:

- 400 Bad Request: the body does not parse (old size line, proof lines, the
  note, the checkpoint's size line...), more than 63 proof lines, or the old
  size is larger than the checkpoint's size;
- 404 Not Found: the witness does not follow the checkpoint's origin;
- 403 Forbidden: no signature verifies against a key trusted for the origin;
- 409 Conflict: the old size is not the size of the latest checkpoint this
  witness cosigned for the origin (0 if none); body ``<size>\\n``,
  ``Content-Type: text/x.tlog.size``. Also 409 when the sizes are equal but
  the root hashes differ (a fork at that size);
- 422 Unprocessable Entity: the consistency proof does not verify (or is not
  empty where it must be);
- 413 Content Too Large: the body is over ``MAX_BODY_BYTES`` (the spec sets no
  limit; HTTP's answer for that);
- 200: one cosignature line per witness key, after the new state is on disk.

The check of the old size and the proof against the stored state and the
store of the new state happen in one ``BEGIN IMMEDIATE`` transaction
(``WitnessStore.advance``), so the witness never cosigns two checkpoints of
one origin that are inconsistent with each other, whatever the order or
concurrency of the requests. Validly signed requests that are refused with
409 (fork) or 422 are kept as evidence.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..ledger import merkle
from ..ledger.cosignature import Cosigner
from ..ledger.note import Checkpoint, NoteError, Verifier, open_note, parse_checkpoint, split_note
from ..storage.witness import WITNESS_DB, WitnessState, WitnessStore

__all__ = ["Witness", "WitnessError", "AddCheckpoint", "parse_add_checkpoint", "MAX_BODY_BYTES", "MAX_PROOF_LINES",
           "WITNESS_DIR_ENV", "default_witness_dir"]

MAX_BODY_BYTES = 64 * 1024
"""Largest add-checkpoint body accepted (a checkpoint with 100 signature lines and 63 proof lines is about 14 KiB)."""
MAX_PROOF_LINES = 63
WITNESS_DIR_ENV = "GLASSLOG_WITNESS_DIR"
KEY_FILE, VKEY_FILE = "witness.key", "witness.vkey"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


def default_witness_dir() -> Path:
    """``$GLASSLOG_WITNESS_DIR`` if set, else ``./glasslog-witness``."""
    return Path(os.environ.get(WITNESS_DIR_ENV) or "glasslog-witness")


class WitnessError(Exception):
    """A refused add-checkpoint request, with its HTTP status.

    Attributes:
        status: 400, 403, 404, 409, 413 or 422.
        message: why, for the response body (409: the witness's size and a newline).
        content_type: the response's media type.
    """

    def __init__(self, status: int, message: str, content_type: str = "text/plain; charset=utf-8"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.content_type = content_type


def _conflict(size: int) -> WitnessError:
    return WitnessError(409, f"{size}\n", "text/x.tlog.size")


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request body."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str
    text: str
    checkpoint: Checkpoint


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint body strictly.

    Raises:
        WitnessError: 413 if too large, else 400 naming what is malformed.
    """
    if len(body) > MAX_BODY_BYTES:
        raise WitnessError(413, f"request body is over {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessError(400, "request body is not UTF-8") from None
    first, sep, rest = text.partition("\n")
    if not sep or not _OLD.fullmatch(first):
        raise WitnessError(400, "the first line must be 'old <size>' (ASCII decimal, no leading zeros)")
    old_size = int(first[4:])
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise WitnessError(400, "the consistency proof lines must end with an empty line before the checkpoint")
        if line == "":
            break
        if len(proof) == MAX_PROOF_LINES:
            raise WitnessError(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            h = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise WitnessError(400, f"consistency proof line {len(proof) + 1} is not base64") from None
        if len(h) != merkle.HASH_SIZE or base64.b64encode(h).decode() != line:
            raise WitnessError(400, f"consistency proof line {len(proof) + 1} is not a base64 SHA-256 hash")
        proof.append(h)
    note = rest
    try:
        note_text, _ = split_note(note)
        checkpoint = parse_checkpoint(note_text)
    except NoteError as exc:
        raise WitnessError(400, f"malformed checkpoint: {exc}") from None
    return AddCheckpoint(old_size, tuple(proof), note, note_text, checkpoint)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)


class Witness:
    """A witness over its directory: ``witness.key`` (0600), ``witness.vkey``, ``witness.db``.

    Raises (constructor):
        ValueError: the directory holds no witness, or the key file is unsafe or corrupt.
    """

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        key_path = self.dir / KEY_FILE
        try:
            st = key_path.stat()
        except FileNotFoundError:
            raise ValueError(f"{self.dir} holds no witness key ({KEY_FILE}); run 'glasslog witness init --name ...'") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"witness key file {key_path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be readable"
                             f" by its owner only (chmod 600 {key_path})")
        try:
            self.cosigner = Cosigner.parse(key_path.read_text(encoding="utf-8"))
        except (NoteError, UnicodeDecodeError, OSError) as exc:
            raise ValueError(f"witness key file {key_path} is unusable: {exc}") from None
        self.verifier = self.cosigner.verifier()
        self.store = WitnessStore(self.dir / WITNESS_DB)
        self._keys: dict[str, tuple[tuple[str, ...], list[Verifier]]] = {}

    @classmethod
    def init(cls, directory: str | Path, name: str) -> Witness:
        """Make a new witness: a cosigning key named ``name`` (mode 0600), its verifier key, an empty state.

        Raises:
            ValueError: the directory already holds a witness, or the name is invalid.
        """
        directory = Path(directory)
        if (directory / KEY_FILE).exists():
            raise ValueError(f"{directory} already holds a witness key; refusing to overwrite it")
        try:
            cosigner = Cosigner.generate(name)
        except NoteError as exc:
            raise ValueError(str(exc)) from None
        directory.mkdir(parents=True, exist_ok=True)
        _write_private(directory / KEY_FILE, str(cosigner) + "\n")
        (directory / VKEY_FILE).write_text(str(cosigner.verifier()) + "\n")
        w = cls(directory)
        from ..storage.witness import _now

        w.store.set_meta({"name": name, "verifier_key": str(w.verifier), "created_at": _now()})
        return w

    def close(self) -> None:
        self.store.close()

    @property
    def verifier_key(self) -> str:
        return str(self.verifier)

    def add_log(self, origin: str, verifier_key: str) -> bool:
        """Follow the log ``origin`` whose checkpoints are signed by ``verifier_key`` (a C2SP note vkey).

        Raises:
            ValueError: the key is malformed, or the origin is empty or not one line.
        """
        if not origin or origin != origin.strip() or "\n" in origin or not origin.isprintable():
            raise ValueError(f"origin {origin!r} must be one printable line without surrounding spaces")
        try:
            v = Verifier.parse(verifier_key)
        except NoteError as exc:
            raise ValueError(f"malformed log verifier key: {exc}") from None
        return self.store.add_log(origin, str(v))

    def _log_verifiers(self, origin: str) -> list[Verifier]:
        keys = tuple(self.store.log_keys(origin))
        cached = self._keys.get(origin)
        if cached is None or cached[0] != keys:
            cached = (keys, [Verifier.parse(k) for k in keys])
            self._keys[origin] = cached
        return cached[1]

    def add_checkpoint(self, body: bytes) -> str:
        """Handle one add-checkpoint request body (see the module docstring).

        Returns:
            The response body: the witness's cosignature line.

        Raises:
            WitnessError: the request is refused; ``status`` says how.
        """
        req = parse_add_checkpoint(body)
        cp = req.checkpoint
        verifiers = self._log_verifiers(cp.origin)
        if not verifiers:
            raise WitnessError(404, f"this witness does not follow the log {cp.origin!r}")
        if not any(self._signed_by(req.note, v) for v in verifiers):
            raise WitnessError(403, f"no signature on the checkpoint verifies against a key trusted for {cp.origin!r}")
        if req.old_size > cp.tree_size:
            raise WitnessError(400, f"old size {req.old_size} is larger than the checkpoint's size {cp.tree_size}")

        def check(state: WitnessState | None) -> None:
            have = state.tree_size if state is not None else 0
            if req.old_size != have:
                raise _conflict(have)
            if req.old_size == 0:
                if req.proof:
                    raise WitnessError(422, "the consistency proof must be empty when the old size is 0")
                if cp.tree_size == 0 and cp.root_hash != merkle.EMPTY_ROOT:
                    raise WitnessError(422, "the root of the empty tree must be SHA-256 of the empty string")
                if state is not None and cp.tree_size == 0 and state.root != cp.root_hash:
                    raise _conflict(have)
                return
            if req.old_size == cp.tree_size:
                if state.root != cp.root_hash:
                    raise _conflict(have)  # a different tree of the same size: a fork
                if req.proof:
                    raise WitnessError(422, "the consistency proof between equal sizes must be empty")
                return
            try:
                merkle.verify_consistency(req.old_size, cp.tree_size, state.root, cp.root_hash, list(req.proof))
            except merkle.ProofError as exc:
                raise WitnessError(422, f"the consistency proof does not verify: {exc}") from None

        try:
            self.store.advance(cp.origin, check, cp.tree_size, cp.root_hash, req.note)
        except WitnessError as exc:
            if exc.status in (409, 422) and not (exc.status == 409 and req.old_size != self._size(cp.origin)):
                reason = (f"409: tree size {cp.tree_size} signs another root than the tree this witness cosigned at size"
                          f" {req.old_size} (a fork)" if exc.status == 409 else f"{exc.status}: {exc.message.strip()}")
                self.store.record_evidence(cp.origin, reason, req.old_size, req.note)
            raise
        return self.cosigner.cosign(req.text)

    def _size(self, origin: str) -> int:
        st = self.store.state(origin)
        return st.tree_size if st else 0

    @staticmethod
    def _signed_by(note: str, verifier: Verifier) -> bool:
        try:
            open_note(note, verifier)
        except NoteError:
            return False
        return True
