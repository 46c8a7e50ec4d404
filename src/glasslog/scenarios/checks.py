"""The statistical checks the scenario lab's actors run, as plain functions.

Each returns a ``Check``: the statistic, its value, the threshold and whether
it alerts. Where glasslog's own monitors and audits (``glasslog.oversight``,
``glasslog.audit``) provide a check, the scenario lab calls those through
``glasslog.scenarios.adapters``; the functions here are the ones it uses for
what those packages do not (yet) provide, and are documented with their source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..stats.claims import proportion_claim

__all__ = [
    "Check",
    "realised_below_claimed",
    "rate_increase",
    "proxy_outcome_divergence",
    "flip_rates",
    "shortcut_from_flip_rates",
    "QueryCounter",
]


@dataclass(frozen=True)
class Check:
    """One check's result.

    Attributes:
        check: name of the check.
        statistic: what ``value`` is (e.g. ``p-value``, ``flip rate``).
        value: the statistic (a fraction or a p-value), or None with too little data.
        threshold: the alert threshold on ``value``.
        alert: True if the check alerts.
        evidence: counts and figures behind it (JSON-ready).
    """

    check: str
    statistic: str
    value: float | None
    threshold: float
    alert: bool
    evidence: dict = field(default_factory=dict)


def realised_below_claimed(correct: int, n: int, claimed: float, alpha: float, min_n: int = 20,
                           evaluation_size: int | None = None) -> Check:
    """Realised accuracy below the claimed one, by glasslog's one claimed-vs-realised computation.

    Args:
        correct: decisions whose output matched the outcome.
        n: decisions with a known outcome.
        claimed: claimed accuracy (fraction).
        alpha: one-sided level: alerts when the (1 - 2 alpha) interval of claim - realised lies wholly above 0
            (only over-claiming is the problem here).
        min_n: fewer outcomes than this give no verdict.
        evaluation_size: rows the claim was measured on (its own sampling error counts; None: the claim is exact).

    Source: ``glasslog.stats.claims.proportion_claim`` (Newcombe 1998 hybrid score interval; the monitors and
    audits use the same).
    """
    ev = {"n": n, "correct": correct, "claimed": claimed, "evaluation_size": evaluation_size}
    if n < min_n:
        return Check("realised-vs-claimed", "realised accuracy", None, claimed, False, ev)
    c = proportion_claim(claimed, correct, n, evaluation_size=evaluation_size, alpha=2 * alpha)
    return Check("realised-vs-claimed", "realised accuracy", c.realised, claimed, c.over_claimed,
                 ev | {"realised": c.realised, "claim_minus_realised_ci": list(c.difference_ci), "alpha": alpha})


def rate_increase(base_events: int, base_n: int, now_events: int, now_n: int, alpha: float, min_n: int = 20,
                  name: str = "rate-increase") -> Check:
    """One-sided test that an event rate rose from a baseline window to the current one.

    Fisher's exact test on the 2x2 table (events / non-events in each window),
    alternative "greater" for the current window.

    Source: Fisher (1922); ``scipy.stats.fisher_exact``.
    """
    ev = {"base_events": base_events, "base_n": base_n, "events": now_events, "n": now_n}
    if base_n < min_n or now_n < min_n:
        return Check(name, "p-value", None, alpha, False, ev)
    table = [[now_events, now_n - now_events], [base_events, base_n - base_events]]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    return Check(name, "p-value", p, alpha, p < alpha, ev | {"base_rate": base_events / base_n, "rate": now_events / now_n})


def proxy_outcome_divergence(proxy: Sequence[float], base_misses: int, base_n: int, now_misses: int, now_n: int,
                             alpha: float, min_n: int = 20) -> Check:
    """Goodhart check: the reported proxy did not fall while the realised outcome got significantly worse.

    Args:
        proxy: the proxy metric per period, oldest first (e.g. a survey score); the
            first half is compared with the second.
        base_misses, base_n: bad outcomes and decisions with outcomes in the baseline window.
        now_misses, now_n: the same in the current window.

    Alerts when the mean proxy of the later half is at least that of the
    earlier half and the bad-outcome rate rose (Fisher's exact test, one-sided, p < alpha).

    Source: the divergence of a proxy from its target is Goodhart's law in
    Manheim and Garrabrant's (2018) "regressional/adversarial" variants; the test is Fisher's exact test.
    """
    rate = rate_increase(base_misses, base_n, now_misses, now_n, alpha, min_n, name="goodhart")
    if len(proxy) < 2 or rate.value is None:
        return Check("goodhart", "p-value", None, alpha, False, rate.evidence)
    half = len(proxy) // 2
    early, late = float(np.mean(proxy[:half])), float(np.mean(proxy[half:]))
    alert = rate.alert and late >= early
    return Check("goodhart", "p-value", rate.value, alpha, alert, rate.evidence | {"proxy_early": early, "proxy_late": late})


class QueryCounter:
    """A prediction function that counts the rows it is asked about (black-box queries).

    Args:
        predict_proba: the model's ``predict_proba`` (rows -> (rows, classes) float array).

    Attributes:
        queries: rows asked about so far.
    """

    def __init__(self, predict_proba: Callable[[pd.DataFrame], np.ndarray]):
        self._f = predict_proba
        self.queries = 0

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        self.queries += len(X)
        return np.asarray(self._f(X), dtype=float)


def flip_rates(predict_proba: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, rng: np.random.Generator,
               columns: Sequence[str] | None = None) -> dict[str, float]:
    """Share of rows whose predicted label flips when one column is permuted across rows.

    A black-box sensitivity measure (permutation of one feature at a time, as in
    Breiman's 2001 permutation importance, measured on the labels the model
    gives rather than on accuracy, so it needs no outcomes).

    Args:
        predict_proba: rows -> (rows, classes) probabilities; called once per column plus once.
        X: the rows (n rows x features).
        columns: columns to test (default: all).

    Returns:
        column -> fraction of rows whose label changed (0..1).
    """
    base = np.asarray(predict_proba(X)).argmax(axis=1)
    out = {}
    for c in columns or list(X.columns):
        Xp = X.copy()
        Xp[c] = X[c].to_numpy()[rng.permutation(len(X))]
        out[c] = float(np.mean(np.asarray(predict_proba(Xp)).argmax(axis=1) != base))
    return out


def shortcut_from_flip_rates(rates: dict[str, float], threshold: float, name: str = "shortcut") -> Check:
    """Alert when one feature alone flips more than ``threshold`` of the decisions.

    A model whose decisions hinge on one input that should carry little
    information (a shortcut, Geirhos et al. 2020) shows as one feature with a
    flip rate far above the others.
    """
    if not rates:
        return Check(name, "flip rate", None, threshold, False, {})
    top = max(rates, key=lambda k: (rates[k], k))
    ranked = sorted(rates.items(), key=lambda kv: -kv[1])[:3]
    return Check(name, "flip rate", rates[top], threshold, rates[top] > threshold,
                 {"feature": top, "top": {k: round(v, 4) for k, v in ranked}})
