"""Group comparisons: the one rule by which monitors and audits compare the rates of groups (``docs/monitors.md``).

The rule, for one attribute (e.g. age group) and the metrics checked on it
(selection rate, false positive rate, false negative rate, ...):

1. **Reference group**: the largest group (most rows; ties broken by name),
   or the one the caller names, fixed from group sizes alone before any
   rate is looked at (``reference_group``). Comparing the best- or
   worst-treated group, picked after looking, compares the extremes of the
   groups' noise and alerts on pure noise far more often than its nominal
   level (measured below).
2. **Comparisons**: each other group with enough rows against the
   reference, ratio = group's rate / reference's rate.
3. **Family**: every (group, metric) comparison of the attribute,
   K = (groups - 1) x metrics, counted from group sizes. Each ratio's
   interval is taken at level 1 - alpha / K (Bonferroni), so the chance of
   any false alarm for the attribute is at most alpha whatever the
   dependence between the comparisons (``family_alpha``).
4. **Verdict** (``judge_ratio``): ``alert`` when the ratio lies outside the
   four-fifths band [0.8, 1.25] (US EEOC Uniform Guidelines, 29 CFR
   1607.4(D): a rate under four fifths of another group's is evidence of
   adverse impact; 1.25 = 1 / 0.8 is the same tolerance the other way, as
   for error rates in Aequitas, Saleiro et al. 2018) and its adjusted
   interval excludes 1; outside the band but not significant is
   ``insufficient-data`` with severity ``low`` (1607.4(D): such differences
   "may not constitute adverse impact where the differences are based on
   small numbers and are not statistically significant"); otherwise ``ok``.
   Severity of an alert: ``high`` when the whole adjusted interval lies
   outside the band and the ratio outside [0.6, 1 / 0.6]; ``medium`` when
   the whole adjusted interval lies outside the band; ``low`` otherwise.
5. **Reported comparison** (``reported``): an alerting one before others,
   then the most severe, then the most extreme (largest |log ratio|); the
   evidence holds every comparison.

The interval: from the counts, the MOVER interval of a ratio of two
proportions (``glasslog.stats.rate_ratio_interval``: Wilson limits on the
log scale; ``compare_groups``, used by the monitors), or a percentile
bootstrap (the group audit, which resamples the confusion matrix for its
per-group intervals anyway); the rule above is the same for both.

Measured false-alarm rate under the null (no group differs; alpha = 0.05):
the share of simulated attributes with any alert, selection rate, false
positive and false negative rates checked (K = (groups - 1) x 3), outcome
rate 0.3, predictions right 70 % of the time whatever the group, minimum
group 30 rows; 4,000 attributes per setting (seed 11; ``tests/test_stats.py``
re-measures three of them with 1,000 attributes and a fixed seed):

======================================  ==========  ===================
groups (expected shares)                 rows        any alert (s.e.)
======================================  ==========  ===================
4 (40/30/20/10 %)                        200         0.023 (0.002)
4 (40/30/20/10 %)                        1,000       0.044 (0.003)
4 (40/30/20/10 %)                        100,000     0.000 (500 runs)
2 (50/50 %)                              1,000       0.037 (0.003)
4 equal                                  1,000       0.038 (0.003)
8 equal                                  1,000       0.037 (0.003)
4 (70/10/10/10 %)                        600         0.027 (0.003)
4 (85/5/5/5 %)                           1,000       0.026 (0.003)
======================================  ==========  ===================

At most alpha in every setting measured. The rule the disparity monitor
used before (the best-treated group as the reference, chosen after looking;
Bonferroni over its groups - 1 comparisons per metric only; one-sided, ratio
below 0.8 with its Katz interval below 1), on the same attributes (same
seed): 0.079, 0.139, 0.000, 0.099, 0.141, 0.200, 0.113, 0.116 in the rows
above: up to four times alpha. The band makes the test conservative where groups are
large (a ratio must also be 20 % off); its level is bounded by alpha through
the Bonferroni intervals. The group audit's bootstrap path is measured in
``tests/test_audit.py`` (2 of 40 seeds with any alert among K = 12
comparisons; 20 of 400).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .intervals import rate_ratio_interval

__all__ = ["FOUR_FIFTHS", "RULE", "GroupComparison", "AttributeComparison", "reference_group", "family_alpha",
           "judge_ratio", "reported", "compare_to_reference", "compare_groups"]

FOUR_FIFTHS = 0.8
"""The four-fifths rule's ratio (29 CFR 1607.4(D)); the band is [0.8, 1 / 0.8]."""

_HIGH = 0.6
"""A ratio beyond [0.6, 1 / 0.6] with its whole interval outside the band is ``high``."""

RULE = ("reference group fixed by size (the largest) before any rate is looked at; each other group's rate / the "
        "reference's, interval Bonferroni-adjusted over (groups - 1) x metrics; alert when the ratio is outside the "
        "four-fifths band 0.8-1.25 (29 CFR 1607.4(D)) and the interval excludes 1")
"""The rule in one sentence, for evidence and reports."""

_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True)
class GroupComparison:
    """One group's rate against the reference group's.

    Attributes:
        group: the group's name.
        ratio: group's rate / reference's rate (None when it is not finite: a zero reference rate).
        lo, hi: the ratio's family-adjusted interval (None where infinite).
        verdict, severity: from ``judge_ratio``.
    """

    group: str
    ratio: float | None
    lo: float | None
    hi: float | None
    verdict: str
    severity: str


def reference_group(sizes: Mapping[str, int], given: str | None = None) -> str:
    """The reference group: ``given``, else the largest group (most rows), ties broken by the later name.

    Args:
        sizes: group -> rows (counts only: no rate may decide the reference).
        given: a group the caller fixed in advance.

    Raises:
        KeyError: ``given`` is not one of the groups, or there are no groups.
    """
    if given is not None:
        if given not in sizes:
            raise KeyError(given)
        return given
    if not sizes:
        raise KeyError("no groups")
    return max(sizes, key=lambda g: (sizes[g], g))


def family_alpha(alpha: float, comparisons: int) -> float:
    """Bonferroni: the level of each of ``comparisons`` intervals for a family-wise false-alarm rate of ``alpha``."""
    return alpha / max(comparisons, 1)


def judge_ratio(ratio: float | None, lo: float | None, hi: float | None, threshold: float = FOUR_FIFTHS
                ) -> tuple[str, str]:
    """Verdict and severity of one comparison (rule 4 of the module docstring).

    Args:
        ratio: group / reference; lo, hi: its family-adjusted interval (None = unbounded).
        threshold: the lower end of the band (0.8); the upper end is its inverse.
    """
    if ratio is None or not math.isfinite(ratio):
        return "insufficient-data", "info"
    low, high = threshold, 1 / threshold
    outside = ratio < low or ratio > high
    if not outside:
        return "ok", "info"
    lo = 0.0 if lo is None or not math.isfinite(lo) else lo
    hi = math.inf if hi is None or not math.isfinite(hi) else hi
    if not (hi < 1 or lo > 1):
        return "insufficient-data", "low"
    wholly_outside = hi < low or lo > high
    if wholly_outside and (ratio < _HIGH or ratio > 1 / _HIGH):
        return "alert", "high"
    return "alert", "medium" if wholly_outside else "low"


def reported(comparisons: Mapping[str, GroupComparison]) -> str | None:
    """The comparison a finding reports: alerts first, then the most severe, then the most extreme ratio (None without
    a finite ratio)."""
    measured = [c for c in comparisons.values() if c.ratio is not None]
    if not measured:
        return None
    best = max(measured, key=lambda c: (c.verdict == "alert", _RANK[c.severity], abs(math.log(max(c.ratio, 1e-12)))))
    return best.group


def compare_to_reference(hits: Mapping[str, int], totals: Mapping[str, int], reference: str, alpha: float,
                         threshold: float = FOUR_FIFTHS) -> dict[str, GroupComparison]:
    """Each other group's rate against the reference's, with the MOVER interval of the ratio, judged by the rule.

    Args:
        hits, totals: group -> events and trials of the metric (e.g. favourable decisions and decisions).
        reference: the reference group (``reference_group``).
        alpha: the level of each interval, already divided by the family (``family_alpha``).
        threshold: the band's lower end.

    Returns:
        group -> ``GroupComparison`` for every group but the reference, in the order of ``totals``.
    """
    out = {}
    for g in totals:
        if g == reference:
            continue
        r, lo, hi = rate_ratio_interval(hits[g], totals[g], hits[reference], totals[reference], alpha)
        ratio = r if math.isfinite(r) else None
        lo_v = lo if math.isfinite(lo) else None
        hi_v = hi if math.isfinite(hi) else None
        verdict, severity = judge_ratio(ratio, lo_v, hi_v, threshold)
        out[g] = GroupComparison(g, ratio, lo_v, hi_v, verdict, severity)
    return out


@dataclass(frozen=True)
class AttributeComparison:
    """``compare_groups``'s result for one attribute.

    Attributes:
        reference: the reference group (None when fewer than two groups are large enough).
        eligible: groups with at least ``min_size`` rows, in the order given.
        family: K, the comparisons in the attribute's family: (eligible groups - 1) x metrics.
        alpha_each: each interval's level, alpha / K.
        metrics: metric -> group -> ``GroupComparison`` for every metric whose reference and at least one
            other group have ``min_size`` trials; metrics left out had too few.
    """

    reference: str | None
    eligible: list[str]
    family: int
    alpha_each: float
    metrics: dict[str, dict[str, GroupComparison]]


def compare_groups(sizes: Mapping[str, int], counts: Mapping[str, tuple[Mapping[str, int], Mapping[str, int]]], *,
                   alpha: float = 0.05, min_size: int = 30, reference: str | None = None,
                   threshold: float = FOUR_FIFTHS) -> AttributeComparison:
    """The whole rule (module docstring) for one attribute, with the MOVER ratio interval (``compare_to_reference``).

    Args:
        sizes: group -> rows; groups with fewer than ``min_size`` are left out, and the reference is chosen from
            these counts alone.
        counts: metric -> (hits, trials), each group -> count (e.g. ``{"false_positive_rate": (false positives,
            negatives)}``); a group needs ``min_size`` trials of a metric to be compared on it.
        alpha: family-wise false-alarm rate of the attribute.
        reference: a reference group fixed in advance (default: the largest).
    """
    eligible = [g for g in sizes if sizes[g] >= min_size]
    if len(eligible) < 2 or (reference is not None and reference not in eligible):
        return AttributeComparison(None, eligible, 0, alpha, {})
    ref = reference_group({g: sizes[g] for g in eligible}, reference)
    family = (len(eligible) - 1) * len(counts)
    a = family_alpha(alpha, family)
    out: dict[str, dict[str, GroupComparison]] = {}
    for metric, (hits, trials) in counts.items():
        usable = [g for g in eligible if trials[g] >= min_size]
        if ref not in usable or len(usable) < 2:
            continue
        out[metric] = compare_to_reference({g: hits[g] for g in usable}, {g: trials[g] for g in usable}, ref, a, threshold)
    return AttributeComparison(ref, eligible, family, a, out)
