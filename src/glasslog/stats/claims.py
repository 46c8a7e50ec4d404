"""Claimed against realised: the one computation by which monitors, audits and the scenario lab hold a model card's
claimed metric against the value realised on the log.

A claim is itself an estimate: measured on the card's evaluation set
(``claimed.evaluation_size`` rows), it has sampling error of its own. So the
comparison is an interval for claim - realised that counts both:

- a proportion (accuracy, positive rate): Newcombe's (1998) hybrid score
  interval for the difference of two independent proportions (Wilson limits
  of each); without an evaluation size, the claim is taken as exact and the
  interval is claim minus the realised value's Wilson interval;
- ROC AUC: DeLong's variance of the realised AUC plus Hanley & McNeil's
  (1982) variance of the claim (its evaluation set's class balance taken as
  the realised one), normal interval;
- any other metric: claim minus the realised value's interval (a bootstrap
  interval from the caller), the claim taken as exact.

Verdict (``judge_claim``), from the (1 - alpha) interval [lo, hi] of claim - realised:

- lo > 0, realised below the claim (over-claimed): ``alert``, severity by the
  shortfall claim - realised: at least 0.10 ``high``, at least 0.05
  ``medium``, else ``low``;
- hi < 0, realised above the claim: for a metric that should match its
  claim either way (the positive rate: the share of decisions predicted
  positive), ``alert`` with severity by the gap as above; for a
  higher-is-better metric (under-claimed) ``alert`` with severity ``low``;
- otherwise ``ok``: the claim is consistent with the realised value.

The claims consistent with the realised value (``consistent_range``) are the
claims this interval would not reject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .intervals import (
    auc_delong,
    auc_hanley_mcneil_se,
    newcombe_difference_interval,
    wilson_interval,
    z_two_sided,
)

__all__ = ["ClaimComparison", "judge_claim", "proportion_claim", "auc_claim", "interval_claim"]


@dataclass(frozen=True)
class ClaimComparison:
    """A claimed metric against its realised value.

    Attributes:
        metric: e.g. ``accuracy``.
        claimed, realised: fractions.
        n: what the realised value was measured on (decisions with outcomes; decisions for the positive rate).
        realised_ci: (1 - alpha) interval of the realised value.
        difference_ci: (1 - alpha) interval of claim - realised.
        consistent_range: claims this interval would not reject.
        method: how ``difference_ci`` was computed.
        verdict, severity: from ``judge_claim``.
        direction: ``over-claimed`` (realised below the claim), ``under-claimed`` (above), or None.
        alpha: 1 - the intervals' coverage.
    """

    metric: str
    claimed: float
    realised: float
    n: int
    realised_ci: tuple[float, float]
    difference_ci: tuple[float, float]
    consistent_range: tuple[float, float]
    method: str
    verdict: str
    severity: str
    direction: str | None
    alpha: float

    @property
    def over_claimed(self) -> bool:
        return self.direction == "over-claimed"


def _graded(gap: float) -> str:
    return "high" if gap >= 0.10 else "medium" if gap >= 0.05 else "low"


def judge_claim(claimed: float, realised: float, lo: float, hi: float, *, two_sided: bool = False
                ) -> tuple[str, str, str | None]:
    """Verdict, severity and direction from the interval [lo, hi] of claim - realised (module docstring)."""
    if lo > 0:
        return "alert", _graded(claimed - realised), "over-claimed"
    if hi < 0:
        return "alert", _graded(realised - claimed) if two_sided else "low", "under-claimed"
    return "ok", "info", None


def _comparison(metric: str, claimed: float, realised: float, n: int, realised_ci: tuple[float, float],
                lo: float, hi: float, method: str, alpha: float, two_sided: bool) -> ClaimComparison:
    d = claimed - realised
    verdict, severity, direction = judge_claim(claimed, realised, lo, hi, two_sided=two_sided)
    return ClaimComparison(metric, claimed, realised, n, realised_ci, (lo, hi), (realised - (hi - d), realised + (d - lo)),
                           method, verdict, severity, direction, alpha)


def proportion_claim(claimed: float, successes: int, n: int, *, evaluation_size: int | None = None,
                     alpha: float = 0.05, metric: str = "accuracy", two_sided: bool = False) -> ClaimComparison:
    """A claimed proportion (accuracy, positive rate) against ``successes`` of ``n``.

    Args:
        claimed: the card's claim (fraction).
        successes, n: the realised count (e.g. correct decisions) and what it is out of (n >= 1).
        evaluation_size: rows the claim was measured on (None: the claim is taken as exact).
        alpha: 1 - coverage of the intervals.
        metric: its name, for the result.
        two_sided: a realised value above the claim is as wrong as one below (the positive rate).
    """
    realised = successes / n
    lo_r, hi_r = wilson_interval(successes, n, alpha)
    if evaluation_size:
        k1 = int(round(claimed * evaluation_size))
        lo, hi = newcombe_difference_interval(k1, evaluation_size, successes, n, alpha)
        method = (f"Newcombe (1998) hybrid score interval for claimed minus realised {metric} at {1 - alpha:.3g} "
                  f"(the claim's evaluation set of {evaluation_size} and the realised {n})")
    else:
        lo, hi = claimed - hi_r, claimed - lo_r
        method = f"Wilson interval of the realised {metric} at {1 - alpha:.3g} (no evaluation size: claim taken as exact)"
    return _comparison(metric, claimed, realised, n, (lo_r, hi_r), lo, hi, method, alpha, two_sided)


def auc_claim(claimed: float, y: np.ndarray, score: np.ndarray, *, evaluation_size: int | None = None,
              alpha: float = 0.05) -> ClaimComparison:
    """A claimed ROC AUC against the AUC of ``score`` for outcomes ``y`` (1 = positive).

    Raises:
        ValueError: fewer than two positives or two negatives (``auc_delong``).
    """
    y = np.asarray(y).astype(bool)
    auc, var = auc_delong(y, score)
    z = z_two_sided(alpha)
    n_pos = int(y.sum())
    prevalence = n_pos / len(y)
    var_claim = 0.0
    if evaluation_size:
        var_claim = auc_hanley_mcneil_se(claimed, max(evaluation_size * prevalence, 1.0),
                                         max(evaluation_size * (1 - prevalence), 1.0)) ** 2
    se = math.sqrt(var + var_claim)
    d = claimed - auc
    realised_ci = (max(0.0, auc - z * math.sqrt(var)), min(1.0, auc + z * math.sqrt(var)))
    method = ("DeLong (1988) variance of the realised AUC plus Hanley-McNeil (1982) variance of the claim "
              "(its evaluation set assumed to have the realised prevalence)")
    return _comparison("roc_auc", claimed, auc, len(y), realised_ci, d - z * se, d + z * se, method, alpha, False)


def interval_claim(metric: str, claimed: float, realised: float, realised_ci: tuple[float, float], n: int, method: str,
                   *, alpha: float = 0.05, two_sided: bool = False) -> ClaimComparison:
    """A claim against a realised value whose interval the caller computed (e.g. a bootstrap); the claim is exact."""
    lo_r, hi_r = realised_ci
    return _comparison(metric, claimed, realised, n, (lo_r, hi_r), claimed - hi_r, claimed - lo_r, method, alpha, two_sided)
