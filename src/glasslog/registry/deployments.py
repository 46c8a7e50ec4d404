"""Deployments: where a registered model is used, and how visible its decisions are.

A deployment is declared once with a ``deployment`` entry on the log, naming
its visibility:

- ``public-service``: a public body's system whose decisions should be widely
  visible; decision outputs and outcomes are written into the log in the clear.
- ``private``: e.g. a bank's credit decisions; outputs and outcomes go into the
  log as commitments (values beside the log), so the public, who can read
  every entry, sees only that a decision was made, by which model, when.

A deployment may also declare what its applications' reported ``embeddings``
operations (OTLP GenAI spans, ``glasslog.ingest``) become: ``skip`` (the
default: not logged, counted in the OTLP response) or ``decision`` (one
``decision`` entry per span, naming the registered embedding model). Like the
visibility, it is fixed at declaration.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInputError
from ..ledger import Ledger, utc_now
from ..records import DEPLOYMENT_EMBEDDINGS, DEPLOYMENT_VISIBILITY, deployment_entry

__all__ = ["Deployment", "DeploymentError", "Deployments"]


class DeploymentError(BadInputError):
    """Unknown deployment, or a declaration that conflicts with the log."""


@dataclass(frozen=True)
class Deployment:
    """A declared deployment.

    Attributes:
        name: the deployment name used in decision entries.
        visibility: ``public-service`` or ``private``.
        description: plain-language description.
        declared_index: index of the declaration entry.
        embeddings: what reported ``embeddings`` operations become: ``skip`` or ``decision``.
    """

    name: str
    visibility: str
    description: str
    declared_index: int
    embeddings: str = "skip"

    @property
    def public(self) -> bool:
        return self.visibility == "public-service"

    def to_dict(self) -> dict:
        return vars(self).copy()


class Deployments:
    """Deployments declared on one log (read back from its ``deployment`` entries)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._cache: tuple[int, dict[str, Deployment]] = (0, {})

    def _all(self) -> dict[str, Deployment]:
        size = self.ledger.size
        start, known = self._cache
        if start == size:
            return known
        known = dict(known)
        for index, obj in self.ledger.entries_of_type("deployment", start):
            known.setdefault(obj["deployment"], Deployment(obj["deployment"], obj["visibility"], obj["description"], index,
                                                           obj.get("embeddings", "skip")))
        self._cache = (size, known)
        return known

    def list(self) -> list[Deployment]:
        """All declared deployments, in declaration order."""
        return sorted(self._all().values(), key=lambda d: d.declared_index)

    def find(self, name: str) -> Deployment | None:
        """The deployment named ``name``, or None if it was never declared."""
        return self._all().get(name)

    def get(self, name: str) -> Deployment:
        """The deployment named ``name``.

        Raises:
            DeploymentError: it was never declared.
        """
        found = self.find(name)
        if found is None:
            raise DeploymentError(f"unknown deployment {name!r}: declare it first")
        return found

    def declare(self, name: str, visibility: str, description: str = "", embeddings: str = "skip") -> Deployment:
        """Declare a deployment (a ``deployment`` entry), or return it if declared identically.

        Args:
            embeddings: ``skip`` or ``decision`` (see module docstring); ``skip`` is not written on the entry.

        Raises:
            DeploymentError: already declared with another visibility or embeddings setting, or an
                unknown visibility or embeddings setting.
        """
        if visibility not in DEPLOYMENT_VISIBILITY:
            raise DeploymentError(f"visibility must be one of {', '.join(DEPLOYMENT_VISIBILITY)}, got {visibility!r}")
        if embeddings not in DEPLOYMENT_EMBEDDINGS:
            raise DeploymentError(f"embeddings must be one of {', '.join(DEPLOYMENT_EMBEDDINGS)}, got {embeddings!r}")
        existing = self.find(name)
        if existing is not None:
            if existing.visibility != visibility:
                raise DeploymentError(f"deployment {name!r} is declared {existing.visibility} (entry {existing.declared_index});"
                                      " a deployment's visibility cannot change, declare a new deployment instead")
            if existing.embeddings != embeddings:
                raise DeploymentError(f"deployment {name!r} is declared with embeddings {existing.embeddings} (entry "
                                      f"{existing.declared_index}); it cannot change, declare a new deployment instead")
            return existing
        self.ledger.append([deployment_entry(deployment=name, visibility=visibility, description=description,
                                             embeddings=None if embeddings == "skip" else embeddings, time=utc_now())])
        return self.get(name)
