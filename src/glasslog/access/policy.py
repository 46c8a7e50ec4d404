"""Who may see and do what: roles, weights disclosure, and each role's view of a decision.

Roles (DESIGN.md): ``public``, ``subject``, ``developer``, ``researcher``,
``supervisor``, ``operator``.

Weights: a model's disclosure policy names the widest group that may download
its artifact; each level includes the ones before it::

    closed < supervisors < researchers < developers < public

Operators are in the last tier only: an operator key is for writing (the
operator registered the artifact and holds it already), so downloading
weights over the API is for the overseers each policy names.

Decisions: every entry is public (the tiles serve them all), so privacy rests
on what the entries hold: commitments, never personal values. The views below
decide which private values (beside the log) each role gets opened:

| role       | decisions it reads                  | output | inputs                                    | subject id |
|------------|-------------------------------------|--------|-------------------------------------------|------------|
| public     | public-service deployments          | yes    | no (commitment)                           | no         |
| subject    | their own (receipt token)           | yes    | all of their own                          | their own  |
| developer  | deployments their key is granted    | yes    | no                                        | no         |
| researcher | all                                 | yes    | pseudonymised: personal features withheld, protected ones only if the card allows | no |
| supervisor | all                                 | yes    | all                                       | yes        |
| operator   | all (its own deployment's data)     | yes    | all                                       | yes        |

For private deployments the public sees aggregate counts only.

Outcomes recorded as commitments are opened for every role but the public.
A flag's text is readable by supervisors and operators, by its reporter, and
by everyone when the flag is about a model (not a decision) or about a
decision of a public-service deployment.

Generations (a generative model's outputs) follow the same rules as decisions
(``may_read_decision``, ``effective_principal``; ``generation_view``): the
output text for public-service deployments and for the roles that read the
deployment (a private deployment's output opened for all but the public); the
prompt and the subject id opened for the subject, supervisors and the
operator only (a prompt may hold anything); researchers and developers see
the prompt's commitment.

This module is the one place that answers these questions; the server,
monitors, audits and flags ask it (``tests/test_access_policy.py`` checks every
role x visibility x disclosure level).
"""

from __future__ import annotations

import json
from typing import Any

from ..records import access_entry

__all__ = [
    "ROLES",
    "KEY_ROLES",
    "MONITOR_ROLES",
    "DISCLOSURE_ORDER",
    "sees_every_deployment",
    "sees_outputs",
    "readable_deployments",
    "opens_outcomes",
    "receipt_opens_private_values",
    "may_read_flag_text",
    "may_download_weights",
    "weights_download_entry",
    "may_read_decision",
    "effective_principal",
    "decision_view",
    "input_view",
    "generation_view",
]

ROLES = ("public", "subject", "developer", "researcher", "supervisor", "operator")
KEY_ROLES = ("operator", "supervisor", "researcher", "developer")
MONITOR_ROLES = ("public", "developer", "researcher", "supervisor", "operator")
"""Roles a monitor or audit can run as (a subject's view is one decision, not a deployment)."""
DISCLOSURE_ORDER = ("closed", "supervisors", "researchers", "developers", "public")

_EVERY_DEPLOYMENT = frozenset({"researcher", "supervisor", "operator"})
_ALL_PRIVATE_VALUES = frozenset({"subject", "supervisor", "operator"})

_WEIGHTS: dict[str, frozenset[str]] = {
    "closed": frozenset(),
    "supervisors": frozenset({"supervisor"}),
    "researchers": frozenset({"supervisor", "researcher"}),
    "developers": frozenset({"supervisor", "researcher", "developer"}),
    "public": frozenset(ROLES),
}


def may_download_weights(role: str, disclosure_policy: str) -> bool:
    """True if ``role`` may download weights under ``disclosure_policy``.

    Raises:
        ValueError: unknown disclosure policy.
    """
    if disclosure_policy not in _WEIGHTS:
        raise ValueError(f"unknown disclosure policy {disclosure_policy!r}")
    return role in _WEIGHTS[disclosure_policy]


def weights_download_entry(model: str, role: str, key_id: str | None, time: str) -> dict[str, Any]:
    """The ``access`` entry logging a download of ``model``'s weights by ``role`` (``key_id`` None: anonymous)."""
    return access_entry(action="weights-download", model=model, role=role, key_id=key_id or "anonymous", time=time)


def sees_every_deployment(role: str) -> bool:
    """True if ``role`` reads decisions (and their outputs) of every deployment, private ones included."""
    return role in _EVERY_DEPLOYMENT


def sees_outputs(role: str, deployment_name: str, deployment_public: bool, granted=()) -> bool:
    """True if ``role`` sees the outputs (and per-label counts) of a deployment's decisions.

    Args:
        role: the reader's role (a subject's own decision is ``may_read_decision``'s question).
        deployment_name: the deployment.
        deployment_public: whether it is a public-service deployment.
        granted: for developers, the deployments their key is granted.
    """
    if deployment_public or sees_every_deployment(role):
        return True
    return role == "developer" and deployment_name in set(granted)


def readable_deployments(principal, deployments) -> list[str]:
    """Names of the deployments whose decisions ``principal`` may list (``deployments``: objects with ``name`` and ``public``).

    A subject lists none (they read their own decision by receipt token).
    """
    if principal.role == "subject":
        return []
    return [d.name for d in deployments if sees_outputs(principal.role, d.name, d.public, principal.deployments)]


def opens_outcomes(role: str) -> bool:
    """True if ``role`` gets outcomes recorded as commitments opened (everyone but the public)."""
    return role != "public"


def receipt_opens_private_values(role: str) -> bool:
    """True if a receipt exported for ``role`` carries the opened private values (inputs, subject id)."""
    return role in _ALL_PRIVATE_VALUES


def may_read_flag_text(role: str, own: bool, about_decision: bool, deployment_public: bool) -> bool:
    """True if a reader may read a flag's free text.

    Args:
        role: the reader's role.
        own: the reader reported the flag.
        about_decision: the flag is about a decision (not a whole model).
        deployment_public: that decision's deployment is public-service.
    """
    if role in ("supervisor", "operator") or own or not about_decision:
        return True
    return deployment_public


def may_read_decision(principal, index: int, deployment_name: str, deployment_public: bool) -> bool:
    """True if ``principal`` may read decision ``index`` of that deployment individually.

    Everyone may read decisions of public-service deployments (with the
    public view unless their role gives more, see ``effective_principal``).
    """
    if principal.role == "subject":
        return deployment_public or principal.entry_index == index
    return sees_outputs(principal.role, deployment_name, deployment_public, principal.deployments)


def effective_principal(principal, index: int, deployment_name: str):
    """The principal whose view applies to decision ``index``: a subject reading
    someone else's (public-service) decision, or a developer reading a deployment
    it is not granted, gets the public's view."""
    from .keys import PUBLIC

    if principal.role == "subject" and principal.entry_index != index:
        return PUBLIC
    if principal.role == "developer" and deployment_name not in principal.deployments:
        return PUBLIC
    return principal


def input_view(role: str, values: dict[str, Any], card) -> dict[str, Any] | None:
    """The input features ``role`` may see, or None if it sees none.

    Args:
        role: the reader's role.
        values: feature name -> value, as logged beside the log.
        card: the model's ``ModelCard`` (marks personal and protected features).
    """
    if role in _ALL_PRIVATE_VALUES:
        return dict(values)
    if role != "researcher":
        return None
    features = {f.name: f for f in card.features} if card is not None else {}
    allow_protected = bool(getattr(card, "researcher_access_protected", False))
    shown = {}
    for name, value in values.items():
        f = features.get(name)
        if f is None:
            continue  # unknown to the card: withhold rather than guess
        if f.protected and allow_protected:
            shown[name] = value
        elif not f.personal and not f.protected:
            shown[name] = value
    return shown


def decision_view(principal, index: int, entry: dict, private: dict[str, tuple[str, bytes, bytes]], card) -> dict[str, Any]:
    """The fields of decision ``index`` that ``principal`` may see.

    Args:
        principal: who is reading (``glasslog.access.Principal``).
        entry: the decision entry as logged.
        private: kind -> (commitment, salt, value bytes) of its private values.
        card: the model's card.

    Returns:
        ``index``, ``model``, ``deployment``, ``time``, the commitments, and
        as allowed: ``output``, ``input_values``, ``subject_id``,
        ``withheld`` (names of input features withheld from this role).
    """
    role = principal.role
    view: dict[str, Any] = {"index": index, "model": entry["model"], "deployment": entry["deployment"], "time": entry["time"],
                            "input": entry["input"]}
    for key in ("subject", "output_commitment"):
        if key in entry:
            view[key] = entry[key]
    if "output" in entry:
        view["output"] = entry["output"]
    elif opens_outcomes(role) and "output" in private:  # the same rule: commitments opened for all but the public
        view["output"] = json.loads(private["output"][2])
    if "input" in private:
        values = json.loads(private["input"][2])
        shown = input_view(role, values, card)
        if shown is not None:
            view["input_values"] = shown
            withheld = sorted(set(values) - set(shown))
            if withheld:
                view["withheld"] = withheld
    elif role in _ALL_PRIVATE_VALUES or role == "researcher":
        view["input_values"] = None  # erased
    if role in _ALL_PRIVATE_VALUES and "subject" in private:
        view["subject_id"] = json.loads(private["subject"][2])
    return view


_GENERATION_FIELDS = ("source", "operation", "reported_model", "captured", "tokens", "sampling", "runtime", "watermark",
                      "prompt", "subject", "output_commitment", "provider", "response_id", "finish_reasons",
                      "incomplete")


def generation_view(principal, index: int, entry: dict, private: dict[str, tuple[str, bytes, bytes]]) -> dict[str, Any]:
    """The fields of generation ``index`` that ``principal`` may see (ask ``may_read_decision`` first).

    Args:
        principal: who is reading (``glasslog.access.Principal``), after ``effective_principal``.
        entry: the ``generation`` entry as logged.
        private: kind -> (commitment, salt, value bytes) of its private values (``prompt``, ``output``, ``subject``).

    Returns:
        ``index``, ``model`` (None for a reported generation of an unregistered model), ``deployment``, ``time``,
        the logged metadata (token counts, sampling, runtime, commitments), ``activation_commitments`` (their
        number), and as allowed: ``output`` (text), ``output_tokens``, ``prompt_value`` (``{"text"}`` or
        ``{"messages"}``), ``subject_id``.
    """
    role = principal.role
    view: dict[str, Any] = {"index": index, "model": entry.get("model"), "deployment": entry["deployment"],
                            "time": entry["time"]}
    for key in _GENERATION_FIELDS:
        if key in entry:
            view[key] = entry[key]
    view["activation_commitments"] = len((entry.get("activations") or {}).get("commitments") or [])
    if "output" in entry:
        view["output"] = entry["output"]
        if "output_tokens" in entry:
            view["output_tokens"] = entry["output_tokens"]
    elif opens_outcomes(role) and "output" in private:  # as for decisions: opened for all but the public
        opened = json.loads(private["output"][2])
        if isinstance(opened, dict) and "text" in opened:
            view["output"] = opened["text"]
            if "tokens" in opened:
                view["output_tokens"] = opened["tokens"]
        elif isinstance(opened, dict) and isinstance(opened.get("messages"), list):
            texts = [m.get("content") if isinstance(m, dict) and isinstance(m.get("content"), str) else ""
                     for m in opened["messages"]]
            view["output"] = texts[0] if len(texts) == 1 else texts
    if role in _ALL_PRIVATE_VALUES:
        if "prompt" in private:
            view["prompt_value"] = json.loads(private["prompt"][2])
        if "subject" in private:
            view["subject_id"] = json.loads(private["subject"][2])
    return view
