"""The model registry: artifacts by fingerprint, model cards, status, all on the log.

A registration is a ``model`` entry (event ``register``) holding the model's
fingerprint and card; each status change (``active`` / ``suspended`` /
``withdrawn``) is a ``model`` entry with event ``status`` and a reason. The
registry's state is read back from those entries: the log is the only source
of truth, so a status shown anywhere can be checked against the log.

Artifacts are scikit-learn models (pipelines included) serialised with
``skops``; the fingerprint is SHA-256 of the artifact bytes. Loading checks
the bytes against the fingerprint and lets skops refuse any type outside its
default trusted set, so a registered artifact can be loaded by anyone who
downloads it without running code they did not choose to trust.

A model can also be a Hugging Face model directory (safetensors weights,
config, tokenizer, chat template): its fingerprint is the OpenSSF Model
Signing root digest computed by the ``model-signing`` package, and its
registration entry records every file's digest (see ``glasslog.registry.oms``;
needs ``pip install 'glasslog[llm]'``).

A new skops registration may instead be fingerprinted as a one-file OMS
manifest (``register_artifact(..., oms=True)``, or a card whose ``extra``
says ``"fingerprint_scheme": "oms-file"``): the fingerprint is then the
``model_signing`` root digest of the manifest holding the one file
``model.skops``, the card states it (``extra.fingerprint_scheme``), and the
entry's ``artifact`` record (format ``oms-file``) keeps the file's SHA-256,
which every load and download checks. Existing registrations keep their
SHA-256 fingerprints and verify unchanged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from ..ledger import Ledger, utc_now
from ..ledger.log import AppendResult
from ..records import model_entry
from .card import STATUSES, ModelCard, fingerprint_bytes

__all__ = ["RegistryError", "ArtifactError", "UntrustedTypesError", "RegisteredModel", "StatusChange", "Registry", "dump_model",
           "load_artifact", "OMS_FILE", "OMS_FILE_NAME"]

OMS_FILE = "oms-file"
"""The ``artifact`` format (and card ``extra.fingerprint_scheme``) of a skops file fingerprinted as a one-file OMS manifest."""
OMS_FILE_NAME = "model.skops"
"""The one file's name in that manifest."""


class RegistryError(BadInputError):
    """Unknown model, duplicate registration, or an invalid status change."""


class ArtifactError(BadInputError):
    """A model artifact does not match its fingerprint or holds untrusted types."""


def dump_model(model: Any) -> bytes:
    """Serialise a scikit-learn estimator or pipeline with skops (no pickle)."""
    import skops.io as sio  # imported on use: it loads scikit-learn, seconds the CLI need not wait

    return sio.dumps(model)


class UntrustedTypesError(ArtifactError):
    """The artifact needs skops types outside the trusted defaults that the caller did not trust (``types``).

    Not a verification failure: nothing was checked; the caller may review the types and pass them."""

    def __init__(self, types: Sequence[str]):
        self.types = list(types)
        super().__init__(f"artifact contains untrusted types {self.types}; glasslog loads only skops' trusted types"
                         " unless the caller reviews and trusts them explicitly (trusted=[...], --trust TYPE, or"
                         " --trust-recorded for the types recorded with the registration)")


def load_artifact(data: bytes, fingerprint: str, trusted: Sequence[str] = ()) -> Any:
    """Load a skops artifact after checking it against its fingerprint.

    Args:
        data: the artifact bytes.
        fingerprint: ``"sha256:<hex>"`` the artifact must hash to.
        trusted: extra type names (as ``skops.io.get_untrusted_types``
            reports them) the caller has reviewed and trusts, e.g.
            ``sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor``.

    Raises:
        ArtifactError: the bytes do not hash to ``fingerprint``, are not a
            skops file, or contain types outside skops' trusted defaults.
    """
    actual = fingerprint_bytes(data)
    if actual != fingerprint:
        raise ArtifactError(f"artifact hashes to {actual}, not the registered fingerprint {fingerprint}: refusing to load it")
    try:
        import skops.io as sio

        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises various errors for non-skops bytes
        raise ArtifactError(f"artifact is not a readable skops file: {exc}") from None
    refused = [t for t in untrusted if t not in set(trusted)]
    if refused:
        raise UntrustedTypesError(refused)
    return sio.loads(data, trusted=list(untrusted) or None)


@dataclass(frozen=True)
class StatusChange:
    """One entry in a model's status history."""

    index: int
    time: str
    status: str
    reason: str


@dataclass(frozen=True)
class RegisteredModel:
    """A model as the log records it.

    Attributes:
        fingerprint: ``"sha256:<hex>"`` of the artifact bytes (skops), or the
            OMS root digest (model directories).
        card: the model card from the registration entry.
        registered_index: index of the registration entry.
        history: status changes, oldest first (the first is the registration).
        artifact: for model directories, the registration's ``artifact`` record
            (OMS digest, per-file digests, tokenizer and chat template digests,
            verified signer); None for skops artifacts.
        trusted: the extra skops types the registrant trusted (recorded with
            the registration; a loader accepts them with ``trusted=record.trusted``).
    """

    fingerprint: str
    card: ModelCard
    registered_index: int
    history: tuple[StatusChange, ...]
    artifact: dict[str, Any] | None = None
    trusted: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return self.history[-1].status

    @property
    def is_directory(self) -> bool:
        """True for a model directory (OMS fingerprint), False for a skops artifact."""
        return bool(self.artifact) and self.artifact.get("format") == "oms-directory"

    @property
    def artifact_sha256(self) -> str:
        """``"sha256:<hex>"`` the stored skops bytes must hash to: the fingerprint itself, or for a skops file
        fingerprinted as a one-file OMS manifest, the file's digest recorded beside the root digest."""
        if self.artifact and self.artifact.get("format") == OMS_FILE:
            return self.artifact["files"][OMS_FILE_NAME]
        return self.fingerprint

    def to_dict(self) -> dict[str, Any]:
        out = {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "registered_index": self.registered_index,
            "card": self.card.to_dict(),
            "history": [vars(h) for h in self.history],
        }
        if self.artifact is not None:
            out["artifact"] = self.artifact
        if self.trusted:
            out["trusted"] = list(self.trusted)
        return out


class Registry:
    """Models registered on one log.

    Args:
        ledger: the log; artifacts live in ``<data-dir>/artifacts``.
    """

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.artifact_dir = Path(ledger.data_dir) / "artifacts"
        self._cache: tuple[int, dict[str, RegisteredModel]] | None = None

    def _models(self) -> dict[str, RegisteredModel]:
        # Read only the model entries appended since the last call: the log is
        # append-only, so earlier state never changes.
        size = self.ledger.size
        if self._cache is not None and self._cache[0] == size:
            return self._cache[1]
        start, models = (0, {}) if self._cache is None else (self._cache[0], dict(self._cache[1]))
        for index, obj in self.ledger.entries_of_type("model", start):
            fp = obj["model"]
            if obj["event"] == "register":
                if fp not in models:  # a duplicate registration cannot be appended; ignore if ever present
                    history = (StatusChange(index, obj["time"], obj["status"], "registered"),)
                    models[fp] = RegisteredModel(fp, ModelCard.from_dict(obj["card"]), index, history, obj.get("artifact"),
                                                 tuple(t for t in obj.get("trusted") or () if isinstance(t, str)))
            elif fp in models:
                m = models[fp]
                change = StatusChange(index, obj["time"], obj["status"], obj["reason"])
                models[fp] = RegisteredModel(fp, m.card, m.registered_index, m.history + (change,), m.artifact, m.trusted)
        self._cache = (size, models)
        return models

    def list(self) -> list[RegisteredModel]:
        """All registered models, in registration order."""
        return sorted(self._models().values(), key=lambda m: m.registered_index)

    def get(self, fingerprint: str) -> RegisteredModel:
        """The model with this fingerprint (a unique prefix of at least 12 characters also works).

        Raises:
            RegistryError: no such model, or an ambiguous prefix.
        """
        models = self._models()
        if fingerprint in models:
            return models[fingerprint]
        key = fingerprint if fingerprint.startswith("sha256:") else "sha256:" + fingerprint
        if len(key) < 19 and not any(fp == key for fp in models):
            raise RegistryError(f"model prefix {fingerprint!r} is too short: give at least 12 hex digits of the fingerprint"
                                " (glasslog models list)")
        matches = [m for fp, m in models.items() if fp.startswith(key)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RegistryError(f"model prefix {fingerprint!r} is ambiguous ({len(matches)} models)")
        raise RegistryError(f"unknown model {fingerprint!r}: no registration entry in log {self.ledger.origin}")

    def register(self, model: Any, card: ModelCard, trusted: Sequence[str] = (), *,
                 signature: str | os.PathLike | None = None, public_key: str | os.PathLike | None = None,
                 certificate_chain: Sequence[str | os.PathLike] | None = None) -> RegisteredModel:
        """Serialise ``model`` with skops, store the artifact, and log its registration.

        Args:
            model: a fitted scikit-learn estimator or pipeline; or a path: a
                skops file, or a Hugging Face model directory (see
                ``register_directory``; ``signature``, ``public_key`` and
                ``certificate_chain`` apply to directories only).
            card: its model card; ``card.features`` must match the model's
                ``feature_names_in_`` when the model has them.

        Raises:
            RegistryError: the same artifact is already registered, or the
                card's features do not match the model.
            ArtifactError: a path that is neither a skops file nor a model
                directory glasslog accepts (see ``glasslog.registry.oms``).
            glasslog.ledger.KeyFileError: the log's signer key cannot be used.
        """
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if path.is_dir():
                return self.register_directory(path, card, signature=signature, public_key=public_key,
                                               certificate_chain=certificate_chain)
            if signature is not None or public_key is not None or certificate_chain is not None:
                raise ArtifactError("publisher signatures (model.sig) are verified for model directories only")
            if not path.is_file():
                raise ArtifactError(f"{path} is neither a skops file nor a model directory")
            return self.register_artifact(path.read_bytes(), card, trusted)
        names_in = getattr(model, "feature_names_in_", None)
        if names_in is not None and list(names_in) != card.feature_names:
            raise RegistryError(f"model card features {card.feature_names} do not match the model's features {list(names_in)}")
        artifact = dump_model(model)
        return self.register_artifact(artifact, card, trusted)

    def register_artifact(self, artifact: bytes, card: ModelCard, trusted: Sequence[str] = (), *,
                          oms: bool | None = None) -> RegisteredModel:
        """Register already-serialised skops artifact bytes (see ``register``; ``trusted`` as in ``load_artifact``).

        ``oms``: fingerprint it as a one-file OMS manifest (see the module docstring); None (default) follows the
        card's ``extra.fingerprint_scheme``. The card then states the scheme.

        Raises:
            RegistryError, ArtifactError: as ``register``; ``glasslog.registry.oms.ExtraMissingError`` for ``oms``
                without ``model-signing`` installed.
        """
        sha = fingerprint_bytes(artifact)
        scheme = card.extra.get("fingerprint_scheme")
        if oms is None:
            oms = scheme == OMS_FILE
        if scheme not in (None, OMS_FILE, "sha256") or (scheme is not None and (scheme == OMS_FILE) != oms):
            raise RegistryError(f"the card's extra.fingerprint_scheme is {scheme!r}; a skops file is fingerprinted"
                                f" 'sha256' (its bytes) or {OMS_FILE!r} (a one-file OMS manifest)")
        record = None
        fingerprint = sha
        if oms:
            fingerprint, record = _one_file_manifest(artifact)
            card = replace(card, extra={**card.extra, "fingerprint_scheme": OMS_FILE})
        self._check_new(fingerprint, card)
        load_artifact(artifact, sha, trusted)  # refuse what nobody could load safely
        import skops.io as sio

        needed = sorted(set(sio.get_untrusted_types(data=artifact)))  # what a loader must trust: on the record
        path = self.artifact_path(fingerprint)
        created = not path.exists()
        if created:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(artifact)
            os.replace(tmp, path)
        entry = model_entry(event="register", model=fingerprint, card=card.to_dict(), status="active", time=utc_now(),
                            trusted=needed or None, artifact=record)
        try:
            self.ledger.append([entry])
        except BaseException:
            if created:
                path.unlink(missing_ok=True)
            raise
        return self.get(fingerprint)

    def _check_new(self, fingerprint: str, card: ModelCard) -> None:
        """Refuse a second registration of the same artifact, name and version, or of a suspended model's data."""
        if fingerprint in self._models():
            raise RegistryError(f"model {fingerprint} is already registered (entry {self._models()[fingerprint].registered_index})")
        for other in self._models().values():
            # The same model re-serialised has other bytes, so another fingerprint: a
            # suspension must not be dodged by registering it again.
            if (other.card.name, other.card.version) == (card.name, card.version):
                raise RegistryError(f"{card.name} version {card.version} is already registered as {other.fingerprint}"
                                    f" ({other.status}); register a new version instead")
            if other.status != "active" and other.card.training_data_fingerprint == card.training_data_fingerprint:
                raise RegistryError(f"a model trained on the same data ({other.fingerprint}) is {other.status}; a supervisor"
                                    " must reinstate it, or the new model must be trained on other data")

    def register_directory(self, path: str | os.PathLike, card: ModelCard, *, signature: str | os.PathLike | None = None,
                           public_key: str | os.PathLike | None = None,
                           certificate_chain: Sequence[str | os.PathLike] | None = None) -> RegisteredModel:
        """Register a Hugging Face model directory under its OMS root digest (see ``glasslog.registry.oms``).

        The directory is checked (no pickle checkpoints, safetensors shards
        consistent with their index), hashed with ``model_signing``, its
        publisher signature verified offline when there is one (``signature``,
        default ``<path>/model.sig`` if present, checked with ``public_key`` or
        ``certificate_chain``), copied into the artifact store, and logged.

        Raises:
            glasslog.registry.oms.ModelDirectoryError: the directory or its
                signature is refused (the message names the file).
            RegistryError: already registered (see ``register_artifact``).
        """
        from . import oms

        root = Path(path)
        manifest = oms.inspect_directory(root)
        sig = Path(signature) if signature is not None else (root / oms.SIGNATURE_FILE)
        if signature is not None or sig.is_file():
            record = oms.verify_signature(root, manifest, sig, public_key=public_key, certificate_chain=certificate_chain)
            manifest = replace(manifest, signature=record)
        elif public_key is not None or certificate_chain is not None:
            raise oms.SignatureError(f"a signer key or certificate was given but {root} has no {oms.SIGNATURE_FILE}")
        else:
            sig = None
        self._check_new(manifest.fingerprint, card)
        dest = self.artifact_path(manifest.fingerprint, directory=True)
        created = not dest.exists()
        if created:
            oms.copy_directory(root, dest, manifest.files, sig)
        try:
            oms.check_against_record(dest, manifest.to_entry())  # the copy is what was hashed
            entry = model_entry(event="register", model=manifest.fingerprint, card=card.to_dict(), status="active",
                                time=utc_now(), artifact=manifest.to_entry())
            self.ledger.append([entry])
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            raise
        return self.get(manifest.fingerprint)

    def artifact_path(self, fingerprint: str, directory: bool | None = None) -> Path:
        """Where the artifact is stored: ``<hex>.skops``, or the folder ``<hex>/`` for a model directory."""
        hexdigest = fingerprint.removeprefix("sha256:")
        if directory is None:
            directory = self.get(fingerprint).is_directory if fingerprint in self._models() else False
        return self.artifact_dir / (hexdigest if directory else hexdigest + ".skops")

    def model_dir(self, fingerprint: str) -> Path:
        """The stored copy of a registered model directory, checked file by file against its registration.

        Raises:
            RegistryError: unknown model, not a model directory, or the copy is missing.
            glasslog.registry.oms.TamperedFileError: a file is missing, extra or altered (named).
        """
        from . import oms

        m = self.get(fingerprint)
        if not m.is_directory:
            raise RegistryError(f"model {m.fingerprint} is a skops artifact, not a model directory")
        path = self.artifact_path(m.fingerprint, directory=True)
        if not path.is_dir():
            raise RegistryError(f"the stored copy of model directory {m.fingerprint} is missing from {self.artifact_dir}")
        oms.check_against_record(path, m.artifact, what="model directory")
        return path

    def artifact(self, fingerprint: str) -> bytes:
        """The artifact bytes of a registered model (for a model directory: a tar of it, checked first).

        Raises:
            RegistryError: unknown model or missing artifact file.
            ArtifactError: a model directory's stored copy was altered (the file is named).
        """
        m = self.get(fingerprint)
        if m.is_directory:
            from . import oms

            return oms.tar_directory(self.model_dir(m.fingerprint), m.fingerprint.removeprefix("sha256:")[:16])
        path = self.artifact_path(m.fingerprint)
        if not path.is_file():
            raise RegistryError(f"artifact of model {m.fingerprint} is missing from {self.artifact_dir}")
        return path.read_bytes()

    def download(self, fingerprint: str) -> tuple[bytes, str, str]:
        """What a weights download serves, checked against the fingerprint: ``(bytes, file name, media type)``.

        skops artifacts are re-hashed; model directories are checked file by
        file and served as a tar (``<fingerprint prefix>.tar``, with
        ``model.sig`` when the publisher signed it).

        Raises:
            RegistryError: unknown model or missing artifact.
            ArtifactError: the stored artifact no longer matches its fingerprint.
        """
        m = self.get(fingerprint)
        name = m.fingerprint.removeprefix("sha256:")[:16]
        data = self.artifact(m.fingerprint)
        if m.is_directory:
            return data, name + ".tar", "application/x-tar"
        if fingerprint_bytes(data) != m.artifact_sha256:
            raise ArtifactError(f"the stored artifact no longer matches fingerprint {m.fingerprint}; refusing to serve it")
        return data, name + ".skops", "application/octet-stream"

    def load(self, fingerprint: str, trusted: Sequence[str] = ()) -> Any:
        """Load a registered model, checking its bytes against the fingerprint (``trusted`` as in ``load_artifact``).

        Raises:
            RegistryError: unknown model or missing artifact.
            ArtifactError: the stored artifact was altered or holds untrusted types,
                or the model is a model directory (use ``model_dir`` and transformers).
        """
        m = self.get(fingerprint)
        if m.is_directory:
            raise ArtifactError(f"model {m.fingerprint} is a model directory: load it with transformers from"
                                " Registry.model_dir(...) (checked file by file), or wrap it with"
                                " glasslog.capture.wrap_encoder_classifier")
        return load_artifact(self.artifact(m.fingerprint), m.artifact_sha256, trusted)

    def set_status(self, fingerprint: str, status: str, reason: str) -> AppendResult:
        """Log a status change (suspend, reinstate, withdraw) with its reason.

        Raises:
            RegistryError: unknown model, unknown status, no reason, a change
                to the current status, or any change after withdrawal.
        """
        return self.ledger.append([self.status_entry(fingerprint, status, reason)])

    def status_entry(self, fingerprint: str, status: str, reason: str) -> dict:
        """The ``model`` status entry ``set_status`` would append, checked the same way but not appended.

        For callers that append a status change together with other entries in
        one batch (e.g. a triage escalation and the suspension it causes).

        Raises:
            RegistryError: as ``set_status``.
        """
        if status not in STATUSES:
            raise RegistryError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if not reason or not reason.strip():
            raise RegistryError("a status change needs a reason")
        m = self.get(fingerprint)
        if m.status == "withdrawn":
            raise RegistryError(f"model {m.fingerprint} is withdrawn; withdrawal is final")
        if m.status == status:
            raise RegistryError(f"model {m.fingerprint} is already {status}")
        return model_entry(event="status", model=m.fingerprint, status=status, reason=reason.strip(), time=utc_now())


def _one_file_manifest(artifact: bytes) -> tuple[str, dict[str, Any]]:
    """The OMS root digest (``model_signing``) of a manifest holding ``artifact`` as ``model.skops``, and the record."""
    import tempfile

    from . import oms

    with tempfile.TemporaryDirectory(prefix="glasslog-oms-") as tmp:
        path = Path(tmp) / OMS_FILE_NAME
        path.write_bytes(artifact)
        root, files, hashing = oms.oms_fingerprint(tmp)
    return root, {"format": OMS_FILE, "root_digest": root, "files": files, "hashing": hashing}
