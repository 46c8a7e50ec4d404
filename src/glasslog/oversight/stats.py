"""Statistics behind the monitors: intervals, two-sample tests, drift measures, trend tests.

Everything here works on numpy arrays and returns plain floats, so the
monitors stay vectorised over a million decisions. Each function names its
source. Probabilities and rates are fractions in [0, 1]; ``alpha`` is the
significance level of one test (the monitors divide their family-wise alpha
among their tests, Bonferroni).

Sources:

- Wilson, E. B. (1927). Probable inference, the law of succession, and
  statistical inference. JASA 22(158), 209-212. (score interval for a proportion)
- Newcombe, R. G. (1998). Interval estimation for the difference between
  independent proportions: comparison of eleven methods. Stat. Med. 17,
  873-890, method 10 (hybrid score interval).
- DeLong, E. R., DeLong, D. M., Clarke-Pearson, D. L. (1988). Comparing the
  areas under two or more correlated ROC curves: a nonparametric approach.
  Biometrics 44, 837-845; computed in O(n log n) as in Sun, X., Xu, W. (2014),
  Fast implementation of DeLong's algorithm, IEEE Signal Proc. Letters 21(11).
- Hanley, J. A., McNeil, B. J. (1982). The meaning and use of the area under a
  ROC curve. Radiology 143, 29-36 (standard error of a claimed AUC).
- Spiegelhalter, D. J. (1986). Probabilistic prediction in patient management
  and clinical trials. Stat. Med. 5, 421-433 (calibration z test).
- Katz, D., Baptista, J., Azen, S. P., Pike, M. C. (1978). Obtaining confidence
  intervals for the risk ratio in cohort studies. Biometrics 34, 469-474.
- Kolmogorov-Smirnov two-sample test as in ``scipy.stats.ks_2samp``
  (asymptotic distribution, Hodges 1958), Pearson chi-square test of
  homogeneity (``scipy.stats.chi2_contingency``), cells pooled until every
  expected count is at least 5 (Cochran, W. G. (1954). Some methods for
  strengthening the common chi-square tests. Biometrics 10, 417-451).
- Population stability index: Siddiqi, N. (2006). Credit Risk Scorecards,
  Wiley, ch. 8; thresholds 0.1 (moderate) and 0.25 (major shift) are that
  industry convention; Yurdakul, B. (2018), Statistical properties of
  population stability index, Western Michigan University, for its sampling
  behaviour.
- Jensen-Shannon distance: Lin, J. (1991). Divergence measures based on the
  Shannon entropy. IEEE Trans. Inf. Theory 37(1), 145-151 (base 2, in [0, 1]).
- Cochran-Armitage test for trend in proportions: Armitage, P. (1955). Tests
  for linear trends in proportions and frequencies. Biometrics 11, 375-386.
- Fisher, R. A. (1935). The logic of inductive inference. JRSS 98, 39-82
  (exact test of a 2 x 2 table; here: values in categories unseen in the reference).
- Bonferroni correction: Dunn, O. J. (1961). Multiple comparisons among means.
  JASA 56, 52-64 (controls the family-wise error rate for any dependence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = [
    "z_two_sided",
    "wilson_interval",
    "newcombe_difference_interval",
    "auc_delong",
    "auc_hanley_mcneil_se",
    "spiegelhalter_z",
    "rate_ratio_interval",
    "ks_test",
    "chi_square_homogeneity",
    "psi",
    "js_distance",
    "quantile_edges",
    "cochran_armitage_trend",
    "unseen_share_test",
    "CategoricalComparison",
    "compare_categorical",
    "PSI_MODERATE",
    "PSI_MAJOR",
    "PSI_EPSILON",
]

PSI_MODERATE = 0.1
"""PSI at or above this is a moderate shift (Siddiqi 2006)."""
PSI_MAJOR = 0.25
"""PSI at or above this is a major shift (Siddiqi 2006)."""
PSI_EPSILON = 1e-4
"""Floor for a bin's share in PSI (an empty bin would make the logarithm infinite)."""


def z_two_sided(alpha: float) -> float:
    """Standard normal quantile z with P(|Z| > z) = alpha (1.96 for alpha = 0.05)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    return float(_st.norm.isf(alpha / 2))


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided (1 - alpha) Wilson score interval for a proportion (Wilson 1927).

    Returns ``(lower, upper)`` as fractions; ``(0.0, 1.0)`` when ``n`` is 0.
    """
    if n <= 0:
        return (0.0, 1.0)
    z = z_two_sided(alpha)
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


def rate_ratio_interval(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """Ratio of two proportions (k1/n1) / (k2/n2) with Katz's log interval (Katz et al. 1978).

    A zero count gets 0.5 added to each count of that pair (Haldane's correction)
    so that the interval stays finite.

    Returns:
        ``(ratio, lower, upper)``; ratio is NaN when k2 or n1, n2 is 0.
    """
    if n1 <= 0 or n2 <= 0 or k2 == 0 and k1 == 0:
        return (float("nan"), 0.0, float("inf"))
    ratio = (k1 / n1) / (k2 / n2) if k2 > 0 else float("inf")
    a, b = float(k1), float(k2)
    m1, m2 = float(n1), float(n2)
    if a == 0 or b == 0 or a == m1 or b == m2:
        a, b, m1, m2 = a + 0.5, b + 0.5, m1 + 1.0, m2 + 1.0
    log_ratio = math.log((a / m1) / (b / m2))
    se = math.sqrt(max(1 / a - 1 / m1 + 1 / b - 1 / m2, 0.0))
    z = z_two_sided(alpha)
    return ratio, math.exp(log_ratio - z * se), math.exp(log_ratio + z * se)


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


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index sum((c - r) * ln(c / r)) over bins (Siddiqi 2006).

    Shares are floored at ``epsilon`` so that a bin empty in one sample gives a
    large but finite contribution.
    """
    r = np.asarray(ref_counts, dtype=float)
    c = np.asarray(cur_counts, dtype=float)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    r = np.maximum(r / r.sum(), epsilon)
    c = np.maximum(c / c.sum(), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2, in [0, 1]) between two histograms (Lin 1991)."""
    r = np.asarray(ref_counts, dtype=float)
    c = np.asarray(cur_counts, dtype=float)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    r, c = r / r.sum(), c / c.sum()
    m = (r + c) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max((kl(r) + kl(c)) / 2, 0.0))


def quantile_edges(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (deciles by default), duplicates removed.

    ``np.searchsorted(edges, x, side="right")`` then gives each value's bin.
    """
    if len(values) == 0:
        return np.array([], dtype=float)
    qs = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


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


@dataclass(frozen=True)
class CategoricalComparison:
    """A reference and a current sample of one categorical variable, compared.

    Attributes:
        categories: category labels (str), reference categories first, then
            ``(missing)``, ``(invalid)`` and those unseen in the reference.
        ref_counts, cur_counts: int arrays (k,) of counts per category.
        unseen: how many current values fall in categories absent from the reference.
        unseen_categories: how many such categories.
        chi2, p_value, dof: the chi-square homogeneity test (pooled cells).
        p_unseen: ``unseen_share_test`` of the values in unseen categories (1.0 if none).
        psi: population stability index over the categories.
        js: Jensen-Shannon distance.
    """

    categories: list[str]
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    unseen: int
    unseen_categories: int
    chi2: float
    p_value: float
    dof: int
    psi: float
    js: float
    p_unseen: float = 1.0


def compare_categorical(ref_codes: np.ndarray, cur_codes: np.ndarray, labels: list[str], n_reference_categories: int
                        ) -> CategoricalComparison:
    """Compare two samples coded as integers into ``labels``.

    Args:
        ref_codes, cur_codes: int arrays of category codes (0 .. len(labels) - 1).
        labels: category labels; codes ``>= n_reference_categories`` are
            categories that do not occur in the reference.
    """
    k = len(labels)
    ref = np.bincount(ref_codes, minlength=k)[:k]
    cur = np.bincount(cur_codes, minlength=k)[:k]
    unseen_mask = (ref == 0) & (cur > 0)
    chi2, p, dof = chi_square_homogeneity(ref, cur)
    unseen = int(cur[unseen_mask].sum())
    return CategoricalComparison(labels, ref, cur, unseen, int(unseen_mask.sum()), chi2, p, dof, psi(ref, cur),
                                 js_distance(ref, cur), unseen_share_test(unseen, int(ref.sum()), int(cur.sum())))
