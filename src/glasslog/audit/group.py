"""Group error-rate audit: confusion matrix, FPR, FNR, PPV and selection rate per group, ratios between groups.

Point estimates come from fairlearn's ``MetricFrame`` (Weerts et al. 2023,
JMLR 24(257)). Intervals are a stratified nonparametric bootstrap: each
group's rows are resampled with replacement, keeping the group's size (drawn
as multinomial counts of the four confusion-matrix cells, which is the same
distribution as resampling the rows), and every metric and ratio is read off
the same draws; the interval is the percentile interval (Efron & Tibshirani
1993, ch. 13).

Ratios and alerts follow glasslog's one group-comparison rule, shared with
the disparity monitor (``glasslog.stats.groups``, with its measured
false-alarm rate under the null). The reference group is fixed before any rate is looked at:
the largest group, or ``reference``. Each other group with at least
``min_group_size`` rows is compared with it on selection rate, FPR, FNR and
PPV (ratio = group / reference). Comparing the two extreme groups picked after
looking at the data would alert on pure noise (their min/max ratio is always
under 1), so it is not done. The K = (groups - 1) x 4 comparisons form one
family per attribute; each ratio's percentile bootstrap interval is taken at
level 1 - (1 - confidence) / K (Bonferroni), so the chance of any false alarm
for the attribute is at most 1 - confidence (0.05) when no group differs.

A comparison alerts when its ratio lies outside the four-fifths band
[0.8, 1.25] (US EEOC Uniform Guidelines on Employee Selection Procedures,
29 CFR 1607.4(D): a rate under four fifths of another group's is evidence of
adverse impact; 1.25 = 1 / 0.8 is the same tolerance the other way, as for
error rates in Aequitas, Saleiro et al. 2018) and its adjusted interval
excludes 1; outside the band but not significant is ``insufficient-data``
(severity ``low``). Severity of an alert: ``high`` when the whole adjusted
interval lies outside the band and the ratio outside [0.6, 1/0.6]; ``medium``
when the whole adjusted interval lies outside the band; ``low`` otherwise. One
finding per metric reports an alerting comparison first, then the most severe,
then most extreme; the evidence holds every comparison. Severities do not depend on ``n_boot`` beyond
Monte-Carlo noise (at least ``MIN_BOOT`` draws are required).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..findings import Finding, clean_json
from ..stats.groups import GroupComparison, family_alpha, judge_ratio, reference_group, reported
from .recording import AuditInputError

__all__ = ["METRICS", "METRIC_LABELS", "GroupAudit", "group_error_rates", "group_audit_frame", "binary_labels"]

METRICS = ("selection_rate", "false_positive_rate", "false_negative_rate", "positive_predictive_value", "accuracy")
"""Metrics per group, all fractions: P(pred=1), P(pred=1 | y=0), P(pred=0 | y=1), P(y=1 | pred=1), P(pred=y)."""

METRIC_LABELS = {"selection_rate": "selection rate", "false_positive_rate": "false positive rate",
                 "false_negative_rate": "false negative rate", "positive_predictive_value": "positive predictive value",
                 "accuracy": "accuracy"}

MIN_BOOT = 200
"""Fewest bootstrap draws ``group_error_rates`` accepts: fewer gave NaN or unstable intervals, and so severities that
depended on ``n_boot``."""

_DISPARITY_METRICS = METRICS[:4]
_NUMERATORS = {"selection_rate": ("tp", "fp"), "false_positive_rate": ("fp",), "false_negative_rate": ("fn",),
               "positive_predictive_value": ("tp",)}


def binary_labels(values: Any, positive: Any, field: str) -> np.ndarray:
    """Map a label or prediction column to 0/1 (1 = ``positive``).

    Raises:
        AuditInputError: missing values, or more than two distinct values, or
            two values neither of which is ``positive`` (naming ``field``).
    """
    s = pd.Series(values).reset_index(drop=True)
    if s.isna().any():
        raise AuditInputError(field, f"{int(s.isna().sum())} missing values (first at row {int(s.isna().to_numpy().argmax())})")
    distinct = list(pd.unique(s))
    if len(distinct) > 2:
        raise AuditInputError(field, f"must be binary, found {len(distinct)} distinct values: {sorted(map(str, distinct))[:6]}")
    matches = s == positive
    if not matches.any():
        # 1 vs "1", True vs 1: compare as text before giving up
        matches = s.astype(str) == str(positive)
        if not matches.any() and len(distinct) == 2:
            raise AuditInputError(field, f"the positive value {positive!r} does not occur; values are {sorted(map(str, distinct))}")
    return matches.to_numpy().astype(np.int64)


def _counts(y: np.ndarray, p: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    tn = int(((p == 0) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    return tp, fp, tn, fn


def _metrics_from_counts(tp, fp, tn, fn) -> dict[str, np.ndarray]:
    tp, fp, tn, fn = (np.asarray(a, dtype=float) for a in (tp, fp, tn, fn))
    n = tp + fp + tn + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "selection_rate": (tp + fp) / n,
            "false_positive_rate": fp / (fp + tn),
            "false_negative_rate": fn / (fn + tp),
            "positive_predictive_value": tp / (tp + fp),
            "accuracy": (tp + tn) / n,
        }


@dataclass
class GroupAudit:
    """Result of ``group_error_rates`` for one sensitive attribute.

    Attributes:
        attribute: the sensitive attribute's name (e.g. ``race``).
        n: rows audited.
        reference: the reference group of ``ratios``.
        by_group: DataFrame indexed by group: ``n``, ``tp``, ``fp``, ``tn``, ``fn``,
            ``base_rate`` and each of ``METRICS`` (fractions; NaN where undefined),
            plus ``<metric>_lo`` / ``<metric>_hi`` bootstrap interval bounds.
        ratios: DataFrame indexed by group: ``<metric>_ratio`` (group / reference)
            with ``_lo`` / ``_hi`` bounds.
        disparity: metric -> {"ratio": group / reference of the reported comparison, "lo", "hi" (its
            Bonferroni-adjusted interval), "group", "reference", "lowest", "highest" (groups with the
            lowest and highest value), "comparisons": group -> {"ratio", "lo", "hi", "events", "value", "n"}}
            over groups with at least ``min_group_size`` rows.
        small_groups: groups left out of ``disparity`` for their size.
        findings: one per metric in selection rate, FPR, FNR, PPV (rules in the module docstring).
        metric_frame: the fairlearn ``MetricFrame`` behind the point estimates.
        n_boot, confidence, seed: bootstrap settings.
    """

    attribute: str
    n: int
    reference: str
    by_group: pd.DataFrame
    ratios: pd.DataFrame
    disparity: dict[str, dict]
    small_groups: list[str]
    findings: list[Finding]
    metric_frame: Any
    n_boot: int
    confidence: float
    seed: int
    positive: Any = 1
    min_group_size: int = 50
    ratio_threshold: float = 0.8
    extra: dict = field(default_factory=dict)

    kind = "group"

    def metric(self, name: str, group: str) -> float:
        """Point estimate of ``name`` for ``group`` (fraction)."""
        return float(self.by_group.loc[group, name])

    def to_dict(self) -> dict[str, Any]:
        groups = []
        for g, row in self.by_group.iterrows():
            item = {"group": str(g), **{k: row[k] for k in ("n", "tp", "fp", "tn", "fn", "base_rate")}}
            for m in METRICS:
                item[m] = {"value": row[m], "ci": [row[f"{m}_lo"], row[f"{m}_hi"]]}
                if g in self.ratios.index:
                    r = self.ratios.loc[g]
                    item[m]["ratio_to_reference"] = {"value": r[f"{m}_ratio"], "ci": [r[f"{m}_ratio_lo"], r[f"{m}_ratio_hi"]]}
            groups.append(item)
        return clean_json({
            "kind": self.kind, "attribute": self.attribute, "n": self.n, "reference": self.reference, "positive": str(self.positive),
            "n_boot": self.n_boot, "confidence": self.confidence, "seed": self.seed, "min_group_size": self.min_group_size,
            "ratio_threshold": self.ratio_threshold, "groups": groups, "disparity": self.disparity,
            "small_groups": self.small_groups, "findings": [f.to_dict() for f in self.findings], **self.extra,
        })


def group_error_rates(
    y_true: Any,
    y_pred: Any,
    sensitive: Any,
    *,
    positive: Any = 1,
    attribute: str | None = None,
    reference: str | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_group_size: int = 50,
    ratio_threshold: float = 0.8,
    min_events: int = 10,
    model: str | None = None,
    deployment: str | None = None,
    access: str = "labelled-data",
    lead: str | None = None,
) -> GroupAudit:
    """Error rates by group with bootstrap intervals and between-group ratios (see module docstring).

    Args:
        y_true: outcomes, shape (n,), two distinct values (one of them ``positive``).
        y_pred: binary predictions, shape (n,), in the same label space.
        sensitive: group of each row, shape (n,) (a Series names the attribute).
        positive: the positive outcome / prediction value (e.g. 1 = reoffended, 1 = bad credit risk).
        attribute: the attribute's name (default: the Series name, else ``group``).
        lead: a group whose comparison with the reference each finding reports when it has the same verdict as the
            most extreme one (e.g. African-American against Caucasian, the comparison ProPublica made).
        reference: group whose metrics are the denominators of ``ratios`` and of the alerting
            comparisons (default: the largest group, chosen by size alone).
        n_boot: bootstrap draws, at least ``MIN_BOOT`` (200).
        confidence: interval coverage, a fraction; for the ratios, the family-wise coverage
            (each ratio's interval is Bonferroni-adjusted, see the module docstring).
        seed: bootstrap seed; the same inputs and seed give identical results.
        min_group_size: smaller groups are reported but left out of the between-group ratios.
        ratio_threshold: the four-fifths line (0.8): the band is [ratio_threshold, 1 / ratio_threshold].
        min_events: fewer events (positive predictions, false positives, false negatives, true positives:
            the metric's numerator, summed over the groups compared) give ``insufficient-data``, not a ratio.
        model, deployment, access: copied into the findings.

    Raises:
        AuditInputError: lengths differ, no rows, missing values, non-binary
            labels or predictions, an unknown reference group, bad settings.
    """
    from fairlearn.metrics import MetricFrame, count, false_negative_rate, false_positive_rate, selection_rate
    from sklearn.metrics import accuracy_score, precision_score

    name = attribute or (str(sensitive.name) if isinstance(sensitive, pd.Series) and sensitive.name is not None else "group")
    n = len(y_true) if hasattr(y_true, "__len__") else -1
    for fld, values in (("y_pred", y_pred), ("sensitive", sensitive)):
        if not hasattr(values, "__len__") or len(values) != n:
            raise AuditInputError(fld, f"has {len(values) if hasattr(values, '__len__') else 'no'} rows, y_true has {n}")
    if n <= 0:
        raise AuditInputError("y_true", "no rows to audit")
    if not 0 < confidence < 1:
        raise AuditInputError("confidence", f"must be a fraction between 0 and 1, got {confidence!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < MIN_BOOT:
        raise AuditInputError("n_boot", f"must be at least {MIN_BOOT} bootstrap draws (the Bonferroni-adjusted intervals"
                                        f" reach far into the tails), got {n_boot!r}")
    if min_group_size < 1:
        raise AuditInputError("min_group_size", f"must be at least 1 row, got {min_group_size}")
    if not 0 < ratio_threshold < 1:
        raise AuditInputError("ratio_threshold", f"must be a ratio between 0 and 1 (e.g. 0.8), got {ratio_threshold}")
    y = binary_labels(y_true, positive, "y_true")
    p = binary_labels(y_pred, positive, "y_pred")
    groups = pd.Series(sensitive).reset_index(drop=True)
    if groups.isna().any():
        raise AuditInputError(name, f"{int(groups.isna().sum())} rows have no group value")
    groups = groups.astype(str)

    def ppv(yt, yp):
        return precision_score(yt, yp, zero_division=np.nan)

    def base_rate(yt, yp):
        return float(np.mean(yt))

    mf = MetricFrame(
        metrics={"n": count, "selection_rate": selection_rate, "false_positive_rate": false_positive_rate,
                 "false_negative_rate": false_negative_rate, "positive_predictive_value": ppv, "accuracy": accuracy_score,
                 "base_rate": base_rate},
        y_true=y, y_pred=p, sensitive_features=groups.rename(name),
    )
    table = mf.by_group.copy()
    table.index = table.index.astype(str)
    names = list(table.index)
    counts = {g: _counts(y[(groups == g).to_numpy()], p[(groups == g).to_numpy()]) for g in names}
    for i, col in enumerate(("tp", "fp", "tn", "fn")):
        table[col] = [counts[g][i] for g in names]
    table["n"] = table["n"].astype(int)
    try:  # the one group-comparison rule: the largest group unless one is given, fixed by size alone
        reference = reference_group({g: int(table.loc[g, "n"]) for g in names}, None if reference is None else str(reference))
    except KeyError:
        raise AuditInputError("reference", f"group {reference!r} does not occur in {name}; groups are {names}") from None

    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    boot: dict[str, dict[str, np.ndarray]] = {}
    for g in names:
        c = np.array(counts[g], dtype=float)
        if n_boot:
            draws = rng.multinomial(int(c.sum()), c / c.sum(), size=n_boot)
            boot[g] = _metrics_from_counts(*draws.T)
        else:
            boot[g] = {m: np.full(1, np.nan) for m in METRICS}

    def interval(samples: np.ndarray) -> tuple[float, float]:
        finite = samples[np.isfinite(samples)]
        if not n_boot or len(finite) < max(10, 0.5 * len(samples)):
            return (np.nan, np.nan)
        return (float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha)))

    for m in METRICS:
        lo_hi = [interval(boot[g][m]) for g in names]
        table[f"{m}_lo"] = [a for a, _ in lo_hi]
        table[f"{m}_hi"] = [b for _, b in lo_hi]

    ratio_rows = {}
    for g in names:
        row = {}
        for m in METRICS:
            with np.errstate(divide="ignore", invalid="ignore"):
                row[f"{m}_ratio"] = table.loc[g, m] / table.loc[reference, m]
                lo, hi = interval(boot[g][m] / boot[reference][m])
            row[f"{m}_ratio_lo"], row[f"{m}_ratio_hi"] = lo, hi
        ratio_rows[g] = row
    ratios = pd.DataFrame.from_dict(ratio_rows, orient="index")

    eligible = [g for g in names if table.loc[g, "n"] >= min_group_size]
    small = [g for g in names if g not in eligible]
    others = [g for g in eligible if g != reference]
    # The family: every (group, metric) comparison with the reference, fixed by group sizes alone, before any rate is
    # looked at. Bonferroni: each comparison's interval at level 1 - (1 - confidence) / family.
    family = len(others) * len(_DISPARITY_METRICS)
    adj_alpha = family_alpha(1 - confidence, family) / 2
    band = (ratio_threshold, 1 / ratio_threshold)
    disparity: dict[str, dict] = {}
    findings: list[Finding] = []
    statistic = f"ratio of {{label}} by {name} (group / reference group {reference})"
    for m in _DISPARITY_METRICS:
        label = METRIC_LABELS[m]
        stat = statistic.format(label=label)
        empty = {"ratio": None, "lo": None, "hi": None, "group": None, "reference": reference, "lowest": None,
                 "highest": None, "comparisons": {}}
        if reference not in eligible or not others or not np.isfinite(table.loc[reference, m]):
            disparity[m] = empty
            why = (f"the reference group {reference} has fewer than {min_group_size} rows" if reference not in eligible
                   else f"no other group of {name} has at least {min_group_size} rows" if not others
                   else f"the reference group {reference} has no defined {label}")
            findings.append(Finding(
                f"group.{m}", stat, None, ratio_threshold, "insufficient-data", "info", f"No {label} ratio by {name}: {why}.",
                access, {"attribute": name, "reference": reference, "groups": {g: int(table.loc[g, 'n']) for g in names}},
                model, deployment))
            continue
        comparisons: dict[str, dict] = {}
        for g in others:
            value, ref_value = float(table.loc[g, m]), float(table.loc[reference, m])
            events = int(sum(table.loc[x, col] for x in (g, reference) for col in _NUMERATORS[m]))
            if not np.isfinite(value) or ref_value <= 0 or events < min_events:
                comparisons[g] = {"ratio": None, "lo": None, "hi": None, "events": events, "value": value,
                                  "n": int(table.loc[g, "n"])}
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                per_draw = boot[g][m] / boot[reference][m]
            finite = per_draw[np.isfinite(per_draw)]
            if len(finite) < 0.5 * len(per_draw):
                lo, hi = np.nan, np.nan
            else:
                lo, hi = float(np.quantile(finite, adj_alpha)), float(np.quantile(finite, 1 - adj_alpha))
            comparisons[g] = {"ratio": value / ref_value, "lo": lo, "hi": hi, "events": events, "value": value,
                              "n": int(table.loc[g, "n"])}
        measured = {g: c for g, c in comparisons.items() if c["ratio"] is not None}
        values = {g: float(table.loc[g, m]) for g in eligible if np.isfinite(table.loc[g, m])}
        lowest = min(values, key=values.get) if values else None
        highest = max(values, key=values.get) if values else None
        if not measured:
            disparity[m] = {**empty, "comparisons": comparisons, "lowest": lowest, "highest": highest}
            findings.append(Finding(
                f"group.{m}", stat, None, ratio_threshold, "insufficient-data", "info",
                f"Too few events behind the {label} of the groups of {name} for a ratio (at least {min_events} needed,"
                f" counting the group and the reference {reference}).",
                access, {"attribute": name, "reference": reference, "comparisons": comparisons}, model, deployment))
            continue
        # the one group-comparison rule (glasslog.stats.groups): verdicts, and the comparison reported
        judged = {g: judge_ratio(c["ratio"], c["lo"], c["hi"], ratio_threshold) for g, c in measured.items()}
        alerting = [g for g in measured if judged[g][0] == "alert"]
        worst_group = reported({g: GroupComparison(g, c["ratio"], c["lo"], c["hi"], *judged[g]) for g, c in measured.items()})
        if lead in measured and judged[lead] == judged[worst_group]:
            worst_group = lead  # the comparison the caller leads with, when it is as much an alert (or not) as the worst
        c = measured[worst_group]
        ratio, lo, hi = c["ratio"], c["lo"], c["hi"]
        verdict, severity = judged[worst_group]
        disparity[m] = {"ratio": ratio, "lo": lo, "hi": hi, "group": worst_group, "reference": reference,
                        "lowest": lowest, "highest": highest, "comparisons": comparisons}
        evidence = {
            "attribute": name, "group": worst_group, "reference": reference, "ci": [lo, hi], "confidence": confidence,
            "adjusted_confidence": 1 - 2 * adj_alpha, "comparisons_in_family": family, "n_boot": n_boot,
            "lowest": lowest, "highest": highest, "band": list(band),
            "by_group": {g: {"value": values[g], "ci": [float(table.loc[g, f"{m}_lo"]), float(table.loc[g, f"{m}_hi"])],
                             "n": int(table.loc[g, "n"])} for g in values},
            "ratios": {g: {"ratio": x["ratio"], "ci": [x["lo"], x["hi"]], "verdict": judged[g][0], "severity": judged[g][1]}
                       for g, x in measured.items()},
        }
        if small:
            evidence["small_groups"] = small
        interval_text = (f"{1 - 2 * adj_alpha:.2%} interval {lo:.2f}-{hi:.2f}, Bonferroni-adjusted over {family}"
                         f" comparisons for {confidence:.0%} family-wise")
        if verdict == "alert":
            summary = (f"The {label} of {worst_group} is {ratio:.2f} times that of the reference group {reference}"
                       f" ({c['value']:.3f} vs {float(table.loc[reference, m]):.3f}; {interval_text}): outside the"
                       f" four-fifths band {band[0]:g}-{band[1]:g} and the interval excludes 1"
                       + (f"; {len(alerting)} of {len(measured)} groups alert" if len(measured) > 1 else "") + ".")
        else:
            summary = (f"The {label} by {name} relative to {reference}: ratios "
                       + ", ".join(f"{g} {x['ratio']:.2f}" for g, x in measured.items())
                       + f"; none both outside {band[0]:g}-{band[1]:g} and with an adjusted interval excluding 1"
                       f" (the most extreme, {worst_group}: {interval_text})"
                       + (": outside the band, but not statistically significant (29 CFR 1607.4(D): such differences"
                          " may not constitute adverse impact when based on small numbers)." if verdict == "insufficient-data"
                          else "."))
        findings.append(Finding(f"group.{m}", stat, ratio, ratio_threshold, verdict, severity, summary, access, evidence,
                                model, deployment))
    return GroupAudit(name, n, reference, table, ratios, disparity, small, findings, mf, n_boot, confidence, seed,
                      positive, min_group_size, ratio_threshold)


def group_audit_frame(
    frame: pd.DataFrame,
    label: str,
    prediction: str,
    groups: list[str],
    **kwargs: Any,
) -> dict[str, GroupAudit]:
    """``group_error_rates`` for each of several group columns of one labelled frame (e.g. a CSV).

    Args:
        frame: rows x columns, holding ``label``, ``prediction`` and every group column.
        label, prediction: column names of outcome and binary prediction.
        groups: sensitive attribute columns, audited one at a time.
        kwargs: passed to ``group_error_rates``.

    Returns:
        attribute -> ``GroupAudit``, in the order given.

    Raises:
        AuditInputError: a named column is missing (the error lists the columns there are), or no group column given.
    """
    if not groups:
        raise AuditInputError("groups", "name at least one group column (e.g. race, sex)")
    for role, col in [("label", label), ("prediction", prediction)] + [("group", g) for g in groups]:
        if col not in frame.columns:
            raise AuditInputError(role, f"no column {col!r}; columns are {list(frame.columns)[:30]}")
    out = {}
    for g in groups:
        try:
            out[g] = group_error_rates(frame[label], frame[prediction], frame[g], attribute=g, **kwargs)
        except AuditInputError as exc:  # name the frame's column, not the function's argument
            column = {"y_true": f"label column {label!r}", "y_pred": f"prediction column {prediction!r}",
                      g: f"group column {g!r}"}.get(exc.field)
            if column is None:
                raise
            raise AuditInputError(column, exc.problem) from None
    return out


_HARMED_BY_HIGH = {  # metric -> (a higher value harms the group when the positive prediction is unfavourable, ... favourable)
    "selection_rate": (True, False),        # more often predicted positive: bad if positive is unfavourable
    "false_positive_rate": (True, False),   # wrongly predicted positive
    "false_negative_rate": (False, True),   # wrongly predicted negative: bad if positive is favourable (wrongly denied)
}


def name_the_harmed(audit: GroupAudit, positive_is_favourable: bool) -> GroupAudit:
    """Say in each alerting selection-rate, FPR and FNR finding which group is harmed, given whether the positive
    prediction is favourable for the person (e.g. 1 = high risk: unfavourable). Adds ``harmed_group`` to the evidence."""
    for f in audit.findings:
        m = f.check.removeprefix("group.")
        if m not in _HARMED_BY_HIGH or f.verdict != "alert" or f.value is None:
            continue
        d = audit.disparity.get(m) or {}
        group, reference = d.get("group"), d.get("reference")
        if group is None:
            continue
        higher, lower = (group, reference) if f.value > 1 else (reference, group)
        harmed = higher if _HARMED_BY_HIGH[m][positive_is_favourable] else lower
        label = METRIC_LABELS.get(m, m)
        why = {("selection_rate", False): "given the unfavourable prediction more often",
               ("selection_rate", True): "given the favourable prediction less often",
               ("false_positive_rate", False): "wrongly given the unfavourable prediction more often",
               ("false_positive_rate", True): "wrongly given the favourable prediction less often",
               ("false_negative_rate", True): "wrongly denied the favourable prediction more often",
               ("false_negative_rate", False): "wrongly spared the unfavourable prediction less often"}[(m, positive_is_favourable)]
        f.summary += (f" The positive prediction is {'favourable' if positive_is_favourable else 'unfavourable'} for"
                      f" the person, so the group harmed by this {label} gap is {harmed} ({why}).")
        f.evidence["harmed_group"] = harmed
    return audit
