"""The ``drift`` monitor: outputs and the inputs a role sees, a reference window against the current one.

Method: ``docs/monitors.md`` (drift).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from ... import stats
from ...findings import Finding, worst_severity
from ..views import DeploymentData
from .common import Monitor, category_key, span
from .common import finding as _finding
from .config import MonitorConfig

__all__ = ["check_drift", "compare_feature", "compare_frames", "flag_drift", "MONITOR"]

_PARALLEL_ROWS = 200_000
"""Rows (reference + current) from which ``compare_frames`` compares features on several threads."""


def _psi_severity(value: float) -> str:
    if value >= stats.PSI_MAJOR:
        return "high"
    if value >= stats.PSI_MODERATE:
        return "medium"
    return "low"


def _windows(view: DeploymentData, ref_view: DeploymentData | None, cfg: MonitorConfig
             ) -> tuple[DeploymentData, np.ndarray, np.ndarray, str]:
    """(reference view, reference rows, current rows of ``view``, description)."""
    n = view.n
    if ref_view is not None:
        ref_rows = np.arange(ref_view.n)
        cur_rows = np.arange(n) if cfg.window is None else np.arange(max(0, n - cfg.window), n)
        return ref_view, ref_rows, cur_rows, f"all decisions of deployment {ref_view.deployment}"
    n_ref = min(cfg.reference_size, n // 2)
    ref_rows = np.arange(n_ref)
    start = n_ref if cfg.window is None else max(n_ref, n - cfg.window)
    return view, ref_rows, np.arange(start, n), f"first {n_ref} decisions of the deployment"


def compare_feature(ref: np.ndarray, cur: np.ndarray, kind: str, *, ref_invalid: np.ndarray | None = None,
                    cur_invalid: np.ndarray | None = None, bins: int = 10, discrete_levels: int = 10) -> dict:
    """Compare one variable's reference and current samples (``docs/monitors.md``, drift).

    Args:
        ref, cur: arrays (n_ref,), (n_cur,): float64 for ``kind="numeric"``
            (NaN = missing), anything hashable for ``"categorical"`` (None / NaN = missing).
        kind: ``numeric`` or ``categorical``.
        ref_invalid, cur_invalid: bool masks of values present but not numbers (numeric only).
        bins: reference-quantile bins for PSI.
        discrete_levels: numeric variables with at most this many distinct
            reference values are compared as categories.

    Returns:
        ``{"test", "statistic", "p_value", "psi", "js", "missing_share": [ref, cur],
        "invalid_share": [ref, cur], "unseen_share", "unseen_categories", "n": [ref, cur]}``.

    Raises:
        ValueError: unknown ``kind``, or an empty sample.
    """
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("both samples need at least one value")
    if kind == "numeric":
        ref = np.asarray(ref, dtype=float)
        cur = np.asarray(cur, dtype=float)
        ref_bad = np.zeros(len(ref), bool) if ref_invalid is None else ref_invalid
        cur_bad = np.zeros(len(cur), bool) if cur_invalid is None else cur_invalid
        ref_fin, cur_fin = np.isfinite(ref), np.isfinite(cur)
        ref_miss, cur_miss = ~ref_fin & ~ref_bad, ~cur_fin & ~cur_bad
        out = {"n": [len(ref), len(cur)], "missing_share": [float(ref_miss.mean()), float(cur_miss.mean())],
               "invalid_share": [float(ref_bad.mean()), float(cur_bad.mean())]}
        rv, cv = ref[ref_fin], cur[cur_fin]
        levels = np.unique(rv) if len(rv) <= 5_000_000 else np.unique(rv[:100_000])
        if len(levels) <= discrete_levels:
            # discrete: categories are the values; missing and invalid become their own cells
            rl = np.where(ref_fin, ref, np.nan).astype(object)
            cl = np.where(cur_fin, cur, np.nan).astype(object)
            rl[ref_bad] = "(invalid)"
            cl[cur_bad] = "(invalid)"
            cat, _ = _compare_codes(rl, cl)
            out.update(_categorical_result(cat, len(cur)))
            return out
        if len(rv) >= 1 and len(cv) >= 1:
            d, p = stats.ks_test(rv, cv)
        else:
            d, p = (0.0, 1.0) if len(rv) == len(cv) == 0 else (1.0, 0.0)
        edges = stats.quantile_edges(rv, bins) if len(rv) else np.array([])
        k = len(edges) + 1
        ref_counts = np.concatenate([np.bincount(np.searchsorted(edges, rv, side="right"), minlength=k)[:k],
                                     [ref_miss.sum(), ref_bad.sum()]])
        cur_counts = np.concatenate([np.bincount(np.searchsorted(edges, cv, side="right"), minlength=k)[:k],
                                     [cur_miss.sum(), cur_bad.sum()]])
        out.update(test="ks", statistic=d, p_value=p, psi=stats.psi(ref_counts, cur_counts),
                   js=stats.js_distance(ref_counts, cur_counts), unseen_share=float(np.mean(cur_bad)) if cur_bad.any() else 0.0,
                   unseen_categories=0)
        if ref_miss.any() or cur_miss.any() or ref_bad.any() or cur_bad.any():
            # the shares of present / missing / invalid values, tested too (Bonferroni within the feature)
            chi, p_miss, _ = stats.chi_square_homogeneity(
                np.array([ref_fin.sum(), ref_miss.sum(), ref_bad.sum()]), np.array([cur_fin.sum(), cur_miss.sum(), cur_bad.sum()]))
            out["missing_test"] = {"statistic": chi, "p_value": p_miss}
            out["test"] = "ks+missing-share"
            out["p_value"] = min(1.0, 2 * min(p, p_miss))
        return out
    if kind != "categorical":
        raise ValueError(f"kind must be numeric or categorical, got {kind!r}")
    cat, missing = _compare_codes(np.asarray(ref, dtype=object), np.asarray(cur, dtype=object))
    if missing is None:  # values compared by their text: missing as pandas sees the values themselves
        missing = pd.isna(np.concatenate([np.asarray(ref, dtype=object), np.asarray(cur, dtype=object)]))
    miss_ref = float(np.mean(missing[: len(ref)]))
    miss_cur = float(np.mean(missing[len(ref) :]))
    return {"n": [len(ref), len(cur)], "missing_share": [miss_ref, miss_cur], "invalid_share": [0.0, 0.0],
            **_categorical_result(cat, len(cur))}


def _categorical_result(cat: stats.CategoricalComparison, n_cur: int) -> dict:
    """Chi-square over the categories; with unseen categories also Fisher's exact test of their share (Bonferroni x2)."""
    out = {"test": "chi-square", "statistic": cat.chi2, "p_value": cat.p_value, "dof": cat.dof, "psi": cat.psi, "js": cat.js,
           "unseen_share": cat.unseen / n_cur, "unseen_categories": cat.unseen_categories}
    if cat.unseen:
        out.update(test="chi-square+unseen-share", p_value=min(1.0, 2 * min(cat.p_value, cat.p_unseen)),
                   unseen_test={"p_value": cat.p_unseen, "chi_square_p_value": cat.p_value})
    return out


def compare_frames(reference: pd.DataFrame, current: pd.DataFrame, types: dict[str, str],
                   ref_invalid: dict[str, np.ndarray] | None = None, cur_invalid: dict[str, np.ndarray] | None = None, *,
                   bins: int = 10, discrete_levels: int = 10) -> dict[str, dict]:
    """``compare_feature`` for every column of two frames with the same columns.

    Args:
        reference, current: DataFrames (n_ref x k), (n_cur x k); numeric
            columns float64 with NaN for missing values.
        types: column -> ``numeric`` or ``categorical`` (missing: categorical).
        ref_invalid, cur_invalid: column -> bool mask (rows) of values present but not numbers.

    Returns:
        column -> the comparison (see ``compare_feature``); not yet corrected for multiple tests.
    """
    ref_invalid = ref_invalid or {}
    cur_invalid = cur_invalid or {}

    def one(name: str) -> dict:
        r = reference[name].to_numpy()
        c = current[name].to_numpy()
        if types.get(name, "categorical") == "numeric":
            return compare_feature(r, c, "numeric", ref_invalid=ref_invalid.get(name), cur_invalid=cur_invalid.get(name),
                                   bins=bins, discrete_levels=discrete_levels)
        return compare_feature(r, c, "categorical")

    names = list(reference.columns)
    if len(reference) + len(current) < _PARALLEL_ROWS or len(names) < 2:
        return {name: one(name) for name in names}
    # Features are independent and numpy's sorts and searches release the GIL: one thread per core.
    with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1)) as pool:
        return dict(zip(names, pool.map(one, names)))


def flag_drift(results: dict[str, dict], alpha: float = 0.05, min_psi: float = 0.0) -> list[str]:
    """Mark each comparison drifted or not (Bonferroni over the comparisons, and PSI >= ``min_psi``).

    Adds ``p_adjusted``, ``drifted`` and ``severity`` to every result in place.

    Returns:
        Names of the drifted variables.
    """
    k = len(results)
    drifted = []
    for name, r in results.items():
        r["p_adjusted"] = min(1.0, r["p_value"] * k)
        r["drifted"] = bool(r["p_adjusted"] < alpha and r["psi"] >= min_psi)
        r["severity"] = _psi_severity(r["psi"]) if r["drifted"] else "info"
        if r["drifted"]:
            drifted.append(name)
    return drifted


def _compare_codes(ref: np.ndarray, cur: np.ndarray) -> tuple[stats.CategoricalComparison, np.ndarray | None]:
    """Factorise both samples together (missing as its own category) and compare the counts.

    Returns the comparison and the missing mask of ``ref`` then ``cur`` (factorize's NA sentinel, which marks
    exactly what ``pd.isna`` does: one pass instead of two), or None where unhashable values were compared by text.
    """
    both = np.concatenate([ref, cur])
    missing = None
    try:
        codes, uniques = pd.factorize(both, use_na_sentinel=True)  # None and NaN are missing
        missing = codes < 0
    except TypeError:  # unhashable values (lists, objects): compare their text
        codes, uniques = pd.factorize(pd.Series(both, dtype=object).map(category_key), use_na_sentinel=True)
    k = len(uniques)
    codes = np.where(codes < 0, k, codes)  # missing -> its own category
    labels = [str(u) for u in uniques] + ["(missing)"]
    n_ref = len(ref)
    rc, cc = codes[:n_ref], codes[n_ref:]
    cmp = stats.compare_categorical(rc, cc, labels, k + 1)
    return cmp, missing


def _drift_finding(view: DeploymentData, check: str, results: dict[str, dict], cfg: MonitorConfig, window: dict,
                   extra: dict, alpha: float) -> Finding:
    k = len(results)
    drifted = flag_drift(results, alpha, cfg.min_psi)
    p_min = min((r["p_adjusted"] for r in results.values()), default=1.0)
    evidence = {**extra, "alpha": cfg.alpha, "alpha_this_family": alpha, "tests": k, "correction": "Bonferroni (p x tests)",
                "min_psi": cfg.min_psi,
                "drifted": drifted, "psi_max": max((r["psi"] for r in results.values()), default=0.0),
                "features" if check == "drift.inputs" else "outputs": results}
    verdict = "alert" if drifted else "ok"
    severity = worst_severity(results[n]["severity"] for n in drifted) if drifted else "info"
    return _finding(view, check, "bonferroni_p_min", p_min, alpha, verdict, severity, window, evidence)


def check_drift(view: DeploymentData, cfg: MonitorConfig, ref_view: DeploymentData | None = None
                ) -> tuple[list[Finding], str | None]:
    """Drift of outputs and of the inputs the role sees, reference against current window (``docs/monitors.md``)."""
    if not view.sees_outputs and not view.sees_inputs:
        return [], f"role {view.role} sees neither outputs nor inputs of this {view.visibility} deployment"
    rv, ref_rows, cur_rows, how = _windows(view, ref_view, cfg)
    window = {"reference": span(rv, ref_rows) | {"rule": how}, "current": span(view, cur_rows)}
    if len(ref_rows) < cfg.min_size or len(cur_rows) < cfg.min_size:
        ev = {"reason": f"reference has {len(ref_rows)} and current {len(cur_rows)} decisions; each needs {cfg.min_size}"}
        out = []
        for check, sees in (("drift.outputs", view.sees_outputs), ("drift.inputs", view.sees_inputs)):
            if sees:
                out.append(_finding(view, check, "bonferroni_p_min", None, cfg.alpha, "insufficient-data", "info", window, ev))
        return out, None
    out: list[Finding] = []
    families = int(view.sees_outputs and rv.sees_outputs) + int(view.sees_inputs and rv.sees_inputs)
    alpha = cfg.alpha / max(families, 1)  # outputs and inputs share the monitor's alpha (Bonferroni)
    if view.sees_outputs and rv.sees_outputs:
        results: dict[str, dict] = {}
        rs, cs = rv.score[ref_rows], view.score[cur_rows]
        if np.isfinite(rs).any() and np.isfinite(cs).any():
            results["score"] = compare_feature(rs, cs, "numeric", bins=cfg.psi_bins, discrete_levels=cfg.discrete_levels)
        results["label"] = compare_feature(rv.label[ref_rows], view.label[cur_rows], "categorical")
        out.append(_drift_finding(view, "drift.outputs", results, cfg, window, {}, alpha))
    if view.sees_inputs and rv.sees_inputs:
        ref_ok = rv.input_available[ref_rows]
        cur_ok = view.input_available[cur_rows]
        rr, cr = ref_rows[ref_ok], cur_rows[cur_ok]
        extra = {"inputs_erased": [int((~ref_ok).sum()), int((~cur_ok).sum())], "withheld": view.withheld}
        if len(rr) < cfg.min_size or len(cr) < cfg.min_size:
            out.append(_finding(view, "drift.inputs", "bonferroni_p_min", None, cfg.alpha, "insufficient-data", "info", window,
                                {**extra, "reason": "too few decisions with inputs beside the log"}))
        else:
            types = {f.name: f.type for f in view.card.features}
            columns = [c for c in view.inputs.columns if c in rv.inputs.columns]
            results = compare_frames(rv.inputs.iloc[rr][columns], view.inputs.iloc[cr][columns], types,
                                     {k: v[rr] for k, v in rv.invalid.items()}, {k: v[cr] for k, v in view.invalid.items()},
                                     bins=cfg.psi_bins, discrete_levels=cfg.discrete_levels)
            out.append(_drift_finding(view, "drift.inputs", results, cfg, window, extra, alpha))
    return out, None


MONITOR = Monitor("drift", "drift of outputs and of the inputs the role sees (KS, chi-square, PSI)",
                  lambda view, cfg, ctx: check_drift(view, cfg, ctx.reference_for(view)))
