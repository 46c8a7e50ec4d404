"""C2SP tlog-cosignature ``cosignature/v1`` (Ed25519): witness cosignatures on checkpoints.

A cosignature is a signed-note signature line added to a checkpoint by a
*witness* (a cosigner) that checked the checkpoint is consistent with every
earlier checkpoint of the same log it saw::

    — <witness name> base64(key ID || timestamp || Ed25519 signature)

Source: C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature):

- key ID = SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]
  (algorithm byte 0x04: "Ed25519 cosignature/v1");
- the signature is a ``timestamped_signature``: a big-endian u64 POSIX
  timestamp (at most 2**63 - 1) followed by the 64-byte Ed25519 signature;
- the signed message is ``"cosignature/v1\\n" "time <decimal timestamp>\\n"``
  followed by the whole checkpoint body (with its final newline, without any
  signature line). Extension lines are signed too.

Verifier keys are ``<name>+<hex key ID>+base64(0x04 || public key)``. A plain
signed-note Ed25519 vkey (type 0x01) of the same key is accepted too and read
as the cosignature/v1 key, as transparency-dev/formats' ``note`` package does;
``str()`` always gives the 0x04 form. The same public key must not sign
anything else: the message does not commit to the cosigner's name.

``verify_cosigned`` is the policy: a checkpoint counts only if the log's own
signature verifies and at least ``min_witnesses`` distinct trusted witnesses
cosigned it. It names who cosigned and when.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time as _time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .note import (  # SignatureLine and split_note live with the signed-note format; re-exported here
    _SIG_PREFIX,
    ALG_ED25519,
    Checkpoint,
    NoteError,
    SignatureLine,
    Verifier,
    _b64decode,
    _check_name,
    _check_text,
    open_checkpoint,
    parse_checkpoint,
    parse_key_string,
    split_note,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "CosignatureVerifier",
    "Cosigner",
    "Cosignature",
    "SignatureLine",
    "WitnessCosignature",
    "CosignedCheckpoint",
    "cosignature_key_hash",
    "cosigned_message",
    "split_note",
    "add_signature_lines",
    "verify_cosigned",
]

ALG_COSIGNATURE_V1 = 0x04
"""Signature-type byte of Ed25519 cosignature/v1 keys (C2SP signed-note and tlog-cosignature)."""

_MAX_TIMESTAMP = (1 << 63) - 1
MAX_FUTURE_SECONDS = 600
"""Cosignatures dated more than this far ahead of the verifier's clock are refused (the spec allows it)."""


def cosignature_key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 cosignature/v1 key: SHA-256(name || 0x0A || 0x04 || key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:4]


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 cosignature/v1 signs: header line, time line, checkpoint body.

    Raises:
        NoteError: the timestamp is out of range or the body is not checkpoint note text.
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp!r} must be an integer in 0..2**63-1")
    _check_text(checkpoint_text)
    if checkpoint_text.count("\n") < 3:
        raise NoteError("a cosigned note must be a checkpoint: origin, tree size and root hash lines")
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode("utf-8")


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's Ed25519 cosignature/v1 verifier key.

    Attributes:
        name: the witness's key name (a schema-less URL, by convention).
        key_id: the 4-byte key ID (algorithm byte 0x04).
        public_key: the 32 raw Ed25519 public-key bytes.
    """

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``name+hexhash+base64(0x04 || key)`` (or a 0x01 Ed25519 vkey of the same key).

        Raises:
            NoteError: malformed, another algorithm, or a key hash that does not match.
        """
        name, _, raw = parse_key_string(vkey, "witness verifier key", (ALG_COSIGNATURE_V1, ALG_ED25519),
                                        "an Ed25519 cosignature/v1 key (type byte 0x04 and 32 key bytes)")
        return cls(name, cosignature_key_hash(name, raw[1:]), raw[1:])

    def __str__(self) -> str:
        return (f"{self.name}+{self.key_id.hex()}+"
                f"{base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()}")

    def verify(self, checkpoint_text: str, timestamp: int, signature: bytes) -> bool:
        """True if ``signature`` is this witness's cosignature of ``checkpoint_text`` at ``timestamp``."""
        try:
            message = cosigned_message(checkpoint_text, timestamp)
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError, NoteError):
            return False
        return True


@dataclass(frozen=True)
class Cosigner:
    """A witness's private cosigning key (Ed25519, cosignature/v1).

    Its string form is ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x04 || seed)``.
    """

    name: str
    seed: bytes = field(repr=False)

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        """A new random cosigning key named ``name``."""
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        _check_name(name)
        return cls(name, Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def parse(cls, skey: str) -> Cosigner:
        """Parse the private key string (type byte 0x04; 0x01 is accepted for an existing note key).

        Raises:
            NoteError: malformed, or the key hash does not match.
        """
        if not isinstance(skey, str):
            raise NoteError("witness signer key must be a string")
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("witness signer key must have the form PRIVATE+KEY+name+keyhash+base64key")
        _, _, name, hexhash, b64 = parts
        _check_name(name)
        raw = _b64decode(b64, "witness signer key")
        if len(raw) != 33 or raw[0] not in (ALG_COSIGNATURE_V1, ALG_ED25519):
            raise NoteError("witness signer key must be an Ed25519 key (type byte 0x04 and a 32-byte seed)")
        signer = cls(name, raw[1:])
        public = signer.verifier().public_key
        expected = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([raw[0]]) + public).digest()[:4]
        if expected.hex() != hexhash:
            raise NoteError("witness signer key hash does not match its name and key")
        return signer

    def __str__(self) -> str:
        v = self.verifier()
        return f"PRIVATE+KEY+{self.name}+{v.key_id.hex()}+{base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.seed).decode()}"

    def verifier(self) -> CosignatureVerifier:
        """The matching public verifier key."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return CosignatureVerifier(self.name, cosignature_key_hash(self.name, public), public)

    def cosign(self, checkpoint_text: str, timestamp: int | None = None) -> str:
        """The signature line (``— name base64...`` with its newline) cosigning ``checkpoint_text``.

        Args:
            checkpoint_text: the checkpoint body (note text, no signature lines).
            timestamp: POSIX seconds; default now.
        """
        ts = int(_time.time()) if timestamp is None else timestamp
        message = cosigned_message(checkpoint_text, ts)
        sig = Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)
        key_id = self.verifier().key_id
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(key_id + struct.pack('>Q', ts) + sig).decode()}\n"


@dataclass(frozen=True)
class Cosignature:
    """A decoded cosignature/v1 (Ed25519) signature line."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes
    line: str

    @classmethod
    def from_line(cls, line: SignatureLine) -> Cosignature:
        """Decode a signature line as a cosignature/v1 (key ID, u64 timestamp, 64-byte signature).

        Raises:
            NoteError: it is not 4 + 8 + 64 bytes or the timestamp is over 2**63 - 1.
        """
        if len(line.body) != 8 + 64:
            raise NoteError(f"signature by {line.name} is not a cosignature/v1 (timestamp and Ed25519 signature)")
        (ts,) = struct.unpack(">Q", line.body[:8])
        if ts > _MAX_TIMESTAMP:
            raise NoteError(f"cosignature by {line.name} has a timestamp over 2**63 - 1")
        return cls(line.name, line.key_id, ts, line.body[8:], line.line)


def add_signature_lines(note: str, lines: Iterable[str]) -> str:
    """Append signature lines (each ``— ...\\n``) to a signed note, skipping ones it already has.

    Raises:
        NoteError: the note or a line is malformed, or the result would have over 100 signatures.
    """
    _, existing = split_note(note)
    have = {s.line for s in existing}
    extra = []
    for line in lines:
        if not line.endswith("\n"):
            line += "\n"
        if line not in have:
            have.add(line)
            extra.append(line)
    result = note + "".join(extra)
    split_note(result)  # every added line must parse, and the count must stay within the limit
    return result


@dataclass(frozen=True)
class WitnessCosignature:
    """One trusted witness's valid cosignature.

    Attributes:
        name: the witness key name.
        verifier_key: its verifier key string.
        timestamp: POSIX seconds at which it cosigned.
    """

    name: str
    verifier_key: str
    timestamp: int

    @property
    def time(self) -> str:
        """The cosigning time in ISO 8601 UTC."""
        return datetime.fromtimestamp(self.timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_dict(self) -> dict:
        return {"name": self.name, "verifier_key": self.verifier_key, "timestamp": self.timestamp, "time": self.time}


@dataclass
class CosignedCheckpoint:
    """Result of ``verify_cosigned``.

    Attributes:
        ok: the log's signature verifies and at least ``min_witnesses`` trusted witnesses cosigned.
        checkpoint: the parsed checkpoint (None if the log's signature or the body failed).
        witnesses: trusted witnesses whose cosignature verified, in the note's order.
        min_witnesses: the policy's threshold.
        missing: trusted witnesses with no valid cosignature on this note.
        problems: why it is not ok (empty when ok).
        notes: what was set aside without failing (a second name for a key already trusted, which counts once;
            a malformed signature line under a name nobody trusts, which C2SP says verifiers ignore).
    """

    ok: bool
    checkpoint: Checkpoint | None
    witnesses: list[WitnessCosignature] = field(default_factory=list)
    min_witnesses: int = 0
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line naming who cosigned and when."""
        if not self.witnesses:
            who = "no trusted witness cosigned it"
        else:
            who = "cosigned by " + ", ".join(f"{w.name} at {w.time}" for w in self.witnesses)
        return f"{who} ({len(self.witnesses)} cosigned, {self.min_witnesses} required)"

    def to_dict(self) -> dict:
        cp = self.checkpoint
        return {"ok": self.ok, "min_witnesses": self.min_witnesses,
                "tree_size": cp.tree_size if cp else None, "origin": cp.origin if cp else None,
                "witnesses": [w.to_dict() for w in self.witnesses], "missing": list(self.missing),
                "problems": list(self.problems), "notes": list(self.notes)}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def _as_cosignature_verifier(v: CosignatureVerifier | str) -> CosignatureVerifier:
    return v if isinstance(v, CosignatureVerifier) else CosignatureVerifier.parse(v)


def verify_cosigned(
    note: str | bytes,
    log_verifier: Verifier | str,
    witness_verifiers: Iterable[CosignatureVerifier | str],
    min_witnesses: int,
    *,
    origin: str | None = None,
    now: int | None = None,
) -> CosignedCheckpoint:
    """Check a checkpoint against a witness policy: the log's signature and k-of-n cosignatures.

    Args:
        note: the signed checkpoint with its cosignature lines.
        log_verifier: the log's verifier key (obtained independently of the note).
        witness_verifiers: the trusted witnesses' cosignature/v1 verifier keys.
        min_witnesses: how many distinct trusted witnesses must have cosigned (0: none needed).
        origin: the origin the checkpoint must have (default: the log key's name).
        now: POSIX seconds used to refuse cosignatures from the future (default: the clock).

    Returns:
        The result; never raises for a bad note. Signature lines by keys
        not in the policy are ignored (even malformed ones, C2SP signed-note);
        a line that claims a trusted witness's name and key ID but does not
        verify is a problem (the note was altered); a witness key that is the
        log's own key is a problem and is not trusted. Witnesses are counted
        by their raw Ed25519 public key: cosignature/v1 does not sign the
        witness's name, so one key under two names is one witness (a note says so).

    Raises:
        NoteError: a key in the policy is malformed, or ``min_witnesses`` is negative.
    """
    if isinstance(min_witnesses, bool) or not isinstance(min_witnesses, int) or min_witnesses < 0:
        raise NoteError("min_witnesses must be a whole number >= 0")
    log_key = log_verifier if isinstance(log_verifier, Verifier) else Verifier.parse(log_verifier)
    trusted = {}
    first_name: dict[bytes, str] = {}  # raw public key -> the first name it was given under
    result = CosignedCheckpoint(ok=False, checkpoint=None, min_witnesses=min_witnesses)
    for v in witness_verifiers:
        cv = _as_cosignature_verifier(v)
        if cv.public_key == log_key.public_key:  # whoever holds the log's key could "cosign" its own fork
            result.problems.append(f"witness key {cv.name} is the log's own key: a log cannot witness itself")
            continue
        if cv.public_key in first_name and first_name[cv.public_key] != cv.name:
            result.notes.append(f"witness key {cv.name} has the same public key as {first_name[cv.public_key]}: one"
                                " witness, counted once")
        first_name.setdefault(cv.public_key, cv.name)
        trusted[(cv.name, cv.key_id)] = cv
    if min_witnesses > len(first_name):
        result.problems.append(f"the policy needs {_plural(min_witnesses, 'witness')} but trusts only {len(first_name)}")
    try:
        malformed: list[tuple[str, str]] = []
        text, lines = split_note(note, malformed=malformed)
        cp = open_checkpoint(note, log_key, origin)
        parse_checkpoint(text)
    except NoteError as exc:
        result.problems.append(f"log signature: {exc}")
        return result
    result.checkpoint = cp
    trusted_names = {cv.name for cv in trusted.values()}
    for name, why in malformed:
        (result.problems if name in trusted_names else result.notes).append(
            f"signature line by {name}: {why}" + ("" if name in trusted_names else " (not a trusted key; ignored)"))
    clock = int(_time.time()) if now is None else now
    seen: set[bytes] = set()  # raw public keys already counted
    for line in lines:
        cv = trusted.get((line.name, line.key_id))
        if cv is None or cv.public_key in seen:
            continue
        try:
            cs = Cosignature.from_line(line)
        except NoteError as exc:
            result.problems.append(str(exc))
            continue
        if not cv.verify(text, cs.timestamp, cs.signature):
            result.problems.append(f"cosignature by witness {cv.name} does not verify: the checkpoint or the line was altered")
            continue
        if cs.timestamp > clock + MAX_FUTURE_SECONDS:
            result.problems.append(f"cosignature by witness {cv.name} is dated {cs.timestamp}, in the future")
            continue
        seen.add(cv.public_key)
        result.witnesses.append(WitnessCosignature(cv.name, str(cv), cs.timestamp))
    result.missing = [str(cv) for cv in trusted.values() if cv.public_key not in seen]
    if len(result.witnesses) < min_witnesses:
        result.problems.append("too few trusted witnesses cosigned this checkpoint")
    result.ok = not result.problems
    return result
