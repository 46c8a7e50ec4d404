"""Cost to game a credit model: queries without the weights, steps with them, and transfer from a surrogate.

An applicant the model refuses (predicted bad risk) looks for changes to the
inputs they control that flip the decision. The search is the same greedy
coordinate search in every case (at each step, try every single change from
``MUTABLE`` and keep the one that lowers the predicted risk most); what
differs is what it evaluates candidates on:

- **black-box**: the deployed model through a query-counting prediction
  function; every candidate row is a query to the operator.
- **white-box** (the weights): the downloaded model, locally; no query to the
  operator; the cost is the search steps (changes made) and local evaluations.
- **surrogate**: a widely available model of the capability in force
  (``frontier``: trained like the deployed one on other rows; ``lagging``: on
  fewer rows, see ``surrogate``), searched locally; after each change the
  deployed model is queried once to see whether the decision flipped; if the
  plan runs out, the black-box search continues from there.

Greedy search over features counting queries is the simplest decision-based
black-box attack (cf. Papernot et al. 2017 on transfer from surrogates; Chen,
Jordan and Wainwright 2020, HopSkipJumpAttack, on query counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..datasets.german_credit import credit_model
from .checks import QueryCounter

__all__ = ["MUTABLE", "GamingCost", "game", "surrogate", "surrogate_rows"]

MUTABLE = ("duration_in_month", "credit_amount", "savings_account_and_bonds", "installment_rate_in_percentage_of_disposable_income",
           "other_debtors_or_guarantors", "purpose", "other_installment_plans")
"""Inputs an applicant can change in an application (loan terms, savings declared, guarantor, purpose, other plans)."""


@dataclass(frozen=True)
class GamingCost:
    """Cost of flipping refusals, over a sample of refused applicants.

    Attributes:
        applicants: refused applicants tried.
        flipped: how many got an approval within ``max_steps`` changes.
        queries: queries to the deployed model per applicant (int array, shape (applicants,)).
        steps: changes made per applicant (int array).
    """

    applicants: int
    flipped: int
    queries: np.ndarray
    steps: np.ndarray

    @property
    def success(self) -> float:
        return self.flipped / self.applicants if self.applicants else 0.0

    @property
    def median_queries(self) -> float:
        return float(np.median(self.queries)) if self.applicants else 0.0

    @property
    def median_steps(self) -> float:
        return float(np.median(self.steps)) if self.applicants else 0.0


def _candidates(row: pd.Series, values: dict[str, list]) -> pd.DataFrame:
    out = []
    for c in MUTABLE:
        if c not in row.index:
            continue
        for v in values[c]:
            if v != row[c]:
                r = row.copy()
                r[c] = v
                out.append(r)
    return pd.DataFrame(out)


def _values(X: pd.DataFrame, row: pd.Series) -> dict[str, list]:
    vals = {}
    for c in MUTABLE:
        if c not in X.columns:
            continue
        if pd.api.types.is_numeric_dtype(X[c]):
            x = row[c]
            vals[c] = sorted({type(x)(max(1, round(x * f))) for f in (0.5, 0.75)} | ({1, 2, 3, 4} if "rate" in c else set()))
        else:
            vals[c] = sorted(X[c].unique().tolist())
    return vals


def game(deployed, X_pool: pd.DataFrame, refused: pd.DataFrame, how: str, local=None, max_steps: int = 6) -> GamingCost:
    """Run the greedy search for each refused applicant.

    Args:
        deployed: the deployed model (``predict_proba``: rows -> (rows, 2); column 1 = bad risk).
        X_pool: rows whose categories give the candidate values (the public data).
        refused: applicants the deployed model refuses (rows x features).
        how: ``blackbox``, ``whitebox`` or ``surrogate``.
        local: the model searched locally (the downloaded weights for ``whitebox``,
            the surrogate for ``surrogate``).
        max_steps: most changes an applicant makes.

    Raises:
        ValueError: unknown ``how`` or a missing ``local`` model.
    """
    if how not in ("blackbox", "whitebox", "surrogate"):
        raise ValueError(f"how must be blackbox, whitebox or surrogate, got {how!r}")
    if how != "blackbox" and local is None:
        raise ValueError(f"{how} search needs the local model")
    queries, steps, flipped = [], [], 0
    for _, row in refused.iterrows():
        oracle = QueryCounter(deployed.predict_proba)
        values = _values(X_pool, row)
        current = row.copy()
        done = False
        n = 0
        plan_ok = how != "blackbox"
        while n < max_steps and not done:
            cand = _candidates(current, values)
            if plan_ok:
                risk = np.asarray(local.predict_proba(cand))[:, 1]
            else:
                risk = oracle(cand)[:, 1]
            best = cand.iloc[int(np.argmin(risk))]
            current = best
            n += 1
            if how == "whitebox":
                done = float(np.asarray(local.predict_proba(current.to_frame().T))[0, 1]) < 0.5
            elif how == "surrogate":
                done = float(oracle(current.to_frame().T)[0, 1]) < 0.5  # one query to check the planned change
                if not done and n >= max_steps // 2:
                    plan_ok = False  # the surrogate's plan is not working: search through queries
            else:
                done = float(risk.min()) < 0.5
        flipped += int(done)
        queries.append(oracle.queries)
        steps.append(n)
    return GamingCost(len(refused), flipped, np.asarray(queries), np.asarray(steps))


def surrogate_rows(n_rows: int, lag_months: float, halflife_months: float) -> int:
    """Training rows of a surrogate lagging ``lag_months``: ``n_rows x 2^(-lag / halflife)``, at least 50 (modelled)."""
    return max(50, int(round(n_rows * 2 ** (-lag_months / halflife_months))))


def surrogate(X: pd.DataFrame, y: np.ndarray, rows: int, seed: int):
    """A widely available model: glasslog's demo scorecard trained on ``rows`` rows drawn from ``(X, y)``."""
    rng = np.random.default_rng([seed, 500, rows])
    idx = rng.choice(len(X), size=min(rows, len(X)), replace=False)
    return credit_model(X).fit(X.iloc[idx], y[idx])
