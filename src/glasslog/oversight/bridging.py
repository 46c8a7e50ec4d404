"""Bridging-based ranking of flags: the matrix-factorisation model of Community Notes.

A flag is worth acting on when people who usually disagree both find it
helpful, not when one large like-minded group does. The model that captures
this is the one of the open-source Community Notes scorer (Wojcik, Hilgard,
Judd, Mocanu, Coleman, Baxter, Sapolsky, Ong 2022, "Birdwatch: Crowd Wisdom
and Bridging Algorithms can Inform Understanding and Reduce the Spread of
Misinformation", arXiv:2210.15723; code at github.com/twitter/communitynotes,
``sourcecode/scoring/matrix_factorization/matrix_factorization.py``)::

    rating(u, f) ~ mu + i_u + i_f + phi_u * phi_f

with a global mean ``mu``, a rater intercept ``i_u`` (how lenient the rater
is), a flag intercept ``i_f`` (helpfulness that no viewpoint explains), and
one-dimensional factors ``phi_u`` (where the rater sits on the main axis of
disagreement) and ``phi_f`` (which side the flag appeals to). Ratings are
mapped helpful = 1, somewhat = 0.5, not helpful = 0 (``helpfulNum`` in the
scorer). The fit minimises the scorer's loss: mean squared error over the
ratings plus ``l2_lambda * l2_intercept_multiplier * mean(p**2)`` for each
intercept parameter group (mu, rater intercepts, flag intercepts) and
``l2_lambda * mean(p**2)`` for each factor group. Intercepts are regularised
five times more than factors, so a rating pattern that one side of the axis
explains goes into the factors, and only support from both sides raises the
flag's intercept. The scorer fits with Adam in PyTorch; here the same loss is
minimised with L-BFGS (``scipy.optimize``) from a deterministic start (the
leading singular vectors of the residuals of an intercept-only fit), so the
same ratings always give the same scores.

Status, as the scorer's core rules assign it (``mf_base_scorer.py``,
``note_ratings.py``, ``scoring_rules.py``, ``mf_core_scorer.py``):

- ``confirmed`` (the scorer's CURRENTLY_RATED_HELPFUL): at least
  ``min_ratings_needed`` ratings, intercept >= ``crh_threshold``,
  ``|phi_f| <= factor_threshold`` (``FilterLargeFactor``), and at least
  ``min_minority_net_helpful`` more helpful than not-helpful ratings from the
  raters on *each* side of the factor axis (``RequireMinMinorityRaters``: the
  minimum over the two sides of helpful minus not-helpful counts), with the
  balance rule ``RequireRaterBalance`` (net minority helpful below 10 and
  below ``min_minority_net_helpful_ratio`` of all ratings keeps it unconfirmed).
- ``not-helpful`` (CURRENTLY_RATED_NOT_HELPFUL): at least ``min_ratings_needed``
  ratings and intercept <= ``crnh_threshold_intercept +
  crnh_threshold_factor_multiplier * |phi_f|`` (``is_crnh_diamond``).
- ``needs-more-ratings`` otherwise.

Data filter (``MFBaseScorer``: ``minNumRatingsPerRater``, ``minNumRatersPerNote``):
only raters with at least ``min_ratings_per_rater`` ratings and flags with at
least ``min_raters_per_flag`` of their ratings enter the model (applied until
stable). While ratings are few, flags outside the model are ranked by the
Wilson score lower bound of their helpful share (Wilson 1927, "Probable
inference, the law of succession, and statistical inference", JASA 22:209-212;
z = 1.96 for 95%) and stay ``needs-more-ratings``: one like-minded group
cannot confirm a flag through the fallback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import svds
from threadpoolctl import threadpool_limits

from ..stats import wilson_interval

__all__ = [
    "RATING_VALUES",
    "BridgingParams",
    "FlagScore",
    "ScoreBoard",
    "fit_bridging",
    "score_flags",
    "wilson_lower_bound",
    "CONFIRMED",
    "NEEDS_MORE_RATINGS",
    "NOT_HELPFUL",
]

RATING_VALUES = {"helpful": 1.0, "somewhat": 0.5, "not-helpful": 0.0}
"""Rating -> number, as the scorer's ``helpfulNum`` (HELPFUL 1, SOMEWHAT_HELPFUL 0.5, NOT_HELPFUL 0)."""

CONFIRMED, NEEDS_MORE_RATINGS, NOT_HELPFUL = "confirmed", "needs-more-ratings", "not-helpful"


@dataclass(frozen=True)
class BridgingParams:
    """Parameters of the model and of the status rules; defaults are the Community Notes scorer's.

    Sources (github.com/twitter/communitynotes, ``sourcecode/scoring/``):
    ``matrix_factorization/config.json`` (``l2_lambda`` 0.03,
    ``l2_intercept_multiplier`` 5, so intercepts 0.15, ``num_factors`` 1);
    ``mf_base_scorer.py`` ``MFBaseScorer.__init__`` (``crhThreshold`` 0.40,
    ``crnhThresholdIntercept`` -0.05, ``crnhThresholdNoteFactorMultiplier``
    -0.8, ``minRatingsNeeded`` 5, ``factorThreshold`` 0.5,
    ``minNumRatingsPerRater`` 10, ``minNumRatersPerNote`` 5);
    ``mf_core_scorer.py`` (``minMinorityNetHelpfulRatings`` 4,
    ``minMinorityNetHelpfulRatio`` 0.05).

    Attributes:
        factor_lambda: L2 weight of each factor group (mean of squares).
        intercept_lambda: L2 weight of each intercept group, global mean included.
        crh_threshold: lowest flag intercept for ``confirmed``.
        crnh_threshold_intercept: highest intercept for ``not-helpful`` at factor 0.
        crnh_threshold_factor_multiplier: how much lower it must be per unit of ``|factor|``.
        factor_threshold: largest ``|flag factor|`` for ``confirmed``.
        min_ratings_needed: ratings a flag needs for any status but ``needs-more-ratings``.
        min_minority_net_helpful: helpful minus not-helpful ratings needed from each side.
        min_minority_net_helpful_ratio: balance rule (applies while the net minority count is 4..9).
        min_ratings_per_rater: ratings a rater needs to enter the model.
        min_raters_per_flag: ratings (from model raters) a flag needs to enter the model.
        wilson_z: normal quantile of the fallback's Wilson lower bound (1.96: 95%).
    """

    factor_lambda: float = 0.03
    intercept_lambda: float = 0.15
    crh_threshold: float = 0.40
    crnh_threshold_intercept: float = -0.05
    crnh_threshold_factor_multiplier: float = -0.8
    factor_threshold: float = 0.5
    min_ratings_needed: int = 5
    min_minority_net_helpful: int = 4
    min_minority_net_helpful_ratio: float = 0.05
    min_ratings_per_rater: int = 10
    min_raters_per_flag: int = 5
    wilson_z: float = 1.96

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FlagScore:
    """How one flag is scored.

    Attributes:
        flag: the flag's id (as given to ``score_flags``).
        method: ``bridging`` (in the fitted model) or ``wilson`` (fallback).
        status: ``confirmed``, ``needs-more-ratings`` or ``not-helpful``.
        ratings: number of ratings (all raters).
        helpful, somewhat, not_helpful: counts by rating.
        wilson_lower_bound: Wilson lower bound of the helpful share (somewhat = half), in [0, 1]; None without ratings.
        intercept, factor: the flag's fitted intercept and factor (bridging only).
        net_minority_helpful: min over the two factor sides of helpful minus not-helpful ratings (bridging only).
        rank: 1-based position in the ranking.
    """

    flag: int
    method: str
    status: str
    ratings: int
    helpful: int
    somewhat: int
    not_helpful: int
    wilson_lower_bound: float | None
    intercept: float | None = None
    factor: float | None = None
    net_minority_helpful: int | None = None
    rank: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BridgingFit:
    """A fitted model.

    Attributes:
        flags, raters: ids of the flags and raters in the model, shape (N,) and (U,).
        mu: global intercept.
        flag_intercepts, flag_factors: float64 arrays of shape (N,).
        rater_intercepts, rater_factors: float64 arrays of shape (U,); factors are flipped so that
            at least half of the raters have a negative factor (the scorer's identification rule).
        loss: the final value of the regularised loss.
    """

    flags: tuple
    raters: tuple
    mu: float
    flag_intercepts: np.ndarray
    flag_factors: np.ndarray
    rater_intercepts: np.ndarray
    rater_factors: np.ndarray
    loss: float


@dataclass(frozen=True)
class ScoreBoard:
    """Scores of all flags, ranked (best first), and how they were obtained.

    Attributes:
        scores: one ``FlagScore`` per flag, in rank order.
        method: ``bridging`` if the model was fitted, else ``wilson``.
        raters_in_model, flags_in_model: sizes of the fitted model (0 if not fitted).
        params: the parameters used.
    """

    scores: tuple[FlagScore, ...]
    method: str
    raters_in_model: int
    flags_in_model: int
    params: BridgingParams

    def by_flag(self) -> dict[int, FlagScore]:
        return {s.flag: s for s in self.scores}


def wilson_lower_bound(positive: float, n: int, z: float = 1.96) -> float | None:
    """Lower bound of the Wilson score interval for a proportion ``positive / n``.

    Wilson, E. B. (1927), JASA 22:209-212 (``glasslog.stats.wilson_interval``). ``positive`` may be fractional
    (a "somewhat" rating counts one half). Returns None when ``n`` is 0.

    Raises:
        ValueError: ``positive`` outside [0, n].
    """
    if n <= 0:
        return None
    if not 0 <= positive <= n:
        raise ValueError(f"positive must be within 0..{n}, got {positive}")
    return wilson_interval(positive, n, z=z)[0]


def _loss_and_grad(theta: np.ndarray, u: np.ndarray, f: np.ndarray, y: np.ndarray, n_u: int, n_f: int,
                   lam_i: float, lam_f: float, with_factors: bool) -> tuple[float, np.ndarray]:
    mu = theta[0]
    iu = theta[1 : 1 + n_u]
    jf = theta[1 + n_u : 1 + n_u + n_f]
    pred = mu + iu[u] + jf[f]
    if with_factors:
        pu = theta[1 + n_u + n_f : 1 + 2 * n_u + n_f]
        pf = theta[1 + 2 * n_u + n_f :]
        pred = pred + pu[u] * pf[f]
    e = pred - y
    r = len(y)
    loss = float(e @ e) / r + lam_i * (mu * mu + float(iu @ iu) / n_u + float(jf @ jf) / n_f)
    g = np.empty_like(theta)
    de = 2.0 * e / r
    g[0] = de.sum() + 2 * lam_i * mu
    g[1 : 1 + n_u] = np.bincount(u, de, n_u) + 2 * lam_i * iu / n_u
    g[1 + n_u : 1 + n_u + n_f] = np.bincount(f, de, n_f) + 2 * lam_i * jf / n_f
    if with_factors:
        loss += lam_f * (float(pu @ pu) / n_u + float(pf @ pf) / n_f)
        g[1 + n_u + n_f : 1 + 2 * n_u + n_f] = np.bincount(u, de * pf[f], n_u) + 2 * lam_f * pu / n_u
        g[1 + 2 * n_u + n_f :] = np.bincount(f, de * pu[u], n_f) + 2 * lam_f * pf / n_f
    return loss, g


def fit_bridging(rater_idx: np.ndarray, flag_idx: np.ndarray, values: np.ndarray, n_raters: int, n_flags: int,
                 params: BridgingParams = BridgingParams()) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Fit ``rating ~ mu + i_u + i_f + phi_u * phi_f`` with the scorer's regularised squared loss.

    Args:
        rater_idx, flag_idx: int arrays of shape (R,), each rating's rater in 0..n_raters-1 and flag in 0..n_flags-1.
        values: float array of shape (R,), ratings as numbers in [0, 1] (``RATING_VALUES``).
        n_raters, n_flags: numbers of raters (U) and flags (N); each must have a rating.

    Returns:
        ``(mu, rater_intercepts (U,), rater_factors (U,), flag_intercepts (N,), flag_factors (N,), loss)``,
        factors flipped so that at least half of the raters with a non-zero factor have a negative one.

    Raises:
        ValueError: empty input, mismatched shapes, indexes out of range, or values outside [0, 1].
    """
    u = np.asarray(rater_idx, dtype=np.int64)
    f = np.asarray(flag_idx, dtype=np.int64)
    y = np.asarray(values, dtype=np.float64)
    if not (u.shape == f.shape == y.shape) or u.ndim != 1 or len(u) == 0:
        raise ValueError("rater_idx, flag_idx and values must be 1-D arrays of the same non-zero length")
    if u.min() < 0 or u.max() >= n_raters or f.min() < 0 or f.max() >= n_flags:
        raise ValueError("rater or flag index out of range")
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("rating values must be within [0, 1]")
    # The BLAS calls inside L-BFGS-B are on vectors of a few thousand numbers: a pool of BLAS threads only
    # contends for the cores (25-50x slower on a busy 2-core machine), so the fit runs on one.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(u, f, y, n_raters, n_flags, params)


def _fit(u: np.ndarray, f: np.ndarray, y: np.ndarray, n_raters: int, n_flags: int, params: BridgingParams):
    lam_i, lam_f = params.intercept_lambda, params.factor_lambda
    # 1. Intercepts only (convex): the start for the full model.
    theta0 = np.zeros(1 + n_raters + n_flags)
    res = optimize.minimize(_loss_and_grad, theta0, jac=True, method="L-BFGS-B",
                            args=(u, f, y, n_raters, n_flags, lam_i, lam_f, False),
                            options={"maxiter": 2000, "gtol": 1e-10, "ftol": 1e-14})
    base = res.x
    # 2. Factors start from the leading singular vectors of the residuals (deterministic).
    resid = y - (base[0] + base[1 : 1 + n_raters][u] + base[1 + n_raters :][f])
    m = coo_matrix((resid, (u, f)), shape=(n_raters, n_flags)).tocsr()
    if min(n_raters, n_flags) > 1:
        left, s, right = svds(m, k=1, v0=np.ones(min(m.shape)) / math.sqrt(min(m.shape)), solver="arpack")
        scale = math.sqrt(max(float(s[0]), 1e-6))
        pu0, pf0 = left[:, 0] * scale, right[0, :] * scale
    else:
        pu0, pf0 = np.full(n_raters, 0.1), np.full(n_flags, 0.1)
    theta = np.concatenate([base, pu0, pf0])
    res = optimize.minimize(_loss_and_grad, theta, jac=True, method="L-BFGS-B",
                            args=(u, f, y, n_raters, n_flags, lam_i, lam_f, True),
                            options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15})
    x = res.x
    mu = float(x[0])
    iu = x[1 : 1 + n_raters].copy()
    jf = x[1 + n_raters : 1 + n_raters + n_flags].copy()
    pu = x[1 + n_raters + n_flags : 1 + 2 * n_raters + n_flags].copy()
    pf = x[1 + 2 * n_raters + n_flags :].copy()
    nonzero = np.count_nonzero(pu)
    if nonzero and np.count_nonzero(pu < 0) / nonzero < 0.5:  # the scorer's _flip_factors_for_identification
        pu, pf = -pu, -pf
    return mu, iu, pu, jf, pf, float(res.fun)


def _filter(ratings: list[tuple[int, int, float]], params: BridgingParams) -> list[tuple[int, int, float]]:
    """Keep raters with enough ratings and flags with enough raters, until both hold."""
    kept = ratings
    while True:
        per_rater: dict[int, int] = {}
        for r, _, _ in kept:
            per_rater[r] = per_rater.get(r, 0) + 1
        step = [t for t in kept if per_rater[t[0]] >= params.min_ratings_per_rater]
        per_flag: dict[int, int] = {}
        for _, fl, _ in step:
            per_flag[fl] = per_flag.get(fl, 0) + 1
        step = [t for t in step if per_flag[t[1]] >= params.min_raters_per_flag]
        if len(step) == len(kept):
            return step
        kept = step


def score_flags(flags: Sequence[int], ratings: Sequence[tuple[int, object, str]],
                params: BridgingParams = BridgingParams()) -> ScoreBoard:
    """Score and rank flags from their ratings.

    Args:
        flags: ids of all flags to rank (flags without ratings included).
        ratings: ``(flag id, rater id, rating)`` with rating in ``RATING_VALUES``;
            one per rater and flag (the caller keeps each rater's latest).
        params: model and rule parameters.

    Returns:
        A ``ScoreBoard`` ranked: confirmed flags first (by intercept), then
        flags in the model that need more ratings (by intercept), then flags
        scored by the fallback (by Wilson lower bound, then number of
        ratings), then not-helpful ones (by intercept); ties by flag id.

    Raises:
        ValueError: an unknown rating value, a rating of a flag not in ``flags``,
            or two ratings by the same rater of the same flag.
    """
    flag_set = set(flags)
    counts = {fl: [0, 0, 0] for fl in flags}
    rater_ids: dict[object, int] = {}
    seen: set[tuple[int, int]] = set()
    triples: list[tuple[int, int, float]] = []
    for fl, rater, rating in ratings:
        if rating not in RATING_VALUES:
            raise ValueError(f"rating must be one of {', '.join(RATING_VALUES)}, got {rating!r}")
        if fl not in flag_set:
            raise ValueError(f"rating of unknown flag {fl}")
        r = rater_ids.setdefault(rater, len(rater_ids))
        if (r, fl) in seen:
            raise ValueError(f"rater {rater!r} rated flag {fl} twice; keep only the latest rating")
        seen.add((r, fl))
        counts[fl][("helpful", "somewhat", "not-helpful").index(rating)] += 1
        triples.append((r, fl, RATING_VALUES[rating]))

    model = _filter(triples, params)
    fitted: dict[int, tuple[float, float, int]] = {}
    raters_in_model = flags_in_model = 0
    if model and len({t[0] for t in model}) >= 2 and len({t[1] for t in model}) >= 2:
        rmap = {r: k for k, r in enumerate(sorted({t[0] for t in model}))}
        fmap = {fl: k for k, fl in enumerate(sorted({t[1] for t in model}))}
        u = np.array([rmap[t[0]] for t in model])
        f = np.array([fmap[t[1]] for t in model])
        y = np.array([t[2] for t in model])
        _, _, pu, jf, pf, _ = fit_bridging(u, f, y, len(rmap), len(fmap), params)
        raters_in_model, flags_in_model = len(rmap), len(fmap)
        # Net helpful ratings per factor side (the scorer's get_note_counts_by_rater_sign).
        net = np.zeros((len(fmap), 2), dtype=np.int64)
        side = (pu[u] >= 0).astype(np.int64)  # 0: negative factor, 1: positive
        np.add.at(net, (f, side), np.where(y == 1.0, 1, np.where(y == 0.0, -1, 0)))
        in_model = np.bincount(f, minlength=len(fmap))
        for fl, k in fmap.items():
            fitted[fl] = (float(jf[k]), float(pf[k]), int(max(0, net[k].min())), int(in_model[k]))

    scores = []
    for fl in flags:
        h, s, n = counts[fl]
        total = h + s + n
        wlb = wilson_lower_bound(h + 0.5 * s, total, params.wilson_z)
        if fl in fitted:
            intercept, factor, net_min, n_model = fitted[fl]
            status = NEEDS_MORE_RATINGS
            if n_model >= params.min_ratings_needed:
                if intercept <= params.crnh_threshold_intercept + params.crnh_threshold_factor_multiplier * abs(factor):
                    status = NOT_HELPFUL
                elif (intercept >= params.crh_threshold and abs(factor) <= params.factor_threshold
                      and net_min >= params.min_minority_net_helpful
                      and not (net_min < 10 and net_min / n_model < params.min_minority_net_helpful_ratio)):
                    status = CONFIRMED
            scores.append(FlagScore(fl, "bridging", status, total, h, s, n, wlb, intercept, factor, net_min))
        else:
            scores.append(FlagScore(fl, "wilson", NEEDS_MORE_RATINGS, total, h, s, n, wlb))

    def key(sc: FlagScore):
        if sc.status == CONFIRMED:
            return (0, -sc.intercept, 0, sc.flag)
        if sc.status == NOT_HELPFUL:
            return (3, -sc.intercept, 0, sc.flag)
        if sc.method == "bridging":
            return (1, -sc.intercept, 0, sc.flag)
        return (2, -(sc.wilson_lower_bound or 0.0), -sc.ratings, sc.flag)

    ranked = sorted(scores, key=key)
    ranked = tuple(FlagScore(**{**sc.to_dict(), "rank": k + 1}) for k, sc in enumerate(ranked))
    return ScoreBoard(ranked, "bridging" if fitted else "wilson", raters_in_model, flags_in_model, params)
