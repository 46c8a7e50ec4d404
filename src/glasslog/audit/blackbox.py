"""Black-box audit: what an overseer with query access only (no weights) can measure, and at what query cost.

Every test goes through a :class:`QueryCounter` around the model's
prediction function, which counts calls and rows sent; each result records
the rows it used (``queries``).

- Counterfactual flip rate (the "counterfactual fairness" probe of Kusner et
  al. 2017, NeurIPS, in its simplest observational form; also Black, Yeom &
  Fredrikson 2020, "FlipTest"): change only one attribute of each row, holding
  every other input fixed, and count rows whose predicted label changes. A
  protected attribute (sex, age) or an attribute the provider calls
  irrelevant should flip no decision.
- Sensitivity to small perturbations: add small Gaussian noise (a fraction of
  each numeric feature's standard deviation) and count label flips and the
  mean absolute change of the score.
- Performance on a labelled audit set: accuracy (Wilson interval) and ROC AUC
  against the card's claims (see ``glasslog.audit.claims``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..findings import Finding, clean_json
from ..stats import wilson_interval
from .recording import AuditInputError

__all__ = [
    "QueryCounter",
    "as_query_function",
    "CounterfactualResult",
    "SensitivityResult",
    "BlackBoxAudit",
    "counterfactual_flip_rate",
    "perturbation_sensitivity",
    "blackbox_audit",
]


class QueryCounter:
    """A prediction function that counts what it is asked.

    Args:
        predict: called as ``predict(frame)`` with a DataFrame of rows x
            features; returns the probability of the positive class, shape
            (rows,), float in [0, 1] (or an (rows, 2) ``predict_proba`` array,
            whose last column is taken).
        threshold: a score at or above it is a positive prediction.
        budget: most rows that may be sent in total (None: no limit).

    Attributes:
        calls: number of calls made.
        rows: rows sent in total (the query count reported by the tests).

    Raises (on call):
        AuditInputError: the budget would be exceeded, or the function returned
            the wrong shape or non-finite scores.
    """

    def __init__(self, predict: Callable[[pd.DataFrame], Any], threshold: float = 0.5, budget: int | None = None):
        if not callable(predict):
            raise AuditInputError("predict", f"must be callable (a prediction function), got {type(predict).__name__}")
        self._predict = predict
        self.threshold = threshold
        self.budget = budget
        self.calls = 0
        self.rows = 0

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores of the positive class for ``frame``'s rows, shape (rows,)."""
        if self.budget is not None and self.rows + len(frame) > self.budget:
            raise AuditInputError("budget", f"{self.rows} rows queried already; {len(frame)} more would exceed the budget of {self.budget}")
        out = np.asarray(self._predict(frame), dtype=float)
        self.calls += 1
        self.rows += len(frame)
        if out.ndim == 2:
            out = out[:, -1]
        if out.shape != (len(frame),):
            raise AuditInputError("predict", f"returned shape {out.shape} for {len(frame)} rows; expected ({len(frame)},)")
        if not np.isfinite(out).all():
            raise AuditInputError("predict", "returned NaN or infinite scores")
        return out

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted labels (1 = positive) for ``frame``'s rows, shape (rows,), int64."""
        return (self.scores(frame) >= self.threshold).astype(np.int64)

    __call__ = scores


def as_query_function(model_or_predict: Any, threshold: float = 0.5, budget: int | None = None) -> QueryCounter:
    """A ``QueryCounter`` from a fitted classifier (its ``predict_proba``), a prediction function, or a counter (returned as is)."""
    if isinstance(model_or_predict, QueryCounter):
        return model_or_predict
    if hasattr(model_or_predict, "predict_proba"):
        return QueryCounter(lambda X: model_or_predict.predict_proba(X)[:, -1], threshold, budget)
    return QueryCounter(model_or_predict, threshold, budget)


@dataclass
class CounterfactualResult:
    """Counterfactual flip test of one attribute.

    Attributes:
        attribute: the attribute changed.
        kind: ``protected`` or ``irrelevant`` (what the auditor treats it as).
        values: the values each row was set to.
        n: rows tested.
        flipped: rows whose predicted label changed for at least one value.
        flip_rate: ``flipped / n`` (fraction) with ``ci`` (Wilson).
        flip_rate_by_value: value -> fraction of rows (whose own value differs) that flipped.
        mean_abs_score_change: mean over rows and values of |score change|.
        queries: rows sent to the prediction function for this test.
    """

    attribute: str
    kind: str
    values: list
    n: int
    flipped: int
    flip_rate: float
    ci: tuple[float, float]
    flip_rate_by_value: dict
    mean_abs_score_change: float
    queries: int

    def to_dict(self) -> dict:
        return clean_json(vars(self).copy())


@dataclass
class SensitivityResult:
    """Perturbation sensitivity.

    Attributes:
        features: numeric features perturbed.
        scale: noise standard deviation as a fraction of each feature's standard deviation.
        repeats: perturbed copies per row.
        flip_rate: fraction of (row, copy) pairs whose label changed, with ``ci`` (Wilson).
        mean_abs_score_change: mean |score change|.
        queries: rows sent.
    """

    features: list[str]
    scale: float
    repeats: int
    n: int
    flip_rate: float
    ci: tuple[float, float]
    mean_abs_score_change: float
    queries: int

    def to_dict(self) -> dict:
        return clean_json(vars(self).copy())


def _check_frame(X: Any, name: str = "X") -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise AuditInputError(name, f"must be a pandas DataFrame of rows x features, got {type(X).__name__}")
    if len(X) == 0:
        raise AuditInputError(name, "has no rows")
    return X


def counterfactual_flip_rate(query: Any, X: pd.DataFrame, attribute: str, *, values: Sequence | None = None,
                             kind: str = "protected") -> CounterfactualResult:
    """Set ``attribute`` to each of ``values`` in every row, all else fixed, and count label flips.

    Args:
        query: a ``QueryCounter`` (or anything ``as_query_function`` accepts).
        X: rows x features, as the prediction function takes them.
        attribute: the column to change.
        values: values to set (default: every category seen in ``X`` for a
            text column; the 10th, 50th and 90th percentiles for a numeric one).
        kind: ``protected`` or ``irrelevant``, for the report.

    Returns:
        The result; ``queries`` = rows x (1 + number of values).

    Raises:
        AuditInputError: ``X`` is not a non-empty DataFrame, ``attribute`` is not a column, or fewer than two values.
    """
    q = as_query_function(query)
    X = _check_frame(X)
    if attribute not in X.columns:
        raise AuditInputError("attribute", f"no column {attribute!r}; columns are {list(X.columns)}")
    col = X[attribute]
    if values is None:
        if pd.api.types.is_numeric_dtype(col):
            values = sorted(set(np.percentile(col.astype(float), [10, 50, 90]).round(6).tolist()))
            if pd.api.types.is_integer_dtype(col):
                values = sorted({int(round(v)) for v in values})
        else:
            values = sorted(col.astype(str).unique().tolist())
    values = list(values)
    if len(values) < 1 or (len(values) < 2 and col.nunique() < 2):
        raise AuditInputError("values", f"need values to change {attribute!r} to; got {values}")
    before = q.rows
    base = q.scores(X)
    base_label = (base >= q.threshold).astype(int)
    changed = np.zeros(len(X), dtype=bool)
    by_value, deltas = {}, []
    for v in values:
        cf = X.copy()
        cf[attribute] = v
        s = q.scores(cf)
        differs = (col.astype(str) != str(v)).to_numpy()
        flips = ((s >= q.threshold).astype(int) != base_label) & differs
        changed |= flips
        by_value[str(v)] = float(flips.sum() / differs.sum()) if differs.any() else 0.0
        deltas.append(np.abs(s - base)[differs])
    n = len(X)
    flipped = int(changed.sum())
    all_deltas = np.concatenate(deltas) if deltas else np.zeros(0)
    return CounterfactualResult(attribute, kind, [clean_json(v) for v in values], n, flipped, flipped / n,
                                wilson_interval(flipped, n), by_value, float(all_deltas.mean()) if len(all_deltas) else 0.0,
                                q.rows - before)


def perturbation_sensitivity(query: Any, X: pd.DataFrame, *, features: Sequence[str] | None = None, scale: float = 0.05,
                             repeats: int = 3, seed: int = 0) -> SensitivityResult:
    """Label flips and score changes under small Gaussian noise on numeric features.

    Args:
        query, X: as for ``counterfactual_flip_rate``.
        features: numeric columns to perturb (default: every numeric column).
        scale: noise standard deviation as a fraction of each column's standard deviation.
        repeats: perturbed copies of each row.
        seed: noise seed.

    Integer columns stay integers (noise rounded), so the model sees values of its input type.

    Raises:
        AuditInputError: bad frame, a named feature that is missing or not numeric, scale <= 0, repeats < 1.
    """
    q = as_query_function(query)
    X = _check_frame(X)
    if features is None:
        features = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    for f in features:
        if f not in X.columns or not pd.api.types.is_numeric_dtype(X[f]):
            raise AuditInputError("features", f"{f!r} is not a numeric column of X")
    if not scale > 0 or repeats < 1:
        raise AuditInputError("scale" if not scale > 0 else "repeats", "must be positive")
    rng = np.random.default_rng(seed)
    before = q.rows
    base = q.scores(X)
    base_label = base >= q.threshold
    flips, deltas = 0, []
    for _ in range(repeats):
        noisy = X.copy()
        for f in features:
            sd = float(X[f].astype(float).std()) or 1.0
            moved = X[f].astype(float) + rng.normal(0, scale * sd, len(X))
            noisy[f] = moved.round().astype(X[f].dtype) if pd.api.types.is_integer_dtype(X[f]) else moved
        s = q.scores(noisy)
        flips += int(((s >= q.threshold) != base_label).sum())
        deltas.append(np.abs(s - base))
    total = len(X) * repeats
    return SensitivityResult(list(features), scale, repeats, len(X), flips / total, wilson_interval(flips, total),
                             float(np.concatenate(deltas).mean()), q.rows - before)


@dataclass
class BlackBoxAudit:
    """Result of ``blackbox_audit``.

    Attributes:
        counterfactual: one result per protected or irrelevant attribute.
        sensitivity: the perturbation test, or None.
        performance: claimed-vs-measured on the labelled audit set (``ClaimsAudit``), or None.
        queries: rows sent in total; ``queries_by_test`` per test.
        findings: the findings of all tests.
    """

    counterfactual: list[CounterfactualResult]
    sensitivity: SensitivityResult | None
    performance: Any
    queries: int
    queries_by_test: dict[str, int]
    findings: list[Finding]
    extra: dict = field(default_factory=dict)

    kind = "blackbox"

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"kind": self.kind, "queries": self.queries, "queries_by_test": self.queries_by_test,
                           "counterfactual": [c.to_dict() for c in self.counterfactual],
                           "sensitivity": self.sensitivity.to_dict() if self.sensitivity else None,
                           "performance": self.performance.to_dict() if self.performance is not None else None,
                           "findings": [f.to_dict() for f in self.findings], **self.extra})


def blackbox_audit(
    query: Any,
    X: pd.DataFrame,
    y: Any = None,
    *,
    protected: Sequence[str] = (),
    irrelevant: Sequence[str] = (),
    claimed: dict[str, float] | None = None,
    evaluation_size: int | None = None,
    positive: Any = 1,
    counterfactual_values: dict[str, Sequence] | None = None,
    flip_threshold: float = 0.02,
    sensitivity_scale: float = 0.05,
    sensitivity_threshold: float = 0.05,
    seed: int = 0,
    model: str | None = None,
    deployment: str | None = None,
) -> BlackBoxAudit:
    """Run the black-box tests through ``query`` (see module docstring).

    Args:
        query: the model's prediction function (see ``QueryCounter``), a fitted classifier, or a counter.
        X: the auditor's rows x features (an audit set, or logged inputs it may see).
        y: labels of ``X`` (optional): performance is measured only with labels.
        protected: attributes that should not change a decision (sex, age ...).
        irrelevant: attributes the provider calls irrelevant or non-causal.
        claimed: claimed metrics to hold the audit-set performance against (e.g. ``card.claimed.metrics``).
        evaluation_size: rows the claims were measured on (``card.claimed.evaluation_size``; their own sampling error).
        positive: the positive label of ``y``.
        counterfactual_values: attribute -> values to set it to (default as in ``counterfactual_flip_rate``).
            An attribute with one value in ``X`` and no values given is skipped with an
            ``insufficient-data`` finding, not an error.
        flip_threshold: a counterfactual flip rate above this is a finding (fraction).
        sensitivity_scale, sensitivity_threshold: noise scale, and flip rate above which it is a finding.
        seed: for the noise.

    Raises:
        AuditInputError: bad frame, unknown columns, labels of the wrong length.
    """
    from .claims import claimed_vs_realised

    q = as_query_function(query)
    X = _check_frame(X)
    findings: list[Finding] = []
    by_test: dict[str, int] = {}
    cfs = []
    for kind, attrs in (("protected", protected), ("irrelevant", irrelevant)):
        for a in attrs:
            try:
                r = counterfactual_flip_rate(q, X, a, values=(counterfactual_values or {}).get(a), kind=kind)
            except AuditInputError as exc:
                if exc.field != "values":
                    raise
                # one value only in the audit rows and none given: nothing to change it to; say so, do not fail the audit
                findings.append(Finding(
                    f"blackbox.counterfactual.{kind}", f"share of decisions that flip when only {a} changes", None,
                    flip_threshold, "insufficient-data", "info",
                    f"Counterfactual test of {a} ({kind}) skipped: it takes one value in the audited rows"
                    f" ({X[a].iloc[0]!r}) and no other values were known to change it to.",
                    "black-box", {"attribute": a, "kind": kind, "skipped": exc.problem}, model, deployment))
                continue
            cfs.append(r)
            by_test[f"counterfactual:{a}"] = r.queries
            alert = r.flip_rate > flip_threshold
            sev = ("high" if r.flip_rate >= 0.10 else "medium" if r.ci[0] > flip_threshold else "low") if alert else "info"
            findings.append(Finding(
                f"blackbox.counterfactual.{kind}", f"share of decisions that flip when only {a} changes", r.flip_rate,
                flip_threshold, "alert" if alert else "ok", sev,
                f"Changing only {a} ({kind}) flips {r.flipped} of {r.n} decisions ({r.flip_rate:.1%}, 95% interval"
                f" {r.ci[0]:.1%}-{r.ci[1]:.1%}); mean score change {r.mean_abs_score_change:.3f}; {r.queries} queries.",
                "black-box", {"attribute": a, "kind": kind, "ci": r.ci, "flip_rate_by_value": r.flip_rate_by_value,
                              "mean_abs_score_change": r.mean_abs_score_change, "queries": r.queries, "n": r.n},
                model, deployment))
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    sens = None
    if numeric:
        sens = perturbation_sensitivity(q, X, features=numeric, scale=sensitivity_scale, seed=seed)
        by_test["perturbation"] = sens.queries
        alert = sens.flip_rate > sensitivity_threshold
        findings.append(Finding(
            "blackbox.perturbation", f"share of decisions that flip under {sensitivity_scale:.0%}-of-SD noise", sens.flip_rate,
            sensitivity_threshold, "alert" if alert else "ok", ("medium" if sens.ci[0] > sensitivity_threshold else "low") if alert else "info",
            f"Noise of {sensitivity_scale:.0%} of each numeric feature's SD flips {sens.flip_rate:.1%} of decisions"
            f" (mean score change {sens.mean_abs_score_change:.3f}); {sens.queries} queries.",
            "black-box", {"features": numeric, "ci": sens.ci, "repeats": sens.repeats, "queries": sens.queries}, model, deployment))
    perf = None
    if y is not None:
        if len(y) != len(X):
            raise AuditInputError("y", f"has {len(y)} labels for {len(X)} rows")
        before = q.rows
        scores = q.scores(X)
        by_test["labelled audit set"] = q.rows - before
        labels = np.where(scores >= q.threshold, positive, _other(y, positive))
        perf = claimed_vs_realised(claimed or {"accuracy": 0.0}, list(y), labels.tolist(), scores, positive=positive,
                                   evaluation_size=evaluation_size if claimed else None, seed=seed, model=model,
                                   deployment=deployment, access="black-box")
        if claimed:
            for f in perf.findings:
                f.check = "blackbox.audit_set." + f.check.split(".", 1)[1]
                f.evidence["queries"] = by_test["labelled audit set"]
            findings.extend(perf.findings)
    return BlackBoxAudit(cfs, sens, perf, sum(by_test.values()), by_test, findings)


def _other(y: Any, positive: Any) -> Any:
    """The negative label of ``y`` (0 when ``y`` holds only the positive one)."""
    others = [v for v in pd.unique(pd.Series(y)) if v != positive]
    return others[0] if others else 0
