"""White-box audit: checks that need the weights, taken only through the registry and its disclosure policy.

- :func:`load_registered_model`: the weights, loaded with
  ``Registry.load`` (bytes checked against the fingerprint, skops' trusted
  types only), and refused when the caller's role may not download them under
  the model's disclosure policy (``glasslog.access.policy.may_download_weights``).
- :func:`feature_reliance`: permutation importance (Breiman 2001; Fisher,
  Rudin & Dominici 2019, "model reliance"; scikit-learn's
  ``permutation_importance`` on the raw input columns) and SHAP values
  (Lundberg & Lee 2017, NeurIPS; the ``shap`` library: exact linear SHAP for a
  linear last step, TreeSHAP, Lundberg et al. 2020, for tree ensembles, the
  permutation explainer otherwise). For pipelines SHAP is computed on the
  transformed columns and summed back to each input column (SHAP values are
  additive, so a one-hot column's parts add up to the column's value).
- :func:`check_training_data`: the registered training-data fingerprint
  against a data set the auditor holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..access.keys import Principal
from ..access.policy import may_download_weights
from ..errors import AccessError
from ..findings import Finding, clean_json
from ..ledger import Ledger
from ..registry import ModelCard, RegisteredModel, Registry, fingerprint_frame
from .recording import AuditInputError

__all__ = [
    "WeightsAccessError",
    "load_registered_model",
    "FeatureReliance",
    "feature_reliance",
    "TrainingDataCheck",
    "check_training_data",
]


class WeightsAccessError(AccessError):
    """The caller's role may not have the weights under the model's disclosure policy."""


def load_registered_model(ledger: Ledger, fingerprint: str, principal: Principal | str,
                          trusted: Sequence[str] = ()) -> tuple[Any, RegisteredModel]:
    """Load a registered model's weights for a white-box audit, if the role may have them.

    Args:
        ledger: the log (artifacts beside it).
        fingerprint: the model's fingerprint or unique prefix.
        principal: who audits (role name or ``Principal``).
        trusted: extra skops types to trust (see ``glasslog.registry.load_artifact``).

    Returns:
        ``(estimator, record)``.

    Raises:
        WeightsAccessError: the disclosure policy does not give this role the weights.
        glasslog.registry.RegistryError: unknown model or missing artifact.
        glasslog.registry.ArtifactError: the artifact does not match its fingerprint or holds untrusted types.
    """
    role = principal.role if isinstance(principal, Principal) else str(principal)
    registry = Registry(ledger)
    record = registry.get(fingerprint)
    policy = record.card.disclosure_policy
    if not may_download_weights(role, policy):
        raise WeightsAccessError(
            f"role {role!r} may not have the weights of model {record.fingerprint[:19]}... (disclosure policy {policy!r});"
            " a white-box audit needs them: use the black-box audit (query access) or the log-based checks instead")
    return registry.load(record.fingerprint, trusted), record


@dataclass
class FeatureReliance:
    """How much a model relies on each input column.

    Attributes:
        features: input column names, in ``X``'s order.
        permutation_mean, permutation_std: drop in ``scoring`` when the column is
            permuted (mean and standard deviation over repeats), per feature.
        scoring: the score permuted against (``roc_auc`` or ``accuracy``).
        shap_mean_abs: mean |SHAP value| per feature over the explained rows
            (units of ``shap_output``).
        shap_share: ``shap_mean_abs`` normalised to sum to 1 (fraction of reliance).
        shap_values: rows x features SHAP matrix for the explained rows.
        shap_method: explainer used; ``shap_output``: ``log-odds`` or ``probability``.
        n: rows used for permutation importance; ``n_explained``: rows explained by SHAP.
    """

    features: list[str]
    permutation_mean: np.ndarray
    permutation_std: np.ndarray
    scoring: str
    shap_mean_abs: np.ndarray
    shap_share: np.ndarray
    shap_values: np.ndarray
    shap_method: str
    shap_output: str
    n: int
    n_explained: int
    findings: list[Finding] = field(default_factory=list)

    kind = "reliance"

    def share(self, feature: str) -> float:
        """Fraction of SHAP reliance on ``feature``."""
        return float(self.shap_share[self.features.index(feature)])

    def ranking(self) -> list[str]:
        """Features by decreasing SHAP share."""
        return [self.features[i] for i in np.argsort(-self.shap_share, kind="stable")]

    def table(self) -> pd.DataFrame:
        """features x (permutation_mean, permutation_std, shap_mean_abs, shap_share), sorted by SHAP share."""
        return pd.DataFrame({"permutation_mean": self.permutation_mean, "permutation_std": self.permutation_std,
                             "shap_mean_abs": self.shap_mean_abs, "shap_share": self.shap_share},
                            index=self.features).sort_values("shap_share", ascending=False)

    def to_dict(self) -> dict[str, Any]:
        t = self.table()
        return clean_json({"kind": self.kind, "scoring": self.scoring, "shap_method": self.shap_method,
                           "shap_output": self.shap_output, "n": self.n, "n_explained": self.n_explained,
                           "features": [{"feature": f, **row} for f, row in t.to_dict(orient="index").items()],
                           "findings": [f.to_dict() for f in self.findings]})


def _positive_index(model: Any, positive: Any) -> int:
    classes = list(getattr(model, "classes_", [0, 1]))
    return classes.index(positive) if positive in classes else len(classes) - 1


def _column_map(pre: Any, columns: list[str]) -> list[int] | None:
    """For each output column of a fitted ColumnTransformer, the index of the input column it came from (None if unknown)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    if not isinstance(pre, ColumnTransformer) or not hasattr(pre, "output_indices_"):
        return None
    width = sum(s.stop - s.start for s in pre.output_indices_.values())
    mapping: list[int | None] = [None] * width
    for name, trans, cols in pre.transformers_:
        sl = pre.output_indices_.get(name)
        if sl is None or sl.stop == sl.start or trans == "drop":
            continue
        names = [columns[c] if isinstance(c, (int, np.integer)) else c for c in (cols if isinstance(cols, list) else list(cols))]
        idx = [columns.index(c) for c in names]
        step = trans.steps[-1][1] if hasattr(trans, "steps") else trans
        if isinstance(step, OneHotEncoder):
            widths = []
            for k, cats in enumerate(step.categories_):
                dropped = step.drop_idx_ is not None and step.drop_idx_[k] is not None
                widths.append(len(cats) - (1 if dropped else 0))
            if sum(widths) != sl.stop - sl.start:
                return None
            pos = sl.start
            for i, w in zip(idx, widths):
                for j in range(pos, pos + w):
                    mapping[j] = i
                pos += w
        elif sl.stop - sl.start == len(idx):
            for j, i in zip(range(sl.start, sl.stop), idx):
                mapping[j] = i
        else:
            return None
    return None if any(m is None for m in mapping) else mapping  # type: ignore[return-value]


def _shap(model: Any, background: pd.DataFrame, explain: pd.DataFrame, pos: int, seed: int) -> tuple[np.ndarray, str, str]:
    """SHAP values (rows x input columns), the explainer's name and the output it explains."""
    import shap
    from sklearn.pipeline import Pipeline

    columns = list(explain.columns)
    if isinstance(model, Pipeline) and len(model.steps) >= 2:
        pre, last = model[:-1], model.steps[-1][1]
        inner = pre.steps[-1][1] if len(pre.steps) == 1 else None
        mapping = _column_map(inner, columns) if inner is not None else None
        if mapping is not None:
            bg = pre.transform(background)
            ex = pre.transform(explain)
            bg = bg.toarray() if hasattr(bg, "toarray") else np.asarray(bg, dtype=float)
            ex = ex.toarray() if hasattr(ex, "toarray") else np.asarray(ex, dtype=float)
            values, method, output = None, "", ""
            if hasattr(last, "coef_") and np.asarray(last.coef_).shape[0] == 1:
                values = np.asarray(shap.LinearExplainer(last, bg).shap_values(ex), dtype=float)
                if values.ndim == 3:
                    values = values[..., pos]
                sign = 1.0 if pos == 1 else -1.0  # a binary linear model's margin is the log-odds of classes_[1]
                values, method, output = sign * values, "shap.LinearExplainer (exact, independent features)", "log-odds"
            else:
                try:
                    explainer = shap.TreeExplainer(last, bg, model_output="probability", feature_perturbation="interventional")
                    values = np.asarray(explainer.shap_values(ex, check_additivity=False), dtype=float)
                    if values.ndim == 3:
                        values = values[..., pos]
                    method, output = "shap.TreeExplainer (TreeSHAP, interventional)", "probability"
                except Exception:  # not a model TreeSHAP supports: fall through to the model-agnostic explainer
                    values = None
            if values is not None:
                grouped = np.zeros((values.shape[0], len(columns)))
                for j, i in enumerate(mapping):
                    grouped[:, i] += values[:, j]
                return grouped, method, output
    # Model-agnostic: the permutation explainer on integer-coded categories, decoded before each call.
    codes, cats = {}, {}
    for c in columns:
        if not pd.api.types.is_numeric_dtype(explain[c]):
            cats[c] = pd.Index(pd.unique(pd.concat([background[c], explain[c]]).astype(str)))
    def encode(frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), len(columns)))
        for k, c in enumerate(columns):
            out[:, k] = cats[c].get_indexer(frame[c].astype(str)) if c in cats else frame[c].astype(float)
        return out
    dtypes = explain.dtypes

    def f(arr: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(arr, columns=columns)
        for c in columns:
            frame[c] = cats[c][np.clip(frame[c].round().astype(int), 0, len(cats[c]) - 1)] if c in cats else frame[c].astype(dtypes[c])
        return model.predict_proba(frame)[:, pos]
    del codes
    masker = shap.maskers.Independent(encode(background), max_samples=len(background))
    explainer = shap.explainers.Permutation(f, masker, seed=seed)
    result = explainer(encode(explain), max_evals=2 * len(columns) + 1, silent=True)
    return np.asarray(result.values, dtype=float), "shap.PermutationExplainer (model-agnostic)", "probability"


def feature_reliance(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    positive: Any = 1,
    n_repeats: int = 5,
    scoring: str = "roc_auc",
    shap_rows: int = 200,
    background_rows: int = 100,
    seed: int = 0,
    model_fingerprint: str | None = None,
) -> FeatureReliance:
    """Permutation importance and SHAP values of a fitted classifier on ``X`` (see module docstring).

    Args:
        model: fitted scikit-learn classifier or pipeline with ``predict_proba``.
        X: rows x input columns, as the model takes them.
        y: labels of ``X``, shape (rows,).
        positive: the positive class (SHAP explains its probability or log-odds).
        n_repeats: permutations per column.
        scoring: ``roc_auc`` or ``accuracy``.
        shap_rows: rows explained (a seeded sample when ``X`` is larger).
        background_rows: background rows for the explainers (seeded sample).
        seed: sampling and permutation seed.

    Raises:
        AuditInputError: no ``predict_proba``, empty ``X``, labels of the wrong length, unknown scoring.
    """
    from sklearn.inspection import permutation_importance

    if not hasattr(model, "predict_proba"):
        raise AuditInputError("model", "must be a fitted classifier with predict_proba (a white-box audit needs the weights)")
    if not isinstance(X, pd.DataFrame) or len(X) == 0:
        raise AuditInputError("X", "must be a non-empty DataFrame of the model's input columns")
    if len(y) != len(X):
        raise AuditInputError("y", f"has {len(y)} labels for {len(X)} rows")
    if scoring not in ("roc_auc", "accuracy"):
        raise AuditInputError("scoring", f"must be roc_auc or accuracy, got {scoring!r}")
    yv = pd.Series(y).reset_index(drop=True).to_numpy()
    X = X.reset_index(drop=True)
    pi = permutation_importance(model, X, yv, scoring=scoring, n_repeats=n_repeats, random_state=seed)
    rng = np.random.default_rng(seed)
    explain = X.iloc[np.sort(rng.choice(len(X), size=min(shap_rows, len(X)), replace=False))]
    background = X.iloc[np.sort(rng.choice(len(X), size=min(background_rows, len(X)), replace=False))]
    values, method, output = _shap(model, background, explain, _positive_index(model, positive), seed)
    mean_abs = np.abs(values).mean(axis=0)
    total = mean_abs.sum()
    share = mean_abs / total if total > 0 else np.zeros_like(mean_abs)
    result = FeatureReliance(list(X.columns), pi.importances_mean, pi.importances_std, scoring, mean_abs, share, values,
                             method, output, len(X), len(explain))
    top = result.ranking()[0]
    result.findings.append(Finding(
        "whitebox.reliance", "largest share of mean |SHAP|", result.share(top), None, "ok", "info",
        f"The model relies most on {top} ({result.share(top):.0%} of mean |SHAP|; permutation importance"
        f" {pi.importances_mean[result.features.index(top)]:.3f} {scoring}). Top three: {', '.join(result.ranking()[:3])}.",
        "white-box", {"top": result.ranking()[:5], "shares": {f: result.share(f) for f in result.ranking()[:5]},
                      "method": method}, model_fingerprint))
    return result


@dataclass
class TrainingDataCheck:
    """The registered training-data fingerprint against a data set the auditor holds.

    Attributes:
        ok: fingerprints equal.
        registered, computed: the two fingerprints.
        rows, columns: shape of the data checked.
        finding: the finding (``ok`` or ``alert``).
    """

    ok: bool
    registered: str
    computed: str
    rows: int
    columns: list[str]
    finding: Finding

    kind = "training_data"

    @property
    def findings(self) -> list[Finding]:
        return [self.finding]

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"kind": self.kind, "ok": self.ok, "registered": self.registered, "computed": self.computed,
                           "rows": self.rows, "columns": self.columns, "findings": [self.finding.to_dict()]})


def check_training_data(card: ModelCard | RegisteredModel, frame: pd.DataFrame, *, model: str | None = None) -> TrainingDataCheck:
    """Check a data set against the registered ``training_data_fingerprint``.

    The fingerprint is ``glasslog.registry.fingerprint_frame``: SHA-256 of the
    CSV form (header, no index, ``\\n`` line ends), so the same columns in the
    same order, the same rows in the same order and the same label column name
    are needed.

    Raises:
        AuditInputError: ``frame`` is not a DataFrame.
    """
    if isinstance(card, RegisteredModel):
        model = model or card.fingerprint
        card = card.card
    if not isinstance(frame, pd.DataFrame):
        raise AuditInputError("frame", f"must be a pandas DataFrame, got {type(frame).__name__}")
    computed = fingerprint_frame(frame)
    ok = computed == card.training_data_fingerprint
    summary = (f"The data ({len(frame)} rows x {frame.shape[1]} columns) is the registered training data." if ok else
               f"The data ({len(frame)} rows x {frame.shape[1]} columns) hashes to {computed[:19]}..., not the registered"
               f" {card.training_data_fingerprint[:19]}...: it is not the training data as registered (other rows,"
               " order, columns or values).")
    finding = Finding("whitebox.training_data_fingerprint", "training data fingerprint matches the registration",
                      1.0 if ok else 0.0, 1.0, "ok" if ok else "alert", "info" if ok else "high", summary, "white-box",
                      {"registered": card.training_data_fingerprint, "computed": computed, "rows": len(frame),
                       "columns": list(map(str, frame.columns))}, model)
    return TrainingDataCheck(ok, card.training_data_fingerprint, computed, len(frame), list(map(str, frame.columns)), finding)
