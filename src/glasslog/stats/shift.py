"""Distribution shift measures: the population stability index, the Jensen-Shannon distance, reference-quantile bins,
and a categorical reference/current comparison that holds them with the chi-square and unseen-category tests.
Sources: ``glasslog.stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .testing import chi_square_homogeneity, unseen_share_test

__all__ = ["psi", "js_distance", "quantile_edges", "CategoricalComparison", "compare_categorical", "PSI_MODERATE",
           "PSI_MAJOR", "PSI_EPSILON"]

PSI_MODERATE = 0.1
"""PSI at or above this is a moderate shift (Siddiqi 2006)."""
PSI_MAJOR = 0.25
"""PSI at or above this is a major shift (Siddiqi 2006)."""
PSI_EPSILON = 1e-4
"""Floor for a bin's share in PSI (an empty bin would make the logarithm infinite)."""

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
