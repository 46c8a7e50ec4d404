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
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from ..ledger import Ledger, utc_now
from ..ledger.log import AppendResult
from .card import STATUSES, ModelCard, fingerprint_bytes

__all__ = ["RegistryError", "ArtifactError", "RegisteredModel", "StatusChange", "Registry", "dump_model", "load_artifact"]


class RegistryError(BadInputError):
    """Unknown model, duplicate registration, or an invalid status change."""


class ArtifactError(BadInputError):
    """A model artifact does not match its fingerprint or holds untrusted types."""


def dump_model(model: Any) -> bytes:
    """Serialise a scikit-learn estimator or pipeline with skops (no pickle)."""
    import skops.io as sio  # imported on use: it loads scikit-learn, seconds the CLI need not wait

    return sio.dumps(model)


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
        raise ArtifactError(f"artifact contains untrusted types {refused}; glasslog loads only skops' trusted types"
                            " unless the caller reviews and trusts them explicitly (trusted=[...])")
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
        fingerprint: ``"sha256:<hex>"`` of the artifact bytes.
        card: the model card from the registration entry.
        registered_index: index of the registration entry.
        history: status changes, oldest first (the first is the registration).
    """

    fingerprint: str
    card: ModelCard
    registered_index: int
    history: tuple[StatusChange, ...]

    @property
    def status(self) -> str:
        return self.history[-1].status

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "registered_index": self.registered_index,
            "card": self.card.to_dict(),
            "history": [vars(h) for h in self.history],
        }


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
                    models[fp] = RegisteredModel(fp, ModelCard.from_dict(obj["card"]), index, history)
            elif fp in models:
                m = models[fp]
                change = StatusChange(index, obj["time"], obj["status"], obj["reason"])
                models[fp] = RegisteredModel(fp, m.card, m.registered_index, m.history + (change,))
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
        matches = [m for fp, m in models.items() if fp.startswith(key)] if len(key) >= 19 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RegistryError(f"model prefix {fingerprint!r} is ambiguous ({len(matches)} models)")
        raise RegistryError(f"unknown model {fingerprint!r}: no registration entry in log {self.ledger.origin}")

    def register(self, model: Any, card: ModelCard, trusted: Sequence[str] = ()) -> RegisteredModel:
        """Serialise ``model`` with skops, store the artifact, and log its registration.

        Args:
            model: a fitted scikit-learn estimator or pipeline.
            card: its model card; ``card.features`` must match the model's
                ``feature_names_in_`` when the model has them.

        Raises:
            RegistryError: the same artifact is already registered, or the
                card's features do not match the model.
            glasslog.ledger.KeyFileError: the log's signer key cannot be used.
        """
        names_in = getattr(model, "feature_names_in_", None)
        if names_in is not None and list(names_in) != card.feature_names:
            raise RegistryError(f"model card features {card.feature_names} do not match the model's features {list(names_in)}")
        artifact = dump_model(model)
        return self.register_artifact(artifact, card, trusted)

    def register_artifact(self, artifact: bytes, card: ModelCard, trusted: Sequence[str] = ()) -> RegisteredModel:
        """Register already-serialised skops artifact bytes (see ``register``; ``trusted`` as in ``load_artifact``)."""
        fingerprint = fingerprint_bytes(artifact)
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
        load_artifact(artifact, fingerprint, trusted)  # refuse what nobody could load safely
        path = self.artifact_path(fingerprint)
        created = not path.exists()
        if created:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(artifact)
            os.replace(tmp, path)
        entry = {"type": "model", "v": 1, "event": "register", "model": fingerprint, "card": card.to_dict(),
                 "status": "active", "time": utc_now()}
        try:
            self.ledger.append([entry])
        except BaseException:
            if created:
                path.unlink(missing_ok=True)
            raise
        return self.get(fingerprint)

    def artifact_path(self, fingerprint: str) -> Path:
        return self.artifact_dir / (fingerprint.removeprefix("sha256:") + ".skops")

    def artifact(self, fingerprint: str) -> bytes:
        """The artifact bytes of a registered model.

        Raises:
            RegistryError: unknown model or missing artifact file.
        """
        m = self.get(fingerprint)
        path = self.artifact_path(m.fingerprint)
        if not path.is_file():
            raise RegistryError(f"artifact of model {m.fingerprint} is missing from {self.artifact_dir}")
        return path.read_bytes()

    def load(self, fingerprint: str, trusted: Sequence[str] = ()) -> Any:
        """Load a registered model, checking its bytes against the fingerprint (``trusted`` as in ``load_artifact``).

        Raises:
            RegistryError: unknown model or missing artifact.
            ArtifactError: the stored artifact was altered or holds untrusted types.
        """
        m = self.get(fingerprint)
        return load_artifact(self.artifact(m.fingerprint), m.fingerprint, trusted)

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
        return {"type": "model", "v": 1, "event": "status", "model": m.fingerprint, "status": status,
                "reason": reason.strip(), "time": utc_now()}
