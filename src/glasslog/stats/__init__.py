"""glasslog.stats: the statistics monitors, audits and the scenario lab share, one home for each.

- ``intervals``: Wilson (the one Wilson interval), Newcombe's difference, the MOVER ratio, DeLong and Hanley-McNeil AUC.
- ``testing``: Spiegelhalter's calibration test, Kolmogorov-Smirnov, chi-square homogeneity, Cochran-Armitage, Fisher.
- ``shift``: population stability index, Jensen-Shannon distance, categorical comparisons.
- ``groups``: the one rule for comparing groups' rates (reference group, family, four-fifths band), with its measured
  false-alarm rate under the null.

It sits beside ``glasslog.audit`` and ``glasslog.oversight`` rather than in either, because both use it and
neither imports the other. Everything works on numpy arrays and returns plain floats, so the monitors stay
vectorised over a million decisions. Probabilities and rates are fractions in [0, 1]; ``alpha`` is the
significance level of one test or interval (callers divide a family-wise alpha among their tests, Bonferroni).

Sources:

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
- Zou, G. Y., Donner, A. (2008). Construction of confidence limits about
  effect measures: a general approach. Stat. Med. 27(10), 1693-1702
  (MOVER: here the interval of a ratio of two proportions, on the log scale
  with Wilson limits). Katz, D., Baptista, J., Azen, S. P., Pike, M. C.
  (1978), Biometrics 34, 469-474, whose log interval it replaced.
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

from .groups import FOUR_FIFTHS, compare_groups, judge_ratio, reference_group
from .intervals import (
    auc_delong,
    auc_hanley_mcneil_se,
    newcombe_difference_interval,
    rate_ratio_interval,
    wilson_interval,
    z_two_sided,
)
from .shift import (
    PSI_EPSILON,
    PSI_MAJOR,
    PSI_MODERATE,
    CategoricalComparison,
    compare_categorical,
    js_distance,
    psi,
    quantile_edges,
)
from .testing import chi_square_homogeneity, cochran_armitage_trend, ks_test, spiegelhalter_z, unseen_share_test

__all__ = [
    "FOUR_FIFTHS",
    "compare_groups",
    "judge_ratio",
    "reference_group",
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
