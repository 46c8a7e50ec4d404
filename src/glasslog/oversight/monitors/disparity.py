"""The ``disparity`` monitor: selection, false positive and false negative rates per protected group.

Method: ``docs/monitors.md`` (disparity).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ... import stats
from ...findings import Finding
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


def _ratio_table(groups: list[str], hits: dict[str, int], totals: dict[str, int], higher_is_better: bool, a_each: float,
                 a_ratio: float) -> tuple[dict, str | None]:
    """Per group rate, Wilson interval, and ratio to the best-treated group with a Katz interval."""
    rates = {g: hits[g] / totals[g] for g in groups if totals[g] > 0}
    if not rates:
        return {}, None
    best = max(rates, key=rates.get) if higher_is_better else min(rates, key=rates.get)
    table = {}
    for g in groups:
        if totals[g] == 0:
            continue
        row = {"n": totals[g], "rate": rates[g], "rate_ci": list(stats.wilson_interval(hits[g], totals[g], a_each))}
        if g != best:
            if higher_is_better:  # selection: group's rate / best rate
                r, lo, hi = stats.rate_ratio_interval(hits[g], totals[g], hits[best], totals[best], a_ratio)
            else:  # error rates: best (lowest) rate / group's rate
                r, lo, hi = stats.rate_ratio_interval(hits[best], totals[best], hits[g], totals[g], a_ratio)
            row.update(ratio=r if math.isfinite(r) else None, ratio_ci=[lo, hi if math.isfinite(hi) else None])
        else:
            row.update(ratio=1.0, reference_group=True)
        table[g] = row
    return table, best


def check_disparity(view: DeploymentData, cfg: MonitorConfig) -> tuple[list[Finding], str | None]:
    """Selection rates, false positive and false negative rates per protected group, with four-fifths ratios."""
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
                "min_cell": cfg.min_cell, "alpha": cfg.alpha, "rule": "four-fifths (29 CFR 1607.4(D)): ratio < 0.8",
                "ratio_interval": "Katz (1978) log interval, Bonferroni over the comparisons"}
        y = view.outcome
        metrics = [("disparity.selection_rate", "selection_rate", True, has_group, selected)]
        if favourable is None:  # which label is good for the person is not known: no selection-rate direction
            metrics = []
            out.append(_finding(view, "disparity.selection_rate", f"min selection_rate ratio ({f.name})", None, FOUR_FIFTHS,
                                "insufficient-data", "info", window,
                                {**base, "reason": "no favourable label: the card's output states no 'favourable' class "
                                                   "and none was given (--favourable / favourable); the selection-rate "
                                                   "direction is not guessed"}))
        if y is not None:
            neg = has_group & (y == 0) & ~np.isnan(view.predicted)
            pos = has_group & (y == 1) & ~np.isnan(view.predicted)
            metrics.append(("disparity.false_positive_rate", "false_positive_rate", False, neg, view.predicted == 1))
            metrics.append(("disparity.false_negative_rate", "false_negative_rate", False, pos, view.predicted == 0))
        for check, metric, higher_better, denom_mask, hit_mask in metrics:
            all_totals = per_group(denom_mask)
            totals = {g: all_totals[g] for g in names}
            usable = [g for g in names if totals[g] >= cfg.min_cell]
            statistic = f"min {metric} ratio ({f.name})"
            if len(usable) < 2:
                out.append(_finding(view, check, statistic, None, FOUR_FIFTHS, "insufficient-data", "info", window,
                                    {**base, "reason": f"fewer than two groups with {cfg.min_cell} or more decisions"
                                                       + (" with outcomes" if metric != "selection_rate" else "")}))
                continue
            all_hits = per_group(denom_mask & hit_mask)
            hits = {g: all_hits[g] for g in usable}
            comparisons = len(usable) - 1
            a_ratio = cfg.alpha / comparisons
            table, best = _ratio_table(usable, hits, totals, higher_better, cfg.alpha, a_ratio)
            ratios = {g: r["ratio"] for g, r in table.items() if r.get("ratio") is not None and g != best}
            if not ratios:
                out.append(_finding(view, check, statistic, None, FOUR_FIFTHS, "insufficient-data", "info", window,
                                    {**base, "groups": table, "reason": "no finite ratio (zero rates)"}))
                continue
            worst_group = min(ratios, key=ratios.get)
            worst = ratios[worst_group]
            significant = [g for g, r in table.items() if g != best and r.get("ratio") is not None
                           and r["ratio"] < FOUR_FIFTHS and r["ratio_ci"][1] is not None and r["ratio_ci"][1] < 1]
            below = [g for g, r in ratios.items() if r < FOUR_FIFTHS]
            ev = {**base, "groups": table, "reference_group": best, "worst_group": worst_group,
                  "below_four_fifths": below, "significant": significant}
            if significant:
                verdict, severity = "alert", ("high" if metric == "selection_rate" else "medium")
                if metric == "selection_rate":
                    ev["direction"] = (f"selection rate of {', '.join(significant)} is below four-fifths of that of "
                                       f"{best}, significantly")
                else:
                    ev["direction"] = (f"{metric.replace('_', ' ')} of {', '.join(significant)} is above five-fourths of "
                                       f"that of {best} (ratio below 0.8), significantly")
            elif below:
                verdict, severity = "insufficient-data", "low"
                ev["note"] = ("ratio below 0.8 but not statistically significant: 29 CFR 1607.4(D) says such differences "
                              "may not constitute adverse impact when based on small numbers")
            else:
                verdict, severity = "ok", "info"
            out.append(_finding(view, check, statistic, worst, FOUR_FIFTHS, verdict, severity, window, ev))
    return out, None


MONITOR = Monitor("disparity", "selection and error rates per protected group against the four-fifths rule",
                  lambda view, cfg, ctx: check_disparity(view, cfg))
