"""C2SP signed notes, Ed25519 note keys and tlog checkpoints.

Sources:
- C2SP signed-note (https://c2sp.org/signed-note): note text, signature lines
  ``— <name> <base64(keyhash || signature)>``, key hash = first 4 bytes of
  SHA-256(name || 0x0A || 0x01 || public key), verifier key
  ``<name>+<hex keyhash>+<base64(0x01 || public key)>``.
- C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): origin line,
  decimal tree size, base64 root hash, optional extension lines.

Ed25519 is done by ``cryptography``. Everything here is strict: a key,
note or checkpoint that does not parse exactly is rejected, never repaired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import BadInputError
from .merkle import HASH_SIZE

__all__ = [
    "NoteError",
    "Signer",
    "Verifier",
    "Checkpoint",
    "generate_signer",
    "sign_note",
    "open_note",
    "split_note",
    "SignatureLine",
    "parse_checkpoint",
    "format_checkpoint",
]

ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # em dash and space, per signed-note
_MAX_SIGNATURES = 100
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,19})$")


class NoteError(BadInputError):
    """A key, signed note or checkpoint is malformed or its signature is bad."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what} is not valid standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not in canonical base64 form")
    return raw


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name or not name.isprintable():
        raise NoteError(f"key name {name!r} must be non-empty printable text without spaces or '+'")


def parse_key_string(vkey: str, what: str, algorithms: tuple[int, ...], kind: str) -> tuple[str, str, bytes]:
    """Split and check a C2SP signed-note verifier key string ``name+hexhash+base64(type byte || 32-byte key)``.

    The one parser behind log keys (``Verifier``) and witness keys (``CosignatureVerifier``): the name must be a
    valid key name, the hash 8 lowercase hex digits equal to ``SHA-256(name || "\\n" || type byte || key)[:4]``,
    the key 33 bytes with a type byte in ``algorithms``.

    Args:
        what: how errors name the key (e.g. ``"verifier key"``).
        kind: what the key must be, for the error (e.g. ``"an Ed25519 key (...)"``).

    Returns:
        ``(name, hexhash, raw)``: ``raw`` is the type byte and the 32 key bytes.

    Raises:
        NoteError: not a string, not three parts, a bad name, hash or key, or a hash that does not match.
    """
    if not isinstance(vkey, str):
        raise NoteError(f"{what} must be a string")
    parts = vkey.strip().split("+", 2)  # base64 may itself contain '+'
    if len(parts) != 3:
        raise NoteError(f"{what} must have the form name+keyhash+base64key")
    name, hexhash, b64 = parts
    _check_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", hexhash):
        raise NoteError(f"{what} hash must be 8 lowercase hex digits")
    raw = _b64decode(b64, what)
    if len(raw) != 33 or raw[0] not in algorithms:
        raise NoteError(f"{what} must be {kind}")
    if hashlib.sha256(name.encode("utf-8") + b"\n" + raw).digest()[:4].hex() != hexhash:
        raise NoteError(f"{what} hash does not match its name and key")
    return name, hexhash, raw


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key hash of an Ed25519 note key (C2SP signed-note)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier key.

    Attributes:
        name: the key name (for glasslog logs, the log's origin).
        key_id: the 4-byte key hash.
        public_key: the 32 raw Ed25519 public-key bytes.
    """

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse a verifier key string ``name+hexhash+base64``.

        Raises:
            NoteError: wrong number of parts, bad name, bad hash, unknown
                algorithm, wrong key length, or a key hash that does not match.
        """
        name, hexhash, raw = parse_key_string(vkey, "verifier key", (ALG_ED25519,),
                                              "an Ed25519 key (algorithm byte 0x01 and 32 key bytes)")
        return cls(name, bytes.fromhex(hexhash), raw[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` (64 bytes) is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signer (private) key.

    Attributes:
        name: the key name.
        seed: the 32-byte Ed25519 private seed.
    """

    name: str
    seed: bytes = field(repr=False)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Parse a signer key string ``PRIVATE+KEY+name+hexhash+base64``.

        Raises:
            NoteError: the string is malformed or its key hash does not match.
        """
        if not isinstance(skey, str):
            raise NoteError("signer key must be a string")
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("signer key must have the form PRIVATE+KEY+name+keyhash+base64key")
        _, _, name, hexhash, b64 = parts
        _check_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hexhash):
            raise NoteError("signer key hash must be 8 lowercase hex digits")
        raw = _b64decode(b64, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key must be an Ed25519 key (algorithm byte 0x01 and a 32-byte seed)")
        signer = cls(name, raw[1:])
        if signer.verifier().key_id.hex() != hexhash:
            raise NoteError("signer key hash does not match its name and key")
        return signer

    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def verifier(self) -> Verifier:
        """The matching verifier key."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = self._private().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, key_hash(self.name, public), public)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``message``."""
        return self._private().sign(message)

    def __str__(self) -> str:
        v = self.verifier()
        return f"PRIVATE+KEY+{self.name}+{v.key_id.hex()}+{base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()}"


def generate_signer(name: str) -> Signer:
    """Make a new random Ed25519 note key named ``name``."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    _check_name(name)
    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return Signer(name, seed)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    for ch in text:
        if ch != "\n" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
            raise NoteError("note text must not contain control characters other than newline")


def sign_note(text: str, signer: Signer) -> str:
    """Sign note ``text`` and return the signed note (text, blank line, signature line)."""
    _check_text(text)
    verifier = signer.verifier()
    sig = base64.b64encode(verifier.key_id + signer.sign(text.encode("utf-8"))).decode()
    return f"{text}\n{_SIG_PREFIX}{signer.name} {sig}\n"


@dataclass(frozen=True)
class SignatureLine:
    """One signature line of a signed note, decoded.

    Attributes:
        name: the key name.
        key_id: the first 4 bytes of the decoded signature.
        body: the rest of the decoded signature.
        line: the line as it stood (with its newline).
    """

    name: str
    key_id: bytes
    body: bytes
    line: str


def split_note(note: str | bytes, *, malformed: list[tuple[str, str]] | None = None) -> tuple[str, list[SignatureLine]]:
    """Split a signed note into its text and its decoded signature lines (C2SP signed-note).

    Args:
        malformed: if given, a signature line of the right shape (``— name sig``) whose signature is not
            canonical base64 or too short is appended here as ``(name, what is wrong)`` and left out of the
            result, instead of failing the note: C2SP signed-note verifiers ignore signatures of unknown keys,
            so the caller decides whether the name is one it trusts.

    Raises:
        NoteError: not UTF-8, no blank line before the signatures, more than
            100 or no signature lines, or a line that is not ``— name base64``
            (the message names the line's key name).
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("signed note is not valid UTF-8") from None
    if "\r" in note:  # a CRLF copy is refused, not "fixed": the signature covers the exact bytes
        raise NoteError("signed note has CR characters (CRLF line ends?): C2SP signed notes end lines with LF only")
    if not note.endswith("\n"):
        raise NoteError("signed note must end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("signed note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    raw_lines = block[:-1].split("\n")
    if not raw_lines or len(raw_lines) > _MAX_SIGNATURES:
        raise NoteError("signed note must have between 1 and 100 signature lines")
    out = []
    for raw in raw_lines:
        if not raw.startswith(_SIG_PREFIX):
            raise NoteError(f"signature line must start with an em dash and a space: {raw[:40]!r}")
        name, sep, b64 = raw[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not name or not b64 or " " in b64:
            raise NoteError("signature line must be '— <key name> <base64 signature>'")
        try:
            decoded = _b64decode(b64, "its signature")
            if len(decoded) < 5:
                raise NoteError("its signature is too short to hold a key hash and a signature")
        except NoteError as exc:
            if malformed is None:
                raise NoteError(f"signature line by {name}: {exc}") from None
            malformed.append((name, str(exc)))
            continue
        out.append(SignatureLine(name, decoded[:4], decoded[4:], raw + "\n"))
    return text, out


def open_note(note: str | bytes, verifier: Verifier) -> str:
    """Check a signed note against ``verifier`` and return its text.

    The note must carry a valid signature by ``verifier``; signatures by
    other keys are ignored, a signature that claims ``verifier``'s name and
    key hash but does not verify is an error.

    Raises:
        NoteError: malformed note, no signature by this key, or a bad signature.
    """
    malformed: list[tuple[str, str]] = []
    text, lines = split_note(note, malformed=malformed)
    for name, why in malformed:  # junk under another key's name is ignored (C2SP); under this key's name, the note is bad
        if name == verifier.name:
            raise NoteError(f"signature line by {name}: {why}")
    found = False
    for line in lines:
        if line.name != verifier.name or line.key_id != verifier.key_id:
            continue
        if len(line.body) != 64 or not verifier.verify(text.encode("utf-8"), line.body):
            raise NoteError(f"signature by {verifier.name} does not verify: the note was altered or signed by another key")
        found = True
    if not found:
        raise NoteError(f"signed note carries no signature by the key {verifier.name}+{verifier.key_id.hex()}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog checkpoint.

    Attributes:
        origin: the log's origin line.
        tree_size: number of entries committed to.
        root_hash: 32-byte root hash of the tree of ``tree_size`` entries.
        extensions: any further lines (without newlines).
    """

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint body (the note text that gets signed)."""
        return format_checkpoint(self)


def format_checkpoint(cp: Checkpoint) -> str:
    """Render a checkpoint as note text: origin, size, base64 root, extension lines."""
    lines = [cp.origin, str(cp.tree_size), base64.b64encode(cp.root_hash).decode(), *cp.extensions]
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text strictly.

    Raises:
        NoteError: empty origin, a tree size that is not plain ASCII decimal
            (leading zeros, signs, spaces or non-ASCII digits), a root that is
            not canonical base64 of 32 bytes, or empty extension lines.
    """
    if not text.endswith("\n"):
        raise NoteError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint needs an origin line, a tree size line and a root hash line")
    origin, size_text, root_text, *extensions = lines
    if not origin or origin != origin.strip():
        raise NoteError("checkpoint origin line must be non-empty and have no surrounding spaces")
    if not _DECIMAL.match(size_text) or not size_text.isascii():
        raise NoteError(f"checkpoint tree size {size_text!r} must be an ASCII decimal number without sign or leading zeros")
    tree_size = int(size_text)
    if tree_size >= 1 << 63:
        raise NoteError("checkpoint tree size is too large")
    root = _b64decode(root_text, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise NoteError(f"checkpoint root hash must be {HASH_SIZE} bytes, got {len(root)}")
    if any(not ext for ext in extensions):
        raise NoteError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, tree_size, root, tuple(extensions))


def open_checkpoint(note: str | bytes, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and parse it.

    Args:
        note: the signed note.
        verifier: the log's verifier key.
        origin: if given, the checkpoint's origin must equal it.

    Raises:
        NoteError: bad signature, malformed checkpoint, or wrong origin.
    """
    cp = parse_checkpoint(open_note(note, verifier))
    expected = origin if origin is not None else verifier.name
    if cp.origin != expected:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not the log's origin {expected!r}")
    return cp
