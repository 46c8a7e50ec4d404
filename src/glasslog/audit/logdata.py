"""Read a model's logged decisions and outcomes as frames, as one overseer's role may see them.

What each role gets follows ``glasslog.access.policy``: the public sees
outputs and outcomes of public-service deployments only (and, for private
deployments, counts); a developer also those of the deployments its key is
granted; researchers, supervisors and operators see every output and
outcome. Inputs: supervisors and operators see all features, researchers the
pseudonymised view (personal features withheld, protected ones only if the
model card allows), the public and developers none. Every opened private
value is checked against the commitment in its entry first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..access.keys import Principal
from ..access.policy import ROLES, input_view, sees_outputs
from ..ledger import Ledger
from ..ledger.commitments import check_commitment
from ..registry import Deployments, ModelCard, Registry
from ..stats.labels import positive_class, positive_index
from .recording import AuditInputError

__all__ = ["LoggedData", "logged_decisions", "as_principal"]


def as_principal(principal: Principal | str) -> Principal:
    """A ``Principal`` from a role name (or the principal itself).

    Raises:
        AuditInputError: unknown role, or ``subject`` (subjects read their own receipts, not deployments).
    """
    p = principal if isinstance(principal, Principal) else Principal(str(principal))
    if p.role not in ROLES:
        raise AuditInputError("role", f"must be one of {', '.join(ROLES)}, got {p.role!r}")
    if p.role == "subject":
        raise AuditInputError("role", "a subject reads their own decision through a receipt; audits need another role")
    return p


@dataclass
class LoggedData:
    """A model's logged decisions with their outcomes, as one role sees them.

    Attributes:
        frame: one row per visible decision, indexed by the decision's entry
            index: ``deployment`` (str), ``time`` (str, RFC 3339), ``label``
            (the logged predicted label), ``score`` (float, probability of the
            card's positive class, NaN when not logged), ``outcome`` (the
            recorded outcome, NaN when none yet), ``outcome_index`` (entry index
            of the outcome, -1 when none), ``outcome_time``.
        inputs: the logged input features the role may see, same index (no
            columns for roles that see no inputs; NaN rows for erased inputs).
        model: the model's fingerprint.
        card: its model card.
        role: the reader's role.
        total: decisions of the model (and deployment) on the log, visible or not.
        hidden: decisions whose outputs this role may not see (counted only).
        withheld: input features withheld from this role.
        erased: decisions whose inputs were erased.
        commitment_failures: ``{"index", "field"}`` of stored values that did not open their commitment (left out).
        deployments: deployments whose decisions this role sees.
        hidden_deployments: deployments of the model whose decisions this role may not see (private, not granted).
    """

    frame: pd.DataFrame
    inputs: pd.DataFrame
    model: str
    card: ModelCard
    role: str
    total: int
    hidden: int
    withheld: list[str] = field(default_factory=list)
    erased: int = 0
    commitment_failures: list[dict] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)
    hidden_deployments: list[str] = field(default_factory=list)

    @property
    def with_outcomes(self) -> pd.DataFrame:
        """Rows of ``frame`` with a recorded outcome."""
        return self.frame[self.frame["outcome_index"] >= 0]

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "role": self.role, "deployments": self.deployments, "total": self.total,
                "visible": len(self.frame), "hidden": self.hidden, "with_outcomes": int((self.frame["outcome_index"] >= 0).sum()),
                "input_features": list(self.inputs.columns), "withheld": self.withheld, "erased_inputs": self.erased,
                "commitment_failures": len(self.commitment_failures)}


def _opened(private: dict, kind: str, commitment: str, index: int, failures: list, field_name: str) -> Any:
    item = private.get(kind)
    if item is None:
        return _MISSING
    stored, salt, value = item
    if stored != commitment or not check_commitment(commitment, salt, value):
        failures.append({"index": index, "field": field_name})
        return _MISSING
    return json.loads(value)


_MISSING = object()


def logged_decisions(
    ledger: Ledger,
    model: str,
    *,
    deployment: str | None = None,
    principal: Principal | str = "supervisor",
) -> LoggedData:
    """Decisions of ``model`` (optionally one deployment) with outcomes and inputs, as ``principal`` sees them.

    Args:
        ledger: the log.
        model: the model's fingerprint (or a unique prefix of 12+ hex digits).
        deployment: only this deployment.
        principal: who reads (a role name or ``glasslog.access.Principal``).

    Raises:
        AuditInputError: unknown role, or a deployment that is not declared.
        glasslog.registry.RegistryError: unknown model.
    """
    p = as_principal(principal)
    record = Registry(ledger).get(model)
    fp, card = record.fingerprint, record.card
    deployments = Deployments(ledger)
    if deployment is not None and deployments.find(deployment) is None:
        names = [d.name for d in deployments.list()]
        raise AuditInputError("deployment", f"{deployment!r} is not declared on this log; declared: {names[:10]}")
    pos_idx = positive_index(*positive_class(card.output))  # the one positive-class rule (glasslog.stats.labels)

    decisions = [(i, d) for i, d in ledger.entries_of_type("decision")
                 if d["model"] == fp and (deployment is None or d["deployment"] == deployment)]
    decision_pos = {i: k for k, (i, _) in enumerate(decisions)}
    outcomes: dict[int, tuple[int, dict]] = {}
    for oi, o in ledger.entries_of_type("outcome", decisions[0][0] if decisions else ledger.size):
        if o["decision"] in decision_pos:
            outcomes[o["decision"]] = (oi, o)  # the latest outcome of a decision counts

    def visible(dep: str) -> bool:
        d = deployments.find(dep)
        return sees_outputs(p.role, dep, d is not None and d.public, p.deployments)

    shown = [(i, d) for i, d in decisions if visible(d["deployment"])]
    indexes = [i for i, _ in shown]
    private = ledger.private_values_for(indexes + [outcomes[i][0] for i in indexes if i in outcomes])
    erased_map = ledger.erased_for(indexes)
    failures: list[dict] = []
    rows, inputs = [], []
    erased = 0
    withheld: set[str] = set()
    for i, d in shown:
        pv = private.get(i, {})
        output = d.get("output")
        if output is None and "output_commitment" in d:
            opened = _opened(pv, "output", d["output_commitment"], i, failures, "output_commitment")
            output = None if opened is _MISSING else opened
        label, score = np.nan, np.nan
        if isinstance(output, dict):
            label = output.get("label", np.nan)
            proba = output.get("proba")
            if pos_idx is not None and isinstance(proba, list) and len(proba) > pos_idx:
                score = float(proba[pos_idx])
        outcome, oidx, otime = np.nan, -1, None
        if i in outcomes:
            oidx, o = outcomes[i]
            otime = o["time"]
            if "outcome" in o:
                outcome = o["outcome"]
            else:
                opened = _opened(private.get(oidx, {}), "outcome", o["outcome_commitment"], oidx, failures, "outcome_commitment")
                if opened is _MISSING:
                    oidx = -1
                else:
                    outcome = opened
        rows.append({"index": i, "deployment": d["deployment"], "time": d["time"], "label": label, "score": score,
                     "outcome": outcome, "outcome_index": oidx, "outcome_time": otime})
        values = _opened(pv, "input", d["input"], i, failures, "input")
        if values is _MISSING or not isinstance(values, dict):
            if "input" in erased_map.get(i, set()):
                erased += 1
            inputs.append({})
            continue
        view = input_view(p.role, values, card)
        if view is None:
            inputs.append({})
            continue
        withheld |= set(values) - set(view)
        inputs.append(view)
    frame = pd.DataFrame(rows, columns=["index", "deployment", "time", "label", "score", "outcome", "outcome_index",
                                        "outcome_time"]).set_index("index")
    frame["outcome_index"] = frame["outcome_index"].astype(int)
    order = [f.name for f in card.features]
    inputs_frame = pd.DataFrame(inputs, index=frame.index)
    inputs_frame = inputs_frame[[c for c in order if c in inputs_frame.columns]]
    for f in card.features:
        if f.name in inputs_frame.columns and f.type == "numeric":
            inputs_frame[f.name] = pd.to_numeric(inputs_frame[f.name], errors="coerce")
    used = sorted({d["deployment"] for _, d in shown})
    unseen = sorted({d["deployment"] for _, d in decisions} - set(used))
    return LoggedData(frame, inputs_frame, fp, card, p.role, len(decisions), len(decisions) - len(shown), sorted(withheld),
                      erased, failures, used, unseen)
