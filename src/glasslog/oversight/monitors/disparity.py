"""The ``disparity`` monitor: selection, false positive and false negative rates per protected group.

Method: ``docs/monitors.md`` (disparity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ... import stats
from ...findings import Finding
from ...stats import groups as groups_rule
from ...stats.labels import positive_class
from ..views import DeploymentData
from .common import FOUR_FIFTHS, Monitor, category_key, is_binary, span
from .common import finding as _finding
from .config import MonitorConfig

__all__ = ["check_disparity", "MONITOR"]


def _favourable(view: DeploymentData, cfg: MonitorConfig) -> Any:
    """The favourable label: the run's setting, else the card's ``output.favourable``, else None (never guessed)."""
    if cfg.favourable is not None:
        return cfg.favourable
    output = view.card.output if view.card is not None and isinstance(view.card.output, dict) else {}
    return output.get("favourable")


def _group_labels(values: np.ndarray, kind: str, spec: dict | None) -> tuple[np.ndarray, list[str], str]:
    """Group of each row as an int code (-1 = no group), the groups' names, and how the groups were formed."""
    if kind == "numeric" and (spec is None or "bins" in spec):
        x = np.asarray(values, dtype=float)
        fin = np.isfinite(x)
        if spec is not None:
            edges = np.asarray(spec["bins"], dtype=float)
            how = f"bins at {list(spec['bins'])}"
        else:
            edges = np.unique(np.quantile(x[fin], [0.25, 0.5, 0.75])) if fin.any() else np.array([])
            how = "quartiles"
        codes = np.searchsorted(edges, x, side="right").astype(np.int64)
        codes[~fin] = -1
        names = []
        for b in range(len(edges) + 1):
            lo = f"{edges[b - 1]:g}" if b > 0 else None
            hi = f"{edges[b]:g}" if b < len(edges) else None
            names.append(f"< {hi}" if lo is None else (f">= {lo}" if hi is None else f"{lo} to < {hi}"))
        return codes, names, how
    try:
        value_codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    except TypeError:  # unhashable values
        value_codes, uniques = pd.factorize(pd.Series(values, dtype=object).map(category_key), use_na_sentinel=True)
    if spec is not None and "map" in spec:
        mapping = {str(k): str(v) for k, v in spec["map"].items()}
        labels = [mapping.get(str(u)) for u in uniques]
        how = "mapped categories"
    else:
        labels = [str(u) for u in uniques]
        how = "categories"
    names = sorted({lab for lab in labels if lab is not None})
    code_of = {name: k for k, name in enumerate(names)}
    table = np.array([code_of[lab] if lab is not None else -1 for lab in labels] + [-1], dtype=np.int64)
    return table[value_codes], names, how  # value code -1 (missing) picks the final -1


def _group_counter(codes: np.ndarray, names: list[str]) -> Callable[[np.ndarray], dict[str, int]]:
    """``count(mask)`` -> rows of each group among the masked rows (codes as from ``_group_labels``)."""
    def count(mask: np.ndarray) -> dict[str, int]:
        counts = np.bincount(codes[mask], minlength=len(names))
        return {g: int(c) for g, c in zip(names, counts)}

    return count


def _group_table(groups: list[str], hits: dict[str, int], totals: dict[str, int], reference: str,
                 compared: dict[str, groups_rule.GroupComparison], a_each: float) -> dict:
    """Per group: trials, rate and its Wilson interval; the ratio to the reference with its adjusted interval."""
    table = {}
    for g in groups:
        row = {"n": totals[g], "rate": hits[g] / totals[g], "rate_ci": list(stats.wilson_interval(hits[g], totals[g], a_each))}
        if g == reference:
            row.update(ratio=1.0, reference_group=True)
        elif g in compared:
            c = compared[g]
            row.update(ratio=c.ratio, ratio_ci=[c.lo, c.hi], verdict=c.verdict, severity=c.severity)
        table[g] = row
    return table


def _statistic(metric: str, attribute: str) -> str:
    return f"{metric} ratio to the reference group ({attribute})"


def check_disparity(view: DeploymentData, cfg: MonitorConfig) -> tuple[list[Finding], str | None]:
    """Selection rates, false positive and false negative rates per protected group, each against the reference group
    by the one group-comparison rule (``glasslog.stats.groups``)."""
    if not view.sees_outputs:
        return [], f"role {view.role} does not see the outputs of this {view.visibility} deployment"
    if view.card is None:
        return [], "the model is not registered on this log (no card marks protected features)"
    protected = [f for f in view.card.features if f.protected]
    if not protected:
        return [], "the card marks no feature as protected"
    visible = [f for f in protected if view.inputs is not None and f.name in view.inputs.columns]
    if not visible:
        why = ("the card does not give researchers protected attributes (researcher_access_protected is false)"
               if view.role == "researcher" else f"role {view.role} does not see inputs")
        return [], why
    if not is_binary(view):
        return [], f"disparity checks need a binary classifier; the card lists {len(view.classes)} classes"
    favourable = _favourable(view, cfg)
    ok_rows = view.input_available & ~pd.isna(view.label)
    selected = (view.label == favourable)
    window = {"current": span(view, np.arange(view.n))}
    out: list[Finding] = []
    for f in visible:
        codes, group_names, how = _group_labels(view.inputs[f.name].to_numpy(), f.type, cfg.groups.get(f.name))
        has_group = ok_rows & (codes >= 0)
        per_group = _group_counter(codes, group_names)
        counts = per_group(has_group)
        names_all = [g for g in group_names if counts[g] > 0]
        names = [g for g in names_all if counts[g] >= cfg.min_cell]
        suppressed = len(names_all) - len(names)
        base = {"attribute": f.name, "grouping": how, "favourable": favourable, "groups_suppressed": suppressed,
                "min_cell": cfg.min_cell, "alpha": cfg.alpha, "rule": groups_rule.RULE,
                "ratio_interval": "MOVER (Zou & Donner 2008, Wilson limits, log scale), Bonferroni over the family"}
        y = view.outcome
        metrics = [("disparity.selection_rate", "selection_rate", has_group, selected)]
        if favourable is None:  # which label is good for the person is not known: no selection-rate direction
            metrics = []
            out.append(_finding(view, "disparity.selection_rate", _statistic("selection_rate", f.name), None, FOUR_FIFTHS,
                                "insufficient-data", "info", window,
                                {**base, "reason": "no favourable label: the card's output states no 'favourable' class "
                                                   "and none was given (--favourable / favourable); the selection-rate "
                                                   "direction is not guessed"}))
        if y is not None:
            neg = has_group & (y == 0) & ~np.isnan(view.predicted)
            pos = has_group & (y == 1) & ~np.isnan(view.predicted)
            metrics.append(("disparity.false_positive_rate", "false_positive_rate", neg, view.predicted == 1))
            metrics.append(("disparity.false_negative_rate", "false_negative_rate", pos, view.predicted == 0))
        counts_of = {}
        for _, metric, denom, hit in metrics:
            all_hits, all_totals = per_group(denom & hit), per_group(denom)
            counts_of[metric] = ({g: all_hits[g] for g in names}, {g: all_totals[g] for g in names})
        result = groups_rule.compare_groups({g: counts[g] for g in names}, counts_of, alpha=cfg.alpha, min_size=cfg.min_cell)
        for check, metric, _, _ in metrics:
            statistic = _statistic(metric, f.name)
            compared = result.metrics.get(metric)
            if compared is None:
                out.append(_finding(view, check, statistic, None, FOUR_FIFTHS, "insufficient-data", "info", window,
                                    {**base, "reason": f"fewer than two groups with {cfg.min_cell} or more decisions"
                                                       + (" with outcomes" if metric != "selection_rate" else "")
                                                       + (", or the reference group has fewer" if result.reference else "")}))
                continue
            hits, totals = counts_of[metric]
            ref = result.reference
            usable = [g for g in names if g == ref or g in compared]
            table = _group_table(usable, hits, totals, ref, compared, cfg.alpha)
            shown = groups_rule.reported(compared)
            if shown is None:
                out.append(_finding(view, check, statistic, None, FOUR_FIFTHS, "insufficient-data", "info", window,
                                    {**base, "groups": table, "reference_group": ref,
                                     "reason": "no finite ratio (the reference group's rate is 0)"}))
                continue
            c = compared[shown]
            significant = [g for g, x in compared.items() if x.verdict == "alert"]
            outside = [g for g, x in compared.items() if x.ratio is not None
                       and not FOUR_FIFTHS <= x.ratio <= 1 / FOUR_FIFTHS]
            ev = {**base, "groups": table, "reference_group": ref, "worst_group": shown, "comparisons_in_family": result.family,
                  "alpha_per_comparison": result.alpha_each, "band": [FOUR_FIFTHS, 1 / FOUR_FIFTHS],
                  "outside_band": outside, "significant": significant}
            label = metric.replace("_", " ")
            if c.verdict == "alert":
                ev["direction"] = (f"{label} of {shown} is {c.ratio:.2f} times that of the reference group {ref}: outside "
                                   f"{FOUR_FIFTHS:g}-{1 / FOUR_FIFTHS:g}, significantly"
                                   + (f" ({len(significant)} of {len(compared)} groups)" if len(compared) > 1 else ""))
                harmed = _harmed(metric, shown, ref, c.ratio, favourable, view)
                if harmed is not None:
                    ev["harmed_group"], why = harmed
                    ev["direction"] += f"; the group harmed is {harmed[0]} ({why})"
            elif c.verdict == "insufficient-data":
                ev["note"] = ("ratio outside 0.8-1.25 but not statistically significant: 29 CFR 1607.4(D) says such "
                              "differences may not constitute adverse impact when based on small numbers")
            out.append(_finding(view, check, statistic, c.ratio, FOUR_FIFTHS, c.verdict, c.severity, window, ev))
    return out, None


def _harmed(metric: str, group: str, ref: str, ratio: float, favourable: Any, view: DeploymentData) -> tuple[str, str] | None:
    """The group a significant rate gap harms and why, given the favourable label (None when it is not known)."""
    if favourable is None or ratio is None:
        return None
    higher, lower = (group, ref) if ratio > 1 else (ref, group)
    if metric == "selection_rate":  # the rate of the favourable label
        return lower, f"given the favourable label {favourable!r} less often"
    _, positive = positive_class(view.card.output if view.card is not None else None)
    favoured = favourable == positive
    if metric == "false_positive_rate":
        return (lower, f"wrongly given the favourable label {favourable!r} less often") if favoured else \
            (higher, f"wrongly denied the favourable label {favourable!r} more often")
    if metric == "false_negative_rate":
        return (higher, f"wrongly denied the favourable label {favourable!r} more often") if favoured else \
            (lower, f"wrongly given the favourable label {favourable!r} less often")
    return None


MONITOR = Monitor("disparity", "selection and error rates per protected group against the four-fifths rule",
                  lambda view, cfg, ctx: check_disparity(view, cfg))
