"""Audit a registered model from its log, as one overseer: everything that overseer's access allows, as result objects.

:func:`audit_logged_model` is what ``glasslog audit model`` runs, and what the
scenario lab calls. It reads the decisions and outcomes the role may see
(``glasslog.audit.logdata``), then:

- claimed vs realised (outputs and outcomes);
- error rates by group (logged inputs the role may see, outcomes);
- black-box tests through a query-counted prediction function (the
  registered model's ``predict_proba`` stands in for the prediction API: the
  tests see outputs only) on the logged inputs: counterfactual flips of the
  card's protected and declared-irrelevant features, perturbation, and batch
  dependence; identical logged inputs with different outputs;
- with the weights (only if the disclosure policy gives this role them):
  feature reliance, label proxies and dormant features on the logged data,
  and with the training data: its fingerprint, shortcut checks (training vs
  deployment) and train/test duplicates.

Checks that the role's access does not allow are listed in a ``notes`` result,
never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..access.keys import Principal
from ..datasets.german_credit import german_credit_groups
from ..ledger import Ledger
from ..registry import Registry, UntrustedTypesError
from ..stats.labels import positive_class
from .blackbox import QueryCounter, blackbox_audit
from .claims import claimed_vs_realised, output_rate_check
from .group import group_error_rates, name_the_harmed
from .leakage import batch_dependence, label_proxies, logged_inconsistency, train_test_duplicates
from .logdata import as_principal, logged_decisions
from .recording import AuditInputError
from .report import Notes
from .shortcut import complete_from_weights, dormant_features, shortcut_audit
from .whitebox import WeightsAccessError, check_training_data, feature_reliance, load_registered_model

__all__ = ["audit_logged_model", "groups_for"]

_DERIVED = {"sex": "personal_status_and_sex", "age_group": "age_in_years"}


def groups_for(inputs: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Group columns for a group audit: logged input columns by name, or ``sex`` / ``age_group`` derived from German Credit's columns.

    Raises:
        AuditInputError: a name that is neither a visible input column nor derivable from the visible ones.
    """
    out = {}
    for name in names:
        if name in inputs.columns:
            out[name] = inputs[name].astype(str)
        elif name in _DERIVED and _DERIVED[name] in inputs.columns:
            source = pd.DataFrame({"personal_status_and_sex": inputs.get("personal_status_and_sex", ""),
                                   "age_in_years": inputs.get("age_in_years", 0)}, index=inputs.index)
            out[name] = german_credit_groups(source)[name]
        else:
            raise AuditInputError("group", f"no visible input column {name!r} (and it cannot be derived); visible columns:"
                                           f" {list(inputs.columns)}")
    return pd.DataFrame(out, index=inputs.index)


def audit_logged_model(
    ledger: Ledger,
    model: str,
    *,
    deployment: str | None = None,
    principal: Principal | str = "supervisor",
    groups: Sequence[str] = (),
    training_data: pd.DataFrame | None = None,
    label_column: str | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    trusted: Sequence[str] = (),
    trust_recorded: bool = False,
) -> dict[str, Any]:
    """Run every audit the role's access allows on a registered model's logged deployment(s).

    Args:
        ledger: the log.
        model: fingerprint or unique prefix.
        deployment: only this deployment (default: all of the model's).
        principal: who audits (role name or ``Principal``).
        groups: attributes for the group audit (visible input columns; ``sex`` and
            ``age_group`` are derived for German Credit).
        training_data: the training data as registered (rows x columns, label included) for
            the fingerprint, shortcut and duplicate checks; needs the weights.
        label_column: the label column of ``training_data`` (default: the one column
            that is not a model feature).
        seed, n_boot: bootstrap settings.
        trusted, trust_recorded: extra skops types to trust for loading the weights, and whether to trust
            the ones recorded with the registration; without them a model that needs such types gets every
            check that needs no weights, and a note saying which were skipped and why.

    Returns:
        name -> result object (``claims``, ``group_<attr>``, ``blackbox``, ``reliance``,
        ``leakage``, ``shortcut``, ``training_data``, ``notes``), ready for
        ``glasslog.audit.report.build_report``.

    Raises:
        AuditInputError: unknown role or deployment, unknown group column, a
            training frame without the model's features or with an unclear label column.
        glasslog.registry.RegistryError: unknown model.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS/OpenMP thread: far faster on a busy machine, same results
        return _audit_logged_model(ledger, model, deployment=deployment, principal=principal, groups=groups, training_data=training_data, label_column=label_column, seed=seed, n_boot=n_boot,
                                   trusted=trusted, trust_recorded=trust_recorded)


def _audit_logged_model(
    ledger: Ledger,
    model: str,
    *,
    deployment: str | None = None,
    principal: Principal | str = "supervisor",
    groups: Sequence[str] = (),
    training_data: pd.DataFrame | None = None,
    label_column: str | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    trusted: Sequence[str] = (),
    trust_recorded: bool = False,
) -> dict[str, Any]:
    p = as_principal(principal)
    data = logged_decisions(ledger, model, deployment=deployment, principal=p)
    card, fp = data.card, data.model
    _, positive = positive_class(card.output)
    notes: list[str] = [f"role {p.role}: {len(data.frame)} of {data.total} decisions visible"
                        f" ({data.hidden} hidden), {len(data.with_outcomes)} with outcomes;"
                        f" input features visible: {len(data.inputs.columns)} of {len(card.features)}"
                        + (f" (withheld: {', '.join(data.withheld)})" if data.withheld else "")]
    results: dict[str, Any] = {}
    rows = data.with_outcomes
    rows = rows[rows["label"].notna()]
    score = rows["score"].to_numpy(dtype=float) if len(rows) and rows["score"].notna().all() else None
    claims = claimed_vs_realised(dict(card.claimed.metrics), rows["outcome"].tolist(), rows["label"].tolist(), score,
                                 positive=positive, evaluation_size=card.claimed.evaluation_size, seed=seed, n_boot=n_boot,
                                 model=fp, deployment=deployment)
    if "positive_rate" not in card.claimed.metrics:
        visible = data.frame[data.frame["label"].notna()]
        claims.findings.append(output_rate_check(None, visible["label"].tolist(), positive=positive, model=fp, deployment=deployment))
    results["claims"] = claims

    if groups:
        if data.inputs.shape[1] == 0:
            notes.append(f"group audit by {', '.join(groups)} skipped: role {p.role} sees no logged inputs")
        elif len(rows) == 0:
            notes.append("group audit skipped: no outcomes visible yet")
        else:
            known = set(card.feature_names) | {k for k, v in _DERIVED.items() if v in card.feature_names}
            unknown = [g for g in groups if g not in known]
            if unknown:
                raise AuditInputError("group", f"{unknown} are not features of model {card.name} (nor derivable); features:"
                                               f" {card.feature_names}")
            visible = [g for g in groups if g in data.inputs.columns or _DERIVED.get(g) in data.inputs.columns]
            for g in groups:
                if g not in visible:
                    notes.append(f"group audit by {g} skipped: withheld from role {p.role} (pseudonymised view)")
            g = groups_for(data.inputs.loc[rows.index], visible)
            for attr in g.columns:
                results[f"group_{attr}"] = group_error_rates(rows["outcome"].tolist(), rows["label"].tolist(), g[attr],
                                                             attribute=attr, positive=positive, seed=seed, n_boot=n_boot,
                                                             model=fp, deployment=deployment, access="logs")
                results[f"group_{attr}"].extra.update(_positive_meaning(card))
                if isinstance(card.output, dict) and "favourable" in card.output:
                    name_the_harmed(results[f"group_{attr}"], card.output["favourable"] == positive)

    complete = data.inputs.shape[1] == len(card.features) and len(data.inputs) > 0
    inputs = data.inputs.dropna() if complete else data.inputs
    no_weights = None
    try:
        recorded = Registry(ledger).get(fp).trusted if trust_recorded else ()
        weights, record = load_registered_model(ledger, fp, p, (*trusted, *recorded))
    except UntrustedTypesError as exc:
        weights, record = None, None
        no_weights = f"weights not loaded: skops types {exc.types} not trusted (--trust / --trust-recorded)"
        notes.append(f"checks that need the weights skipped: the artifact needs skops types {exc.types} that were not"
                     " trusted (review them, then pass --trust TYPE, or --trust-recorded for the types recorded with"
                     " the registration)")
    except WeightsAccessError as exc:
        weights, record = None, None
        no_weights = f"no weights under the disclosure policy {card.disclosure_policy!r}"
        notes.append(f"white-box checks skipped: {exc}")
        if complete:
            notes.append(f"black-box tests skipped: role {p.role} sees every logged input, but audit model queries the model"
                         f" through its registered weights, which the disclosure policy {card.disclosure_policy!r} withholds"
                         f" from role {p.role}; run them against the prediction API instead"
                         " (glasslog.audit.blackbox.blackbox_audit with a query function)")

    if complete and weights is not None:
        query = QueryCounter(lambda frame: weights.predict_proba(frame)[:, list(weights.classes_).index(positive)])
        protected = [f.name for f in card.features if f.protected]
        extra = card.extra or {}
        irrelevant = [c for c in list(extra.get("irrelevant_features") or []) + list(extra.get("non_causal_features") or [])
                      if c in inputs.columns]
        y = rows["outcome"].reindex(inputs.index) if len(rows) else None
        labelled = inputs.loc[y.dropna().index] if y is not None else inputs
        audit_rows = labelled if len(labelled) else inputs
        cf_values = _counterfactual_values(audit_rows, protected + irrelevant, weights, card, notes)
        black = blackbox_audit(query, audit_rows,
                               y.dropna().tolist() if y is not None and len(labelled) else None,
                               protected=protected, irrelevant=irrelevant, positive=positive, seed=seed, model=fp,
                               deployment=deployment, counterfactual_values=cf_values)
        stats, f = batch_dependence(query, inputs.head(100), seed=seed, model=fp)
        black.findings.append(f)
        black.queries_by_test["batch dependence"] = stats["queries"]
        black.queries += stats["queries"]
        results["blackbox"] = black
    elif not complete:
        notes.append(f"black-box and white-box tests on logged inputs skipped: role {p.role} sees"
                     f" {data.inputs.shape[1]} of {len(card.features)} input features")
    incons = logged_inconsistency(data.inputs, data.frame["label"], data.frame["score"], model=fp, deployment=deployment)

    if weights is not None and complete and len(rows) >= 30:
        X = inputs.loc[rows.index.intersection(inputs.index)]
        y = rows["outcome"].loc[X.index].tolist()
        reliance = feature_reliance(weights, X, y, positive=positive, seed=seed, model_fingerprint=fp)
        results["reliance"] = reliance
        assoc, proxy = label_proxies(X, y, positive=positive, seed=seed, model=fp)
        _, dormant = dormant_features(weights, inputs, positive=positive, model_fingerprint=fp, deployment_name=deployment)
        from .leakage import LeakageAudit

        leak = LeakageAudit(assoc, None, None, proxy + [incons] + dormant)
        if training_data is not None:
            train_X, train_y = _split_training(training_data, card, label_column)
            results["training_data"] = check_training_data(record, training_data)
            dup, f = train_test_duplicates(train_X, X, model=fp)
            leak.duplicates = dup
            leak.findings.append(f)
            results["shortcut"] = shortcut_audit(weights, {"training": (train_X, train_y), "deployment": (X, y)},
                                                 reliance=reliance, card=card, positive=positive, seed=seed,
                                                 model_fingerprint=fp, deployment_name=deployment)
        results["leakage"] = leak
    else:
        from .leakage import LeakageAudit

        extra_findings = []
        if weights is not None and data.inputs.shape[1] and len(data.inputs):
            completed = complete_from_weights(data.inputs.dropna(), weights, card)
            _, extra_findings = dormant_features(weights, completed, positive=positive, model_fingerprint=fp,
                                                 deployment_name=deployment)
            notes.append(f"dormant-feature check ran on logged inputs completed from the weights ({len(data.withheld)}"
                         " withheld features set to training values the weights record)")
        results["leakage"] = LeakageAudit(pd.Series(dtype=float), None, None, [incons] + extra_findings)
        if weights is not None:
            notes.append("reliance, label-proxy and shortcut checks need complete logged inputs and at least 30 outcomes")
        if training_data is not None:
            notes.append("training data given but not checked: the white-box checks did not run")
    measured = [f for r in results.values() for f in getattr(r, "findings", []) or [] if f.verdict != "insufficient-data"]
    if not measured:
        why = _unmeasured_reasons(data, p.role, len(rows), no_weights)
        unmeasured = f"nothing could be measured for role {p.role}: {'; '.join(why)}"
        # Keep the claimed figures (the claims section) for reference, but no findings: none was measured.
        claims.findings = []
        results = {"claims": claims}
        results["notes"] = Notes([unmeasured, *notes], unmeasured=unmeasured)
        return results
    results["notes"] = Notes(notes)
    return results


def _unmeasured_reasons(data: Any, role: str, outcomes: int, no_weights: str | None) -> list[str]:
    """Why an audit as ``role`` measured nothing, in plain words (for the terminal and the report)."""
    why = []
    if data.total == 0:
        why.append("the log holds no decisions of this model" + (f" in deployment {data.deployments[0]}" if data.deployments else ""))
    elif len(data.frame) == 0:
        deps = ", ".join(data.hidden_deployments)
        grant = " and its key is not granted them" if role == "developer" else ""
        why.append(f"none of its {data.total} decisions is visible: deployment {deps} is private (role {role} sees"
                   f" counts only{grant})")
    elif outcomes < 30:
        why.append(f"only {outcomes} outcomes visible (30 needed to compare with the claims)")
    if data.inputs.shape[1] == 0:
        why.append(f"no logged inputs (role {role} sees none)")
    if no_weights:
        why.append(no_weights)
    return why or ["every check had too little data"]


def _positive_meaning(card: Any) -> dict[str, str]:
    """What the positive class means, from the model card's ``output`` (``meaning``; ``favourable``: whether being
    predicted positive is favourable or unfavourable for the person, when the card says)."""
    out = card.output if isinstance(card.output, dict) else {}
    info = {}
    if out.get("meaning"):
        info["positive_meaning"] = str(out["meaning"])
    if out.get("favourable") is not None:
        info["favourable"] = "favourable" if out["favourable"] else "unfavourable"
    elif "bad" in str(out.get("meaning", "")).split(",")[0].lower():
        info["favourable"] = "unfavourable"
    return info


def _counterfactual_values(rows: pd.DataFrame, attributes: Sequence[str], weights: Any, card: Any,
                           notes: list[str]) -> dict[str, list]:
    """Values to set each counterfactual attribute to when the audited rows hold only one value of it.

    A feature that never varies in deployment (a constant ``file_version``, say) gives the
    default counterfactual test nothing to change it to. The registered model's training
    distribution, as the weights record it (``shortcut.known_values``: a ``OneHotEncoder``'s
    categories, a ``StandardScaler``'s mean +- 1 and 2 SD), supplies them; without such values the
    test is skipped with a note (``blackbox_audit`` records an ``insufficient-data`` finding).
    """
    from .shortcut import known_values

    types = {f.name: f.type for f in card.features}
    out: dict[str, list] = {}
    for a in attributes:
        if a not in rows.columns or rows[a].nunique(dropna=True) >= 2:
            continue
        only = rows[a].iloc[0].item() if hasattr(rows[a].iloc[0], "item") else rows[a].iloc[0]
        values = known_values(weights, a)
        if values and types.get(a) == "numeric" and pd.api.types.is_integer_dtype(rows[a]):
            values = sorted({int(round(v)) for v in values})
        elif values and pd.api.types.is_numeric_dtype(rows[a]):
            values = sorted({round(float(v), 6) for v in values})
        if values and len(set(map(str, values)) | {str(only)}) >= 2:
            out[a] = list(values)
            notes.append(f"counterfactual test of {a}: one value ({only!r}) in the logged inputs; changed to the"
                         f" training values the registered weights record: {[*values][:8]}")
        else:
            notes.append(f"counterfactual test of {a} skipped: one value ({only!r}) in the logged inputs and"
                         " none other recorded by the weights")
    return out


def _split_training(frame: pd.DataFrame, card: Any, label_column: str | None) -> tuple[pd.DataFrame, list]:
    if not isinstance(frame, pd.DataFrame):
        raise AuditInputError("training_data", "must be a DataFrame")
    names = card.feature_names
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise AuditInputError("training_data", f"lacks the model's features {missing}")
    if label_column is None:
        others = [c for c in frame.columns if c not in names]
        if len(others) != 1:
            raise AuditInputError("label_column", f"name the label column; candidates: {others}")
        label_column = others[0]
    if label_column not in frame.columns:
        raise AuditInputError("label_column", f"no column {label_column!r}; columns are {list(frame.columns)}")
    return frame[names], frame[label_column].tolist()
