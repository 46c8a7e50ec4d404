"""Intervals: for a proportion (Wilson), a difference and a ratio of two proportions, and an AUC.

Every function takes counts or arrays and returns plain floats; ``alpha`` is
the two-sided significance level of one interval (its coverage is 1 - alpha).
Sources: ``glasslog.stats``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

__all__ = ["z_two_sided", "wilson_interval", "newcombe_difference_interval", "rate_ratio_interval", "auc_delong",
           "auc_hanley_mcneil_se"]


def z_two_sided(alpha: float) -> float:
    """Standard normal quantile z with P(|Z| > z) = alpha (1.96 for alpha = 0.05)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    return float(_st.norm.isf(alpha / 2))


def wilson_interval(successes: float, n: int, alpha: float = 0.05, *, z: float | None = None) -> tuple[float, float]:
    """Two-sided (1 - alpha) Wilson score interval for a proportion (Wilson 1927): glasslog's one Wilson interval.

    Args:
        successes, n: the count and the trials (``successes`` may be fractional, e.g. a rating that counts half).
        alpha: 1 - coverage (0.05: the 95 % interval, z = 1.96).
        z: the normal quantile itself, instead of ``alpha``.

    Returns ``(lower, upper)`` as fractions; ``(0.0, 1.0)`` when ``n`` is 0.
    """
    if n <= 0:
        return (0.0, 1.0)
    z = z_two_sided(alpha) if z is None else z
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_difference_interval(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """(1 - alpha) interval for p1 - p2 of two independent proportions (Newcombe 1998, method 10).

    Args:
        k1, n1: successes and trials of the first sample (e.g. the claim's evaluation set).
        k2, n2: the second sample (e.g. the realised decisions with outcomes).

    Returns:
        ``(lower, upper)`` of the difference, fractions in [-1, 1].

    Raises:
        ValueError: a sample with no trials.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one trial")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, alpha)
    l2, u2 = wilson_interval(k2, n2, alpha)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def _midranks(x: np.ndarray) -> np.ndarray:
    return _st.rankdata(x, method="average")


def auc_delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """ROC AUC and its DeLong variance (DeLong et al. 1988; fast form of Sun & Xu 2014).

    Args:
        y: int or bool array (n,), 1 = positive class.
        score: float array (n,), higher = more likely positive.

    Returns:
        ``(auc, variance)``; the variance is of the AUC estimate (square of its standard error).

    Raises:
        ValueError: fewer than two positives or two negatives.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    pos, neg = score[y], score[~y]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError(f"AUC needs at least two positives and two negatives, got {m} and {n}")
    tz = _midranks(np.concatenate([pos, neg]))
    tx, ty = _midranks(pos), _midranks(neg)
    auc = float((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
    v01 = (tz[:m] - tx) / n  # structural components of the positives
    v10 = 1.0 - (tz[m:] - ty) / m  # of the negatives
    var = float(np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / n)
    return auc, var


def auc_hanley_mcneil_se(auc: float, n_pos: float, n_neg: float) -> float:
    """Standard error of an AUC measured on ``n_pos`` positives and ``n_neg`` negatives (Hanley & McNeil 1982, eq. 2)."""
    if n_pos < 1 or n_neg < 1:
        raise ValueError("need at least one positive and one negative")
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def rate_ratio_interval(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """Ratio of two independent proportions (k1/n1) / (k2/n2) with its (1 - alpha) MOVER interval.

    The method of variance estimates recovery (Zou & Donner 2008) on the log
    scale with each proportion's Wilson limits: the construction of
    Newcombe's hybrid interval for a difference (``newcombe_difference_interval``)
    applied to log p1 - log p2. Its coverage holds in small groups and far in
    the tails, where Katz's log interval (Katz et al. 1978) falls short on one
    side: at the Bonferroni level alpha = 0.0056, 35 vs 400 trials at a rate
    of 0.7 miss the true ratio on one side 1.8 % of the time with Katz's
    interval against 0.4 % with this one (40,000 draws; nominal 0.28 %).

    Returns:
        ``(ratio, lower, upper)``: ``(nan, 0, inf)`` when a sample has no trials or both
        counts are 0; ratio ``inf`` (lower ``l1 / u2``) when only k2 is 0; ratio 0 (upper
        ``u1 / l2``) when only k1 is 0.
    """
    if n1 <= 0 or n2 <= 0 or k1 == 0 and k2 == 0:
        return (float("nan"), 0.0, float("inf"))
    l1, u1 = wilson_interval(k1, n1, alpha)
    l2, u2 = wilson_interval(k2, n2, alpha)
    if k2 == 0:
        return (float("inf"), l1 / u2, float("inf"))
    p1, p2 = k1 / n1, k2 / n2
    if k1 == 0:
        return (0.0, 0.0, u1 / l2)
    d = math.log(p1) - math.log(p2)
    lo = d - math.sqrt((math.log(p1) - math.log(l1)) ** 2 + (math.log(u2) - math.log(p2)) ** 2)
    hi = d + math.sqrt((math.log(u1) - math.log(p1)) ** 2 + (math.log(p2) - math.log(l2)) ** 2)
    return p1 / p2, math.exp(lo), math.exp(hi)
