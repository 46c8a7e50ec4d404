"""Access regimes, capability of the widely available models, and the actors who oversee under them.

A **regime** is the disclosure policy written on the model card of every model
registered in a scenario run (``glasslog.access.policy.DISCLOSURE_ORDER``):

| regime        | disclosure policy | roles that may download the weights            |
|---------------|-------------------|------------------------------------------------|
| closed        | ``closed``        | none                                           |
| supervisors   | ``supervisors``   | supervisor                                     |
| researchers   | ``researchers``   | supervisor, researcher                         |
| developers    | ``developers``    | supervisor, researcher, developer              |
| open          | ``public``        | everyone                                       |

glasslog's policy is cumulative (each level includes the ones before it), so
"weights to research institutions" also gives them to supervisory authorities.

**Capability** of the widely available models: ``frontier`` (the widely
available models are as capable as the deployed one) or ``lagging`` by a number
of months (default 4: Epoch AI, 2026, open-weight models lag the frontier by
about 4 months on the Epoch Capabilities Index; about 3 months for 2023-2025,
and about a year in Epoch AI's 2024 report; the seed's "2 years" is a
sensitivity case).

An **actor** holds a real ``Principal``: an API key issued on the run's log
(``glasslog.access.KeyStore``, so the issue is a ``key`` entry) and
authenticated back, or the public principal. It gets weights only through
``Actor.obtain_weights``, which asks ``glasslog.access.policy.may_download_weights``
with the card's disclosure policy, exactly as the server's artifact route
does, loads the weights with glasslog's white-box audit loader
(``glasslog.audit.whitebox.load_registered_model``: the registry's
fingerprint-checked load, refused by the same policy) and logs the download
as an ``access`` entry; otherwise it raises ``WeightsRefused``. It reads
decisions only through ``glasslog.access.policy.decision_view``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..access import KeyStore
from ..access.keys import PUBLIC, Principal
from ..access.policy import DISCLOSURE_ORDER, decision_view, may_download_weights, may_read_decision, weights_download_entry
from ..ledger import Ledger, utc_now
from ..registry import Deployments, Registry, load_artifact
from ..registry.card import fingerprint_bytes

__all__ = [
    "REGIMES",
    "REGIME_POLICY",
    "REGIME_LABELS",
    "Capability",
    "WeightsRefused",
    "Actor",
    "roles_with_weights",
    "make_actors",
    "DEFAULT_LAG_MONTHS",
]

REGIMES = ("closed", "supervisors", "researchers", "developers", "open")
"""The access regimes, from least to most access."""

REGIME_POLICY = dict(zip(REGIMES, DISCLOSURE_ORDER))
"""Regime -> the disclosure policy written on the model cards of a run."""

REGIME_LABELS = {
    "closed": "closed weights",
    "supervisors": "weights to supervisory authorities",
    "researchers": "weights to research institutions (and supervisors)",
    "developers": "weights to downstream developers (and researchers, supervisors)",
    "open": "open weights (everyone)",
}

DEFAULT_LAG_MONTHS = 4.0
"""Default lag of the widely available models behind the frontier, in months (Epoch AI, 2026)."""


@dataclass(frozen=True)
class Capability:
    """Capability of the widely available models relative to the frontier.

    Attributes:
        lag_months: how far they lag the frontier, in months (0 = at the frontier).
    """

    lag_months: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.lag_months, (int, float)) or isinstance(self.lag_months, bool) or not 0 <= self.lag_months <= 120:
            raise ValueError(f"lag_months must be a number of months between 0 and 120, got {self.lag_months!r}")

    @property
    def label(self) -> str:
        return "frontier" if self.lag_months == 0 else f"lagging {self.lag_months:g} months"


def roles_with_weights(regime: str) -> frozenset[str]:
    """Roles that may download weights in ``regime``, as the access policy answers.

    Raises:
        ValueError: unknown regime.
    """
    if regime not in REGIME_POLICY:
        raise ValueError(f"unknown regime {regime!r}; known: {', '.join(REGIMES)}")
    return frozenset(r for r in ("public", "subject", "developer", "researcher", "supervisor", "operator")
                     if r != "operator" and may_download_weights(r, REGIME_POLICY[regime]))


class WeightsRefused(PermissionError):
    """The access policy refuses this actor the weights (the same answer the server's artifact route gives)."""


@dataclass
class Actor:
    """An overseer acting on one log with a real principal.

    Attributes:
        name: who it is (e.g. "Financial supervisory authority").
        principal: the ``Principal`` its API key authenticates to (public: ``PUBLIC``).
        ledger: the log it reads.
        downloads: fingerprints of the weights it obtained (each logged as an ``access`` entry).
        grants: how many times the access policy granted it weights (``obtain_weights`` calls that returned).
        refusals: how many times the access policy refused it the weights.
    """

    name: str
    principal: Principal
    ledger: Ledger
    downloads: list[str] = field(default_factory=list)
    grants: int = 0
    refusals: int = 0
    _estimators: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def role(self) -> str:
        return self.principal.role

    def may_get_weights(self, fingerprint: str) -> bool:
        """What the access policy answers for this actor and this model's card."""
        card = Registry(self.ledger).get(fingerprint).card
        return may_download_weights(self.role, card.disclosure_policy)

    def obtain_weights(self, fingerprint: str) -> Any:
        """Download and load a registered model's weights, as the server's artifact route allows.

        The first download of each model is logged as an ``access`` entry
        (action ``weights-download``, role, key id).

        Returns:
            The loaded scikit-learn estimator.

        Raises:
            WeightsRefused: the card's disclosure policy does not admit this role.
            glasslog.registry.RegistryError: unknown model.
            glasslog.registry.ArtifactError: the stored artifact does not match its fingerprint.
        """
        registry = Registry(self.ledger)
        m = registry.get(fingerprint)
        if not may_download_weights(self.role, m.card.disclosure_policy):  # asked every time, never cached
            self.refusals += 1
            raise WeightsRefused(f"the disclosure policy of model {m.card.name} {m.card.version} is"
                                 f" '{m.card.disclosure_policy}'; role {self.role} may not download its weights")
        if fingerprint in self._estimators:  # granted again: the download is already on the log
            self.grants += 1
            return self._estimators[fingerprint]
        try:  # glasslog's white-box audit loader: the registry load, refused again by the policy if it says no
            from ..audit.whitebox import WeightsAccessError, load_registered_model
        except ImportError:  # pragma: no cover - the audit package ships with glasslog
            data = registry.artifact(m.fingerprint)
            if fingerprint_bytes(data) != m.fingerprint:
                raise WeightsRefused(f"stored artifact of {m.fingerprint} does not match its fingerprint") from None
            estimator = load_artifact(data, m.fingerprint)
        else:
            try:
                estimator, _ = load_registered_model(self.ledger, m.fingerprint, self.principal)
            except WeightsAccessError as exc:  # pragma: no cover - the check above already refused
                raise WeightsRefused(str(exc)) from None
        self.ledger.append([weights_download_entry(m.fingerprint, self.role, self.principal.key_id, utc_now())])
        self._estimators[fingerprint] = estimator
        self.downloads.append(m.fingerprint)
        self.grants += 1
        return estimator

    def read_decisions(self, start: int = 0) -> list[dict]:
        """Decisions from entry ``start`` on, each as this actor's ``decision_view`` (what the policy lets it see).

        Decisions it may not read individually are left out. Private values
        are opened only as the view allows: ``output`` appears for private
        deployments only for roles the policy shows it to.

        Returns:
            One dict per readable decision: ``index``, ``model``, ``deployment``, ``time``,
            and as allowed ``output``, ``input_values``.
        """
        deployments = Deployments(self.ledger)
        registry = Registry(self.ledger)
        rows = list(self.ledger.entries_of_type("decision", start))
        private = self.ledger.private_values_for([i for i, _ in rows]) if self.role != "public" else {}
        out = []
        for index, entry in rows:
            dep = deployments.get(entry["deployment"])
            if not may_read_decision(self.principal, index, dep.name, dep.public):
                continue
            card = registry.get(entry["model"]).card
            out.append(decision_view(self.principal, index, entry, private.get(index, {}), card))
        return out

    def read_outcomes(self, decisions: dict[int, dict], start: int = 0) -> dict[int, Any]:
        """Outcomes (decision index -> value) of the given decisions, from entry ``start`` on.

        An outcome is opened exactly when the actor's view of its decision
        holds the output: public outcomes of public-service deployments for
        everyone; committed outcomes of private deployments for the roles the
        policy shows private outputs to.

        Args:
            decisions: this actor's views of decisions, by index (``read_decisions``).
        """
        rows = [(i, e) for i, e in self.ledger.entries_of_type("outcome", start) if e["decision"] in decisions]
        private = self.ledger.private_values_for([i for i, e in rows if "outcome_commitment" in e])
        out: dict[int, Any] = {}
        for i, e in rows:
            if "output" not in decisions[e["decision"]]:
                continue
            if "outcome" in e:
                out[e["decision"]] = e["outcome"]
            elif "outcome" in private.get(i, {}):
                out[e["decision"]] = json.loads(private[i]["outcome"][2])
        return out


def make_actors(ledger: Ledger, roles: dict[str, str], developer_deployments: tuple[str, ...] = ()) -> dict[str, Actor]:
    """Issue an API key on ``ledger`` for each overseer role and authenticate it back.

    Args:
        roles: role -> the holder's name, e.g. ``{"supervisor": "Financial supervisory authority"}``;
            ``public`` gets the public principal (no key).
        developer_deployments: deployments a developer key is granted.

    Returns:
        role -> ``Actor``.

    Raises:
        ValueError: an unknown role (from ``KeyStore.create``).
    """
    store = KeyStore(ledger)
    actors = {}
    for role, name in roles.items():
        if role == "public":
            actors[role] = Actor(name, PUBLIC, ledger)
            continue
        _, token = store.create(role, name, developer_deployments if role == "developer" else ())
        actors[role] = Actor(name, store.authenticate(token), ledger)
    return actors
