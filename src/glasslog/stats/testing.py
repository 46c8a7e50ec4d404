"""Tests: calibration (Spiegelhalter), two samples (Kolmogorov-Smirnov, chi-square), trend (Cochran-Armitage) and
values in categories a reference never saw (Fisher). Sources: ``glasslog.stats``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

__all__ = ["spiegelhalter_z", "ks_test", "chi_square_homogeneity", "cochran_armitage_trend", "unseen_share_test"]


def spiegelhalter_z(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Spiegelhalter's (1986) z test that predicted probabilities are calibrated.

    Args:
        y: 0/1 array (n,) of outcomes.
        p: float array (n,) of predicted probabilities of outcome 1.

    Returns:
        ``(z, two-sided p-value)``; ``(0.0, 1.0)`` when every prediction is 0, 0.5 or 1 (no information).
    """
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    w = 1 - 2 * p
    var = float(np.sum(w * w * p * (1 - p)))
    if var <= 0:
        return 0.0, 1.0
    z = float(np.sum((y - p) * w) / math.sqrt(var))
    return z, float(2 * _st.norm.sf(abs(z)))


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test on finite values (``scipy.stats.ks_2samp``).

    The exact distribution is used while both samples are small (scipy's
    ``auto``: up to 10,000 values), the asymptotic one beyond (Hodges 1958).
    With ties (integer-valued features) the test is conservative.

    Args:
        reference, current: float arrays; NaN must be removed by the caller.

    Returns:
        ``(D statistic, p-value)``.
    """
    method = "auto" if max(len(reference), len(current)) <= 10_000 else "asymp"
    res = _st.ks_2samp(reference, current, method=method)
    return float(res.statistic), float(res.pvalue)


def chi_square_homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray, min_expected: float = 5.0
                           ) -> tuple[float, float, int]:
    """Pearson chi-square test that two samples share one categorical distribution.

    Categories whose expected count would be under ``min_expected`` in either
    sample are pooled into one cell (rarest first, Cochran 1954), so the
    chi-square approximation holds; a category seen only in the current
    sample (reference count 0) still moves probability into its pooled cell.

    Args:
        ref_counts, cur_counts: int arrays (k,) of counts per category, same order.

    Returns:
        ``(statistic, p-value, degrees of freedom)``; ``(0.0, 1.0, 0)`` when
        fewer than two cells remain after pooling.
    """
    ref = np.asarray(ref_counts, dtype=float)
    cur = np.asarray(cur_counts, dtype=float)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref <= 0 or n_cur <= 0:
        return 0.0, 1.0, 0
    total = ref + cur
    smaller = min(n_ref, n_cur) / (n_ref + n_cur)
    order = np.argsort(total, kind="stable")  # rarest first
    pool: list[int] = []
    for i in order:
        pooled = total[pool].sum() if pool else 0.0
        if total[i] * smaller >= min_expected and (not pool or pooled * smaller >= min_expected):
            break
        pool.append(int(i))
    if pool and total[pool].sum() * smaller < min_expected and len(pool) < len(order):
        pool.append(int(order[len(pool)]))  # the pool is still too thin: add the next rarest category
    keep = np.ones(len(total), dtype=bool)
    keep[pool] = False
    table_ref = list(ref[keep])
    table_cur = list(cur[keep])
    if pool:
        table_ref.append(ref[pool].sum())
        table_cur.append(cur[pool].sum())
    table = np.array([table_ref, table_cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0, 0
    stat, p, dof, _ = _st.chi2_contingency(table, correction=False)
    return float(stat), float(p), int(dof)


def cochran_armitage_trend(successes: np.ndarray, totals: np.ndarray, scores: np.ndarray | None = None) -> tuple[float, float]:
    """Cochran-Armitage test for a linear trend in proportions across ordered groups (Armitage 1955).

    Args:
        successes, totals: int arrays (k,) per ordered group (e.g. correct
            decisions and decisions with outcomes per period).
        scores: the groups' scores (default 0, 1, ..., k-1).

    Returns:
        ``(z, one-sided p-value for a decreasing trend)``: z < 0 when the
        proportion falls along the scores; ``(0.0, 1.0)`` without variation.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(totals, dtype=float)
    s = np.arange(len(n), dtype=float) if scores is None else np.asarray(scores, dtype=float)
    big_n = n.sum()
    if big_n <= 0:
        return 0.0, 1.0
    p = k.sum() / big_n
    t = float(np.sum(s * (k - n * p)))
    var = p * (1 - p) * (np.sum(n * s * s) - np.sum(n * s) ** 2 / big_n)
    if var <= 0:
        return 0.0, 1.0
    z = t / math.sqrt(var)
    return z, float(_st.norm.cdf(z))


def unseen_share_test(unseen: int, n_ref: int, n_cur: int) -> float:
    """One-sided exact p-value that ``unseen`` current values all fell in categories absent from the reference.

    Given the ``unseen`` values of those categories among all ``n_ref + n_cur``,
    under the null (one distribution) every arrangement is equally likely, so
    the chance that none is in the reference is C(n_cur, u) / C(n_ref + n_cur, u)
    (Fisher's exact test of the 2 x 2 table unseen / seen by reference / current,
    Fisher 1935, one-sided). 1.0 when nothing is unseen.
    """
    if unseen <= 0:
        return 1.0
    total = n_ref + n_cur
    log_p = float(np.sum(np.log(np.arange(n_cur - unseen + 1, n_cur + 1, dtype=float))
                         - np.log(np.arange(total - unseen + 1, total + 1, dtype=float))))
    return math.exp(log_p)
