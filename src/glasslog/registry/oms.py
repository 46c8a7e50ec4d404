"""Model directories fingerprinted the OpenSSF Model Signing (OMS) way.

A Hugging Face model directory (safetensors weights, ``config.json``,
tokenizer files, chat template) is fingerprinted with the ``model-signing``
package (``pip install 'glasslog[llm]'``), not by code of ours:

- the directory is hashed with ``model_signing.hashing.Config()`` at file
  granularity, SHA-256 per file, ignoring ``model.sig`` and git paths (what
  ``model_signing sign`` does by default with ``--signature model.sig``);
- the fingerprint is ``"sha256:"`` + the **OMS root digest**: the in-toto
  subject digest that ``model_signing`` puts in a signature of that
  directory (SHA-256 over the per-file digests in path order). It does not
  depend on the directory's name or location.

The registration entry also records every file's SHA-256, a digest of the
tokenizer files and of the chat template (they change what the model sees),
the context length from ``config.json``, and, when the publisher signed the
directory (``model.sig``, an OMS Sigstore bundle made with a key or a
certificate), the signer's identity after the signature was verified offline.

What is refused, each with an error naming the problem and the file:
pickle-format checkpoints (``.bin``, ``.pt``, ``.pth``, ``.pkl``, ...; never
opened beyond their first bytes), shards missing from or not listed in the
safetensors index, a signature that does not verify or covers other files,
and, when a registered directory is used or downloaded, any file that is
missing, extra or altered since registration.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import struct
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import ArtifactError

__all__ = [
    "SIGNATURE_FILE", "PICKLE_SUFFIXES", "TOKENIZER_FILES", "ModelDirectoryError", "PickleCheckpointError", "ShardError",
    "SignatureError", "TokenizerMismatchError", "TamperedFileError", "ExtraMissingError", "DirectoryManifest",
    "inspect_directory", "fingerprint_directory", "oms_fingerprint", "verify_signature", "check_against_record", "check_pem", "tar_directory", "copy_directory",
    "require_llm_extra",
]

SIGNATURE_FILE = "model.sig"
"""Name of the publisher's OMS signature inside a model directory (``model_signing``'s default)."""

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill")
"""File suffixes of pickle-based checkpoints; loading one can run arbitrary code, so a directory holding one is refused."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json")
"""Top-level files that define the tokenizer (and chat template); digested together as the tokenizer digest."""

_IGNORED = (".git", ".github", ".gitignore", ".gitattributes", SIGNATURE_FILE)


class ModelDirectoryError(ArtifactError):
    """A model directory is refused; ``file`` names the file at fault when there is one."""

    def __init__(self, message: str, file: str | None = None):
        self.file = file
        super().__init__(message)


class PickleCheckpointError(ModelDirectoryError):
    """The directory holds a pickle-format checkpoint (refused, never loaded)."""


class ShardError(ModelDirectoryError):
    """A safetensors shard is missing, or present but not listed in the index."""


class SignatureError(ModelDirectoryError):
    """``model.sig`` is malformed, does not verify, is by another signer, or covers other files."""


class TokenizerMismatchError(ModelDirectoryError):
    """The tokenizer files differ from the ones registered with the model."""


class TamperedFileError(ModelDirectoryError):
    """A file of a registered directory is missing, extra or altered since registration."""


class ExtraMissingError(ArtifactError, RuntimeError):
    """A package of the optional ``llm`` extra is not installed."""


def require_llm_extra(module: str = "model_signing") -> Any:
    """Import ``module`` from the optional extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExtraMissingError(f"model directories need the optional extra ({exc}); install it with"
                                " pip install torch==2.13.0 && pip install 'glasslog[llm]'") from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _canonical_digest(value: Any) -> str:
    from ..ledger import canonical_json

    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


@dataclass(frozen=True)
class DirectoryManifest:
    """What the registration entry records about a model directory (``to_entry``).

    Attributes:
        fingerprint: ``"sha256:"`` + the OMS root digest.
        files: relative path -> ``"sha256:<hex>"`` of every file in the OMS manifest.
        serialization: the OMS hashing configuration (method, hash type, ignored paths).
        size: total bytes of the files.
        tokenizer: digest of the tokenizer files (None when the directory has none).
        tokenizer_files: which files the tokenizer digest covers.
        chat_template: digest of the chat template (None when there is none).
        context_length: the longest input the model accepts, in tokens (None when
            ``config.json`` does not say).
        signature: the verified publisher signature (None when unsigned).
    """

    fingerprint: str
    files: dict[str, str]
    serialization: dict[str, Any]
    size: int
    tokenizer: str | None
    tokenizer_files: tuple[str, ...]
    chat_template: str | None
    context_length: int | None
    signature: dict[str, Any] | None = field(default=None)

    def to_entry(self) -> dict[str, Any]:
        """The ``artifact`` object of the registration entry."""
        out = {"format": "oms-directory", "oms": {"root_digest": self.fingerprint.removeprefix("sha256:"), **self.serialization},
               "files": dict(sorted(self.files.items())), "bytes": self.size, "tokenizer": self.tokenizer,
               "tokenizer_files": list(self.tokenizer_files), "chat_template": self.chat_template,
               "context_length": self.context_length}
        if self.signature is not None:
            out["signature"] = self.signature
        return out


def _walk(root: Path) -> list[str]:
    """Relative paths of the files under ``root``, git paths skipped, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not (rel_dir == Path(".") and d in (".git", ".github")))
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel in (".gitignore", ".gitattributes"):
                continue
            out.append(rel)
    return sorted(out)


def _check_no_pickles(root: Path, names: Iterable[str]) -> None:
    pickles = []
    for rel in names:
        if rel.lower().endswith(PICKLE_SUFFIXES):
            pickles.append(rel)
            continue
        if rel == SIGNATURE_FILE:
            continue
        try:
            with (root / rel).open("rb") as f:
                head = f.read(2)
        except OSError:
            continue
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2-5 opcode, whatever the suffix
            pickles.append(rel)
    if pickles:
        raise PickleCheckpointError(
            f"pickle-format checkpoint {pickles[0]!r} in {root}"
            + (f" (and {len(pickles) - 1} more: {', '.join(pickles[1:4])})" if len(pickles) > 1 else "")
            + ": loading a pickle can run arbitrary code, so glasslog refuses it and never opens it; convert the"
              " weights to safetensors and remove the pickle files", file=pickles[0])


def _check_safetensors(root: Path, names: list[str]) -> None:
    tensors = [n for n in names if n.endswith(".safetensors")]
    if not tensors:
        raise ModelDirectoryError(f"{root} holds no .safetensors weights; glasslog registers model directories whose"
                                  " weights are safetensors (pickle checkpoints are refused)")
    for rel in tensors:  # a safetensors file starts with an 8-byte little-endian header length and a JSON header
        path = root / rel
        try:
            with path.open("rb") as f:
                raw = f.read(8)
                (n,) = struct.unpack("<Q", raw) if len(raw) == 8 else (0,)
                if not 2 <= n <= min(100_000_000, path.stat().st_size - 8):
                    raise ValueError("bad header length")
                json.loads(f.read(n))
        except (ValueError, OSError, struct.error):
            raise ModelDirectoryError(f"{rel!r} in {root} is not a safetensors file (its header does not parse)", file=rel) from None
    for index_name in [n for n in names if n.endswith(".safetensors.index.json")]:
        try:
            index = json.loads((root / index_name).read_text(encoding="utf-8"))
            listed = set(index["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise ShardError(f"safetensors index {index_name!r} is not readable: {exc}", file=index_name) from None
        folder = Path(index_name).parent
        listed_paths = {(folder / s).as_posix() for s in listed}
        missing = sorted(s for s in listed_paths if s not in names)
        if missing:
            raise ShardError(f"shard {missing[0]!r} listed in {index_name} is missing from {root}"
                             + (f" (missing: {', '.join(missing)})" if len(missing) > 1 else ""), file=missing[0])
        present = {n for n in tensors if Path(n).parent == folder}
        extra = sorted(present - listed_paths)
        if extra:
            raise ShardError(f"shard {extra[0]!r} in {root} is not listed in {index_name}: an extra shard could be"
                             " loaded in place of a listed one; remove it or sign a corrected index", file=extra[0])


def _context_length(root: Path) -> int | None:
    """The longest input in tokens: sentence-transformers' ``max_seq_length`` if set, else the config's position limit."""
    limits = []
    for name, keys in (("sentence_bert_config.json", ("max_seq_length",)),
                       ("config.json", ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"))):
        path = root / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        for key in keys:
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                limits.append(value)
                break
        if limits and name == "sentence_bert_config.json":
            return limits[0]
    return min(limits) if limits else None


def _chat_template(root: Path) -> Any:
    """The chat template text (or list of named templates), wherever the directory keeps it; None if none."""
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = root / name
        if path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
            except (ValueError, OSError, AttributeError):
                continue
            if value:
                return value
    return None


def _hashing_config():
    ms = require_llm_extra("model_signing")
    return ms.hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=True)


def fingerprint_directory(path: str | os.PathLike) -> str:
    """The fingerprint of a model directory: ``"sha256:"`` + its OMS root digest (``model_signing``; see module docstring).

    Only hashes: ``inspect_directory`` also refuses pickle checkpoints and bad
    shards, and ``check_against_record`` compares a directory with its registration.
    """
    return oms_fingerprint(path)[0]


def oms_fingerprint(path: str | os.PathLike) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Hash ``path`` with ``model_signing`` and return its fingerprint.

    Returns:
        ``("sha256:<OMS root digest>", {relative path: "sha256:<hex>"}, serialization)``:
        the root digest is the subject digest of the in-toto statement
        ``model_signing`` signs for this directory.

    Raises:
        ModelDirectoryError: ``model_signing`` refused the directory (e.g. a symbolic link).
        ExtraMissingError: ``model-signing`` is not installed.
    """
    require_llm_extra("model_signing")
    from model_signing._signing.signing import Payload  # the statement model_signing signs

    try:
        manifest = _hashing_config().hash(Path(path))
    except ValueError as exc:
        raise ModelDirectoryError(f"model_signing cannot hash {path}: {exc}") from None
    statement = Payload(manifest).statement.pb
    root = statement.subject[0].digest["sha256"]
    files = {rd.identifier: f"{rd.digest.algorithm}:{rd.digest.digest_hex}" for rd in manifest.resource_descriptors()}
    serialization = dict(manifest.serialization_type)
    serialization["ignore_paths"] = sorted(serialization.get("ignore_paths", []))
    return "sha256:" + root, files, serialization


def inspect_directory(path: str | os.PathLike) -> DirectoryManifest:
    """Check a model directory and compute what its registration records (see module docstring).

    Raises:
        ModelDirectoryError: not a directory, no config.json, no safetensors,
            or a refused file (subclasses ``PickleCheckpointError``, ``ShardError``).
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelDirectoryError(f"{root} is not a directory")
    names = _walk(root)
    _check_no_pickles(root, names)
    if "config.json" not in names:
        raise ModelDirectoryError(f"{root} has no config.json; a model directory needs the model's configuration", file="config.json")
    _check_safetensors(root, names)
    fingerprint, files, serialization = oms_fingerprint(root)
    tokenizer_files = tuple(n for n in TOKENIZER_FILES if n in files)
    tokenizer = _canonical_digest({n: files[n] for n in tokenizer_files}) if tokenizer_files else None
    template = _chat_template(root)
    return DirectoryManifest(
        fingerprint=fingerprint, files=files, serialization=serialization,
        size=sum((root / n).stat().st_size for n in files), tokenizer=tokenizer, tokenizer_files=tokenizer_files,
        chat_template=None if template is None else _canonical_digest(template), context_length=_context_length(root))


def _bundle(path: Path) -> dict:
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        envelope = bundle["dsseEnvelope"]
        payload = json.loads(base64.b64decode(envelope["payload"], validate=True))
        if not isinstance(bundle["verificationMaterial"], dict):
            raise TypeError("verificationMaterial is not an object")
        return {"bundle": bundle, "statement": payload}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{path.name} is not an OMS Sigstore bundle ({type(exc).__name__}: {exc})", file=path.name) from None


def _certificate_identity(der_b64: str) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(base64.b64decode(der_b64))
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.RFC822Name)] + \
                [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)] + \
                [str(v) for v in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(), "san": names,
            "certificate": "sha256:" + cert.fingerprint(hashes.SHA256()).hex()}


def verify_signature(path: str | os.PathLike, manifest: DirectoryManifest, signature: str | os.PathLike, *,
                     public_key: str | os.PathLike | None = None,
                     certificate_chain: Sequence[str | os.PathLike] | None = None) -> dict[str, Any]:
    """Verify a publisher's OMS signature of ``path`` offline with ``model_signing``; return the signer record.

    Give the publisher's EC public key (PEM) for key signatures, or the
    certificate chain (PEM files; empty list: the system's roots) for
    certificate signatures. Sigstore keyless bundles need Sigstore's online
    trust root and are refused here.

    The signature must cover exactly the files of ``manifest`` (same OMS root
    digest): a signature over fewer files would leave some unsigned.

    Raises:
        SignatureError: malformed bundle, wrong key or chain, a file that does
            not match the signature (named), or different coverage.
    """
    ms = require_llm_extra("model_signing")
    sig = Path(signature)
    if not sig.is_file():
        raise SignatureError(f"signature file {sig} does not exist", file=sig.name)
    parsed = _bundle(sig)
    material = parsed["bundle"]["verificationMaterial"]
    if (public_key is None) == (certificate_chain is None):
        raise SignatureError(f"{sig.name} present: give the publisher's public key (--signer-key) or certificate chain"
                             " (--signer-cert) to verify it offline before the model is registered", file=sig.name)
    if "certificate" in material and "x509CertificateChain" not in material:
        raise SignatureError(f"{sig.name} is a Sigstore keyless bundle; verifying it needs Sigstore's online trust"
                             " root, and glasslog verifies publisher signatures offline: sign with a key or a certificate",
                             file=sig.name)
    config = ms.verifying.Config()
    if public_key is not None:
        config.use_elliptic_key_verifier(public_key=Path(public_key))
    else:
        config.use_certificate_verifier(certificate_chain=[Path(c) for c in certificate_chain])
    try:
        config.verify(Path(path), sig)
    except Exception as exc:  # model_signing raises ValueError, cryptography / OpenSSL errors, KeyError ...
        message = str(exc) or type(exc).__name__
        if type(exc).__name__ == "InvalidSignature":
            message = "the signature does not verify with the given key"
        differ = _signed_difference(manifest, parsed["statement"]) if message.startswith("Signature mismatch") else []
        if differ:
            message = "; ".join(text for _, text in differ)
        raise SignatureError(f"{sig.name} does not verify for {path}: {message}", file=differ[0][0] if differ else None) from None
    statement = parsed["statement"]
    signed_root = statement["subject"][0]["digest"]["sha256"]
    if "sha256:" + signed_root != manifest.fingerprint:
        signed = {r["name"] for r in statement.get("predicate", {}).get("resources", [])}
        unsigned = sorted(set(manifest.files) - signed)
        raise SignatureError(f"{sig.name} verifies but covers other files than the directory's OMS manifest"
                             + (f" (not signed: {', '.join(unsigned)})" if unsigned else "")
                             + f": signed root digest {signed_root}, directory {manifest.fingerprint}",
                             file=unsigned[0] if unsigned else None)
    record: dict[str, Any] = {"file": sig.name, "bundle": _sha256_file(sig), "signed_root_digest": signed_root,
                              "verified": "offline with model_signing " + getattr(ms, "__version__", "?")}
    if public_key is not None:
        pem = Path(public_key).read_bytes()
        from cryptography.hazmat.primitives import serialization

        spki = serialization.load_pem_public_key(pem).public_bytes(serialization.Encoding.PEM,
                                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        key_id = hashlib.sha256(spki).hexdigest()  # the key hint model_signing writes into the bundle
        record.update({"method": "key", "signer": f"public key sha256:{key_id}", "public_key": f"sha256:{key_id}"})
    else:
        leaf = material["x509CertificateChain"]["certificates"][0]["rawBytes"]
        identity = _certificate_identity(leaf)
        who = identity["san"][0] if identity["san"] else identity["subject"]
        record.update({"method": "certificate", "signer": who, **identity})
    return record


def check_pem(data: bytes, kind: str, label: str) -> None:
    """Refuse a signer file that is not what its option expects, naming it, before ``model_signing`` reads it.

    ``kind``: ``"public key"`` (a PEM ``PUBLIC KEY``, the publisher's EC key) or ``"certificate"`` (one or more PEM
    ``CERTIFICATE`` blocks); ``label`` names the option and file, e.g. ``"--signer-key card.json"``.

    Raises:
        SignatureError: ``data`` is not a PEM file of that kind (e.g. a public key given as a certificate).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    expected = {"public key": "the publisher's EC public key, PEM ('-----BEGIN PUBLIC KEY-----')",
                "certificate": "a certificate chain, PEM ('-----BEGIN CERTIFICATE-----')"}[kind]
    text = data.decode("ascii", errors="replace")
    found = re.search(r"-----BEGIN ([A-Z0-9 ]+)-----", text)
    try:
        if kind == "public key":
            serialization.load_pem_public_key(data)
        elif not x509.load_pem_x509_certificates(data):
            raise ValueError("no certificate")
    except (ValueError, TypeError):
        if found is None:
            what = "not a PEM file"
        elif found.group(1) == kind.upper():
            what = f"not a valid PEM {kind} (its {found.group(1)} block does not parse)"
        else:
            what = f"a PEM {found.group(1)}, not a {kind}"
        raise SignatureError(f"{label} is {what}: expected {expected}") from None


def _signed_difference(manifest: DirectoryManifest, statement: dict) -> list[tuple[str, str]]:
    """``(file, problem)`` for each file whose digest differs from the signed one, or that is missing or unsigned."""
    try:
        signed = {r["name"]: f"{r['algorithm']}:{r['digest']}" for r in statement["predicate"]["resources"]}
    except (KeyError, TypeError):
        return []
    out = []
    for rel in sorted(set(signed) | set(manifest.files)):
        if rel not in manifest.files:
            out.append((rel, f"{rel!r} is signed but missing from the directory"))
        elif rel not in signed:
            out.append((rel, f"{rel!r} is in the directory but not signed"))
        elif signed[rel] != manifest.files[rel]:
            out.append((rel, f"{rel!r} does not match the signed digest (altered, or the signature is of another model)"))
    return out


def check_against_record(path: str | os.PathLike, artifact: dict[str, Any], *, what: str = "model directory") -> None:
    """Check a directory against the files its registration recorded, before anything loads it.

    Order: pickle files; the tokenizer (a mismatch raises
    ``TokenizerMismatchError`` naming the files); then every file's SHA-256,
    missing and extra files (``TamperedFileError`` naming the first).

    Raises:
        PickleCheckpointError, TokenizerMismatchError, TamperedFileError.
    """
    root = Path(path)
    if not root.is_dir():
        raise TamperedFileError(f"{what} {root} is missing")
    names = _walk(root)
    _check_no_pickles(root, names)
    recorded: dict[str, str] = artifact["files"]
    present = [n for n in names if not _ignored(n)]
    tokenizer_files = list(artifact.get("tokenizer_files") or [])
    current_tok = {n: _sha256_file(root / n) for n in TOKENIZER_FILES if n in present}
    if tokenizer_files or current_tok:
        expected_tok = {n: recorded[n] for n in tokenizer_files}
        if current_tok != expected_tok:
            differ = sorted(n for n in set(current_tok) | set(expected_tok) if current_tok.get(n) != expected_tok.get(n))
            raise TokenizerMismatchError(
                f"the tokenizer in {root} does not match the one registered with the model (tokenizer digest"
                f" {artifact.get('tokenizer')}): {', '.join(differ)} differ{'s' if len(differ) == 1 else ''}; the model"
                " would see other tokens than the ones registered", file=differ[0])
    missing = sorted(set(recorded) - set(present))
    if missing:
        raise TamperedFileError(f"{missing[0]!r} of the registered {what} is missing from {root}", file=missing[0])
    extra = sorted(set(present) - set(recorded))
    if extra:
        raise TamperedFileError(f"{extra[0]!r} in {root} is not part of the registered {what}"
                                " (an extra file could change what is loaded)", file=extra[0])
    for rel in sorted(recorded):
        if rel in current_tok:
            continue
        if _sha256_file(root / rel) != recorded[rel]:
            raise TamperedFileError(f"{rel!r} in {root} was altered since registration: it no longer hashes to"
                                    f" {recorded[rel]}; refusing to use it", file=rel)


def _ignored(rel: str) -> bool:
    first = rel.split("/", 1)[0]
    return first in _IGNORED


def copy_directory(src: str | os.PathLike, dest: Path, files: Iterable[str], signature: str | os.PathLike | None) -> None:
    """Copy the manifest's files (and the signature, as ``model.sig``) into ``dest`` (created; must not exist)."""
    src = Path(src)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for rel in files:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, target)
        if signature is not None:
            shutil.copyfile(signature, tmp / SIGNATURE_FILE)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def tar_directory(path: str | os.PathLike, prefix: str) -> bytes:
    """A reproducible uncompressed tar of the directory under ``prefix/`` (sorted, mtime 0, owner 0, mode 0644)."""
    root = Path(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in _walk(root):
            data = (root / rel).read_bytes()
            info = tarfile.TarInfo(f"{prefix}/{rel}")
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
