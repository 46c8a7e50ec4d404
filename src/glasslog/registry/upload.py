"""Registering a model directory that arrives as a tar (the HTTP path of ``glasslog models register DIR``).

``register_directory_tar(registry, fileobj, card)`` unpacks an uploaded tar (plain or gzip) of a Hugging Face model
directory into a private temporary directory and registers it with ``Registry.register_directory``: the same checks
as the CLI path (pickle checkpoints refused and never loaded, safetensors shards against their index, the OMS root
digest computed with ``model_signing``, the publisher's ``model.sig`` verified offline with the given key or
certificate chain), then the copy into the artifact store and one ``model`` entry. The tar is checked before
anything is written: regular files and folders only (links, devices and FIFOs are refused, naming the member), no
absolute names or ``..``, at most ``MAX_FILES`` files and ``MAX_UNPACKED_BYTES`` unpacked (a gzip bomb stops at the
limit). Files may sit at the tar's root or under one top folder (as ``tar -C parent -cf x.tar DIR`` writes them,
and as ``GET /v1/models/{fp}/artifact`` serves them). On any failure the temporary directory is removed and the log
and artifact store are as they were.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from .card import ModelCard
from .oms import SIGNATURE_FILE, ModelDirectoryError, check_pem
from .registry import RegisteredModel, Registry

__all__ = ["MAX_FILES", "MAX_UNPACKED_BYTES", "register_directory_tar", "unpack_directory_tar"]

MAX_FILES = 10_000
"""Most files a model directory tar may hold."""

MAX_UNPACKED_BYTES = 2 * 1024**3
"""Most bytes a model directory tar may unpack to (2 GiB; the upload itself is limited by the server)."""

_CHUNK = 1 << 20


def _member_path(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\\" in name:
        raise ModelDirectoryError(f"tar member {name!r} has an absolute or escaping path: refused", file=name)
    return PurePosixPath(*[part for part in p.parts if part != "."])


def unpack_directory_tar(fileobj: IO[bytes], dest: str | os.PathLike, *, max_files: int = MAX_FILES,
                         max_bytes: int = MAX_UNPACKED_BYTES) -> Path:
    """Unpack a model directory tar into ``dest`` (an empty folder) and return the model directory's root in it.

    Raises:
        ModelDirectoryError: not a tar (or gzip of one), a link or special file, an escaping name, a file twice,
            too many files or bytes, or no files (the member is named where there is one).
    """
    root = Path(dest)
    seen: set[PurePosixPath] = set()
    total = 0
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelDirectoryError(f"the upload is not a tar (or tar.gz) of a model directory: {exc}") from None
    with tar:
        try:
            for member in tar:
                rel = _member_path(member.name)
                if not rel.parts:
                    continue  # "./"
                if member.isdir():
                    continue  # folders come with their files
                if not member.isfile():
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise ModelDirectoryError(f"tar member {member.name!r} is a {kind}: only regular files are accepted",
                                              file=member.name)
                if rel in seen:
                    raise ModelDirectoryError(f"tar member {member.name!r} appears twice", file=member.name)
                seen.add(rel)
                if len(seen) > max_files:
                    raise ModelDirectoryError(f"the tar holds more than {max_files} files")
                total += member.size
                if total > max_bytes:
                    raise ModelDirectoryError(f"the tar unpacks to more than {max_bytes} bytes (at {member.name!r})",
                                              file=member.name)
                target = root.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise ModelDirectoryError(f"tar member {member.name!r} cannot be read", file=member.name)
                with src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, ModelDirectoryError):
                raise
            raise ModelDirectoryError(f"the tar is truncated or corrupt: {exc}") from None
    if not seen:
        raise ModelDirectoryError("the tar holds no files")
    tops = {p.parts[0] for p in seen}
    if len(tops) == 1 and all(len(p.parts) > 1 for p in seen):
        return root / tops.pop()  # one top folder: the model directory
    return root


def register_directory_tar(registry: Registry, fileobj: IO[bytes], card: ModelCard, *,
                           signer_key_pem: bytes | None = None, signer_cert_pems: Sequence[bytes] = (),
                           tmp_parent: str | os.PathLike | None = None) -> RegisteredModel:
    """Register the model directory in an uploaded tar exactly as ``Registry.register_directory`` registers a path.

    A ``model.sig`` inside the tar is the publisher's signature; it is verified with ``signer_key_pem`` (an EC public
    key, PEM) or ``signer_cert_pems`` (a certificate chain, PEM), and refused without either.

    Raises:
        ModelDirectoryError (and its kinds in ``glasslog.registry.oms``): the tar or the directory is refused.
        RegistryError: already registered, or a name and version taken.
    """
    with tempfile.TemporaryDirectory(prefix="glasslog-upload-", dir=tmp_parent) as tmp:
        os.chmod(tmp, 0o700)
        try:
            return _register_unpacked(registry, fileobj, card, Path(tmp), signer_key_pem, signer_cert_pems)
        except Exception as exc:  # the server's temporary paths are no business of the uploader: relative to the tar
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (_relative(exc.args[0], Path(tmp)), *exc.args[1:])
            raise


def _relative(message: str, tmp: Path) -> str:
    """``message`` with the upload's temporary paths shown relative to the uploaded tar's root."""
    for prefix, name in ((tmp / "dir", "the uploaded directory"), (tmp, "the upload")):
        for form in {str(prefix), os.path.realpath(prefix)}:
            message = message.replace(form + os.sep, "").replace(form, name)
    return message


def _register_unpacked(registry: Registry, fileobj: IO[bytes], card: ModelCard, tmp: Path, signer_key_pem: bytes | None,
                       signer_cert_pems: Sequence[bytes]) -> RegisteredModel:
    """``register_directory_tar`` inside its temporary directory ``tmp``."""
    root = unpack_directory_tar(fileobj, Path(tmp) / "dir")
    public_key = chain = None
    if signer_key_pem is not None:
        check_pem(signer_key_pem, "public key", "signer_key")
    for k, pem in enumerate(signer_cert_pems):
        check_pem(pem, "certificate", "signer_cert" + (f" #{k + 1}" if len(signer_cert_pems) > 1 else ""))
    if signer_key_pem is not None:
        public_key = Path(tmp) / "signer-key.pem"
        public_key.write_bytes(signer_key_pem)
    if signer_cert_pems:
        chain = []
        for k, pem in enumerate(signer_cert_pems):
            path = Path(tmp) / f"signer-cert-{k}.pem"
            path.write_bytes(pem)
            chain.append(path)
    if (public_key is not None or chain) and not (root / SIGNATURE_FILE).is_file():
        raise ModelDirectoryError(f"a signer key or certificate was given but the tar has no {SIGNATURE_FILE}",
                                  file=SIGNATURE_FILE)
    if (root / SIGNATURE_FILE).is_file() and public_key is None and not chain:
        raise ModelDirectoryError(f"the tar holds a publisher signature ({SIGNATURE_FILE}): send the signer's public"
                                  " key (signer_key) or certificate chain (signer_cert) to verify it",
                                  file=SIGNATURE_FILE)
    return registry.register_directory(root, card, public_key=public_key, certificate_chain=chain)
